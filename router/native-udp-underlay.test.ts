/**
 * NativeUdpUnderlay over loopback (no root): real sockets on 127.0.0.1, recvmmsg/sendmmsg through the addon.
 * Needs `npm run build:native`; without the addon the suite is skipped with a reason (a failure when CI is set).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isNativeAddonBuilt, loadNative, nativeAddonPath, type BatchCallback } from '../native/addon.js';
import { createMemoryLogger } from '../runtime/logger.js';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { NativeUdpUnderlay, UdpBindError } from './native-udp-underlay.js';
import { addressToWords, canonicalAddress, wordsToAddress } from './underlay-address.js';
import type { DatagramBatch, Endpoint, Underlay } from './underlay.js';

const isBuilt = isNativeAddonBuilt();
/** A kernel booted with ipv6.disable=1 has no IPv6 sockets at all: those tests cannot run there. */
const hasIpv6 = existsSync('/proc/net/if_inet6');
if (!isBuilt) {
  const reason = `native addon not built at ${nativeAddonPath()}: run \`npm run build:native\``;
  if (process.env.CI) throw new Error(reason);
  console.warn(`SKIP native-udp-underlay tests: ${reason}`);
}

/** Datagram i: a 4-byte big-endian index, then a byte pattern; sizes vary from 4 to 8999 bytes. */
function datagram(i: number): Buffer {
  const size = 4 + ((i * 997) % 8996);
  const b = Buffer.alloc(size);
  b.writeUInt32BE(i, 0);
  for (let j = 4; j < size; j++) b[j] = (i + j) & 255;
  return b;
}

interface Received {
  index: number;
  bytes: Buffer;
  address: string;
  port: number;
  offset: number;
}

/**
 * Collect datagrams until `expected` have arrived, checking each batch's headroom on the way: every message starts
 * `headroomBytes` or more after the one before; datagrams GRO coalesced into one message follow each other at once.
 */
function collector(expected: number, headroomBytes: number) {
  const received: Received[] = [];
  let done!: () => void;
  const isDone = new Promise<void>((resolve) => (done = resolve));
  const onDatagrams = (batch: DatagramBatch): void => {
    for (let i = 0; i < batch.count; i++) {
      const offset = batch.offsets[i]!;
      const length = batch.lengths[i]!;
      const previousEnd = i === 0 ? 0 : batch.offsets[i - 1]! + batch.lengths[i - 1]!;
      if (i === 0 || offset !== previousEnd) expect(offset - previousEnd).toBeGreaterThanOrEqual(headroomBytes);
      const bytes = Buffer.from(batch.buffer.subarray(offset, offset + length));
      received.push({ index: bytes.readUInt32BE(0), bytes, address: batch.addresses[i]!, port: batch.ports[i]!, offset });
    }
    if (received.length >= expected) done();
  };
  return { received, isDone, onDatagrams };
}

describe.skipIf(!isBuilt)('NativeUdpUnderlay on loopback', () => {
  const native = isBuilt ? loadNative() : (undefined as never);
  const open: Underlay[] = [];
  const make = (options: ConstructorParameters<typeof NativeUdpUnderlay>[1] = {}): NativeUdpUnderlay => {
    const u = new NativeUdpUnderlay({ native, log: createMemoryLogger().log }, { bindAddress: '127.0.0.1', ...options });
    open.push(u);
    return u;
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((u) => u.stop()));
  });

  it('delivers 100 datagrams of varied sizes intact, with their source port, headroom before each', async () => {
    const a = make({ batchSlots: 16 });
    const b = make({ headroomBytes: 80 });
    await a.start(() => {});
    const scratch = Buffer.alloc(10_000, 0xee);
    // Rounds of 25, each awaited: without root the socket buffer stays at net.core.rmem_max (~200 KiB), which
    // 100 datagrams of up to 9 KB sent before the receiver runs could overflow.
    let inbox = collector(0, 80);
    let batchHandler = inbox.onDatagrams;
    await b.start((batch) => batchHandler(batch));
    const to: Endpoint = { address: '127.0.0.1', port: b.localPort };
    const received: Received[] = [];
    for (let round = 0; round < 4; round++) {
      inbox = collector(25, 80);
      batchHandler = inbox.onDatagrams;
      for (let i = round * 25; i < (round + 1) * 25; i++) {
        const d = datagram(i);
        d.copy(scratch, 100);
        a.send(scratch, 100, d.length, to);
        scratch.fill(0xee); // the underlay copied on send, so the caller may reuse its buffer at once
      }
      a.flush();
      await inbox.isDone;
      received.push(...inbox.received);
    }

    expect(received.map((r) => r.index).sort((x, y) => x - y)).toEqual([...Array(100).keys()]);
    for (const r of received) {
      expect(r.bytes.equals(datagram(r.index))).toBe(true);
      expect(r.address).toBe('127.0.0.1');
      expect(r.port).toBe(a.localPort);
    }
    // A batch of 16 slots flushes itself when full: 100 sends made at least 6 sendmmsg batches, none dropped.
    expect(a.counters()).toMatchObject({ datagramsSent: 100, dropsSendBufferFull: 0, dropsSendError: 0 });
    expect(b.counters().datagramsReceived).toBe(100);
  });

  it('sends runs of equal-size datagrams with GSO and delivers each intact, in order, to one and two destinations', async () => {
    // 100 of 1400 bytes with odd sizes among them (each ends a GSO run, or breaks one), in one send batch.
    const sizeOf = (i: number): number => (i % 17 === 5 ? 333 : i % 23 === 7 ? 4000 : i === 99 ? 1399 : 1400);
    const bytesOf = (i: number): Buffer => {
      const b = Buffer.alloc(sizeOf(i));
      b.writeUInt32BE(i, 0);
      for (let j = 4; j < b.length; j++) b[j] = (i * 7 + j) & 255;
      return b;
    };
    const a = make({ batchSlots: 128 });
    const b = make({ headroomBytes: 32 });
    const c = make({ batchSlots: 2 });
    await a.start(() => {});
    const inB = collector(100, 32);
    await b.start(inB.onDatagrams);
    const toB: Endpoint = { address: '127.0.0.1', port: b.localPort };

    for (let i = 0; i < 100; i++) a.send(bytesOf(i), 0, sizeOf(i), toB);
    a.flush();
    await inB.isDone;
    expect(inB.received.map((r) => r.index)).toEqual([...Array(100).keys()]);
    for (const r of inB.received) {
      expect(r.bytes.length).toBe(sizeOf(r.index));
      expect(r.bytes.equals(bytesOf(r.index))).toBe(true);
      expect(r.port).toBe(a.localPort);
    }
    const sent = a.counters();
    expect(sent).toMatchObject({ datagramsSent: 100, dropsSendBufferFull: 0, dropsSendError: 0, gsoRefused: 0 });
    // This kernel has GSO (>= 4.18): runs went as fewer messages than datagrams, still counted one by one.
    if (sent.gsoDisabled === 0) {
      expect(sent.gsoMessagesSent).toBeGreaterThan(0);
      expect(sent.gsoDatagramsSent).toBeGreaterThan(sent.gsoMessagesSent);
    }

    // Two destinations, in blocks of 1..13 and interleaved singles: runs end where the destination changes.
    const inB2 = collector(60, 32);
    const inC = collector(60, 64);
    await b.stop();
    const b2 = make({ headroomBytes: 32 });
    await b2.start(inB2.onDatagrams);
    await c.start(inC.onDatagrams);
    const toB2: Endpoint = { address: '127.0.0.1', port: b2.localPort };
    const toC: Endpoint = { address: '127.0.0.1', port: c.localPort };
    let nextB = 0;
    let nextC = 0;
    for (let block = 1; nextB < 60 || nextC < 60; block = (block % 13) + 1) {
      for (let k = 0; k < block && nextB < 60; k++, nextB++) a.send(bytesOf(nextB), 0, sizeOf(nextB), toB2);
      if (nextC < 60) {
        a.send(bytesOf(nextC), 0, sizeOf(nextC), toC);
        nextC++;
      }
      if (block % 3 === 0) for (let k = 0; k < block && nextC < 60; k++, nextC++) a.send(bytesOf(nextC), 0, sizeOf(nextC), toC);
    }
    a.flush();
    await Promise.all([inB2.isDone, inC.isDone]);
    for (const inbox of [inB2, inC]) {
      expect(inbox.received.map((r) => r.index)).toEqual([...Array(60).keys()]);
      for (const r of inbox.received) {
        expect(r.bytes.equals(bytesOf(r.index))).toBe(true);
        expect(r.port).toBe(a.localPort);
        expect(r.address).toBe('127.0.0.1');
      }
    }
    expect(a.counters()).toMatchObject({ datagramsSent: 220, dropsSendBufferFull: 0, dropsSendError: 0, gsoRefused: 0 });
    expect(b2.counters().datagramsReceived + c.counters().datagramsReceived).toBe(120);
  });

  it('splits a GRO message over several callbacks when the entries run out, losing nothing', async () => {
    const a = make();
    await a.start(() => {});
    const receiver = native.udpOpen('127.0.0.1', 0);
    const slotBytes = 65_507 + 16;
    const buffer = Buffer.alloc(slotBytes); // one receive slot, but only 4 entries: a 10-datagram message splits
    const offsets = new Uint32Array(4);
    const lengths = new Uint32Array(4);
    const addrs = new Uint32Array(16); // four words per entry
    const ports = new Uint16Array(4);
    const got: { index: number; length: number; port: number }[] = [];
    const counts: number[] = [];
    let done!: () => void;
    const isDone = new Promise<void>((resolve) => (done = resolve));
    const onBatch: BatchCallback = (count) => {
      counts.push(count);
      for (let i = 0; i < count; i++) {
        got.push({ index: buffer.readUInt32BE(offsets[i]!), length: lengths[i]!, port: ports[i]! });
        buffer.fill(0, offsets[i]!, offsets[i]! + lengths[i]!); // writing inside a delivered datagram is allowed
      }
      if (got.length >= 10) done();
    };
    const reader = native.udpReaderStart(receiver.fd, buffer, offsets, lengths, addrs, ports, slotBytes, 16, onBatch);
    try {
      for (let i = 0; i < 10; i++) {
        const d = Buffer.alloc(i === 9 ? 500 : 1000);
        d.writeUInt32BE(i, 0);
        a.send(d, 0, d.length, { address: '127.0.0.1', port: receiver.port });
      }
      a.flush();
      await isDone;
      expect(got).toEqual([...Array(10).keys()].map((i) => ({ index: i, length: i === 9 ? 500 : 1000, port: a.localPort })));
      expect(counts.every((n) => n <= 4)).toBe(true);
      expect(native.readerStats(reader).packets).toBe(10);
    } finally {
      native.readerStop(reader);
      native.fdClose(receiver.fd);
    }
  });

  it('interoperates with a node:dgram socket in both directions', async () => {
    const nativeSide = make();
    const dgramSide = createSocket('udp4');
    await new Promise<void>((resolve) => dgramSide.bind(0, '127.0.0.1', resolve));
    const dgramPort = dgramSide.address().port;
    const toDgram: Array<{ bytes: Buffer; port: number }> = [];
    const toDgramDone = new Promise<void>((resolve) =>
      dgramSide.on('message', (bytes, rinfo) => {
        toDgram.push({ bytes, port: rinfo.port });
        if (toDgram.length === 10) resolve();
      }),
    );
    const toNative = collector(10, 64);
    await nativeSide.start(toNative.onDatagrams);
    try {
      for (let i = 0; i < 10; i++) {
        const d = datagram(i);
        nativeSide.send(d, 0, d.length, { address: '127.0.0.1', port: dgramPort });
        dgramSide.send(d, nativeSide.localPort, '127.0.0.1');
      }
      nativeSide.flush();
      await Promise.all([toDgramDone, toNative.isDone]);
      for (const r of toDgram) expect(r.bytes.equals(datagram(r.bytes.readUInt32BE(0)))).toBe(true);
      for (const r of toNative.received) expect(r.bytes.equals(datagram(r.index))).toBe(true);
      expect(toDgram.every((r) => r.port === nativeSide.localPort)).toBe(true);
      expect(toNative.received.every((r) => r.port === dgramPort)).toBe(true);
    } finally {
      dgramSide.close();
    }
  });

  it('drops and counts sends it cannot make, without throwing', async () => {
    const a = make();
    const bytes = Buffer.alloc(100);
    a.send(bytes, 0, 10, { address: '127.0.0.1', port: 9 });
    expect(a.counters().dropsNotRunning).toBe(1);
    await a.start(() => {});
    a.send(bytes, 0, 10, { address: 'fe80::1', port: 9 });
    a.send(bytes, 0, 10, { address: 'peer.example', port: 9 });
    a.send(bytes, 95, 10, { address: '127.0.0.1', port: 9 });
    a.send(Buffer.alloc(70_000), 0, 65_508, { address: '127.0.0.1', port: 9 });
    a.flush();
    expect(a.counters()).toMatchObject({ dropsBadAddress: 2, dropsBadLength: 2, datagramsSent: 0 });
  });

  it.skipIf(!hasIpv6)('carries IPv6 both ways on ::1, GSO runs included, sources reported in canonical form', async () => {
    const a = make({ bindAddress: '::1' });
    const b = make({ bindAddress: '::1' });
    await a.start(() => {});
    const inbox = collector(40, 64);
    await b.start(inbox.onDatagrams);
    expect(a.localFamily).toBe(6);
    const to: Endpoint = { address: '0:0::1', port: b.localPort }; // any spelling: parsed once per endpoint
    const run = Buffer.alloc(1200);
    for (let i = 0; i < 40; i++) {
      run.writeUInt32BE(i, 0);
      a.send(run, 0, i === 39 ? 700 : 1200, to); // equal sizes to one endpoint: one GSO message where it works
    }
    a.flush();
    await inbox.isDone;
    expect(inbox.received.map((r) => r.index)).toEqual([...Array(40).keys()]);
    expect(inbox.received.every((r) => r.address === '::1' && r.port === a.localPort)).toBe(true);
    expect(a.counters()).toMatchObject({ datagramsSent: 40, dropsBadAddress: 0, dropsSendError: 0 });
  });

  it.skipIf(!hasIpv6)('takes IPv4 on a socket bound to :: and reports it as a dotted address; answers it the same way', async () => {
    const dual = make({ bindAddress: '::' });
    const v4 = make({ bindAddress: '127.0.0.1' });
    const atDual = collector(3, 0);
    const atV4 = collector(3, 0);
    await dual.start(atDual.onDatagrams);
    await v4.start(atV4.onDatagrams);
    const d = (i: number): Buffer => Buffer.alloc(100).fill(i).fill(0, 0, 4);
    for (let i = 0; i < 3; i++) v4.send(d(i), 0, 100, { address: '127.0.0.1', port: dual.localPort });
    v4.flush();
    await atDual.isDone;
    expect(atDual.received.map((r) => r.address)).toEqual(['127.0.0.1', '127.0.0.1', '127.0.0.1']);
    for (let i = 0; i < 3; i++) dual.send(d(i), 0, 100, { address: '127.0.0.1', port: v4.localPort });
    dual.flush();
    await atV4.isDone;
    expect(atV4.received.every((r) => r.address === '127.0.0.1' && r.port === dual.localPort)).toBe(true);
  });

  it('refuses a port already bound with UdpBindError naming the port', async () => {
    const a = make();
    await a.start(() => {});
    const b = make({ port: a.localPort });
    const err = await b.start(() => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UdpBindError);
    expect(err).toMatchObject({ code: 'UDP_BIND_FAILED', errnoCode: 'EADDRINUSE' });
    expect((err as Error).message).toContain(`127.0.0.1:${a.localPort}`);
    await b.stop(); // safe after a failed start
  });

  it('stops idempotently and sends nothing afterwards', async () => {
    const a = make();
    await a.start(() => {});
    await a.stop();
    await a.stop();
    a.send(Buffer.alloc(10), 0, 10, { address: '127.0.0.1', port: 9 });
    expect(a.counters().dropsNotRunning).toBe(1);
  });

  it('sends claimed datagrams written in place, and forgets one given back with unclaim', async () => {
    const a = make();
    const b = make();
    await a.start(() => {});
    const inbox = collector(2, 0);
    await b.start(inbox.onDatagrams);
    const to: Endpoint = { address: '127.0.0.1', port: b.localPort };
    for (const [i, keep] of [
      [1, true],
      [2, false],
      [3, true],
    ] as const) {
      const at = a.claim(500, to);
      expect(at).toBeGreaterThanOrEqual(0);
      a.claimBuffer.writeUInt32BE(i, at);
      a.claimBuffer.fill(i, at + 4, at + 500);
      if (!keep) a.unclaim();
    }
    a.flush();
    await inbox.isDone;
    expect(inbox.received.map((r) => r.index)).toEqual([1, 3]);
    for (const r of inbox.received) expect(r.bytes.subarray(4).every((x) => x === r.index)).toBe(true);
    expect(a.counters().datagramsSent).toBe(2);
    expect(a.claim(70_000, to)).toBe(-1); // larger than a UDP datagram
  });
});

describe('underlay address words', () => {
  it('maps IPv4 to ::ffff:a.b.c.d words and IPv6 to its four words, and back in canonical form', () => {
    const w = new Uint32Array(8);
    expect(addressToWords('10.0.0.2', w, 0)).toBe(true);
    expect([...w.subarray(0, 4)]).toEqual([0, 0, 0xffff, 0x0a000002]);
    expect(wordsToAddress(w, 0)).toBe('10.0.0.2');
    expect(addressToWords('FD00:0:0:0::2', w, 4)).toBe(true);
    expect([...w.subarray(4, 8)]).toEqual([0xfd000000, 0, 0, 2]);
    expect(wordsToAddress(w, 4)).toBe('fd00::2');
    expect(canonicalAddress('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(canonicalAddress('2001:DB8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
  });

  it('refuses what is not an IP address, writing nothing', () => {
    const w = new Uint32Array(4).fill(7);
    for (const bad of ['peer.example', '10.1', '', '1::2::3', '[::1]']) expect(addressToWords(bad, w, 0)).toBe(false);
    expect([...w]).toEqual([7, 7, 7, 7]);
    expect(canonicalAddress('peer.example')).toBe('peer.example');
  });
});
