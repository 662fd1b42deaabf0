/** Data sessions for tests that need a sealed link without a handshake. */
import sodium from 'sodium-native';
import { AeadDataSession } from '../../crypto/aead-data-session.js';
import type { DataAead } from '../../crypto/data-aead.js';

/**
 * Two sessions sharing random keys in both directions, as a completed handshake leaves them: [the initiator's, the
 * responder's]. `aead`: the implementation both use (default libsodium's).
 */
export function sealedSessionPair(aead?: DataAead): [AeadDataSession, AeadDataSession] {
  const k1 = Buffer.alloc(32);
  const k2 = Buffer.alloc(32);
  sodium.randombytes_buf(k1);
  sodium.randombytes_buf(k2);
  const a = new AeadDataSession({ isInitiator: true, ...(aead && { aead }) });
  const b = new AeadDataSession({ isInitiator: false, ...(aead && { aead }) });
  a.installSendKey(0, k1);
  a.switchSendKey(0);
  b.installReceiveKey(0, k1);
  b.installSendKey(0, k2);
  b.switchSendKey(0);
  a.installReceiveKey(0, k2);
  return [a, b];
}
