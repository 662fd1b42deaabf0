/**
 * Veth pairs for Docker endpoints. Unlike `attach` (endpoint.ts), weft never enters a Docker container's namespace:
 * the sandbox path dockerd gives lives in dockerd's own mount namespace, which weft may not see. So, as libnetwork's
 * remote driver protocol intends, weft makes the pair in its own namespace, plugs the host end into the bridge and
 * leaves the guest end there; dockerd moves the guest end into the container, renames it and sets its address.
 *
 *   vethwd<endpoint id[0:9]> (bridge port)  ──  vethwc<endpoint id[0:9]> (until dockerd moves it: ethwe0)
 *
 * The host end's alias is `weft-docker:<endpoint id>`, so the kernel remembers every Docker endpoint across a weft
 * restart (`listDockerVeths`), and removing the veth removes the record.
 */
import { attachToBridge, findLink } from './bridge.js';
import { ip, ipJson, isNoSuchDevice, runCommand, type IpLink } from './command.js';
import { disableTxChecksumOffload } from './offload.js';
import { checkIfname, checkMac, checkMtu } from './validation.js';

const HOST_PREFIX = 'vethwd';
const GUEST_PREFIX = 'vethwc';
const ALIAS_PREFIX = 'weft-docker:';

export interface DockerVethNames {
  hostIfname: string;
  guestIfname: string;
}

export interface DockerVeth extends DockerVethNames {
  endpointId: string;
  /** The guest end's MAC, lower case. */
  mac: string;
}

/** The pair's names for an endpoint id (hex, as dockerd makes them; 9 characters keep names within IFNAMSIZ). */
export function dockerVethNames(endpointId: string): DockerVethNames {
  if (!/^[A-Za-z0-9]{9,128}$/.test(endpointId)) throw new RangeError(`endpoint id ${JSON.stringify(endpointId.slice(0, 80))} is not an id`);
  const short = endpointId.slice(0, 9).toLowerCase();
  return { hostIfname: HOST_PREFIX + short, guestIfname: GUEST_PREFIX + short };
}

export interface CreateDockerVethOptions {
  endpointId: string;
  bridge: string;
  mtuBytes: number;
  /** MAC for the guest end; @default kernel-chosen */
  mac?: string;
  /** Keep transmit checksum offload on in the container (the TAP takes offloads). @default false */
  isTxOffloadKept?: boolean;
}

/**
 * Make the pair, plug the host end into `bridge`, bring it up; the guest end stays down in this namespace. A pair
 * left over for the same endpoint is replaced. If a step fails the pair is deleted before the error is rethrown.
 */
export async function createDockerVeth(options: CreateDockerVethOptions): Promise<DockerVeth> {
  const { hostIfname, guestIfname } = dockerVethNames(options.endpointId);
  const bridge = checkIfname(options.bridge, 'bridge');
  const mtu = String(checkMtu(options.mtuBytes));
  const mac = options.mac === undefined ? undefined : checkMac(options.mac);
  if (await findLink(hostIfname)) await deleteDockerVeth(options.endpointId);
  await ip(hostIfname, ['link', 'add', 'name', hostIfname, 'mtu', mtu, 'type', 'veth', 'peer', 'name', guestIfname, 'mtu', mtu]);
  try {
    if (mac !== undefined) await ip(guestIfname, ['link', 'set', 'dev', guestIfname, 'address', mac]);
    if (options.isTxOffloadKept !== true) await disableTxChecksumOffload(guestIfname);
    await ip(hostIfname, ['link', 'set', 'dev', hostIfname, 'alias', ALIAS_PREFIX + options.endpointId]);
    await attachToBridge(hostIfname, bridge);
    const guest = await findLink(guestIfname);
    return { endpointId: options.endpointId, hostIfname, guestIfname, mac: guest?.address ?? mac ?? '' };
  } catch (err) {
    await deleteLinkQuietly(hostIfname);
    throw err;
  }
}

/** Delete the endpoint's pair (wherever the guest end is by now). Resolves whether there was one. */
export async function deleteDockerVeth(endpointId: string): Promise<boolean> {
  const { hostIfname } = dockerVethNames(endpointId);
  try {
    await runCommand({ device: hostIfname, file: 'ip', args: ['link', 'del', 'dev', hostIfname] });
    return true;
  } catch (err) {
    if (isNoSuchDevice(err)) return false;
    throw err;
  }
}

/** Whether the endpoint's host end exists. */
export async function hasDockerVeth(endpointId: string): Promise<boolean> {
  return (await findLink(dockerVethNames(endpointId).hostIfname)) !== undefined;
}

/** Every Docker endpoint weft made in this namespace, from the host ends' aliases: endpoint id -> host ifname. */
export async function listDockerVeths(): Promise<Map<string, string>> {
  const links = await ipJson<IpLink>('veth', ['link', 'show', 'type', 'veth']);
  const out = new Map<string, string>();
  for (const l of links) {
    if (l.ifname.startsWith(HOST_PREFIX) && l.ifalias?.startsWith(ALIAS_PREFIX)) out.set(l.ifalias.slice(ALIAS_PREFIX.length), l.ifname);
  }
  return out;
}

async function deleteLinkQuietly(ifname: string): Promise<void> {
  try {
    await runCommand({ device: ifname, file: 'ip', args: ['link', 'del', 'dev', ifname] });
  } catch {
    /* already gone */
  }
}
