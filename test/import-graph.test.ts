/**
 * The folder dependency rules of docs/architecture.md, enforced over the whole import graph: a folder must not reach
 * a forbidden folder or package directly or through any chain of imports. A violation names the chain, so the fix
 * (the seam that is missing) is visible. Rules that no longer match anything (a folder that is gone, a package
 * nothing uses) fail too, so the table cannot rot into decoration.
 *
 *   cli -> (HTTP) -> api -> daemon -> {router, gossip, ipam, dns, plugin, cni} -> crypto; router and gossip never meet.
 *
 * Type-only imports count: a type import still couples the folders' vocabularies, which is what the rules protect.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, dirname, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');

interface Rule {
  /** What the folder must not reach: folders of this repo, or package names (`ws`, `node:http`). */
  readonly banned: readonly string[];
  /** Why: shown when the rule fails. */
  readonly reason: string;
}

/** folder -> what it must not reach, and why. Folders not listed here may import anything. */
const rules: Record<string, Rule[]> = {
  router: [
    {
      banned: ['gossip', 'api', 'cli', 'daemon', 'ipam'],
      reason: 'the data plane learns about the control plane only through Datapath snapshots',
    },
    { banned: ['ws', 'node:http'], reason: 'the data plane never speaks the control protocols' },
  ],
  gossip: [
    { banned: ['router', 'netdev', 'native'], reason: 'the control plane never touches frames or kernel devices: the daemon bridges them' },
    {
      banned: ['api', 'cli', 'daemon', 'ipam'],
      reason: 'gossip is a library: IPAM plugs in through the channel interface, the daemon assembles',
    },
  ],
  crypto: [
    {
      banned: ['router', 'gossip', 'api', 'cli', 'daemon', 'ipam', 'netdev', 'native'],
      reason: 'crypto is the bottom layer: keys and seals into caller-owned buffers',
    },
    {
      banned: ['node:net', 'node:dgram', 'ws', 'pino', 'runtime/logger'],
      reason: 'crypto does no I/O and logs nothing (no key material in logs)',
    },
  ],
  ipam: [
    {
      banned: ['router', 'api', 'cli', 'daemon', 'netdev', 'native'],
      reason: 'the allocator is pure state plus a Store; it reaches gossip only through the channel interface',
    },
  ],
  native: [
    { banned: ['router', 'gossip', 'api', 'cli', 'daemon', 'ipam', 'crypto', 'netdev'], reason: 'the addon is mechanism only: no policy' },
  ],
  netdev: [
    {
      banned: ['router', 'gossip', 'api', 'cli', 'daemon', 'ipam', 'crypto'],
      reason: 'kernel device plumbing knows nothing of peers or packets',
    },
  ],
  api: [
    {
      banned: ['cli', 'router', 'gossip', 'ipam', 'native', 'netdev'],
      reason: 'the API sees the daemon only through WeftControl and the report shapes',
    },
  ],
  cli: [
    {
      banned: ['router', 'gossip', 'ipam', 'native', 'netdev', 'crypto', 'daemon'],
      reason: 'the CLI talks to a running daemon over HTTP only (no sodium, no addon in the CLI process)',
    },
  ],
  cni: [
    {
      banned: ['router', 'gossip', 'ipam', 'native', 'crypto', 'daemon', 'api/server'],
      reason: 'the CNI plugin is a client of the daemon API, started once per container operation: no daemon code, no sodium, no addon',
    },
  ],
  runtime: [
    {
      banned: ['router', 'gossip', 'api', 'cli', 'daemon', 'ipam', 'crypto', 'native', 'netdev'],
      reason: 'the process seams (clock, random, logger, store) depend on nothing of weft',
    },
  ],
};

/**
 * Imports the rules above tolerate for now, each with the issue that removes it. An entry that no longer matches a
 * real violation fails the test, so the list only shrinks.
 */
const knownViolations: Record<string, string> = {
  // TODO(#11): option parsing and address parsing move out of daemon/config.ts (config as data, addresses owned by
  // the folder of the concept), so neither the CLI nor the API loads daemon code, sodium or gossip.
  'cli/program.ts -> daemon/config.ts': '#11',
  'cli/program.ts -> daemon/identity.ts': '#11',
  'api/server.ts -> daemon/config.ts': '#11',
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
    else if (p.endsWith('.ts') && !p.endsWith('.test.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Import specifiers of a file: static, re-exports, type-only, and dynamic `import('...')`. */
function specifiersOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs: string[] = [];
  const re = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^import\s+['"]([^'"]+)['"]/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) specs.push((m[1] ?? m[2] ?? m[3])!);
  return specs;
}

/** A node of the graph: a repo file (relative path, `.ts`) or an external package name. */
function resolveSpec(fromFile: string, spec: string): string {
  if (!spec.startsWith('.')) {
    if (spec.startsWith('node:')) return spec;
    // 'pino/file' -> 'pino', '@types/x/y' -> '@types/x'
    const parts = spec.split('/');
    return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
  }
  const abs = resolve(dirname(fromFile), spec).replace(/\.js$/, '.ts');
  return relative(root, abs);
}

const sourceFolders = Object.keys(rules);
const allFiles = [
  ...new Set(
    readdirSync(root)
      .filter((e) => !['node_modules', 'dist', 'test', 'scripts', '.git'].includes(e) && statSync(join(root, e)).isDirectory())
      .flatMap((d) => sourceFiles(join(root, d))),
  ),
];
const graph = new Map<string, string[]>();
for (const file of allFiles)
  graph.set(
    relative(root, file),
    specifiersOf(file).map((s) => resolveSpec(file, s)),
  );

function matches(node: string, banned: string): boolean {
  return node === banned || node.startsWith(`${banned}/`) || node === `${banned}.ts`;
}

/** Every node reachable from `start`, with the chain that reached it first (breadth-first: shortest chains). */
function reachable(start: string): Map<string, string[]> {
  const seen = new Map<string, string[]>([[start, [start]]]);
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift()!;
    for (const next of graph.get(node) ?? []) {
      if (seen.has(next)) continue;
      seen.set(next, [...seen.get(node)!, next]);
      if (graph.has(next)) queue.push(next);
    }
  }
  return seen;
}

/**
 * Chains from a file of `folder` to `banned`. Each is keyed by the edge where it leaves the folder (`a.ts -> b.ts`):
 * that import is the one to change, and the key `knownViolations` uses.
 */
function violationsOf(folder: string, banned: string): Array<{ key: string; chain: string }> {
  const out: Array<{ key: string; chain: string }> = [];
  for (const file of sourceFiles(join(root, folder))) {
    for (const [node, chain] of reachable(relative(root, file))) {
      if (!matches(node, banned)) continue;
      const exit = chain.findIndex((n) => !n.startsWith(`${folder}/`));
      out.push({ key: `${chain[exit - 1]} -> ${chain[exit]}`, chain: chain.join(' -> ') });
    }
  }
  return out;
}

describe('import graph (transitive)', () => {
  for (const [folder, folderRules] of Object.entries(rules)) {
    for (const rule of folderRules) {
      it(`${folder}/ reaches none of: ${rule.banned.join(', ')} (${rule.reason})`, () => {
        const found: string[] = [];
        for (const banned of rule.banned) {
          for (const v of violationsOf(folder, banned)) {
            if (knownViolations[v.key] === undefined) found.push(v.chain);
          }
        }
        expect(found, `${folder}/ must not reach these, because ${rule.reason}`).toEqual([]);
      });
    }
  }

  it('every rule still matches something: each folder exists, each banned folder or package is in the repo', () => {
    const deps = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      devDependencies?: Record<string, string>;
    };
    const packages = new Set([...Object.keys(deps.dependencies ?? {}), ...Object.keys(deps.devDependencies ?? {})]);
    const stale: string[] = [];
    for (const [folder, folderRules] of Object.entries(rules)) {
      if (!existsSync(join(root, folder))) stale.push(`rule for ${folder}/, which does not exist`);
      for (const rule of folderRules) {
        for (const banned of rule.banned) {
          const isFolderOrFile = existsSync(join(root, banned)) || existsSync(join(root, `${banned}.ts`));
          if (!isFolderOrFile && !banned.startsWith('node:') && !packages.has(banned)) stale.push(`${folder}: ${banned} matches nothing`);
        }
      }
    }
    expect(stale).toEqual([]);
  });

  it('every tolerated violation is still real (the list only shrinks)', () => {
    const real = new Set<string>();
    for (const [folder, folderRules] of Object.entries(rules)) {
      for (const banned of folderRules.flatMap((r) => r.banned)) {
        for (const v of violationsOf(folder, banned)) if (knownViolations[v.key] !== undefined) real.add(v.key);
      }
    }
    expect(Object.keys(knownViolations).filter((k) => !real.has(k))).toEqual([]);
  });

  it('covers every source folder that has a rule', () => {
    expect(sourceFolders.every((f) => graph.size > 0 && [...graph.keys()].some((k) => k.startsWith(`${f}/`)))).toBe(true);
  });
});
