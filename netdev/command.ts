/**
 * How netdev runs `ip`, `ethtool` and `nsenter`: `execFile` with an argument vector (never a shell string, so no
 * device name or path is ever interpreted), a timeout, and failures turned into typed errors naming the device.
 *
 * Every public netdev function takes `{ netns }`: absent, commands act on the current network namespace (the daemon
 * runs inside its host's namespace and passes nothing); present, each command is wrapped to run in that namespace.
 * Tests use this to drive a "host" namespace without a child process per host.
 */
import { execFile } from 'node:child_process';
import { MissingToolError, NetdevCommandError } from './errors.js';

/** Where a netdev function acts. */
export interface NetdevOptions {
  /**
   * Run the commands in this network namespace: an `ip netns` name (wrapped in `ip netns exec NAME`) or a path to a
   * namespace file such as /proc/PID/ns/net (wrapped in `nsenter --net=PATH`).
   * @default undefined: the current namespace
   */
  netns?: string;
}

/** Enough for any `ip`/`ethtool` call; a hung command (a wedged netlink socket) fails instead of blocking forever. */
const COMMAND_TIMEOUT_MS = 30_000;

/**
 * The program and arguments that run `file args` inside `netns` (or as-is without one). Pure; exported for tests.
 * Paths are recognised by a '/', exactly as iproute2 does for `ip link set ... netns`.
 */
export function commandLine(file: string, args: readonly string[], netns?: string): [string, string[]] {
  if (netns === undefined) return [file, [...args]];
  if (netns.includes('/')) return ['nsenter', [`--net=${netns}`, file, ...args]];
  return ['ip', ['netns', 'exec', netns, file, ...args]];
}

/** One command to run: `file args` about `device`, optionally inside `netns`. */
export interface CommandSpec {
  /** Device or namespace named in the error if the command fails. */
  device: string;
  file: string;
  args: readonly string[];
  netns?: string;
}

/**
 * Run a command; resolve its standard output. Rejects with `MissingToolError` when the program (or the `ip`/`nsenter`
 * wrapper) is not installed, else `NetdevCommandError` with the command line and its stderr.
 */
export function runCommand(spec: CommandSpec): Promise<string> {
  const [file, args] = commandLine(spec.file, spec.args, spec.netns);
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: COMMAND_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) {
        resolve(stdout);
        return;
      }
      const e = err as Error & { code?: unknown; killed?: boolean };
      if (e.code === 'ENOENT') {
        reject(new MissingToolError(file));
        return;
      }
      // `ip netns exec` and `nsenter` exit 255/127 with "failed to execute" when the inner program is missing.
      if (spec.netns !== undefined && /(exec of|failed to execute)/.test(stderr) && /No such file or directory/.test(stderr)) {
        reject(new MissingToolError(spec.file));
        return;
      }
      const exitCode = typeof e.code === 'number' ? e.code : null;
      const detail = stderr.trim() || (e.killed ? `killed after ${COMMAND_TIMEOUT_MS} ms` : e.message);
      reject(new NetdevCommandError(spec.device, [file, ...args].join(' '), detail, exitCode));
    });
  });
}

/** Run `ip -j ARGS` and parse its JSON (an empty output is an empty list, as `ip` prints nothing for no matches). */
export async function ipJson<T>(device: string, args: readonly string[], netns?: string): Promise<T[]> {
  const out = await runCommand({ device, file: 'ip', args: ['-j', ...args], netns });
  const text = out.trim();
  if (text === '') return [];
  return JSON.parse(text) as T[];
}

/** Run `ip ARGS` for its effect. */
export async function ip(device: string, args: readonly string[], netns?: string): Promise<void> {
  await runCommand({ device, file: 'ip', args, netns });
}

/** Whether `err` is a failed command whose stderr says the device does not exist. */
export function isNoSuchDevice(err: unknown): boolean {
  return err instanceof NetdevCommandError && /(does not exist|Cannot find device|No such device)/i.test(err.stderr);
}

/** Whether `err` is a failed command whose stderr says the object already exists. */
export function isAlreadyExists(err: unknown): boolean {
  return err instanceof NetdevCommandError && /File exists/i.test(err.stderr);
}

/** The parts of `ip -j link show` netdev reads. */
export interface IpLink {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  operstate?: string;
  flags?: string[];
  master?: string;
  ifalias?: string;
  /** For a veth: the peer's ifindex (in the peer's namespace). */
  link_index?: number;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

/** The parts of `ip -j addr show` netdev reads. */
export interface IpAddrLink extends IpLink {
  addr_info?: Array<{ family: string; local: string; prefixlen: number; scope: string }>;
}

/** Global-scope addresses of a link in CIDR form ("10.2.1.1/24"); link-local (fe80::) and host ones are left out. */
export function globalCidrs(link: IpAddrLink): string[] {
  return (link.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`);
}
