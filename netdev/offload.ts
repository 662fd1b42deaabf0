/**
 * Transmit checksum offload, turned off where weft captures frames.
 *
 * Why: with offload on, the kernel hands a locally sent TCP/UDP packet to a virtual device with only a partial
 * checksum (CHECKSUM_PARTIAL), expecting "hardware" to finish it. A veth or bridge forwards that skb unchanged, but
 * a TAP or pcap reader copies the bytes as they are, so the remote host receives a packet whose checksum is wrong
 * and drops it. The symptom: ping works across hosts (ICMP checksums are computed in software) while every TCP
 * connection hangs. Weave does the same (`EthtoolTXOff`) on its bridge and on every container's interface.
 *
 * weft's TAP normally reads frames with a virtio_net_hdr instead (router/tap-capture.ts, `offload`), which says
 * which checksums are partial, so containers keep their offloads (TSO included) and the router finishes or carries
 * the checksums; this is for captures without that header (`weft launch --no-offload`).
 */
import { runCommand, type NetdevOptions } from './command.js';
import { checkIfname, checkNetnsOption } from './validation.js';

/**
 * Turn off transmit checksum offload (`ethtool -K IF tx off`) on `ifname`, in `netns` (name or namespace file path)
 * or the current namespace. Dependent offloads (TSO, GSO on checksummed paths) go off with it. Idempotent.
 * Rejects with `MissingToolError` without ethtool, `NetdevCommandError` if the device does not exist.
 */
export async function disableTxChecksumOffload(ifname: string, options: NetdevOptions = {}): Promise<void> {
  await setTxChecksumOffload(ifname, false, options);
}

/**
 * Turn transmit checksum offload (and the segmentation offloads that depend on it) on or off (`ethtool -K IF tx
 * on|off`) on `ifname`, in `netns` or the current namespace. Idempotent.
 */
export async function setTxChecksumOffload(ifname: string, isOn: boolean, options: NetdevOptions = {}): Promise<void> {
  checkIfname(ifname);
  checkNetnsOption(options.netns);
  await runCommand({ device: ifname, file: 'ethtool', args: ['-K', ifname, 'tx', isOn ? 'on' : 'off'], netns: options.netns });
}

/** Whether transmit checksumming is on for `ifname` (`ethtool -k` says "tx-checksumming: on"). */
export async function isTxChecksumOffloaded(ifname: string, options: NetdevOptions = {}): Promise<boolean> {
  checkIfname(ifname);
  checkNetnsOption(options.netns);
  const out = await runCommand({ device: ifname, file: 'ethtool', args: ['-k', ifname], netns: options.netns });
  return /^tx-checksumming:\s*on/m.test(out);
}
