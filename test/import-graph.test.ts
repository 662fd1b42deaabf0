/**
 * The folder dependency rules of ../shared/STYLE.md, enforced: a forbidden import fails here, naming the file.
 * cli -> (HTTP) -> api -> daemon -> {router, gossip, ipam, dns, plugin} -> crypto; router and gossip never meet.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, dirname, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');

/** folder -> folders it must not import (relative imports and these package names). */
const forbidden: Record<string, string[]> = {
  router: ['gossip', 'api', 'cli', 'daemon', 'ipam', 'dns', 'plugin', 'ws', 'node:http'],
  gossip: ['router', 'api', 'cli', 'daemon', 'ipam', 'dns', 'plugin', 'netdev', 'native'],
  crypto: ['router', 'gossip', 'api', 'cli', 'daemon', 'ipam', 'netdev', 'native', 'node:net', 'node:dgram', 'ws', 'pino', 'runtime/logger'],
  ipam: ['router', 'api', 'cli', 'daemon', 'netdev', 'native', 'dns', 'plugin'],
  native: ['router', 'gossip', 'api', 'cli', 'daemon', 'ipam', 'crypto', 'netdev'],
  netdev: ['router', 'gossip', 'api', 'cli', 'daemon', 'ipam', 'crypto'],
  api: ['cli', 'router', 'gossip', 'ipam', 'native', 'netdev'],
  cli: ['router', 'gossip', 'ipam', 'native', 'netdev', 'crypto'],
  runtime: ['router', 'gossip', 'api', 'cli', 'daemon', 'ipam', 'crypto', 'native', 'netdev'],
};

function sourceFiles(dir: string): string[] {
  let out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e);
    if (e === 'node_modules' || e === 'build') continue;
    if (statSync(p).isDirectory()) out = out.concat(sourceFiles(p));
    else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs: string[] = [];
  const re = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) specs.push((m[1] ?? m[2])!);
  return specs;
}

describe('import graph', () => {
  for (const [folder, banned] of Object.entries(forbidden)) {
    it(`${folder}/ imports none of: ${banned.join(', ')}`, () => {
      const violations: string[] = [];
      for (const file of sourceFiles(join(root, folder))) {
        for (const spec of importsOf(file)) {
          const target = spec.startsWith('.') ? relative(root, resolve(dirname(file), spec)) : spec;
          for (const b of banned) {
            if (target === b || target.startsWith(`${b}/`)) violations.push(`${relative(root, file)} imports ${spec}`);
          }
        }
      }
      expect(violations).toEqual([]);
    });
  }
});
