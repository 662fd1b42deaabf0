/**
 * The test-host harness itself: three hosts on one underlay reach each other, cut/restore work pairwise, destroy
 * leaves nothing, and sweepStale removes only dead runs' namespaces.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHosts, MARKER_DIR, netnsSkipReason, sweepStale, type TestHost, type TestHosts } from '../harness/hosts.js';

const skip = netnsSkipReason();

function namespacesWith(prefix: string): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`${prefix}-`));
}

async function pings(from: TestHost, to: TestHost): Promise<boolean> {
  try {
    await from.exec('ping', ['-c', '1', '-W', '1', to.ip]);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(skip)('test hosts: 3 hosts on one underlay', () => {
  let net: TestHosts | undefined;

  beforeAll(async () => {
    net = await createHosts({ count: 3 });
  });
  afterAll(async () => {
    await net?.destroy();
  });

  it('names namespaces by prefix and gives each host an address on one /24', () => {
    const n = net!;
    expect(n.prefix).toMatch(/^w[0-9a-f]{4}$/);
    expect(n.hosts.map((h) => h.ns)).toEqual([1, 2, 3].map((i) => `${n.prefix}-h${i}`));
    expect(n.subnet).toMatch(/^10\.(2[0-4][0-9]|250)\.0\.0\/24$/);
    expect(namespacesWith(n.prefix).sort()).toEqual([`${n.prefix}-h1`, `${n.prefix}-h2`, `${n.prefix}-h3`, `${n.prefix}-ul`]);
  });

  it('lets every host ping every other host over the underlay', async () => {
    const [h1, h2, h3] = net!.hosts as [TestHost, TestHost, TestHost];
    expect(await pings(h1, h2)).toBe(true);
    expect(await pings(h1, h3)).toBe(true);
    expect(await pings(h2, h3)).toBe(true);
    expect(await pings(h3, h1)).toBe(true);
  });

  it('cut(1, 3) stops 1<->3 and leaves 1<->2 and 2<->3 alone; restore brings it back', async () => {
    const n = net!;
    const [h1, h2, h3] = n.hosts as [TestHost, TestHost, TestHost];
    await n.cut(1, 3);
    await n.cut(1, 3); // idempotent
    expect(await pings(h1, h3)).toBe(false);
    expect(await pings(h3, h1)).toBe(false);
    expect(await pings(h1, h2)).toBe(true);
    expect(await pings(h2, h3)).toBe(true);
    await n.restore(1, 3);
    expect(await pings(h1, h3)).toBe(true);
    expect(await h1.exec('iptables', ['-S'])).not.toContain('DROP');
  });

  it('isolate cuts one host from all others and rejoin undoes it', async () => {
    const n = net!;
    const [h1, h2, h3] = n.hosts as [TestHost, TestHost, TestHost];
    await n.isolate(h2);
    expect(await pings(h2, h1)).toBe(false);
    expect(await pings(h2, h3)).toBe(false);
    expect(await pings(h1, h3)).toBe(true);
    await n.rejoin(h2);
    expect(await pings(h2, h1)).toBe(true);
    expect(await pings(h2, h3)).toBe(true);
  });

  it('exec rejects with the command and its stderr', async () => {
    const err = await net!
      .host(1)
      .exec('ip', ['link', 'show', 'dev', 'nosuchdev'])
      .catch((e) => e);
    expect(err.code).toBe('HOST_COMMAND_FAILED');
    expect(err.stderr).toMatch(/does not exist/);
    expect(err.message).toContain(net!.host(1).ns);
  });

  it('adds container namespaces under a host, loopback up', async () => {
    const c = await net!.addContainer(1, 'c1');
    expect(c.ns).toBe(`${net!.prefix}-h1-c1`);
    expect(await c.exec('ip', ['-j', 'link', 'show', 'dev', 'lo'])).toContain('LOWER_UP');
  });

  it('destroy kills spawned processes and removes every namespace with the prefix and the marker; twice is fine', async () => {
    const n = net!;
    const child = n.host(2).spawn('sleep', ['600']);
    await new Promise((r) => child.once('spawn', r));
    const pid = child.pid!;
    await n.destroy();
    await n.destroy();
    expect(namespacesWith(n.prefix)).toEqual([]);
    expect(existsSync(join(MARKER_DIR, n.prefix))).toBe(false);
    expect(child.exitCode !== null || child.signalCode !== null).toBe(true);
    expect(() => process.kill(pid, 0)).toThrow();
    net = undefined;
  });
});

describe.skipIf(skip)('test hosts: sweepStale', () => {
  const live = `w${Math.floor(Math.random() * 0xffff)
    .toString(16)
    .padStart(4, '0')}`;
  const orphan = `wy${Math.floor(Math.random() * 0xffff)
    .toString(16)
    .padStart(4, '0')}`;
  let net: TestHosts | undefined;
  afterAll(async () => {
    await net?.destroy();
    spawnSync('ip', ['netns', 'del', `${orphan}-h1`]);
  });

  it('removes a run whose owner is dead and leaves live runs and unmarked namespaces alone', async () => {
    net = await createHosts({ count: 1, prefix: live });
    const dead = await createHosts({ count: 1 });
    // Hand the second run to a process that has exited, as if its test worker had crashed.
    const gone = spawnSync('true').pid!;
    writeFileSync(join(MARKER_DIR, dead.prefix), `owner=${gone}\nsubnet=${dead.subnet}\n`);
    execFileSync('ip', ['netns', 'add', `${orphan}-h1`]); // matches the pattern below but has no marker

    const swept = await sweepStale(/^wy?[0-9a-f]{4}$/);

    expect(swept).toContain(dead.prefix);
    expect(swept).not.toContain(live);
    expect(namespacesWith(dead.prefix)).toEqual([]);
    expect(namespacesWith(live)).toHaveLength(2);
    expect(namespacesWith(orphan)).toEqual([`${orphan}-h1`]);
  });
});
