/**
 * A real TAP device on a real bridge, inside namespaces this test creates (root only).
 *
 *   ns "<p>a": bridge <p>br ── veth <p>v1 ─────── veth <p>v2 (10.77.0.2/24) : ns "<p>b"
 *                 └── TAP (a child process's, or this process's TapCapture) answering as 10.77.0.9
 *
 * 1. A child node process inside <p>a opens a TAP with the compiled addon, attaches it to the bridge and answers ARP
 *    and ICMP echo for 10.77.0.9: `ping` from <p>b succeeds only if frames are read from and written to the TAP.
 * 2. This process's TapCapture (its device moved into <p>a) writes an ARP request as 10.77.0.9 and must read back
 *    <p>b's ARP reply from the veth's MAC.
 * Everything is removed in afterAll, also on failure; the child is ended by its PID.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isNativeAddonBuilt, loadNative, nativeAddonPath } from '../../native/addon.js';
import { createMemoryLogger } from '../../runtime/logger.js';
import { TapCapture } from '../../router/tap-capture.js';
import type { FrameBatch } from '../../router/capture.js';

const isRoot = process.getuid?.() === 0;
const isBuilt = isNativeAddonBuilt();
const skipReason = !isRoot ? 'not root' : !isBuilt ? `native addon not built at ${nativeAddonPath()} (npm run build:native)` : '';
if (skipReason) {
  if (process.env.CI) throw new Error(`tap-capture netns test cannot run: ${skipReason}`);
  console.warn(`SKIP tap-capture netns test: ${skipReason}`);
}

const prefix = `w${randomBytes(2).toString('hex')}`;
const nsA = `${prefix}a`;
const nsB = `${prefix}b`;
const bridge = `${prefix}br`;
const TAP_IP = '10.77.0.9';
const PEER_IP = '10.77.0.2';
const TAP_MAC = '027700000009';

function sh(...args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The child: opens a TAP, attaches it to the bridge, answers ARP and ICMP echo for its IP, prints counts. */
const RESPONDER = String.raw`
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
const [addonPath, tapName, bridge, ip, macHex] = process.argv.slice(2);
const native = createRequire(import.meta.url)(addonPath);
const tap = native.tapOpen(tapName);
execFileSync('ip', ['link', 'set', tap.name, 'master', bridge, 'up']);
const myMac = Buffer.from(macHex, 'hex');
const myIp = Buffer.from(ip.split('.').map(Number));
const SLOTS = 16, HEAD = 64, SLOT = HEAD + 65536;
const inBuf = Buffer.alloc(SLOTS * SLOT), inOff = new Uint32Array(SLOTS), inLen = new Uint32Array(SLOTS);
const outBuf = Buffer.alloc(SLOTS * 2048), outOff = new Uint32Array(SLOTS), outLen = new Uint32Array(SLOTS);
const drops = new Float64Array(2);
const counts = { frames: 0, arpRequests: 0, echoRequests: 0, written: 0 };
function checksum(b, start, end) {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += (b[i] << 8) + (i + 1 < end ? b[i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
function respond(f, o) {
  if (f.length >= 42 && f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 1 && f.subarray(38, 42).equals(myIp)) {
    counts.arpRequests++;
    f.copy(o, 0, 6, 12); myMac.copy(o, 6); o.writeUInt16BE(0x0806, 12);
    f.copy(o, 14, 14, 20); o.writeUInt16BE(2, 20);
    myMac.copy(o, 22); myIp.copy(o, 28); f.copy(o, 32, 22, 32);
    o.fill(0, 42, 60);
    return 60;
  }
  if (f.length >= 42 && f.readUInt16BE(12) === 0x0800 && f.subarray(30, 34).equals(myIp) && f[23] === 1) {
    const ihl = (f[14] & 15) * 4, total = f.readUInt16BE(16), icmp = 14 + ihl;
    if (f[icmp] !== 8) return 0;
    counts.echoRequests++;
    f.copy(o, 0, 0, 14 + total);
    f.copy(o, 0, 6, 12); myMac.copy(o, 6);
    f.copy(o, 30, 26, 30); myIp.copy(o, 26);
    o[22] = 64; o.writeUInt16BE(0, 24); o.writeUInt16BE(checksum(o, 14, 14 + ihl), 24);
    o[icmp] = 0; o.writeUInt16BE(0, icmp + 2); o.writeUInt16BE(checksum(o, icmp, 14 + total), icmp + 2);
    return 14 + total;
  }
  return 0;
}
native.tapReaderStart(tap.fd, inBuf, inOff, inLen, SLOT, HEAD, (count) => {
  if (count < 0) { console.log('ERROR ' + count); return; }
  let k = 0;
  for (let i = 0; i < count; i++) {
    counts.frames++;
    const n = respond(inBuf.subarray(inOff[i], inOff[i] + inLen[i]), outBuf.subarray(k * 2048, (k + 1) * 2048));
    if (n > 0) { outOff[k] = k * 2048; outLen[k] = n; k++; }
  }
  if (k > 0) counts.written += native.tapWriteBatch(tap.fd, outBuf, outOff, outLen, k, drops);
  console.log('COUNTS ' + JSON.stringify(counts));
});
process.on('SIGTERM', () => process.exit(0));
console.log('READY ' + tap.name);
`;

describe.skipIf(!!skipReason)('TAP device on a bridge in a namespace', () => {
  let workDir = '';
  const children: ChildProcess[] = [];

  beforeAll(() => {
    workDir = mkdtempSync(join(tmpdir(), 'weft-tap-'));
    sh('ip', 'netns', 'add', nsA);
    sh('ip', 'netns', 'add', nsB);
    sh('ip', '-n', nsA, 'link', 'add', bridge, 'type', 'bridge');
    sh('ip', '-n', nsA, 'link', 'set', bridge, 'up');
    sh('ip', 'link', 'add', `${prefix}v1`, 'netns', nsA, 'type', 'veth', 'peer', 'name', `${prefix}v2`, 'netns', nsB);
    sh('ip', '-n', nsA, 'link', 'set', `${prefix}v1`, 'master', bridge, 'up');
    sh('ip', '-n', nsB, 'addr', 'add', `${PEER_IP}/24`, 'dev', `${prefix}v2`);
    sh('ip', '-n', nsB, 'link', 'set', `${prefix}v2`, 'up');
    sh('ip', '-n', nsB, 'link', 'set', 'lo', 'up');
  });

  afterAll(() => {
    for (const child of children) if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
    for (const ns of [nsA, nsB]) {
      try {
        sh('ip', 'netns', 'del', ns);
      } catch {
        // not created: beforeAll failed earlier
      }
    }
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  it('a child process reads ARP and ICMP from its TAP and its written replies make ping succeed', async () => {
    const script = join(workDir, 'tap-responder.mjs');
    writeFileSync(script, RESPONDER);
    const child = spawn('ip', ['netns', 'exec', nsA, process.execPath, script, nativeAddonPath(), `${prefix}t`, bridge, TAP_IP, TAP_MAC], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', () => stdout.includes('READY') && resolve());
      child.once('exit', (code) => reject(new Error(`responder exited ${code}: ${stderr}`)));
    });
    expect(stdout).toContain(`READY ${prefix}t`);

    // -w 20 with -c 3: exits 0 only once 3 replies came back (the bridge port may need a moment to forward).
    const ping = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn('ip', ['netns', 'exec', nsB, 'ping', '-n', '-c', '3', '-i', '0.2', '-w', '20', TAP_IP]);
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (out += d));
      p.on('exit', (code) => resolve({ code, out }));
    });
    expect(ping.code, `${ping.out}\nresponder: ${stdout}${stderr}`).toBe(0);

    const lines = stdout
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('COUNTS '));
    const counts = JSON.parse(lines[lines.length - 1]!.slice('COUNTS '.length));
    expect(counts.arpRequests).toBeGreaterThanOrEqual(1);
    expect(counts.echoRequests).toBeGreaterThanOrEqual(3);
    expect(counts.written).toBe(counts.arpRequests + counts.echoRequests);
    process.kill(child.pid!, 'SIGTERM');
    await new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)));
  });

  it('TapCapture writes an ARP request to the bridge and reads the reply from the other namespace', async () => {
    const capture = new TapCapture({ native: loadNative(), log: createMemoryLogger().log }, { name: `${prefix}c` });
    const peerMac = JSON.parse(sh('ip', '-n', nsB, '-j', 'link', 'show', `${prefix}v2`))[0].address.replaceAll(':', '');
    let resolveReply!: (mac: string) => void;
    const reply = new Promise<string>((resolve) => (resolveReply = resolve));
    try {
      await capture.start((batch: FrameBatch) => {
        for (let i = 0; i < batch.count; i++) {
          const o = batch.offsets[i]!;
          const b = batch.buffer;
          if (batch.lengths[i]! >= 42 && b.readUInt16BE(o + 12) === 0x0806 && b.readUInt16BE(o + 20) === 2) {
            resolveReply(b.toString('hex', o + 22, o + 28));
          }
        }
      });
      // Opened here (root namespace, down, no address: silent), then moved into the test's namespace.
      sh('ip', 'link', 'set', capture.name, 'netns', nsA);
      sh('ip', '-n', nsA, 'link', 'set', capture.name, 'master', bridge, 'up');

      const request = Buffer.alloc(60);
      request.fill(0xff, 0, 6); // broadcast
      request.write(TAP_MAC, 6, 'hex');
      request.writeUInt16BE(0x0806, 12);
      request.write('0001080006040001', 14, 'hex'); // Ethernet/IPv4, request
      request.write(TAP_MAC, 22, 'hex');
      Buffer.from(TAP_IP.split('.').map(Number)).copy(request, 28);
      Buffer.from(PEER_IP.split('.').map(Number)).copy(request, 38);

      let mac: string | undefined;
      for (let attempt = 0; attempt < 40 && mac === undefined; attempt++) {
        expect(capture.write(request, 0, request.length)).toBe(true);
        capture.flush();
        mac = await Promise.race([reply, new Promise<undefined>((r) => setTimeout(() => r(undefined), 250))]);
      }
      expect(mac).toBe(peerMac);
      expect(capture.counters()).toMatchObject({ dropsQueueFull: 0, dropsWriteError: 0 });
      expect(capture.counters().framesRead).toBeGreaterThanOrEqual(1);
    } finally {
      await capture.stop();
    }
  });
});
