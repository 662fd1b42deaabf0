/**
 * The router's identity: a stable peer name (generated once, kept in the state dir as `peer-name`) and a per-launch
 * uid. Two routers on one machine in different namespaces have different state dirs, hence different names. With a
 * password, also its identity key (crypto/identity.ts), kept in `--identity-file` (default `<state dir>/identity`).
 */
import { randomBytes } from 'node:crypto';
import type { Store } from '../runtime/store.js';
import { isPeerName, parsePeerName, randomPeerName } from '../gossip/peer-name.js';
import { WeftError } from '../runtime/errors.js';

export class IdentityError extends WeftError {
  readonly code = 'ERR_IDENTITY';
  override readonly status = 500;
}

/** The stored peer name, or a new one written to the store. A corrupt file is an error, not silently replaced. */
export function loadOrCreatePeerName(store: Store): string {
  const stored = store.read('peer-name')?.toString().trim();
  if (stored !== undefined) {
    if (!isPeerName(stored)) {
      throw new IdentityError(
        `the peer-name file in the state dir holds ${JSON.stringify(stored.slice(0, 40))}, not a peer name; remove it to get a new name`,
      );
    }
    return parsePeerName(stored);
  }
  const name = randomPeerName();
  store.write('peer-name', `${name}\n`);
  return name;
}

/** A random 64-bit uid for this launch, as a decimal string. */
export function newLaunchUid(): string {
  return randomBytes(8).readBigUInt64BE().toString();
}
