/**
 * The one base of weft's expected failures. Every error class weft throws on purpose derives from `WeftError`, so a
 * caller (the API, the CLI, the Docker plugin, the mesh) tells them apart by class, never by string:
 *
 * - `code`: stable, matched by the API's clients (the CLI, the CNI plugin, scripts). Codes are part of the API and do
 *   not change once released (which is why their prefixes are mixed: `ERR_...` and older bare ones).
 * - `status`: the HTTP status the API answers with when the error reaches it. The class says it once; the API reads
 *   it (api/server.ts), so a wrong status is fixed in one place. The meanings:
 *
 *   | status | meaning | examples |
 *   |---|---|---|
 *   | 400 | the request is malformed or names something impossible: fix it and retry | an address that is not one, a bad target form |
 *   | 404 | the thing named does not exist | a network namespace, a container |
 *   | 409 | it conflicts with the state: something else holds it, or the router is set up otherwise | an address held elsewhere, an interface already there, IPAM off |
 *   | 503 | not now: waiting (consensus, an owner out of reach) or stopping may change the answer | IPAM not ready, no free address |
 *   | 500 | weft or the host failed (a command, a device, a socket) | `ip` failed, a TAP that will not open |
 *
 * Errors that never reach the API (handshakes, decoding gossip) keep the default, 400, which says "the other side
 * sent something wrong"; only the mesh sees them.
 *
 * No imports: every folder may use this file, the CLI and the CNI plugin included.
 */
export abstract class WeftError extends Error {
  /** Stable machine-readable code (`ERR_IPAM_CONFLICT`, `TARGET_NOT_FOUND`, ...). */
  abstract readonly code: string;
  /** The HTTP status the API answers with (see the table above). */
  readonly status: number = 400;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Whether `err` is one of weft's expected failures. */
export function isWeftError(err: unknown): err is WeftError {
  return err instanceof WeftError;
}
