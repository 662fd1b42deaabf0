/**
 * weft as an operator installs and runs it, without the repository: `npm pack`, `npm install -g --prefix` (the native
 * addon builds at install), then the installed `weft` launches a router on a test host that meshes with a router run
 * from the repo. Also: `launch --foreground` (what the systemd unit runs) logs JSON lines on stdout and exits 0 on
 * SIGTERM with its pid file removed, and peers added with `weft connect` survive a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { netnsSkipReason } from '../harness/hosts.js';
import { weftNetwork } from '../harness/network.js';
import { builtSkipReason, repoRoot, waitFor, weftOn, type WeftHost } from '../harness/weft.js';

const run = promisify(execFile);
const skip = netnsSkipReason() ?? builtSkipReason();

describe.skipIf(skip)('installed package and service behaviour, 2 hosts', () => {
  const net = weftNetwork(2, { routersOn: [2] });
  const packDir = mkdtempSync(join(tmpdir(), 'weft-pack-'));
  const prefix = join(packDir, 'prefix');
  let installedCli = '';
  let h1: WeftHost;
  let foreground: ChildProcess | undefined;

  beforeAll(async () => {
    // dist/ is already built by setup; --ignore-scripts skips prepack so this run does not rewrite it under other tests.
    await run('npm', ['pack', '--ignore-scripts', '--pack-destination', packDir], { cwd: repoRoot, timeout: 120_000 });
    const tarball = readdirSync(packDir).find((f) => f.endsWith('.tgz'));
    expect(tarball).toBeDefined();
    await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', join(packDir, tarball!)], {
      cwd: packDir,
      timeout: 300_000,
    });
    installedCli = join(prefix, 'lib', 'node_modules', 'weft', 'dist', 'cli', 'main.js');
    h1 = net.track(weftOn(net.hosts.host(1), net.runDir, {}, { cliPath: installedCli, stateName: 'installed-h1' }));
  }, 420_000);

  afterAll(() => {
    if (foreground?.exitCode === null) foreground.kill('SIGKILL');
    rmSync(packDir, { recursive: true, force: true });
  });

  it('installs with the native addon built, and `weft` on PATH answers `version` outside the repository', async () => {
    expect(existsSync(join(prefix, 'lib', 'node_modules', 'weft', 'native', 'build', 'Release', 'weft_native.node'))).toBe(true);
    expect(existsSync(join(prefix, 'lib', 'node_modules', 'weft', 'node_modules', 'pino-pretty'))).toBe(false);
    const { stdout } = await run(join(prefix, 'bin', 'weft'), ['version'], {
      cwd: tmpdir(),
      env: { ...process.env, WEFT_HTTP_ADDR: '127.0.0.1:1' },
    });
    expect(stdout).toMatch(/^weft \d+\.\d+\.\d+/);
  });

  it('the installed weft launches a router that meshes with a router run from the repo', async () => {
    const h2 = net.weft[0]!;
    await h1.launch();
    await h2.launch();
    await h1.run(['connect', net.hosts.host(2).ip]);
    await waitFor('h1 and h2 connected', async () => (await h1.report()).router.connections.some((c) => c.state === 'established'), 30_000);
    expect(await h1.run(['status'])).toMatch(/Peers/i);
  });

  it('a peer added with `weft connect` is dialled again after a restart', async () => {
    await h1.run(['stop']);
    await h1.launch(); // no PEER arguments this time
    const targets = await h1.run(['status', 'targets']);
    expect(targets).toContain(`${net.hosts.host(2).ip}:6783`);
    await waitFor('h1 connected again', async () => (await h1.report()).router.connections.some((c) => c.state === 'established'), 30_000);
    await h1.run(['forget', net.hosts.host(2).ip]);
    await h1.run(['stop']);
    await h1.launch();
    expect(await h1.run(['status', 'targets'])).not.toContain(`${net.hosts.host(2).ip}:6783`);
    await h1.run(['stop']);
  });

  it('`launch --foreground` (the systemd unit) logs JSON lines on stdout and exits 0 on SIGTERM', async () => {
    const host = net.hosts.host(1);
    foreground = host.spawn(
      'env',
      [
        `WEFT_STATE_DIR=${h1.stateDir}`,
        'WEFT_DOCKER_API=',
        'WEFT_PLUGIN_SOCKET=',
        process.execPath,
        installedCli,
        'launch',
        '--foreground',
        '--nickname',
        'fg',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    foreground.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => foreground!.on('exit', (code) => resolve(code)));
    await waitFor('the foreground daemon to answer', async () => (await h1.run(['version'])).includes(`(pid ${foreground!.pid})`), 30_000);
    expect(existsSync(join(h1.stateDir, 'weft.pid'))).toBe(true);
    foreground.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 20_000))]);
    expect(code).toBe(0);
    expect(existsSync(join(h1.stateDir, 'weft.pid'))).toBe(false);
    const lines = stdout.trim().split('\n');
    const started = lines.map((l) => JSON.parse(l) as { msg?: string }).find((e) => e.msg === 'weft started');
    expect(started).toBeDefined();
  });

  it("the installed weft sets up its CNI plugin: the launcher runs the installed package's plugin", async () => {
    const cniDir = join(packDir, 'cni');
    const { stdout } = await run(
      join(prefix, 'bin', 'weft'),
      ['setup-cni', '--bin-dir', join(cniDir, 'bin'), '--conf-dir', join(cniDir, 'net.d')],
      { cwd: tmpdir() },
    );
    expect(stdout).toContain(`wrote ${join(cniDir, 'bin', 'weft')}`);
    expect(readFileSync(join(cniDir, 'bin', 'weft'), 'utf8')).toContain(
      join(prefix, 'lib', 'node_modules', 'weft', 'dist', 'cni', 'main.js'),
    );
    const probe = run(join(cniDir, 'bin', 'weft'), [], { cwd: tmpdir(), env: { CNI_COMMAND: 'VERSION' } });
    probe.child.stdin!.end('{"cniVersion": "1.0.0"}');
    const version = await probe;
    expect(JSON.parse(version.stdout)).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] });
  });
});
