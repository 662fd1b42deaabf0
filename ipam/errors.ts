/**
 * Typed IPAM errors. Each has a stable `code` the API and CLI match on, and a message saying what happened and what to
 * do about it.
 */

/** Untrusted input (a gossip payload, a stored document) that does not decode. Same code the mesh counts and drops. */
export class DecodeError extends Error {
  readonly code = 'ERR_DECODE';
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

/** A string that is not an IPv4 address or CIDR, or a subnet outside the IPAM range. */
export class InvalidAddressError extends Error {
  readonly code = 'ERR_IPAM_INVALID_ADDRESS';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidAddressError';
  }
}

/**
 * Two rings that cannot be merged because they were initialised separately (different range or different seed set).
 * Merging them could hand out one address twice, so the merge is refused and nothing changes.
 */
export class RingMismatchError extends Error {
  readonly code = 'ERR_IPAM_SEED_MISMATCH';
  constructor(ours: string, theirs: string) {
    super(
      `IPAM ring mismatch: ours is ${ours}, theirs is ${theirs}; the two groups of peers were initialised separately ` +
        `and cannot share addresses. Run 'weft reset' on the peers of one group (this drops their IPAM state) and ` +
        `relaunch them so they join the other group's ring.`,
    );
    this.name = 'RingMismatchError';
  }
}

/**
 * A merge that would give one segment two owners: two peers changed the same entry (e.g. `weft rmpeer` of one peer run
 * on both sides of a partition, or a removed peer still running). Refused; nothing changes.
 */
export class RingConflictError extends Error {
  readonly code = 'ERR_IPAM_RING_CONFLICT';
  constructor(
    message: string,
    /** Set when the conflict shows that this peer itself was removed by `rmpeer` on `removedBy`. */
    readonly removedBy?: string,
  ) {
    super(message);
    this.name = 'RingConflictError';
  }
}

/** A ring over `RING_LIMITS.maxEntries` (a merge or a grant that would pass it). Refused; nothing changes. */
export class RingCapError extends Error {
  readonly code = 'ERR_IPAM_RING_CAP';
  constructor(message: string) {
    super(message);
    this.name = 'RingCapError';
  }
}

/** IPAM has no ring yet (consensus not reached, no seed, observer without gossip) within the wait allowed. */
export class IpamNotReadyError extends Error {
  readonly code = 'ERR_IPAM_NOT_READY';
  constructor(what: string, status: string, waitedMs: number) {
    super(
      `cannot ${what}: IPAM is ${status} after ${waitedMs} ms; with --ipalloc-init consensus=N a majority of the N ` +
        `peers must be connected (check 'weft status ipam' and 'weft status connections'), then retry`,
    );
    this.name = 'IpamNotReadyError';
  }
}

/** No free address in the subnet on this peer or on any reachable peer. */
export class IpamExhaustedError extends Error {
  readonly code = 'ERR_IPAM_EXHAUSTED';
  constructor(subnet: string, unreachableOwners: string[]) {
    super(
      `no free address in ${subnet} on this peer or any reachable peer` +
        (unreachableOwners.length > 0
          ? ` (unreachable peers own part of it: ${unreachableOwners.join(', ')}; reconnect them or 'weft rmpeer' the ones that are gone for good)`
          : '; release addresses or allocate from another subnet'),
    );
    this.name = 'IpamExhaustedError';
  }
}

/** An exact address is already held by someone else. */
export class IpamConflictError extends Error {
  readonly code = 'ERR_IPAM_CONFLICT';
  constructor(
    readonly address: string,
    readonly holder: string,
    readonly holderPeer: string,
  ) {
    super(`${address} is already held by ${holder} on peer ${holderPeer}; release it there first or pick another address`);
    this.name = 'IpamConflictError';
  }
}

/** The peer owning an exact address cannot be asked (unreachable, or did not answer in time). */
export class IpamOwnerUnreachableError extends Error {
  readonly code = 'ERR_IPAM_OWNER_UNREACHABLE';
  constructor(address: string, owner: string) {
    super(
      `cannot claim ${address}: it belongs to peer ${owner}, which is not reachable; reconnect it, or 'weft rmpeer ${owner}' if it is gone for good`,
    );
    this.name = 'IpamOwnerUnreachableError';
  }
}

/** This peer was removed from the ring by `weft rmpeer` elsewhere; it must not allocate again from its old state. */
export class IpamRemovedError extends Error {
  readonly code = 'ERR_IPAM_REMOVED';
  constructor(ourName: string, removedBy: string) {
    super(`this peer (${ourName}) was removed from the IPAM ring by 'weft rmpeer' on ${removedBy}; run 'weft reset' here and relaunch`);
    this.name = 'IpamRemovedError';
  }
}

/** `rmpeer` refused (ourselves, a reachable peer, or a peer another router already took over). */
export class IpamRmpeerError extends Error {
  readonly code = 'ERR_IPAM_RMPEER';
  constructor(message: string) {
    super(message);
    this.name = 'IpamRmpeerError';
  }
}

/** The state directory holds IPAM state for another range than the one configured. */
export class IpamRangeChangedError extends Error {
  readonly code = 'ERR_IPAM_RANGE_CHANGED';
  constructor(stored: string, configured: string) {
    super(
      `IPAM state in the state directory is for range ${stored}, but --ipalloc-range is ${configured}; relaunch with --ipalloc-range ${stored}, or 'weft reset' to drop the old state`,
    );
    this.name = 'IpamRangeChangedError';
  }
}

/** The allocator was stopped while the request waited. */
export class IpamStoppedError extends Error {
  readonly code = 'ERR_IPAM_STOPPED';
  constructor(what: string) {
    super(`cannot ${what}: IPAM is stopping`);
    this.name = 'IpamStoppedError';
  }
}
