/**
 * Test hosts: N "machines" as network namespaces on one shared underlay, for the root-only tests in test/netns/.
 * scripts/testhosts.sh builds exactly the same layout from bash (demo, bench); keep the two in step.
 *
 *   <prefix>-ul     underlay namespace: bridge br0, one port hN per host
 *   <prefix>-hN     host N: eth0 = 10.<x>.0.N/24 (x random in 200..250 per run), lo up, default route via eth0
 *   <prefix>-hN-cM  a container namespace on host N (addContainer; weft itself attaches it)
 *
 * The prefix is `w` + 4 random hex digits unless given. Nothing reaches outside: the underlay bridge has no uplink,
 * the host default routes end on it, and cut/restore rules live inside the host namespaces.
 *
 * Ownership: before creating anything, createHosts writes /run/weft-testhosts/<prefix> ("owner=<pid>",
 * "subnet=<cidr>"). `sweepStale` removes only namespaces whose prefix has such a marker and whose owner is dead, so a
 * parallel run (another engineer's, another vitest worker) is never touched, and neither is anything without our
 * marker.
 *
 * Usage:
 *   const skip = netnsSkipReason();               // undefined as root; throws when CI is set and we are not root
 *   describe.skipIf(skip)(...);  beforeAll: net = await createHosts({ count: 3 });  afterAll: await net?.destroy();
 */
import { execFile, spawn as spawnChild, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../../runtime/errors.js';

/** Where run markers live (tmpfs, cleared on reboot along with the namespaces). Shared with scripts/testhosts.sh. */
export const MARKER_DIR = '/run/weft-testhosts';

/** Prefixes createHosts generates: `w` + 4 hex. sweepStale's default pattern. */
export const DEFAULT_PREFIX_PATTERN = /^w[0-9a-f]{4}$/;

/** A command run inside a test namespace exited non-zero (or could not start). */
export class HostCommandError extends WeftError {
  readonly code = 'HOST_COMMAND_FAILED';
  override readonly status = 500;
  constructor(
    readonly ns: string,
    readonly command: string,
    readonly stdout: string,
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(
      `[${ns}] \`${command}\` failed${exitCode === null ? '' : ` (exit ${exitCode})`}: ${stderr.trim() || stdout.trim() || 'no output'}`,
    );
  }
}

/** `ip` or `iptables` is not installed: the harness installs nothing itself. */
export class HarnessToolMissingError extends WeftError {
  readonly code = 'HARNESS_TOOL_MISSING';
  override readonly status = 500;
  constructor(readonly tool: string) {
    super(`test hosts need \`${tool}\`, which is not installed: run scripts/setup.sh as root`);
  }
}

export interface ExecOptions {
  /** Kill the command after this long. @default 60000 */
  timeoutMs?: number;
}

/** Something that runs commands in its own namespace: a host or a container. */
export interface NamespaceHandle {
  /** The `ip netns` name. */
  readonly ns: string;
  /** Its namespace file, for netdev targets and `nsenter --net=`. */
  readonly path: string;
  /** Run `cmd args` inside (`ip netns exec ns ...`); resolves stdout, rejects with `HostCommandError` (has stderr). */
  exec(cmd: string, args?: readonly string[], options?: ExecOptions): Promise<string>;
  /**
   * Start `cmd args` inside as a child process, tracked by PID: `destroy()` sends it SIGTERM, then SIGKILL. The PID
   * is the command's own (`ip netns exec` execs into it), so signals reach it directly. Careful: the 'spawn' event
   * comes before `ip netns exec` has entered the namespace; before using `pid:PID` or /proc/PID/ns/net as a target,
   * `await untilInNamespace(child.pid, handle.path)`, or you will be looking at the test runner's own namespace.
   */
  spawn(cmd: string, args?: readonly string[], options?: SpawnOptions): ChildProcess;
}

export interface TestHost extends NamespaceHandle {
  /** 1-based. */
  readonly index: number;
  /** Underlay address, 10.<x>.0.<index>. */
  readonly ip: string;
  /** Underlay interface inside the host. */
  readonly ifname: string;
}

export interface TestContainer extends NamespaceHandle {
  readonly host: TestHost;
  readonly name: string;
}

export interface TestHosts {
  readonly prefix: string;
  /** The underlay namespace, `<prefix>-ul`. */
  readonly underlayNs: string;
  /** The underlay subnet, 10.<x>.0.0/24. */
  readonly subnet: string;
  readonly hosts: readonly TestHost[];
  /** Host by 1-based number. */
  host(index: number): TestHost;
  /** Drop all traffic between hosts a and b (iptables inside both; idempotent). */
  cut(a: TestHost | number, b: TestHost | number): Promise<void>;
  /** Undo `cut(a, b)` (idempotent). */
  restore(a: TestHost | number, b: TestHost | number): Promise<void>;
  /** Cut `host` from every other host. */
  isolate(host: TestHost | number): Promise<void>;
  /** Undo `isolate(host)`: restore it with every other host. */
  rejoin(host: TestHost | number): Promise<void>;
  /** Create the container namespace `<host.ns>-<name>` (lo up, no other interface). `name`: 1-8 of [a-z0-9]. */
  addContainer(host: TestHost | number, name: string): Promise<TestContainer>;
  /**
   * Kill tracked children (SIGTERM, then SIGKILL after 3 s), kill whatever else still runs in our namespaces (by
   * PID, from `ip netns pids`; only our runs put processes there), delete every namespace with our prefix and the
   * marker. Idempotent; never throws for what is already gone.
   */
  destroy(): Promise<void>;
}

export interface CreateHostsOptions {
  /** Number of hosts, 1..50. */
  count: number;
  /** Run prefix (namespaces are `<prefix>-...`). @default 'w' + 4 random hex digits */
  prefix?: string;
}

const PREFIX_RE = /^[a-z][a-z0-9]{0,11}$/;
const CONTAINER_NAME_RE = /^[a-z0-9]{1,8}$/;
const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
const TERM_GRACE_MS = 3_000;

/**
 * Why the netns tests cannot run here, or undefined if they can (we are root). When `CI` is set, not being root is a
 * failure, not a skip: this throws.
 */
export function netnsSkipReason(): string | undefined {
  if (process.getuid?.() === 0) return undefined;
  const reason = 'netns integration tests need root (network namespaces, veths, iptables)';
  if (process.env['CI']) throw new Error(`${reason}; CI is set, so this is a failure: run the tests as root`);
  console.warn(`SKIPPED: ${reason}; run \`sudo npm test\` to include them`);
  return reason;
}

/** Build the layout above. On any failure everything created so far is removed before the error is rethrown. */
export async function createHosts(options: CreateHostsOptions): Promise<TestHosts> {
  const { count } = options;
  if (!Number.isInteger(count) || count < 1 || count > 50) throw new RangeError(`count must be 1..50, got ${count}`);
  await requireTool('ip', ['-V']);
  await requireTool('iptables', ['--version']);
  const prefix = options.prefix ?? `w${randomBytes(2).toString('hex')}`;
  if (!PREFIX_RE.test(prefix)) throw new RangeError(`prefix must match ${PREFIX_RE}, got ${JSON.stringify(prefix)}`);
  if ((await listNamespaces()).some((ns) => ns.startsWith(`${prefix}-`))) {
    throw new Error(
      `namespaces with prefix ${prefix}- already exist; choose another prefix or run \`scripts/testhosts.sh down ${prefix}\``,
    );
  }
  const x = randomInt(200, 251);
  const subnet = `10.${x}.0.0/24`;
  const net = new HostSet(prefix, subnet);
  mkdirSync(MARKER_DIR, { recursive: true });
  writeFileSync(join(MARKER_DIR, prefix), `owner=${process.pid}\nsubnet=${subnet}\n`);
  try {
    await neighbourTable('raise', prefix, count);
  } catch (err) {
    rmSync(join(MARKER_DIR, prefix), { force: true });
    throw err;
  }
  try {
    const ul = net.underlayNs;
    await run('ip', ['netns', 'add', ul]);
    await run('ip', ['-n', ul, 'link', 'set', 'lo', 'up']);
    await run('ip', ['-n', ul, 'link', 'add', 'name', 'br0', 'type', 'bridge']);
    await run('ip', ['-n', ul, 'link', 'set', 'br0', 'up']);
    for (let i = 1; i <= count; i++) {
      const host = net.addHost(i, `10.${x}.0.${i}`);
      await run('ip', ['netns', 'add', host.ns]);
      await run('ip', ['-n', host.ns, 'link', 'set', 'lo', 'up']);
      await run('ip', ['-n', ul, 'link', 'add', 'name', `h${i}`, 'type', 'veth', 'peer', 'name', host.ifname, 'netns', host.ns]);
      await run('ip', ['-n', ul, 'link', 'set', `h${i}`, 'master', 'br0', 'up']);
      await run('ip', ['-n', host.ns, 'addr', 'add', `${host.ip}/24`, 'dev', host.ifname]);
      await run('ip', ['-n', host.ns, 'link', 'set', host.ifname, 'up']);
      // A default route gives daemons an underlay device to take the MTU from; it ends on the isolated bridge.
      await run('ip', ['-n', host.ns, 'route', 'add', 'default', 'dev', host.ifname]);
    }
  } catch (err) {
    await net.destroy();
    throw err;
  }
  return net;
}

/**
 * Wait until process `pid` is inside the namespace at `nsPath` (same nsfs inode), polling every 20 ms for at most
 * `timeoutMs`; rejects if it never gets there (or exits first).
 */
export async function untilInNamespace(pid: number, nsPath: string, timeoutMs = 5_000): Promise<void> {
  const want = statSync(nsPath);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const st = statSync(`/proc/${pid}/ns/net`);
      if (st.ino === want.ino && st.dev === want.dev) return;
    } catch {
      // not started yet, or already gone: the deadline decides
    }
    if (Date.now() >= deadline) throw new Error(`process ${pid} did not enter ${nsPath} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/**
 * Remove leftovers of crashed runs: every namespace `<prefix>-*` whose prefix matches `prefixPattern`, has a marker
 * in MARKER_DIR, and whose marker's owner process (and, for bash runs, process group) is gone. Namespaces without
 * a marker are never touched. Resolves the prefixes removed.
 */
export async function sweepStale(prefixPattern: RegExp = DEFAULT_PREFIX_PATTERN): Promise<string[]> {
  const prefixes = new Set<string>();
  for (const ns of await listNamespaces()) {
    const dash = ns.indexOf('-');
    if (dash > 0 && prefixPattern.test(ns.slice(0, dash))) prefixes.add(ns.slice(0, dash));
  }
  let markers: string[];
  try {
    markers = readdirSync(MARKER_DIR);
  } catch {
    markers = [];
  }
  for (const m of markers) if (prefixPattern.test(m)) prefixes.add(m); // a marker whose namespaces are already gone
  const swept: string[] = [];
  for (const prefix of prefixes) {
    const marker = readMarker(prefix);
    if (!marker || isMarkerOwnerAlive(marker)) continue;
    await removePrefix(prefix);
    swept.push(prefix);
  }
  return swept;
}

class HostSet implements TestHosts {
  readonly underlayNs: string;
  readonly hosts: TestHost[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly containers: TestContainer[] = [];

  constructor(
    readonly prefix: string,
    readonly subnet: string,
  ) {
    this.underlayNs = `${prefix}-ul`;
  }

  addHost(index: number, ip: string): TestHost {
    const host: TestHost = { ...this.handle(`${this.prefix}-h${index}`), index, ip, ifname: 'eth0' };
    this.hosts.push(host);
    return host;
  }

  host(index: number): TestHost {
    const h = this.hosts[index - 1];
    if (!h) throw new RangeError(`no host ${index}; hosts are 1..${this.hosts.length}`);
    return h;
  }

  async cut(a: TestHost | number, b: TestHost | number): Promise<void> {
    const [ha, hb] = [this.resolve(a), this.resolve(b)];
    for (const rule of this.cutRules(ha, hb)) {
      if (!(await this.hasRule(rule))) await this.iptables(rule.host, ['-I', ...rule.spec]);
    }
  }

  async restore(a: TestHost | number, b: TestHost | number): Promise<void> {
    const [ha, hb] = [this.resolve(a), this.resolve(b)];
    for (const rule of this.cutRules(ha, hb)) {
      // Bounded: a rule inserted twice by hand is removed twice, never loops forever.
      for (let i = 0; i < 10 && (await this.hasRule(rule)); i++) await this.iptables(rule.host, ['-D', ...rule.spec]);
    }
  }

  async isolate(host: TestHost | number): Promise<void> {
    const h = this.resolve(host);
    for (const other of this.hosts) if (other !== h) await this.cut(h, other);
  }

  async rejoin(host: TestHost | number): Promise<void> {
    const h = this.resolve(host);
    for (const other of this.hosts) if (other !== h) await this.restore(h, other);
  }

  async addContainer(host: TestHost | number, name: string): Promise<TestContainer> {
    const h = this.resolve(host);
    if (!CONTAINER_NAME_RE.test(name)) throw new RangeError(`container name must match ${CONTAINER_NAME_RE}, got ${JSON.stringify(name)}`);
    const ns = `${h.ns}-${name}`;
    await run('ip', ['netns', 'add', ns]);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const c: TestContainer = { ...this.handle(ns), host: h, name };
    this.containers.push(c);
    return c;
  }

  async destroy(): Promise<void> {
    const alive = [...this.children].filter((c) => c.exitCode === null && c.signalCode === null && c.pid !== undefined);
    for (const c of alive) signal(c.pid!, 'SIGTERM');
    await Promise.all(alive.map((c) => exited(c, TERM_GRACE_MS)));
    for (const c of alive) if (c.exitCode === null && c.signalCode === null) signal(c.pid!, 'SIGKILL');
    await Promise.all(alive.map((c) => exited(c, 1_000)));
    this.children.clear();
    await removePrefix(this.prefix);
  }

  private handle(ns: string): NamespaceHandle {
    return {
      ns,
      path: `/run/netns/${ns}`,
      exec: (cmd, args = [], options = {}) => run('ip', ['netns', 'exec', ns, cmd, ...args], options, ns),
      spawn: (cmd, args = [], options = {}) => {
        const child = spawnChild('ip', ['netns', 'exec', ns, cmd, ...args], options);
        this.children.add(child);
        child.once('exit', () => this.children.delete(child));
        child.once('error', () => this.children.delete(child));
        return child;
      },
    };
  }

  private resolve(h: TestHost | number): TestHost {
    return typeof h === 'number' ? this.host(h) : h;
  }

  private cutRules(a: TestHost, b: TestHost): Array<{ host: TestHost; spec: string[] }> {
    return [
      { host: a, spec: ['INPUT', '-s', b.ip, '-j', 'DROP'] },
      { host: a, spec: ['OUTPUT', '-d', b.ip, '-j', 'DROP'] },
      { host: b, spec: ['INPUT', '-s', a.ip, '-j', 'DROP'] },
      { host: b, spec: ['OUTPUT', '-d', a.ip, '-j', 'DROP'] },
    ];
  }

  private async hasRule(rule: { host: TestHost; spec: string[] }): Promise<boolean> {
    try {
      await this.iptables(rule.host, ['-C', ...rule.spec]);
      return true;
    } catch (err) {
      if (err instanceof HostCommandError && err.exitCode === 1) return false;
      throw err;
    }
  }

  private iptables(host: TestHost, args: string[]): Promise<string> {
    return host.exec('iptables', ['-w', '5', ...args]);
  }
}

/** Kill everything in every namespace `<prefix>-*`, delete them, remove the marker. */
async function removePrefix(prefix: string): Promise<void> {
  const namespaces = (await listNamespaces()).filter((ns) => ns.startsWith(`${prefix}-`));
  const pids = new Set<number>();
  for (const ns of namespaces) for (const pid of await namespacePids(ns)) pids.add(pid);
  if (pids.size > 0) {
    for (const pid of pids) signal(pid, 'SIGTERM');
    const deadline = Date.now() + TERM_GRACE_MS;
    while (Date.now() < deadline && [...pids].some(isAlive)) await sleep(50);
    for (const pid of pids) if (isAlive(pid)) signal(pid, 'SIGKILL');
  }
  // Containers first, the underlay last: order does not matter to the kernel, but it reads right in a trace.
  for (const ns of namespaces.sort().reverse()) {
    await run('ip', ['netns', 'del', ns]).catch(() => undefined);
  }
  await neighbourTable('restore', prefix).catch(() => undefined);
  rmSync(join(MARKER_DIR, prefix), { force: true });
}

// From the sources (vitest) this file is test/harness/; built for `npm run fuzz` it is dist/test/harness/, and
// scripts/ is not built.
const harnessDir = new URL('.', import.meta.url).pathname;
const TESTHOSTS_SH = join(harnessDir, /\/dist\/test\/harness\/?$/.test(harnessDir) ? '../../..' : '../..', 'scripts/testhosts.sh');

/**
 * The kernel's neighbour table is shared by every namespace (gc_thresh3 1,024 by default) and a full mesh of N hosts
 * needs N(N-1) entries: a large run raises net.ipv{4,6}.neigh.default.gc_thresh1/2/3 and the last raising run to end
 * puts them back, with the values recorded in the run marker. One implementation, under one lock, for bash and TS
 * runs alike: scripts/testhosts.sh's. 'raise' rejects with the sysctl to set when they cannot be written.
 */
async function neighbourTable(what: 'raise' | 'restore', prefix: string, count = 0): Promise<void> {
  const script =
    what === 'raise'
      ? `. "$1" && _th_neigh_raise "$2" "$3"`
      : `. "$1" && _th_neigh_restore "$2" "$(sed -n 's/^neigh_orig=//p' "${MARKER_DIR}/$2" 2>/dev/null)"`;
  await run('bash', ['-c', script, 'testhosts', TESTHOSTS_SH, prefix, String(count)]);
}

interface Marker {
  owner?: number;
  group?: number;
}

function readMarker(prefix: string): Marker | undefined {
  let text: string;
  try {
    text = readFileSync(join(MARKER_DIR, prefix), 'utf8');
  } catch {
    return undefined;
  }
  const m: Marker = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.split('=');
    if (k === 'owner' && v) m.owner = Number(v);
    if (k === 'group' && v) m.group = Number(v);
  }
  return m;
}

/** Alive if the owner process or any process of the recorded group (bash runs) still exists. */
function isMarkerOwnerAlive(m: Marker): boolean {
  if (m.owner !== undefined && Number.isInteger(m.owner) && m.owner > 0 && isAlive(m.owner)) return true;
  if (m.group !== undefined && Number.isInteger(m.group) && m.group > 1 && isAlive(-m.group)) return true;
  return false;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function listNamespaces(): Promise<string[]> {
  const out = await run('ip', ['netns', 'list']);
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

async function namespacePids(ns: string): Promise<number[]> {
  const out = await run('ip', ['netns', 'pids', ns]).catch(() => '');
  return out
    .split(/\s+/)
    .filter((s) => /^[0-9]+$/.test(s))
    .map(Number)
    .filter((pid) => pid !== process.pid);
}

async function requireTool(tool: string, versionArgs: string[]): Promise<void> {
  try {
    await run(tool, versionArgs);
  } catch (err) {
    if (err instanceof HarnessToolMissingError) throw err;
    // It exists but refused `--version`: good enough.
  }
}

function run(file: string, args: readonly string[], options: ExecOptions = {}, ns = 'host'): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) {
        resolve(stdout);
        return;
      }
      const e = err as Error & { code?: unknown };
      if (e.code === 'ENOENT') {
        reject(new HarnessToolMissingError(file));
        return;
      }
      const inner = ns === 'host' ? [file, ...args] : args.slice(3);
      reject(
        new HostCommandError(ns, inner.join(' '), String(stdout), String(stderr) || e.message, typeof e.code === 'number' ? e.code : null),
      );
    });
  });
}
