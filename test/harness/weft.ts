/**
 * Runs the real `weft` CLI (compiled, dist/cli/main.js) on a test host: each host gets its own state dir, and its
 * daemon listens on its own 127.0.0.1:6784 inside the host's namespace, exactly as on separate machines.
 */
import { mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { NamespaceHandle, TestHost } from './hosts.js';
import type { Report } from '../../api/control.js';

// Two levels up from test/harness/, or three when running compiled from dist/test/harness/ (npm run fuzz).
const above = resolve(dirname(new URL(import.meta.url).pathname), '../..');
export const repoRoot = basename(above) === 'dist' ? dirname(above) : above;
export const cliPath = join(repoRoot, 'dist/cli/main.js');

/** Why the compiled CLI cannot run, or undefined. */
export function builtSkipReason(): string | undefined {
  if (existsSync(cliPath)) return undefined;
  return `weft is not built (${cliPath} missing): run scripts/setup.sh`;
}

export interface WeftHost {
  readonly host: TestHost;
  readonly stateDir: string;
  /** `weft ARGS...` on this host; resolves stdout, rejects (with stderr) on non-zero exit. */
  run(args: readonly string[], timeoutMs?: number): Promise<string>;
  /** `weft launch --nickname hN ARGS...`. */
  launch(args?: readonly string[]): Promise<string>;
  /** `weft report`, parsed. */
  report(): Promise<Report>;
  /** PID of the daemon (from its pid file), or undefined. */
  pid(): number | undefined;
  /** SIGKILL the daemon (a crash, not a clean stop). */
  kill(): void;
  /** `weft stop` if it runs, then remove the state dir. */
  cleanup(): Promise<void>;
  /** The last `lines` lines of the daemon's log (for failure reports). */
  logTail(lines?: number): string;
}

export interface WeftOnOptions {
  /** The `weft` entry to run (an installed package's, say). @default the repo's dist/cli/main.js */
  cliPath?: string;
  /** The state dir's name under `runDir`. @default `h<index>` */
  stateName?: string;
}

export function weftOn(host: TestHost, runDir: string, extraEnv: Record<string, string> = {}, options: WeftOnOptions = {}): WeftHost {
  const stateDir = join(runDir, options.stateName ?? `h${host.index}`);
  const cli = options.cliPath ?? cliPath;
  mkdirSync(stateDir, { recursive: true });
  // No Docker unless a test asks for it: the machine's own engine (if any) must never see test routers. No fastdp
  // either unless a test asks (WEFT_NO_FASTDP: '0'): the tests written for the sleeve keep testing the sleeve, which
  // fastdp would otherwise take over on every clear path.
  const envArgs = [
    `WEFT_STATE_DIR=${stateDir}`,
    'WEFT_DOCKER_API=',
    'WEFT_PLUGIN_SOCKET=',
    'WEFT_NO_FASTDP=1',
    ...Object.entries(extraEnv).map(([k, v]) => `${k}=${v}`),
  ];
  const w: WeftHost = {
    host,
    stateDir,
    run: (args, timeoutMs = 60_000) => host.exec('env', [...envArgs, process.execPath, cli, ...args], { timeoutMs }),
    launch: (args = []) => w.run(['launch', '--nickname', `h${host.index}`, ...args]),
    report: async () => JSON.parse(await w.run(['report'])) as Report,
    pid() {
      try {
        return Number(readFileSync(join(stateDir, 'weft.pid'), 'utf8').trim()) || undefined;
      } catch {
        return undefined;
      }
    },
    kill() {
      const pid = w.pid();
      if (pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    },
    logTail(lines = 60) {
      try {
        return readFileSync(join(stateDir, 'weft.log'), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '(no log)';
      }
    },
    async cleanup() {
      const pid = w.pid();
      if (pid && isAlive(pid)) {
        await w.run(['stop'], 15_000).catch(() => undefined);
        if (isAlive(pid)) w.kill();
      }
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return w;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Poll `check` until it returns a truthy value or `timeoutMs` passes; then throw with the last value/error. */
export async function waitFor<T>(what: string, check: () => Promise<T> | T, timeoutMs = 20_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`,
      );
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** True if `from` can ping `toIp` (a few tries). */
export async function canPing(from: NamespaceHandle, toIp: string, count = 1): Promise<boolean> {
  try {
    await from.exec('ping', ['-c', String(count), '-W', '1', '-i', '0.2', toIp], { timeoutMs: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** Print each router's log tail when the current test failed: call from `afterEach`. */
export function dumpLogsOnFailure(ctx: { task: { name: string; result?: { state?: string } } }, weft: readonly WeftHost[]): void {
  if (ctx.task.result?.state !== 'fail') return;
  for (const w of weft) console.error(`--- h${w.host.index} weft.log (test "${ctx.task.name}" failed) ---\n${w.logTail()}`);
}
