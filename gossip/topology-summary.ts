/**
 * Topology summaries: what a router holds, as (name, uid, version) per entry, instead of every entry in full.
 *
 * A complete topology is N entries of N connections each: 45 KiB at 32 peers, ~450 KiB at 100. Sending it to every
 * new neighbour (both ways) and to a few neighbours every gossip round made forming a mesh cost N^4 bytes (45 MiB at
 * 32 peers in the simulation) and kept idle routers sending hundreds of KiB per round. A summary is ~50 bytes per
 * entry: the receiver answers it with the entries the sender lacks or holds older (queued through
 * topology-spread.ts, so they coalesce with other changes), and nothing else.
 *
 * Kinds, so that no exchange ping-pongs:
 * - `exchange`: to a new neighbour; both sides send one, each answers the other's with what it lacks.
 * - `round`: the periodic repair to a few neighbours; the receiver answers with what the sender lacks and, when the
 *   sender holds entries newer than its own, with a `reply` summary of its own.
 * - `reply`: answered with what the replier lacks, never with another summary.
 *
 * Wire format (JSON, after the topology channel header; a full update is a JSON list, a summary an object):
 *
 *     {"k": "exchange" | "round" | "reply", "s": [[name, uid, version], ...]}
 *
 * Only neighbours whose hello lists the `topology-summary` feature are sent summaries; older routers get the
 * complete state as before. Summaries are decoded with the topology's limits, and a neighbour's summaries are
 * answered at most a few a second (mesh.ts): each can cost us sending our whole state to it.
 */
import { DecodeError } from './decode-error.js';
import { isPeerName, type PeerName } from './peer-name.js';
import { compareEntries, TOPOLOGY_LIMITS, type PeerEntry } from './topology.js';

/** The hello feature of routers that understand summaries. */
export const TOPOLOGY_SUMMARY_FEATURE = 'topology-summary';

export type SummaryKind = 'exchange' | 'round' | 'reply';

export interface SummaryRow {
  name: PeerName;
  uid: string;
  version: number;
}

export interface Summary {
  kind: SummaryKind;
  rows: SummaryRow[];
}

export function encodeSummary(kind: SummaryKind, entries: Iterable<PeerEntry>): Uint8Array {
  const rows: string[] = [];
  for (const e of entries) rows.push(JSON.stringify([e.name, e.uid, e.version]));
  return Buffer.from(`{"k":"${kind}","s":[${rows.join(',')}]}`, 'utf8');
}

/** True when `bytes` is a summary (a JSON object) rather than a list of entries. */
export function isSummary(bytes: Uint8Array): boolean {
  for (const b of bytes) {
    if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue;
    return b === 0x7b; // '{'
  }
  return false;
}

/** Decode an untrusted summary; anything off-format or over the limits throws `DecodeError`. */
export function decodeSummary(bytes: Uint8Array): Summary {
  const L = TOPOLOGY_LIMITS;
  if (bytes.length > L.maxBytes) throw new DecodeError(`topology summary is ${bytes.length} bytes, over ${L.maxBytes}`);
  let msg: unknown;
  try {
    msg = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new DecodeError('topology summary is not valid UTF-8 JSON');
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new DecodeError('topology summary is not an object');
  const { k: kind, s: list } = msg as { k?: unknown; s?: unknown };
  if (kind !== 'exchange' && kind !== 'round' && kind !== 'reply') throw new DecodeError('topology summary has a bad kind');
  if (!Array.isArray(list) || list.length > L.maxPeers) throw new DecodeError('topology summary has a bad list');
  const seen = new Set<string>();
  const rows = list.map((r, i): SummaryRow => {
    if (!Array.isArray(r) || r.length !== 3) throw new DecodeError(`topology summary row ${i} is not a 3-item list`);
    const [name, uid, version] = r as unknown[];
    if (typeof name !== 'string' || !isPeerName(name) || name !== name.toLowerCase())
      throw new DecodeError(`topology summary row ${i} has a bad name`);
    if (seen.has(name)) throw new DecodeError(`topology summary lists peer ${name} twice`);
    seen.add(name);
    if (typeof uid !== 'string' || !/^\d{1,20}$/.test(uid) || BigInt(uid) >= 1n << 64n || String(BigInt(uid)) !== uid)
      throw new DecodeError(`topology summary row ${name} has a bad uid`);
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1)
      throw new DecodeError(`topology summary row ${name} has a bad version`);
    return { name, uid, version };
  });
  return { kind, rows };
}

/**
 * Compare our entries with a neighbour's summary: `theyLack` are the names of our entries it does not hold or holds
 * older; `theyHaveNewer` is true when it holds an entry we do not, or a newer one.
 */
export function compareSummary(
  ours: ReadonlyMap<PeerName, PeerEntry>,
  rows: readonly SummaryRow[],
): { theyLack: PeerName[]; theyHaveNewer: boolean } {
  const theirs = new Map<PeerName, SummaryRow>();
  for (const r of rows) theirs.set(r.name, r);
  const theyLack: PeerName[] = [];
  let theyHaveNewer = false;
  for (const [name, e] of ours) {
    const r = theirs.get(name);
    const cmp = r === undefined ? 1 : compareEntries(e, { ...e, uid: r.uid, version: r.version });
    if (cmp > 0) theyLack.push(name);
    else if (cmp < 0) theyHaveNewer = true;
  }
  if (!theyHaveNewer) for (const r of rows) if (!ours.has(r.name)) theyHaveNewer = true;
  return { theyLack, theyHaveNewer };
}
