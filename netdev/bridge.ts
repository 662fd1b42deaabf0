/**
 * The weft bridge: the Linux bridge every local container's veth plugs into, and where the datapath's capture device
 * (TAP) sits. Created on launch or adopted if it exists (a daemon restart must not cut running containers off).
 */
import { ip, ipJson, isAlreadyExists, isNoSuchDevice, type IpLink, type NetdevOptions } from './command.js';
import { NotABridgeError } from './errors.js';
import { setTxChecksumOffload } from './offload.js';
import { checkIfname, checkMtu, checkNetnsOption } from './validation.js';

/** Weave's bridge is "weave"; ours is "weft". */
export const DEFAULT_BRIDGE_NAME = 'weft';

/**
 * How long the bridge remembers which port a MAC was seen on, in centiseconds (iproute2's unit): 30000 = 300 s, the
 * kernel default, which Weave keeps too. Set explicitly so an adopted bridge someone tuned behaves like a new one.
 */
export const BRIDGE_AGEING_CENTISECONDS = 30_000;

export interface BridgeOptions extends NetdevOptions {
  /** Bridge device name. @default 'weft' */
  name?: string;
  /** MTU of the bridge; every port should match (the overlay MTU, see mtu.ts). */
  mtuBytes: number;
  /**
   * Leave transmit checksum offload (and TSO) on for the bridge's own traffic (`weft expose`): right when the capture
   * carries the kernel's offloads (a TAP with a virtio_net_hdr). Turned on if an earlier run turned it off.
   * @default false (turned off)
   */
  isTxOffloadKept?: boolean;
}

/** The bridge as `ensureBridge` left it. */
export interface BridgeState {
  name: string;
  mtuBytes: number;
  /** Its MAC, pinned (see ensureBridge). */
  mac: string;
  /** True if this call created it, false if it adopted an existing bridge. */
  wasCreated: boolean;
}

/**
 * Create the bridge, or adopt an existing one of that name, and configure it: MTU `mtuBytes`, STP off (a leaf
 * bridge with one uplink has no loop to break, and STP would hold each new port in "listening" for 30 s), ageing
 * as the kernel/Weave default, MAC pinned, transmit checksum offload off unless `isTxOffloadKept` (see offload.ts),
 * link up.
 *
 * The MAC is pinned because a bridge whose MAC was never set takes the lowest MAC of its ports and changes it as
 * containers come and go, which leaves stale neighbour entries for the exposed host address.
 *
 * Idempotent and safe to race with itself. Rejects with `NotABridgeError` if a non-bridge device has the name.
 */
export async function ensureBridge(options: BridgeOptions): Promise<BridgeState> {
  const name = checkIfname(options.name ?? DEFAULT_BRIDGE_NAME, 'bridge');
  const mtuBytes = checkMtu(options.mtuBytes);
  const { netns } = options;
  checkNetnsOption(netns);

  let wasCreated = false;
  let link = await findLink(name, netns);
  if (!link) {
    try {
      await ip(
        name,
        ['link', 'add', 'name', name, 'type', 'bridge', 'stp_state', '0', 'ageing_time', String(BRIDGE_AGEING_CENTISECONDS)],
        netns,
      );
      wasCreated = true;
    } catch (err) {
      if (!isAlreadyExists(err)) throw err; // someone created it between our look and our add: adopt it
    }
    link = await findLink(name, netns);
    if (!link) throw new NotABridgeError(name, 'vanished device');
  }
  const kind = link.linkinfo?.info_kind ?? '';
  if (kind !== 'bridge') throw new NotABridgeError(name, kind);

  if (!wasCreated) {
    await ip(
      name,
      ['link', 'set', 'dev', name, 'type', 'bridge', 'stp_state', '0', 'ageing_time', String(BRIDGE_AGEING_CENTISECONDS)],
      netns,
    );
  }
  // Setting the address, even to its current value, marks it NET_ADDR_SET so the kernel stops replacing it.
  const mac = link.address ?? '';
  if (mac) await ip(name, ['link', 'set', 'dev', name, 'address', mac], netns);
  await ip(name, ['link', 'set', 'dev', name, 'mtu', String(mtuBytes)], netns);
  await setTxChecksumOffload(name, options.isTxOffloadKept === true, { netns });
  await ip(name, ['link', 'set', 'dev', name, 'up'], netns);
  return { name, mtuBytes, mac, wasCreated };
}

/**
 * Plug `ifname` into `bridge` and bring it up. Idempotent. Rejects with `NetdevCommandError` if either is missing.
 */
export async function attachToBridge(ifname: string, bridge: string, options: NetdevOptions = {}): Promise<void> {
  checkIfname(ifname);
  checkIfname(bridge, 'bridge');
  checkNetnsOption(options.netns);
  await ip(ifname, ['link', 'set', 'dev', ifname, 'master', bridge], options.netns);
  await ip(ifname, ['link', 'set', 'dev', ifname, 'up'], options.netns);
}

/**
 * Delete the bridge. Its ports are unplugged, not deleted (a container's veth outlives the bridge; `detach` removes
 * it). No error if it does not exist; `NotABridgeError` if the name belongs to another kind of device.
 */
export async function deleteBridge(name: string = DEFAULT_BRIDGE_NAME, options: NetdevOptions = {}): Promise<void> {
  checkIfname(name, 'bridge');
  checkNetnsOption(options.netns);
  const link = await findLink(name, options.netns);
  if (!link) return;
  const kind = link.linkinfo?.info_kind ?? '';
  if (kind !== 'bridge') throw new NotABridgeError(name, kind);
  try {
    await ip(name, ['link', 'del', 'dev', name], options.netns);
  } catch (err) {
    if (!isNoSuchDevice(err)) throw err;
  }
}

/** `ip -d link show dev NAME`, or undefined if there is no such device. */
export async function findLink(name: string, netns?: string): Promise<IpLink | undefined> {
  try {
    const links = await ipJson<IpLink>(name, ['-d', 'link', 'show', 'dev', name], netns);
    return links[0];
  } catch (err) {
    if (isNoSuchDevice(err)) return undefined;
    throw err;
  }
}
