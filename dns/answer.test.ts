/**
 * The answer builder against dns-packet: every query is encoded and decoded by dns-packet before it is answered,
 * and every response is encoded and decoded again, so what is checked is what a client would read.
 */
import { describe, expect, it } from 'vitest';
import dnsPacket, { type Answer, type Packet } from 'dns-packet';
import { AnswerBuilder, Flags, Rcode, reverseAddress, reverseName } from './answer.js';
import { RecordStore } from './record-store.js';

function dataOf(a: Answer): unknown {
  return (a as { data?: unknown }).data;
}

const owner = '02:00:00:00:00:01';

function store(records: Array<[string, string]>): RecordStore {
  const s = new RecordStore();
  s.merge({
    entries: records.map(([name, address], i) => ({ owner, name, address, version: i + 1, isTombstone: false, expiresAtMs: Infinity })),
    removals: [],
  });
  return s;
}

function builder(records: Array<[string, string]>, ttlSeconds = 1): AnswerBuilder {
  return new AnswerBuilder(store(records), { domain: 'weft.local.', ttlSeconds, reverseRanges: ['10.32.0.0/12'] });
}

function ask(b: AnswerBuilder, name: string, type: string, extra: Partial<Packet> = {}): Packet | 'forward' {
  const query = dnsPacket.decode(
    dnsPacket.encode({
      id: 4242,
      type: 'query',
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ name, type: type as 'A', class: 'IN' }],
      ...extra,
    }),
  );
  const r = b.answer(query);
  if (r.kind === 'forward') return 'forward';
  return dnsPacket.decode(dnsPacket.encode(r.response));
}

function rcodeOf(p: Packet): number {
  return (p.flags ?? 0) & 0xf;
}

const records: Array<[string, string]> = [
  ['web.weft.local.', '10.32.0.5'],
  ['web.weft.local.', '10.32.0.6'],
  ['db.weft.local.', '10.32.0.7'],
  ['v6.weft.local.', 'fd00::7'],
  ['api.svc.weft.local.', '10.32.0.8'],
];

describe('AnswerBuilder', () => {
  it('answers A with every address, authoritative, with the TTL, the id and the question as asked', () => {
    const r = ask(builder(records, 7), 'DB.Weft.Local', 'A') as Packet;
    expect(r.id).toBe(4242);
    expect(r.type).toBe('response');
    expect(rcodeOf(r)).toBe(Rcode.NOERROR);
    expect((r.flags ?? 0) & Flags.AA).toBe(Flags.AA);
    expect((r.flags ?? 0) & Flags.RD).toBe(Flags.RD);
    expect(r.questions).toEqual([{ name: 'DB.Weft.Local', type: 'A', class: 'IN' }]);
    expect(r.answers).toEqual([{ name: 'DB.Weft.Local', type: 'A', class: 'IN', ttl: 7, flush: false, data: '10.32.0.7' }]);
  });

  it('rotates the order of several addresses of one name on each query', () => {
    const b = builder(records);
    const first = (ask(b, 'web.weft.local', 'A') as Packet).answers!.map(dataOf);
    const second = (ask(b, 'web.weft.local', 'A') as Packet).answers!.map(dataOf);
    const third = (ask(b, 'web.weft.local', 'A') as Packet).answers!.map(dataOf);
    expect(new Set(first)).toEqual(new Set(['10.32.0.5', '10.32.0.6']));
    expect(second).toEqual([...first].reverse());
    expect(third).toEqual(first);
  });

  it('answers AAAA from IPv6 records, and NODATA (NOERROR, empty, SOA) for A of an IPv6-only name', () => {
    const b = builder(records);
    expect((ask(b, 'v6.weft.local', 'AAAA') as Packet).answers!.map(dataOf)).toEqual(['fd00::7']);
    const nodata = ask(b, 'v6.weft.local', 'A') as Packet;
    expect(rcodeOf(nodata)).toBe(Rcode.NOERROR);
    expect(nodata.answers).toEqual([]);
    expect(nodata.authorities!.map((a) => a.type)).toEqual(['SOA']);
  });

  it('NXDOMAIN for a name nobody registered; NODATA for an existing name asked for another type, or a name with names below it', () => {
    const b = builder(records);
    const nx = ask(b, 'nope.weft.local', 'A') as Packet;
    expect(rcodeOf(nx)).toBe(Rcode.NXDOMAIN);
    expect(nx.authorities!.map((a) => a.type)).toEqual(['SOA']);
    expect((dataOf(nx.authorities![0]!) as unknown as { minimum: number }).minimum).toBe(1);
    expect(rcodeOf(ask(b, 'db.weft.local', 'MX') as Packet)).toBe(Rcode.NOERROR);
    expect(rcodeOf(ask(b, 'svc.weft.local', 'A') as Packet)).toBe(Rcode.NOERROR);
    expect(rcodeOf(ask(b, 'weft.local', 'A') as Packet)).toBe(Rcode.NOERROR);
    expect((ask(b, 'weft.local', 'SOA') as Packet).answers!.map((a) => a.type)).toEqual(['SOA']);
  });

  it('answers PTR for addresses with records, NXDOMAIN inside the allocation range, and forwards the rest', () => {
    const b = builder(records);
    const ptr = ask(b, reverseName('10.32.0.7'), 'PTR') as Packet;
    expect(ptr.answers!.map(dataOf)).toEqual(['db.weft.local']);
    expect(rcodeOf(ask(b, reverseName('10.32.9.9'), 'PTR') as Packet)).toBe(Rcode.NXDOMAIN);
    expect(ask(b, reverseName('192.168.1.1'), 'PTR')).toBe('forward');
    expect((ask(b, reverseName('fd00::7'), 'PTR') as Packet).answers!.map(dataOf)).toEqual(['v6.weft.local']);
  });

  it('forwards names outside the domain', () => {
    expect(ask(builder(records), 'example.com', 'A')).toBe('forward');
  });

  it('FORMERR for a query without exactly one question; NOTIMP for other opcodes; REFUSED for other classes in the zone', () => {
    const b = builder(records);
    const two = dnsPacket.decode(
      dnsPacket.encode({
        id: 1,
        type: 'query',
        questions: [
          { name: 'a.weft.local', type: 'A' },
          { name: 'b.weft.local', type: 'A' },
        ],
      }),
    );
    expect(rcodeOf((b.answer(two) as { response: Packet }).response)).toBe(Rcode.FORMERR);
    const none = dnsPacket.decode(dnsPacket.encode({ id: 1, type: 'query', questions: [] }));
    expect(rcodeOf((b.answer(none) as { response: Packet }).response)).toBe(Rcode.FORMERR);
    const notify = ask(b, 'db.weft.local', 'A', { flags: 4 << 11 }) as Packet;
    expect(rcodeOf(notify)).toBe(Rcode.NOTIMP);
    const chaos = dnsPacket.decode(
      dnsPacket.encode({ id: 1, type: 'query', questions: [{ name: 'db.weft.local', type: 'A', class: 'CH' }] }),
    );
    expect(rcodeOf((b.answer(chaos) as { response: Packet }).response)).toBe(Rcode.REFUSED);
  });

  it('echoes EDNS: a query with an OPT record gets one back', () => {
    const r = ask(builder(records), 'db.weft.local', 'A', {
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as never],
    }) as Packet;
    expect(r.additionals!.map((a) => a.type)).toEqual(['OPT']);
  });

  it('reverse names parse both ways', () => {
    expect(reverseAddress(`${reverseName('10.32.1.2')}.`)).toBe('10.32.1.2');
    expect(reverseAddress(`${reverseName('fd00::1:2')}.`)).toBe('fd00::1:2');
    expect(reverseAddress('300.1.1.1.in-addr.arpa.')).toBeUndefined();
    expect(reverseAddress('1.1.1.in-addr.arpa.')).toBeUndefined();
  });
});
