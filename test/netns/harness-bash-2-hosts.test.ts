/**
 * scripts/testhosts.sh builds the same layout as test/harness/hosts.ts (the demo and bench rely on it): prefixed
 * namespaces, hosts that ping each other, cut/restore, and a down that leaves nothing.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MARKER_DIR, netnsSkipReason } from '../harness/hosts.js';

const skip = netnsSkipReason();
const script = join(import.meta.dirname, '../../scripts/testhosts.sh');
const run = promisify(execFile);

async function testhosts(...args: string[]): Promise<string> {
  return (await run('bash', [script, ...args], { timeout: 60_000 })).stdout.trim();
}

async function pings(prefix: string, from: number, to: number): Promise<boolean> {
  const address = await testhosts('ip', prefix, String(to));
  try {
    await testhosts('exec', prefix, String(from), 'ping', '-c', '1', '-W', '1', address);
    return true;
  } catch {
    return false;
  }
}

function namespacesWith(prefix: string): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`${prefix}-`))
    .sort();
}

describe.skipIf(skip)('scripts/testhosts.sh: 2 hosts', () => {
  let prefix = '';
  afterAll(async () => {
    if (prefix) await testhosts('down', prefix);
  });

  it('brings up prefixed hosts on one underlay, cuts and restores them, and tears everything down', async () => {
    prefix = await testhosts('up', '2');
    expect(prefix).toMatch(/^w[0-9a-f]{4}$/);
    expect(namespacesWith(prefix)).toEqual([`${prefix}-h1`, `${prefix}-h2`, `${prefix}-ul`]);
    expect(await testhosts('ip', prefix, '2')).toMatch(/^10\.(2[0-4][0-9]|250)\.0\.2$/);
    expect(await pings(prefix, 1, 2)).toBe(true);

    await testhosts('cut', prefix, '1', '2');
    expect(await pings(prefix, 1, 2)).toBe(false);
    await testhosts('restore', prefix, '1', '2');
    expect(await pings(prefix, 1, 2)).toBe(true);

    await testhosts('container', prefix, '1', 'c1');
    expect(namespacesWith(prefix)).toContain(`${prefix}-h1-c1`);

    await testhosts('down', prefix);
    await testhosts('down', prefix);
    expect(namespacesWith(prefix)).toEqual([]);
    expect(existsSync(join(MARKER_DIR, prefix))).toBe(false);
  });

  it('refuses misuse with the usage text and a non-zero exit', async () => {
    const err = await run('bash', [script, 'cut', 'wabcd']).catch((e) => e);
    expect(err.code).toBe(2);
    expect(err.stderr).toContain('cut PREFIX A B');
  });
});
