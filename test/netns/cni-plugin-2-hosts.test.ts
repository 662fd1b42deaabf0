/**
 * The weft CNI plugin driven exactly as a runtime drives it (environment + stdin, result on stdout), installed by
 * `weft setup-cni` into a directory of the test's own, against real daemons on two test hosts: ADD, CHECK, DEL and
 * their error paths, each answer checked against the spec's JSON shapes; then a CNI container on h1 and a
 * `weft attach` container on h2 ping each other across the mesh.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, waitFor } from '../harness/weft.js';
import { weftNetwork } from '../harness/network.js';
import { execCni, expectAddResult, expectCniError } from '../harness/cni.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const ipamArgs = ['--ipalloc-range', '10.36.0.0/16', '--ipalloc-init', 'consensus=2'];
const conf = (extra: Record<string, unknown> = {}) => ({ cniVersion: '1.0.0', name: 'weft', type: 'weft', ...extra });

describe.skipIf(skip)('the weft CNI plugin, driven as a runtime drives it, on 2 hosts', () => {
  const net = weftNetwork(2);
  let dir = '';
  let plugin = '';
  const c: TestContainer[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-cni-'));
    plugin = join(dir, 'bin', 'weft');
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('setup-cni installs the plugin and a conflist, and says it wrote them; a second run changes nothing', async () => {
    const w = net.weft[0]!;
    const first = await w.run(['setup-cni', '--bin-dir', join(dir, 'bin'), '--conf-dir', join(dir, 'net.d')]);
    expect(first).toContain(`wrote ${plugin}`);
    expect(first).toContain(`wrote ${join(dir, 'net.d', '10-weft.conflist')}`);
    expect(first).toMatch(/portmap is not in .*: not chained/);
    expect(statSync(plugin).mode & 0o111).not.toBe(0);
    const conflist = JSON.parse(readFileSync(join(dir, 'net.d', '10-weft.conflist'), 'utf8')) as {
      name: string;
      cniVersion: string;
      plugins: Array<{ type: string }>;
    };
    expect(conflist).toMatchObject({ cniVersion: '1.0.0', name: 'weft', plugins: [{ type: 'weft' }] });
    const second = await w.run(['setup-cni', '--bin-dir', join(dir, 'bin'), '--conf-dir', join(dir, 'net.d')]);
    expect(second).not.toContain('wrote');
    expect(second).toContain(`unchanged ${plugin}`);
  });

  it('answers VERSION with the versions it speaks, without a daemon', async () => {
    const out = await execCni(net.hosts.host(1), plugin, { command: 'VERSION' }, { cniVersion: '0.4.0' });
    expect(out.exitCode).toBe(0);
    expect(out.json).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] });
  });

  it('ADD while the daemon is not running fails with code 11 (try again later), saying weft is not running', async () => {
    const ct = await net.hosts.addContainer(1, 'early');
    const out = await execCni(net.hosts.host(1), plugin, { command: 'ADD', containerId: 'early1', netns: ct.path, ifname: 'eth0' }, conf());
    const e = expectCniError(out, 11);
    expect(e['msg']).toBe('weft is not running');
    expect(e['details']).toMatch(/weft launch/);
    expect(out.stderr).toMatch(/not running/);
  });

  it('with the routers up: ADD answers a 1.0.0 result, CHECK passes, weft ps shows the container id', async () => {
    await net.weft[0]!.launch(ipamArgs);
    await net.weft[1]!.launch([...ipamArgs, net.hosts.host(1).ip]);
    for (const w of net.weft) await w.run(['prime', '--timeout', '40'], 50_000);
    c.push(await net.hosts.addContainer(1, 'c1'));
    const h1 = net.hosts.host(1);
    const add = await execCni(
      h1,
      plugin,
      {
        command: 'ADD',
        containerId: 'ctr-one',
        netns: c[0]!.path,
        ifname: 'eth0',
        args: 'IgnoreUnknown=1;K8S_POD_NAME=web-0;K8S_POD_NAMESPACE=default',
      },
      conf(),
    );
    const address = expectAddResult(add, { cniVersion: '1.0.0', ifname: 'eth0', netns: c[0]!.path });
    expect(address).toMatch(/^10\.36\.\d+\.\d+\/16$/);
    // The interface is really there, with that address.
    expect(await c[0]!.exec('ip', ['-o', 'addr', 'show', 'dev', 'eth0'])).toContain(address);

    const check = await execCni(
      h1,
      plugin,
      { command: 'CHECK', containerId: 'ctr-one', netns: c[0]!.path, ifname: 'eth0' },
      conf({ prevResult: add.json }),
    );
    expect(check.exitCode, check.stdout + check.stderr).toBe(0);
    expect(check.stdout.trim()).toBe('');

    const ps = await net.weft[0]!.run(['ps']);
    expect(ps).toMatch(new RegExp(`^ctr-one eth0 [0-9a-f:]{17} ${address.replace(/\./g, '\\.')}$`, 'm'));
  });

  it('ADD again for the same container and interface fails (the interface exists) and leaves the first intact', async () => {
    const h1 = net.hosts.host(1);
    const again = await execCni(h1, plugin, { command: 'ADD', containerId: 'ctr-one', netns: c[0]!.path, ifname: 'eth0' }, conf());
    const e = expectCniError(again, 101);
    expect(e['details']).toMatch(/already has/);
    const other = await execCni(h1, plugin, { command: 'ADD', containerId: 'ctr-one', netns: c[0]!.path, ifname: 'eth1' }, conf());
    expectCniError(other, 101);
    expect(await c[0]!.exec('ip', ['-o', 'link', 'show', 'dev', 'eth0'])).toContain('eth0');
    expect((await net.weft[0]!.report()).endpoints.filter((x) => x.containerId === 'ctr-one')).toHaveLength(1);
  });

  it('CHECK fails with code 102 when the interface lost its address, and names it', async () => {
    const h1 = net.hosts.host(1);
    const report = await net.weft[0]!.report();
    const ep = report.endpoints.find((x) => x.containerId === 'ctr-one')!;
    const prevResult = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'eth0', mac: ep.mac, sandbox: c[0]!.path }],
      ips: [{ address: '10.36.250.250/16', interface: 0 }],
      dns: {},
    };
    const out = await execCni(
      h1,
      plugin,
      { command: 'CHECK', containerId: 'ctr-one', netns: c[0]!.path, ifname: 'eth0' },
      conf({ prevResult }),
    );
    const e = expectCniError(out, 102);
    expect(e['details']).toContain('10.36.250.250/16');
  });

  it('DEL removes the interface and frees the address; a second DEL succeeds too; CHECK then fails', async () => {
    const h1 = net.hosts.host(1);
    const address = (await net.weft[0]!.report()).endpoints.find((x) => x.containerId === 'ctr-one')!.addresses[0]!;
    const call = { command: 'DEL' as const, containerId: 'ctr-one', netns: c[0]!.path, ifname: 'eth0' };
    const del = await execCni(h1, plugin, call, conf());
    expect(del.exitCode, del.stdout + del.stderr).toBe(0);
    expect(del.stdout.trim()).toBe('');
    await expect(c[0]!.exec('ip', ['link', 'show', 'dev', 'eth0'])).rejects.toThrow(/does not exist/);
    const report = await net.weft[0]!.report();
    expect(report.endpoints.some((x) => x.containerId === 'ctr-one')).toBe(false);
    const twice = await execCni(h1, plugin, call, conf());
    expect(twice.exitCode, twice.stdout + twice.stderr).toBe(0);
    // DEL without CNI_NETNS (the namespace is gone) is fine as well.
    const noNetns = await execCni(h1, plugin, { command: 'DEL', containerId: 'ctr-one', ifname: 'eth0' }, conf());
    expect(noNetns.exitCode).toBe(0);
    const check = await execCni(
      h1,
      plugin,
      { command: 'CHECK', containerId: 'ctr-one', netns: c[0]!.path, ifname: 'eth0' },
      conf({ prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: c[0]!.path }], ips: [] } }),
    );
    expectCniError(check, 102);
    // The address is free again: the next container on this host is given it.
    const next = await execCni(h1, plugin, { command: 'ADD', containerId: 'ctr-two', netns: c[0]!.path, ifname: 'eth0' }, conf());
    expect(expectAddResult(next, { cniVersion: '1.0.0', ifname: 'eth0', netns: c[0]!.path })).toBe(address);
    expect(
      (await execCni(h1, plugin, { command: 'DEL', containerId: 'ctr-two', netns: c[0]!.path, ifname: 'eth0' }, conf())).exitCode,
    ).toBe(0);
  });

  it('ADD with a missing netns fails with code 3 (nothing for the runtime to clean up)', async () => {
    const h1 = net.hosts.host(1);
    const out = await execCni(
      h1,
      plugin,
      { command: 'ADD', containerId: 'ghost', netns: '/run/netns/weft-no-such-ns', ifname: 'eth0' },
      conf(),
    );
    const e = expectCniError(out, 3);
    expect(e['details']).toContain('/run/netns/weft-no-such-ns');
    expect((await net.weft[0]!.report()).endpoints.some((x) => x.containerId === 'ghost')).toBe(false);
  });

  it('refuses malformed configuration (6, 7), an unsupported cniVersion (1) and a missing variable (4)', async () => {
    const h1 = net.hosts.host(1);
    const ct = await net.hosts.addContainer(1, 'bad');
    const call = { command: 'ADD' as const, containerId: 'bad1', netns: ct.path, ifname: 'eth0' };
    expectCniError(await execCni(h1, plugin, call, '{"cniVersion": "1.0.0", "name": '), 6);
    const noName = expectCniError(await execCni(h1, plugin, call, { cniVersion: '1.0.0', type: 'weft' }), 7);
    expect(noName['msg']).toContain('"name"');
    const future = expectCniError(await execCni(h1, plugin, call, conf({ cniVersion: '2.0.0' })), 1, '2.0.0');
    expect(future['details']).toContain('0.3.0, 0.3.1, 0.4.0, 1.0.0');
    const noIfname = expectCniError(await execCni(h1, plugin, { command: 'ADD', containerId: 'bad1', netns: ct.path }, conf()), 4);
    expect(noIfname['msg']).toContain('CNI_IFNAME');
    expectCniError(await execCni(h1, plugin, call, conf({ ipMasq: true })), 2);
    // Nothing was made for any of them.
    expect(await ct.exec('ip', ['-o', 'link'])).not.toContain('eth0');
  });

  it('speaks 0.3.1 too: ips carry "version", and CHECK is refused as 0.3.1 has none', async () => {
    const h1 = net.hosts.host(1);
    const ct = await net.hosts.addContainer(1, 'old');
    const call = { containerId: 'old1', netns: ct.path, ifname: 'eth0' };
    const add = await execCni(h1, plugin, { command: 'ADD', ...call }, conf({ cniVersion: '0.3.1' }));
    expectAddResult(add, { cniVersion: '0.3.1', ifname: 'eth0', netns: ct.path });
    expectCniError(
      await execCni(h1, plugin, { command: 'CHECK', ...call }, conf({ cniVersion: '0.3.1', prevResult: add.json })),
      1,
      '0.3.1',
    );
    expect((await execCni(h1, plugin, { command: 'DEL', ...call }, conf({ cniVersion: '0.3.1' }))).exitCode).toBe(0);
  });

  it('delegates IPAM to host-local from CNI_PATH when the configuration names it, and DEL releases it there', async () => {
    const hostLocal = '/usr/lib/cni/host-local';
    if (!existsSync(hostLocal)) throw new Error(`${hostLocal} is missing: scripts/setup.sh installs containernetworking-plugins`);
    const h1 = net.hosts.host(1);
    const ct = await net.hosts.addContainer(1, 'hl');
    const dataDir = join(dir, 'host-local');
    const ipam = { type: 'host-local', subnet: '10.36.200.0/24', rangeStart: '10.36.200.10', rangeEnd: '10.36.200.20', dataDir };
    const call = { containerId: 'hl1', netns: ct.path, ifname: 'eth0', path: `${join(dir, 'bin')}:/usr/lib/cni` };
    const add = await execCni(h1, plugin, { command: 'ADD', ...call }, conf({ ipam }));
    const address = expectAddResult(add, { cniVersion: '1.0.0', ifname: 'eth0', netns: ct.path });
    expect(address).toBe('10.36.200.10/24');
    expect(existsSync(join(dataDir, 'weft', '10.36.200.10'))).toBe(true);
    const check = await execCni(h1, plugin, { command: 'CHECK', ...call }, conf({ ipam, prevResult: add.json }));
    expect(check.exitCode, check.stdout + check.stderr).toBe(0);
    expect((await execCni(h1, plugin, { command: 'DEL', ...call }, conf({ ipam }))).exitCode).toBe(0);
    expect(existsSync(join(dataDir, 'weft', '10.36.200.10'))).toBe(false);
    // An IPAM plugin that is not there: code 103, naming where it looked.
    const missing = expectCniError(await execCni(h1, plugin, { command: 'ADD', ...call }, conf({ ipam: { type: 'no-such-ipam' } })), 103);
    expect(missing['details']).toContain('no-such-ipam');
  });

  it('mixed: a CNI container on h1 and a `weft attach` container on h2 ping each other across the mesh', async () => {
    const h1 = net.hosts.host(1);
    const cni = await net.hosts.addContainer(1, 'mix');
    const add = await execCni(h1, plugin, { command: 'ADD', containerId: 'mixed-cni', netns: cni.path, ifname: 'eth0' }, conf());
    const cniIp = expectAddResult(add, { cniVersion: '1.0.0', ifname: 'eth0', netns: cni.path }).split('/')[0]!;
    const attached = await net.hosts.addContainer(2, 'mix');
    const attachedIp = (await net.weft[1]!.run(['attach', '--netns', attached.ns])).trim().split('/')[0]!;
    await waitFor(
      'connections established',
      async () => (await net.weft[0]!.report()).router.connections.some((x) => x.state === 'established'),
      30_000,
    );
    expect(await waitFor('CNI container -> weft attach container', () => canPing(cni, attachedIp), 20_000)).toBe(true);
    expect(await waitFor('weft attach container -> CNI container', () => canPing(attached, cniIp), 20_000)).toBe(true);
    expect(
      (await execCni(h1, plugin, { command: 'DEL', containerId: 'mixed-cni', netns: cni.path, ifname: 'eth0' }, conf())).exitCode,
    ).toBe(0);
  });
});
