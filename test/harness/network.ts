/**
 * The setup most netns test files share, in one call: test hosts, a run directory and a `WeftHost` per host, made
 * in a `beforeAll` and removed in an `afterAll` (also when a test failed), with each router's log printed for a
 * failed test. Plus a checked TCP transfer between two containers.
 *
 *   describe('...', () => {
 *     const net = weftNetwork(3, { env: { WEFT_PASSWORD: 'x' } });
 *     beforeAll(async () => { await net.weft[0]!.launch(); ... });   // runs after the network exists
 *     it('...', async () => { ... net.hosts.host(1).ip ... });
 *   });
 *
 * Call it inside a `describe`, before the file's own hooks: vitest runs `beforeAll`s in order and `afterAll`s in
 * reverse, so the network is up before the file's setup and goes last.
 */
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHosts, type NamespaceHandle, type TestContainer, type TestHosts } from './hosts.js';
import { dumpLogsOnFailure, repoRoot, waitFor, weftOn, type WeftHost } from './weft.js';

export interface WeftNetworkOptions {
  /** Environment for every router (e.g. WEFT_PASSWORD). @default {} */
  env?: Record<string, string>;
  /** Which hosts (1-based) get a router in `weft`. @default all */
  routersOn?: readonly number[];
  /** More environment for the router on host N (1-based), over `env`. @default {} */
  hostEnv?: Readonly<Record<number, Record<string, string>>>;
}

export interface WeftNetwork {
  /** Set once the `beforeAll` ran. */
  hosts: TestHosts;
  runDir: string;
  /** One per host in `routersOn`, in that order. */
  weft: WeftHost[];
  /** Add a router made later (its own state dir under `runDir`), so it is stopped and logged like the others. */
  track(w: WeftHost): WeftHost;
}

export function weftNetwork(count: number, options: WeftNetworkOptions = {}): WeftNetwork {
  const net = { weft: [] as WeftHost[] } as unknown as WeftNetwork;
  net.track = (w) => {
    net.weft.push(w);
    return w;
  };
  beforeAll(async () => {
    net.hosts = await createHosts({ count });
    net.runDir = mkdtempSync(join(tmpdir(), `${net.hosts.prefix}-`));
    const on = options.routersOn ?? net.hosts.hosts.map((h) => h.index);
    for (const i of on) net.weft.push(weftOn(net.hosts.host(i), net.runDir, { ...options.env, ...options.hostEnv?.[i] }));
  });
  afterEach((ctx) => dumpLogsOnFailure(ctx, net.weft));
  afterAll(async () => {
    for (const w of net.weft) await w.cleanup().catch(() => undefined);
    await net.hosts?.destroy();
    if (net.runDir) rmSync(net.runDir, { recursive: true, force: true });
  });
  return net;
}

export interface StartOptions {
  /** More `weft launch` arguments for the router on host i (1-based). @default none */
  launchArgs?: (i: number) => string[];
  /** More `weft attach` arguments for the container on host i (1-based), before the address. @default none */
  attachArgs?: (i: number) => string[];
}

/**
 * The start most netns files share: router 1 alone, every other router joining router 1, a container `c1` on each
 * host attached at `ip(i)/24`, then every router with an established connection to every other. Call it from a
 * `beforeAll` after `weftNetwork` (routers on all hosts). Returns the containers in host order.
 */
export async function startNetwork(net: WeftNetwork, ip: (i: number) => string, options: StartOptions = {}): Promise<TestContainer[]> {
  const { hosts, weft } = net;
  const count = weft.length;
  for (let i = 1; i <= count; i++) {
    const join = i === 1 ? [] : [hosts.host(1).ip];
    await weft[i - 1]!.launch([...(options.launchArgs?.(i) ?? []), ...join]);
  }
  const containers: TestContainer[] = [];
  for (let i = 1; i <= count; i++) {
    const ct = await hosts.addContainer(i, 'c1');
    containers.push(ct);
    await weft[i - 1]!.run(['attach', '--netns', ct.ns, ...(options.attachArgs?.(i) ?? []), `${ip(i)}/24`]);
  }
  for (const w of weft) {
    await waitFor(
      `h${w.host.index} to have ${count - 1} established connection(s)`,
      async () => {
        const r = await w.report();
        return r.router.connections.filter((x) => x.state === 'established').length === count - 1;
      },
      30_000,
    );
  }
  return containers;
}

const transferFixture = join(repoRoot, 'test/netns/fixtures/tcp-transfer.mjs');

/**
 * Send `megabytes` of TCP from `from` to `to` (a container or a host, listening on `toIp:port`) with
 * fixtures/tcp-transfer.mjs, and expect the sink to have received every byte with the same sha256.
 */
export async function expectTcpTransfer(
  from: NamespaceHandle,
  to: NamespaceHandle,
  toIp: string,
  megabytes: number,
  port: number,
): Promise<void> {
  const sink = to.spawn(process.execPath, [transferFixture, 'sink', String(port)]);
  let sinkOut = '';
  sink.stdout?.on('data', (d) => (sinkOut += String(d)));
  await waitFor('sink to listen', () => sinkOut.includes('listening'), 10_000, 100);
  const sent = (
    await from.exec(process.execPath, [transferFixture, 'source', toIp, String(port), String(megabytes)], { timeoutMs: 120_000 })
  ).trim();
  await waitFor('sink to finish', () => sinkOut.trim().split('\n').length >= 2, 30_000, 100);
  expect(sent.startsWith(`${megabytes * 1024 * 1024} `)).toBe(true);
  expect(sinkOut.trim().split('\n')[1]!.trim()).toBe(sent);
}
