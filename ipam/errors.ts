/**
 * Typed IPAM errors. Each has a stable `code` the API and CLI match on, and a message saying what happened and what to
 * do about it.
 */
import { WeftError } from '../runtime/errors.js';

/** Untrusted input (a gossip payload, a stored document) that does not decode: the mesh's one class, counted and dropped. */
export { DecodeError } from '../gossip/decode-error.js';

/** A string that is not an IPv4 address or CIDR, or a subnet outside the IPAM range. */
export class InvalidAddressError extends WeftError {
  readonly code = 'ERR_IPAM_INVALID_ADDRESS';
}

/**
 * Two rings that cannot be merged because they were initialised separately (different range or different seed set).
 * Merging them could hand out one address twice, so the merge is refused and nothing changes.
 */
export class RingMismatchError extends WeftError {
  readonly code = 'ERR_IPAM_SEED_MISMATCH';
  override readonly status = 409;
  constructor(ours: string, theirs: string) {
    super(
      `IPAM ring mismatch: ours is ${ours}, theirs is ${theirs}; the two groups of peers were initialised separately ` +
        `and cannot share addresses. Run 'weft reset' on the peers of one group (this drops their IPAM state) and ` +
        `relaunch them so they join the other group's ring.`,
    );
  }
}

/**
 * A merge that would give one segment two owners: two peers changed the same entry (e.g. `weft rmpeer` of one peer run
 * on both sides of a partition, or a removed peer still running). Refused; nothing changes.
 */
export class RingConflictError extends WeftError {
  readonly code = 'ERR_IPAM_RING_CONFLICT';
  override readonly status = 409;
  constructor(
    message: string,
    /** Set when the conflict shows that this peer itself was removed by `rmpeer` on `removedBy`. */
    readonly removedBy?: string,
  ) {
    super(message);
  }
}

/** A ring over `RING_LIMITS.maxEntries` (a merge or a grant that would pass it). Refused; nothing changes. */
export class RingCapError extends WeftError {
  readonly code = 'ERR_IPAM_RING_CAP';
  override readonly status = 409;
}

/** IPAM has no ring yet (consensus not reached, no seed, observer without gossip) within the wait allowed. */
export class IpamNotReadyError extends WeftError {
  readonly code = 'ERR_IPAM_NOT_READY';
  override readonly status = 503;
  constructor(what: string, status: string, waitedMs: number) {
    super(
      `cannot ${what}: IPAM is ${status} after ${waitedMs} ms; with --ipalloc-init consensus=N a majority of the N ` +
        `peers must be connected (check 'weft status ipam' and 'weft status connections'), then retry`,
    );
  }
}

/** No free address in the subnet on this peer or on any reachable peer. */
export class IpamExhaustedError extends WeftError {
  readonly code = 'ERR_IPAM_EXHAUSTED';
  override readonly status = 503;
  constructor(subnet: string, unreachableOwners: string[]) {
    super(
      `no free address in ${subnet} on this peer or any reachable peer` +
        (unreachableOwners.length > 0
          ? ` (unreachable peers own part of it: ${unreachableOwners.join(', ')}; reconnect them or 'weft rmpeer' the ones that are gone for good)`
          : '; release addresses or allocate from another subnet'),
    );
  }
}

/** An exact address is already held by someone else. */
export class IpamConflictError extends WeftError {
  readonly code = 'ERR_IPAM_CONFLICT';
  override readonly status = 409;
  constructor(
    readonly address: string,
    readonly holder: string,
    readonly holderPeer: string,
  ) {
    super(`${address} is already held by ${holder} on peer ${holderPeer}; release it there first or pick another address`);
  }
}

/** The peer owning an exact address cannot be asked (unreachable, or did not answer in time). */
export class IpamOwnerUnreachableError extends WeftError {
  readonly code = 'ERR_IPAM_OWNER_UNREACHABLE';
  override readonly status = 503;
  constructor(address: string, owner: string) {
    super(
      `cannot claim ${address}: it belongs to peer ${owner}, which is not reachable; reconnect it, or 'weft rmpeer ${owner}' if it is gone for good`,
    );
  }
}

/** This peer was removed from the ring by `weft rmpeer` elsewhere; it must not allocate again from its old state. */
export class IpamRemovedError extends WeftError {
  readonly code = 'ERR_IPAM_REMOVED';
  override readonly status = 409;
  constructor(ourName: string, removedBy: string) {
    super(`this peer (${ourName}) was removed from the IPAM ring by 'weft rmpeer' on ${removedBy}; run 'weft reset' here and relaunch`);
  }
}

/** `rmpeer` refused (ourselves, a reachable peer, or a peer another router already took over). */
export class IpamRmpeerError extends WeftError {
  readonly code = 'ERR_IPAM_RMPEER';
  override readonly status = 409;
}

/** The state directory holds IPAM state for another range than the one configured. */
export class IpamRangeChangedError extends WeftError {
  readonly code = 'ERR_IPAM_RANGE_CHANGED';
  override readonly status = 409;
  constructor(stored: string, configured: string) {
    super(
      `IPAM state in the state directory is for range ${stored}, but --ipalloc-range is ${configured}; relaunch with --ipalloc-range ${stored}, or 'weft reset' to drop the old state`,
    );
  }
}

/** The allocator was stopped while the request waited. */
export class IpamStoppedError extends WeftError {
  readonly code = 'ERR_IPAM_STOPPED';
  override readonly status = 503;
  constructor(what: string) {
    super(`cannot ${what}: IPAM is stopping`);
  }
}
