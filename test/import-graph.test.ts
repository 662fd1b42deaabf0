/**
 * The folder dependency rules of docs/architecture.md, enforced over the whole import graph: a folder must not reach
 * a forbidden folder or package directly or through any chain of imports. A violation names the chain, so the fix
 * (the seam that is missing) is visible. Rules that no longer match anything (a folder that is gone, a package
 * nothing uses) fail too, so the table cannot rot into decoration.
 *
 *   cli -> (HTTP) -> api -> daemon -> {router, gossip, ipam, dns, plugin, cni} -> crypto; router and gossip never meet;
 *   cli and daemon both read config/ (the launch options), and everything may use runtime/.
 *
 * Type-only imports count: a type import still couples the folders' vocabularies, which is what the rules protect.
 * A rule may name exceptions (`except`): single files of a banned folder that the folder may reach all the same,
 * each with its reason. An exception must be a type-only module (it compiles to nothing, so reaching it loads no code
 * of that folder), what it imports is checked by the rule like anything else (so it cannot open a path to the rest
 * of its folder), and an exception nothing reaches fails the test (no rotting).
 * A dynamic `import('...')` is a lazy load: it does not count towards the rules (the module is loaded only when that
 * code runs), but every lazy load that reaches what its folder's rules ban is listed in `lazyLoads` with its reason.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, dirname, relative, resolve } from 'node:path';
import ts from 'typescript';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');

interface Rule {
  /** What the folder must not reach: folders of this repo, or package names (`ws`, `node:http`). */
  readonly banned: readonly string[];
  /** Why: shown when the rule fails. */
  readonly reason: string;
  /**
   * Files of a banned folder (`gossip/report.ts`) this folder may reach all the same, each with why. Each must be
   * type-only and is checked like any other node: what it reaches must not be banned (see the file comment).
   */
  readonly except?: Readonly<Record<string, string>>;
}

/**
 * The report shapes (the body of `GET /report`): each declared once by the folder that fills it, in a type-only
 * module, and composed by api/control.ts. api/ and its clients (cli/, cni/) read them through api/control.ts; being
 * type-only, they load no code of those folders, which is what the bans on api/, cli/ and cni/ are for. (dns/ and
 * plugin/ declare theirs the same way, in files no rule bans, so they need no exception.)
 */
const reportShapes: Record<string, string> = {
  'gossip/report.ts': 'the mesh owns its report shape (targets, connections, peers, gossip); api/control.ts composes it',
  'ipam/report.ts': 'IPAM owns its report shape (`weft status ipam`); api/control.ts composes it',
  'router/report.ts': 'the data plane owns its report shape (datapath block, per-peer traffic, carriers); api/control.ts composes it',
  'netdev/report.ts': 'netdev owns the shape of an attached endpoint (`weft ps`); api/control.ts composes it',
};

/** `rule` with the report shapes in the folders it bans as its exceptions. */
function exceptReportShapes(rule: Rule): Rule {
  const except = Object.entries(reportShapes).filter(([file]) => rule.banned.some((b) => matches(file, b)));
  return { ...rule, except: Object.fromEntries(except) };
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
    exceptReportShapes({
      banned: ['cli', 'router', 'gossip', 'ipam', 'native', 'netdev'],
      reason: 'the API sees the daemon only through WeftControl and the report shapes',
    }),
  ],
  cli: [
    exceptReportShapes({
      banned: ['router', 'gossip', 'ipam', 'native', 'netdev', 'daemon', 'sodium-native'],
      reason: 'the CLI talks to a running daemon over HTTP only (no daemon code, no sodium, no addon in the CLI process)',
    }),
  ],
  config: [
    {
      banned: ['router', 'gossip', 'ipam', 'native', 'netdev', 'daemon', 'api', 'cli', 'sodium-native'],
      reason: 'the launch options are read by the CLI and the daemon alike: parsing only, no daemon code, no sodium',
    },
  ],
  cni: [
    exceptReportShapes({
      banned: ['router', 'gossip', 'ipam', 'native', 'sodium-native', 'daemon', 'api/server'],
      reason: 'the CNI plugin is a client of the daemon API, started once per container operation: no daemon code, no sodium, no addon',
    }),
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
 * real violation fails the test, so the list only shrinks. Empty: keep it so.
 */
const knownViolations: Record<string, string> = {};

/**
 * Lazy loads (`await import('...')`) that reach what their folder's rules ban, each with why that is right. A lazy
 * load not listed here, or an entry that matches none, fails the test.
 */
const lazyLoads: Record<string, string> = {
  'cli/program.ts -> daemon/main.ts': '`weft launch --foreground` runs the daemon in the CLI process, and only then loads it',
  'cli/program.ts -> crypto/identity.ts': '`weft identity` makes the key with sodium: loaded for that command only',
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

/** Import specifiers of a file: static, re-exports, type-only (`isLazy` false), and dynamic `import('...')` (true). */
function specifiersOf(file: string): Array<{ spec: string; isLazy: boolean }> {
  const text = readFileSync(file, 'utf8');
  const specs: Array<{ spec: string; isLazy: boolean }> = [];
  const re = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^import\s+['"]([^'"]+)['"]/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) specs.push({ spec: (m[1] ?? m[2] ?? m[3])!, isLazy: m[2] !== undefined });
  // A dynamic import with a computed path would hide an edge: none allowed in source files.
  if (/import\(\s*[^'"\s)]/.test(text.replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, '')))
    specs.push({ spec: 'computed-dynamic-import', isLazy: false });
  return specs;
}

/**
 * Whether a file is type-only: compiled, nothing is left but an empty module (`export {};`). So importing it, even
 * without `import type`, loads no code, and it imports nothing at run time.
 */
function isTypeOnly(file: string): boolean {
  const out = ts.transpileModule(readFileSync(file, 'utf8'), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, removeComments: true, verbatimModuleSyntax: false },
  }).outputText;
  return out.replace(/export\s*\{\s*\};?/g, '').trim() === '';
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
const lazyEdges: Array<{ from: string; to: string }> = [];
for (const file of allFiles) {
  const specs = specifiersOf(file);
  graph.set(
    relative(root, file),
    specs.filter((s) => !s.isLazy).map((s) => resolveSpec(file, s.spec)),
  );
  for (const s of specs.filter((x) => x.isLazy)) lazyEdges.push({ from: relative(root, file), to: resolveSpec(file, s.spec) });
}

function matches(node: string, banned: string): boolean {
  return node === banned || node.startsWith(`${banned}/`) || node === `${banned}.ts`;
}

/** Whether `rule` bans reaching `node` through its entry `banned`: it matches, and is not one of the rule's exceptions. */
function isBanned(rule: Rule, banned: string, node: string): boolean {
  return matches(node, banned) && rule.except?.[node] === undefined;
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
function violationsOf(folder: string, rule: Rule, banned: string): Array<{ key: string; chain: string }> {
  const out: Array<{ key: string; chain: string }> = [];
  for (const file of sourceFiles(join(root, folder))) {
    for (const [node, chain] of reachable(relative(root, file))) {
      if (!isBanned(rule, banned, node)) continue;
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
          for (const v of violationsOf(folder, rule, banned)) {
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
      for (const rule of folderRules) {
        for (const banned of rule.banned) {
          for (const v of violationsOf(folder, rule, banned)) if (knownViolations[v.key] !== undefined) real.add(v.key);
        }
      }
    }
    expect(Object.keys(knownViolations).filter((k) => !real.has(k))).toEqual([]);
  });

  it('every exception is a type-only file of a folder its rule bans, and a file of the folder reaches it', () => {
    const wrong: string[] = [];
    for (const [folder, folderRules] of Object.entries(rules)) {
      const reachedByFolder = new Set(sourceFiles(join(root, folder)).flatMap((f) => [...reachable(relative(root, f)).keys()]));
      for (const rule of folderRules) {
        for (const file of Object.keys(rule.except ?? {})) {
          if (!rule.banned.some((b) => matches(file, b))) wrong.push(`${folder}: ${file} is no exception: the rule does not ban it`);
          else if (!existsSync(join(root, file))) wrong.push(`${folder}: ${file} does not exist`);
          else if (!isTypeOnly(join(root, file))) wrong.push(`${folder}: ${file} is not type-only (it compiles to code)`);
          else if (!reachedByFolder.has(file)) wrong.push(`${folder}: ${file} is reached by no file of ${folder}/ (a stale exception)`);
        }
      }
    }
    const used = new Set(Object.values(rules).flatMap((rs) => rs.flatMap((r) => Object.keys(r.except ?? {}))));
    for (const file of Object.keys(reportShapes)) if (!used.has(file)) wrong.push(`reportShapes: ${file} is an exception of no rule`);
    expect(wrong).toEqual([]);
  });

  it('no source file imports a computed path (it would hide an edge from these rules)', () => {
    expect([...graph].filter(([, deps]) => deps.includes('computed-dynamic-import')).map(([file]) => file)).toEqual([]);
  });

  it('every lazy load that reaches what its folder bans is listed with its reason, and every listed one is real', () => {
    const found = new Set<string>();
    for (const { from, to } of lazyEdges) {
      const folder = from.split('/')[0]!;
      const reached = [to, ...(graph.has(to) ? reachable(to).keys() : [])];
      const isReachingBanned = (rules[folder] ?? []).some((rule) =>
        reached.some((node) => rule.banned.some((b) => isBanned(rule, b, node))),
      );
      if (isReachingBanned) found.add(`${from} -> ${to}`);
    }
    expect([...found].filter((k) => lazyLoads[k] === undefined)).toEqual([]);
    expect(Object.keys(lazyLoads).filter((k) => !found.has(k))).toEqual([]);
  });

  it('covers every source folder that has a rule', () => {
    expect(sourceFolders.every((f) => graph.size > 0 && [...graph.keys()].some((k) => k.startsWith(`${f}/`)))).toBe(true);
  });
});
