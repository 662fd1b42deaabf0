/**
 * Starting and stopping the daemon from the `weft` command.
 *
 * `weft launch` (background): validate the arguments, refuse if a daemon already answers, spawn
 * `node dist/daemon/main.js ARGS --log-file <state-dir>/weft.log` detached (the daemon rotates that log by size) with
 * its stdout and stderr appended to `<state-dir>/weft.out`, write
 * `<state-dir>/weft.pid`, then poll `GET /version` until the daemon with that pid answers (up to 20 s). If the child
 * exits first, or never answers, print the tail of what it logged and fail. The wait takes its spawner, clock and
 * client as parameters so it is tested without processes or ports.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiUnreachableError, DaemonNotRunningError, type ApiClient, type VersionAnswer } from './client.js';

/** A started daemon process, as the launcher sees it. */
export interface SpawnedDaemon {
  readonly pid: number;
  /** How it ended, once it has; undefined while it runs. */
  exitStatus(): { code: number | null; signal: string | null } | undefined;
  /** Ask it to stop (SIGTERM). */
  kill(): void;
}

/** Start the daemon with `args` and `env`, stdout and stderr appended to `logPath`. Throws if it cannot start. */
export type DaemonSpawner = (args: readonly string[], env: NodeJS.ProcessEnv, logPath: string) => SpawnedDaemon;

/** The compiled daemon entry beside this file: dist/cli/launch.js -> dist/daemon/main.js. */
export const daemonMainPath = fileURLToPath(new URL('../daemon/main.js', import.meta.url));

/**
 * Node and allocator settings for the daemon's process (issue 19: memory per router). The daemon's data path
 * allocates nothing per packet and its control plane little, so a small young generation costs a few more
 * scavenges and saves the 10-30 MB the default one grows to (and keeps) after a burst of gossip; one malloc arena
 * besides the main thread's keeps V8's worker threads from each holding an arena of mostly free pages. Measured in
 * docs/benchmarks.md ("Memory per router"). The systemd unit uses the same (./systemd.ts).
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
export const DAEMON_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

/** `env` with `DAEMON_ENV`'s settings added where the operator did not set them. */
export function daemonEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const [k, v] of Object.entries(DAEMON_ENV)) out[k] ??= v;
  return out;
}

/**
 * The real spawner: `process.execPath DAEMON_NODE_FLAGS daemonMainPath ...args` with `daemonEnv(env)`, detached into
 * its own session, not waited for.
 */
export function processSpawner(mainPath = daemonMainPath): DaemonSpawner {
  return (args, env, logPath) => {
    const fd = openSync(logPath, 'a', 0o600);
    let status: { code: number | null; signal: string | null } | undefined;
    try {
      const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, mainPath, ...args], {
        detached: true,
        stdio: ['ignore', fd, fd],
        env: daemonEnv(env),
      });
      if (child.pid === undefined) throw new Error(`could not start ${process.execPath} ${mainPath}`);
      child.on('exit', (code, signal) => (status = { code, signal }));
      child.on('error', () => (status ??= { code: null, signal: null }));
      child.unref();
      const pid = child.pid;
      return {
        pid,
        exitStatus: () => status,
        kill: () => {
          try {
            process.kill(pid, 'SIGTERM');
          } catch {
            // Already gone.
          }
        },
      };
    } finally {
      closeSync(fd);
    }
  };
}

export type WaitOutcome =
  { kind: 'ready'; version: VersionAnswer } | { kind: 'exited'; code: number | null; signal: string | null } | { kind: 'timeout' };

export interface WaitDeps {
  client: Pick<ApiClient, 'version'>;
  sleep(ms: number): Promise<void>;
  /** Milliseconds, monotonic enough for a deadline. */
  now(): number;
}

export interface WaitOptions {
  /** @default 20_000 */
  timeoutMs?: number;
  /** @default 50 */
  intervalMs?: number;
  /**
   * A measure of the daemon's progress (its log's size): while it moves, the deadline is at least `timeoutMs`
   * after the last move, up to `maxMs` in all, so a daemon starting slowly on a loaded machine (many routers
   * launched at once, issue 19) is not stopped halfway. @default none (the deadline is fixed)
   */
  progress?: () => number;
  /** @default 120_000 */
  maxMs?: number;
}

/**
 * Poll until the daemon `spawned` answers `GET /version` with its own pid, it exits, or `timeoutMs` passes (more
 * while `progress` moves). An answer from another pid (a daemon that was already there) does not count.
 */
export async function waitForDaemon(spawned: SpawnedDaemon, deps: WaitDeps, options: WaitOptions = {}): Promise<WaitOutcome> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const intervalMs = options.intervalMs ?? 50;
  const start = deps.now();
  const latest = start + Math.max(timeoutMs, options.maxMs ?? 120_000);
  let deadline = start + timeoutMs;
  let progress = options.progress?.();
  for (;;) {
    const exited = spawned.exitStatus();
    if (exited) return { kind: 'exited', ...exited };
    try {
      const version = await deps.client.version(Math.min(2_000, timeoutMs));
      if (version.pid === spawned.pid) return { kind: 'ready', version };
    } catch (err) {
      if (!(err instanceof DaemonNotRunningError) && !(err instanceof ApiUnreachableError)) throw err;
    }
    // It may have exited while we asked.
    const exitedNow = spawned.exitStatus();
    if (exitedNow) return { kind: 'exited', ...exitedNow };
    if (options.progress !== undefined) {
      const now = options.progress();
      if (now !== progress) {
        progress = now;
        deadline = Math.min(latest, Math.max(deadline, deps.now() + timeoutMs));
      }
    }
    if (deps.now() >= deadline) return { kind: 'timeout' };
    await deps.sleep(intervalMs);
  }
}

/**
 * Remove `--password X` / `--password=X` from launch arguments so the daemon's command line (visible in `ps` for as
 * long as it runs) does not carry the secret; the caller passes it as WEFT_PASSWORD instead.
 */
export function movePasswordOutOfArgs(args: readonly string[]): { args: string[]; password: string | undefined } {
  const out: string[] = [];
  let password: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      out.push(...args.slice(i));
      break;
    }
    if (a === '--password' && i + 1 < args.length) {
      password = args[++i];
    } else if (a.startsWith('--password=')) {
      password = a.slice('--password='.length);
    } else {
      out.push(a);
    }
  }
  return { args: out, password };
}

/**
 * The state dir's files the launcher owns: the daemon's log (JSON lines, rotated by size by the daemon itself), the
 * process's own stdout/stderr (only what bypasses the logger: a crash's stack trace, the one-line start-up error), and
 * the pid file.
 */
export function stateFiles(stateDir: string): { logPath: string; outPath: string; pidPath: string } {
  return { logPath: join(stateDir, 'weft.log'), outPath: join(stateDir, 'weft.out'), pidPath: join(stateDir, 'weft.pid') };
}

/** Create the state dir (0700: it holds the identity key); throws an Error whose message says which dir and why. */
export function ensureStateDir(stateDir: string): void {
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new Error(
      `cannot create the state dir ${stateDir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}; set --state-dir or WEFT_STATE_DIR`,
      { cause: err },
    );
  }
}

/** Current size of the log, so a failed launch shows only what this launch wrote. */
export function logSize(logPath: string): number {
  try {
    return statSync(logPath).size;
  } catch {
    return 0;
  }
}

/**
 * The last `maxLines` lines the daemon logged since `offset`, made readable: pino JSON lines become
 * "level: msg: err.message"; anything else (a crash's stack trace) is kept as it is.
 */
export function logTail(logPath: string, offset: number, maxLines = 15): string[] {
  let text: string;
  try {
    text = readFileSync(logPath).subarray(offset).toString('utf8');
  } catch {
    return [];
  }
  const levelNames: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
  return text
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .slice(-maxLines)
    .map((line) => {
      try {
        const entry = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } | string };
        if (typeof entry.msg !== 'string') return line;
        const errText = typeof entry.err === 'string' ? entry.err : entry.err?.message;
        return `${levelNames[entry.level ?? 30] ?? 'log'}: ${entry.msg}${errText ? `: ${errText}` : ''}`;
      } catch {
        return line;
      }
    });
}

export function writePidFile(pidPath: string, pid: number): void {
  writeFileSync(pidPath, `${pid}\n`);
}

export function readPidFile(pidPath: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidPath, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function removePidFile(pidPath: string, pid?: number): void {
  // Only remove the file if it still names `pid`: a newer daemon may have replaced it.
  if (pid !== undefined && readPidFile(pidPath) !== pid) return;
  rmSync(pidPath, { force: true });
}

/**
 * True while process `pid` exists and has not exited (EPERM: it exists but is not ours to signal). A zombie (exited,
 * not yet reaped by its parent, which for a daemon is init or a container's PID 1 that may reap late) counts as gone:
 * waiting for the reaper made every `weft stop` take a second or more longer than the daemon needed.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isZombie(pid);
}

/** Linux: the state field of /proc/<pid>/stat is Z (zombie) or X (dead). Elsewhere, or unreadable: false. */
export function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X';
}
