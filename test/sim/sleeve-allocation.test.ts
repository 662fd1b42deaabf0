/**
 * Allocation check, not a test of speed: pushes 1e6 frames from one Sleeve to another through the in-memory capture
 * and underlay and prints GC scavenges per million frames (a `gc` PerformanceObserver), for clear and sealed paths
 * and for each byte copier. Prints wall time for orientation only; asserts nothing about either.
 *
 *   WEFT_BENCH=1 npx vitest run test/sim/sleeve-allocation.test.ts
 *
 * The fakes allocate nothing per frame or datagram (slot rings, byte-loop copies), so what is counted is the
 * sleeve's own garbage (plus the FakeClock's one timer object per delivered batch).
 */
import { nativeAegis256x2, nativeDataAead } from '../../daemon/data-aead.js';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../runtime/clock.js';
import { silentLogger } from '../../runtime/logger.js';
import { MemoryCapture } from '../../router/memory-capture.js';
import { MemoryUdpNetwork, MemoryUnderlay } from '../../router/memory-underlay.js';
import { Sleeve, defaultCopyBytes, type CopyBytes } from '../../router/sleeve.js';
import type { ForwardingSnapshot, PeerId } from '../../router/datapath.js';
import type { DataSession } from '../../crypto/data-session.js';
import type { DataAead } from '../../crypto/data-aead.js';
import { isNativeAddonBuilt, loadNative } from '../../native/addon.js';
import { countScavenges } from '../harness/gc.js';
import { sealedSessionPair } from '../harness/sessions.js';

const FRAMES = 1_000_000;
const BATCH = 64;
// Realistic 48-bit peer names (above 2^31: a number that size crossing a call would be boxed).
const PEER_A = 0x7a3b_0122_c49e;
const PEER_B = 0xd2f1_5a00_0b17;

/** Two sleeves, A (peer 1) capturing, B (peer 2) delivering; `push(n)` sends n frames and lets them arrive. */
async function pair(frameBytes: number, isSealed: boolean, copyBytes: CopyBytes, offload?: { aead: DataAead; segmentOffloads?: boolean }) {
  const clock = new FakeClock();
  const network = new MemoryUdpNetwork({ clock }, { copyBytes });
  // With `offload`: captures with a virtio_net_hdr, frames sent as TCP super-frames (cut into TCP segments, coalesced
  // again at B), sealed by `aead`.
  const vnet = offload ? { vnetHeaderBytes: 10, maxFrameBytes: 65_600 } : {};
  const capA = new MemoryCapture({ clock }, { isRecording: false, queueSlots: offload ? 8 : BATCH * 2, ...vnet });
  const capB = new MemoryCapture({ clock }, { isRecording: false, ...vnet });
  const udpA = new MemoryUnderlay({ network }, { address: '10.0.0.1', queueSlots: 1024 });
  const udpB = new MemoryUnderlay({ network }, { address: '10.0.0.2', queueSlots: 1024 });
  const options = { segmentOffloads: offload?.segmentOffloads ?? true };
  const checksumComplete = isNativeAddonBuilt() ? loadNative().checksumComplete : undefined;
  const a = new Sleeve({ capture: capA, underlay: udpA, clock, log: silentLogger, copyBytes, checksumComplete }, options);
  const b = new Sleeve({ capture: capB, underlay: udpB, clock, log: silentLogger, copyBytes, checksumComplete }, options);
  const [sa, sb] = isSealed ? sealedSessionPair(offload?.aead) : [null, null];
  const snap = (
    self: PeerId,
    other: PeerId,
    endpoint: { address: string; port: number },
    session: DataSession | null,
  ): ForwardingSnapshot => ({
    localPeer: self,
    neighbours: new Map([[other, { peer: other, endpoint, session }]]),
    unicastNextHop: new Map([[other, other]]),
    broadcastNextHops: new Map([
      [self, [other]],
      [other, []],
    ]),
    underlayMtuBytes: 1500,
  });
  a.apply(snap(PEER_A, PEER_B, udpB.endpoint(), sa));
  b.apply(snap(PEER_B, PEER_A, udpA.endpoint(), sb));
  await a.start();
  await b.start();

  // Teach A that the destination MAC is behind B (one broadcast from B), so the run is unicast.
  const dst = 0x0200_0000_0201;
  const src = 0x0200_0000_0101;
  const learn = Buffer.alloc(60);
  learn.writeUIntBE(0xffff_ffff_ffff, 0, 6);
  learn.writeUIntBE(dst, 6, 6);
  capB.inject(learn);
  clock.advance(1);

  const f = Buffer.alloc(frameBytes);
  f.writeUIntBE(dst, 0, 6);
  f.writeUIntBE(src, 6, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45; // IPv4, 20-byte header
  f.writeUInt16BE(frameBytes - 14, 16); // IPv4 total length
  f[23] = 6; // TCP
  f[46] = 0x50; // TCP data offset: a 20-byte header (the receiver checks the offload header against the frame)
  f[47] = 0x10; // ACK: segments of it are coalesced again at B
  // A TSO header: TCPv4 segments of 1360 bytes, checksum partial at 34 + 16.
  const tso = Buffer.from([1, 1, 54, 0, 0x50, 5, 34, 0, 16, 0]);
  const batch = offload ? 4 : BATCH;
  const push = (n: number) => {
    for (let sent = 0; sent < n;) {
      const k = Math.min(batch, n - sent);
      for (let i = 0; i < k; i++) {
        if (offload) capA.inject(f, tso);
        else capA.injectFrom(f, 0, f.length);
      }
      capA.deliver();
      clock.advance(0);
      sent += k;
    }
  };
  return { a, b, capB, push, stop: async () => (await a.stop(), await b.stop()) };
}

const copiers: Array<[string, CopyBytes]> = [['default copy', defaultCopyBytes]];
if (isNativeAddonBuilt()) copiers.push(['native copyBytes', loadNative().copyBytes]);

describe.runIf(process.env.WEFT_BENCH)('Sleeve allocation check (prints, asserts only delivery)', () => {
  for (const cipher of ['chacha20-poly1305', 'aegis-256x2'] as const) {
    it.runIf(isNativeAddonBuilt() && (cipher !== 'aegis-256x2' || loadNative().aegis256x2Implementation() !== ''))(
      `20000 x 60000-byte TCP super-frames A -> B as TCP segments, sealed by the native ${cipher} in runs, coalesced at B`,
      async () => {
        const native = loadNative();
        const SUPER = 20_000;
        const p = await pair(60_000, true, native.copyBytes, {
          aead: cipher === 'aegis-256x2' ? nativeAegis256x2(native) : nativeDataAead(native),
        });
        p.push(2_000);
        const deliveredBefore = p.b.counters()['frames_delivered']!;
        const segmentsBefore = p.a.counters()['segments_out']!;
        let ms = 0;
        const scavenges = await countScavenges(() => {
          const t0 = performance.now();
          p.push(SUPER);
          ms = performance.now() - t0;
        });
        const segments = p.a.counters()['segments_out']! - segmentsBefore;
        expect(segments).toBe(SUPER * Math.ceil((60_000 - 54) / 1360));
        expect(p.b.counters()['frames_delivered']! - deliveredBefore).toBe(segments);
        console.log(
          `sleeve offloaded, sealed (${cipher}): ${segments} segments, ${((scavenges / segments) * 1e6).toFixed(1)} scavenges per million segments, ` +
            `${p.capB.writtenCount} frames written at B, ` +
            `${((SUPER * 60_000 * 8) / (ms / 1000) / 1e9).toFixed(2)} Gbit/s through both sleeves (orientation only)`,
        );
        await p.stop();
      },
      300_000,
    );
  }

  it.runIf(isNativeAddonBuilt())(
    'CPU time per 60000-byte super-frame through both sleeves: pieces against segments',
    async () => {
      // CPU time (user + system) of this process, not wall time: less at the mercy of other work on the machine.
      const native = loadNative();
      const SUPER = 5_000;
      for (const round of [1, 2]) {
        for (const segmentOffloads of [false, true]) {
          const p = await pair(60_000, true, native.copyBytes, { aead: nativeDataAead(native), segmentOffloads });
          p.push(500);
          const before = process.cpuUsage();
          p.push(SUPER);
          const used = process.cpuUsage(before);
          const us = (used.user + used.system) / SUPER;
          console.log(
            `round ${round}, ${segmentOffloads ? 'segments + coalescing' : 'pieces'}: ${us.toFixed(1)} us CPU per super-frame ` +
              `(${((60_000 * 8) / us / 1e3).toFixed(2)} Gbit/s per core for both sleeves together)`,
          );
          await p.stop();
        }
      }
    },
    300_000,
  );

  for (const [copyName, copyBytes] of copiers) {
    for (const isSealed of [false, true]) {
      for (const frameBytes of [64, 1400]) {
        it(`${FRAMES} x ${frameBytes}-byte frames A -> B, ${isSealed ? 'sealed (AEAD)' : 'clear'}, ${copyName}`, async () => {
          const p = await pair(frameBytes, isSealed, copyBytes);
          p.push(50_000); // warm up the JIT
          const deliveredBefore = p.capB.writtenCount;
          let ms = 0;
          const scavenges = await countScavenges(() => {
            const t0 = performance.now();
            p.push(FRAMES);
            ms = performance.now() - t0;
          });
          expect(p.capB.writtenCount - deliveredBefore).toBe(FRAMES);
          const c = p.a.counters();
          console.log(
            `sleeve ${isSealed ? 'sealed' : 'clear '} ${String(frameBytes).padStart(4)} B, ${copyName}: ` +
              `${(scavenges / (FRAMES / 1e6)).toFixed(1)} scavenges per million frames, ` +
              `${(c['frames_out']! / c['datagrams_out']!).toFixed(1)} frames/datagram, ` +
              `${((FRAMES / ms) * 1000).toFixed(0)} frames/s through both sleeves (orientation only)`,
          );
          await p.stop();
        }, 300_000);
      }
    }
  }
});
