/**
 * The one error kind for untrusted input that does not decode: garbage, truncated, oversized, out-of-range fields.
 * Codecs throw it; the mesh catches it at the connection boundary, counts it, logs once and closes that connection
 * (or, for a gossip payload, drops the message). Gossipers in other folders throw it too (see channel.ts).
 */
import { WeftError } from '../runtime/errors.js';
export class DecodeError extends WeftError {
  readonly code = 'ERR_DECODE';
}
