/**
 * The control fuzzer: control frames at a real router over real WebSocket connections, structure-aware
 * (docs/control-protocol.md): hellos with one field mutated and key confirmations bent (before the handshake), then,
 * on connections that completed the handshake with the network password (so every frame is sealed under the real
 * control key), heartbeats, gossip on the topology and IPAM channels (entries of the fuzzer's own peers, captured
 * real payloads cut, extended, flipped, replayed), unknown channels, broadcasts and unicasts to every kind of peer,
 * rekey messages, and frames that must close the connection.
 *
 * What the fuzzer does not send by default: entries for the real routers' names and hellos with their uid. Those are
 * findings 3 and 4 of issue 10 (a member can poison the topology, a replayed hello can evict a connection), fixed
 * and tested elsewhere; here they would only break the traffic the run checks.
 */
import { randomPeerName } from '../../gossip/peer-name.js';
import { WsTransport } from '../../gossip/ws-transport.js';
import { PasswordSecurity } from '../../crypto/password-security.js';
import { ControlClient, Frame, type HelloPlan } from './control-client.js';
import { FuzzRandom } from './rng.js';

export interface ControlFuzzOptions {
  password: string | undefined;
  /** "host:port" of the target's control listener. */
  target: string;
  /**
   * Source addresses to dial from, in turn (each must be on this host). The target limits handshakes per source
   * address (gossip/inbound-admission.ts: 2/s), and every bent hello and every closing frame costs one, so one address
   * would make a full run take most of an hour. @default the kernel's choice (one address)
   */
  sourceAddresses?: readonly string[];
  /** Peer names of the real routers (never impersonated). */
  realNames: readonly string[];
  /** Underlay subnet prefix, e.g. "10.213.0." (addresses in topology entries stay inside it or on loopback). */
  subnetPrefix: string;
  /** Frames to send on established connections. */
  frames: number;
  /** Connections whose hello or confirmation is mutated. @default frames / 50 */
  hellos?: number;
  seed: number;
  /**
   * Also flip bits in the real topology payloads the target sent (forged entries of real routers, finding 4 of
   * issue 10). @default false: they cut routes between the real routers for a while, and the run checks traffic.
   */
  hostileGossip?: boolean;
  /** Frames per second at most. @default 2000 */
  ratePerSecond?: number;
  /** @default 1_200_000 */
  timeLimitMs?: number;
  progress?: (line: string) => void;
}

export interface ControlFuzzSummary {
  seed: number;
  frames: number;
  /** Frames that must close their connection, and how many closes we saw after them. */
  closers: number;
  closesSeen: number;
  /** Frames sent on a connection that then closed without our asking (unexpected closes). */
  unexpectedCloses: number;
  hellos: number;
  /** Mutated hellos / confirmations the target accepted (valid mutations), and refused. */
  hellosAccepted: number;
  hellosRefused: number;
  /** Connections refused by the target's inbound rate limit, retried. */
  rateLimited: number;
  connections: number;
  kinds: Record<string, number>;
  closeReasons: Record<string, number>;
  seconds: number;
}

/** Frame kinds that the protocol says close the connection. */
const CLOSERS = new Set(['empty', 'unknown-type', 'truncated-gossip', 'bad-channel-name', 'forged', 'plaintext', 'rekey']);

export async function runControlFuzz(o: ControlFuzzOptions): Promise<ControlFuzzSummary> {
  const rng = new FuzzRandom(o.seed);
  const transports = (o.sourceAddresses?.length ? o.sourceAddresses : [undefined]).map(
    (localAddress) => new WsTransport(localAddress === undefined ? {} : { localAddress }),
  );
  let dials = 0;
  const security =
    o.password === undefined
      ? undefined
      : new PasswordSecurity({ clock: (await import('../../runtime/clock.js')).systemClock }, { password: o.password });
  const samples = new Map<string, Buffer[]>();
  const names = Array.from({ length: 8 }, () => randomPeerName());
  const kinds = new Map<string, number>();
  const closeReasons = new Map<string, number>();
  const s: ControlFuzzSummary = {
    seed: o.seed,
    frames: 0,
    closers: 0,
    closesSeen: 0,
    unexpectedCloses: 0,
    hellos: 0,
    hellosAccepted: 0,
    hellosRefused: 0,
    rateLimited: 0,
    connections: 0,
    kinds: {},
    closeReasons: {},
    seconds: 0,
  };
  const started = Date.now();
  const deadline = started + (o.timeLimitMs ?? 1_200_000);
  const rate = o.ratePerSecond ?? 2000;
  const note = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  const uid = () => (BigInt(rng.int(2 ** 32)) * 4294967296n + BigInt(rng.int(2 ** 32))).toString();
  let nameIndex = 0;

  /** A connection, retried while the target's rate limit refuses it. */
  async function connect(plan: HelloPlan): Promise<ControlClient | null> {
    for (let attempt = 0; attempt < 50 && Date.now() < deadline; attempt++) {
      let c: ControlClient;
      try {
        c = await ControlClient.open(transports[dials++ % transports.length]!, o.target, security, plan, samples);
      } catch (err) {
        if (err instanceof RangeError) return null; // a hello encodeHello refuses to make: nothing to send
        await sleep(200);
        continue;
      }
      s.connections++;
      await c.whenSettled(6_000);
      if (c.phase === 'closed' && /too many|rate/i.test(c.closeReason ?? '')) {
        s.rateLimited++;
        await sleep(120 + rng.int(200));
        continue;
      }
      return c;
    }
    return null;
  }

  const freshPlan = (): HelloPlan => ({ name: names[nameIndex++ % names.length]!, uid: uid(), nickname: `fz${rng.int(1000)}` });

  // ---- before the handshake ----
  const hellos = o.hellos ?? Math.ceil(o.frames / 50);
  for (let i = 0; i < hellos && Date.now() < deadline; i++) {
    const { plan, kind } = mutatedHello(rng, freshPlan(), o.realNames);
    note(kinds, `hello:${kind}`);
    const c = await connect(plan);
    s.hellos++;
    if (!c) continue;
    if (c.phase === 'ready') {
      s.hellosAccepted++;
      c.close('fuzzer done with this hello');
    } else {
      // Refused (or still waiting for a confirmation we bent): either way the target must end it.
      const closed = c.phase === 'closed' || (await c.whenClosed(8_000));
      if (closed) s.hellosRefused++;
      else c.close('fuzzer: the target kept a bad handshake open for 8 s');
      note(closeReasons, shortReason(c.closeReason));
    }
    if (i % 200 === 0 && i > 0) o.progress?.(`control: ${i}/${hellos} hellos`);
  }

  // ---- after the handshake ----
  let c: ControlClient | null = null;
  let sinceHeartbeat = Date.now();
  // Bounded by frames sent, by time, and by attempts (a target refusing every connection ends the loop).
  for (let attempts = 0; s.frames < o.frames && Date.now() < deadline && attempts < 2 * o.frames + 100; attempts++) {
    const i = s.frames;
    if (!c || c.phase !== 'ready') {
      if (c && c.phase === 'closed') note(closeReasons, shortReason(c.closeReason));
      c = await connect(freshPlan());
      if (!c || c.phase !== 'ready') {
        c = null;
        continue;
      }
      await sleep(30); // the target's full-state gossip arrives: samples to mutate
    }
    if (i % 100 === 0) {
      while (s.frames > ((Date.now() - started) / 1000) * rate) await sleep(5);
      if (i % 20_000 === 0 && i > 0) o.progress?.(`control: ${i}/${o.frames} frames, ${s.connections} connections`);
    }
    const { kind, frame, raw } = controlFrame(rng, samples, names, o);
    note(kinds, kind);
    s.frames++;
    if (raw) c.sendRaw(raw);
    else c.sendFrame(frame);
    if (CLOSERS.has(kind)) {
      s.closers++;
      if (await c.whenClosed(8_000)) s.closesSeen++;
      else c.close('fuzzer: the target did not close after a bad frame');
      note(closeReasons, shortReason(c.closeReason));
      c = null;
      continue;
    }
    if (Date.now() - sinceHeartbeat > 500) {
      sinceHeartbeat = Date.now();
      c.sendFrame(Uint8Array.of(Frame.Heartbeat));
      await sleep(0);
      if ((c.phase as string) === 'closed') {
        s.unexpectedCloses++;
        note(closeReasons, `unexpected after ${kind}: ${shortReason(c.closeReason)}`);
      }
    }
  }
  if (c) {
    // Let the target read everything before we leave, then see it did not close on us.
    c.sendFrame(Uint8Array.of(Frame.Heartbeat));
    await sleep(500);
    if (c.phase === 'closed') {
      s.unexpectedCloses++;
      note(closeReasons, `unexpected at end: ${shortReason(c.closeReason)}`);
    }
    c.close('fuzzer done');
  }
  security?.destroy();
  s.kinds = Object.fromEntries([...kinds].sort());
  s.closeReasons = Object.fromEntries([...closeReasons].sort());
  s.seconds = (Date.now() - started) / 1000;
  return s;
}

function shortReason(r: string | null): string {
  return (r ?? 'none')
    .replace(/[0-9a-f]{2}(:[0-9a-f]{2}){5}/g, 'NAME')
    .replace(/\d+/g, 'N')
    .slice(0, 60);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A hello (or the confirmation after it) with one thing wrong, or a valid one with odd values. */
export function mutatedHello(rng: FuzzRandom, plan: HelloPlan, realNames: readonly string[]): { plan: HelloPlan; kind: string } {
  const kind = rng.weighted({
    magic: 1,
    version: 3,
    flags: 2,
    'nickname-length': 2,
    'nickname-utf8': 2,
    'nickname-escapes': 2,
    'key-length': 2,
    'key-zero': 2,
    features: 4,
    trailing: 2,
    truncated: 4,
    oversized: 1,
    garbage: 1,
    'name-edge': 2,
    'name-real': 2,
    'uid-edge': 1,
    'port-edge': 1,
    confirmation: 4,
    'text-before-confirmation': 1,
  });
  const at = (valid: Buffer, nickLen: number) => ({ key: 24 + nickLen, features: 24 + nickLen + 1 + (valid[24 + nickLen] ?? 0) });
  const m = (f: (b: Buffer, h: { nickname: string }) => Buffer): HelloPlan => ({ ...plan, mutate: (b, h) => f(Buffer.from(b), h) });
  switch (kind) {
    case 'magic':
      return { kind, plan: m((b) => ((b[rng.int(4)] = rng.int(256)), b)) };
    case 'version':
      return { kind, plan: m((b) => ((b[4] = rng.edgy(8)), (b[5] = rng.edgy(8)), b)) };
    case 'flags':
      return { kind, plan: m((b) => ((b[22] = rng.edgy(8)), b)) };
    case 'nickname-length':
      return { kind, plan: m((b) => ((b[23] = rng.edgy(8)), b)) };
    case 'nickname-utf8':
      return { kind, plan: { ...plan, nickname: 'ab', mutate: (b) => ((b[24] = rng.pick([0xff, 0xc0, 0xe2, 0x80])), b) } };
    case 'nickname-escapes': {
      // Encoded over a placeholder of the same byte length: encodeHello refuses control characters itself.
      const evil = Buffer.from(rng.pick(['\x1b[2J\x1b[31mowned', '\x07\x08\r\n', 'a\u202Eb', '\u0000nul', 'é'.repeat(32)]), 'utf8');
      return { kind, plan: { ...plan, nickname: 'x'.repeat(evil.length), mutate: (b) => (evil.copy(b, 24), b) } };
    }
    case 'key-length':
      return { kind, plan: m((b, h) => ((b[at(b, Buffer.byteLength(h.nickname)).key] = rng.pick([0, 1, 31, 33, 255])), b)) };
    case 'key-zero':
      return {
        kind,
        plan: m(
          (b, h) => (
            b.fill(rng.pick([0, 0xff]), at(b, Buffer.byteLength(h.nickname)).key + 1, at(b, Buffer.byteLength(h.nickname)).key + 33),
            b
          ),
        ),
      };
    case 'features':
      return {
        kind,
        plan: m((b, h) => {
          const f = at(b, Buffer.byteLength(h.nickname)).features;
          const list: Buffer[] = [];
          const n = rng.pick([1, 2, 32, 33, 255]);
          for (let i = 0; i < Math.min(n, 40); i++) {
            const v = rng.pick([
              'id=',
              `id=${'A'.repeat(43)}=`,
              'id=!!!!',
              'aead-aegis256x2',
              'x'.repeat(64),
              'x'.repeat(65),
              '',
              'sp ace',
              '\x01\x02',
            ]);
            list.push(Buffer.concat([Buffer.of(rng.chance(0.1) ? rng.edgy(8) : v.length), Buffer.from(v, 'latin1')]));
          }
          return Buffer.concat([b.subarray(0, f), Buffer.of(n), ...list]);
        }),
      };
    case 'trailing':
      return { kind, plan: m((b) => Buffer.concat([b, rng.bytes(rng.between(1, 64))])) };
    case 'truncated':
      return { kind, plan: m((b) => b.subarray(0, rng.int(b.length))) };
    case 'oversized':
      return { kind, plan: m((b) => Buffer.concat([b, Buffer.alloc(rng.pick([4097 - b.length, 70_000]))])) };
    case 'garbage':
      return { kind, plan: m(() => rng.bytes(rng.between(0, 300))) };
    case 'name-edge':
      return { kind, plan: { ...plan, name: rng.pick(['00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:01']) } };
    case 'name-real':
      // The target's own name with another uid: refused as a collision. (Another live router's name is not used: a
      // connection of its silent for 2 s on a loaded machine would be replaced, finding 3 of issue 10.)
      return { kind, plan: { ...plan, name: realNames[0]! } };
    case 'uid-edge':
      return { kind, plan: { ...plan, uid: rng.pick(['0', '18446744073709551615', '1']) } };
    case 'port-edge':
      return { kind, plan: m((b) => (b.writeUInt16BE(rng.pick([0, 1, 65535, 6784]), 20), b)) };
    case 'confirmation':
      return {
        kind,
        plan: {
          ...plan,
          mutateConfirmation: (c) => {
            const how = rng.int(4);
            if (how === 0) return c.subarray(0, rng.int(c.length));
            if (how === 1) return Buffer.concat([c, rng.bytes(rng.between(1, 32))]);
            if (how === 2) return rng.bytes(32);
            const x = Buffer.from(c);
            x[rng.int(x.length)] ^= 1 << rng.int(8);
            return x;
          },
        },
      };
    case 'text-before-confirmation':
      return { kind, plan: { ...plan, mutateConfirmation: () => Buffer.from([Frame.Heartbeat]) } };
  }
}

/** One frame for an established connection. `raw` is sent unsealed (a forgery). */
export function controlFrame(
  rng: FuzzRandom,
  samples: Map<string, Buffer[]>,
  ourNames: readonly string[],
  o: ControlFuzzOptions,
): { kind: string; frame: Uint8Array; raw?: Uint8Array } {
  const kind = rng.weighted({
    heartbeat: 4,
    topology: 30,
    'topology-sample': 8,
    ipam: 20,
    'unknown-channel': 5,
    broadcast: 12,
    unicast: 12,
    // Closers: each costs a new connection, so they stay rare.
    empty: 0.1,
    'unknown-type': 0.2,
    'truncated-gossip': 0.2,
    'bad-channel-name': 0.2,
    forged: 0.2,
    plaintext: 0.05,
    rekey: 0.2,
  });
  const gossip = (type: number, channel: string, fixed: Buffer, payload: Buffer) =>
    Buffer.concat([Buffer.of(type, channel.length), Buffer.from(channel, 'latin1'), fixed, payload]);
  const peerId = () => {
    const b = Buffer.alloc(6);
    const k = rng.int(4);
    if (k === 0) b.writeUIntBE(parseInt(rng.pick(o.realNames).replace(/:/g, ''), 16), 0, 6);
    else if (k === 1) b.writeUIntBE(parseInt(rng.pick(ourNames).replace(/:/g, ''), 16), 0, 6);
    else if (k === 2) rng.fill(b, 0, 6);
    return b;
  };
  switch (kind) {
    case 'heartbeat':
      return { kind, frame: Buffer.concat([Buffer.of(Frame.Heartbeat), rng.bytes(rng.int(3) === 0 ? rng.between(1, 64) : 0)]) };
    case 'topology':
      return { kind, frame: gossip(Frame.Gossip, 'topology', Buffer.alloc(0), Buffer.from(topologyPayload(rng, ourNames, o), 'utf8')) };
    case 'topology-sample':
    case 'ipam': {
      const channel = kind === 'ipam' ? 'ipam' : 'topology';
      // A flipped bit in a real topology payload is a forged entry of a real router (finding 4 of issue 10: routes
      // to it can go for 20 s); only with hostileGossip.
      const mayFlip = channel === 'ipam' || o.hostileGossip === true;
      return { kind, frame: gossip(Frame.Gossip, channel, Buffer.alloc(0), mutateSample(rng, samples.get(channel), mayFlip)) };
    }
    case 'unknown-channel':
      return {
        kind,
        frame: gossip(Frame.Gossip, rng.pick(['dns', 'x', 'topology2', '~'.repeat(64)]), Buffer.alloc(0), rng.bytes(rng.int(100))),
      };
    case 'broadcast':
      return {
        kind,
        frame: gossip(
          Frame.Broadcast,
          rng.pick(['topology', 'ipam', 'dns']),
          peerId(),
          rng.chance(0.5) ? mutateSample(rng, samples.get('ipam')) : rng.bytes(rng.int(200)),
        ),
      };
    case 'unicast':
      return {
        kind,
        frame: gossip(
          Frame.Unicast,
          rng.pick(['ipam', 'topology', 'dns']),
          Buffer.concat([peerId(), peerId()]),
          rng.chance(0.5) ? mutateSample(rng, samples.get('ipam')) : rng.bytes(rng.int(200)),
        ),
      };
    case 'empty':
      return { kind, frame: new Uint8Array(0) };
    case 'unknown-type':
      return { kind, frame: Buffer.concat([Buffer.of(rng.pick([0, 6, 7, 0x80, 0xff])), rng.bytes(rng.int(50))]) };
    case 'truncated-gossip':
      return {
        kind,
        frame: Buffer.concat([
          Buffer.of(rng.pick([Frame.Gossip, Frame.Broadcast, Frame.Unicast]), rng.pick([0, 40, 255])),
          Buffer.from('topo'),
        ]),
      };
    case 'bad-channel-name':
      return { kind, frame: gossip(Frame.Gossip, rng.pick(['a b', '\x00', '\x7f\x7f']), Buffer.alloc(0), rng.bytes(10)) };
    case 'forged':
      return { kind, frame: new Uint8Array(0), raw: rng.bytes(rng.between(0, 100)) };
    case 'plaintext':
      return { kind, frame: new Uint8Array(0), raw: Uint8Array.of(Frame.Heartbeat) };
    case 'rekey':
      return { kind, frame: Buffer.concat([Buffer.of(Frame.Rekey), rekeyBody(rng)]) };
  }
  return { kind, frame: Uint8Array.of(Frame.Heartbeat) };
}

/** Rekey messages (crypto/rekey-message.ts) with a wrong length, type, epoch or key: the target must close. */
function rekeyBody(rng: FuzzRandom): Buffer {
  const how = rng.int(4);
  if (how === 0) return rng.bytes(rng.pick([0, 1, 4, 36, 38]));
  const b = Buffer.alloc(how === 3 ? 5 : 37);
  b[0] = how === 3 ? 3 : rng.pick([2, 4, 0]); // an ANSWER nobody asked for, unknown types, a DONE out of turn
  b.writeUInt32BE(rng.edgy(32) >>> 0, 1);
  if (b.length > 5) rng.fill(b, 5, 32);
  return b;
}

/** A real payload the target sent us, bent: cut, extended, a byte flipped, or as it was. */
function mutateSample(rng: FuzzRandom, list: Buffer[] | undefined, mayFlip = true): Buffer {
  if (!list || list.length === 0) return rng.bytes(rng.int(64));
  const b = Buffer.from(rng.pick(list));
  const how = rng.int(5);
  switch (how === 2 && !mayFlip ? 4 : how) {
    case 0:
      return b.subarray(0, rng.int(b.length + 1));
    case 1:
      return Buffer.concat([b, rng.bytes(rng.between(1, 32))]);
    case 2:
      if (b.length > 0) b[rng.int(b.length)] ^= 1 << rng.int(8);
      return b;
    case 3:
      return Buffer.concat([b.subarray(0, rng.between(1, 8)), rng.bytes(rng.int(64))]);
    default:
      return b;
  }
}

/** Topology JSON (gossip/topology.ts) about the fuzzer's own peers: shapes, sizes and values bent. */
function topologyPayload(rng: FuzzRandom, ourNames: readonly string[], o: ControlFuzzOptions): string {
  const shape = rng.weighted({ entries: 8, 'wrong-shape': 2, 'bad-json': 1, deep: 0.5 });
  if (shape === 'bad-json') return rng.pick(['[', '[[', '{"a":', 'nul', '[1,]', '\u0000', '[[]]'.repeat(3)]);
  if (shape === 'deep') return '['.repeat(rng.pick([100, 5000])) + ']'.repeat(rng.pick([0, 100]));
  if (shape === 'wrong-shape')
    return JSON.stringify(
      rng.pick([{}, 1, 'x', null, [[1, 2, 3]], [['02:00:00:00:00:01', 'n', 'u', 1, 'x']], [[null, null, null, null, null]]]),
    );
  const addr = () =>
    rng.pick([`${o.subnetPrefix}${rng.between(1, 254)}:6783`, '127.0.0.1:6784', '[::1]:6783', '', ':6783', `${o.subnetPrefix}9:99999`]);
  const entries: unknown[] = [];
  for (let i = rng.between(1, 4); i > 0; i--) {
    const name = rng.chance(0.8) ? rng.pick(ourNames) : rng.pick(['zz:zz', '02:00:00:00:00:00', 'AA:BB:CC:DD:EE:FF', 42]);
    const conns: unknown[] = [];
    for (let j = rng.int(5); j > 0; j--) conns.push([rng.chance(0.5) ? rng.pick(ourNames) : rng.pick(o.realNames), addr(), rng.edgy(2)]);
    entries.push([
      name,
      rng.pick(['fz', '\x1b[31mred', 'x'.repeat(65), '', 7]),
      rng.pick(['1', '0', '18446744073709551615', '18446744073709551616', '-1', 'abc']),
      rng.pick([1, 2, rng.int(1000), 0, -1, 1.5, 'x']),
      rng.chance(0.05) ? 'notalist' : conns,
    ]);
  }
  return JSON.stringify(entries);
}
