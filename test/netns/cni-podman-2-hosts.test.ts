/**
 * A real runtime on the weft network: Debian's podman, on its CNI backend, runs a busybox container on the network
 * `weft` on each of two test hosts (podman runs inside the host's namespace, with `nsenter --net=`), and the two
 * ping each other across the mesh; `podman rm` runs the plugin's DEL, which frees the address.
 *
 * Everything podman keeps is the test's own: a containers.conf (CONTAINERS_CONF) with network_backend = "cni" (Debian
 * 12's podman 4.3 would pick netavark on a fresh store when netavark is installed, as apt's Recommends does), the
 * plugin dir and conflist from `weft setup-cni` into a temp dir, and per host --root, --runroot and --tmpdir under
 * it, with the vfs storage driver. The image is made here: Debian's busybox-static in a tarball, `podman import`ed,
 * since nothing can be pulled. The runtime is runc with explicit ulimits: crun refuses this machine's hybrid cgroup
 * layout, and podman's default rlimits are above what a test host may set. libcni keeps its result cache in
 * /var/lib/cni/results (not configurable in podman 4.3); podman rm removes those files, and afterAll removes any
 * left for this run's containers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsSkipReason, type TestHost } from '../harness/hosts.js';
import { builtSkipReason, waitFor } from '../harness/weft.js';
import { weftNetwork } from '../harness/network.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const ipamArgs = ['--ipalloc-range', '10.38.0.0/16', '--ipalloc-init', 'consensus=2'];
const BUSYBOX = '/bin/busybox';
const IMAGE = 'localhost/weft-busybox:test';

function run(file: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`\`${file} ${args.join(' ')}\` failed: ${stderr.trim() || stdout.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

describe.skipIf(skip)('podman (CNI backend) containers on the weft network on 2 hosts', () => {
  const net = weftNetwork(2);
  let dir = '';
  const containerIds: string[] = [];

  /** `podman ARGS` as host `h`'s runtime: inside its network namespace, with its own storage and state. */
  const podman = (h: TestHost, args: readonly string[], timeoutMs = 120_000): Promise<string> => {
    const state = join(dir, `h${h.index}`);
    const global = [
      '--root',
      join(state, 'root'),
      '--runroot',
      join(state, 'runroot'),
      '--tmpdir',
      join(state, 'tmp'),
      '--storage-driver',
      'vfs',
    ];
    return run(
      'nsenter',
      [`--net=${h.path}`, 'podman', ...global, ...args],
      { ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf') },
      timeoutMs,
    );
  };
  const ipOf = async (h: TestHost, name: string) =>
    (await podman(h, ['inspect', '--format', '{{.NetworkSettings.Networks.weft.IPAddress}}', name])).trim();

  beforeAll(async () => {
    for (const tool of ['podman', 'runc', 'conmon'])
      await run('sh', ['-c', `command -v ${tool}`]).catch(() => {
        throw new Error(
          `${tool} is not installed: scripts/setup.sh installs podman, runc, conmon, containernetworking-plugins and busybox-static`,
        );
      });
    if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: scripts/setup.sh installs busybox-static`);
    dir = mkdtempSync(join(tmpdir(), 'weft-podman-'));
    const bin = join(dir, 'bin');
    // Debian's portmap in the plugin dir, so setup-cni chains it (a real libcni plugin then reads weft's result).
    mkdirSync(bin, { recursive: true });
    symlinkSync('/usr/lib/cni/portmap', join(bin, 'portmap'));
    expect(await net.weft[0]!.run(['setup-cni', '--bin-dir', bin, '--conf-dir', join(dir, 'net.d')])).toContain(
      'portmap is chained after weft',
    );
    writeFileSync(
      join(dir, 'containers.conf'),
      [
        '[containers]',
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
        '[network]',
        'network_backend = "cni"',
        `cni_plugin_dirs = ["${bin}", "/usr/lib/cni"]`,
        `network_config_dir = "${join(dir, 'net.d')}"`,
        '[engine]',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        'runtime = "runc"',
        '',
      ].join('\n'),
    );
    // A busybox image from Debian's busybox-static: the binary and the applets the test uses.
    const rootfs = join(dir, 'rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'));
    for (const applet of ['sh', 'ping', 'ip', 'sleep', 'cat', 'hostname', 'httpd']) symlinkSync('busybox', join(rootfs, 'bin', applet));
    mkdirSync(join(rootfs, 'www'));
    writeFileSync(join(rootfs, 'www', 'index.html'), 'served by a podman container on weft\n');
    await run('tar', ['-C', rootfs, '-cf', join(dir, 'busybox.tar'), '.']);
    for (const h of net.hosts.hosts) await podman(h, ['import', join(dir, 'busybox.tar'), IMAGE]);

    await net.weft[0]!.launch(ipamArgs);
    await net.weft[1]!.launch([...ipamArgs, net.hosts.host(1).ip]);
    for (const w of net.weft) await w.run(['prime', '--timeout', '40'], 50_000);
    // h1 is exposed on the overlay and forwards, as a host publishing container ports does: its CNI containers get
    // it as their gateway.
    await net.weft[0]!.run(['expose']);
    await net.hosts.host(1).exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  }, 300_000);

  afterAll(async () => {
    if (!dir) return;
    for (const h of net.hosts?.hosts ?? []) await podman(h, ['rm', '--force', '--all', '--time', '0']).catch(() => undefined);
    // What libcni cached for this run's containers, should a podman rm have failed.
    const cache = '/var/lib/cni/results';
    if (existsSync(cache)) {
      for (const f of readdirSync(cache)) if (containerIds.some((id) => f.includes(id))) rmSync(join(cache, f), { force: true });
    }
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('uses the CNI backend from the test-owned containers.conf, and sees the weft network setup-cni wrote', async () => {
    const h1 = net.hosts.host(1);
    expect((await podman(h1, ['info', '--format', '{{.Host.NetworkBackend}}'])).trim()).toBe('cni');
    expect(await podman(h1, ['network', 'ls', '--format', '{{.Name}}'])).toMatch(/^weft$/m);
  });

  it('runs a container on the weft network on each host; they ping each other across the mesh; weft ps shows their ids', async () => {
    for (const h of net.hosts.hosts) {
      // ct1 serves HTTP on a published port (portmap), ct2 just waits.
      const command = h.index === 1 ? ['-p', '18080:8080', IMAGE, 'httpd', '-f', '-p', '8080', '-h', '/www'] : [IMAGE, 'sleep', '600'];
      const id = (await podman(h, ['run', '-d', '--pull', 'never', '--name', `ct${h.index}`, '--network', 'weft', ...command])).trim();
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      containerIds.push(id);
    }
    const ip1 = await ipOf(net.hosts.host(1), 'ct1');
    const ip2 = await ipOf(net.hosts.host(2), 'ct2');
    expect(ip1).toMatch(/^10\.38\.\d+\.\d+$/);
    expect(ip2).toMatch(/^10\.38\.\d+\.\d+$/);
    expect(ip1).not.toBe(ip2);
    // podman passes the container name as K8S_POD_NAME in CNI_ARGS: it reaches the daemon as the DNS name.
    expect(net.weft[0]!.logTail(200)).toMatch(/"container":"[0-9a-f]{64}".*"dnsName":"ct1"/);
    const ps1 = await net.weft[0]!.run(['ps']);
    expect(ps1).toContain(`${containerIds[0]} eth0 `);
    expect(ps1).toContain(ip1);
    expect(await net.weft[1]!.run(['ps'])).toContain(`${containerIds[1]} eth0 `);
    const ping = (h: TestHost, name: string, ip: string) =>
      podman(h, ['exec', name, 'ping', '-c', '1', '-W', '1', ip], 20_000).then(
        () => true,
        () => false,
      );
    expect(await waitFor('ct1 -> ct2', () => ping(net.hosts.host(1), 'ct1', ip2), 30_000)).toBe(true);
    expect(await waitFor('ct2 -> ct1', () => ping(net.hosts.host(2), 'ct2', ip1), 30_000)).toBe(true);
  });

  it("portmap, chained after weft, publishes ct1's port on h1: h2 fetches it through h1's underlay address", async () => {
    const h1 = net.hosts.host(1);
    // ct1 routes through h1 (exposed in its subnet): the gateway weft set.
    const route = await podman(h1, ['exec', 'ct1', 'ip', 'route']);
    expect(route).toMatch(/^default via 10\.38\.\d+\.\d+ dev eth0/m);
    // node as the client: busybox-static's wget crashes outside its image (static glibc).
    const fetchPage = `fetch('http://${h1.ip}:18080/', { signal: AbortSignal.timeout(3000) }).then((r) => r.text()).then((t) => process.stdout.write(t))`;
    const body = await waitFor(
      'h2 -> h1:18080',
      () =>
        net.hosts
          .host(2)
          .exec(process.execPath, ['-e', fetchPage])
          .catch(() => ''),
      30_000,
    );
    expect(body).toBe('served by a podman container on weft\n');
  });

  it('podman rm runs DEL: the endpoint goes and the address is free for the next container', async () => {
    const h1 = net.hosts.host(1);
    const ip1 = await ipOf(h1, 'ct1');
    await podman(h1, ['rm', '--force', '--time', '0', 'ct1']);
    const report = await net.weft[0]!.report();
    expect(report.endpoints.some((e) => e.containerId === containerIds[0])).toBe(false);
    const id = (await podman(h1, ['run', '-d', '--pull', 'never', '--name', 'ct3', '--network', 'weft', IMAGE, 'sleep', '600'])).trim();
    containerIds.push(id);
    expect(await ipOf(h1, 'ct3')).toBe(ip1);
  });
});
