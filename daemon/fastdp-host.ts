/**
 * fastdp on a real host: the `FastdpKernel` seam over netdev/vxlan.ts (`ip` and `bridge`), and the UDP socket the
 * heartbeats travel on, bound to this router's link-local address on the heartbeat device. Control plane only.
 */
import { createSocket, type Socket } from 'node:dgram';
import type { FastdpKernel } from '../router/fastdp.js';
import type { PeerId } from '../router/datapath.js';
import { heartbeatAddress, heartbeatMac } from '../router/fastdp-heartbeat.js';
import {
  FLOOD_MAC,
  addVxlanEntry,
  createVxlan,
  deleteVxlan,
  flushLearned,
  learnedMacs,
  removeNeighbour,
  removeVxlanEntry,
  setNeighbour,
  setPortIsolated,
} from '../netdev/vxlan.js';
import type { Logger } from '../runtime/logger.js';

/** VNI of the data device: "wft" in ASCII. Any value works if every router uses the same one. */
export const FASTDP_DATA_VNI = 0x776674;
/** VNI of the heartbeat device. */
export const FASTDP_HEARTBEAT_VNI = FASTDP_DATA_VNI + 1;

export interface HostFastdpOptions {
  bridge: string;
  /** The sleeve's TAP (made an isolated port too). */
  tap: string;
  /** UDP port of both VXLAN devices (the router's port + 1). */
  port: number;
  mtuBytes: number;
  localPeer: PeerId;
}

/** Device names for a bridge: "<bridge>-vx" (data) and "<bridge>-vxh" (heartbeats), within IFNAMSIZ. */
export function fastdpDeviceNames(bridge: string): { data: string; heartbeat: string } {
  const stem = bridge.slice(0, 11);
  return { data: `${stem}-vx`, heartbeat: `${stem}-vxh` };
}

export class HostFastdpKernel implements FastdpKernel {
  readonly data: string;
  readonly heartbeat: string;

  constructor(private readonly options: HostFastdpOptions) {
    const names = fastdpDeviceNames(options.bridge);
    this.data = names.data;
    this.heartbeat = names.heartbeat;
  }

  async start(): Promise<void> {
    const { port, mtuBytes, bridge, localPeer, tap } = this.options;
    await createVxlan({ name: this.data, vni: FASTDP_DATA_VNI, port, mtuBytes, bridge });
    await createVxlan({
      name: this.heartbeat,
      vni: FASTDP_HEARTBEAT_VNI,
      port,
      mtuBytes,
      isDontFragment: true,
      mac: heartbeatMac(localPeer),
      linkLocal: heartbeatAddress(localPeer),
    });
    await setPortIsolated(tap, true);
  }

  async stop(): Promise<void> {
    await deleteVxlan(this.data);
    await deleteVxlan(this.heartbeat);
  }

  async addHeartbeatRoute(peer: PeerId, address: string): Promise<void> {
    await addVxlanEntry(this.heartbeat, heartbeatMac(peer), address);
    await setNeighbour(this.heartbeat, heartbeatAddress(peer), heartbeatMac(peer));
  }

  async removeHeartbeatRoute(peer: PeerId, address: string): Promise<void> {
    await removeNeighbour(this.heartbeat, heartbeatAddress(peer));
    await removeVxlanEntry(this.heartbeat, heartbeatMac(peer), address);
  }

  addFlood(address: string): Promise<void> {
    return addVxlanEntry(this.data, FLOOD_MAC, address);
  }

  removeFlood(address: string): Promise<void> {
    return removeVxlanEntry(this.data, FLOOD_MAC, address);
  }

  forgetLearned(carrier: 'sleeve' | 'fastdp'): Promise<void> {
    return flushLearned(carrier === 'sleeve' ? this.options.tap : this.data);
  }

  addMac(mac: string, address: string): Promise<void> {
    return addVxlanEntry(this.data, mac, address);
  }

  removeMac(mac: string, address: string): Promise<void> {
    return removeVxlanEntry(this.data, mac, address);
  }

  async localMacs(): Promise<string[]> {
    const { bridge, tap } = this.options;
    return (await learnedMacs(bridge)).filter((e) => e.port !== tap && e.port !== this.data).map((e) => e.mac);
  }
}

/** The heartbeat socket: UDP on this router's link-local address of the heartbeat device, port `port`. */
export class HeartbeatSocket {
  private socket: Socket | undefined;
  sendErrors = 0;

  constructor(
    private readonly deps: { log: Logger },
    private readonly options: { device: string; localPeer: PeerId; port: number },
  ) {}

  async start(onMessage: (buf: Buffer) => void): Promise<void> {
    const socket = createSocket({ type: 'udp6' });
    socket.on('message', (buf) => onMessage(buf));
    socket.on('error', (err) => this.deps.log.warn({ err }, 'fastdp: heartbeat socket error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: `${heartbeatAddress(this.options.localPeer)}%${this.options.device}`, port: this.options.port }, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    this.socket = socket;
  }

  send(peer: PeerId, buf: Buffer): void {
    this.socket?.send(buf, this.options.port, `${heartbeatAddress(peer)}%${this.options.device}`, (err) => {
      if (err) this.sendErrors++;
    });
  }

  stop(): void {
    this.socket?.close();
    this.socket = undefined;
  }
}
