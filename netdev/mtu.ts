/**
 * MTUs: what the underlay carries, and what is left for container frames once the sleeve has wrapped them.
 *
 * A frame too big for the overlay MTU would need IP fragmentation of our UDP datagrams, which many networks drop
 * silently; so the bridge and every container interface get `overlayMtu(underlayMtu(), sleeveOverheadBytes())`.
 */
import { ipJson, type IpLink, type NetdevOptions } from './command.js';
import { NetdevCommandError, NoRouteError } from './errors.js';
import { checkAddress, checkMtu, checkNetnsOption } from './validation.js';

/** The smallest MTU IPv4 guarantees (RFC 791: 68); an overlay below it cannot carry IP at all. */
const MIN_OVERLAY_MTU_BYTES = 68;

export interface UnderlayMtuOptions extends NetdevOptions {
  /** Take the MTU of the route to this address (a peer) instead of the default route. */
  to?: string;
}

/** The terms of the sleeve overhead; each has the default `sleeveOverheadBytes` uses. */
export interface SleeveOverheadTerms {
  /** Outer IP header: 20 for IPv4 without options (use 40 for an IPv6 underlay). @default 20 */
  ipHeaderBytes?: number;
  /** Outer UDP header. @default 8 */
  udpHeaderBytes?: number;
  /** Sleeve datagram header in clear: peer identifiers, key phase and sequence number. @default 16 */
  sleeveHeaderBytes?: number;
  /** Authentication tag that sealing appends (Poly1305). @default 16 */
  authTagBytes?: number;
  /**
   * The inner frame's Ethernet header (two MACs and an EtherType): the MTU counts the IP packet, the sleeve carries
   * the whole frame. @default 14
   */
  innerEthernetBytes?: number;
  /**
   * The per-frame record header inside a datagram: frame length and source/destination peer, as Weave's sleeve
   * (2 + 6 + 6). @default 14
   */
  frameRecordBytes?: number;
}

/**
 * Bytes the sleeve adds around one frame's IP packet: outer IP + UDP + sleeve header + tag + inner Ethernet + frame
 * record = 20 + 8 + 16 + 16 + 14 + 14 = 88 with the defaults. The router passes its real sizes when its format
 * differs; any term may be overridden.
 */
export function sleeveOverheadBytes(terms: SleeveOverheadTerms = {}): number {
  const parts = [
    terms.ipHeaderBytes ?? 20,
    terms.udpHeaderBytes ?? 8,
    terms.sleeveHeaderBytes ?? 16,
    terms.authTagBytes ?? 16,
    terms.innerEthernetBytes ?? 14,
    terms.frameRecordBytes ?? 14,
  ];
  for (const p of parts) {
    if (!Number.isInteger(p) || p < 0) throw new RangeError(`sleeve overhead terms must be integers >= 0, got ${p}`);
  }
  return parts.reduce((a, b) => a + b, 0);
}

/**
 * The MTU for the bridge and container interfaces: `underlayMtuBytes - overheadBytes`. Throws `RangeError` if the
 * result is below 68 (IPv4's minimum), which means the underlay MTU is wrong rather than small.
 * @param overheadBytes @default sleeveOverheadBytes() (88)
 */
export function overlayMtu(underlayMtuBytes: number, overheadBytes: number = sleeveOverheadBytes()): number {
  checkMtu(underlayMtuBytes, 'underlayMtuBytes');
  if (!Number.isInteger(overheadBytes) || overheadBytes < 0) {
    throw new RangeError(`overheadBytes must be an integer >= 0, got ${overheadBytes}`);
  }
  const mtu = underlayMtuBytes - overheadBytes;
  if (mtu < MIN_OVERLAY_MTU_BYTES) {
    throw new RangeError(
      `underlay MTU ${underlayMtuBytes} minus ${overheadBytes} bytes of overhead leaves ${mtu}, below the IPv4 minimum of 68`,
    );
  }
  return mtu;
}

interface IpRoute {
  dst: string;
  dev?: string;
  metrics?: Array<{ mtu?: number }>;
}

/**
 * The underlay MTU: the MTU of the device the default route leaves by (IPv4, then IPv6), or with `to` of the route
 * to that address (`ip -j route get`), lowered to the route's own `mtu` metric if it has one. Rejects with
 * `NoRouteError` when there is no such route, `NetdevCommandError` when `ip` fails otherwise.
 */
export async function underlayMtu(options: UnderlayMtuOptions = {}): Promise<number> {
  const { netns } = options;
  checkNetnsOption(netns);
  let route: IpRoute | undefined;
  let destination = 'default';
  if (options.to !== undefined) {
    destination = checkAddress(options.to, 'to');
    try {
      route = (await ipJson<IpRoute>(destination, ['route', 'get', destination], netns))[0];
    } catch (err) {
      if (err instanceof NetdevCommandError && /unreachable|No route/i.test(err.stderr)) throw new NoRouteError(destination);
      throw err;
    }
  } else {
    route = (await ipJson<IpRoute>('default route', ['-4', 'route', 'show', 'default'], netns))[0];
    route ??= (await ipJson<IpRoute>('default route', ['-6', 'route', 'show', 'default'], netns))[0];
  }
  if (!route?.dev) throw new NoRouteError(destination);
  const link = (await ipJson<IpLink>(route.dev, ['link', 'show', 'dev', route.dev], netns))[0];
  if (!link) throw new NoRouteError(destination);
  const routeMtu = route.metrics?.find((m) => m.mtu !== undefined)?.mtu;
  return routeMtu !== undefined ? Math.min(routeMtu, link.mtu) : link.mtu;
}
