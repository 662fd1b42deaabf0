/**
 * Sealing for control messages on an established connection: XChaCha20-Poly1305 with one key per direction and an
 * implicit per-direction counter as the nonce. The control connection (WebSocket over TCP) is reliable and ordered,
 * so the counter is not sent: a replayed, reordered, dropped or forged message fails authentication at the receiver.
 *
 * Sealed message: ciphertext (same length as the message) followed by the 16-byte tag.
 *
 * Nonce (24 bytes): byte 0 = 0x80 | direction (0x81 from initiator, 0x82 from responder), bytes 8..15 = counter,
 * u64 big-endian, the rest zero. The 0x80 bit keeps control nonces apart from data nonces even under one key.
 */
import sodium from 'sodium-native';
import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES, detachedAead } from './sodium-aead.js';
import { DIRECTION_FROM_INITIATOR, DIRECTION_FROM_RESPONDER } from './aead-data-session.js';

const CONTROL_BIT = 0x80;

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Per-direction sealing of one connection's control messages (see the top of this file). Not for the data plane. */
export class ControlCipher {
  private readonly sendKey: Buffer;
  private readonly receiveKey: Buffer;
  private readonly sendNonce = Buffer.alloc(AEAD_NONCE_BYTES);
  private readonly receiveNonce = Buffer.alloc(AEAD_NONCE_BYTES);
  private sendCounter = 0;
  private receiveCounter = 0;
  private isDestroyed = false;

  /** Keys are copied; the caller may wipe its own. */
  constructor(sendKey: Uint8Array, receiveKey: Uint8Array, isInitiator: boolean) {
    this.sendKey = sodium.sodium_malloc(sendKey.length);
    this.sendKey.set(sendKey);
    this.receiveKey = sodium.sodium_malloc(receiveKey.length);
    this.receiveKey.set(receiveKey);
    this.sendNonce[0] = CONTROL_BIT | (isInitiator ? DIRECTION_FROM_INITIATOR : DIRECTION_FROM_RESPONDER);
    this.receiveNonce[0] = CONTROL_BIT | (isInitiator ? DIRECTION_FROM_RESPONDER : DIRECTION_FROM_INITIATOR);
  }

  /** Seal the next message. Returns a new buffer of `message.length + 16` bytes. Throws after `destroy`. */
  seal(message: Uint8Array): Buffer {
    if (this.isDestroyed) throw new Error('control cipher used after destroy');
    const out = Buffer.alloc(message.length + AEAD_TAG_BYTES);
    out.set(message);
    const body = out.subarray(0, message.length);
    setCounter(this.sendNonce, this.sendCounter++);
    detachedAead.encrypt(body, out.subarray(message.length), body, null, this.sendNonce, this.sendKey);
    return out;
  }

  /** Open the next message; null (and no state change) if it is not exactly the next one the peer sealed. */
  open(sealed: Uint8Array): Buffer | null {
    if (this.isDestroyed || sealed.length < AEAD_TAG_BYTES) return null;
    const input = asBuffer(sealed);
    const length = input.length - AEAD_TAG_BYTES;
    const out = Buffer.alloc(length);
    setCounter(this.receiveNonce, this.receiveCounter);
    const status = detachedAead.decrypt(out, input.subarray(0, length), input.subarray(length), null, this.receiveNonce, this.receiveKey);
    if (status !== 0) return null;
    this.receiveCounter++;
    return out;
  }

  /** Wipe both keys. Idempotent. */
  destroy(): void {
    sodium.sodium_memzero(this.sendKey);
    sodium.sodium_memzero(this.receiveKey);
    this.isDestroyed = true;
  }
}

function setCounter(nonce: Buffer, counter: number): void {
  if (counter >= Number.MAX_SAFE_INTEGER) throw new Error('BUG: control counter exhausted');
  nonce.writeUInt32BE(Math.floor(counter / 0x1_0000_0000), 8);
  nonce.writeUInt32BE(counter >>> 0, 12);
}
