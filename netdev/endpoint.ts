/**
 * Endpoints: a container (any network namespace) plugged into the weft bridge by a veth pair, as `weave attach` does.
 *
 *   container netns                 host netns (the daemon's)
 *   ethwe0 (addresses, MAC, MTU) ── vethwl<hash> ── bridge "weft" ── TAP (the datapath)
 *
 * A target is named three ways: an `ip netns` name, a path to a namespace file (/proc/PID/ns/net, /run/netns/X, a
 * bind mount of either), or `pid:1234`. All three are reduced to a path, and every command inside the target runs
 * as `nsenter --net=PATH ...`; the peer moves there with `ip link set dev X netns PATH` (iproute2 treats an argument
 * with a '/' as a namespace file). One mechanism for all three forms, no PID to go stale between two commands.
 *
 * The host-side name derives from the namespace's identity (device and inode of its nsfs file), not from the
 * spelling of the target, so `pid:42`, `/proc/42/ns/net` and a bind mount of it name the same endpoint and a second
 * attach finds the first. The target as given is kept in the host veth's alias (`weft:<target>`), so the kernel
 * holds the registry: no state file to go stale, and the record vanishes with the veth when the container dies.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { globalCidrs, ip, ipJson, isNoSuchDevice, runCommand, type IpAddrLink, type IpLink, type NetdevOptions } from './command.js';
import { attachToBridge, findLink } from './bridge.js';
import { EndpointExistsError, InvalidNetdevInputError, InvalidTargetError, TargetIsHostError, TargetNotFoundError } from './errors.js';
import { disableTxChecksumOffload } from './offload.js';
import type { EndpointReport } from './report.js';
import { checkAddress, checkCidr, checkIfname, checkMac, checkMtu, checkNetnsName, checkNetnsOption } from './validation.js';

/** The interface name inside the container, as Weave's. */
export const DEFAULT_ENDPOINT_IFNAME = 'ethwe0';

/** Host-side veth names: prefix + 8 hex digits = 14 chars (IFNAMSIZ allows 15). 'l' local end, 'g' guest end. */
const HOST_PREFIX = 'vethwl';
const GUEST_PREFIX = 'vethwg';
const ALIAS_PREFIX = 'weft:';
/** The kernel keeps at most 255 bytes of alias; the prefix takes 5. */
const MAX_TARGET_CHARS = 240;
/** IFALIASZ - 1: the longest alias the kernel stores whole. */
const MAX_ALIAS_BYTES = 255;
/**
 * An endpoint made for a container runtime (CNI) records the runtime's container id and interface name before the
 * target: `weft:container=<id>/<ifname> <target>`. Unambiguous, because no plain target starts with `container=`
 * (`ip netns` names have no '=', paths start with '/', PIDs with 'pid:') and neither an id nor an ifname holds '/'
 * or a space.
 */
const CONTAINER_ALIAS_PREFIX = `${ALIAS_PREFIX}container=`;
/** A runtime's container id: CNI's rule (alphanumeric first, then alphanumerics, '_', '.', '-'), at most 128 chars. */
const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export interface AttachOptions extends NetdevOptions {
  /** The bridge to plug the host end into (see ensureBridge). */
  bridge: string;
  /** `ip netns` name, namespace file path, or `pid:PID`. */
  target: string;
  /** Addresses in CIDR form; IPAM requests ('net:default', ...) are resolved by the caller first. May be empty. */
  addresses: string[];
  /** Set this MAC on the container interface (a container moving between hosts keeps its MAC). @default kernel-chosen random */
  mac?: string;
  /** Interface name inside the namespace. @default 'ethwe0' */
  ifname?: string;
  /** MTU of both veth ends: the overlay MTU (mtu.ts). */
  mtuBytes: number;
  /**
   * Leave transmit checksum offload (and with it TSO) on in the container: right when the capture takes offloads
   * (a TAP with a virtio_net_hdr carries partial checksums and super-frames across). @default false (turned off)
   */
  isTxOffloadKept?: boolean;
  /**
   * The runtime's container id (CNI). Recorded with `ifname` in the host veth's alias, so `listEndpoints` shows it
   * and `detachContainer` finds the endpoint without the namespace. With it, attach never re-uses: a namespace that
   * already has a weft endpoint, or an interface named `ifname`, is refused with `EndpointExistsError` (CNI: "if an
   * interface of the requested name already exists in the container, the plugin must return an error").
   * @default none (a plain attach, which re-uses an existing endpoint)
   */
  containerId?: string;
  /**
   * Give the container a default route via this address (the host's address on the bridge in the container's subnet,
   * see expose.ts), so its traffic can leave the overlay through the host. New interfaces only. @default no route
   */
  gateway?: string;
}

/** A target reduced to what the commands need. */
export interface ResolvedTarget {
  target: string;
  /** Path of the namespace file. */
  path: string;
  /** Host-side veth name, 'vethwl' + 8 hex. */
  hostIfname: string;
  /** Name of the container end while it is still in the host namespace, 'vethwg' + 8 hex. */
  guestIfname: string;
}

/**
 * Parse `target` and find its namespace. Rejects with `InvalidTargetError` for a malformed target and
 * `TargetNotFoundError` if the namespace file does not exist (or is not a namespace).
 */
export async function resolveTarget(target: string): Promise<ResolvedTarget> {
  const path = targetPath(target);
  let st;
  try {
    st = await stat(path, { bigint: true });
  } catch {
    throw new TargetNotFoundError(target, path);
  }
  if (!st.isFile()) throw new TargetNotFoundError(target, path); // nsfs files stat as regular files
  const hash = createHash('sha256').update(`${st.dev}:${st.ino}`).digest('hex').slice(0, 8);
  return { target, path, hostIfname: HOST_PREFIX + hash, guestIfname: GUEST_PREFIX + hash };
}

/** The namespace file path for a target, without touching the filesystem. Exported for tests. */
export function targetPath(target: string): string {
  if (typeof target !== 'string' || target.length === 0 || target.length > MAX_TARGET_CHARS) {
    throw new InvalidTargetError(String(target));
  }
  if (target.startsWith('pid:')) {
    const pid = target.slice(4);
    if (!/^[1-9][0-9]{0,9}$/.test(pid)) throw new InvalidTargetError(target);
    return `/proc/${pid}/ns/net`;
  }
  if (target.startsWith('/')) {
    if (target.includes('\0')) throw new InvalidTargetError(target);
    return target;
  }
  try {
    checkNetnsName(target, 'target');
  } catch {
    throw new InvalidTargetError(target);
  }
  return `/run/netns/${target}`;
}

/**
 * Plug `target` into `bridge`: create a veth pair (MTU `mtuBytes` both ends), move one end into the target's
 * namespace, name it `ifname`, set the MAC if given, add `addresses`, bring it up and turn off its transmit checksum
 * offload (see offload.ts); plug the host end into the bridge and bring it up. Resolves the endpoint as the kernel
 * now has it.
 *
 * Attaching a target that is already attached adds any missing addresses and re-plugs the host end; the existing
 * interface keeps its name and MAC. If a step fails, the veth pair is deleted before the error is rethrown, so a
 * failed attach leaves nothing behind. Errors: `InvalidNetdevInputError`, `InvalidTargetError`,
 * `TargetNotFoundError`, `NetdevCommandError` (naming the device and the command), `MissingToolError`.
 */
export async function attach(options: AttachOptions): Promise<EndpointReport> {
  const { netns } = options;
  checkNetnsOption(netns);
  const bridge = checkIfname(options.bridge, 'bridge');
  const ifname = checkIfname(options.ifname ?? DEFAULT_ENDPOINT_IFNAME);
  const mtu = String(checkMtu(options.mtuBytes));
  const mac = options.mac === undefined ? undefined : checkMac(options.mac);
  const gateway = options.gateway === undefined ? undefined : checkAddress(options.gateway, 'gateway');
  const addresses = options.addresses.map((a) => checkCidr(a, 'address'));
  const alias = endpointAlias(options.target, options.containerId === undefined ? undefined : { containerId: options.containerId, ifname });
  const t = await resolveTarget(options.target);
  if (await isSameNamespace(t.path, netns === undefined ? '/proc/self/ns/net' : targetPath(netns))) {
    throw new TargetIsHostError(t.target);
  }

  const existing = await findLink(t.hostIfname, netns);
  if (options.containerId !== undefined) {
    // A runtime's ADD makes a new interface or fails; it never adopts what is there (its DEL would remove it).
    // A host veth whose peer is not in the target is a leftover of a dead namespace whose identity was reused: the
    // plain path below replaces it.
    const isInside = existing?.link_index != null && (await linkInside(t, existing.link_index)) !== undefined;
    if (existing && isInside) {
      const holder = existing.ifalias ? parseEndpointAlias(existing.ifalias) : undefined;
      throw new EndpointExistsError(t.target, ifname, holder?.containerId ?? holder?.target);
    }
    if (await linkExistsInside(t, ifname)) throw new EndpointExistsError(t.target, ifname, undefined);
  }
  if (existing) {
    const peer = existing.link_index == null ? undefined : await linkInside(t, existing.link_index);
    if (peer) {
      const have = new Set(globalCidrs(peer).map((c) => checkCidr(c)));
      for (const a of addresses) {
        if (!have.has(a)) await ip(peer.ifname, ['addr', 'add', a, 'dev', peer.ifname], t.path);
      }
      await ip(peer.ifname, ['link', 'set', 'dev', peer.ifname, 'up'], t.path);
      await attachToBridge(t.hostIfname, bridge, { netns });
      return await endpointOf(t, peer.ifname);
    }
    // Its peer is not in the target: a leftover of an earlier attach whose namespace identity was reused. Replace it.
    await deleteLink(t.hostIfname, netns);
  }

  await ip(
    t.hostIfname,
    ['link', 'add', 'name', t.hostIfname, 'mtu', mtu, 'type', 'veth', 'peer', 'name', t.guestIfname, 'mtu', mtu],
    netns,
  );
  try {
    await ip(t.guestIfname, ['link', 'set', 'dev', t.guestIfname, 'netns', t.path], netns);
    await ip(ifname, ['link', 'set', 'dev', t.guestIfname, 'name', ifname], t.path);
    if (mac !== undefined) await ip(ifname, ['link', 'set', 'dev', ifname, 'address', mac], t.path);
    for (const a of addresses) await ip(ifname, ['addr', 'add', a, 'dev', ifname], t.path);
    await ip(ifname, ['link', 'set', 'dev', ifname, 'up'], t.path);
    if (gateway !== undefined) await ip(ifname, ['route', 'replace', 'default', 'via', gateway, 'dev', ifname], t.path);
    if (options.isTxOffloadKept !== true) await disableTxChecksumOffload(ifname, { netns: t.path });
    await ip(t.hostIfname, ['link', 'set', 'dev', t.hostIfname, 'alias', alias], netns);
    await attachToBridge(t.hostIfname, bridge, { netns });
    return { ...(await endpointOf(t, ifname)), hostInterface: t.hostIfname, ...(gateway !== undefined && { gateway }) };
  } catch (err) {
    // Deleting either end deletes the pair, wherever the other end is by now.
    await deleteLink(t.hostIfname, netns).catch(() => undefined);
    throw err;
  }
}

/**
 * Remove the target's endpoint (its veth pair; the container interface goes with it). Resolves true if one was
 * removed, false if there was none, including when the namespace is already gone (its veth died with it). Rejects
 * with `InvalidTargetError` for a malformed target.
 */
export async function detach(target: string, options: NetdevOptions = {}): Promise<boolean> {
  checkNetnsOption(options.netns);
  targetPath(target); // syntax check first
  let hostIfname: string | undefined;
  try {
    hostIfname = (await resolveTarget(target)).hostIfname;
  } catch (err) {
    if (!(err instanceof TargetNotFoundError)) throw err;
  }
  if (hostIfname === undefined || !(await findLink(hostIfname, options.netns))) {
    // The namespace file is gone (e.g. the process of pid:N exited) but the namespace may live on elsewhere: find
    // the veth by the target recorded in its alias.
    const links = await ipJson<IpLink>('veth', ['link', 'show', 'type', 'veth'], options.netns);
    hostIfname = links.find((l) => l.ifalias !== undefined && parseEndpointAlias(l.ifalias)?.target === target)?.ifname;
    if (hostIfname === undefined) return false;
  }
  return await deleteLink(hostIfname, options.netns);
}

/**
 * Remove the endpoint a runtime made for container `containerId` with interface `ifname` (see
 * `AttachOptions.containerId`), found by the alias of its host veth, so the namespace need not exist any more.
 * Resolves true if one was removed, false if there was none (already removed, or died with its namespace).
 * Throws `InvalidNetdevInputError` for a malformed id or ifname.
 */
export async function detachContainer(containerId: string, ifname: string, options: NetdevOptions = {}): Promise<boolean> {
  checkNetnsOption(options.netns);
  checkContainerId(containerId);
  checkIfname(ifname);
  const prefix = `${CONTAINER_ALIAS_PREFIX}${containerId}/${ifname} `;
  const links = await ipJson<IpLink>('veth', ['link', 'show', 'type', 'veth'], options.netns);
  let isRemoved = false;
  for (const l of links) {
    if (l.ifname.startsWith(HOST_PREFIX) && l.ifalias?.startsWith(prefix))
      isRemoved = (await deleteLink(l.ifname, options.netns)) || isRemoved;
  }
  return isRemoved;
}

/** Throw `InvalidNetdevInputError` unless `id` is a container id as CNI defines it (at most 128 chars here). */
export function checkContainerId(id: string): string {
  if (typeof id !== 'string' || !CONTAINER_ID_RE.test(id)) {
    throw new InvalidNetdevInputError('containerId', id, "1-128 letters, digits, '_', '.', '-', starting with a letter or digit");
  }
  return id;
}

/**
 * The host veth's alias for an endpoint: `weft:<target>`, or `weft:container=<id>/<ifname> <target>` for a
 * runtime's container. Throws `InvalidNetdevInputError` when it would not fit the kernel's 255 bytes.
 */
export function endpointAlias(target: string, container?: { containerId: string; ifname: string }): string {
  targetPath(target);
  if (container === undefined) return ALIAS_PREFIX + target;
  checkContainerId(container.containerId);
  checkIfname(container.ifname);
  const alias = `${CONTAINER_ALIAS_PREFIX}${container.containerId}/${container.ifname} ${target}`;
  if (Buffer.byteLength(alias) > MAX_ALIAS_BYTES) {
    throw new InvalidNetdevInputError(
      'target',
      target,
      `a shorter namespace path: with the container id it must fit ${MAX_ALIAS_BYTES} bytes`,
    );
  }
  return alias;
}

/** The inverse of `endpointAlias`; undefined for an alias weft did not write. */
export function parseEndpointAlias(alias: string): { target: string; containerId?: string; ifname?: string } | undefined {
  if (alias.startsWith(CONTAINER_ALIAS_PREFIX)) {
    const rest = alias.slice(CONTAINER_ALIAS_PREFIX.length);
    const space = rest.indexOf(' ');
    const slash = rest.indexOf('/');
    if (space < 0 || slash < 0 || slash > space) return undefined;
    const containerId = rest.slice(0, slash);
    const ifname = rest.slice(slash + 1, space);
    const target = rest.slice(space + 1);
    if (!CONTAINER_ID_RE.test(containerId) || target.length === 0) return undefined;
    return { target, containerId, ifname };
  }
  if (alias.startsWith(ALIAS_PREFIX) && alias.length > ALIAS_PREFIX.length) return { target: alias.slice(ALIAS_PREFIX.length) };
  return undefined;
}

/**
 * The endpoints plugged into `bridge`, read from the kernel: every weft veth on the bridge, its target from the
 * alias, and the container interface's name, MAC and addresses from inside the namespace. An endpoint whose
 * namespace file is no longer reachable under the recorded target (its process exited while a bind mount keeps the
 * namespace alive) is listed with its host-side name as `interface`, mac '' and no addresses.
 */
export async function listEndpoints(bridge: string, options: NetdevOptions = {}): Promise<EndpointReport[]> {
  checkIfname(bridge, 'bridge');
  checkNetnsOption(options.netns);
  const ports = await ipJson<IpLink>(bridge, ['link', 'show', 'master', bridge], options.netns);
  const out: EndpointReport[] = [];
  for (const port of ports) {
    const recorded = port.ifname.startsWith(HOST_PREFIX) && port.ifalias !== undefined ? parseEndpointAlias(port.ifalias) : undefined;
    if (recorded === undefined) continue;
    const { target } = recorded;
    const container = recorded.containerId === undefined ? {} : { containerId: recorded.containerId };
    let t: ResolvedTarget | undefined;
    try {
      t = await resolveTarget(target);
    } catch {
      t = undefined;
    }
    const peer = t && t.hostIfname === port.ifname && port.link_index != null ? await linkInside(t, port.link_index) : undefined;
    out.push(
      peer
        ? { target, interface: peer.ifname, mac: peer.address ?? '', addresses: globalCidrs(peer), ...container }
        : { target, interface: port.ifname, mac: '', addresses: [], ...container },
    );
  }
  return out;
}

/** Whether two namespace files are the same namespace (same nsfs device and inode). */
async function isSameNamespace(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = await Promise.all([stat(a, { bigint: true }), stat(b, { bigint: true })]);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

/** The link with `ifindex` inside the target's namespace, with its addresses; undefined if there is none. */
async function linkInside(t: ResolvedTarget, ifindex: number): Promise<IpAddrLink | undefined> {
  const links = await ipJson<IpAddrLink>(t.target, ['addr', 'show'], t.path);
  return links.find((l) => l.ifindex === ifindex);
}

/** Whether the target's namespace has an interface called `ifname`. */
async function linkExistsInside(t: ResolvedTarget, ifname: string): Promise<boolean> {
  const links = await ipJson<IpLink>(t.target, ['link', 'show'], t.path);
  return links.some((l) => l.ifname === ifname);
}

async function endpointOf(t: ResolvedTarget, ifname: string): Promise<EndpointReport> {
  const link = (await ipJson<IpAddrLink>(ifname, ['addr', 'show', 'dev', ifname], t.path))[0];
  return { target: t.target, interface: ifname, mac: link?.address ?? '', addresses: link ? globalCidrs(link) : [] };
}

/** Delete a link; true if deleted, false if it did not exist. */
async function deleteLink(ifname: string, netns: string | undefined): Promise<boolean> {
  try {
    await runCommand({ device: ifname, file: 'ip', args: ['link', 'del', 'dev', ifname], netns });
    return true;
  } catch (err) {
    if (isNoSuchDevice(err)) return false;
    throw err;
  }
}
