/**
 * Complete routers in one process: each is the real `Daemon` (control plane, IPAM, snapshot builder, the sleeve)
 * given memory parts through its deps object (daemon/daemon-deps.ts): the gossip `MemoryNetwork`, a memory store kept
 * across restarts, a sleeve over `MemoryCapture` and `MemoryUnderlay`, one `FakeClock` and seeded randomness. What a
 * test does to a router it does through `WeftControl`, as the API would.
 *
 * `SimDatapath` is a data path that records what it was told (snapshots, attaches) and carries frames with a real
 * `Sleeve`, so a frame injected on one router's capture reaches the others' captures through the snapshots the
 * daemons built.
 */
import { FakeClock } from '../../runtime/clock.js';
import { SeededRandom } from '../../runtime/random.js';
import { silentLogger, type Logger } from '../../runtime/logger.js';
import { MemoryStore } from '../../runtime/store.js';
import { MemoryNetwork } from '../../gossip/memory-transport.js';
import { MemoryCapture } from '../../router/memory-capture.js';
import { MemoryUdpNetwork, MemoryUnderlay } from '../../router/memory-underlay.js';
import { Sleeve } from '../../router/sleeve.js';
import type { ForwardingSnapshot, PeerHealth, PeerId } from '../../router/datapath.js';
import type { AttachRequest, DatapathReport, EndpointReport } from '../../api/control.js';
import { resolveConfig, type WeftConfig } from '../../config/launch.js';
import { Daemon } from '../../daemon/daemon.js';
import type { DaemonDatapath } from '../../daemon/daemon-deps.js';
import type { Transport } from '../../gossip/transport.js';
import { splitAddress } from '../../runtime/address.js';

/** A data path over memory parts that remembers what the daemon told it. */
export class SimDatapath implements DaemonDatapath {
  readonly underlayMtuBytes = 1500;
  readonly overlayMtuBytes = 1376;
  readonly capture: MemoryCapture;
  readonly underlay: MemoryUnderlay;
  readonly sleeve: Sleeve;
  /** Every snapshot applied, in order. */
  readonly snapshots: ForwardingSnapshot[] = [];
  /** Every attach request, as the daemon resolved it (IPAM addresses filled in). */
  readonly attaches: AttachRequest[] = [];
  private endpoints: EndpointReport[] = [];

  constructor(clock: FakeClock, network: MemoryUdpNetwork, host: string, log: Logger) {
    this.capture = new MemoryCapture({ clock }, { name: `${host}-tap` });
    this.underlay = new MemoryUnderlay({ network }, { address: host });
    this.sleeve = new Sleeve({ capture: this.capture, underlay: this.underlay, clock, log });
  }

  start(): Promise<void> {
    return this.sleeve.start();
  }
  stop(): Promise<void> {
    return this.sleeve.stop();
  }
  apply(snapshot: ForwardingSnapshot): void {
    this.snapshots.push(snapshot);
    this.sleeve.apply(snapshot);
  }
  onHealthChange(listener: (peer: PeerId, health: PeerHealth) => void): void {
    this.sleeve.onHealthChange(listener);
  }
  peerHealth(): ReadonlyMap<PeerId, PeerHealth> {
    return this.sleeve.peerHealth();
  }
  carriers(): Map<string, { carrier: 'fastdp' | 'sleeve'; reason: string }> {
    return new Map();
  }
  report(): DatapathReport {
    return { mode: 'sleeve', counters: this.sleeve.counters() } as DatapathReport;
  }
  cachedEndpoints(): EndpointReport[] {
    return this.endpoints;
  }
  async attach(request: AttachRequest): Promise<EndpointReport> {
    this.attaches.push(request);
    const endpoint: EndpointReport = {
      target: request.target,
      interface: request.ifname ?? 'ethwe0',
      mac: '',
      addresses: [...request.addresses],
    };
    this.endpoints = [...this.endpoints.filter((e) => e.target !== request.target), endpoint];
    return endpoint;
  }
  async detach(target: string): Promise<void> {
    this.endpoints = this.endpoints.filter((e) => e.target !== target);
  }
  async detachContainer(): Promise<boolean> {
    return false;
  }
  async expose(cidrs: string[]): Promise<string[]> {
    return cidrs;
  }
  async hide(cidrs: string[]): Promise<string[]> {
    return cidrs;
  }
  async exposed(): Promise<string[]> {
    return [];
  }
}

export interface SimRouter {
  readonly index: number;
  readonly host: string;
  readonly store: MemoryStore;
  daemon: Daemon;
  datapath: SimDatapath;
  launches: number;
}

/** A world of routers: one clock, one gossip network, one UDP network, seeded. */
export class WholeRouterWorld {
  readonly clock = new FakeClock();
  readonly gossip: MemoryNetwork;
  readonly udp: MemoryUdpNetwork;
  readonly routers: SimRouter[] = [];

  constructor(
    readonly seed: number,
    private readonly options: {
      latencyMs?: number;
      withDatapath?: boolean;
      /** Extra ms before a control dial from one host to another reaches the far end (a slow SYN); 0 for none. */
      dialDelayMs?: (fromHost: string, toHost: string) => number;
    } = {},
  ) {
    this.gossip = new MemoryNetwork(this.clock, { latencyMs: options.latencyMs ?? 1 });
    this.udp = new MemoryUdpNetwork({ clock: this.clock, random: new SeededRandom(seed ^ 0x5a5a) }, { latencyMs: options.latencyMs ?? 1 });
  }

  static host(i: number): string {
    return `10.0.${i >> 8}.${(i & 255) + 1}`;
  }

  /** The launch config of router `i` with `args` (and no DNS, Docker, metrics or password: none is simulated). */
  config(i: number, args: readonly string[]): WeftConfig {
    const base = ['--no-dns', '--plugin-socket', '', '--docker-api', '', '--metrics-addr', ''];
    return resolveConfig(
      [...base, '--listen-addr', WholeRouterWorld.host(i), '--nickname', `r${i}`, ...args],
      {},
      {
        readFile: () => '',
        hostname: () => `r${i}`,
      },
    );
  }

  /** Launch router `i` (again, after `stop`: same store, so the same peer name and IPAM state). */
  async launch(i: number, args: readonly string[] = []): Promise<SimRouter> {
    const host = WholeRouterWorld.host(i);
    const existing = this.routers[i];
    const store = existing?.store ?? new MemoryStore();
    // A peer name from the seed, so runs repeat (a real router draws one from the OS once and keeps it).
    if (store.read('peer-name') === undefined) store.write('peer-name', `${peerNameOf(this.seed, i)}\n`);
    const launches = (existing?.launches ?? 0) + 1;
    let datapath: SimDatapath | undefined;
    const config = this.config(i, this.options.withDatapath === false ? ['--no-datapath', ...args] : args);
    const daemon = new Daemon(config, {
      log: silentLogger,
      clock: this.clock,
      random: new SeededRandom(this.seed * 1000 + i * 10 + launches),
      store,
      transport: this.transport(host),
      localHosts: () => [host],
      datapath: async (_config, parts) => (datapath = new SimDatapath(this.clock, this.udp, host, parts.log)),
      launchUid: () => String(this.seed * 1_000_000 + i * 1000 + launches),
      isServing: false,
    });
    const router: SimRouter = { index: i, host, store, daemon, datapath: undefined as unknown as SimDatapath, launches };
    this.routers[i] = router;
    await daemon.start();
    router.datapath = datapath!;
    return router;
  }

  /** The gossip transport of `host`, with the `dialDelayMs` knob applied to its dials. */
  private transport(host: string): Transport {
    const t = this.gossip.transport(host);
    const delayOf = this.options.dialDelayMs;
    if (delayOf === undefined) return t;
    return {
      listen: (address, onConnection) => t.listen(address, onConnection),
      dial: (address, timeoutMs) => {
        const delay = delayOf(host, splitAddress(address).host);
        if (delay <= 0) return t.dial(address, timeoutMs);
        return new Promise((resolve, reject) => {
          this.clock.setTimeout(() => t.dial(address, timeoutMs).then(resolve, reject), delay);
        });
      },
    };
  }

  /** Cut router `i` off from every other (control and data), until `heal(i)`. */
  isolate(i: number): void {
    for (const r of this.routers) {
      if (r === undefined || r.index === i) continue;
      this.gossip.partition(WholeRouterWorld.host(i), r.host);
      this.udp.partition(WholeRouterWorld.host(i), r.host);
    }
  }

  heal(i: number): void {
    for (const r of this.routers) {
      if (r === undefined || r.index === i) continue;
      this.gossip.heal(WholeRouterWorld.host(i), r.host);
      this.udp.heal(WholeRouterWorld.host(i), r.host);
    }
  }

  /** Advance fake time in `stepMs` steps until `done()` (checked every step) or `limitMs`; the simulated ms taken. */
  async runUntil(done: () => boolean, limitMs: number, stepMs = 10): Promise<number> {
    const start = this.clock.now();
    while (this.clock.now() - start < limitMs) {
      this.clock.advance(stepMs);
      for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
      if (done()) return this.clock.now() - start;
    }
    return Infinity;
  }

  /** Await `promise` while fake time runs (IPAM waits for consensus on the clock); throws if it takes over `limitMs`. */
  async settle<T>(promise: Promise<T>, limitMs = 60_000): Promise<T> {
    let outcome: { value: T } | { err: unknown } | undefined;
    promise.then(
      (value) => (outcome = { value }),
      (err: unknown) => (outcome = { err }),
    );
    await this.runUntil(() => outcome !== undefined, limitMs);
    if (outcome === undefined) throw new Error(`not settled within ${limitMs} simulated ms`);
    if ('err' in outcome) throw outcome.err;
    return outcome.value;
  }

  async stopAll(): Promise<void> {
    for (const r of this.routers) if (r !== undefined) await r.daemon.stop();
  }
}

/** A peer name (six hex octets) from the seed and the router's index. */
export function peerNameOf(seed: number, i: number): string {
  const bytes = [0x7a, (seed >>> 8) & 255, seed & 255, (i >>> 16) & 255, (i >>> 8) & 255, i & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
