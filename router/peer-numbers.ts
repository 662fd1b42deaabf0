/**
 * Peer numbers: the small integers the data path uses for peers instead of their 48-bit names.
 *
 * A 48-bit value read from a packet and handed to another function is boxed on the heap unless the call is inlined,
 * while small integers never are; so inside the loops a peer is a number (0, 1, 2, ...) and per-number arrays
 * replace maps keyed by name. A name in a header is mapped to its number by a typed-array table read straight from
 * the packet (`lookupAt`), and written back from `idBytes`.
 *
 * Numbers are handed out by `numberOf` (from `apply`, never from a loop) and given back by `release` when the peer
 * has left the snapshot, so a long-lived router that has seen many peers come and go does not run out
 * (`capacity` bounds the peers known at one time, not over the router's life). A released number is reused only by
 * a later snapshot, after its MACs, its reassembly state and its place in every per-number array are gone.
 */
import { LearnResult, MacTable } from './mac-table.js';
import type { PeerId } from './datapath.js';
import { BROADCAST_PEER } from './sleeve-format.js';

export class PeerNumbers {
  readonly capacity: number;
  /** Peer number n's name as 6 bytes at `n * 6`, for writing headers without a 48-bit number. */
  readonly idBytes: Buffer;
  /** Name -> number (a MAC table without expiry: names are 48-bit like MACs). */
  private readonly table: MacTable;
  /** Number -> name, or -1 for a free number. */
  private readonly ids: number[] = [];
  /** Released numbers, reused before new ones. */
  private readonly free: number[] = [];
  private inUse = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.idBytes = Buffer.alloc(capacity * 6);
    this.table = new MacTable({ capacity, expiryMs: Infinity });
  }

  /** One more than the highest number ever handed out: the length per-number arrays need. */
  get span(): number {
    return this.ids.length;
  }

  /** Numbers held now. */
  get size(): number {
    return this.inUse;
  }

  /** The number of the name at `buffer[offset, +6)`, or -1 when it has none. Allocates nothing. */
  lookupAt(buffer: Buffer, offset: number): number {
    return this.table.lookupAt(buffer, offset, 0);
  }

  /** The name of number `n`, or -1 when `n` is free. */
  idOf(n: number): PeerId {
    return this.ids[n] ?? -1;
  }

  /**
   * The number of peer `id`, handing out one on first sight; -1 when `id` is not a 48-bit name other than 0, or when
   * `capacity` peers already hold numbers.
   */
  numberOf(id: PeerId): number {
    if (!Number.isInteger(id) || id <= BROADCAST_PEER || id >= 2 ** 48) return -1;
    const known = this.table.lookup(id, 0);
    if (known >= 0) return known;
    if (this.inUse >= this.capacity) return -1;
    const number = this.free.length > 0 ? this.free.pop()! : this.ids.length;
    if (this.table.learn(id, number, 0) !== LearnResult.Added) {
      if (number !== this.ids.length) this.free.push(number);
      return -1;
    }
    if (number === this.ids.length) this.ids.push(id);
    else this.ids[number] = id;
    this.idBytes.writeUIntBE(id, number * 6, 6);
    this.inUse++;
    return number;
  }

  /** Give number `n` back (its peer left the snapshot). The caller has dropped everything it kept for `n`. */
  release(n: number): void {
    const id = this.ids[n];
    if (id === undefined || id < 0) return;
    this.table.remove(id);
    this.ids[n] = -1;
    this.idBytes.fill(0, n * 6, n * 6 + 6);
    this.free.push(n);
    this.inUse--;
  }
}
