/**
 * Which data ciphers this router offers, and which code computes them.
 *
 *   - ChaCha20-Poly1305, always: the native addon's (OpenSSL inside Node, with AVX-512 code) when it is there and
 *     agrees byte for byte with libsodium's, else libsodium's through sodium-native. Both compute the same function,
 *     so that choice is local.
 *   - AEGIS-256, when the addon runs it on this CPU (AES instructions) and it passes its known-answer tests
 *     (crypto/aegis256.ts). Offered in every hello; a connection uses it when the remote offers it too.
 *
 * `WEFT_DATA_AEAD=chacha` offers ChaCha20-Poly1305 only; `WEFT_DATA_AEAD=sodium` also computes it with libsodium
 * (to compare implementations in a benchmark, or to rule the native code out).
 */
import { checkAegis256 } from '../crypto/aegis256.js';
import { BufferViews } from '../crypto/buffer-views.js';
import { AEGIS256_NONCE_BYTES, DATA_CIPHER_NAMES, DATA_NONCE_BYTES, crossCheckDataAead, sodiumDataAead, type DataAead } from '../crypto/data-aead.js';
import type { WeftNative } from '../native/addon.js';
import type { Logger } from '../runtime/logger.js';

/** The addon's ChaCha20-Poly1305 as a `DataAead` (its functions take exactly the `DataAead` arguments). */
export function nativeDataAead(native: WeftNative): DataAead {
  return { name: 'openssl', cipher: 'chacha20-poly1305', nonceBytes: DATA_NONCE_BYTES, seal: native.aeadSeal, open: native.aeadOpen };
}

/** The addon's AEGIS-256 as a `DataAead`. */
export function nativeAegis256(native: WeftNative): DataAead {
  return { name: 'aes-ni', cipher: 'aegis-256', nonceBytes: AEGIS256_NONCE_BYTES, seal: native.aegis256Seal, open: native.aegis256Open };
}

export interface DataAeads {
  /** ChaCha20-Poly1305: every router has it. */
  chacha: DataAead;
  /** AEGIS-256 when this router offers it. */
  aegis256?: DataAead;
}

/** What `weft status` says of the data ciphers, e.g. 'AEGIS-256 (aes-ni) or ChaCha20-Poly1305 (openssl)'. */
export function describeDataAeads(aeads: DataAeads): string {
  const one = (a: DataAead): string => `${DATA_CIPHER_NAMES[a.cipher]} (${a.name})`;
  return aeads.aegis256 ? `${one(aeads.aegis256)} or ${one(aeads.chacha)}` : one(aeads.chacha);
}

/**
 * Pick the data AEADs. `native`: the loaded addon, or undefined when the data path is off (then libsodium's
 * ChaCha20-Poly1305 only). Logs the choice, and why native code was passed over when it was.
 */
export function pickDataAeads(native: WeftNative | undefined, log: Logger, env: NodeJS.ProcessEnv = process.env): DataAeads {
  const chacha = pickChacha(native, log, env);
  const aegis256 = pickAegis256(native, log, env);
  const aeads = aegis256 ? { chacha, aegis256 } : { chacha };
  log.info({ ciphers: describeDataAeads(aeads) }, `data encryption: ${describeDataAeads(aeads)}`);
  return aeads;
}

function pickChacha(native: WeftNative | undefined, log: Logger, env: NodeJS.ProcessEnv): DataAead {
  const sodium = sodiumDataAead(new BufferViews());
  if (env.WEFT_DATA_AEAD === 'sodium' || native === undefined) return sodium;
  const candidate = nativeDataAead(native);
  const problem = crossCheckDataAead(candidate, sodium);
  if (problem !== undefined) {
    log.warn({ problem }, `the native ChaCha20-Poly1305 failed its check against libsodium (${problem}): using libsodium`);
    return sodium;
  }
  return candidate;
}

function pickAegis256(native: WeftNative | undefined, log: Logger, env: NodeJS.ProcessEnv): DataAead | undefined {
  if (env.WEFT_DATA_AEAD === 'sodium' || env.WEFT_DATA_AEAD === 'chacha' || native === undefined) return undefined;
  if (!native.aegis256Supported()) {
    log.info('AEGIS-256 not offered: this CPU has no AES instructions (or this is not x86-64)');
    return undefined;
  }
  const candidate = nativeAegis256(native);
  const problem = checkAegis256(candidate);
  if (problem !== undefined) {
    log.warn({ problem }, `AEGIS-256 failed its known-answer tests (${problem}): not offering it`);
    return undefined;
  }
  return candidate;
}
