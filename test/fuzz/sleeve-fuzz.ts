/**
 * The sleeve fuzzer: a `FuzzMember` joins the network, then sends `count` structure-aware datagrams
 * (./sleeve-cases.ts) to the target router, sealed under the pair's real data key where the pair is sealed.
 * Paced (`ratePerSecond`, at most `inFlight` unsent) so the target's socket buffer is not what drops them, bounded in
 * count and in time. Resolves a summary with the counters the target owes (`expected`).
 */
import { FLAG_KEY_PHASE, HEADER_BYTES, MessageType, flagsFor, writeHeader } from '../../router/sleeve-format.js';
import { FuzzMember, type MemberPeer } from './member.js';
import { FuzzRandom } from './rng.js';
import { SleeveCaseGenerator, TAG_BYTES, type SleeveCase } from './sleeve-cases.js';

export interface SleeveFuzzOptions {
  password: string | undefined;
  /** The target's underlay address (its control port is 6783). */
  targetHost: string;
  /** The other real router's peer name (a neighbour of the target). */
  otherName: string;
  /** Hosts the member exchanges data with in clear (the target trusts our subnet). */
  clearHosts: readonly string[];
  /** See `SleeveParties.mayPieceAsOther`. @default true */
  mayPieceAsOther?: boolean;
  count: number;
  seed: number;
  /** Datagrams per second at most. @default 20000 */
  ratePerSecond?: number;
  /** Give up after this long, sent or not. @default 1_200_000 */
  timeLimitMs?: number;
  nickname: string;
  /** Called once joined, with our name; resolves when the run may start (the target confirmed our data path). */
  whenJoined: (name: string) => Promise<void>;
  /** Progress, every so often. */
  progress?: (line: string) => void;
}

export interface SleeveFuzzSummary {
  seed: number;
  name: string;
  isSealed: boolean;
  sent: number;
  seconds: number;
  kinds: Record<string, number>;
  expected: Record<string, number>;
  member: FuzzMember['stats'];
}

const HISTORY = 64;

export async function runSleeveFuzz(o: SleeveFuzzOptions): Promise<SleeveFuzzSummary> {
  const member = new FuzzMember({ password: o.password, join: `${o.targetHost}:6783`, clearHosts: o.clearHosts, nickname: o.nickname });
  await member.start();
  try {
    let target = await member.until(o.targetHost, 60_000);
    await o.whenJoined(member.name);
    target = member.peer(target.id) ?? target;
    const rng = new FuzzRandom(o.seed);
    const gen = new SleeveCaseGenerator(rng, {
      self: member.id,
      target: target.id,
      other: parseInt(o.otherName.replace(/:/g, ''), 16),
      isSealed: target.data !== null,
      bodyCapacityBytes: 1500 - 20 - 8 - HEADER_BYTES - TAG_BYTES,
      mayPieceAsOther: o.mayPieceAsOther ?? true,
    });
    const history: Buffer[] = [];
    const rate = o.ratePerSecond ?? 20_000;
    const started = Date.now();
    const deadline = started + (o.timeLimitMs ?? 1_200_000);
    let inFlight = 0;
    let sent = 0;
    const send = (d: Buffer) => {
      inFlight++;
      sent++;
      member.send(target, d, () => inFlight--);
    };
    for (let i = 0; i < o.count && Date.now() < deadline; i++) {
      if (i % 1000 === 0) {
        // The session object changes only if the connection was replaced; the keys inside it change at rekeys.
        const fresh = member.peer(target.id);
        if (!fresh) throw new Error(`lost the connection to the target ${o.targetHost} after ${i} datagrams`);
        target = fresh;
        while (inFlight > 512 || sent > ((Date.now() - started) / 1000) * rate) await new Promise((r) => setTimeout(r, 2));
        if (i % 50_000 === 0 && i > 0) o.progress?.(`sleeve: ${i}/${o.count} datagrams, ${Math.round((Date.now() - started) / 1000)} s`);
      } else if (inFlight > 512) {
        while (inFlight > 256) await new Promise((r) => setImmediate(r));
      }
      const c = gen.next();
      if (c.form === 'replay' && history.length === 0) {
        const { datagram } = member.build(target, MessageType.Heartbeat, Buffer.alloc(0));
        history.push(Buffer.from(datagram));
        send(datagram);
      }
      const d = make(member, target, c, rng, history);
      send(d);
    }
    while (inFlight > 0) await new Promise((r) => setTimeout(r, 5));
    return {
      seed: o.seed,
      name: member.name,
      isSealed: target.data !== null,
      sent,
      seconds: (Date.now() - started) / 1000,
      kinds: Object.fromEntries([...gen.kinds].sort()),
      expected: Object.fromEntries([...gen.expected].sort()),
      member: member.stats,
    };
  } finally {
    await member.stop();
  }
}

/** The bytes of case `c` toward `target`. */
function make(member: FuzzMember, target: MemberPeer, c: SleeveCase, rng: FuzzRandom, history: Buffer[]): Buffer {
  switch (c.form) {
    case 'raw':
      return c.raw!;
    case 'replay':
      return history[rng.int(history.length)]!;
    case 'wrong-seal': {
      const isSealedPair = target.data !== null;
      const d = Buffer.alloc(HEADER_BYTES + c.body.length + (isSealedPair ? 0 : TAG_BYTES));
      writeHeader(d, 0, flagsFor(c.type, !isSealedPair, 0), member.id, member.nextClearSeq(target.id));
      c.body.copy(d, HEADER_BYTES);
      if (!isSealedPair) rng.fill(d, HEADER_BYTES + c.body.length, TAG_BYTES);
      return d;
    }
  }
  const { datagram: d, seq } = member.build(target, c.type, c.body);
  switch (c.form) {
    case 'valid':
      if (target.data !== null) {
        if (history.length < HISTORY) history.push(Buffer.from(d));
        else history[rng.int(HISTORY)] = Buffer.from(d);
      }
      return d;
    case 'flip-sealed': {
      const i = HEADER_BYTES + (c.flipAt! % (d.length - HEADER_BYTES));
      d[i] = d[i]! ^ c.flipMask!;
      return d;
    }
    case 'seq-ahead': {
      const ahead = seq + 2 ** 32;
      d.writeUInt32BE(Math.floor(ahead / 2 ** 32), 8);
      d.writeUInt32BE(ahead >>> 0, 12);
      return d;
    }
    case 'flip-phase':
      d[1] = d[1]! ^ FLAG_KEY_PHASE;
      return d;
    case 'short-tag':
      return d.subarray(0, HEADER_BYTES + c.keepBytes!);
  }
  return d;
}
