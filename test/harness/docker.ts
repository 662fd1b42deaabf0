/**
 * One Docker engine per test host, for the Docker netns tests. dockerd runs inside the host's network namespace
 * and in a private mount namespace of its own, so the machine's network and its Docker (if any) are never touched:
 *
 *   nsenter --net=/run/netns/HOST unshare -m --propagation slave sh -c
 *     'mount --bind DIR/plugins /run/docker/plugins && exec dockerd --data-root DIR/root --exec-root DIR/exec
 *        -H unix://DIR/docker.sock --pidfile DIR/docker.pid --bridge none --iptables=false --ip-masq=false ...'
 *
 * (`ip netns exec` would remount /sys, and dockerd then finds no cgroups.) The bind mount gives each engine its own
 * plugin directory, so each finds its own host's weft at DIR/plugins/weft.sock. Every exec is an `exec`, so the PID
 * we spawn is dockerd's own. Images cannot be pulled: `busybox:weft` is imported from Debian's busybox-static.
 *
 * `stop()` removes the containers, stops dockerd by PID (SIGTERM, then SIGKILL), kills any shim still running for
 * this engine (found by its DIR in /proc/PID/cmdline, by PID), unmounts what is left under DIR and removes DIR.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { TestHost } from './hosts.js';
import { waitFor } from './weft.js';
import { weftNetwork, type WeftNetwork } from './network.js';

const BUSYBOX = '/bin/busybox';
export const BUSYBOX_IMAGE = 'busybox:weft';
const BUSYBOX_LINKS = ['sh', 'ping', 'ip', 'nslookup', 'wget', 'sleep', 'hostname', 'cat', 'ls', 'ifconfig', 'nc', 'true'];

/** Why Docker tests cannot run here (dockerd or busybox-static missing), or undefined. */
export function dockerSkipReason(): string | undefined {
  for (const tool of ['/usr/sbin/dockerd', BUSYBOX]) {
    if (!existsSync(tool)) {
      const reason = `Docker netns tests need ${tool}: run scripts/setup.sh (installs docker.io and busybox-static)`;
      if (process.env['CI']) throw new Error(`${reason}; CI is set, so this is a failure`);
      console.warn(`SKIPPED: ${reason}`);
      return reason;
    }
  }
  return undefined;
}

export interface DockerEngine {
  readonly host: TestHost;
  readonly dir: string;
  /** unix://DIR/docker.sock: weft's --docker-api and the CLI's -H. */
  readonly api: string;
  /** DIR/plugins/weft.sock: weft's --plugin-socket. */
  readonly pluginSocket: string;
  readonly pid: number;
  /** `docker -H ... ARGS`; resolves stdout (trimmed), rejects with stderr. */
  docker(args: readonly string[], timeoutMs?: number): Promise<string>;
  /** Stop dockerd (SIGTERM, wait) and start it again on the same directories (containers with --restart come back). */
  restart(): Promise<void>;
  /** Everything removed. Idempotent; never throws. */
  stop(): Promise<void>;
  /** The last lines of dockerd's log. */
  logTail(lines?: number): string;
}

/** Start dockerd on `host`; resolves once it answers. `baseDir` must be short (socket paths are < 108 bytes). */
export async function startDockerd(host: TestHost, baseDir: string): Promise<DockerEngine> {
  mkdirSync('/run/docker/plugins', { recursive: true });
  const dir = mkdtempSync(join(baseDir, `d${host.index}-`));
  for (const d of ['plugins', 'root', 'exec']) mkdirSync(join(dir, d));
  const api = `unix://${join(dir, 'docker.sock')}`;
  let pid = 0;
  let isStopped = false;
  const logPath = join(dir, 'dockerd.log');

  const launch = async () => {
    const script =
      `mount --bind ${dir}/plugins /run/docker/plugins && exec dockerd --data-root ${dir}/root --exec-root ${dir}/exec ` +
      `-H ${api} --pidfile ${dir}/docker.pid --bridge none --iptables=false --ip-masq=false --ip-forward=false ` +
      `--storage-driver vfs --userland-proxy=false --log-level warn >>${logPath} 2>&1`;
    const child = spawn('nsenter', [`--net=${host.path}`, 'unshare', '-m', '--propagation', 'slave', 'sh', '-c', script], {
      stdio: 'ignore',
      detached: true,
    });
    child.unref();
    pid = child.pid!;
    const engine = { docker };
    await waitFor(
      `dockerd on h${host.index} to answer`,
      async () => (await engine.docker(['version', '--format', '{{.Server.Version}}'], 5_000)).length > 0,
      60_000,
      500,
    );
  };

  function docker(args: readonly string[], timeoutMs = 60_000): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile('docker', ['-H', api, ...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`[h${host.index}] docker ${args.join(' ')} failed: ${String(stderr).trim() || err.message}`));
        else resolve(String(stdout).trim());
      });
    });
  }

  const stopDaemon = async (): Promise<void> => {
    if (pid === 0) return;
    signal(pid, 'SIGTERM');
    const deadline = Date.now() + 20_000;
    while (isAlive(pid) && Date.now() < deadline) await sleep(200);
    if (isAlive(pid)) signal(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(100);
    pid = 0;
  };

  const engine: DockerEngine = {
    host,
    dir,
    api,
    pluginSocket: join(dir, 'plugins', 'weft.sock'),
    get pid() {
      return pid;
    },
    docker,
    async restart() {
      await stopDaemon();
      await launch();
    },
    async stop() {
      if (isStopped) return;
      isStopped = true;
      if (pid !== 0 && isAlive(pid)) {
        const ids = await docker(['ps', '-aq'], 20_000).catch(() => '');
        if (ids.length > 0) await docker(['rm', '-f', ...ids.split('\n')], 60_000).catch(() => undefined);
      }
      await stopDaemon().catch(() => undefined);
      // Shims (and anything else) of this engine: by the directory in their command line, by PID.
      for (const p of processesMentioning(dir)) signal(p, 'SIGKILL');
      for (const m of mountsUnder(dir).reverse()) await run('umount', ['-l', m]).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
    logTail(lines = 40) {
      try {
        return readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '(no log)';
      }
    },
  };
  try {
    await launch();
  } catch (err) {
    const tail = engine.logTail();
    await engine.stop();
    throw new Error(`${(err as Error).message}\n--- dockerd log ---\n${tail}`, { cause: err });
  }
  return engine;
}

/** Import `busybox:weft` into `engine` from Debian's busybox-static (a rootfs of /bin/busybox and its links). */
export async function importBusybox(engine: DockerEngine): Promise<void> {
  const rootfs = mkdtempSync(join(engine.dir, 'rootfs-'));
  try {
    mkdirSync(join(rootfs, 'bin'));
    copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'));
    for (const l of BUSYBOX_LINKS) symlinkSync('busybox', join(rootfs, 'bin', l));
    for (const d of ['etc', 'tmp', 'proc', 'sys', 'dev']) mkdirSync(join(rootfs, d));
    await new Promise<void>((resolve, reject) => {
      const tar = spawn('tar', ['-C', rootfs, '-c', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const imp = spawn('docker', ['-H', engine.api, 'import', '-c', 'CMD ["sh"]', '-', BUSYBOX_IMAGE], {
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      let err = '';
      imp.stderr!.on('data', (d) => (err += String(d)));
      tar.stdout!.pipe(imp.stdin!);
      imp.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`docker import failed (${code}): ${err}`))));
    });
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
}

/** Short base directory for engines (socket paths must stay under 108 bytes); remove it after the engines. */
export function dockerBaseDir(prefix: string): string {
  return mkdtempSync(join('/tmp', `${prefix}-`));
}

function processesMentioning(dir: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dir)) out.push(Number(entry));
    } catch {
      /* exited */
    }
  }
  return out;
}

function mountsUnder(dir: string): string[] {
  try {
    return readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(`${dir}/`));
  } catch {
    return [];
  }
}

function run(cmd: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => execFile(cmd, args, (err) => (err ? reject(err) : resolve())));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * The setup the Docker netns files share: test hosts with weft (a password, IPAM range 10.32.0.0/12, default subnet
 * 10.32.0.0/16, consensus among all), and on each host a dockerd with busybox imported, weft serving its plugin and
 * reaching it. Call inside a `describe`; removed in `afterAll` (engines first, then routers and hosts), also on failure.
 */
export interface DockerWeftNetwork {
  net: WeftNetwork;
  engines: DockerEngine[];
  /** `weft launch` arguments for host i (0-based), to relaunch a router the same way. */
  launchArgs(i: number): string[];
}

export const DOCKER_TEST_RANGE = '10.32.0.0/12';
export const DOCKER_TEST_SUBNET = '10.32.0.0/16';

export function dockerWeftNetwork(count: number, password: string): DockerWeftNetwork {
  const net = weftNetwork(count, { env: { WEFT_PASSWORD: password } });
  const engines: DockerEngine[] = [];
  let baseDir = '';
  const setup: DockerWeftNetwork = {
    net,
    engines,
    launchArgs: (i) => [
      '--plugin-socket',
      engines[i]!.pluginSocket,
      '--docker-api',
      engines[i]!.api,
      '--ipalloc-range',
      DOCKER_TEST_RANGE,
      '--ipalloc-default-subnet',
      DOCKER_TEST_SUBNET,
      '--ipalloc-init',
      `consensus=${count}`,
      ...(i === 0 ? [] : [net.hosts.host(1).ip]),
    ],
  };
  beforeAll(async () => {
    baseDir = dockerBaseDir(net.hosts.prefix);
    for (const host of net.hosts.hosts) {
      const engine = await startDockerd(host, baseDir);
      engines.push(engine);
      await importBusybox(engine);
    }
    for (const [i, w] of net.weft.entries()) await w.launch(setup.launchArgs(i));
    for (const w of net.weft) await w.run(['prime', '--timeout', '60'], 70_000);
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') for (const e of engines) console.error(`--- h${e.host.index} dockerd log ---\n${e.logTail()}`);
  });
  afterAll(async () => {
    for (const e of engines) await e.stop();
    if (baseDir) rmSync(baseDir, { recursive: true, force: true });
  });
  return setup;
}

/** The container's address on network `net` (docker inspect). */
export async function dockerAddressOf(engine: DockerEngine, container: string, net = 'weft'): Promise<string> {
  return engine.docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, container]);
}

/** Whether `container` pings `ip` (busybox ping inside it). */
export async function dockerPing(engine: DockerEngine, container: string, ip: string, count = 2): Promise<boolean> {
  try {
    await engine.docker(['exec', container, 'ping', '-c', String(count), '-W', '2', ip], 30_000);
    return true;
  } catch {
    return false;
  }
}
