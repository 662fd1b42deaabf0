/**
 * A data-plane crypto session for one pair of peers: seal what we send, open what we receive, in place.
 *
 * Implemented in `crypto/` (ChaCha20-Poly1305, RFC 8439, ./data-aead.ts; per-direction keys, replay window, key phase
 * for rekeying); used by the sleeve in `router/`. Nothing here allocates per packet, throws or logs: a failed open
 * returns a negative code that the caller counts.
 */

/** Why `open` refused a datagram (negative return values). */
export const OpenResult = {
  /** Authentication failed: wrong key, forged or corrupted. */
  BadTag: -1,
  /** Sequence number already seen. */
  Replay: -2,
  /** Sequence number behind the replay window. */
  Stale: -3,
  /** No key for the key phase in the header (rekey not yet complete, or too old). */
  NoKey: -4,
  /** Too short to hold a tag. */
  Short: -5,
} as const;

export interface DataSession {
  /** Bytes `seal` appends (the authentication tag). */
  readonly overheadBytes: number;
  /** The key phase bit (0 or 1) to put in the header of the next datagram sealed. */
  readonly sendKeyPhase: number;
  /**
   * Take the next send sequence number for the current send key. Never returns the same number twice for one key.
   */
  nextSeq(): number;
  /**
   * Seal `buffer[bodyOffset, bodyOffset+bodyLength)` in place and write the tag right after it.
   * `buffer[headerOffset, bodyOffset)` (the clear header, which carries `seq`) is authenticated, not encrypted.
   * The caller must leave `overheadBytes` free after the body. Returns the sealed body length (body + tag), or a
   * negative `OpenResult` when nothing was sealed (no current key, e.g. after destroy: `NoKey`; `seq` not taken from
   * `nextSeq()` for the current key: `Stale`; ranges outside `buffer`: `Short`); the caller drops and counts it.
   */
  seal(buffer: Buffer, headerOffset: number, bodyOffset: number, bodyLength: number, seq: number): number;
  /**
   * Check the replay window, authenticate and decrypt `buffer[bodyOffset, bodyOffset+sealedLength)` in place, then
   * record `seq` as seen. Returns the plaintext length (>= 0) or an `OpenResult` code (< 0).
   */
  open(buffer: Buffer, headerOffset: number, bodyOffset: number, sealedLength: number, seq: number, keyPhase: number): number;
  /**
   * Seal `count` datagrams in one go, as `seal` would one by one. Datagram i is its clear header of
   * `headerBytes` at `offsets[i]`, then a body of `bodyLengths[i]` bytes with `overheadBytes` free after it; their
   * sequence numbers are `firstSeq`, `firstSeq + 1`, ... (taken from `nextSeq()` in a row for the current key).
   * Returns `count`, or a negative `OpenResult` when nothing was sealed.
   */
  sealRun(buffer: Buffer, offsets: Uint32Array, bodyLengths: Uint32Array, count: number, headerBytes: number, firstSeq: number): number;
  /**
   * With `openRun`: the replay verdict for `seq` under `keyPhase` without recording it: 0 when it may be
   * opened, else `Replay`, `Stale` or `NoKey`. A datagram goes into a run only after this said 0.
   */
  checkOpen(seq: number, keyPhase: number): number;
  /**
   * Open `count` datagrams sealed under `keyPhase`, as `open` would one by one (each already passed
   * `checkOpen`). Datagram i is its header at `offsets[i]`, then `sealedLengths[i]` bytes of body and tag.
   * `results[i]` gets the plaintext length or a negative `OpenResult` (a second copy within the run is `Replay`).
   */
  openRun(
    buffer: Buffer,
    offsets: Uint32Array,
    sealedLengths: Uint32Array,
    seqs: Float64Array,
    count: number,
    headerBytes: number,
    keyPhase: number,
    results: Int32Array,
  ): void;
}
