/**
 * The answer builder: one decoded DNS query in, either a complete response (for names weftDNS is authoritative for)
 * or "forward it upstream". Pure apart from the rotation counters; no I/O.
 *
 * Authoritative for: the domain (weft.local.) and everything under it, any other name a record was registered
 * under, and reverse names (in-addr.arpa, ip6.arpa) of addresses that have records or lie in the allocation range.
 *
 * - A / AAAA / ANY: the live addresses of the name, rotated by one on each query (simple load balancing).
 * - PTR: the names pointing at the address.
 * - NXDOMAIN when no record has the name (nor a name below it); NODATA (NOERROR, no answer) when the name exists
 *   but has no record of the type asked. Both carry the zone's SOA in the authority section, whose minimum (and TTL)
 *   is the record TTL, so negative answers are cached no longer than positive ones.
 * - Names compare case-insensitively; the question is echoed as asked.
 * - Opcodes other than QUERY: NOTIMP. Not exactly one question: FORMERR. Classes other than IN (or ANY) in our
 *   zone: REFUSED.
 */
import ipaddr from 'ipaddr.js';
import type { Answer, Packet, Question } from 'dns-packet';

/** DNS header bits (RFC 1035 4.1.1), as dns-packet's `flags` carries them (without QR). */
export const Flags = { AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080 } as const;
export const Rcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const OPCODE_MASK = 0x7800;

/** What the builder reads: the record store's lookups. */
export interface RecordLookup {
  /** Live addresses of a lower-case FQDN. */
  addressesOf(fqdn: string): string[];
  /** Live names (lower-case FQDNs) pointing at `address`. */
  namesOf(address: string): string[];
  /** True if some live record has this name or a name below it. */
  hasName(fqdn: string): boolean;
}

export interface AnswerOptions {
  /** Lower case with the trailing dot. */
  domain: string;
  ttlSeconds: number;
  /** Reverse lookups for addresses in these CIDRs are ours (NXDOMAIN when unknown) instead of forwarded. */
  reverseRanges: readonly string[];
}

export type AnswerResult = { kind: 'answer'; response: Packet } | { kind: 'forward' };

/** At most this many names keep a rotation counter; past that the counters start again. */
const MAX_ROTATIONS = 10_000;

export class AnswerBuilder {
  private readonly rotation = new Map<string, number>();
  private readonly ranges: Array<[ipaddr.IPv4 | ipaddr.IPv6, number]>;

  constructor(
    private readonly lookup: RecordLookup,
    private readonly options: AnswerOptions,
  ) {
    this.ranges = options.reverseRanges.map((c) => ipaddr.parseCIDR(c));
  }

  /** Answer `query` (already decoded). */
  answer(query: Packet): AnswerResult {
    const flags = query.flags ?? 0;
    const opcode = flags & OPCODE_MASK;
    const questions = query.questions ?? [];
    if (opcode !== 0) return this.reply(query, Rcode.NOTIMP, [], [], false);
    if (questions.length !== 1) return this.reply(query, Rcode.FORMERR, [], [], false);
    const q = questions[0]!;
    const fqdn = `${q.name.toLowerCase().replace(/\.$/, '')}.`;
    const isIn = q.class === undefined || q.class === 'IN' || q.class === 'ANY';

    const reverse = reverseAddress(fqdn);
    if (reverse !== undefined) {
      const names = this.lookup.namesOf(reverse);
      if (names.length === 0 && !this.isInRange(reverse)) return { kind: 'forward' };
      if (!isIn) return this.reply(query, Rcode.REFUSED, [], [], false);
      if (names.length === 0) return this.reply(query, Rcode.NXDOMAIN, [], [this.soa()], true);
      if (q.type !== 'PTR' && (q.type as string) !== 'ANY') return this.reply(query, Rcode.NOERROR, [], [this.soa()], true);
      const answers: Answer[] = names.map((n) => ({
        type: 'PTR',
        name: q.name,
        class: 'IN',
        ttl: this.options.ttlSeconds,
        data: n.replace(/\.$/, ''),
      }));
      return this.reply(query, Rcode.NOERROR, answers, [], true);
    }

    const isOurs = fqdn === this.options.domain || fqdn.endsWith(`.${this.options.domain}`) || this.lookup.hasName(fqdn);
    if (!isOurs) return { kind: 'forward' };
    if (!isIn) return this.reply(query, Rcode.REFUSED, [], [], false);
    if (q.type === 'SOA' && fqdn === this.options.domain) return this.reply(query, Rcode.NOERROR, [this.soa()], [], true);
    const all = this.lookup.addressesOf(fqdn);
    if (all.length === 0 && !this.lookup.hasName(fqdn) && fqdn !== this.options.domain) {
      return this.reply(query, Rcode.NXDOMAIN, [], [this.soa()], true);
    }
    const type = q.type as string;
    const wanted = all.filter((a) => (type === 'A' ? !a.includes(':') : type === 'AAAA' ? a.includes(':') : type === 'ANY'));
    if (wanted.length === 0) return this.reply(query, Rcode.NOERROR, [], [this.soa()], true);
    const answers: Answer[] = this.rotate(`${fqdn}|${type}`, wanted).map((a) => ({
      type: a.includes(':') ? 'AAAA' : 'A',
      name: q.name,
      class: 'IN',
      ttl: this.options.ttlSeconds,
      data: a,
    }));
    return this.reply(query, Rcode.NOERROR, answers, [], true);
  }

  private rotate(key: string, addresses: string[]): string[] {
    if (addresses.length < 2) return addresses;
    if (this.rotation.size >= MAX_ROTATIONS && !this.rotation.has(key)) this.rotation.clear();
    const n = this.rotation.get(key) ?? 0;
    this.rotation.set(key, (n + 1) % addresses.length);
    const start = n % addresses.length;
    return [...addresses.slice(start), ...addresses.slice(0, start)];
  }

  private isInRange(address: string): boolean {
    const a = ipaddr.parse(address);
    return this.ranges.some(([net, bits]) => net.kind() === a.kind() && a.match(net, bits));
  }

  private soa(): Answer {
    const zone = this.options.domain.replace(/\.$/, '');
    return {
      type: 'SOA',
      name: zone,
      class: 'IN',
      ttl: this.options.ttlSeconds,
      data: {
        mname: `ns.${zone}`,
        rname: `hostmaster.${zone}`,
        serial: 1,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        minimum: this.options.ttlSeconds,
      },
    };
  }

  private reply(query: Packet, rcode: number, answers: Answer[], authorities: Answer[], isAuthoritative: boolean): AnswerResult {
    return { kind: 'answer', response: responseTo(query, rcode, answers, authorities, isAuthoritative) };
  }
}

/** A response to `query` with this rcode and these sections; the question and the EDNS OPT (if any) are echoed. */
export function responseTo(
  query: Packet,
  rcode: number,
  answers: Answer[] = [],
  authorities: Answer[] = [],
  isAuthoritative = false,
): Packet {
  const qflags = query.flags ?? 0;
  const flags = (qflags & (OPCODE_MASK | Flags.RD)) | Flags.RA | (isAuthoritative ? Flags.AA : 0) | (rcode & 0xf);
  const hasOpt = (query.additionals ?? []).some((a) => a.type === 'OPT');
  return {
    id: query.id ?? 0,
    type: 'response',
    flags,
    questions: (query.questions ?? []).slice(0, 1) as Question[],
    answers,
    authorities,
    additionals: hasOpt
      ? [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, options: [] } as unknown as Answer]
      : [],
  };
}

/** The UDP payload size the client accepts: 512, or its EDNS size (clamped to 512..4096). */
export function udpLimitOf(query: Packet): number {
  const opt = (query.additionals ?? []).find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
  const size = opt?.udpPayloadSize ?? 512;
  return Math.max(512, Math.min(4096, size));
}

/** '5.0.32.10.in-addr.arpa.' -> '10.32.0.5'; ip6.arpa nibbles -> IPv6; anything else undefined. */
export function reverseAddress(fqdn: string): string | undefined {
  const v4 = /^((?:\d{1,3}\.){4})in-addr\.arpa\.$/.exec(fqdn);
  if (v4) {
    const parts = v4[1]!.slice(0, -1).split('.').reverse();
    if (parts.some((p) => Number(p) > 255 || (p.length > 1 && p.startsWith('0')))) return undefined;
    return parts.join('.');
  }
  const v6 = /^((?:[0-9a-f]\.){32})ip6\.arpa\.$/.exec(fqdn);
  if (v6) {
    const hex = v6[1]!.replace(/\./g, '').split('').reverse().join('');
    return ipaddr.parse(hex.match(/.{4}/g)!.join(':')).toString();
  }
  return undefined;
}

/** The reverse name of an address: '10.32.0.5' -> '5.0.32.10.in-addr.arpa'. */
export function reverseName(address: string): string {
  const a = ipaddr.parse(address);
  if (a.kind() === 'ipv4') return `${a.toByteArray().reverse().join('.')}.in-addr.arpa`;
  const hex = Buffer.from(a.toByteArray()).toString('hex');
  return `${hex.split('').reverse().join('.')}.ip6.arpa`;
}
