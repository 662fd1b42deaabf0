/**
 * weft's version, read from package.json at runtime so one number is released, not two. Found by walking up from this
 * file, which works both from source (api/version.ts) and compiled (dist/api/version.js).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/** The `version` field of weft's package.json, or '0.0.0-unknown' when it cannot be found (never throws). */
export function weftVersion(): string {
  if (cached !== undefined) return cached;
  cached = '0.0.0-unknown';
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      try {
        const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'weft' && typeof pkg.version === 'string') {
          cached = pkg.version;
          break;
        }
      } catch {
        // A broken package.json further down is not ours; keep walking up.
      }
    }
    dir = dirname(dir);
  }
  return cached;
}
