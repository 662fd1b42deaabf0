/**
 * Structure-aware mutated DNS queries for the weftDNS fuzz test (see dns-queries.test.ts).
 */
import dnsPacket from 'dns-packet';

export type Rng = ReturnType<typeof generator>;

/** xorshift32: a seeded generator so a failure can be replayed. */
export function generator(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return { int: (n: number) => next() % n, pick: <T>(xs: readonly T[]) => xs[next() % xs.length]! };
}

const TYPES = ['A', 'AAAA', 'PTR', 'ANY', 'MX', 'TXT', 'SOA', 'SRV', 'NS', 'CNAME'] as const;

export function mutatedQuery(rng: Rng): Buffer {
  const label = () => 'x'.repeat(1 + rng.int(63));
  const names = [
    'web.weft.local',
    'WEB.Weft.Local',
    'nope.weft.local',
    'weft.local',
    '5.0.32.10.in-addr.arpa',
    '9.9.33.10.in-addr.arpa',
    'a.b.c.weft.local',
    `${label()}.${label()}.${label()}.weft.local`,
    `${label()}.${label()}.${label()}.${label()}`,
  ];
  const qn = 1 + rng.int(3);
  const questions = Array.from({ length: qn }, () => ({
    name: rng.pick(names),
    type: rng.pick(TYPES) as 'A',
    class: rng.int(8) === 0 ? ('CH' as const) : ('IN' as const),
  }));
  const withOpt = rng.int(3) === 0;
  const b = Buffer.from(
    dnsPacket.encode({
      id: rng.int(65536),
      type: 'query',
      flags: rng.int(10) === 0 ? rng.int(65536) & 0x7fff : dnsPacket.RECURSION_DESIRED,
      questions,
      ...(withOpt && { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: rng.pick([0, 100, 512, 1232, 4096, 65535]) } as never] }),
    }),
  );
  let out: Buffer = b;
  const mutations = 1 + rng.int(3);
  for (let m = 0; m < mutations; m++) {
    const kind = rng.int(8);
    const body = out.length > 12 ? 12 + rng.int(out.length - 12) : 12;
    if (kind === 0 && out.length >= 12) out.writeUInt16BE(rng.pick([0, 1, 2, 3, 255, 65535, rng.int(65536)]), 4 + 2 * rng.int(4));
    else if (kind === 1 && out.length > 12) out[body] = rng.pick([0, 1, 63, 64, 0x40 | rng.int(64), 0x80 | rng.int(64), rng.int(256)]);
    else if (kind === 2 && out.length > 13) {
      // A compression pointer: to itself, before, after, past the end, or at the header.
      const target = rng.pick([body, body - 1, rng.int(out.length), out.length + rng.int(100), 0, 12, 0x3fff]);
      out[body] = 0xc0 | ((target >> 8) & 0x3f);
      out[Math.min(body + 1, out.length - 1)] = target & 0xff;
    } else if (kind === 3) out = out.subarray(0, rng.int(out.length + 1));
    else if (kind === 4 && out.length > 0) out[rng.int(out.length)] = rng.int(256);
    else if (kind === 5) out = Buffer.concat([out, Buffer.from(Array.from({ length: rng.int(40) }, () => rng.int(256)))]);
    else if (kind === 6 && out.length > 14) {
      // A chain of pointers through the question section.
      for (let i = 12; i + 1 < out.length && i < 40; i += 2) {
        out[i] = 0xc0;
        out[i + 1] = 12 + rng.int(30);
      }
    } else if (kind === 7 && out.length > 12) out[body] = 0; // a name ending early: fields run into the next question
    out = Buffer.from(out);
  }
  return out;
}
