/**
 * The router's identity: a stable peer name (generated once, kept in the state dir as `peer-name`) and a per-launch
 * uid. Two routers on one machine in different namespaces have different state dirs, hence different names.
 */
import { randomBytes } from 'node:crypto';
import type { Store } from '../runtime/store.js';

const NAME_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A random 48-bit peer name, MAC-formatted, locally administered, unicast (as Weave's). */
export function newPeerName(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export class IdentityError extends Error {
  readonly code = 'ERR_IDENTITY';
}

/** The stored peer name, or a new one written to the store. A corrupt file is an error, not silently replaced. */
export function loadOrCreatePeerName(store: Store): string {
  const stored = store.read('peer-name')?.toString().trim();
  if (stored !== undefined) {
    if (!NAME_RE.test(stored)) {
      throw new IdentityError(`the peer-name file in the state dir holds ${JSON.stringify(stored.slice(0, 40))}, not a peer name; remove it to get a new name`);
    }
    return stored;
  }
  const name = newPeerName();
  store.write('peer-name', `${name}\n`);
  return name;
}

/** A random 64-bit uid for this launch, as a decimal string. */
export function newLaunchUid(): string {
  return randomBytes(8).readBigUInt64BE().toString();
}
