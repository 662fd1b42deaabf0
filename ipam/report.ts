/**
 * IPAM's part of `weft report` (`GET /report`, `weft status ipam`), declared once, here, by its owner
 * (`Allocator.status()` builds it); api/control.ts composes it into `Report`.
 *
 * Type-only and plain JSON: this file imports nothing, so api/ and cli/ may read it without loading any IPAM code
 * (it is the one file of ipam/ test/import-graph.test.ts lets them reach). Keep it that way.
 */

/** `weft status ipam`: the range, this router's share of it, and every peer's. */
export interface IpamReport {
  status: 'ready' | 'awaiting consensus' | 'idle' | 'off';
  range: string;
  defaultSubnet: string;
  peers: Array<{ name: string; nickname: string; addresses: number; share: number; isReachable: boolean }>;
  /** Addresses this peer holds for containers and the host (metrics: weft_ipam_allocated_addresses). */
  allocated?: number;
  /** Addresses in the range this peer could hand out now without asking anyone. */
  free?: number;
  /** IPAM event counters by reason (refused ring claims, rate limiting, donations), sorted by name. */
  counters: Record<string, number>;
}
