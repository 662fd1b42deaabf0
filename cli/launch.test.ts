import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { createApiClient, DaemonNotRunningError, type VersionAnswer } from './client.js';
import {
  ensureStateDir,
  isProcessAlive,
  logTail,
  movePasswordOutOfArgs,
  processSpawner,
  waitForDaemon,
  type SpawnedDaemon,
} from './launch.js';

/** A spawned daemon whose exit the test decides. */
function fakeChild(pid: number): SpawnedDaemon & { exitWith(code: number): void; isKilled: boolean } {
  let status: { code: number | null; signal: string | null } | undefined;
  const child = {
    pid,
    isKilled: false,
    exitStatus: () => status,
    kill: () => {
      child.isKilled = true;
    },
    exitWith: (code: number) => {
      status = { code, signal: null };
    },
  };
  return child;
}

/** A clock that moves only when the code under test sleeps. */
function fakeTime() {
  let t = 0;
  return { now: () => t, sleep: async (ms: number) => void (t += ms) };
}

describe('waitForDaemon', () => {
  it('returns ready once the spawned pid answers /version', async () => {
    const child = fakeChild(4242);
    let polls = 0;
    const client = {
      version: async (): Promise<VersionAnswer> => {
        polls += 1;
        if (polls < 4) throw new DaemonNotRunningError('127.0.0.1:6784');
        return { version: '0.1.0', pid: 4242 };
      },
    };
    const outcome = await waitForDaemon(child, { client, ...fakeTime() }, { timeoutMs: 20_000, intervalMs: 200 });
    expect(outcome).toEqual({ kind: 'ready', version: { version: '0.1.0', pid: 4242 } });
    expect(polls).toBe(4);
  });

  it('does not count an answer from another daemon, and reports our child exiting', async () => {
    const child = fakeChild(4242);
    let polls = 0;
    const client = {
      version: async (): Promise<VersionAnswer> => {
        polls += 1;
        if (polls === 3) child.exitWith(1);
        return { version: '0.1.0', pid: 999 };
      },
    };
    expect(await waitForDaemon(child, { client, ...fakeTime() })).toEqual({ kind: 'exited', code: 1, signal: null });
  });

  it('times out after timeoutMs of fake time when nothing answers', async () => {
    const child = fakeChild(4242);
    let polls = 0;
    const client = {
      version: async (): Promise<VersionAnswer> => {
        polls += 1;
        throw new DaemonNotRunningError('127.0.0.1:6784');
      },
    };
    expect(await waitForDaemon(child, { client, ...fakeTime() }, { timeoutMs: 1_000, intervalMs: 100 })).toEqual({ kind: 'timeout' });
    expect(polls).toBe(11);
  });

  it('waits longer for a daemon whose progress moves (a slow start on a loaded machine), within maxMs', async () => {
    const client = { version: async (): Promise<VersionAnswer> => Promise.reject(new DaemonNotRunningError('127.0.0.1:6784')) };
    // Progress for 3 s, then none: the deadline is 1 s after the last move.
    let time = fakeTime();
    let t0 = time.now();
    const slow = await waitForDaemon(
      fakeChild(4242),
      { client, ...time },
      { timeoutMs: 1_000, intervalMs: 100, maxMs: 10_000, progress: () => Math.min(time.now() - t0, 3_000) },
    );
    expect(slow).toEqual({ kind: 'timeout' });
    expect(time.now() - t0).toBeGreaterThanOrEqual(3_900);
    expect(time.now() - t0).toBeLessThanOrEqual(4_200);
    // Progress forever: stopped at maxMs.
    time = fakeTime();
    t0 = time.now();
    const endless = await waitForDaemon(
      fakeChild(4242),
      { client, ...time },
      { timeoutMs: 1_000, intervalMs: 100, maxMs: 10_000, progress: () => time.now() },
    );
    expect(endless).toEqual({ kind: 'timeout' });
    expect(time.now() - t0).toBeGreaterThanOrEqual(10_000);
    expect(time.now() - t0).toBeLessThanOrEqual(10_200);
    // No progress: the fixed deadline.
    time = fakeTime();
    t0 = time.now();
    await waitForDaemon(fakeChild(4242), { client, ...time }, { timeoutMs: 1_000, intervalMs: 100, maxMs: 10_000, progress: () => 7 });
    expect(time.now() - t0).toBeLessThanOrEqual(1_200);
  });

  it('passes an unexpected client error through', async () => {
    const client = { version: async (): Promise<VersionAnswer> => Promise.reject(new TypeError('bug')) };
    await expect(waitForDaemon(fakeChild(1), { client, ...fakeTime() })).rejects.toThrow('bug');
  });
});

describe('movePasswordOutOfArgs', () => {
  it('takes --password X and --password=X out, keeps everything else in order', () => {
    expect(movePasswordOutOfArgs(['--nickname', 'h1', '--password', 's3', '10.0.0.2'])).toEqual({
      args: ['--nickname', 'h1', '10.0.0.2'],
      password: 's3',
    });
    expect(movePasswordOutOfArgs(['--password=a=b', '--password-file', '/f'])).toEqual({
      args: ['--password-file', '/f'],
      password: 'a=b',
    });
    expect(movePasswordOutOfArgs(['h2'])).toEqual({ args: ['h2'], password: undefined });
    expect(movePasswordOutOfArgs(['--', '--password', 'x'])).toEqual({ args: ['--', '--password', 'x'], password: undefined });
  });
});

describe('logTail', () => {
  it('shows what was logged after the offset, pino lines made readable', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-log-'));
    try {
      const log = join(dir, 'weft.log');
      writeFileSync(log, '{"level":30,"msg":"old launch"}\n');
      const offset = 32;
      appendFileSync(
        log,
        '{"level":30,"msg":"starting"}\n{"level":60,"msg":"weft failed to start","err":{"message":"EADDRINUSE 0.0.0.0:6783"}}\nweft: plain line\n',
      );
      expect(logTail(log, offset)).toEqual(['info: starting', 'fatal: weft failed to start: EADDRINUSE 0.0.0.0:6783', 'weft: plain line']);
      expect(logTail(join(dir, 'missing.log'), 0)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('processSpawner (real child processes, loopback only)', () => {
  const realTime = { now: Date.now, sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)) };

  it("appends the child's stdout and stderr to the log and reports its exit code", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-spawn-'));
    try {
      const script = join(dir, 'main.mjs');
      writeFileSync(
        script,
        "process.stdout.write('out ' + process.argv.slice(2).join(' ') + '\\n'); process.stderr.write('weft: no bridge\\n'); process.exit(3);\n",
      );
      const log = join(dir, 'weft.log');
      const child = processSpawner(script)(['--nickname', 'h1'], { ...process.env }, log);
      const client = { version: async (): Promise<VersionAnswer> => Promise.reject(new DaemonNotRunningError('127.0.0.1:1')) };
      const outcome = await waitForDaemon(child, { client, ...realTime }, { timeoutMs: 10_000, intervalMs: 20 });
      expect(outcome).toEqual({ kind: 'exited', code: 3, signal: null });
      expect(logTail(log, 0).sort()).toEqual(['out --nickname h1', 'weft: no bridge'].sort());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("starts the daemon with its memory settings, keeping an operator's own MALLOC_ARENA_MAX (issue 19)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-spawn-'));
    try {
      const script = join(dir, 'main.mjs');
      writeFileSync(script, 'console.log(JSON.stringify({ flags: process.execArgv, arenas: process.env.MALLOC_ARENA_MAX }));\n');
      const client = { version: async (): Promise<VersionAnswer> => Promise.reject(new DaemonNotRunningError('127.0.0.1:1')) };
      const env = { ...process.env };
      delete env.MALLOC_ARENA_MAX;
      for (const [given, expected] of [
        [undefined, '2'],
        ['4', '4'],
      ] as const) {
        const log = join(dir, `weft-${expected}.log`);
        const child = processSpawner(script)([], given === undefined ? env : { ...env, MALLOC_ARENA_MAX: given }, log);
        expect(await waitForDaemon(child, { client, ...realTime }, { timeoutMs: 10_000, intervalMs: 20 })).toMatchObject({
          kind: 'exited',
          code: 0,
        });
        expect(JSON.parse(logTail(log, 0)[0]!)).toEqual({ flags: ['--max-semi-space-size=1'], arenas: expected });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is ready once the spawned process answers /version with its own pid', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-spawn-'));
    // A free port on loopback for the stand-in daemon.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const { port } = probe.address() as { port: number };
    await new Promise((r) => probe.close(r));
    let child: SpawnedDaemon | undefined;
    try {
      const script = join(dir, 'main.mjs');
      writeFileSync(
        script,
        `import { createServer } from 'node:http';
         setTimeout(() => createServer((q, s) => s.end(JSON.stringify({ version: '9.9.9', pid: process.pid }))).listen(${port}, '127.0.0.1'), 100);
         setTimeout(() => process.exit(0), 20000);\n`,
      );
      child = processSpawner(script)([], { ...process.env }, join(dir, 'weft.log'));
      const client = createApiClient({ httpHost: '127.0.0.1', httpPort: port, httpAddr: `127.0.0.1:${port}` });
      const outcome = await waitForDaemon(child, { client, ...realTime }, { timeoutMs: 10_000, intervalMs: 50 });
      expect(outcome).toEqual({ kind: 'ready', version: { version: '9.9.9', pid: child.pid } });
    } finally {
      child?.kill();
      for (let i = 0; i < 100 && child && isProcessAlive(child.pid) && child.exitStatus() === undefined; i++) await realTime.sleep(20);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ensureStateDir', () => {
  it('creates the state dir 0700 (it holds the identity key), directories above it too', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-launch-state-'));
    try {
      ensureStateDir(join(dir, 'x', 'state'));
      expect(statSync(join(dir, 'x', 'state')).mode & 0o777).toBe(0o700);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(process.platform !== 'linux')('isProcessAlive', () => {
  it('counts a zombie (exited, not yet reaped) as gone, a running process as alive', async () => {
    // sh starts a short `sleep` in the background, prints its pid and becomes a long `sleep`, which never reaps it:
    // a zombie once the short one ends (it is still running when sh execs, so sh cannot have reaped it).
    const { spawn } = await import('node:child_process');
    const parent = spawn('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString()))));
      let signalled = false;
      for (let i = 0; i < 200; i++) {
        process.kill(zombie, 0); // still exists: only the state tells
        signalled = true;
        if (!isProcessAlive(zombie)) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(signalled).toBe(true);
      expect(isProcessAlive(zombie)).toBe(false);
      expect(isProcessAlive(parent.pid!)).toBe(true);
    } finally {
      parent.kill();
    }
  });
});
