/**
 * Benchmark, not a test: nanoseconds per 1440-byte datagram for every data AEAD implementation on this machine,
 * one call per datagram and in runs of 44 (a 64 KiB super-frame's pieces), sealed and opened, through the
 * session layer (AeadDataSession) as the sleeve uses it. Asserts only that what was sealed opens.
 *
 *   WEFT_BENCH=1 npx vitest run native/aead.bench.test.ts
 *
 * libsodium's ChaCha20-Poly1305 has no run call: its "run" rows are the session's one-call-per-datagram fallback.
 */
import { describe, expect, it } from 'vitest';
import { isNativeAddonBuilt, loadNative } from './addon.js';
import { sealedSessionPair } from '../test/harness/sessions.js';
import { sodiumDataAead, type DataAead } from '../crypto/data-aead.js';
import { nativeAegis256x2, nativeDataAead } from '../daemon/data-aead.js';

const BODY = 1440;
const HEADER = 16;
const RUN = 44;
const SLOT = 1536;
const ROUNDS = 3000; // runs per measurement: 132 000 datagrams

function implementations(): Array<[string, () => DataAead]> {
  const list: Array<[string, () => DataAead]> = [['ChaCha20-Poly1305, libsodium', () => sodiumDataAead()]];
  if (!isNativeAddonBuilt()) return list;
  const native = loadNative();
  list.push(['ChaCha20-Poly1305, OpenSSL', () => nativeDataAead(native)]);
  const detected = native.aegis256x2Implementation();
  if (detected !== '') {
    for (const level of detected === 'vaes' ? (['vaes', 'aes-ni'] as const) : (['aes-ni'] as const)) {
      list.push([`AEGIS-256X2, ${level}`, () => (native.aegis256x2Use(level), nativeAegis256x2(native))]);
    }
  }
  return list;
}

describe.runIf(process.env.WEFT_BENCH)('data AEAD benchmark (prints ns per 1440-byte datagram)', () => {
  it('one call per datagram, and runs of 44', () => {
    const arena = Buffer.alloc(RUN * SLOT);
    const offsets = new Uint32Array(RUN).map((_, i) => i * SLOT);
    const bodyLengths = new Uint32Array(RUN).fill(BODY);
    const sealedLengths = new Uint32Array(RUN).fill(BODY + 16);
    const seqs = new Float64Array(RUN);
    const results = new Int32Array(RUN);
    const rows: string[] = [];
    for (const [name, make] of implementations()) {
      const aead = make();
      const [tx, rx] = sealedSessionPair(aead);
      const time = (f: () => void): number => {
        for (let r = 0; r < 200; r++) f(); // warm up
        const t0 = process.hrtime.bigint();
        for (let r = 0; r < ROUNDS; r++) f();
        return Number(process.hrtime.bigint() - t0) / (ROUNDS * RUN);
      };
      let opened = 0;
      const singleSeal = time(() => {
        for (let i = 0; i < RUN; i++) tx.seal(arena, offsets[i]!, offsets[i]! + HEADER, BODY, (seqs[i] = tx.nextSeq()));
      });
      const singleOpen =
        time(() => {
          for (let i = 0; i < RUN; i++) {
            const seq = tx.nextSeq();
            tx.seal(arena, offsets[i]!, offsets[i]! + HEADER, BODY, seq);
            if (rx.open(arena, offsets[i]!, offsets[i]! + HEADER, BODY + 16, seq, 0) === BODY) opened++;
          }
        }) - singleSeal;
      const runSeal = time(() => {
        const first = tx.nextSeq();
        for (let i = 1; i < RUN; i++) tx.nextSeq();
        tx.sealRun(arena, offsets, bodyLengths, RUN, HEADER, first);
      });
      const runOpen =
        time(() => {
          const first = tx.nextSeq();
          for (let i = 1; i < RUN; i++) tx.nextSeq();
          tx.sealRun(arena, offsets, bodyLengths, RUN, HEADER, first);
          for (let i = 0; i < RUN; i++) seqs[i] = first + i;
          rx.openRun(arena, offsets, sealedLengths, seqs, RUN, HEADER, 0, results);
          for (let i = 0; i < RUN; i++) if (results[i] === BODY) opened++;
        }) - runSeal;
      expect(opened).toBe(2 * (ROUNDS + 200) * RUN);
      const gbps = (ns: number) => ((BODY * 8) / ns).toFixed(1);
      rows.push(
        `${name.padEnd(30)} seal ${singleSeal.toFixed(0).padStart(4)} ns  open ${singleOpen.toFixed(0).padStart(4)} ns  | ` +
          `runs: seal ${runSeal.toFixed(0).padStart(4)} ns (${gbps(runSeal)} Gbit/s)  open ${runOpen.toFixed(0).padStart(4)} ns (${gbps(runOpen)} Gbit/s)`,
      );
    }
    if (isNativeAddonBuilt()) {
      const native = loadNative();
      const detected = native.aegis256x2Implementation();
      if (detected !== '') native.aegis256x2Use(detected);
    }
    console.log(`per 1440-byte datagram, one core:\n${rows.join('\n')}`);
  }, 120_000);
});
