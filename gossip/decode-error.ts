/**
 * The one error kind for untrusted input that does not decode: garbage, truncated, oversized, out-of-range fields.
 * Codecs throw it; the mesh catches it at the connection boundary, counts it, logs once and closes that connection
 * (or, for a gossip payload, drops the message). Gossipers in other folders throw it too (see channel.ts).
 */
export class DecodeError extends Error {
  readonly code = 'ERR_DECODE';
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}
