/**
 * Which data ciphers this router offers, and which code computes them.
 *
 *   - ChaCha20-Poly1305, always: the native addon's (OpenSSL inside Node, with AVX-512 code) when it is there and
 *     agrees byte for byte with libsodium's, else libsodium's through sodium-native. Both compute the same function,
 *     so that choice is local.
 *   - AEGIS-256X2, when the addon runs it on this CPU (AES instructions, 256-bit VAES when there) and it passes its
 *     known-answer tests (crypto/aegis256x2.ts). Offered in every hello; a connection uses it when the remote offers
 *     it too.
 *
 * `WEFT_DATA_AEAD=chacha` offers ChaCha20-Poly1305 only; `WEFT_DATA_AEAD=sodium` also computes it with libsodium
 * (to compare implementations in a benchmark, or to rule the native code out).
 */
import { checkAegis256x2 } from '../crypto/aegis256x2.js';
import { BufferViews } from '../crypto/buffer-views.js';
import {
  AEGIS256_NONCE_BYTES,
  DATA_CIPHER_NAMES,
  DATA_NONCE_BYTES,
  crossCheckDataAead,
  sodiumDataAead,
  type DataAead,
} from '../crypto/data-aead.js';
import type { WeftNative } from '../native/addon.js';
import type { Logger } from '../runtime/logger.js';

/** The addon's ChaCha20-Poly1305 as a `DataAead` (its functions take exactly the `DataAead` arguments). */
export function nativeDataAead(native: WeftNative): DataAead {
  return {
    name: 'openssl',
    cipher: 'chacha20-poly1305',
    nonceBytes: DATA_NONCE_BYTES,
    seal: native.aeadSeal,
    open: native.aeadOpen,
    sealRun: native.aeadSealRun,
    openRun: native.aeadOpenRun,
  };
}

/** The addon's AEGIS-256X2 as a `DataAead`, named after the instructions that compute it ('vaes' or 'aes-ni'). */
export function nativeAegis256x2(native: WeftNative): DataAead {
  return {
    name: native.aegis256x2Implementation() || 'unsupported',
    cipher: 'aegis-256x2',
    nonceBytes: AEGIS256_NONCE_BYTES,
    seal: native.aegis256x2Seal,
    open: native.aegis256x2Open,
    sealRun: native.aegis256x2SealRun,
    openRun: native.aegis256x2OpenRun,
  };
}

export interface DataAeads {
  /** ChaCha20-Poly1305: every router has it. */
  chacha: DataAead;
  /** AEGIS-256X2 when this router offers it. */
  aegis256x2?: DataAead;
}

/** What `weft status` says of the data ciphers, e.g. 'AEGIS-256X2 (vaes) or ChaCha20-Poly1305 (openssl)'. */
export function describeDataAeads(aeads: DataAeads): string {
  const one = (a: DataAead): string => `${DATA_CIPHER_NAMES[a.cipher]} (${a.name})`;
  return aeads.aegis256x2 ? `${one(aeads.aegis256x2)} or ${one(aeads.chacha)}` : one(aeads.chacha);
}

/**
 * Pick the data AEADs. `native`: the loaded addon, or undefined when the data path is off (then libsodium's
 * ChaCha20-Poly1305 only). Logs the choice, and why native code was passed over when it was.
 */
export function pickDataAeads(native: WeftNative | undefined, log: Logger, env: NodeJS.ProcessEnv = process.env): DataAeads {
  const chacha = pickChacha(native, log, env);
  const aegis256x2 = pickAegis256x2(native, log, env);
  const aeads = aegis256x2 ? { chacha, aegis256x2 } : { chacha };
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

function pickAegis256x2(native: WeftNative | undefined, log: Logger, env: NodeJS.ProcessEnv): DataAead | undefined {
  if (env.WEFT_DATA_AEAD === 'sodium' || env.WEFT_DATA_AEAD === 'chacha' || native === undefined) return undefined;
  if (native.aegis256x2Implementation() === '') {
    log.info('AEGIS-256X2 not offered: this CPU has no AES instructions (or this is not x86-64)');
    return undefined;
  }
  const candidate = nativeAegis256x2(native);
  const problem = checkAegis256x2(candidate);
  if (problem !== undefined) {
    log.warn({ problem }, `AEGIS-256X2 failed its known-answer tests (${problem}): not offering it`);
    return undefined;
  }
  return candidate;
}
