import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Fastdp, type FastdpKernel } from './fastdp.js';
import type { ForwardingSnapshot, PeerId, PeerPath } from './datapath.js';
import { FakeClock } from '../runtime/clock.js';
import { createMemoryLogger } from '../runtime/logger.js';
import type { DataSession } from '../crypto/data-session.js';
import {
  HEARTBEAT_ANSWER,
  HEARTBEAT_ASK,
  decodeHeartbeat,
  encodeHeartbeat,
  heartbeatAddress,
  heartbeatMac,
  macNumber,
  macText,
  macsThatFit,
} from './fastdp-heartbeat.js';

const A = 0x0a0000000001;
const B = 0x0b0000000002;
const C = 0x0c0000000003;
const IP: Record<number, string> = { [A]: '10.0.0.1', [B]: '10.0.0.2', [C]: '10.0.0.3' };

/** A `FastdpKernel` that records what it was asked to program. */
class RecordingKernel implements FastdpKernel {
  readonly calls: string[] = [];
  failFlood = false;
  async start(): Promise<void> {
    this.calls.push('start');
  }
  async stop(): Promise<void> {
    this.calls.push('stop');
  }
  async addHeartbeatRoute(peer: PeerId, address: string): Promise<void> {
    this.calls.push(`route+ ${peer.toString(16)} ${address}`);
  }
  async removeHeartbeatRoute(peer: PeerId, address: string): Promise<void> {
    this.calls.push(`route- ${peer.toString(16)} ${address}`);
  }
  async addFlood(address: string): Promise<void> {
    if (this.failFlood) throw new Error('RTNETLINK answers: Operation not supported');
    this.calls.push(`flood+ ${address}`);
  }
  async removeFlood(address: string): Promise<void> {
    this.calls.push(`flood- ${address}`);
  }
  async forgetLearned(carrier: 'sleeve' | 'fastdp'): Promise<void> {
    this.calls.push(`forget ${carrier}`);
  }
  macs: string[] = [];
  async addMac(mac: string, address: string): Promise<void> {
    this.calls.push(`mac+ ${mac} ${address}`);
  }
  async removeMac(mac: string, address: string): Promise<void> {
    this.calls.push(`mac- ${mac} ${address}`);
  }
  async localMacs(): Promise<string[]> {
    return this.macs;
  }
}

function path(peer: PeerId, session: DataSession | null = null): PeerPath {
  return { peer, endpoint: { address: IP[peer]!, port: 6783 }, session };
}

/** A full mesh of `peers` seen from `local`: every other peer a direct neighbour. */
function mesh(
  local: PeerId,
  peers: PeerId[] = [A, B, C],
  overrides: { session?: Map<PeerId, DataSession>; unicast?: Map<PeerId, PeerId> } = {},
): ForwardingSnapshot {
  const others = peers.filter((p) => p !== local);
  return {
    localPeer: local,
    neighbours: new Map(others.map((p) => [p, path(p, overrides.session?.get(p) ?? null)])),
    unicastNextHop: overrides.unicast ?? new Map(others.map((p) => [p, p])),
    broadcastNextHops: new Map([[local, others]]),
    underlayMtuBytes: 1500,
  };
}

/** Routers on one fake underlay: heartbeats between them arrive unless the receiver is `blocked`. */
function fabric(peers: PeerId[]) {
  const clock = new FakeClock();
  const blocked = new Set<PeerId>();
  const routers = new Map<
    PeerId,
    { fastdp: Fastdp; kernel: RecordingKernel; lines: () => Array<Record<string, unknown>>; changes: number }
  >();
  for (const p of peers) {
    const kernel = new RecordingKernel();
    const { log, lines } = createMemoryLogger('info');
    const entry = {
      kernel,
      lines,
      changes: 0,
      fastdp: new Fastdp(
        {
          kernel,
          clock,
          log,
          sendHeartbeat: (to, buf) => {
            if (!blocked.has(to)) queueMicrotask(() => routers.get(to)?.fastdp.receive(buf));
          },
        },
        { port: 6784, mtuBytes: 1400 },
      ),
    };
    entry.fastdp.onChange(() => entry.changes++);
    routers.set(p, entry);
  }
  /** Let queued kernel work and heartbeats settle. */
  const settle = async () => {
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  };
  const advance = async (ms: number) => {
    for (let t = 0; t < ms; t += 250) {
      clock.advance(250);
      await settle();
    }
  };
  const mode = (at: PeerId, of: PeerId) => routers.get(at)!.fastdp.peerModes().get(of);
  return { clock, blocked, routers, settle, advance, mode, at: (p: PeerId) => routers.get(p)! };
}

async function started(
  peers: PeerId[],
  options: { snapshot?: (p: PeerId) => ForwardingSnapshot; blocked?: PeerId[]; failFlood?: PeerId } = {},
) {
  const f = fabric(peers);
  const snapshot = options.snapshot ?? ((p: PeerId) => mesh(p, peers));
  for (const p of options.blocked ?? []) f.blocked.add(p);
  if (options.failFlood !== undefined) f.at(options.failFlood).kernel.failFlood = true;
  for (const p of peers) {
    await f.at(p).fastdp.start();
    f.at(p).fastdp.apply(snapshot(p));
  }
  await f.settle();
  return f;
}

describe('Fastdp', () => {
  it('puts a clear direct peer on fastdp after two answered heartbeats, programming the kernel in order', async () => {
    const f = await started([A, B]);
    await f.advance(2000);
    expect(f.mode(A, B)).toEqual({ mode: 'fastdp', reason: 'heartbeats of 1400 bytes answered' });
    expect(f.at(A).kernel.calls).toEqual(['start', `route+ ${B.toString(16)} 10.0.0.2`, 'flood+ 10.0.0.2', 'forget sleeve']);
    expect(f.at(A).changes).toBe(1);
    expect(f.at(A).fastdp.counters()).toMatchObject({ fastdp_peers: 1, fastdp_recoveries: 1, fastdp_fallbacks: 0 });
  });

  it("points VXLAN entries for a fastdp peer's MACs (from its heartbeats) at it, and removes them when it falls back", async () => {
    const f = await started([A, B]);
    f.at(A).kernel.macs = ['02:00:00:00:00:aa', '02:00:00:00:00:ab'];
    await f.advance(7000);
    expect(f.mode(B, A)?.mode).toBe('fastdp');
    const calls = f.at(B).kernel.calls;
    expect(calls).toContain('mac+ 02:00:00:00:00:aa 10.0.0.1');
    expect(calls).toContain('mac+ 02:00:00:00:00:ab 10.0.0.1');
    expect(f.at(B).fastdp.counters().fastdp_mac_entries).toBe(2);
    // A container leaves A: its entry goes at B.
    f.at(A).kernel.macs = ['02:00:00:00:00:ab'];
    await f.advance(6000);
    expect(calls).toContain('mac- 02:00:00:00:00:aa 10.0.0.1');
    const before = calls.length;
    f.blocked.add(B);
    await f.advance(5000);
    expect(calls.slice(before)).toEqual(['mac- 02:00:00:00:00:ab 10.0.0.1', 'flood- 10.0.0.1', 'forget fastdp']);
    expect(f.at(B).fastdp.counters().fastdp_mac_entries).toBe(0);
  });

  it('leaves fastdp peers out of the sleeve: no destination of what it captures, no hop of our broadcasts', async () => {
    const f = await started([A, B, C], { blocked: [C] });
    await f.advance(2000);
    expect(f.at(A).fastdp.fastdpPeers()).toEqual(new Set([B]));
    const s = f.at(A).fastdp.sleeveSnapshot(mesh(A, [A, B, C]));
    expect(s.fastdpPeers).toEqual(new Set([B]));
    // Relaying for others to B stays possible: its unicast route is kept.
    expect(s.unicastNextHop.get(B)).toBe(B);
    expect(s.broadcastNextHops.get(A)).toEqual([C]);
    // Nothing on fastdp: the snapshot goes to the sleeve untouched.
    const empty = fabric([A]);
    await empty.at(A).fastdp.start();
    const plain = mesh(A, [A, B]);
    expect(empty.at(A).fastdp.sleeveSnapshot(plain)).toBe(plain);
  });

  it('keeps encrypted, relayed and relaying peers on the sleeve, saying why, and never asks them', async () => {
    const session = new Map<PeerId, DataSession>([[B, {} as DataSession]]);
    // C is reached through B... and B relays for C: both stay on the sleeve, for different reasons.
    const f = await started([A], {
      snapshot: () =>
        mesh(A, [A, B, C], {
          session,
          unicast: new Map([
            [B, B],
            [C, B],
          ]),
        }),
    });
    await f.advance(5000);
    expect(f.mode(A, B)).toEqual({ mode: 'sleeve', reason: 'encrypted (a password, and not in --trusted-subnets)' });
    expect(f.mode(A, C)).toEqual({ mode: 'sleeve', reason: 'relayed (no direct path)' });
    f.at(A).fastdp.apply(
      mesh(A, [A, B, C], {
        unicast: new Map([
          [B, B],
          [C, B],
        ]),
      }),
    );
    expect(f.mode(A, B)).toEqual({ mode: 'sleeve', reason: 'relays for other peers' });
    expect(f.at(A).kernel.calls).toEqual(['start']);
    expect(f.at(A).fastdp.counters().fastdp_heartbeats_sent).toBe(0);
  });

  it('warns once and stays on the sleeve when heartbeats go unanswered, then comes back by itself when they pass', async () => {
    const f = await started([A, B], { blocked: [A] });
    await f.advance(5000);
    expect(f.mode(A, B)?.mode).toBe('sleeve');
    expect(f.mode(A, B)?.reason).toMatch(/^no heartbeat answered on UDP 6784 .*retrying every 10 s$/);
    const warnings = f
      .at(A)
      .lines()
      .filter((l) => l['msg'] === 'fastdp: path not confirmed, using the sleeve');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, peer: '0b:00:00:00:00:02', addr: '10.0.0.2' });
    // Retries are slow while it fails: about one ask per 10 s, not one a second.
    const sent = f.at(A).fastdp.counters().fastdp_heartbeats_sent;
    await f.advance(20_000);
    expect(f.at(A).fastdp.counters().fastdp_heartbeats_sent - sent).toBeLessThanOrEqual(3);
    f.blocked.delete(A);
    await f.advance(12_000);
    expect(f.mode(A, B)?.mode).toBe('fastdp');
    expect(
      f
        .at(A)
        .lines()
        .some((l) => l['msg'] === 'fastdp: path back'),
    ).toBe(true);
  });

  it('falls back when heartbeats stop: the sleeve first, then the flood entry goes; warned and counted', async () => {
    const f = await started([A, B]);
    await f.advance(2000);
    expect(f.mode(A, B)?.mode).toBe('fastdp');
    const before = f.at(A).kernel.calls.length;
    f.blocked.add(A);
    await f.advance(5000);
    expect(f.mode(A, B)).toEqual({ mode: 'sleeve', reason: 'heartbeats stopped (none answered for 3.5 s); retrying every 10 s' });
    expect(f.at(A).kernel.calls.slice(before)).toEqual(['flood- 10.0.0.2', 'forget fastdp']);
    expect(f.at(A).changes).toBe(2);
    expect(f.at(A).fastdp.counters()).toMatchObject({ fastdp_fallbacks: 1, fastdp_peers: 0 });
    expect(
      f
        .at(A)
        .lines()
        .find((l) => l['msg'] === 'fastdp: falling back to the sleeve'),
    ).toMatchObject({ level: 40, reason: /heartbeats stopped/ });
  });

  it('lets no forged heartbeat (any sender, any seq) confirm a path, keep a dead one up, or move a MAC', async () => {
    // A never hears B: every heartbeat A gets claiming to be B is forged. Answers with guessed seqs, asks with MACs.
    const f = await started([A, B], { blocked: [A] });
    const a = f.at(A).fastdp;
    const forge = (round: number) => {
      for (let seq = 0; seq < 50; seq++) {
        a.receive(encodeHeartbeat({ kind: HEARTBEAT_ANSWER, from: B, to: A, seq: round * 50 + seq, macs: [0x0200000000cc] }, 1352));
      }
      a.receive(encodeHeartbeat({ kind: HEARTBEAT_ASK, from: B, to: A, seq: round, macs: [0x0200000000cc] }, 1352));
    };
    for (let i = 0; i < 20; i++) {
      forge(i);
      await f.advance(250);
    }
    expect(f.mode(A, B)?.mode).toBe('sleeve');
    expect(a.counters()).toMatchObject({ fastdp_heartbeats_answered: 0, fastdp_heartbeats_stale: 1000, fastdp_heartbeat_asks: 20 });
    // Now a real path: A and B hear each other, then A stops hearing B; forgeries do not keep the path up.
    f.blocked.delete(A);
    await f.advance(13_000); // the next retry (every 10 s after a failure) is answered
    expect(f.mode(A, B)?.mode).toBe('fastdp');
    f.blocked.add(A);
    for (let i = 0; i < 20; i++) {
      forge(100 + i);
      await f.advance(250);
    }
    expect(f.mode(A, B)?.mode).toBe('sleeve');
    expect(a.counters().fastdp_fallbacks).toBe(1);
    // The forged MAC never got an entry; no answer we did not ask for set B's MACs.
    expect(f.at(A).kernel.calls.filter((c) => c.includes('02:00:00:00:00:cc'))).toEqual([]);
  });

  it('takes an answer once: a replayed answer is stale', async () => {
    const f = fabric([A, B]);
    const sent: Buffer[] = [];
    const a = new Fastdp(
      { kernel: new RecordingKernel(), clock: f.clock, log: createMemoryLogger('info').log, sendHeartbeat: (_to, buf) => sent.push(buf) },
      { port: 6784, mtuBytes: 1400 },
    );
    await a.start();
    a.apply(mesh(A, [A, B]));
    await f.settle();
    const ask = decodeHeartbeat(sent[0]!)!;
    const answer = encodeHeartbeat({ kind: HEARTBEAT_ANSWER, from: B, to: A, seq: ask.seq }, sent[0]!.length);
    a.receive(answer);
    a.receive(answer);
    expect(a.counters()).toMatchObject({ fastdp_heartbeats_answered: 1, fastdp_heartbeats_stale: 1 });
    await a.stop();
  });

  it('does not switch when the kernel refuses the flood entry, and counts the failure', async () => {
    const f = await started([A, B], { failFlood: A });
    await f.advance(3000);
    expect(f.mode(A, B)).toEqual({ mode: 'sleeve', reason: 'the kernel refused the VXLAN entry (see the log)' });
    expect(f.at(A).fastdp.counters().fastdp_kernel_errors).toBeGreaterThan(0);
    expect(f.at(A).changes).toBe(0);
  });

  it('drops a peer that leaves the snapshot (route and flood entry removed) and deletes the devices on stop', async () => {
    const f = await started([A, B]);
    await f.advance(2000);
    f.at(A).fastdp.apply({ ...mesh(A, [A]), broadcastNextHops: new Map() });
    await f.settle();
    expect(f.at(A).kernel.calls.slice(-3)).toEqual(['flood- 10.0.0.2', 'forget fastdp', `route- ${B.toString(16)} 10.0.0.2`]);
    expect(f.at(A).fastdp.peerModes().size).toBe(0);
    await f.at(A).fastdp.stop();
    await f.at(A).fastdp.stop();
    expect(f.at(A).kernel.calls.filter((c) => c === 'stop')).toHaveLength(2);
  });

  it('counts bad and misaddressed heartbeats and never throws on random bytes', async () => {
    const f = await started([A, B]);
    const fastdp = f.at(A).fastdp;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        fastdp.receive(Buffer.from(bytes));
      }),
    );
    const before = fastdp.counters();
    const bad = before.fastdp_heartbeats_bad;
    fastdp.receive(encodeHeartbeat({ kind: HEARTBEAT_ASK, from: B, to: C, seq: 1 }, 100));
    fastdp.receive(encodeHeartbeat({ kind: HEARTBEAT_ASK, from: C, to: A, seq: 1 }, 100));
    expect(fastdp.counters().fastdp_heartbeats_bad).toBe(bad + 1);
    expect(fastdp.counters().fastdp_heartbeats_unknown_peer).toBeGreaterThanOrEqual(1);
  });
});

describe('fastdp heartbeats', () => {
  it('round-trip through the codec at any length from the header up', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1 as const, 2 as const),
        fc.integer({ min: 0, max: 2 ** 48 - 1 }),
        fc.integer({ min: 0, max: 2 ** 48 - 1 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        fc.integer({ min: 23, max: 1500 }),
        // Unicast MACs: the first byte's low bit clear; never all zeros.
        fc.array(
          fc.tuple(fc.integer({ min: 0, max: 127 }), fc.integer({ min: 1, max: 2 ** 40 - 1 })).map(([hi, lo]) => hi * 2 * 2 ** 40 + lo),
        ),
        (kind, from, to, seq, length, macs) => {
          const buf = encodeHeartbeat({ kind, from, to, seq, macs }, length);
          expect(buf.length).toBe(length);
          // As many unicast MACs as fit come back, in order.
          expect(decodeHeartbeat(buf)).toEqual({ kind, from, to, seq, macs: macs.slice(0, macsThatFit(length)) });
        },
      ),
    );
    expect(decodeHeartbeat(Buffer.alloc(22))).toBeNull();
    // A count beyond the datagram is refused, a group MAC is dropped.
    const lying = encodeHeartbeat({ kind: 1, from: A, to: B, seq: 1 }, 40);
    lying.writeUInt16BE(9, 21);
    expect(decodeHeartbeat(lying)).toBeNull();
    expect(decodeHeartbeat(encodeHeartbeat({ kind: 1, from: A, to: B, seq: 1, macs: [0x010000000001, 0x020000000002] }, 60))?.macs).toEqual(
      [0x020000000002],
    );
    expect(macText(0x0200000000aa)).toBe('02:00:00:00:00:aa');
    expect(macNumber('02:00:00:00:00:AA')).toBe(0x0200000000aa);
    expect(macNumber('02:00:00:00:00')).toBeNaN();
  });

  it('derive a unicast, locally administered MAC and a link-local address from a peer name', () => {
    expect(heartbeatMac(0xffeeddccbbaa)).toBe('fe:ee:dd:cc:bb:aa');
    expect(heartbeatMac(0x010203040506)).toBe('02:02:03:04:05:06');
    expect(heartbeatAddress(0x7a3b0122c49e)).toBe('fe80::7a3b:122:c49e');
  });
});
