/**
 * Builds the data plane's `ForwardingSnapshot` from the control plane's view (routes, neighbours, crypto sessions).
 * Runs on every topology change; the result is applied whole by the datapath.
 *
 * Trusted subnets: a neighbour whose underlay address lies in one gets `session: null` (its datagrams go in clear,
 * for a fast path inside one data centre) while its control connection stays encrypted.
 */
import ipaddr from 'ipaddr.js';
import type { Endpoint } from '../router/underlay.js';
import type { ForwardingSnapshot, PeerId, PeerPath } from '../router/datapath.js';
import type { DataSession } from '../crypto/data-session.js';
import { peerNameToId } from '../gossip/peer-name.js';
import { splitAddress } from '../runtime/address.js';
import { canonicalAddress } from '../router/underlay-address.js';

export interface NeighbourView {
  name: string;
  remoteHost: string;
  udpPort: number;
  /** The pair's data session, or null on an unencrypted network. */
  data: DataSession | null;
  /** During a duplicate connection's grace (gossip/mesh.ts): the other session, whose datagrams open too. */
  graceData?: DataSession | null;
  /** A path punched through NAT (daemon/punch.ts): its session is its own, whatever the trusted subnets say. */
  isPunched?: boolean;
}

export interface ForwardingInputs {
  localName: string;
  unicast: ReadonlyMap<string, string>;
  broadcast: ReadonlyMap<string, readonly string[]>;
  neighbours: readonly NeighbourView[];
  /** Underlay CIDRs whose peers get plaintext data traffic. */
  trustedSubnets: readonly string[];
  underlayMtuBytes: number;
}

/** "7a:3b:01:22:c4:9e" -> 48-bit number. */
export const nameToId: (name: string) => PeerId = peerNameToId;

/** True if `host` (an IP address) lies inside one of `cidrs`. */
export function isTrusted(host: string, cidrs: readonly string[]): boolean {
  if (cidrs.length === 0 || !ipaddr.isValid(host)) return false;
  let addr = ipaddr.parse(host);
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) addr = (addr as ipaddr.IPv6).toIPv4Address();
  return cidrs.some((c) => {
    const [net, bits] = ipaddr.parseCIDR(c);
    return net.kind() === addr.kind() && addr.match([net, bits]);
  });
}

/**
 * A connection as `weft status connections` should show it: one whose remote is in a trusted subnet has its control
 * traffic encrypted but its data in the clear, so it says so instead of naming a data cipher.
 */
export function withTrustedData<
  C extends { address: string; isEncrypted: boolean; info: string; dataCipher?: string; isDataClear?: boolean },
>(c: C, trustedSubnets: readonly string[]): C {
  if (!c.isEncrypted || trustedSubnets.length === 0) return c;
  let host: string;
  try {
    host = splitAddress(c.address).host;
  } catch {
    return c;
  }
  if (!isTrusted(host, trustedSubnets)) return c;
  const { dataCipher: _, ...rest } = c;
  return { ...rest, isDataClear: true, info: c.info.replace(/^encrypted\b/, 'encrypted control, clear data (trusted subnet)') } as C;
}

/**
 * Keeps `Endpoint` objects stable across snapshots (the underlay caches per-endpoint parsing keyed by identity), and
 * builds each snapshot to the side.
 */
export class SnapshotBuilder {
  private endpoints = new Map<string, Endpoint>();

  build(inputs: ForwardingInputs): ForwardingSnapshot {
    const neighbours = new Map<PeerId, PeerPath>();
    const seen = new Set<string>();
    for (const n of inputs.neighbours) {
      const key = `${n.remoteHost}|${n.udpPort}`;
      seen.add(key);
      let endpoint = this.endpoints.get(key);
      if (!endpoint) {
        // The form the underlay reports sources in (dotted IPv4, RFC 5952 IPv6), so the two compare as strings.
        endpoint = Object.freeze({ address: canonicalAddress(n.remoteHost), port: n.udpPort });
        this.endpoints.set(key, endpoint);
      }
      const id = nameToId(n.name);
      const isSealed = n.isPunched === true || !isTrusted(n.remoteHost, inputs.trustedSubnets);
      const session = n.data && isSealed ? n.data : null;
      const graceSession = session !== null && n.graceData ? n.graceData : null;
      neighbours.set(id, Object.freeze(graceSession ? { peer: id, endpoint, session, graceSession } : { peer: id, endpoint, session }));
    }
    for (const key of [...this.endpoints.keys()]) if (!seen.has(key)) this.endpoints.delete(key);

    const unicastNextHop = new Map<PeerId, PeerId>();
    for (const [dst, via] of inputs.unicast) unicastNextHop.set(nameToId(dst), nameToId(via));
    const broadcastNextHops = new Map<PeerId, readonly PeerId[]>();
    for (const [src, hops] of inputs.broadcast) broadcastNextHops.set(nameToId(src), Object.freeze(hops.map(nameToId)));

    return Object.freeze({
      localPeer: nameToId(inputs.localName),
      neighbours,
      unicastNextHop,
      broadcastNextHops,
      underlayMtuBytes: inputs.underlayMtuBytes,
    });
  }
}
