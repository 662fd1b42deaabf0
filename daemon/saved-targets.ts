/**
 * Peers added with `weft connect` survive a restart (as Weave's `--resume` does): the daemon keeps the targets the
 * user gave (launch PEERs, `connect`, minus `forget`) in the state dir's `targets` file and dials them again at start.
 * Discovered peers are not saved: gossip finds them again. The file is untrusted input like any state file: parsed
 * with limits, and a bad one is ignored with a warning, never a failed start.
 */
import { joinAddress, splitAddress } from '../runtime/address.js';
import { WeftError } from '../runtime/errors.js';

/** More than any real network's hand-given peers; bounds what a corrupt or hostile file can make us dial. */
export const MAX_SAVED_TARGETS = 1000;
const MAX_TARGET_LENGTH = 300;

export class SavedTargets {
  private readonly targets = new Set<string>();

  /** @param defaultPort the port of a peer given without one (the router's own `--port`) */
  constructor(
    initial: Iterable<string> = [],
    private readonly defaultPort = 6783,
  ) {
    this.add(initial);
  }

  /** The targets, in the order they were first given. */
  list(): string[] {
    return [...this.targets];
  }

  /** `weft connect`: add (or, with `replace`, replace the set with) `peers`. */
  connect(peers: readonly string[], replace: boolean): void {
    if (replace) this.targets.clear();
    this.add(peers);
  }

  /** `weft forget`: remove `peers` (as given, or as host:port with the default port). */
  forget(peers: readonly string[]): void {
    for (const p of peers) {
      this.targets.delete(p);
      this.targets.delete(this.withPort(p));
    }
  }

  /** The file's contents. */
  encode(): string {
    return `${JSON.stringify({ version: 1, targets: this.list() })}\n`;
  }

  private add(peers: Iterable<string>): void {
    for (const p of peers) {
      if (this.targets.size >= MAX_SAVED_TARGETS) return;
      this.targets.add(this.withPort(p));
    }
  }

  /** `10.0.0.2` -> `10.0.0.2:6783`, so one peer given both ways is one target. */
  private withPort(peer: string): string {
    try {
      const { host, port } = splitAddress(peer, this.defaultPort);
      return joinAddress(host, port);
    } catch {
      return peer;
    }
  }
}

/** Thrown by `decodeSavedTargets` for a file that is not ours or is damaged. */
export class SavedTargetsError extends WeftError {
  readonly code = 'SAVED_TARGETS_INVALID';
  override readonly status = 500;
}

/** Parse the `targets` file; every entry must be a peer address. */
export function decodeSavedTargets(text: string): string[] {
  if (text.length > MAX_SAVED_TARGETS * (MAX_TARGET_LENGTH + 4) + 64) throw new SavedTargetsError('the targets file is too large');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new SavedTargetsError('the targets file is not JSON');
  }
  const targets = (value as { version?: unknown; targets?: unknown } | null)?.targets;
  if ((value as { version?: unknown } | null)?.version !== 1 || !Array.isArray(targets))
    throw new SavedTargetsError('the targets file is not version 1 with a targets list');
  if (targets.length > MAX_SAVED_TARGETS)
    throw new SavedTargetsError(`the targets file lists ${targets.length} peers, more than ${MAX_SAVED_TARGETS}`);
  return targets.map((t, i) => {
    if (typeof t !== 'string' || t.length === 0 || t.length > MAX_TARGET_LENGTH)
      throw new SavedTargetsError(`target ${i} is not a peer address`);
    try {
      splitAddress(t);
    } catch {
      throw new SavedTargetsError(`target ${i} (${JSON.stringify(t.slice(0, 60))}) is not a peer address`);
    }
    return t;
  });
}
