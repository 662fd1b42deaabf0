/**
 * Expose: give the host itself an address on the overlay by putting it on the bridge (as `weave expose` does), so
 * host processes reach containers, and hide: take it away. The subnet route comes with the address's prefix.
 */
import { ip, ipJson, globalCidrs, type IpAddrLink, type NetdevOptions } from './command.js';
import { checkCidr, checkIfname, checkNetnsOption } from './validation.js';

/**
 * Add `cidr` (an address with prefix, e.g. 10.2.1.254/24) to the bridge. Idempotent: resolves false if the bridge
 * already had it, true if added. Rejects with `InvalidNetdevInputError` for a bad CIDR, `NetdevCommandError` if the
 * bridge does not exist.
 */
export async function expose(bridge: string, cidr: string, options: NetdevOptions = {}): Promise<boolean> {
  checkIfname(bridge, 'bridge');
  const want = checkCidr(cidr);
  checkNetnsOption(options.netns);
  if ((await listExposed(bridge, options)).includes(want)) return false;
  await ip(bridge, ['addr', 'add', want, 'dev', bridge], options.netns);
  return true;
}

/** Remove `cidr` from the bridge. Idempotent: resolves false if it was not there, true if removed. */
export async function hide(bridge: string, cidr: string, options: NetdevOptions = {}): Promise<boolean> {
  checkIfname(bridge, 'bridge');
  const want = checkCidr(cidr);
  checkNetnsOption(options.netns);
  if (!(await listExposed(bridge, options)).includes(want)) return false;
  await ip(bridge, ['addr', 'del', want, 'dev', bridge], options.netns);
  return true;
}

/** The global-scope addresses on the bridge, in CIDR form as `checkCidr` normalises them. */
export async function listExposed(bridge: string, options: NetdevOptions = {}): Promise<string[]> {
  checkIfname(bridge, 'bridge');
  checkNetnsOption(options.netns);
  const links = await ipJson<IpAddrLink>(bridge, ['addr', 'show', 'dev', bridge], options.netns);
  return links.flatMap(globalCidrs).map((c) => checkCidr(c));
}
