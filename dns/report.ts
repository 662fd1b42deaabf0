/**
 * weftDNS's part of `weft report` (`GET /report`, `weft status dns`), declared once, here, by its owner
 * (`WeftDns.report()` builds it); api/control.ts composes it into `Report`, adding each record owner's nickname.
 *
 * Type-only and plain JSON: this file imports nothing, so api/, cli/ and cni/ may read it without loading weftDNS
 * code. Keep it that way.
 */

/** One record of `weft status dns`. */
export interface DnsRecordReport {
  name: string;
  address: string;
  /** The peer name of the router that registered it. */
  owner: string;
  version: number;
  isTombstone: boolean;
}

/** weftDNS in `weft report` / `weft status dns`. */
export interface DnsReport {
  domain: string;
  /** "host:port" the server answers on; absent while it does not listen. */
  listen?: string;
  ttlSeconds: number;
  upstream: string[];
  /** Live records (no tombstones). */
  records: DnsRecordReport[];
  counters: Record<string, number>;
}
