/**
 * Rekey messages: a fresh X25519 exchange for the data keys, carried on the established control connection.
 * The connection layer seals them with `SecureSession.seal` like every control message and hands what
 * `SecureSession.open` returns to `onRekeyMessage`; they are never sent in the clear.
 *
 *   OFFER, ANSWER (37 bytes)                       DONE (5 bytes)
 *    0      1 .. 4          5 .. 36                 0      1 .. 4
 *   +------+---------------+------------------+   +------+---------------+
 *   | type | epoch u32 BE  | X25519 public key|   | type | epoch u32 BE  |
 *   +------+---------------+------------------+   +------+---------------+
 *   type: 1 OFFER, 2 ANSWER, 3 DONE. epoch: the key epoch being introduced (the handshake's keys are epoch 0).
 */
import { HandshakeError } from './errors.js';
import { KEY_BYTES } from './kdf.js';

export const RekeyType = { Offer: 1, Answer: 2, Done: 3 } as const;
export type RekeyType = (typeof RekeyType)[keyof typeof RekeyType];

export type RekeyMessage =
  | { type: typeof RekeyType.Offer | typeof RekeyType.Answer; epoch: number; publicKey: Buffer }
  | { type: typeof RekeyType.Done; epoch: number };

const KEYED_BYTES = 1 + 4 + KEY_BYTES;
const DONE_BYTES = 1 + 4;

export function encodeRekeyMessage(m: RekeyMessage): Buffer {
  if (!Number.isInteger(m.epoch) || m.epoch < 0 || m.epoch >= 2 ** 32) throw new RangeError(`epoch ${m.epoch} is not a u32`);
  if (m.type === RekeyType.Done) {
    const b = Buffer.alloc(DONE_BYTES);
    b[0] = m.type;
    b.writeUInt32BE(m.epoch, 1);
    return b;
  }
  if (m.publicKey.length !== KEY_BYTES) throw new RangeError(`public key must be ${KEY_BYTES} bytes`);
  const b = Buffer.alloc(KEYED_BYTES);
  b[0] = m.type;
  b.writeUInt32BE(m.epoch, 1);
  b.set(m.publicKey, 5);
  return b;
}

/** Decode with exact lengths. Throws `HandshakeError` on anything else (the caller closes the connection). */
export function decodeRekeyMessage(bytes: Uint8Array): RekeyMessage {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = b[0];
  if ((type === RekeyType.Offer || type === RekeyType.Answer) && b.length === KEYED_BYTES) {
    return { type, epoch: b.readUInt32BE(1), publicKey: Buffer.from(b.subarray(5)) };
  }
  if (type === RekeyType.Done && b.length === DONE_BYTES) return { type, epoch: b.readUInt32BE(1) };
  throw new HandshakeError(`malformed rekey message (type ${type ?? 'none'}, ${b.length} bytes); closing the connection`);
}
