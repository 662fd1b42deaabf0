/**
 * weft as Docker's IPAM driver (`--ipam-driver weft`): pools are subnets of weft's `--ipalloc-range`, addresses come
 * from weft's own allocator (the gossiped ring), so two hosts never hand out one address twice, whichever engine asks.
 *
 * Pool ids carry what RequestAddress needs (`weft:<subnet>:<ip-range>:<tag>`), so a pool keeps working after the weft
 * daemon restarts: dockerd stores the id and keeps using it. The pools in use are also kept in the Store
 * (`docker-pools`), to pick a free subnet for the next network without `--subnet` and to show them in `weft status`.
 *
 * Addresses are held in IPAM under `docker:<tag>:<n>` (the tag names the pool): ReleasePool gives back whatever the
 * pool still holds, so removing a network frees its addresses even if an engine forgot one.
 */
import { randomBytes } from 'node:crypto';
import { cidrRange, formatAddress, formatCidr, parseAddress, parseCidr, rangeCovers, type Cidr } from '../ipam/address.js';
import type { Logger } from '../runtime/logger.js';
import type { Store } from '../runtime/store.js';
import type { DockerPool } from './report.js';
import {
  GATEWAY_OPTION,
  PluginError,
  REQUEST_ADDRESS_TYPE,
  type ReleaseAddressRequest,
  type ReleasePoolRequest,
  type RequestAddressRequest,
  type RequestPoolRequest,
  type RequestPoolResponse,
} from './docker-protocol.js';
import { WeftError } from '../runtime/errors.js';

/** The part of weft's allocator the IPAM driver uses (ipam/allocator.ts implements it). */
export interface PluginIpam {
  /** An address for `ident` in `subnet` ("a.b.c.d/prefix"); waits for a ring; throws typed IPAM errors. */
  allocate(ident: string, subnet?: string): Promise<string>;
  /** Hold exactly `address` for `ident` ("a.b.c.d/prefix"); throws `IpamConflictError` when someone else holds it. */
  claim(ident: string, address: string): Promise<string>;
  /** Give one address back; false when this router did not hold it. */
  releaseAddress(address: string): boolean;
  /** Every holding on this router: "a.b.c.d/prefix" -> ident. */
  holdings(): Map<string, string>;
}

export interface IpamDriverOptions {
  /** weft's `--ipalloc-range`. */
  range: string;
  /** weft's `--ipalloc-default-subnet` (the `weft` network's subnet). */
  defaultSubnet: string;
  /** Prefix length of subnets picked for networks created without `--subnet`. @default 24 */
  autoPrefix?: number;
  /** Store key of the pool list. @default 'docker-pools' */
  storeKey?: string;
}

const ADDRESS_SPACE_LOCAL = 'weftlocal';
const ADDRESS_SPACE_GLOBAL = 'weftglobal';

/** The IPAM identity prefix of addresses handed to Docker. */
export const DOCKER_IDENT_PREFIX = 'docker:';

export class IpamDriver {
  private readonly range: Cidr;
  private readonly defaultSubnet: Cidr;
  private readonly autoPrefix: number;
  private readonly storeKey: string;
  private readonly pools = new Map<string, DockerPool>();
  private nextIdent = 0;
  /** Refusals and events by reason, for `weft report`. */
  readonly counters: Record<string, number> = {};

  constructor(
    private readonly deps: { ipam: PluginIpam; store: Store; log: Logger },
    options: IpamDriverOptions,
  ) {
    this.range = parseCidr(options.range);
    this.defaultSubnet = parseCidr(options.defaultSubnet);
    this.autoPrefix = options.autoPrefix ?? 24;
    this.storeKey = options.storeKey ?? 'docker-pools';
    this.load();
  }

  getCapabilities(): { RequiresMACAddress: boolean; RequiresRequestReplay: boolean } {
    return { RequiresMACAddress: false, RequiresRequestReplay: false };
  }

  getDefaultAddressSpaces(): { LocalDefaultAddressSpace: string; GlobalDefaultAddressSpace: string } {
    return { LocalDefaultAddressSpace: ADDRESS_SPACE_LOCAL, GlobalDefaultAddressSpace: ADDRESS_SPACE_GLOBAL };
  }

  /** The pools in use, in creation order. */
  listPools(): DockerPool[] {
    return [...this.pools.values()];
  }

  requestPool(r: RequestPoolRequest): RequestPoolResponse {
    if (r.V6) {
      throw new PluginError(
        'ERR_PLUGIN_IPV6',
        'weft IPAM is IPv4 only: create the network without --ipv6 (or with another IPAM driver for IPv6)',
      );
    }
    const subnet = r.Pool === '' ? this.freeSubnet() : this.checkSubnet(r.Pool, '--subnet');
    let ipRange = subnet;
    if (r.SubPool !== '') {
      ipRange = this.checkSubnet(r.SubPool, '--ip-range');
      if (!rangeCovers(cidrRange(subnet), cidrRange(ipRange))) {
        throw new PluginError(
          'ERR_PLUGIN_BAD_POOL',
          `--ip-range ${formatCidr(ipRange)} is not inside --subnet ${formatCidr(subnet)}: give a range inside the subnet`,
        );
      }
    }
    const tag = randomBytes(4).toString('hex');
    const pool: DockerPool = {
      id: `weft:${formatCidr(subnet)}:${formatCidr(ipRange)}:${tag}`,
      subnet: formatCidr(subnet),
      ipRange: formatCidr(ipRange),
    };
    this.pools.set(pool.id, pool);
    this.persist();
    this.deps.log.info({ pool: pool.id }, 'docker: pool requested');
    // Docker wants a gateway per pool; weft routes nothing through one (containers reach each other on one L2
    // segment), so the network's own address stands in for it and no container address is spent on it.
    return { PoolID: pool.id, Pool: pool.subnet, Data: { [GATEWAY_OPTION]: pool.subnet } };
  }

  /** Drop the pool and give back every address it still holds. Unknown pools are fine (released twice, or by a restart). */
  releasePool(r: ReleasePoolRequest): void {
    const pool = this.parsePoolId(r.PoolID);
    const tagPrefix = `${DOCKER_IDENT_PREFIX}${pool.tag}:`;
    let released = 0;
    for (const [address, ident] of this.deps.ipam.holdings()) {
      if (ident.startsWith(tagPrefix) && this.deps.ipam.releaseAddress(address)) released++;
    }
    this.pools.delete(r.PoolID);
    this.persist();
    this.deps.log.info({ pool: r.PoolID, addresses: released }, 'docker: pool released');
  }

  async requestAddress(r: RequestAddressRequest): Promise<{ Address: string; Data: Record<string, string> }> {
    const pool = this.parsePoolId(r.PoolID);
    const isGateway = r.Options[REQUEST_ADDRESS_TYPE] === GATEWAY_OPTION;
    const ident = isGateway
      ? `${DOCKER_IDENT_PREFIX}${pool.tag}:gateway`
      : `${DOCKER_IDENT_PREFIX}${pool.tag}:${Date.now().toString(36)}.${this.nextIdent++}`;
    let address: string;
    if (r.Address !== '') {
      let addr: number;
      try {
        addr = parseAddress(r.Address);
      } catch {
        throw new PluginError(
          'ERR_PLUGIN_BAD_ADDRESS',
          `${JSON.stringify(r.Address.slice(0, 64))} is not an IPv4 address; give one like 10.32.0.9`,
        );
      }
      if (!rangeCoversAddress(pool.subnet, addr)) {
        throw new PluginError(
          'ERR_PLUGIN_BAD_ADDRESS',
          `${r.Address} is not in the network's subnet ${formatCidr(pool.subnet)}: pick an address inside it`,
        );
      }
      address = await this.ipam(() => this.deps.ipam.claim(ident, `${formatAddress(addr)}/${pool.subnet.prefix}`));
    } else {
      address = await this.ipam(() => this.deps.ipam.allocate(ident, formatCidr(pool.ipRange)));
    }
    // An --ip-range is narrower than the subnet: the container still lives in the whole subnet.
    const withPrefix = `${address.split('/')[0]!}/${pool.subnet.prefix}`;
    this.count('addresses_requested');
    return { Address: withPrefix, Data: {} };
  }

  releaseAddress(r: ReleaseAddressRequest): void {
    this.parsePoolId(r.PoolID);
    let addr: number;
    try {
      addr = parseAddress(r.Address.split('/')[0]!);
    } catch {
      throw new PluginError('ERR_PLUGIN_BAD_ADDRESS', `${JSON.stringify(r.Address.slice(0, 64))} is not an IPv4 address`);
    }
    // Releasing what is not held is not an error: dockerd retries a release after a crash.
    if (this.deps.ipam.releaseAddress(formatAddress(addr))) this.count('addresses_released');
  }

  /** The first free subnet of `autoPrefix` in the range: outside the default subnet and every pool in use. */
  private freeSubnet(): Cidr {
    const size = 2 ** (32 - this.autoPrefix);
    const range = cidrRange(this.range);
    const taken = [cidrRange(this.defaultSubnet), ...[...this.pools.values()].map((p) => cidrRange(parseCidr(p.subnet)))];
    if (this.autoPrefix >= this.range.prefix) {
      for (let start = range.start; start + size <= range.end; start += size) {
        const end = start + size;
        if (taken.every((t) => end <= t.start || start >= t.end)) return { start, prefix: this.autoPrefix };
      }
    }
    throw new PluginError(
      'ERR_PLUGIN_NO_FREE_SUBNET',
      `no free /${this.autoPrefix} left in weft's range ${formatCidr(this.range)} outside the default subnet ${formatCidr(this.defaultSubnet)} and the networks in use; ` +
        `give one with docker network create --subnet CIDR, or relaunch weft with a narrower --ipalloc-default-subnet (e.g. ${formatCidr({ start: this.range.start, prefix: Math.min(this.range.prefix + 4, 30) })})`,
    );
  }

  private checkSubnet(text: string, flag: string): Cidr {
    let c: Cidr;
    try {
      c = parseCidr(text, true);
    } catch {
      throw new PluginError(
        'ERR_PLUGIN_BAD_POOL',
        `${flag} ${JSON.stringify(text.slice(0, 64))} is not an IPv4 subnet in CIDR form with its host bits zero, e.g. 10.32.8.0/24`,
      );
    }
    if (!rangeCovers(cidrRange(this.range), cidrRange(c))) {
      throw new PluginError(
        'ERR_PLUGIN_BAD_POOL',
        `${flag} ${formatCidr(c)} is not inside weft's --ipalloc-range ${formatCidr(this.range)}: weft can only hand out addresses from its range`,
      );
    }
    return c;
  }

  private parsePoolId(id: string): { subnet: Cidr; ipRange: Cidr; tag: string } {
    const parts = id.split(':');
    if (parts.length === 4 && parts[0] === 'weft' && /^[0-9a-f]{1,16}$/.test(parts[3]!)) {
      try {
        return { subnet: parseCidr(parts[1]!), ipRange: parseCidr(parts[2]!), tag: parts[3]! };
      } catch {
        /* refused below */
      }
    }
    this.count('unknown_pool');
    throw new PluginError(
      'ERR_PLUGIN_UNKNOWN_POOL',
      `pool ${JSON.stringify(id.slice(0, 100))} is not a weft pool: it was not made by weft's IPAM driver (docker network create --ipam-driver weft)`,
      404,
    );
  }

  /** Run an IPAM call; its typed errors become plugin errors with the same code and message. */
  private async ipam<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      this.count('ipam_refused');
      if (err instanceof WeftError) throw new PluginError(err.code, `weft IPAM: ${err.message}`);
      throw err;
    }
  }

  private load(): void {
    const doc = this.deps.store.read(this.storeKey);
    if (doc === undefined) return;
    try {
      const parsed = JSON.parse(doc.toString('utf8')) as { pools?: unknown };
      if (!Array.isArray(parsed.pools)) throw new Error('no pool list');
      for (const p of parsed.pools as DockerPool[]) {
        if (typeof p?.id === 'string' && typeof p.subnet === 'string' && typeof p.ipRange === 'string') this.pools.set(p.id, p);
      }
    } catch (err) {
      // Only a hint for picking free subnets and for status: start without it rather than refuse to start.
      this.deps.log.warn({ err, reason: this.storeKey }, 'docker: stored pool list unreadable; starting with none');
    }
  }

  private persist(): void {
    this.deps.store.write(this.storeKey, JSON.stringify({ pools: [...this.pools.values()] }));
  }

  private count(reason: string): void {
    this.counters[reason] = (this.counters[reason] ?? 0) + 1;
  }
}

function rangeCoversAddress(c: Cidr, addr: number): boolean {
  const r = cidrRange(c);
  return addr >= r.start && addr < r.end;
}
