/**
 * File permissions of what weft keeps on disk. The state dir holds the identity key, the peer name and the IPAM
 * ring: weft creates it 0700 (runtime/store.ts, cli/launch.ts). One that already exists with a looser mode is
 * warned about, not tightened: `--state-dir` may name a directory others rightly use (a home directory, /srv/x),
 * and changing its mode behind the user's back would break them. The files in it are 0600 each.
 */
import { statSync } from 'node:fs';

/** The mode as four octal digits, e.g. "0755". */
export function octalMode(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, '0');
}

/** A warning when the state dir exists and other users may read or write it; undefined otherwise (or when absent). */
export function stateDirWarning(dir: string, modeOf: (path: string) => number = (p) => statSync(p).mode): string | undefined {
  let mode: number;
  try {
    mode = modeOf(dir);
  } catch {
    return undefined;
  }
  if ((mode & 0o077) === 0) return undefined;
  return `the state dir ${dir} is open to other users (mode ${octalMode(mode)}); it holds this router's identity and IPAM state: chmod 700 ${dir}`;
}
