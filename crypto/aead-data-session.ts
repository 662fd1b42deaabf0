/**
 * The data-plane session: the connection's AEAD (ChaCha20-Poly1305 or AEGIS-256, ./data-aead.ts) over sleeve
 * datagrams, in place.
 *
 * Pipeline per datagram, all synchronous and allocation-free in steady state:
 *   seal: nonce <- (direction, key phase, seq) in a preallocated buffer; encrypt the body over itself, tag right
 *         after it, header authenticated as AD (the `DataAead` takes offsets into the datagram buffer).
 *   open: length and bounds -> key for the header's phase -> replay window `check` (no mutation) -> verify tag and
 *         decrypt over itself -> window `accept`. A forgery never moves the window.
 *
 * Nonce (12 bytes for ChaCha20-Poly1305, 32 for AEGIS-256; every key is fresh from a key exchange and seq never
 * repeats under one key, so a counter nonce is all either cipher needs):
 *
 *    0           1           2 .. N-9   N-8 .. N-1
 *   +-----------+-----------+----------+-----------------------------+
 *   | direction | key phase | zero     | seq, u64 big-endian          |
 *   +-----------+-----------+----------+-----------------------------+
 *   direction: 0x01 sent by the connection initiator, 0x02 by the responder.
 *
 * Keys already differ per direction and per phase, so the nonce's own direction and phase bytes are belt and braces:
 * even a key-schedule bug that gave both directions one key would not repeat a (key, nonce) pair.
 *
 * Rekeying (driven by PasswordSecurity): two key slots per direction, indexed by the header's key-phase bit. A new
 * receive key goes into the idle slot before the peer switches, so old and new overlap; `switchSendKey` flips the
 * phase and restarts `seq` at 0 for the fresh key; the old receive slot is dropped after the overlap.
 */
import sodium from 'sodium-native';
import { OpenResult, type DataSession } from './data-session.js';
import { BufferViews } from './buffer-views.js';
import { ReplayCheck, ReplayWindow, DEFAULT_REPLAY_WINDOW } from './replay-window.js';
import {
  DATA_KEY_BYTES as AEAD_KEY_BYTES,
  DATA_TAG_BYTES as AEAD_TAG_BYTES,
  sodiumDataAead,
  type DataAead,
  type DataCipher,
} from './data-aead.js';

/** Nonce direction byte of datagrams sent by the connection initiator. */
export const DIRECTION_FROM_INITIATOR = 0x01;
/** Nonce direction byte of datagrams sent by the connection responder. */
export const DIRECTION_FROM_RESPONDER = 0x02;

/**
 * Write the data nonce for (direction, phase, seq) into `nonce` (12 or 32 bytes; the bytes between phase and seq
 * must be zero, as in a fresh buffer). Exported for tests and docs.
 */
export function writeDataNonce(nonce: Buffer, direction: number, phase: number, seq: number): void {
  const end = nonce.length;
  nonce[0] = direction;
  nonce[1] = phase;
  // seq < 2^53: the high word is exact after the division, the low word after `>>> 0`.
  nonce.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), end - 8);
  nonce.writeUInt32BE(seq >>> 0, end - 4);
}

export interface AeadDataSessionOptions {
  /** True on the side that dialled; picks the nonce direction bytes. */
  isInitiator: boolean;
  /** Replay window per receive key, in sequence numbers. @default DEFAULT_REPLAY_WINDOW (2^20) */
  replayWindow?: number;
  /**
   * The AEAD implementation. Share one across the sessions of a data path. @default `sodiumDataAead(views)`
   */
  aead?: DataAead;
  /**
   * Buffer views for the default (sodium-native) AEAD; share one across the sessions of a datapath. `null` makes
   * `subarray()` views per datagram instead (allocates; for comparison). Ignored when `aead` is given.
   * @default a private `BufferViews`
   */
  views?: BufferViews | null;
}

/** Largest sequence number handed out; past it a key must have been replaced (at 10^7 datagrams/s: 28 years). */
const MAX_SEQ = Number.MAX_SAFE_INTEGER;

export class AeadDataSession implements DataSession {
  readonly overheadBytes = AEAD_TAG_BYTES;
  /** The cipher this session seals with (agreed in the handshake). */
  get cipher(): DataCipher {
    return this.aead.cipher;
  }

  private readonly aead: DataAead;
  private readonly replayWindowSize: number;
  private readonly sendDirection: number;
  private readonly receiveDirection: number;
  /** Four key slots in guarded memory: send phase 0, send phase 1, receive phase 0, receive phase 1. */
  private readonly keyMemory: Buffer;
  private readonly sendKeys: [Buffer, Buffer];
  private readonly receiveKeys: [Buffer, Buffer];
  private readonly hasSendKey = [false, false];
  /** A send key is fresh until it becomes current: only a fresh key may be switched to (seq restarts at 0). */
  private readonly isSendKeyFresh = [false, false];
  private readonly hasReceiveKeyFlag = [false, false];
  private readonly windows: [ReplayWindow | null, ReplayWindow | null] = [null, null];
  private readonly sealNonce: Buffer;
  private readonly openNonce: Buffer;
  private phase = 0;
  private seq = 0;

  constructor(options: AeadDataSessionOptions) {
    // `views: null` (comparison mode) is a cache that keeps nothing: every view is a fresh subarray().
    this.aead = options.aead ?? sodiumDataAead(options.views === undefined ? new BufferViews() : (options.views ?? new BufferViews(0)));
    this.sealNonce = Buffer.alloc(this.aead.nonceBytes);
    this.openNonce = Buffer.alloc(this.aead.nonceBytes);
    this.replayWindowSize = options.replayWindow ?? DEFAULT_REPLAY_WINDOW;
    this.sendDirection = options.isInitiator ? DIRECTION_FROM_INITIATOR : DIRECTION_FROM_RESPONDER;
    this.receiveDirection = options.isInitiator ? DIRECTION_FROM_RESPONDER : DIRECTION_FROM_INITIATOR;
    this.keyMemory = sodium.sodium_malloc(4 * AEAD_KEY_BYTES);
    sodium.sodium_memzero(this.keyMemory);
    const slot = (i: number): Buffer => this.keyMemory.subarray(i * AEAD_KEY_BYTES, (i + 1) * AEAD_KEY_BYTES);
    this.sendKeys = [slot(0), slot(1)];
    this.receiveKeys = [slot(2), slot(3)];
  }

  get sendKeyPhase(): number {
    return this.phase;
  }

  /** Sequence numbers taken with the current send key (the rekey policy compares it with its message limit). */
  get sentWithCurrentKey(): number {
    return this.seq;
  }

  /** True when a send key is current. */
  get canSeal(): boolean {
    return this.hasSendKey[this.phase]! && !this.isSendKeyFresh[this.phase]!;
  }

  nextSeq(): number {
    const s = this.seq;
    // Unreachable in practice (the rekey policy replaces keys long before); a repeat would break the AEAD.
    if (s >= MAX_SEQ) throw new Error('BUG: data key used for 2^53 datagrams without a rekey');
    this.seq = s + 1;
    return s;
  }

  /**
   * See `DataSession.seal`. In addition: returns `OpenResult.NoKey` (< 0) if there is no current send key (before
   * the first `switchSendKey` or after `destroy`), `OpenResult.Stale` if `seq` was not handed out by `nextSeq()` for
   * the current key (e.g. taken before a key switch), and `OpenResult.Short` if the ranges do not fit in `buffer`
   * (the header is [headerOffset, bodyOffset), the tag must fit after the body). Nothing is written then.
   */
  seal(buffer: Buffer, headerOffset: number, bodyOffset: number, bodyLength: number, seq: number): number {
    const phase = this.phase;
    if (!this.hasSendKey[phase] || this.isSendKeyFresh[phase]) return OpenResult.NoKey;
    // Only numbers nextSeq() handed out for this key: one taken before a key switch must not be sealed after it.
    if (!(seq >= 0 && seq < this.seq) || seq !== Math.floor(seq)) return OpenResult.Stale;
    const tagOffset = bodyOffset + bodyLength;
    if (!(headerOffset >= 0 && headerOffset <= bodyOffset && bodyLength >= 0 && tagOffset + AEAD_TAG_BYTES <= buffer.length)) {
      return OpenResult.Short;
    }
    writeDataNonce(this.sealNonce, this.sendDirection, phase, seq);
    const sealed = this.aead.seal(
      buffer,
      headerOffset,
      bodyOffset - headerOffset,
      bodyOffset,
      bodyLength,
      this.sealNonce,
      this.sendKeys[phase],
    );
    return sealed < 0 ? OpenResult.BadTag : sealed;
  }

  /**
   * See `DataSession.open`. `keyPhase` is the header's key-phase bit (only bit 0 is read). A datagram whose range
   * does not fit in `buffer` is `Short`. After a `BadTag` the body holds no plaintext (it is verified first).
   */
  open(buffer: Buffer, headerOffset: number, bodyOffset: number, sealedLength: number, seq: number, keyPhase: number): number {
    if (!(sealedLength >= AEAD_TAG_BYTES && headerOffset >= 0 && headerOffset <= bodyOffset)) return OpenResult.Short;
    const tagOffset = bodyOffset + sealedLength - AEAD_TAG_BYTES;
    if (!(tagOffset + AEAD_TAG_BYTES <= buffer.length)) return OpenResult.Short;
    const phase = keyPhase & 1;
    if (!this.hasReceiveKeyFlag[phase]) return OpenResult.NoKey;
    const window = this.windows[phase]!;
    const verdict = window.check(seq);
    if (verdict !== ReplayCheck.Fresh) return verdict;
    writeDataNonce(this.openNonce, this.receiveDirection, phase, seq);
    const opened = this.aead.open(
      buffer,
      headerOffset,
      bodyOffset - headerOffset,
      bodyOffset,
      sealedLength,
      this.openNonce,
      this.receiveKeys[phase],
    );
    if (opened < 0) return OpenResult.BadTag;
    // Fresh by `check`, yet refused when it came from further behind than the ring tracked (the ring grew).
    const accepted = window.accept(seq);
    return accepted === ReplayCheck.Fresh ? opened : accepted;
  }

  /** See `DataSession.sealRun`. */
  sealRun(buffer: Buffer, offsets: Uint32Array, bodyLengths: Uint32Array, count: number, headerBytes: number, firstSeq: number): number {
    const phase = this.phase;
    if (!this.hasSendKey[phase] || this.isSendKeyFresh[phase]) return OpenResult.NoKey;
    // Only numbers nextSeq() handed out for this key: ones taken before a key switch must not be sealed after it.
    if (!(firstSeq >= 0 && firstSeq + count <= this.seq && count >= 0) || firstSeq !== Math.floor(firstSeq)) return OpenResult.Stale;
    if (count > offsets.length || count > bodyLengths.length) return OpenResult.Short;
    writeDataNonce(this.sealNonce, this.sendDirection, phase, firstSeq);
    return this.aead.sealRun(buffer, offsets, bodyLengths, count, headerBytes, this.sealNonce, this.sendKeys[phase]) < 0
      ? OpenResult.Short
      : count;
  }

  /** See `DataSession.checkOpen`. */
  checkOpen(seq: number, keyPhase: number): number {
    const phase = keyPhase & 1;
    if (!this.hasReceiveKeyFlag[phase]) return OpenResult.NoKey;
    return this.windows[phase]!.check(seq);
  }

  /** See `DataSession.openRun`. */
  openRun(
    buffer: Buffer,
    offsets: Uint32Array,
    sealedLengths: Uint32Array,
    seqs: Float64Array,
    count: number,
    headerBytes: number,
    keyPhase: number,
    results: Int32Array,
  ): void {
    const phase = keyPhase & 1;
    if (!this.hasReceiveKeyFlag[phase]) {
      results.fill(OpenResult.NoKey, 0, count);
      return;
    }
    writeDataNonce(this.openNonce, this.receiveDirection, phase, 0);
    if (this.aead.openRun(buffer, offsets, sealedLengths, seqs, count, headerBytes, this.openNonce, this.receiveKeys[phase], results) < 0) {
      results.fill(OpenResult.Short, 0, count);
      return;
    }
    // Record what opened; a second copy of one seq within the run is a replay. A forgery never moves the window.
    const window = this.windows[phase]!;
    for (let i = 0; i < count; i++) {
      if (results[i]! < 0) {
        // -1 from an AEAD is OpenResult.BadTag, unless there was no room for a tag at all.
        if (sealedLengths[i]! < AEAD_TAG_BYTES) results[i] = OpenResult.Short;
        continue;
      }
      const verdict = window.accept(seqs[i]!);
      if (verdict !== ReplayCheck.Fresh) results[i] = verdict;
    }
  }

  /**
   * Put `key` (32 bytes, copied) into the send slot for `phase` without using it yet. Throws if that slot holds the
   * current send key: replacing a key mid-stream would restart nothing and is always a caller bug.
   */
  installSendKey(phase: number, key: Uint8Array): void {
    const p = checkPhase(phase);
    checkKey(key);
    if (p === this.phase && this.hasSendKey[p] && !this.isSendKeyFresh[p]) {
      throw new Error(`BUG: send key phase ${p} is in use; install the next key into the other phase`);
    }
    this.sendKeys[p].set(key);
    this.hasSendKey[p] = true;
    this.isSendKeyFresh[p] = true;
  }

  /**
   * Start sealing with the key installed for `phase`: the phase bit flips (or is set, the first time), `seq`
   * restarts at 0, and the previous send key is wiped. Throws unless `phase` holds a fresh (never current) key,
   * which is what guarantees no (key, nonce) pair repeats.
   */
  switchSendKey(phase: number): void {
    const p = checkPhase(phase);
    if (!this.hasSendKey[p] || !this.isSendKeyFresh[p]) {
      throw new Error(`BUG: no fresh send key in phase ${p}; installSendKey first`);
    }
    const old = this.phase;
    if (old !== p) {
      sodium.sodium_memzero(this.sendKeys[old]);
      this.hasSendKey[old] = false;
      this.isSendKeyFresh[old] = false;
    }
    this.isSendKeyFresh[p] = false;
    this.phase = p;
    this.seq = 0;
  }

  /** Accept datagrams with `phase` under `key` (32 bytes, copied) from now on, with a fresh replay window. */
  installReceiveKey(phase: number, key: Uint8Array): void {
    const p = checkPhase(phase);
    checkKey(key);
    this.receiveKeys[p].set(key);
    const window = this.windows[p];
    if (window === null) this.windows[p] = new ReplayWindow(this.replayWindowSize);
    else window.reset();
    this.hasReceiveKeyFlag[p] = true;
  }

  /** Wipe the receive key for `phase`; its datagrams open as `NoKey` afterwards. Idempotent. */
  dropReceiveKey(phase: number): void {
    const p = checkPhase(phase);
    sodium.sodium_memzero(this.receiveKeys[p]);
    this.hasReceiveKeyFlag[p] = false;
  }

  /** True when datagrams with `phase` can be opened. */
  hasReceiveKey(phase: number): boolean {
    return this.hasReceiveKeyFlag[checkPhase(phase)]!;
  }

  /** Wipe every key; seal returns `NoKey` and open `NoKey` afterwards. Idempotent. */
  destroy(): void {
    sodium.sodium_memzero(this.keyMemory);
    this.hasSendKey.fill(false);
    this.isSendKeyFresh.fill(false);
    this.hasReceiveKeyFlag.fill(false);
  }
}

function checkPhase(phase: number): 0 | 1 {
  if (phase !== 0 && phase !== 1) throw new RangeError(`key phase ${phase} is not 0 or 1`);
  return phase;
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== AEAD_KEY_BYTES) {
    throw new RangeError(`data key must be ${AEAD_KEY_BYTES} bytes, got ${key?.length}`);
  }
}
