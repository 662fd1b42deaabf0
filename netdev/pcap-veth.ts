/**
 * The veth pair the pcap capture uses (`weft launch --capture pcap`): where a TAP cannot be put on the bridge, one
 * end of a veth pair is the bridge's port, and the router captures and injects frames on the other end with libpcap.
 *
 *   container ── bridge "weft" ── <bridge>-pcbr ══ veth ══ <bridge>-pcap ── libpcap (router/pcap-capture.ts)
 *
 * libpcap hands over frames as the kernel has them, with no virtio_net_hdr to say that a checksum is partial or a
 * frame is a TCP super-frame. So both ends have their transmit offloads off (`ethtool -K tx off tso off gso off`):
 * the kernel finishes checksums and cuts super-frames in software when a frame leaves the bridge through the pair,
 * and what the router reads is MTU-sized with complete checksums (the same reason as ./offload.ts, one port
 * further). Neither end gets an IPv6 link-local address (addrgenmode none): nothing of the host's own leaks onto the
 * weft network through the pair.
 */
import { ip, isNoSuchDevice, runCommand, type NetdevOptions } from './command.js';
import { attachToBridge } from './bridge.js';
import { checkIfname, checkMtu, checkNetnsOption } from './validation.js';

/** The two ends' names for `bridge`: the capture end and the bridge's port (at most 15 bytes each). */
export function pcapVethNames(bridge: string): { captureEnd: string; bridgeEnd: string } {
  const stem = bridge.slice(0, 10);
  return { captureEnd: `${stem}-pcap`, bridgeEnd: `${stem}-pcbr` };
}

export interface PcapVethOptions extends NetdevOptions {
  bridge: string;
  /** MTU of both ends: the overlay MTU. */
  mtuBytes: number;
}

/**
 * Make the pair for `bridge` afresh (a pair left by a crashed router is deleted first), offloads off, the bridge end
 * plugged into the bridge, both ends up. Returns the names. Rejects with `NetdevCommandError` (the bridge missing,
 * no permission) or `MissingToolError` (no ethtool); the pair is deleted again on failure.
 */
export async function ensurePcapVeth(options: PcapVethOptions): Promise<{ captureEnd: string; bridgeEnd: string }> {
  const bridge = checkIfname(options.bridge, 'bridge');
  const mtu = String(checkMtu(options.mtuBytes));
  const { netns } = options;
  checkNetnsOption(netns);
  const names = pcapVethNames(bridge);
  const { captureEnd, bridgeEnd } = names;
  await deletePcapVeth(bridge, { netns });
  await ip(captureEnd, ['link', 'add', 'name', captureEnd, 'mtu', mtu, 'type', 'veth', 'peer', 'name', bridgeEnd, 'mtu', mtu], netns);
  try {
    for (const end of [captureEnd, bridgeEnd]) {
      await ip(end, ['link', 'set', 'dev', end, 'addrgenmode', 'none'], netns);
      await runCommand({ device: end, file: 'ethtool', args: ['-K', end, 'tx', 'off', 'tso', 'off', 'gso', 'off'], netns });
    }
    // No receive coalescing on the end we read: what libpcap sees must be what the bridge sent.
    await runCommand({ device: captureEnd, file: 'ethtool', args: ['-K', captureEnd, 'gro', 'off'], netns });
    await ip(captureEnd, ['link', 'set', 'dev', captureEnd, 'up'], netns);
    await attachToBridge(bridgeEnd, bridge, { netns });
  } catch (err) {
    await deletePcapVeth(bridge, { netns }).catch(() => undefined);
    throw err;
  }
  return names;
}

/** Delete the pair of `bridge` (both ends go with one). No error if it is not there. */
export async function deletePcapVeth(bridge: string, options: NetdevOptions = {}): Promise<void> {
  checkIfname(bridge, 'bridge');
  checkNetnsOption(options.netns);
  const { captureEnd } = pcapVethNames(bridge);
  try {
    await ip(captureEnd, ['link', 'del', 'dev', captureEnd], options.netns);
  } catch (err) {
    if (!isNoSuchDevice(err)) throw err;
  }
}
