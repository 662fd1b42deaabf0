/**
 * Software TCP segmentation against the kernel's own (root only): the same TSO super-frames are cut by weft's
 * TcpSegmenter and by Linux, and the segments must compare equal byte for byte. And the frames weft's TcpCoalescer
 * joins from such segments (partial checksum, GSO header) are taken by the kernel and cut into the same segments.
 *
 *   ns "<p>": TAP <p>t (virtio_net_hdr; this process writes super-frames into it)
 *               └── bridge <p>br ── veth <p>v0 (TSO, GSO, tx checksums off: the kernel segments and checksums)
 *                                      └── veth <p>v1 (not bridged; tcpdump -w reads what arrives)
 *
 * The super-frames are a fast-check sample (IPv4 and IPv6, 802.1Q tags, TCP options with timestamps, IPv4
 * options, flags with PSH/FIN/CWR/ECE, segment sizes from 100 to 1460 bytes); the seed is printed on failure. Each
 * has its own source port, so the capture is matched to the frame it came from; every frame has the same two MACs
 * (the bridge floods the unknown destination to the veth). Removed in afterAll, also on failure.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { isNativeAddonBuilt, loadNative, nativeAddonPath } from '../../native/addon.js';
import { TcpSegmenter } from '../../router/tcp-segments.js';
import { defaultCopyBytes } from '../../router/sleeve-send.js';
import { TcpCoalescer } from '../../router/tcp-coalesce.js';
import { MemoryCapture } from '../../router/memory-capture.js';
import { newCounters } from '../../router/sleeve-counters.js';
import { FakeClock } from '../../runtime/clock.js';
import { arbitraryTcpSpec, checksumProblem, tcpLayout, tsoSuperFrame } from '../harness/tcp-frames.js';

const isRoot = process.getuid?.() === 0;
const isBuilt = isNativeAddonBuilt();
const skipReason = !isRoot ? 'not root' : !isBuilt ? `native addon not built at ${nativeAddonPath()} (npm run build:native)` : '';
if (skipReason) {
  if (process.env.CI) throw new Error(`tcp-segments-kernel netns test cannot run: ${skipReason}`);
  console.warn(`SKIP tcp-segments-kernel netns test: ${skipReason}`);
}

const prefix = `w${randomBytes(2).toString('hex')}`;
const ns = `${prefix}`;
const SAMPLES = 100;

function sh(...args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Frames of a pcap file (Ethernet link type), in order. */
function readPcap(file: string): Buffer[] {
  const b = readFileSync(file);
  if (b.length < 24) return [];
  const isLittle = b.readUInt32LE(0) === 0xa1b2c3d4 || b.readUInt32LE(0) === 0xa1b23c4d;
  const u32 = (at: number) => (isLittle ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const frames: Buffer[] = [];
  for (let p = 24; p + 16 <= b.length;) {
    const captured = u32(p + 8);
    if (p + 16 + captured > b.length) break;
    frames.push(b.subarray(p + 16, p + 16 + captured));
    p += 16 + captured;
  }
  return frames;
}

/** Source port of a TCP frame (the sample it came from). */
function sourcePort(f: Buffer): number {
  const t = tcpLayout(f);
  return t ? f.readUInt16BE(t.l4) : -1;
}

/** `f` with a TCP checksum of 0 as 0xffff (equal in one's complement; GSO may write either). */
function normalized(f: Buffer): string {
  const c = Buffer.from(f);
  const t = tcpLayout(c);
  if (t && c.readUInt16BE(t.l4 + 16) === 0) c.writeUInt16BE(0xffff, t.l4 + 16);
  return c.toString('hex');
}

describe.skipIf(skipReason !== '')('TCP segmentation: weft against the kernel', () => {
  const native = isBuilt ? loadNative() : null;
  let fd = -1;
  let dump: ChildProcess | null = null;
  let dir = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-gso-'));
    sh('ip', 'netns', 'add', ns);
    sh('ip', '-n', ns, 'link', 'add', `${prefix}br`, 'mtu', '9000', 'type', 'bridge');
    sh('ip', '-n', ns, 'link', 'add', `${prefix}v0`, 'mtu', '9000', 'type', 'veth', 'peer', 'name', `${prefix}v1`, 'mtu', '9000');
    sh('ip', 'netns', 'exec', ns, 'ethtool', '-K', `${prefix}v0`, 'tso', 'off', 'gso', 'off', 'tx', 'off');
    sh('ip', '-n', ns, 'link', 'set', `${prefix}v0`, 'master', `${prefix}br`, 'up');
    sh('ip', '-n', ns, 'link', 'set', `${prefix}v1`, 'up');
    sh('ip', '-n', ns, 'link', 'set', `${prefix}br`, 'up');
    const tap = native!.tapOpen(`${prefix}t`, true, false);
    fd = tap.fd;
    sh('ip', 'link', 'set', tap.name, 'netns', ns);
    sh('ip', '-n', ns, 'link', 'set', tap.name, 'mtu', '9000', 'master', `${prefix}br`, 'up');
    dump = spawn(
      'ip',
      ['netns', 'exec', ns, 'tcpdump', '-i', `${prefix}v1`, '-s', '0', '-U', '-n', '-w', join(dir, 'kernel.pcap'), 'tcp or (vlan and tcp)'],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    // tcpdump says "listening on" once it captures.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('tcpdump did not start')), 10_000);
      dump!.stderr!.on('data', (d: Buffer) => {
        if (d.toString().includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  });

  afterAll(() => {
    if (dump?.pid !== undefined && dump.exitCode === null) process.kill(dump.pid, 'SIGTERM');
    if (fd >= 0) native!.fdClose(fd);
    try {
      sh('ip', 'netns', 'del', ns);
    } catch {
      // already gone
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('cuts super-frames into the same segments as Linux GSO (IPv4/IPv6, VLAN, options), as a property', async () => {
    const seed = Number(process.env.WEFT_SEGMENTS_SEED || Date.now() & 0x7fffffff);
    const samples = fc.sample(fc.tuple(arbitraryTcpSpec(12_000, { vlan: true, ipv4Options: true }), fc.integer({ min: 100, max: 1460 })), {
      seed,
      numRuns: SAMPLES,
    });
    const segmenter = new TcpSegmenter(native!.checksumComplete);
    const out = Buffer.alloc(10_000);
    const ours = new Map<number, string[]>();
    const offsets = new Uint32Array(1);
    const lengths = new Uint32Array(1);
    const drops = new Float64Array(2);
    let expectedCount = 0;
    const file = join(dir, 'kernel.pcap');
    let frames: Buffer[] = [];
    for (let i = 0; i < samples.length; i++) {
      const [spec, gsoSize] = samples[i]!;
      // A "super-frame" of one segment (payload not above gso_size) is never what TSO hands over, and the kernel
      // writes nothing for it (seed 1372772022, sample 51: payload 478, gso 478): nothing to compare, not written.
      if (spec.payload.length <= gsoSize) continue;
      const port = 10_000 + i;
      // Fixed MACs: the bridge learns each source on the TAP's port and would not send a frame back to it.
      const frame = tsoSuperFrame({ ...spec, srcPort: port, srcMac: 0x02aa_0000_0001, dstMac: 0x02bb_0000_0002 }, gsoSize);
      const count = segmenter.parse(frame, 0, frame.length - 10);
      expect(count).toBe(Math.ceil(spec.payload.length / gsoSize));
      const segments: string[] = [];
      for (let k = 0; k < count; k++) {
        const length = segmenter.writeSegment(k, out, 0, defaultCopyBytes);
        const s = Buffer.from(out.subarray(0, length));
        expect(checksumProblem(s)).toBe('');
        segments.push(normalized(s));
      }
      ours.set(port, segments);
      expectedCount += count;
      lengths[0] = frame.length;
      expect(native!.tapWriteBatch(fd, frame, offsets, lengths, 1, drops), `sample ${i} (seed ${seed}) written`).toBe(1);
      // Paced: a super-frame's segments reach the veth peer's backlog (1000 packets) all at once.
      await new Promise((r) => setTimeout(r, 5));
    }
    // tcpdump hands packets over about once a second (its buffer timeout).
    for (let waited = 0; waited < 10_000; waited += 100) {
      frames = readPcap(file);
      if (frames.length >= expectedCount) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const kernel = new Map<number, string[]>();
    for (const f of frames) {
      const port = sourcePort(f);
      if (!kernel.has(port)) kernel.set(port, []);
      kernel.get(port)!.push(normalized(f));
    }
    for (const [port, segments] of ours) {
      const i = port - 10_000;
      const [spec, gsoSize] = samples[i]!;
      const what = `sample ${i} of seed ${seed}: IPv${spec.isV6 ? 6 : 4} vlan ${spec.vlan} flags ${spec.flags} gso ${gsoSize} payload ${spec.payload.length} options ${spec.options.length} src ${Buffer.from(spec.src).toString('hex')} dst ${Buffer.from(spec.dst).toString('hex')}`;
      expect(kernel.get(port) ?? [], what).toEqual(segments);
    }
    expect(frames.length).toBe(expectedCount);
  });
  it('the kernel takes the frames weft coalesces from segments and cuts them into the same segments again', async () => {
    const seed = (Date.now() + 1) & 0x7fffffff;
    const samples = fc.sample(fc.tuple(arbitraryTcpSpec(12_000, { vlan: true }), fc.integer({ min: 200, max: 1460 })), {
      seed,
      numRuns: 40,
    });
    const segmenter = new TcpSegmenter(native!.checksumComplete);
    const out = Buffer.alloc(10_000);
    const capture = new MemoryCapture({ clock: new FakeClock() }, { vnetHeaderBytes: 10, maxFrameBytes: 65_600 });
    const counters = newCounters();
    const coalescer = new TcpCoalescer({ capture, counters, checksumComplete: native!.checksumComplete, copyBytes: native!.copyBytes });
    const ours = new Map<number, string[]>();
    const offsets = new Uint32Array(1);
    const lengths = new Uint32Array(1);
    const drops = new Float64Array(2);
    let expected = 0;
    for (let i = 0; i < samples.length; i++) {
      const [spec, gsoSize] = samples[i]!;
      const port = 30_000 + i;
      const frame = tsoSuperFrame({ ...spec, srcPort: port, srcMac: 0x02aa_0000_0001, dstMac: 0x02bb_0000_0002 }, gsoSize);
      const count = segmenter.parse(frame, 0, frame.length - 10);
      const segments: string[] = [];
      for (let k = 0; k < count; k++) {
        const length = segmenter.writeSegment(k, out, 0, defaultCopyBytes);
        segments.push(normalized(out.subarray(0, length)));
        coalescer.deliver(out, 0, length);
      }
      coalescer.flush();
      ours.set(port, segments);
      expected += count;
      for (let w = 0; w < capture.written.length; w++) {
        const whole = Buffer.concat([capture.writtenHeaders[w]!, capture.written[w]!]);
        lengths[0] = whole.length;
        expect(native!.tapWriteBatch(fd, whole, offsets, lengths, 1, drops)).toBe(1);
      }
      capture.written.length = 0;
      capture.writtenHeaders.length = 0;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(counters.coalesced_delivered).toBeGreaterThan(0);
    const file = join(dir, 'kernel.pcap');
    let kernel = new Map<number, string[]>();
    for (let waited = 0; waited < 10_000; waited += 100) {
      kernel = new Map();
      let n = 0;
      for (const f of readPcap(file)) {
        const port = sourcePort(f);
        if (!ours.has(port)) continue;
        if (!kernel.has(port)) kernel.set(port, []);
        kernel.get(port)!.push(normalized(f));
        n++;
      }
      if (n >= expected) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const [port, segments] of ours) expect(kernel.get(port) ?? [], `sample ${port - 30_000} of seed ${seed}`).toEqual(segments);
  });
});
