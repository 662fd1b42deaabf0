/**
 * Three sleeves (peers 1, 2, 3) over the in-memory capture and underlay, with hand-built snapshots and a FakeClock.
 * Each test narrates its steps: containers are MACs injected on a host's capture; what reaches a host's bridge is its
 * capture's `written`.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../runtime/clock.js';
import { SeededRandom } from '../../runtime/random.js';
import { silentLogger } from '../../runtime/logger.js';
import { MemoryCapture } from '../../router/memory-capture.js';
import { MemoryUdpNetwork, MemoryUnderlay } from '../../router/memory-underlay.js';
import { Sleeve } from '../../router/sleeve.js';
import { OpenResult, type DataSession } from '../../crypto/data-session.js';
import type { ForwardingSnapshot, PeerHealth, PeerId, PeerPath } from '../../router/datapath.js';
import type { Endpoint } from '../../router/underlay.js';
import { FLAG_ENCRYPTED, HEADER_BYTES, MessageType, encodeDatagram } from '../../router/sleeve-format.js';
import { internetChecksum } from '../../router/icmp.js';

const SEED = Number(process.env.WEFT_SEED ?? 0x5eed);
const LATENCY_MS = 1;
const SETTLE_MS = 10;

type Mesh = 'full' | 'line'; // line: 1 - 2 - 3 (1 and 3 are not neighbours)

interface Host {
  id: PeerId;
  capture: MemoryCapture;
  underlay: MemoryUnderlay;
  sleeve: Sleeve;
  endpoint: Endpoint;
  health: Array<{ peer: PeerId; isEstablished: boolean }>;
}

/** A test's world: three hosts on one network. */
class World {
  readonly clock = new FakeClock();
  readonly network = new MemoryUdpNetwork({ clock: this.clock, random: new SeededRandom(SEED) }, { latencyMs: LATENCY_MS });
  readonly hosts: Host[] = [];

  constructor(
    private readonly mesh: Mesh,
    private readonly sessionFor: (self: PeerId, other: PeerId) => DataSession | null = () => null,
  ) {
    for (const id of [1, 2, 3]) {
      const capture = new MemoryCapture({ clock: this.clock }, { name: `h${id}` });
      const underlay = new MemoryUnderlay({ network: this.network }, { address: `10.0.0.${id}` });
      const sleeve = new Sleeve({ capture, underlay, clock: this.clock, log: silentLogger });
      const host: Host = { id, capture, underlay, sleeve, endpoint: underlay.endpoint(), health: [] };
      sleeve.onHealthChange((peer, h: PeerHealth) => host.health.push({ peer, isEstablished: h.isEstablished }));
      this.hosts.push(host);
    }
  }

  host(id: PeerId): Host {
    return this.hosts[id - 1]!;
  }

  areNeighbours(a: PeerId, b: PeerId): boolean {
    return a !== b && (this.mesh === 'full' || Math.abs(a - b) === 1);
  }

  snapshot(self: PeerId): ForwardingSnapshot {
    const neighbours = new Map<PeerId, PeerPath>();
    for (const h of this.hosts) {
      if (this.areNeighbours(self, h.id)) neighbours.set(h.id, { peer: h.id, endpoint: h.endpoint, session: this.sessionFor(self, h.id) });
    }
    const unicastNextHop = new Map<PeerId, PeerId>();
    for (const dst of [1, 2, 3]) {
      if (dst === self) continue;
      unicastNextHop.set(dst, this.areNeighbours(self, dst) ? dst : 2); // in the line, 2 is the way between 1 and 3
    }
    // Spanning trees: in the full mesh the capturing peer sends to everyone; in the line each peer passes a broadcast
    // on away from where it came.
    const broadcastNextHops = new Map<PeerId, PeerId[]>();
    for (const src of [1, 2, 3]) {
      if (this.mesh === 'full') broadcastNextHops.set(src, src === self ? [1, 2, 3].filter((p) => p !== self) : []);
      else if (self === 2)
        broadcastNextHops.set(
          src,
          [1, 3].filter((p) => p !== src),
        );
      else broadcastNextHops.set(src, src === self ? [2] : []);
    }
    return { localPeer: self, neighbours, unicastNextHop, broadcastNextHops, underlayMtuBytes: 1500 };
  }

  async start(): Promise<void> {
    for (const h of this.hosts) {
      h.sleeve.apply(this.snapshot(h.id));
      await h.sleeve.start();
    }
    this.clock.advance(SETTLE_MS);
  }

  /** Let every datagram in flight arrive (and whatever it triggers). */
  settle(): void {
    this.clock.advance(SETTLE_MS);
  }

  clearWritten(): void {
    for (const h of this.hosts) h.capture.written.length = 0;
  }

  async stop(): Promise<void> {
    for (const h of this.hosts) await h.sleeve.stop();
  }
}

/** MAC of container c on host h: 02:00:00:00:0h:0c. */
const mac = (h: number, c = 1) => 0x0200_0000_0000 + h * 0x100 + c;
const BROADCAST_MAC = 0xffff_ffff_ffff;

/** An Ethernet frame from `src` to `dst` whose payload carries `tag` (so a test can tell frames apart). */
function frame(dst: number, src: number, tag: string, payloadBytes = 46): Buffer {
  const f = Buffer.alloc(14 + payloadBytes);
  f.writeUIntBE(dst, 0, 6);
  f.writeUIntBE(src, 6, 6);
  f.writeUInt16BE(0x88b5, 12); // local experimental EtherType
  f.write(tag, 14);
  return f;
}

const tagsOf = (h: Host) => h.capture.written.map((f) => f.toString('utf8', 14).replace(/\0+$/, ''));

describe(`sleeve on 3 hosts (seed ${SEED})`, () => {
  it('full mesh: a broadcast teaches every host the sender, then unicast goes to exactly one host', async () => {
    const w = new World('full');
    await w.start();
    const [h1, h2, h3] = [w.host(1), w.host(2), w.host(3)];

    // c1 on h1 broadcasts (an ARP request, say): h2 and h3 both get it and learn c1 is behind peer 1.
    h1.capture.inject(frame(BROADCAST_MAC, mac(1), 'who-has'));
    w.settle();
    expect(tagsOf(h2)).toEqual(['who-has']);
    expect(tagsOf(h3)).toEqual(['who-has']);
    expect(tagsOf(h1)).toEqual([]);

    // c2 on h2 answers c1 by unicast: only h1 gets it.
    w.clearWritten();
    h2.capture.inject(frame(mac(1), mac(2), 'is-at'));
    w.settle();
    expect(tagsOf(h1)).toEqual(['is-at']);
    expect(tagsOf(h3)).toEqual([]);

    // c1 talks to c2: h1 learned c2 from the reply, so one record goes to h2 only.
    w.clearWritten();
    const outBefore = h1.sleeve.counters()['frames_out']!;
    h1.capture.inject(frame(mac(2), mac(1), 'hello'));
    w.settle();
    expect(tagsOf(h2)).toEqual(['hello']);
    expect(tagsOf(h3)).toEqual([]);
    expect(h1.sleeve.counters()['frames_out']! - outBefore).toBe(1);

    // A frame to a MAC on h1's own bridge is not sent anywhere (the bridge delivered it).
    h1.capture.inject(frame(mac(1, 1), mac(1, 2), 'local'));
    w.settle();
    expect(h1.sleeve.counters()['drop_local_dest']).toBe(1);
    expect(tagsOf(h2)).toEqual(['hello']);
    await w.stop();
  });

  it('a container sending 60,000 random source MACs fills the tables, and heartbeats and real traffic carry on', async () => {
    const w = new World('full');
    await w.start();
    const [h1, h2, h3] = [w.host(1), w.host(2), w.host(3)];
    w.clock.advance(3000);
    for (const h of w.hosts) for (const [, health] of h.sleeve.peerHealth()) expect(health.isEstablished).toBe(true);
    // c2 is known everywhere before the flood.
    h2.capture.inject(frame(BROADCAST_MAC, mac(2), 'c2-here'));
    w.settle();
    // The flood: broadcasts from random locally administered MACs, more than the 8192 entries each table holds.
    const rnd = new SeededRandom(SEED);
    const f = frame(BROADCAST_MAC, 0, 'flood');
    for (let k = 0; k < 60_000; k++) {
      f.writeUInt16BE(0x0266, 6);
      f.writeUInt32BE(rnd.int(0x1_0000_0000), 8);
      h1.capture.injectFrom(f, 0, f.length);
      if (k % 64 === 63) w.clock.advance(0);
      if (k % 2000 === 1999) w.settle();
    }
    w.settle();
    for (const h of [h2, h3]) expect(h.sleeve.counters()['mac_table_full']).toBeGreaterThan(0);
    // Heartbeats went on being answered through it all, and a unicast to c2 still goes to h2 alone.
    w.clock.advance(3000);
    for (const h of w.hosts) for (const [, health] of h.sleeve.peerHealth()) expect(health.isEstablished).toBe(true);
    w.clearWritten();
    h1.capture.inject(frame(mac(2), mac(1, 7), 'to-c2'));
    w.settle();
    expect(tagsOf(h2)).toEqual(['to-c2']);
    expect(tagsOf(h3)).toEqual([]);
    await w.stop();
  });

  it('partial mesh: 1 -> 3 goes via 2, and 2 neither learns nor delivers it', async () => {
    const w = new World('line');
    await w.start();
    const [h1, h2, h3] = [w.host(1), w.host(2), w.host(3)];

    // c3 broadcasts: h2 delivers and relays it to h1 along 3's tree; h1 learns c3 is behind peer 3.
    h3.capture.inject(frame(BROADCAST_MAC, mac(3), 'from-3'));
    w.settle();
    expect(tagsOf(h1)).toEqual(['from-3']);
    expect(tagsOf(h2)).toEqual(['from-3']);

    // A container h2 has never heard of sends c3 a unicast frame from h1.
    w.clearWritten();
    const stranger = mac(1, 9);
    h1.capture.inject(frame(mac(3), stranger, 'via-2'));
    w.settle();
    expect(tagsOf(h3)).toEqual(['via-2']);
    expect(tagsOf(h2)).toEqual([]);
    expect(h2.sleeve.counters()['frames_forwarded']).toBe(2); // the broadcast relay above, and this one
    expect(h2.sleeve.macEntries().some((e) => e.mac === stranger)).toBe(false);
    expect(h3.sleeve.macEntries().find((e) => e.mac === stranger)?.peer).toBe(1);

    // And back: h3 learned the stranger is behind peer 1, routes via 2.
    w.clearWritten();
    h3.capture.inject(frame(stranger, mac(3), 'reply'));
    w.settle();
    expect(tagsOf(h1)).toEqual(['reply']);
    expect(tagsOf(h2)).toEqual([]);
    await w.stop();
  });

  for (const mesh of ['full', 'line'] as const) {
    it(`${mesh} mesh: a broadcast from any host reaches each other host exactly once`, async () => {
      const w = new World(mesh);
      await w.start();
      for (const src of [1, 2, 3]) {
        w.clearWritten();
        w.host(src).capture.inject(frame(BROADCAST_MAC, mac(src), `b${src}`));
        w.clock.advance(1000); // long enough for any duplicate or echo to show up
        for (const h of w.hosts) expect(tagsOf(h)).toEqual(h.id === src ? [] : [`b${src}`]);
      }
      for (const h of w.hosts) expect(h.sleeve.counters()['drop_loop']).toBe(0);
      await w.stop();
    });
  }

  it('heartbeats establish neighbours; a partition un-establishes them, healing re-establishes', async () => {
    const w = new World('full');
    await w.start();
    const [h1, h2, h3] = [w.host(1), w.host(2), w.host(3)];
    w.clock.advance(2000);
    for (const h of w.hosts) {
      for (const [, health] of h.sleeve.peerHealth()) expect(health.isEstablished).toBe(true);
    }
    expect(h1.health).toEqual(
      expect.arrayContaining([
        { peer: 2, isEstablished: true },
        { peer: 3, isEstablished: true },
      ]),
    );

    // Cut 1 <-> 2: within the timeout plus a heartbeat both sides notice; 1 <-> 3 stays up.
    w.network.partition('10.0.0.1', '10.0.0.2');
    w.clock.advance(5000 + 1000 + 1000);
    expect(h1.sleeve.peerHealth().get(2)?.isEstablished).toBe(false);
    expect(h2.sleeve.peerHealth().get(1)?.isEstablished).toBe(false);
    expect(h1.sleeve.peerHealth().get(3)?.isEstablished).toBe(true);
    expect(h3.sleeve.peerHealth().get(2)?.isEstablished).toBe(true);
    expect(h1.health.at(-1)).toEqual({ peer: 2, isEstablished: false });

    w.network.heal('10.0.0.1', '10.0.0.2');
    w.clock.advance(2000);
    expect(h1.sleeve.peerHealth().get(2)?.isEstablished).toBe(true);
    expect(h1.health.at(-1)).toEqual({ peer: 2, isEstablished: true });
    await w.stop();
  });

  it('drops and counts 100k garbage datagrams, and real frames still flow', async () => {
    const w = new World('full');
    await w.start();
    const [h1, h2] = [w.host(1), w.host(2)];
    const attacker = new MemoryUnderlay({ network: w.network }, { address: '10.0.0.66' });
    await attacker.start(() => undefined);
    const rnd = new SeededRandom(SEED);
    const dropsOf = () =>
      Object.entries(h1.sleeve.counters())
        .filter(([k]) => k.startsWith('drop_'))
        .reduce((s, [, v]) => s + v, 0);
    const before = dropsOf();

    const scratch = Buffer.alloc(1500);
    /** `n` random bytes at `scratch[at]`. */
    const randomBytes = (n: number, at = 0) => {
      for (let i = 0; i < n; i++) scratch[at + i] = rnd.int(256);
      return n;
    };
    const header = (flags: number, sender: number) => {
      scratch[0] = 0x57;
      scratch[1] = flags;
      scratch.writeUIntBE(sender, 2, 6);
      scratch.writeUInt32BE(0, 8);
      scratch.writeUInt32BE(rnd.int(1000), 12);
    };
    let sent = 0;
    const kinds = { random: 0, truncated: 0, unknownSender: 0, badRecord: 0, sealedFromClear: 0 };
    for (let k = 0; k < 100_000; k++) {
      let n: number;
      switch (k % 5) {
        case 0: // random bytes of random length
          n = randomBytes(rnd.int(300));
          kinds.random++;
          break;
        case 1: // a valid header cut short
          header(0, 2);
          n = rnd.int(HEADER_BYTES);
          kinds.truncated++;
          break;
        case 2: // a well-formed frames datagram from a peer that is not a neighbour
          header(0, 99);
          n = HEADER_BYTES + randomBytes(40, HEADER_BYTES);
          kinds.unknownSender++;
          break;
        case 3: {
          // a known sender (peer 2) whose record claims more bytes than the datagram holds
          header(0, 2);
          n = HEADER_BYTES + 14 + 20;
          scratch.writeUIntBE(2, HEADER_BYTES, 6);
          scratch.writeUIntBE(1, HEADER_BYTES + 6, 6);
          scratch.writeUInt16BE(100 + rnd.int(0xff00), HEADER_BYTES + 12);
          kinds.badRecord++;
          break;
        }
        default: // claims to be sealed, from a neighbour we talk to in clear
          header(FLAG_ENCRYPTED, 3);
          n = HEADER_BYTES + randomBytes(32, HEADER_BYTES);
          kinds.sealedFromClear++;
      }
      // A bad record from a known sender is sent from that sender's endpoint (from anywhere else it is a bad source).
      (k % 5 === 3 ? h2.underlay : attacker).send(scratch, 0, n, h1.endpoint);
      sent++;
      if (sent % 200 === 0) w.settle(); // keep within the receive queue
    }
    w.settle();
    expect(h1.underlay.dropsQueueFull).toBe(0);
    const c = h1.sleeve.counters();
    expect(dropsOf() - before).toBe(sent);
    expect(c['drop_unknown_sender']).toBeGreaterThanOrEqual(kinds.unknownSender);
    expect(c['drop_bad_record']).toBe(kinds.badRecord);
    expect(c['drop_unexpected_sealed']).toBe(kinds.sealedFromClear);
    expect(c['drop_short']).toBeGreaterThanOrEqual(kinds.truncated);
    expect(c['drop_magic']).toBeGreaterThan(0);
    expect(h1.capture.written).toHaveLength(0);

    // Real traffic is untouched.
    h2.capture.inject(frame(BROADCAST_MAC, mac(2), 'still-here'));
    w.settle();
    expect(tagsOf(h1)).toEqual(['still-here']);
    await attacker.stop();
    await w.stop();
  });

  it('answers an oversized DF IPv4 frame with ICMP fragmentation needed carrying the overlay MTU', async () => {
    const w = new World('full');
    await w.start();
    const [h1, h2] = [w.host(1), w.host(2)];
    h2.capture.inject(frame(BROADCAST_MAC, mac(2), 'arp'));
    w.settle();
    w.clearWritten();

    const big = frame(mac(2), mac(1), '', 1500 - 14 + 14); // 1500 bytes of IP: too big for a 1500-byte underlay
    big.writeUInt16BE(0x0800, 12);
    big[14] = 0x45;
    big.writeUInt16BE(1500, 16);
    big.writeUInt16BE(0x4000, 20); // DF
    big[23] = 6;
    Buffer.from([10, 47, 1, 1, 10, 47, 1, 2]).copy(big, 26);
    big.writeUInt16BE(internetChecksum(big, 14, 20), 24);
    h1.capture.inject(big);
    w.settle();

    expect(h1.sleeve.counters()['drop_too_big']).toBe(1);
    expect(h1.sleeve.counters()['icmp_frag_needed']).toBe(1);
    expect(h2.capture.written).toHaveLength(0);
    expect(h1.capture.written).toHaveLength(1);
    const reply = h1.capture.written[0]!;
    expect(reply.readUIntBE(0, 6)).toBe(mac(1));
    expect(reply[34]).toBe(3);
    expect(reply[35]).toBe(4);
    // 1500 - 28 (IP+UDP) - 16 (header) - 14 (record) - 14 (inner Ethernet), no tag on a clear path.
    expect(reply.readUInt16BE(40)).toBe(1428);
    expect(internetChecksum(reply, 14, 20)).toBe(0);
    expect(internetChecksum(reply, 34, reply.length - 34)).toBe(0);
    await w.stop();
  });
});

/**
 * A toy DataSession: XOR "cipher" and a 4-byte additive checksum over header and ciphertext as the tag, with a
 * set of seen sequence numbers as the replay window. Enough to prove the sleeve seals, opens and drops.
 */
class XorSession implements DataSession {
  readonly overheadBytes = 4;
  readonly sendKeyPhase = 0;
  sealCalls = 0;
  openCalls = 0;
  private seq = 0;
  private readonly seen = new Set<number>();

  constructor(private readonly key: number) {}

  nextSeq(): number {
    return this.seq++;
  }

  seal(buffer: Buffer, headerOffset: number, bodyOffset: number, bodyLength: number, _seq: number): number {
    this.sealCalls++;
    for (let i = bodyOffset; i < bodyOffset + bodyLength; i++) buffer[i] ^= this.key;
    buffer.writeUInt32BE(this.sum(buffer, headerOffset, bodyOffset + bodyLength), bodyOffset + bodyLength);
    return bodyLength + 4;
  }

  open(buffer: Buffer, headerOffset: number, bodyOffset: number, sealedLength: number, seq: number, _keyPhase: number): number {
    this.openCalls++;
    if (sealedLength < 4) return OpenResult.Short;
    if (this.seen.has(seq)) return OpenResult.Replay;
    const bodyLength = sealedLength - 4;
    if (buffer.readUInt32BE(bodyOffset + bodyLength) !== this.sum(buffer, headerOffset, bodyOffset + bodyLength)) return OpenResult.BadTag;
    for (let i = bodyOffset; i < bodyOffset + bodyLength; i++) buffer[i] ^= this.key;
    this.seen.add(seq);
    return bodyLength;
  }

  sealRun(buffer: Buffer, offsets: Uint32Array, bodyLengths: Uint32Array, count: number, headerBytes: number, firstSeq: number): number {
    for (let i = 0; i < count; i++) this.seal(buffer, offsets[i]!, offsets[i]! + headerBytes, bodyLengths[i]!, firstSeq + i);
    return count;
  }

  checkOpen(seq: number, _keyPhase: number): number {
    return this.seen.has(seq) ? OpenResult.Replay : 0;
  }

  openRun(
    buffer: Buffer,
    offsets: Uint32Array,
    sealedLengths: Uint32Array,
    seqs: Float64Array,
    count: number,
    headerBytes: number,
    keyPhase: number,
    results: Int32Array,
  ): void {
    for (let i = 0; i < count; i++)
      results[i] = this.open(buffer, offsets[i]!, offsets[i]! + headerBytes, sealedLengths[i]!, seqs[i]!, keyPhase);
  }

  private sum(buffer: Buffer, from: number, to: number): number {
    let s = this.key;
    for (let i = from; i < to; i++) s = (s * 31 + buffer[i]!) >>> 0;
    return s;
  }
}

describe(`encrypted sleeve on 3 hosts (seed ${SEED})`, () => {
  function encryptedWorld(): { w: World; sessions: Map<string, XorSession> } {
    const sessions = new Map<string, XorSession>();
    const w = new World('full', (self, other) => {
      const s = new XorSession(0x40 + Math.min(self, other) * 4 + Math.max(self, other));
      sessions.set(`${self}->${other}`, s);
      return s;
    });
    return { w, sessions };
  }

  it('seals what it sends and opens what it receives; frames and heartbeats flow', async () => {
    const { w, sessions } = encryptedWorld();
    const wire: Buffer[] = [];
    w.network.onCarry = (_from, buf, off, len) => wire.push(Buffer.from(buf.subarray(off, off + len)));
    await w.start();
    w.host(1).capture.inject(frame(BROADCAST_MAC, mac(1), 'secret-broadcast'));
    w.clock.advance(2000);
    expect(tagsOf(w.host(2))).toEqual(['secret-broadcast']);
    expect(tagsOf(w.host(3))).toEqual(['secret-broadcast']);
    expect(w.host(1).sleeve.peerHealth().get(2)?.isEstablished).toBe(true);
    expect(sessions.get('1->2')!.sealCalls).toBeGreaterThan(0);
    expect(sessions.get('2->1')!.openCalls).toBeGreaterThan(0);
    // Nothing on the wire is in clear: every datagram is flagged sealed and the payload text never appears.
    expect(wire.length).toBeGreaterThan(0);
    for (const d of wire) {
      expect(d[1]! & FLAG_ENCRYPTED).toBe(FLAG_ENCRYPTED);
      expect(d.includes('secret-broadcast')).toBe(false);
    }
    await w.stop();
  });

  it('drops a tampered datagram as drop_decrypt, a replayed one as drop_replay, a clear one as drop_cleartext', async () => {
    const { w } = encryptedWorld();
    let captured: Buffer | null = null;
    w.network.onCarry = (from, buf, off, len, to) => {
      const isFrames = buf[off + 1]! >> 4 === MessageType.Frames;
      if (from.address === '10.0.0.1' && to.address === '10.0.0.2' && isFrames) captured ??= Buffer.from(buf.subarray(off, off + len));
    };
    await w.start();
    const [h1, h2] = [w.host(1), w.host(2)];
    h1.capture.inject(frame(BROADCAST_MAC, mac(1), 'original'));
    w.settle();
    expect(tagsOf(h2)).toEqual(['original']);
    w.network.onCarry = null;

    const attacker = new MemoryUnderlay({ network: w.network }, { address: '10.0.0.66' });
    await attacker.start(() => undefined);
    const replayed = Buffer.from(captured!);
    const tampered = Buffer.from(captured!);
    tampered[HEADER_BYTES + 20]! ^= 0x01;
    tampered.writeUInt32BE(tampered.readUInt32BE(12) + 1000, 12); // a fresh seq, so only the tag can catch it
    const clear = encodeDatagram({
      type: MessageType.Frames,
      isEncrypted: false,
      keyPhase: 0,
      sender: 1,
      seq: 0,
      records: [{ capturingPeer: 1, destinationPeer: 0, frame: frame(BROADCAST_MAC, mac(1), 'forged') }],
      body: Buffer.alloc(0),
    });
    // From h1's own endpoint (from anywhere else each would be a bad source, see below).
    for (const d of [tampered, replayed, clear]) h1.underlay.send(d, 0, d.length, h2.endpoint);
    w.settle();
    const c = h2.sleeve.counters();
    expect(c['drop_decrypt']).toBe(1);
    expect(c['drop_replay']).toBe(1);
    expect(c['drop_cleartext']).toBe(1);
    expect(tagsOf(h2)).toEqual(['original']);
    // From the attacker's address: the clear forgery is a bad source, the sealed ones fail as before, nothing moves.
    for (const d of [tampered, replayed, clear]) attacker.send(d, 0, d.length, h2.endpoint);
    w.settle();
    const after = h2.sleeve.counters();
    expect(after['drop_bad_source']).toBe(1);
    expect(after['drop_decrypt']).toBe(2);
    expect(after['drop_replay']).toBe(2);
    expect(after['endpoint_moves']).toBe(0);
    expect(tagsOf(h2)).toEqual(['original']);
    await attacker.stop();
    await w.stop();
  });

  it('moves a neighbour to where an authentic sealed datagram came from (roaming), and sends there from then on', async () => {
    const { w } = encryptedWorld();
    let captured: Buffer | null = null;
    w.network.onCarry = (from, buf, off, len, to) => {
      const isFrames = buf[off + 1]! >> 4 === MessageType.Frames;
      if (from.address === '10.0.0.1' && to.address === '10.0.0.2' && isFrames) captured ??= Buffer.from(buf.subarray(off, off + len));
    };
    await w.start();
    const [h1, h2] = [w.host(1), w.host(2)];
    // Hold h1's datagram back (a partition), then deliver it from a new address: h1 behind a NAT that rebound.
    w.network.partition('10.0.0.1', '10.0.0.2');
    h1.capture.inject(frame(BROADCAST_MAC, mac(1), 'roamed'));
    w.settle();
    w.network.onCarry = null;
    expect(tagsOf(h2)).toEqual([]);
    const moved = new MemoryUnderlay({ network: w.network }, { address: '10.0.0.77' });
    const heardAtNew: number[] = [];
    await moved.start((batch) => void heardAtNew.push(batch.count));
    moved.send(captured!, 0, captured!.length, h2.endpoint);
    w.settle();
    expect(tagsOf(h2)).toEqual(['roamed']);
    expect(h2.sleeve.counters()['endpoint_moves']).toBe(1);
    // h2's next datagrams to h1 (a heartbeat at least) go to the new address.
    w.clock.advance(1500);
    expect(heardAtNew.length).toBeGreaterThan(0);
    await moved.stop();
    await w.stop();
  });

  it('drops a clear datagram that names a neighbour but comes from elsewhere, and counts it as drop_bad_source', async () => {
    const w = new World('full');
    await w.start();
    const h1 = w.host(1);
    const attacker = new MemoryUnderlay({ network: w.network }, { address: '10.0.0.66' });
    await attacker.start(() => undefined);
    const forged = (kind: MessageType) =>
      encodeDatagram({
        type: kind,
        isEncrypted: false,
        keyPhase: 0,
        sender: 2,
        seq: 0,
        records:
          kind === MessageType.Frames ? [{ capturingPeer: 2, destinationPeer: 0, frame: frame(BROADCAST_MAC, mac(2, 9), 'forged') }] : [],
        body: Buffer.alloc(0),
      });
    const heartbeatsBefore = h1.sleeve.counters()['heartbeats_in']!;
    for (const d of [forged(MessageType.Frames), forged(MessageType.Heartbeat)]) attacker.send(d, 0, d.length, h1.endpoint);
    w.settle();
    const c = h1.sleeve.counters();
    expect(c['drop_bad_source']).toBe(2);
    expect(c['heartbeats_in']).toBe(heartbeatsBefore);
    expect(tagsOf(h1)).toEqual([]);
    expect(h1.sleeve.macEntries().some((e) => e.mac === mac(2, 9))).toBe(false);
    await attacker.stop();
    await w.stop();
  });
});
