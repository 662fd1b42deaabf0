/**
 * weftDNS assembled: the nameserver (records, gossip), the answer builder, upstream forwarding and the UDP+TCP
 * server. The daemon makes one, hands it the `dns` gossip channel, starts it, and tells it where to listen once it
 * knows (the listen address may come from IPAM, which can take a while: see daemon/dns-wiring.ts).
 */
import type { GossipChannel } from '../gossip/channel.js';
import type { PeerName } from '../gossip/peer-name.js';
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { Store } from '../runtime/store.js';
import { AnswerBuilder } from './answer.js';
import { canonicalAddress, DnsInputError, Nameserver, type RecordSource } from './nameserver.js';
import type { DnsReport } from './report.js';
import { DnsServer } from './server.js';
import { Upstream } from './upstream.js';

export interface WeftDnsDeps {
  clock: Clock;
  log: Logger;
  store?: Store;
}

export interface WeftDnsOptions {
  ourName: PeerName;
  /** @default 'weft.local.' */
  domain?: string;
  /** TTL of every answer, seconds. @default 1 */
  ttlSeconds?: number;
  /** @default '/etc/resolv.conf' */
  resolvConf?: string;
  /** CIDRs whose reverse lookups are ours (the IPAM range). @default [] */
  reverseRanges?: readonly string[];
  /** @default 600000 */
  tombstoneLifetimeMs?: number;
  /** How long one upstream server gets. @default 2000 */
  upstreamTimeoutMs?: number;
}

export class WeftDns {
  readonly nameserver: Nameserver;
  private readonly answers: AnswerBuilder;
  private upstream: Upstream;
  private server: DnsServer | undefined;
  private readonly ttlSeconds: number;
  private listenWaiters: Array<(addr: string | undefined) => void> = [];
  private isStopped = false;

  constructor(
    private readonly deps: WeftDnsDeps,
    private readonly options: WeftDnsOptions,
  ) {
    this.nameserver = new Nameserver(
      { clock: deps.clock, log: deps.log, ...(deps.store && { store: deps.store }) },
      {
        ourName: options.ourName,
        ...(options.domain !== undefined && { domain: options.domain }),
        ...(options.tombstoneLifetimeMs !== undefined && { tombstoneLifetimeMs: options.tombstoneLifetimeMs }),
      },
    );
    this.ttlSeconds = options.ttlSeconds ?? 1;
    this.answers = new AnswerBuilder(this.nameserver.records, {
      domain: this.nameserver.domain,
      ttlSeconds: this.ttlSeconds,
      reverseRanges: options.reverseRanges ?? [],
    });
    this.upstream = this.makeUpstream([]);
  }

  attach(channel: GossipChannel): void {
    this.nameserver.attach(channel);
  }

  /** Publish our persisted records and read the upstream servers. Does not listen yet (`listen`). */
  async start(): Promise<void> {
    this.nameserver.start();
    await this.upstream.start();
  }

  /** Serve DNS on `host:port`. Throws `DnsListenError` when it cannot bind. */
  async listen(host: string, port: number): Promise<string> {
    if (this.isStopped) throw new Error('weftDNS is stopped');
    // Our own address must never be an upstream: a resolv.conf naming weftDNS would loop.
    this.upstream.stop();
    this.upstream = this.makeUpstream([host]);
    await this.upstream.start();
    const server = new DnsServer({ log: this.deps.log, answers: this.answers, upstream: this.upstream }, { host, port });
    await server.start();
    this.server = server;
    for (const w of this.listenWaiters.splice(0)) w(server.address);
    return server.address;
  }

  /** Resolves with "host:port" once listening, or undefined after `timeoutMs` (or when stopped). */
  whenListening(timeoutMs: number): Promise<string | undefined> {
    if (this.server) return Promise.resolve(this.server.address);
    if (this.isStopped) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = this.deps.clock.setTimeout(() => {
        this.listenWaiters = this.listenWaiters.filter((w) => w !== done);
        resolve(undefined);
      }, timeoutMs);
      const done = (addr: string | undefined) => {
        timer.cancel();
        resolve(addr);
      };
      this.listenWaiters.push(done);
    });
  }

  /** The listen host, once listening. */
  get listenHost(): string | undefined {
    const a = this.server?.address;
    if (a === undefined) return undefined;
    return a.startsWith('[') ? a.slice(1, a.indexOf(']')) : a.slice(0, a.lastIndexOf(':'));
  }

  async stop(): Promise<void> {
    this.isStopped = true;
    for (const w of this.listenWaiters.splice(0)) w(undefined);
    this.nameserver.stop();
    this.upstream.stop();
    await this.server?.stop();
  }

  /** Register `name` -> addresses as ours, for `source` ('manual', 'attach:<target>', 'docker:<id>'). */
  register(name: string, addresses: readonly string[], source: RecordSource): string {
    if (addresses.length === 0) throw new DnsInputError(`give at least one address for ${name}`);
    return this.nameserver.register(name, addresses, source);
  }

  /** Withdraw what `source` registered (all, or `name` / its `addresses`). */
  withdraw(source: RecordSource, name?: string, addresses?: readonly string[]): number {
    return this.nameserver.withdraw(source, name, addresses);
  }

  /**
   * `weft dns-remove`: withdraw our records of `name` (only `addresses` of it when given), whatever registered
   * them. Throws `DnsInputError` naming the owner when the records are another router's, or when there are none.
   */
  remove(name: string, addresses: readonly string[]): number {
    const fqdn = this.nameserver.qualify(name);
    const canon = addresses.map(canonicalAddress);
    let n = 0;
    for (const s of this.nameserver.sources()) n += this.nameserver.withdraw(s, fqdn, canon.length > 0 ? canon : undefined);
    if (n > 0) return n;
    const others = this.nameserver.records
      .live()
      .filter((e) => e.name === fqdn && (canon.length === 0 || canon.includes(e.address)))
      .map((e) => e.owner);
    if (others.length > 0) {
      throw new DnsInputError(
        `${fqdn} is registered by router ${[...new Set(others)].join(', ')}, not this one: run weft dns-remove there (or weft rmpeer if it is gone for good)`,
      );
    }
    throw new DnsInputError(`no record ${fqdn}${canon.length > 0 ? ` -> ${canon.join(', ')}` : ''} to remove (weft status dns lists them)`);
  }

  /** Live addresses of `name` (qualified as `register` does). */
  lookup(name: string): string[] {
    return this.nameserver.addressesOf(this.nameserver.qualify(name));
  }

  report(): DnsReport {
    const listen = this.server?.address;
    return {
      domain: this.nameserver.domain,
      ...(listen !== undefined && { listen }),
      ttlSeconds: this.ttlSeconds,
      upstream: [...this.upstream.list()],
      records: this.nameserver.report().filter((r) => !r.isTombstone),
      counters: {
        ...(this.server?.counters ?? {}),
        ...this.upstream.counters,
        ...this.nameserver.counters,
        dns_records: this.nameserver.records.size,
      },
    };
  }

  private makeUpstream(excluded: string[]): Upstream {
    return new Upstream(
      { clock: this.deps.clock, log: this.deps.log },
      {
        ...(this.options.resolvConf !== undefined && { resolvConf: this.options.resolvConf }),
        ...(this.options.upstreamTimeoutMs !== undefined && { attemptTimeoutMs: this.options.upstreamTimeoutMs }),
        excluded,
      },
    );
  }
}
