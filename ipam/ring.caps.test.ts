/**
 * The ring's entry cap holds for every way a ring grows (merge, grant), agrees with what decodes (so a saved ring
 * always loads again), and the largest ring allowed still fits one gossip frame.
 */
import { describe, expect, it } from 'vitest';
import { Allocator } from './allocator.js';
import { DecodeError, RingCapError } from './errors.js';
import { encodeMessage } from './message.js';
import { Ring, RING_LIMITS } from './ring.js';
import { FakeClock } from '../runtime/clock.js';
import { createMemoryLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryStore } from '../runtime/store.js';

/** A ring over 10.0.0.0/8 with `entries` tokens, every 16th address, owners cycling through `names`. */
function bigRing(entries: number, names: string[], extraTokenAt?: number): Ring {
  const tokens = Array.from({ length: entries }, (_, i) => 0x0a000000 + i * 16);
  if (extraTokenAt !== undefined)
    tokens.splice(
      tokens.findIndex((t) => t > extraTokenAt),
      0,
      extraTokenAt,
    );
  const nameBytes = names.reduce((s, n) => s + 1 + n.length, 0);
  const buf = Buffer.alloc(8 + nameBytes + 2 + 2 * names.length + 4 + 14 * tokens.length + 2);
  let o = buf.writeUInt8(1, 0);
  o = buf.writeUInt32BE(0x0a000000, o);
  o = buf.writeUInt8(8, o);
  o = buf.writeUInt16BE(names.length, o);
  for (const n of names) {
    o = buf.writeUInt8(n.length, o);
    o += buf.write(n, o, 'latin1');
  }
  o = buf.writeUInt16BE(names.length, o);
  names.forEach((_, i) => (o = buf.writeUInt16BE(i, o)));
  o = buf.writeUInt32BE(tokens.length, o);
  tokens.forEach((t) => {
    o = buf.writeUInt32BE(t, o);
    o = buf.writeUInt16BE(Math.floor((t - 0x0a000000) / 16) % names.length, o);
    o = buf.writeUInt32BE(0, o);
    o = buf.writeUInt32BE(0, o);
  });
  buf.writeUInt16BE(0, o);
  return Ring.decode(buf);
}

/** gossip.ts MAX_GOSSIP_FRAME_BYTES (ipam/ does not import gossip/ beyond the channel interface). */
const MAX_GOSSIP_FRAME_BYTES = 1024 * 1024 - 4096;

const names = Array.from({ length: 4096 }, (_, i) => `${i.toString(16).padStart(4, '0')}${'x'.repeat(60)}`).sort();

describe('ring caps', () => {
  it('the largest ring allowed (cap entries, 4096 names of 64 bytes) fits one gossip frame', () => {
    const r = bigRing(RING_LIMITS.maxEntries, names);
    expect(encodeMessage({ kind: 'state', ring: r, consensus: null }).length + 64).toBeLessThan(MAX_GOSSIP_FRAME_BYTES);
  });

  it('refuses a merge or a grant that would pass the cap, and changes nothing', () => {
    const two = ['p1', 'p2'];
    const full = bigRing(RING_LIMITS.maxEntries, two);
    const over = () => bigRing(RING_LIMITS.maxEntries, two, 0x0a000008);
    expect(over).toThrow(DecodeError); // one more than the cap does not even decode
    const almost = bigRing(RING_LIMITS.maxEntries - 1, two);
    const other = bigRing(RING_LIMITS.maxEntries - 1, two, 0x0a000008); // the same tokens, plus one: cap exactly
    expect(almost.merge(other)).toBe(true);
    expect(almost.entryCount).toBe(RING_LIMITS.maxEntries);
    const copy = full.clone();
    const plusTwo = bigRing(RING_LIMITS.maxEntries - 1, two, 0x0a000004);
    expect(() => copy.merge(plusTwo)).toThrow(RingCapError);
    expect(copy.equals(full)).toBe(true);
    expect(() => full.grantTo('p1', 'p3', { start: 0x0a000002, end: 0x0a000004 })).toThrow(RingCapError);
    expect(full.entryCount).toBe(RING_LIMITS.maxEntries);
  });

  it('a stored document over the size cap, or one the store cannot read, is a clear error at start', () => {
    const make = (store: MemoryStore) =>
      new Allocator(
        { clock: new FakeClock(), random: new SeededRandom(1), log: createMemoryLogger().log, store },
        { ourName: 'p1', ourNickname: 'h1', range: '10.32.0.0/12' },
      );
    const store = new MemoryStore();
    store.write('ipam', Buffer.alloc(64 * 1024 * 1024 + 1, 0x20));
    expect(() => make(store).start()).toThrow(/over the cap.*weft reset/);
    const broken = new MemoryStore();
    broken.read = () => {
      throw new RangeError('File size (3000000000) is greater than 2 GiB');
    };
    expect(() => make(broken).start()).toThrow(DecodeError);
  });
});
