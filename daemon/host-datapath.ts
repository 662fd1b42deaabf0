/**
 * The data path on a real host: the bridge containers attach to, a capture on that bridge (a TAP, or with
 * `--capture pcap` libpcap on a veth pair whose other end is on the bridge), a UDP socket for the sleeve, and the
 * `Sleeve` that forwards between them; plus the endpoint operations (attach, detach, expose, hide) that act
 * on the same bridge. Control-plane code: async, may be slow; the per-packet work is all inside `Sleeve`.
 */
import { readFileSync } from 'node:fs';
import ipaddr from 'ipaddr.js';
import { loadNative } from '../native/addon.js';
import { TapCapture } from '../router/tap-capture.js';
import { PcapCapture } from '../router/pcap-capture.js';
import { deletePcapVeth, ensurePcapVeth, pcapVethNames } from '../netdev/pcap-veth.js';
import { NativeUdpUnderlay } from '../router/native-udp-underlay.js';
import { Sleeve } from '../router/sleeve.js';
import type { SegmentMode } from '../router/loss.js';
import type { ForwardingSnapshot, PeerHealth, PeerId } from '../router/datapath.js';
import { ensureBridge, attachToBridge } from '../netdev/bridge.js';
import { ip } from '../netdev/command.js';
import { overlayMtu, underlayMtu } from '../netdev/mtu.js';
import { NoRouteError } from '../netdev/errors.js';
import { attach, detach, detachContainer, listEndpoints } from '../netdev/endpoint.js';
import { expose, hide, listExposed } from '../netdev/expose.js';
import type { AttachRequest, DatapathReport, EndpointReport } from '../api/control.js';
import type { Logger } from '../runtime/logger.js';
import type { Clock } from '../runtime/clock.js';
import { peerIdToName } from '../gossip/peer-name.js';
import { Fastdp } from '../router/fastdp.js';
import { HeartbeatSocket, HostFastdpKernel } from './fastdp-host.js';
import type { DaemonDatapath } from './daemon-deps.js';

export interface HostDatapathOptions {
  /** Bridge name. */
  bridge: string;
  /** Overlay MTU; undefined = underlay MTU minus the sleeve's overhead. */
  mtuBytes: number | undefined;
  /** UDP port of the sleeve. */
  port: number;
  /** Address the UDP socket binds. */
  listenAddr: string;
  /** Busy-poll window after handling packets, in microseconds (0: off). */
  busyPollMicros: number;
  /** Open the TAP with offloads (partial checksums and TCP super-frames carried across whole). */
  isOffloadEnabled: boolean;
  /** Let the kernel's VXLAN carry clear direct paths (fastdp, UDP `port` + 1). */
  isFastdpEnabled: boolean;
  /** This router's peer name as a number (names its heartbeat address). */
  localPeer: PeerId;
  /** 'tap', or 'pcap': libpcap on a veth pair on the bridge (no offloads). @default 'tap' */
  captureMode?: 'tap' | 'pcap';
  /** How TCP super-frames cross to peers (router/loss.ts). @default 'auto' */
  segmentMode?: SegmentMode;
}

/** Share of one CPU that busy polling may spend spinning with nothing to read. */
const BUSY_POLL_SHARE_PERCENT = 10;

/** Used when the host has no default route to read an MTU from (an isolated test host, say). */
const FALLBACK_UNDERLAY_MTU = 1500;

export class HostDatapath implements DaemonDatapath {
  underlayMtuBytes = FALLBACK_UNDERLAY_MTU;
  overlayMtuBytes = 0;
  private capture: TapCapture | PcapCapture | undefined;
  private underlay: NativeUdpUnderlay | undefined;
  private sleeve: Sleeve | undefined;
  private fastdp: Fastdp | undefined;
  private heartbeatSocket: HeartbeatSocket | undefined;
  /** Why fastdp is off, when it is. */
  private fastdpOffReason: string | undefined;
  private lastSnapshot: ForwardingSnapshot | undefined;
  private endpoints: EndpointReport[] = [];
  private readonly healthListeners: Array<(peer: PeerId, health: PeerHealth) => void> = [];

  constructor(
    private readonly deps: { log: Logger; clock: Clock },
    private readonly options: HostDatapathOptions,
  ) {}

  get tapName(): string {
    return `${this.options.bridge.slice(0, 11)}-tap`;
  }

  private get isPcap(): boolean {
    return this.options.captureMode === 'pcap';
  }

  /** The interface the router reads: the TAP, or the capture end of the pcap veth pair. */
  get captureName(): string {
    return this.isPcap ? pcapVethNames(this.options.bridge).captureEnd : this.tapName;
  }

  async start(): Promise<void> {
    const { log, clock } = this.deps;
    const native = loadNative();
    try {
      this.underlayMtuBytes = await underlayMtu();
    } catch (err) {
      if (!(err instanceof NoRouteError)) throw err;
      log.warn({ reason: err.message }, `no default route: assuming an underlay MTU of ${FALLBACK_UNDERLAY_MTU}`);
    }
    this.overlayMtuBytes = this.options.mtuBytes ?? overlayMtu(this.underlayMtuBytes);
    // With offloads the host's own traffic on the bridge (weft expose) may use them too: the TAP takes them whole.
    const isOffloadKept = this.options.isOffloadEnabled && !this.isPcap;
    await ensureBridge({ name: this.options.bridge, mtuBytes: this.overlayMtuBytes, isTxOffloadKept: isOffloadKept });

    if (this.isPcap) {
      // The pair first: libpcap opens an interface that exists. Frames are at most the MTU plus Ethernet and VLAN headers.
      await ensurePcapVeth({ bridge: this.options.bridge, mtuBytes: this.overlayMtuBytes });
      this.capture = new PcapCapture({ native, log }, { name: this.captureName, maxFrameBytes: this.overlayMtuBytes + 18 });
    } else {
      this.capture = new TapCapture({ native, log }, { name: this.tapName, offload: this.options.isOffloadEnabled });
    }
    this.underlay = new NativeUdpUnderlay({ native, log }, { bindAddress: this.options.listenAddr, port: this.options.port });
    const sleeve = new Sleeve(
      {
        capture: this.capture,
        underlay: this.underlay,
        clock,
        log,
        copyBytes: native.copyBytes,
        checksumComplete: native.checksumComplete,
      },
      { segmentOffloads: this.options.segmentMode ?? 'auto' },
    );
    sleeve.onHealthChange((peer, health) => {
      for (const l of this.healthListeners) l(peer, health);
    });
    this.sleeve = sleeve;
    try {
      await sleeve.start();
    } catch (err) {
      if (this.isPcap) await deletePcapVeth(this.options.bridge).catch(() => undefined);
      throw err;
    }
    native.busyPoll(this.options.busyPollMicros, BUSY_POLL_SHARE_PERCENT);
    if (!this.isPcap) {
      await ip(this.tapName, ['link', 'set', 'dev', this.tapName, 'mtu', String(this.overlayMtuBytes)]);
      await attachToBridge(this.tapName, this.options.bridge);
    }
    await this.startFastdp();
    await this.refreshEndpoints();
    log.info(
      {
        bridge: this.options.bridge,
        capture: this.isPcap ? 'pcap' : 'tap',
        device: this.captureName,
        port: this.underlay.localPort,
        mtu: this.overlayMtuBytes,
        offloads: this.offloadBits(),
      },
      'data path ready',
    );
  }

  /**
   * fastdp: the VXLAN devices, the heartbeat socket and the switch. A host where they cannot be made (no vxlan
   * module, IPv6 off) keeps every peer on the sleeve, and says why in the log and in `weft status`.
   */
  private async startFastdp(): Promise<void> {
    if (!this.options.isFastdpEnabled) {
      this.fastdpOffReason = 'fastdp off (--no-fastdp)';
      return;
    }
    const { log, clock } = this.deps;
    const port = this.options.port + 1;
    const kernel = new HostFastdpKernel({
      bridge: this.options.bridge,
      tap: this.tapName,
      port,
      mtuBytes: this.overlayMtuBytes,
      localPeer: this.options.localPeer,
    });
    const socket = new HeartbeatSocket({ log }, { device: kernel.heartbeat, localPeer: this.options.localPeer, port });
    const fastdp = new Fastdp(
      { kernel, sendHeartbeat: (peer, buf) => socket.send(peer, buf), clock, log },
      { port, mtuBytes: this.overlayMtuBytes },
    );
    fastdp.onChange(() => {
      if (this.lastSnapshot) this.sleeve?.apply(fastdp.sleeveSnapshot(this.lastSnapshot));
    });
    try {
      await fastdp.start();
      await socket.start((buf) => fastdp.receive(buf));
    } catch (err) {
      socket.stop();
      await fastdp.stop().catch(() => {});
      this.fastdpOffReason = `fastdp unavailable on this host: ${err instanceof Error ? err.message : String(err)}`;
      log.warn({ err, reason: this.fastdpOffReason }, 'fastdp unavailable: every peer stays on the sleeve');
      return;
    }
    this.fastdp = fastdp;
    this.heartbeatSocket = socket;
    if (this.lastSnapshot) this.apply(this.lastSnapshot);
    log.info({ device: kernel.data, port }, 'fastdp ready');
  }

  async stop(): Promise<void> {
    // fastdp first: deleting its devices removes every entry, and frames fall back to the sleeve while it stops.
    this.heartbeatSocket?.stop();
    await this.fastdp?.stop();
    await this.sleeve?.stop();
    // The TAP vanishes with its fd; the veth pair has to be deleted.
    if (this.isPcap && this.capture !== undefined) await deletePcapVeth(this.options.bridge).catch(() => undefined);
  }

  /** TUN_F_* bits the capture took from the kernel (0 for pcap: no offloads). */
  private offloadBits(): number {
    const c = this.capture;
    return c instanceof TapCapture ? c.counters().offloads : 0;
  }

  apply(snapshot: ForwardingSnapshot): void {
    this.lastSnapshot = snapshot;
    this.fastdp?.apply(snapshot);
    this.sleeve?.apply(this.fastdp ? this.fastdp.sleeveSnapshot(snapshot) : snapshot);
  }

  /** Each neighbour's carrier ('fastdp' or 'sleeve') and why, by peer name. */
  carriers(): Map<string, { carrier: 'fastdp' | 'sleeve'; reason: string }> {
    const out = new Map<string, { carrier: 'fastdp' | 'sleeve'; reason: string }>();
    if (this.fastdp) {
      for (const [peer, m] of this.fastdp.peerModes()) out.set(peerIdToName(peer), { carrier: m.mode, reason: m.reason });
    } else {
      for (const peer of this.lastSnapshot?.neighbours.keys() ?? [])
        out.set(peerIdToName(peer), { carrier: 'sleeve', reason: this.fastdpOffReason ?? 'fastdp not started' });
    }
    return out;
  }

  /** Each neighbour's health now, with its current data endpoint (learned from its authenticated datagrams). */
  peerHealth(): ReadonlyMap<PeerId, PeerHealth> {
    return this.sleeve?.peerHealth() ?? new Map();
  }

  onHealthChange(listener: (peer: PeerId, health: PeerHealth) => void): void {
    this.healthListeners.push(listener);
  }

  report(): DatapathReport {
    return {
      mode: 'sleeve',
      bridge: this.options.bridge,
      captureMode: this.isPcap ? 'pcap' : 'tap',
      capture: this.captureName,
      offloads: offloadNames(this.offloadBits()),
      busyPollMicros: this.options.busyPollMicros,
      mtuBytes: this.overlayMtuBytes,
      udpPort: this.underlay?.localPort ?? this.options.port,
      counters: {
        ...(this.sleeve?.counters() ?? {}),
        ...prefixed(this.isPcap ? 'pcap_' : 'tap_', this.capture?.counters()),
        ...prefixed('udp_', this.underlay?.counters()),
        ...prefixed('busy_poll_', this.busyPollCounters()),
        ...prefixed(this.isPcap ? 'pcap_kernel_' : 'tap_kernel_', this.tapKernelCounters()),
        ...(this.fastdp && { ...this.fastdp.counters(), fastdp_heartbeat_send_errors: this.heartbeatSocket?.sendErrors ?? 0 }),
      },
      ...(this.fastdp ? { fastdp: { port: this.options.port + 1 } } : { fastdp: { off: this.fastdpOffReason ?? 'not started' } }),
      peers: this.peerReports(),
    };
  }

  /** Each neighbour's data-path health, for `weft report` and the metrics (read at report time). */
  private peerReports(): NonNullable<DatapathReport['peers']> {
    const now = this.deps.clock.now();
    const carriers = this.carriers();
    return [...(this.sleeve?.peerHealth() ?? [])].map(([peer, h]) => {
      const name = peerIdToName(peer);
      const c = carriers.get(name);
      return {
        name,
        isEstablished: h.isEstablished,
        ...(h.lastHeardMs >= 0 && { lastHeardSecondsAgo: Math.max(0, (now - h.lastHeardMs) / 1000) }),
        ...(h.traffic && { traffic: { ...h.traffic, dropsIn: { ...h.traffic.dropsIn }, dropsOut: { ...h.traffic.dropsOut } } }),
        ...(h.rttMs !== undefined && h.rttMs >= 0 && { rttSeconds: h.rttMs / 1000 }),
        ...(h.pathMtuBytes !== undefined && { pathMtuBytes: h.pathMtuBytes, isPathMtuConfirmed: h.isPathMtuConfirmed === true }),
        ...(c && { carrier: c.carrier, carrierReason: c.reason }),
      };
    });
  }

  /**
   * Drops the kernel counted on the TAP, before the router saw a frame: `tx_dropped` are frames for the router that
   * did not fit the device's queue (the router did not read fast enough), `rx_dropped` frames the router wrote that
   * the kernel refused. Read from sysfs at report time; empty when the device is gone. With pcap, the same counters
   * of the veth pair's capture end (the ring's own drops are `pcap_dropsRingFull`).
   */
  private tapKernelCounters(): Record<string, number> | undefined {
    if (!this.capture) return undefined;
    const out: Record<string, number> = {};
    for (const name of ['tx_dropped', 'rx_dropped']) {
      try {
        out[name] = Number(readFileSync(`/sys/class/net/${this.captureName}/statistics/${name}`, 'utf8').trim());
      } catch {
        return undefined;
      }
    }
    return out;
  }

  /** Counters of busy polling (spins, hits, idle and busy microseconds, skipped for want of budget). */
  private busyPollCounters(): Record<string, number> | undefined {
    if (!this.sleeve) return undefined;
    const stats = loadNative().busyPollStats();
    return {
      spins: stats.spins,
      hits: stats.hits,
      idle_us: Math.round(stats.idleMicros),
      busy_us: Math.round(stats.busyMicros),
      skipped: stats.skipped,
    };
  }

  /** Endpoints as of the last attach/detach (the report is synchronous). */
  cachedEndpoints(): EndpointReport[] {
    return this.endpoints;
  }

  async attach(request: AttachRequest): Promise<EndpointReport> {
    // A runtime's container (CNI) expects to reach beyond the overlay: when the host is exposed in its subnet, the
    // host is its gateway (published ports, and egress where the host forwards). `weft attach` keeps its old behaviour.
    const gateway = request.containerId === undefined ? undefined : gatewayFor(request.addresses, await this.exposed());
    const endpoint = await attach({
      bridge: this.options.bridge,
      target: request.target,
      addresses: request.addresses,
      mtuBytes: this.overlayMtuBytes,
      // A TAP with offloads carries partial checksums and TCP super-frames across: containers keep theirs on.
      isTxOffloadKept: this.offloadBits() !== 0,
      ...(request.mac !== undefined && { mac: request.mac }),
      ...(request.ifname !== undefined && { ifname: request.ifname }),
      ...(request.containerId !== undefined && { containerId: request.containerId }),
      ...(gateway !== undefined && { gateway }),
    });
    await this.refreshEndpoints();
    return endpoint;
  }

  async detach(target: string): Promise<void> {
    await detach(target);
    await this.refreshEndpoints();
  }

  /** Remove a container runtime's endpoint by container id and interface name; true if one was there. */
  async detachContainer(containerId: string, ifname: string): Promise<boolean> {
    const isRemoved = await detachContainer(containerId, ifname);
    await this.refreshEndpoints();
    return isRemoved;
  }

  async expose(cidrs: string[]): Promise<string[]> {
    for (const c of cidrs) await expose(this.options.bridge, c);
    return cidrs;
  }

  async hide(cidrs: string[]): Promise<string[]> {
    for (const c of cidrs) await hide(this.options.bridge, c);
    return cidrs;
  }

  /** Addresses the host has on the bridge. */
  async exposed(): Promise<string[]> {
    return listExposed(this.options.bridge);
  }

  private async refreshEndpoints(): Promise<void> {
    this.endpoints = await listEndpoints(this.options.bridge);
  }
}

/**
 * The host's exposed address in the same subnet (same network and prefix length) as the first IPv4 address of
 * `addresses`, or undefined. Exported for tests.
 */
export function gatewayFor(addresses: readonly string[], exposed: readonly string[]): string | undefined {
  for (const a of addresses) {
    let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
    try {
      parsed = ipaddr.parseCIDR(a);
    } catch {
      continue;
    }
    const [addr, bits] = parsed;
    if (addr.kind() !== 'ipv4') continue;
    for (const e of exposed) {
      try {
        const [host, hostBits] = ipaddr.parseCIDR(e);
        if (host.kind() === 'ipv4' && hostBits === bits && addr.match(host, bits) && host.toString() !== addr.toString())
          return host.toString();
      } catch {
        // not an address: skip
      }
    }
    return undefined;
  }
  return undefined;
}

function prefixed(prefix: string, counters: object | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (!counters) return out;
  for (const [k, v] of Object.entries(counters)) if (typeof v === 'number') out[prefix + k] = v;
  return out;
}

/** TUN_F_* bits (linux/if_tun.h) as words for `weft status`. */
function offloadNames(bits: number): string[] {
  const names: string[] = [];
  if (bits & 0x01) names.push('checksum');
  if (bits & (0x02 | 0x04)) names.push('TCP segmentation');
  return names;
}
