import { describe, expect, it } from 'vitest';
import { FakeClock } from '../runtime/clock.js';
import { createMemoryLogger } from '../runtime/logger.js';
import type { ConnectionSecurity } from '../crypto/connection-security.js';
import { FrameType, PeerConnection, withType } from './connection.js';
import { FakeConnectionSecurity, type FakeSecureSession } from './fake-security.js';
import { encodeHello, type Hello, PasswordMismatchError } from './handshake.js';
import { MemoryNetwork } from './memory-transport.js';
import type { TransportConnection } from './transport.js';
import { StallWatch } from '../runtime/stall-watch.js';

function hello(name: string, nickname: string): Hello {
  return {
    minVersion: 1,
    maxVersion: 1,
    name,
    nickname,
    uid: String(name.length + nickname.length),
    features: [],
    hasPassword: false,
    publicKey: new Uint8Array(0),
    udpPort: 6784,
  };
}

interface Side {
  conn: PeerConnection;
  frames: Array<[number, number[]]>;
  closed: Array<{ reason: string; err: Error | null }>;
  counts: Map<string, number>;
  lines: () => Array<Record<string, unknown>>;
  ready: boolean;
}

async function pair(
  opts: {
    securityA?: ConnectionSecurity;
    securityB?: ConnectionSecurity;
    stallsA?: StallWatch;
    stallsB?: StallWatch;
    aliveA?: () => boolean;
    aliveB?: () => boolean;
  } = {},
) {
  const clock = new FakeClock();
  const net = new MemoryNetwork(clock, { latencyMs: 5 });
  let inbound!: TransportConnection;
  await net.transport('10.0.0.2').listen('0.0.0.0:6783', (c) => (inbound = c));
  const dialled = net.transport('10.0.0.1').dial('10.0.0.2:6783', 1000);
  clock.advance(10);
  const outbound = await dialled;
  const make = (t: TransportConnection, h: Hello, security?: ConnectionSecurity, stalls?: StallWatch, alive?: () => boolean): Side => {
    const { log, lines } = createMemoryLogger();
    const counts = new Map<string, number>();
    const side: Side = { conn: null!, frames: [], closed: [], counts, lines, ready: false };
    side.conn = new PeerConnection(
      { clock, log, security, count: (r) => counts.set(r, (counts.get(r) ?? 0) + 1), stalls },
      t,
      { local: h, connId: 1 },
      {
        onHello: () => {},
        onConfirmed: () => {},
        onReady: () => (side.ready = true),
        ...(alive && { isPeerAlive: alive }),
        onFrame: (_c, type, body) => side.frames.push([type, [...body]]),
        onClose: (_c, reason, err) => side.closed.push({ reason, err }),
      },
    );
    return side;
  };
  const a = make(outbound, hello('02:00:00:00:00:01', 'h1'), opts.securityA, opts.stallsA, opts.aliveA);
  const b = make(inbound, hello('02:00:00:00:00:02', 'h2'), opts.securityB, opts.stallsB, opts.aliveB);
  return { clock, net, a, b, outbound, inbound };
}

describe('PeerConnection', () => {
  it('keeps a connection whose remote hello was already waiting when it started (no stale handshake timeout)', async () => {
    const { clock, a, b } = await pair();
    a.conn.start();
    clock.advance(20); // a's hello reaches b's transport before b starts: b reads it the moment it registers
    b.conn.start();
    expect(b.ready).toBe(true);
    clock.advance(20);
    expect(a.ready).toBe(true);
    clock.advance(12_000); // well past the 5 s handshake bound; heartbeats keep both up
    expect(b.closed).toEqual([]);
    expect(a.closed).toEqual([]);
    expect(b.counts.get('handshake_timeout')).toBeUndefined();
  });

  it('exchanges hellos, then frames; heartbeats keep an idle connection up', async () => {
    const { clock, a, b } = await pair();
    a.conn.start();
    b.conn.start();
    clock.advance(10);
    expect(a.ready && b.ready).toBe(true);
    expect(a.conn.remote?.nickname).toBe('h2');
    a.conn.send(withType(FrameType.Gossip, Uint8Array.of(1, 2, 3)));
    clock.advance(10);
    expect(b.frames).toEqual([[FrameType.Gossip, [1, 2, 3]]]);
    clock.advance(60_000);
    expect(a.closed).toEqual([]);
    expect(b.closed).toEqual([]);
  });

  it('closes after heartbeatTimeoutMs without any message', async () => {
    const { clock, a, b, inbound } = await pair();
    a.conn.start();
    b.conn.start();
    clock.advance(10);
    (inbound as unknown as { sever(r: string): void }).sever('cable cut'); // b goes silent without telling a
    clock.advance(7000);
    expect(a.closed[0]?.reason).toMatch(/^heartbeat timeout: nothing received for 5\d\d\dms$/);
    expect(a.counts.get('heartbeat_timeout')).toBe(1);
  });

  it('closes nothing for silence that was its own event-loop stall (fixed deadlines would)', async () => {
    // One fake clock for both ends: both loops stall (each with its own watch, or neither).
    for (const stalls of [new StallWatch({ thresholdMs: 250, graceMs: 1000 }), undefined]) {
      const stallsB = stalls && new StallWatch({ thresholdMs: 250, graceMs: 1000 });
      const { clock, a, b } = await pair({ stallsA: stalls, stallsB });
      a.conn.start();
      b.conn.start();
      clock.advance(10);
      clock.advance(2000);
      clock.stall(8000); // a's loop is stuck for 8 s; b's heartbeats wait unread
      clock.advance(10_000);
      if (stalls) {
        expect(a.closed).toEqual([]);
        expect(b.closed).toEqual([]);
        expect(stalls.totalMs).toBeGreaterThanOrEqual(7000);
      } else {
        expect(a.closed[0]?.reason).toMatch(/^heartbeat timeout/);
      }
    }
  });

  it('after a stall of its own, still closes a peer that really went silent, naming the stall', async () => {
    const stalls = new StallWatch({ thresholdMs: 250, graceMs: 1000 });
    const { clock, a, b, inbound } = await pair({ stallsA: stalls });
    a.conn.start();
    b.conn.start();
    clock.advance(10);
    (inbound as unknown as { sever(r: string): void }).sever('cable cut');
    clock.stall(3000);
    clock.advance(10_000);
    expect(a.closed[0]?.reason).toMatch(/^heartbeat timeout: nothing received for \d+ms \(\d+ms of it our own stall\)$/);
    expect(a.counts.get('heartbeat_timeout')).toBe(1);
  });

  it('extends the handshake bound by its own stall, but not forever', async () => {
    const stalls = new StallWatch({ thresholdMs: 250, graceMs: 1000 });
    const { clock, a } = await pair({ stallsA: stalls });
    a.conn.start();
    clock.advance(1000);
    clock.stall(4500); // the bound was due meanwhile
    clock.advance(0);
    expect(a.closed).toEqual([]);
    expect(a.counts.get('handshake_timeout_extended')).toBeGreaterThan(0);
    clock.advance(20_000); // the peer never answers: closed at last
    expect(a.closed[0]?.reason).toMatch(/handshake timeout: no hello/);
  });

  it('bounds the handshake: a silent peer is closed', async () => {
    const { clock, a } = await pair();
    a.conn.start();
    clock.advance(6000);
    expect(a.closed[0]?.reason).toMatch(/handshake timeout: no hello/);
  });

  it('with the same password: confirms, seals every frame, carries rekey messages', async () => {
    const sa = new FakeConnectionSecurity('s3cret');
    const sb = new FakeConnectionSecurity('s3cret');
    const { clock, a, b, net } = await pair({ securityA: sa, securityB: sb });
    a.conn.start();
    b.conn.start();
    clock.advance(20);
    expect(a.ready && b.ready).toBe(true);
    expect(a.conn.session).not.toBeNull();
    a.conn.send(withType(FrameType.Unicast, Uint8Array.of(7)));
    (sa.sessions[0] as FakeSecureSession).rekeySend!(Uint8Array.of(0xee));
    clock.advance(10);
    expect(b.frames).toEqual([[FrameType.Unicast, [7]]]);
    expect([...(sb.sessions[0]!.rekeyReceived[0] ?? [])]).toEqual([0xee]);
    expect(net.openConnectionEnds).toBe(2);
  });

  it('with different passwords: closes with "password mismatch" and a typed error naming the peer', async () => {
    const { clock, a, b } = await pair({ securityA: new FakeConnectionSecurity('one'), securityB: new FakeConnectionSecurity('two') });
    a.conn.start();
    b.conn.start();
    clock.advance(20);
    expect(a.closed[0]?.reason).toBe('password mismatch');
    expect(a.closed[0]?.err).toBeInstanceOf(PasswordMismatchError);
    expect(a.closed[0]?.err?.message).toBe('peer h2 (10.0.0.2:6783) refused: password mismatch; every router needs the same --password');
    const line = a.lines().find((l) => l.reason === 'password mismatch');
    expect(line).toMatchObject({ level: 50, peer: '02:00:00:00:00:02', nickname: 'h2', addr: '10.0.0.2:6783' });
  });

  it('refuses a password on one side only, telling which side lacks it', async () => {
    const { clock, a, b } = await pair({ securityA: new FakeConnectionSecurity('one') });
    a.conn.start();
    b.conn.start();
    clock.advance(20);
    expect(a.closed[0]?.err?.message).toBe(
      'peer h2 (10.0.0.2:6783) has no password but this router has one; every router needs the same --password',
    );
    expect(b.closed[0]?.err).toBeInstanceOf(PasswordMismatchError);
  });

  it('closes on a garbage hello or an unknown frame type, logs once, counts, never throws', async () => {
    const p = await pair();
    p.b.conn.start();
    p.outbound.send(Uint8Array.of(1, 2, 3)); // raw garbage instead of a hello
    p.clock.advance(10);
    expect(p.b.closed[0]?.reason).toMatch(/^bad message: not a weft hello/);
    expect(p.b.counts.get('decode_error')).toBe(1);
    expect(p.b.lines().filter((l) => l.msg === 'closing connection: bad message')).toHaveLength(1);

    const q = await pair();
    q.b.conn.start();
    q.outbound.send(encodeHello(hello('02:00:00:00:00:01', 'h1')));
    q.outbound.send(Uint8Array.of(99));
    q.clock.advance(10);
    expect(q.b.closed[0]?.reason).toBe('bad message: unknown frame type 99');
  });

  it('as responder sends no proof to a dialler that has not proven the password (no offline-guessing oracle)', async () => {
    const { clock, b, outbound } = await pair({ securityB: new FakeConnectionSecurity('s3cret') });
    const got: Uint8Array[] = [];
    outbound.onMessage((m) => got.push(m));
    b.conn.start();
    const h = { ...hello('02:00:00:00:00:01', 'h1'), hasPassword: true, publicKey: new Uint8Array(32).fill(3) };
    outbound.send(encodeHello(h));
    clock.advance(2000);
    expect(got, "b's hello only").toHaveLength(1);
    expect(b.conn.phase).toBe('confirming');
    outbound.send(new TextEncoder().encode('confirm:guess'));
    clock.advance(20);
    expect(got, 'still no proof after a wrong one').toHaveLength(1);
    expect(b.closed[0]?.reason).toBe('password mismatch');
    expect(b.counts.get('password_mismatch')).toBe(1);
  });

  it('as dialler proves first; the responder proves only after verifying it', async () => {
    const { clock, a, b, outbound, inbound } = await pair({
      securityA: new FakeConnectionSecurity('pw'),
      securityB: new FakeConnectionSecurity('pw'),
    });
    const sends: Array<{ who: string; what: string; at: number }> = [];
    const spy = (t: TransportConnection, who: string) => {
      const send = t.send.bind(t);
      t.send = (m) => {
        sends.push({ who, what: Buffer.from(m.subarray(0, 4)).toString('latin1'), at: clock.now() });
        send(m);
      };
    };
    spy(outbound, 'a');
    spy(inbound, 'b');
    a.conn.start();
    b.conn.start();
    clock.advance(30);
    expect(a.ready && b.ready).toBe(true);
    const proofA = sends.find((x) => x.who === 'a' && x.what === 'conf')!;
    const proofB = sends.find((x) => x.who === 'b' && x.what === 'conf')!;
    // b's proof leaves only once a's has crossed the link (5 ms) and verified.
    expect(proofB.at - proofA.at).toBeGreaterThanOrEqual(5);
  });

  it('interoperates with a responder of an older release that sends its proof right after the hello', async () => {
    const { clock, a, inbound } = await pair({ securityA: new FakeConnectionSecurity('pw') });
    a.conn.start();
    const h = { ...hello('02:00:00:00:00:02', 'h2'), hasPassword: true, publicKey: new Uint8Array(32).fill(4) };
    const seen: Uint8Array[] = [];
    inbound.onMessage((m) => seen.push(m));
    inbound.send(encodeHello(h));
    inbound.send(new TextEncoder().encode('confirm:pw')); // the old order: no waiting for ours
    clock.advance(20);
    expect(a.ready).toBe(true);
    expect(Buffer.from(seen[1]!).toString()).toBe('confirm:pw'); // a proved itself too
  });

  it('refuses a hello whose nickname carries a terminal escape', async () => {
    const { clock, b, outbound } = await pair();
    b.conn.start();
    const h = hello('02:00:00:00:00:01', 'h1');
    const bytes = Buffer.from(encodeHello(h));
    bytes[24] = 0x1b; // "h1" -> "\x1b1"
    outbound.send(bytes);
    clock.advance(10);
    expect(b.closed[0]?.reason).toBe('bad message: hello nickname has control characters');
  });

  it('closes a connection whose pre-handshake message is over the limit, counts it, and lifts the limit once ready', async () => {
    const p = await pair();
    p.b.conn.start();
    p.outbound.send(new Uint8Array(5000));
    p.clock.advance(10);
    expect(p.b.closed[0]?.reason).toBe('message too big');
    expect(p.b.counts.get('handshake_message_too_big')).toBe(1);

    const q = await pair();
    q.a.conn.start();
    q.b.conn.start();
    q.clock.advance(10);
    expect(q.a.ready && q.b.ready).toBe(true);
    q.a.conn.send(withType(FrameType.Gossip, new Uint8Array(100_000)));
    q.clock.advance(10);
    expect(q.b.frames).toHaveLength(1);
    expect(q.b.closed).toEqual([]);
  });
});

describe('quiet heartbeats (issue 19: the data path shows the peer alive)', () => {
  it('sends a heartbeat every 10 s instead of every second, and keeps the connection', async () => {
    let alive = true;
    const { clock, net, a, b } = await pair({ aliveA: () => alive, aliveB: () => alive });
    a.conn.start();
    b.conn.start();
    clock.advance(10);
    const loud = net.sentMessages;
    clock.advance(60_000);
    const quiet = net.sentMessages - loud;
    expect(quiet).toBeGreaterThanOrEqual(10);
    expect(quiet).toBeLessThanOrEqual(14); // 6 a side in 60 s; loud it is 120
    expect(a.closed).toEqual([]);
    expect(b.closed).toEqual([]);
    // Loud again: one a second per side.
    alive = false;
    const before = net.sentMessages;
    clock.advance(10_000);
    expect(net.sentMessages - before).toBeGreaterThanOrEqual(19);
    expect(a.closed).toEqual([]);
  });

  it('still closes a control connection that died while the data path answers, after 30 s', async () => {
    const { clock, a, b, inbound } = await pair({ aliveA: () => true, aliveB: () => true });
    a.conn.start();
    b.conn.start();
    clock.advance(10);
    (inbound as unknown as { sever(r: string): void }).sever('middlebox dropped the flow');
    clock.advance(25_000);
    expect(a.closed).toEqual([]);
    clock.advance(10_000);
    expect(a.closed[0]?.reason).toMatch(/^heartbeat timeout: nothing received for (2\d|3\d)\d\d\dms$/);
  });

  it('going loud gives a remote that is still quiet a full quiet period, and closes a dead one within it', async () => {
    // b stays quiet 4 s longer than a (its view of the data path lags): no close.
    let aliveA = true;
    let aliveB = true;
    const p = await pair({ aliveA: () => aliveA, aliveB: () => aliveB });
    p.a.conn.start();
    p.b.conn.start();
    p.clock.advance(30_000);
    aliveA = false;
    p.clock.advance(4_000);
    aliveB = false;
    p.clock.advance(20_000);
    expect(p.a.closed).toEqual([]);
    expect(p.b.closed).toEqual([]);

    // The remote died while heartbeats were quiet: found within a quiet period and a timeout of going loud.
    let alive = true;
    const q = await pair({ aliveA: () => alive, aliveB: () => alive });
    q.a.conn.start();
    q.b.conn.start();
    q.clock.advance(15_000);
    (q.inbound as unknown as { sever(r: string): void }).sever('host died');
    alive = false;
    const lostAt = q.clock.now();
    for (let t = 0; t < 20_000 && q.a.closed.length === 0; t += 100) q.clock.advance(100);
    expect(q.a.closed[0]?.reason).toMatch(/^heartbeat timeout/);
    expect(q.clock.now() - lostAt).toBeLessThanOrEqual(11_100);
  });
});
