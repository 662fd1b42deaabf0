/**
 * Which code computes the data plane's ChaCha20-Poly1305: the native addon's (OpenSSL inside Node, with AVX-512
 * code) when it is there and agrees byte for byte with libsodium's, else libsodium's through sodium-native. Both
 * compute the same function, so the choice is local: peers need not make the same one.
 *
 * `WEFT_DATA_AEAD=sodium` forces libsodium (to compare the two in a benchmark, or to rule the native code out).
 */
import { BufferViews } from '../crypto/buffer-views.js';
import { crossCheckDataAead, sodiumDataAead, type DataAead } from '../crypto/data-aead.js';
import type { WeftNative } from '../native/addon.js';
import type { Logger } from '../runtime/logger.js';

export const DATA_CIPHER = 'ChaCha20-Poly1305';

/** The addon's AEAD as a `DataAead` (its functions take exactly the `DataAead` arguments). */
export function nativeDataAead(native: WeftNative): DataAead {
  return { name: 'openssl', seal: native.aeadSeal, open: native.aeadOpen };
}

/**
 * Pick the data AEAD. `native`: the loaded addon, or undefined when the data path is off (then libsodium). Logs the
 * choice, and why the native code was passed over when it was.
 */
export function pickDataAead(native: WeftNative | undefined, log: Logger, env: NodeJS.ProcessEnv = process.env): DataAead {
  const sodium = sodiumDataAead(new BufferViews());
  const choose = (aead: DataAead, reason: string): DataAead => {
    log.info({ cipher: DATA_CIPHER, implementation: aead.name }, `data encryption: ${DATA_CIPHER} by ${aead.name} (${reason})`);
    return aead;
  };
  if (env.WEFT_DATA_AEAD === 'sodium') return choose(sodium, 'WEFT_DATA_AEAD=sodium');
  if (native === undefined) return choose(sodium, 'no native addon');
  const candidate = nativeDataAead(native);
  const problem = crossCheckDataAead(candidate, sodium);
  if (problem !== undefined) {
    log.warn({ problem }, `the native ${DATA_CIPHER} failed its check against libsodium (${problem}): using libsodium`);
    return choose(sodium, 'native check failed');
  }
  return choose(candidate, 'checked against libsodium');
}
