/**
 * Benchmark, not a test: prints seals/s and opens/s of 1400-byte bodies through AeadDataSession and the GC
 * scavenges per million datagrams (the allocation check of STYLE.md). Asserts nothing about speed.
 *
 *   WEFT_BENCH=1 npx vitest run crypto/aead-data-session.bench.test.ts
 *
 * Datagrams live in a 64-slot arena, like the sleeve's batches, at an offset that leaves headroom for the header.
 */
import { describe, it } from 'vitest';
import sodium from 'sodium-native';
import { AeadDataSession } from './aead-data-session.js';
import { BufferViews } from './buffer-views.js';
import { countScavenges } from '../test/harness/gc.js';

const COUNT = 1_000_000;
const BODY = 1400;
const HEADER = 16;
const SLOTS = 64;
const SLOT_BYTES = 2048;
const HEADROOM = 32;

function pair(views: BufferViews | null): { tx: AeadDataSession; rx: AeadDataSession } {
  const k = Buffer.alloc(32);
  sodium.randombytes_buf(k);
  const tx = new AeadDataSession({ isInitiator: true, views });
  const rx = new AeadDataSession({ isInitiator: false, views });
  tx.installSendKey(0, k);
  tx.switchSendKey(0);
  rx.installReceiveKey(0, k);
  return { tx, rx };
}

function sealSlot(tx: AeadDataSession, arena: Buffer, slot: number): void {
  const h = slot * SLOT_BYTES + HEADROOM;
  const seq = tx.nextSeq();
  arena[h] = 0x57;
  arena[h + 1] = tx.sendKeyPhase << 1;
  arena.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), h + 8);
  arena.writeUInt32BE(seq >>> 0, h + 12);
  tx.seal(arena, h, h + HEADER, BODY, seq);
}

function openSlot(rx: AeadDataSession, arena: Buffer, slot: number): number {
  const h = slot * SLOT_BYTES + HEADROOM;
  const seq = arena.readUInt32BE(h + 8) * 0x1_0000_0000 + arena.readUInt32BE(h + 12);
  return rx.open(arena, h, h + HEADER, BODY + 16, seq, (arena[h + 1]! >> 1) & 1);
}

describe.runIf(process.env.WEFT_BENCH)('AeadDataSession benchmark (prints, asserts nothing)', () => {
  for (const mode of ['cached views', 'subarray views'] as const) {
    it(`seal and open ${COUNT} x ${BODY}-byte bodies (${mode})`, async () => {
      const views = mode === 'cached views' ? new BufferViews() : null;
      const arena = Buffer.alloc(SLOTS * SLOT_BYTES);
      // Warm up (JIT, view cache).
      {
        const { tx, rx } = pair(views);
        for (let n = 0; n < 20_000; n++) {
          sealSlot(tx, arena, n % SLOTS);
          openSlot(rx, arena, n % SLOTS);
        }
      }
      const { tx, rx } = pair(views);
      let sealMs = 0;
      const sealScavenges = await countScavenges(() => {
        const t0 = performance.now();
        for (let n = 0; n < COUNT; n++) sealSlot(tx, arena, n & (SLOTS - 1));
        sealMs = performance.now() - t0;
      });
      // Opens: seal a batch of 64 (untimed), open it (timed), repeat.
      const rx2 = pair(views);
      let openMs = 0;
      let failed = 0;
      const roundTripScavenges = await countScavenges(() => {
        for (let n = 0; n < COUNT; n += SLOTS) {
          for (let s = 0; s < SLOTS; s++) sealSlot(rx2.tx, arena, s);
          const t0 = performance.now();
          for (let s = 0; s < SLOTS; s++) if (openSlot(rx2.rx, arena, s) < 0) failed++;
          openMs += performance.now() - t0;
        }
      });
      void rx;
      const perMillion = (x: number): string => ((x * 1_000_000) / COUNT).toFixed(1);
      console.log(
        [
          `[bench] ${mode}: seal ${Math.round(COUNT / (sealMs / 1000)).toLocaleString('en')} /s ` +
            `(${((sealMs * 1e6) / COUNT).toFixed(0)} ns), scavenges per million seals ${perMillion(sealScavenges)}`,
          `[bench] ${mode}: open ${Math.round(COUNT / (openMs / 1000)).toLocaleString('en')} /s ` +
            `(${((openMs * 1e6) / COUNT).toFixed(0)} ns), scavenges per million seal+open ${perMillion(roundTripScavenges)}` +
            (failed ? `, ${failed} FAILED` : ''),
          `[bench] ${mode}: ${((COUNT * BODY * 8) / (sealMs / 1000) / 1e9).toFixed(2)} Gbit/s sealed on one core`,
        ].join('\n'),
      );
    }, 120_000);
  }
});
