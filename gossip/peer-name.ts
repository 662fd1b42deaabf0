/**
 * Peer names: a 48-bit identifier per router, written like a MAC address ("7a:3b:01:22:c4:9e"), as Weave does. A name
 * is generated once and kept in the state dir, so it survives restarts; the per-launch uid tells incarnations apart.
 *
 * On the wire and in tables a name is a 48-bit number (`peerNameToId`); in logs, JSON and maps it is the canonical
 * lower-case string. Canonical strings are fixed-width, so string order equals numeric order (routes rely on that
 * for deterministic tie-breaks).
 */
import { randomBytes } from 'node:crypto';
import { WeftError } from '../runtime/errors.js';

/** A canonical peer name: six lower-case hex octets joined by ':'. */
export type PeerName = string;

/** A peer name that does not parse; `code` is stable for the API and CLI. */
export class PeerNameError extends WeftError {
  readonly code = 'ERR_PEER_NAME';
  constructor(readonly input: string) {
    super(`${JSON.stringify(input.slice(0, 40))} is not a peer name; expected six hex octets like 7a:3b:01:22:c4:9e`);
  }
}

const NAME_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/**
 * A fresh random name. The locally-administered bit is set and the multicast bit cleared, so a name is also a valid
 * unicast MAC that can never collide with a vendor-assigned one.
 */
export function randomPeerName(): PeerName {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return peerIdToName(b.readUIntBE(0, 6));
}

/** True if `s` is a name in any letter case. */
export function isPeerName(s: string): boolean {
  return NAME_RE.test(s);
}

/** Parse and canonicalise (lower-case). Throws `PeerNameError` on anything else. */
export function parsePeerName(s: string): PeerName {
  if (typeof s !== 'string' || !NAME_RE.test(s)) throw new PeerNameError(String(s));
  return s.toLowerCase();
}

/** The 48-bit number of a name (exact: 2^48 < 2^53). Throws `PeerNameError` if `name` does not parse. */
export function peerNameToId(name: PeerName): number {
  return parseInt(parsePeerName(name).replace(/:/g, ''), 16);
}

/** The canonical name of a 48-bit number. Throws `RangeError` outside [0, 2^48). */
export function peerIdToName(id: number): PeerName {
  if (!Number.isInteger(id) || id < 0 || id >= 2 ** 48) throw new RangeError(`peer id ${id} is not a 48-bit integer`);
  const hex = id.toString(16).padStart(12, '0');
  return hex.replace(/(..)(?!$)/g, '$1:');
}
