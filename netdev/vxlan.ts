/**
 * The kernel VXLAN devices of fastdp (see docs/fastdp.md) and their forwarding entries, through `ip` and `bridge`.
 * Mechanism only: which peers get entries is the router's decision (router/fastdp.ts); this file knows addresses,
 * MACs and device names, never peers.
 *
 * Two devices share one UDP port (the kernel opens one socket and tells them apart by VNI):
 *   - the data device, a port of the weft bridge, `nolearning` (its entries are the router's), `isolated` so it never
 *     forwards to or from the other isolated port, the sleeve's TAP: a frame never loops between the two carriers;
 *   - the heartbeat device, not on the bridge, with one IPv6 link-local address, over which the routers exchange
 *     heartbeats of the path's MTU: what it proves about UDP between two hosts holds for the data device too.
 */
import { isIPv4 } from 'node:net';
import { ip, isAlreadyExists, isNoSuchDevice, runCommand, type NetdevOptions } from './command.js';
import { checkIfname, checkMac, checkMtu, checkNetnsOption } from './validation.js';
import { NetdevCommandError } from './errors.js';

/** The all-zeros MAC: a VXLAN forwarding entry for broadcast and unknown unicast (flooded to every such entry). */
export const FLOOD_MAC = '00:00:00:00:00:00';

export interface VxlanOptions extends NetdevOptions {
  name: string;
  /** VXLAN network identifier (24 bits). */
  vni: number;
  /** UDP port, local and remote. */
  port: number;
  mtuBytes: number;
  /** Make it an isolated port of this bridge. */
  bridge?: string;
  /** Set the outer IPv4 header's don't-fragment bit (heartbeats must not pass by being fragmented). @default false */
  isDontFragment?: boolean;
  /** Its MAC. @default the kernel's random one */
  mac?: string;
  /** One IPv6 link-local address ("fe80::1:2:3"), with no other address generated. @default none */
  linkLocal?: string;
}

/**
 * Create a VXLAN device (deleting a leftover of that name first: a daemon that crashed leaves its devices, and their
 * entries name peers that may be gone), configure it and bring it up.
 */
export async function createVxlan(options: VxlanOptions): Promise<void> {
  const name = checkIfname(options.name, 'vxlan');
  const { netns } = options;
  checkNetnsOption(netns);
  checkMtu(options.mtuBytes);
  if (!Number.isInteger(options.vni) || options.vni < 1 || options.vni > 0xffffff) throw new RangeError(`vni ${options.vni}: 1..16777215`);
  if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) throw new RangeError(`port ${options.port}: 1..65535`);
  await deleteVxlan(name, { netns });
  const args = ['link', 'add', 'name', name, 'type', 'vxlan', 'id', String(options.vni), 'dstport', String(options.port), 'nolearning'];
  if (options.isDontFragment === true) args.push('df', 'set');
  try {
    await ip(name, args, netns);
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
    throw new NetdevCommandError(name, args.join(' '), 'created by someone else meanwhile', null);
  }
  await ip(name, ['link', 'set', 'dev', name, 'mtu', String(options.mtuBytes)], netns);
  if (options.mac !== undefined) await ip(name, ['link', 'set', 'dev', name, 'address', checkMac(options.mac)], netns);
  if (options.linkLocal !== undefined) {
    await ip(name, ['link', 'set', 'dev', name, 'addrgenmode', 'none'], netns);
    await ip(name, ['-6', 'addr', 'add', `${options.linkLocal}/64`, 'dev', name, 'nodad'], netns);
  }
  if (options.bridge !== undefined) {
    await ip(name, ['link', 'set', 'dev', name, 'master', checkIfname(options.bridge, 'bridge')], netns);
    await setPortIsolated(name, true, { netns });
  }
  await ip(name, ['link', 'set', 'dev', name, 'up'], netns);
}

/** Delete a device (and with it every forwarding entry on it). No error if it is not there. */
export async function deleteVxlan(name: string, options: NetdevOptions = {}): Promise<void> {
  checkIfname(name, 'vxlan');
  try {
    await ip(name, ['link', 'del', 'dev', name], options.netns);
  } catch (err) {
    if (!isNoSuchDevice(err)) throw err;
  }
}

/**
 * Mark a bridge port isolated (or not): isolated ports forward only to non-isolated ones. The TAP and the VXLAN
 * port are both isolated, so a frame the sleeve delivered never leaves through VXLAN and the other way round.
 */
export async function setPortIsolated(port: string, isIsolated: boolean, options: NetdevOptions = {}): Promise<void> {
  checkIfname(port);
  await bridgeCommand(port, ['link', 'set', 'dev', port, 'isolated', isIsolated ? 'on' : 'off'], options.netns);
}

/** Add (or keep) a VXLAN forwarding entry: frames for `mac` (FLOOD_MAC: broadcast and unknown) go to `address`. */
export async function addVxlanEntry(dev: string, mac: string, address: string, options: NetdevOptions = {}): Promise<void> {
  checkIfname(dev, 'vxlan');
  const args = ['fdb', mac === FLOOD_MAC ? 'append' : 'replace', entryMac(mac), 'dev', dev, 'dst', checkIpv4(address), 'self', 'permanent'];
  try {
    await bridgeCommand(dev, args, options.netns);
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
}

/** Remove a VXLAN forwarding entry; no error if it is not there. */
export async function removeVxlanEntry(dev: string, mac: string, address: string, options: NetdevOptions = {}): Promise<void> {
  checkIfname(dev, 'vxlan');
  try {
    await bridgeCommand(dev, ['fdb', 'del', entryMac(mac), 'dev', dev, 'dst', checkIpv4(address), 'self'], options.netns);
  } catch (err) {
    if (!(err instanceof NetdevCommandError && /No such file|not found|Cannot find/i.test(err.stderr)) && !isNoSuchDevice(err)) throw err;
  }
}

/** A permanent IPv6 neighbour entry: `address` on `dev` is at `mac` (no neighbour discovery across the VXLAN). */
export async function setNeighbour(dev: string, address: string, mac: string, options: NetdevOptions = {}): Promise<void> {
  checkIfname(dev);
  await ip(dev, ['-6', 'neigh', 'replace', address, 'lladdr', checkMac(mac), 'dev', dev, 'nud', 'permanent'], options.netns);
}

/** Remove a neighbour entry; no error if it is not there. */
export async function removeNeighbour(dev: string, address: string, options: NetdevOptions = {}): Promise<void> {
  checkIfname(dev);
  try {
    await ip(dev, ['-6', 'neigh', 'del', address, 'dev', dev], options.netns);
  } catch (err) {
    if (!(err instanceof NetdevCommandError && /No such file|Cannot find|RTNETLINK answers/i.test(err.stderr))) throw err;
  }
}

/**
 * Forget every MAC the bridge learned on `port`: frames for them are flooded (and so reach the right carrier) until
 * they are learned again. Used when a peer moves between the sleeve and fastdp.
 */
export async function flushLearned(port: string, options: NetdevOptions = {}): Promise<void> {
  checkIfname(port);
  await ip(port, ['link', 'set', 'dev', port, 'type', 'bridge_slave', 'fdb_flush'], options.netns);
}

/** A unicast MAC, or the all-zeros flood MAC. */
function entryMac(mac: string): string {
  return mac === FLOOD_MAC ? mac : checkMac(mac);
}

/**
 * The unicast MACs `bridge` learned (not permanent ones: the ports' own), with the port each was learned on, from
 * `bridge -j fdb show br BRIDGE`.
 */
export async function learnedMacs(bridge: string, options: NetdevOptions = {}): Promise<Array<{ mac: string; port: string }>> {
  checkIfname(bridge, 'bridge');
  const out = await bridgeCommand(bridge, ['-j', 'fdb', 'show', 'br', bridge], options.netns);
  const entries = (out.trim() === '' ? [] : JSON.parse(out)) as Array<{ mac?: string; ifname?: string; master?: string; state?: string }>;
  return entries
    .filter((e) => e.master === bridge && (e.state ?? '') === '' && typeof e.mac === 'string' && typeof e.ifname === 'string')
    .filter((e) => parseInt(e.mac!.slice(0, 2), 16) % 2 === 0)
    .map((e) => ({ mac: e.mac!, port: e.ifname! }));
}

function checkIpv4(address: string): string {
  if (!isIPv4(address)) throw new RangeError(`${JSON.stringify(address)} is not an IPv4 address (fastdp carries IPv4 underlays only)`);
  return address;
}

function bridgeCommand(device: string, args: readonly string[], netns?: string): Promise<string> {
  return runCommand({ device, file: 'bridge', args, ...(netns !== undefined && { netns }) });
}
