/**
 * Runs: `sealRun`/`openRun` of the data session seal and open several datagrams in one call and must be exactly
 * `seal`/`open` one by one, replay window included, for every AEAD (with a native run, and without one).
 */
import { describe, expect, it } from 'vitest';
import sodium from 'sodium-native';
import { OpenResult } from './data-session.js';
import { sodiumDataAead, type DataAead } from './data-aead.js';
import { isNativeAddonBuilt, loadNative } from '../native/addon.js';
import { nativeAegis256x2, nativeDataAead } from '../daemon/data-aead.js';
import { referenceAegis256x2 } from '../test/harness/aegis256-reference.js';
import { sealedSessionPair } from '../test/harness/sessions.js';
import type { AeadDataSession } from './aead-data-session.js';

const HEADER = 16;
const SLOT = 1600;

const aeads: Array<[string, DataAead]> = [
  ['libsodium ChaCha20-Poly1305 (no run: one call each)', sodiumDataAead()],
  ['reference AEGIS-256X2 (no run)', referenceAegis256x2],
];
if (isNativeAddonBuilt()) {
  const native = loadNative();
  aeads.push(['native ChaCha20-Poly1305 runs', nativeDataAead(native)]);
  if (native.aegis256x2Implementation() !== '') aeads.push(['native AEGIS-256X2 runs', nativeAegis256x2(native)]);
}

/** `count` datagrams in one buffer, slot i at i * SLOT, header with seq then body of `lengths[i]` bytes. */
function datagrams(lengths: number[]): { buffer: Buffer; offsets: Uint32Array; bodyLengths: Uint32Array } {
  const buffer = Buffer.alloc(lengths.length * SLOT);
  sodium.randombytes_buf(buffer);
  const offsets = new Uint32Array(lengths.map((_, i) => i * SLOT));
  return { buffer, offsets, bodyLengths: new Uint32Array(lengths) };
}

function takeSeqs(session: AeadDataSession, count: number): number[] {
  return Array.from({ length: count }, () => session.nextSeq());
}

for (const [name, aead] of aeads) {
  describe(`data session runs: ${name}`, () => {
    it('says Short, as open does, for a datagram in a run shorter than a tag', () => {
      const [a1, b1] = sealedSessionPair(aead);
      const lengths = [100, 100, 100];
      const run = datagrams(lengths);
      const seqs = takeSeqs(a1, lengths.length);
      expect(a1.sealRun(run.buffer, run.offsets, run.bodyLengths, lengths.length, HEADER, seqs[0]!)).toBe(lengths.length);
      const results = new Int32Array(lengths.length);
      const sealedLengths = new Uint32Array([116, 15, 0]);
      b1.openRun(run.buffer, run.offsets, sealedLengths, new Float64Array(seqs), lengths.length, HEADER, 0, results);
      expect([...results]).toEqual([100, OpenResult.Short, OpenResult.Short]);
      expect(b1.open(run.buffer, run.offsets[1]!, run.offsets[1]! + HEADER, 15, seqs[1]!, 0)).toBe(OpenResult.Short);
    });

    it('seals a run to exactly the bytes single seals give, and opens it', () => {
      const [a1, b1] = sealedSessionPair(aead);
      const lengths = [1440, 1440, 0, 17, 1440, 300];
      const run = datagrams(lengths);
      const single = Buffer.from(run.buffer);
      const seqs = takeSeqs(a1, lengths.length);
      expect(a1.sealRun(run.buffer, run.offsets, run.bodyLengths, lengths.length, HEADER, seqs[0]!)).toBe(lengths.length);
      for (let i = 0; i < lengths.length; i++) {
        const at = run.offsets[i]!;
        expect(run.buffer.subarray(at, at + HEADER).equals(single.subarray(at, at + HEADER))).toBe(true); // header untouched
      }
      const results = new Int32Array(lengths.length);
      const sealedLengths = new Uint32Array(lengths.map((l) => l + 16));
      for (const s of seqs) expect(b1.checkOpen(s, 0)).toBe(0);
      b1.openRun(run.buffer, run.offsets, sealedLengths, new Float64Array(seqs), lengths.length, HEADER, 0, results);
      expect([...results]).toEqual(lengths);
      for (let i = 0; i < lengths.length; i++) {
        const body = run.offsets[i]! + HEADER;
        expect(run.buffer.subarray(body, body + lengths[i]!).equals(single.subarray(body, body + lengths[i]!))).toBe(true);
      }
      // Every seq is now recorded: the same run again is all replays.
      for (const s of seqs) expect(b1.checkOpen(s, 0)).toBe(OpenResult.Replay);
    });

    it('single opens take run-sealed datagrams, and openRun takes single-sealed ones', () => {
      const [a, b] = sealedSessionPair(aead);
      const lengths = [1440, 33, 1440];
      const run = datagrams(lengths);
      const one = Buffer.from(run.buffer);
      const seqs = takeSeqs(a, 3);
      expect(a.sealRun(run.buffer, run.offsets, run.bodyLengths, 3, HEADER, seqs[0]!)).toBe(3);
      // Open the run-sealed datagrams one by one with open(): they are what seal() makes.
      for (let i = 0; i < 3; i++) {
        const at = run.offsets[i]!;
        expect(b.open(run.buffer, at, at + HEADER, lengths[i]! + 16, seqs[i]!, 0)).toBe(lengths[i]);
        expect(
          run.buffer.subarray(at + HEADER, at + HEADER + lengths[i]!).equals(one.subarray(at + HEADER, at + HEADER + lengths[i]!)),
        ).toBe(true);
      }
      // And seal() one by one opens with openRun.
      const singles = datagrams(lengths);
      const plain = Buffer.from(singles.buffer);
      const seqs2 = takeSeqs(a, 3);
      for (let i = 0; i < 3; i++) {
        const at = singles.offsets[i]!;
        expect(a.seal(singles.buffer, at, at + HEADER, lengths[i]!, seqs2[i]!)).toBe(lengths[i]! + 16);
      }
      const results = new Int32Array(3);
      b.openRun(
        singles.buffer,
        singles.offsets,
        new Uint32Array(lengths.map((l) => l + 16)),
        new Float64Array(seqs2),
        3,
        HEADER,
        0,
        results,
      );
      expect([...results]).toEqual(lengths);
      for (let i = 0; i < 3; i++) {
        const body = singles.offsets[i]! + HEADER;
        expect(singles.buffer.subarray(body, body + lengths[i]!).equals(plain.subarray(body, body + lengths[i]!))).toBe(true);
      }
    });

    it('in a run: a forged datagram fails alone and does not move the window; a second copy of a seq is a replay', () => {
      const [a, b] = sealedSessionPair(aead);
      const lengths = [200, 200, 200, 200];
      const run = datagrams(lengths);
      const seqs = takeSeqs(a, 4);
      a.sealRun(run.buffer, run.offsets, run.bodyLengths, 4, HEADER, seqs[0]!);
      const genuine2 = Buffer.from(run.buffer.subarray(run.offsets[2]!, run.offsets[2]! + HEADER + 216));
      run.buffer[run.offsets[2]! + HEADER + 5]! ^= 0x40; // forge datagram 2
      // Datagram 3 is a copy of datagram 1 (same seq).
      run.buffer.copy(run.buffer, run.offsets[3]!, run.offsets[1]!, run.offsets[1]! + HEADER + 216);
      const runSeqs = new Float64Array([seqs[0]!, seqs[1]!, seqs[2]!, seqs[1]!]);
      const results = new Int32Array(4);
      b.openRun(run.buffer, run.offsets, new Uint32Array([216, 216, 216, 216]), runSeqs, 4, HEADER, 0, results);
      expect([...results]).toEqual([200, 200, OpenResult.BadTag, OpenResult.Replay]);
      // The forgery did not record seq 2: the genuine datagram still opens once.
      expect(b.checkOpen(seqs[2]!, 0)).toBe(0);
      genuine2.copy(run.buffer, 0);
      expect(b.open(run.buffer, 0, HEADER, 216, seqs[2]!, 0)).toBe(200);
    });

    it('refuses seqs not handed out for the current key, a missing key, and ranges outside the buffer', () => {
      const [a, b] = sealedSessionPair(aead);
      const run = datagrams([100, 100]);
      const seqs = takeSeqs(a, 2);
      expect(a.sealRun(run.buffer, run.offsets, run.bodyLengths, 3, HEADER, seqs[0]!)).toBe(OpenResult.Stale); // seq 2 not taken
      expect(a.sealRun(run.buffer, run.offsets, run.bodyLengths, 2, HEADER, seqs[0]! + 0.5)).toBe(OpenResult.Stale);
      const short = new Uint32Array([100, SLOT]); // the second body runs past the buffer
      expect(a.sealRun(run.buffer, run.offsets, short, 2, HEADER, seqs[0]!)).toBe(OpenResult.Short);
      a.installSendKey(1, Buffer.alloc(32, 3));
      a.switchSendKey(1); // seq restarts at 0 under the new key: the old numbers are stale
      expect(a.sealRun(run.buffer, run.offsets, run.bodyLengths, 2, HEADER, seqs[0]!)).toBe(OpenResult.Stale);
      expect(b.checkOpen(0, 1)).toBe(OpenResult.NoKey);
      const results = new Int32Array(2);
      b.openRun(run.buffer, run.offsets, new Uint32Array([116, 116]), new Float64Array([0, 1]), 2, HEADER, 1, results);
      expect([...results]).toEqual([OpenResult.NoKey, OpenResult.NoKey]);
    });
  });
}
