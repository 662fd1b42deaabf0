import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli, type CliIo } from './program.js';
import { createApiServer, type ApiServer } from '../api/server.js';
import { FakeControl, sampleReport } from '../api/fake-control.js';
import { formatStatus } from './status-format.js';
import { weftVersion } from '../api/version.js';
import { silentLogger } from '../runtime/logger.js';
import { DaemonNotRunningError, type ApiClient, type VersionAnswer } from './client.js';
import type { WeftConfig } from '../config/launch.js';
import { ConfigError } from '../config/launch.js';
import { InvalidTargetError } from '../netdev/errors.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  exitCalls: number[];
}

async function weft(argv: string[], env: NodeJS.ProcessEnv, extra: Partial<CliIo> = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const exitCalls: number[] = [];
  const code = await runCli(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    exit: (c) => exitCalls.push(c),
    env,
    ...extra,
  });
  return { code, stdout, stderr, exitCalls };
}

/** A port nothing listens on: bind one, then close it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

describe('weft against a real API on 127.0.0.1 with a fake daemon', () => {
  let control: FakeControl;
  let server: ApiServer;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    control = new FakeControl();
    server = await createApiServer(control, silentLogger, '127.0.0.1:0');
    env = { WEFT_HTTP_ADDR: server.httpAddr, WEFT_STATE_DIR: '/nonexistent/weft-test' };
  });
  afterAll(async () => {
    await server.close();
  });

  it('status prints the service blocks', async () => {
    const r = await weft(['status'], env);
    expect(r).toMatchObject({ code: 0, stderr: '', exitCalls: [0] });
    expect(r.stdout).toBe(formatStatus(sampleReport()));
  });

  it('every status view takes --json', async () => {
    const report = sampleReport();
    expect(JSON.parse((await weft(['status', '--json'], env)).stdout)).toEqual(report);
    expect(JSON.parse((await weft(['status', 'connections', '--json'], env)).stdout)).toEqual(report.router.connections);
    expect(JSON.parse((await weft(['status', 'peers', '--json'], env)).stdout)).toEqual(report.router.peers);
    expect(JSON.parse((await weft(['status', 'targets', '--json'], env)).stdout)).toEqual(report.router.targets);
    expect(JSON.parse((await weft(['status', '--json', 'ipam'], env)).stdout)).toEqual(report.ipam);
    expect((await weft(['status', 'connections'], env)).stdout).toContain('-> 10.1.0.2:6783');
  });

  it('report prints the whole report as JSON; ps lists endpoints; version shows both sides', async () => {
    expect(JSON.parse((await weft(['report'], env)).stdout)).toEqual(sampleReport());
    expect((await weft(['ps'], env)).stdout).toBe('c1 ethwe0 02:aa:bb:cc:dd:01 10.32.0.1/12\n');
    expect((await weft(['version'], env)).stdout).toBe(
      `weft ${weftVersion()}\ndaemon ${weftVersion()} (pid ${process.pid}) on ${server.httpAddr}\n`,
    );
  });

  it('connect, forget, attach, detach, expose and hide reach the daemon with what was typed', async () => {
    control.calls.length = 0;
    expect((await weft(['connect', '--replace', '10.0.0.2', '[fd00::3]:7000'], env)).code).toBe(0);
    expect((await weft(['forget', '10.0.0.2'], env)).code).toBe(0);
    const attached = await weft(['attach', '--pid', '42', '--mac', '02:AA:00:00:00:01', '10.2.1.1/24', 'ip:10.2.1.2'], env);
    expect(attached).toMatchObject({ code: 0, stdout: '10.2.1.1/24 ip:10.2.1.2\n' });
    expect((await weft(['attach', '--netns', 'c1'], env)).code).toBe(0);
    expect((await weft(['detach', '--netns', 'c1'], env)).code).toBe(0);
    expect((await weft(['expose', '10.32.0.1/12'], env)).stdout).toBe('10.32.0.1/12\n');
    expect((await weft(['hide', '10.32.0.1/12'], env)).code).toBe(0);
    expect(control.calls.map((c) => [c.method, ...c.args])).toEqual([
      ['connect', ['10.0.0.2', '[fd00::3]:7000'], true],
      ['forget', ['10.0.0.2']],
      ['attach', { target: 'pid:42', addresses: ['10.2.1.1/24', 'ip:10.2.1.2'], mac: '02:aa:00:00:00:01' }],
      ['attach', { target: 'c1', addresses: ['net:default'] }],
      ['detach', 'c1'],
      ['expose', ['10.32.0.1/12']],
      ['hide', ['10.32.0.1/12']],
    ]);
  });

  it('attach and detach take a Docker container name or id after the addresses', async () => {
    control.calls.length = 0;
    expect((await weft(['attach', 'web'], env)).code).toBe(0);
    expect((await weft(['attach', 'net:10.32.8.0/24', 'ip:10.32.9.9', '3f2a9c'], env)).code).toBe(0);
    expect((await weft(['detach', 'web'], env)).code).toBe(0);
    // An id prefix of digits alone is a container, not an address (ci19: `attach ip:10.32.200.7 5454654080`).
    expect((await weft(['attach', 'ip:10.32.200.7', '5454654080'], env)).code).toBe(0);
    expect(control.calls.map((c) => [c.method, ...c.args])).toEqual([
      ['attach', { target: 'docker:web', addresses: ['net:default'] }],
      ['attach', { target: 'docker:3f2a9c', addresses: ['net:10.32.8.0/24', 'ip:10.32.9.9'] }],
      ['detach', 'docker:web'],
      ['attach', { target: 'docker:5454654080', addresses: ['ip:10.32.200.7'] }],
    ]);
    const both = await weft(['detach', '--netns', 'c1', 'web'], env);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give either CONTAINER or --netns/--pid, not both');
    const bad = await weft(['attach', 'net:default', 'we b!'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('neither an address nor a Docker container name');
  });

  it("prints the daemon's refusal and exits 1", async () => {
    control.failWith.detach = new InvalidTargetError('c9');
    const r = await weft(['detach', '--netns', 'c9'], env);
    expect(r).toMatchObject({ code: 1, stdout: '', stderr: `weft: ${new InvalidTargetError('c9').message}\n` });
  });

  it('refuses misuse with the usage line, exit 2, and does not call the daemon', async () => {
    control.calls.length = 0;
    const cases: Array<[string[], string]> = [
      [['connect', 'host:port'], 'Usage: weft connect [options] [PEER...]'],
      [['connect'], 'give at least one PEER'],
      [['forget'], "missing required argument 'PEER'"],
      [['attach', '10.2.1.1/24'], 'give exactly one of --netns NAME|PATH or --pid PID'],
      [['attach', '--netns', 'c1', '--pid', '3'], 'give exactly one of'],
      [['attach', '--pid', 'abc'], 'is not a process id'],
      [['attach', '--netns', 'c1', '--mac', 'zz'], 'is not a MAC'],
      [['attach', '--netns', 'c1', '10.2.1.1'], 'CIDR form'],
      [['expose', '10.32.0.1'], 'Usage: weft expose [options] [ADDR...]'],
      [['status', 'bogus'], 'Allowed choices are peers, connections, targets, ipam, dns'],
      [['status', '--frob'], "unknown option '--frob'"],
      [['frob'], "unknown command 'frob'"],
      [['launch', '--frob'], 'Usage: weft launch [options] [PEER...]'],
      [['launch', '--ipalloc-range', '10.0.0.0/33'], 'is not a CIDR'],
      [['launch', 'not_a_host'], 'is not an address'],
    ];
    for (const [argv, expected] of cases) {
      const r = await weft(argv, env);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.exitCalls).toEqual([2]);
      expect(r.stderr, argv.join(' ')).toContain(expected);
      expect(r.stderr).toMatch(/Usage: weft/);
    }
    expect(control.calls).toEqual([]);
  });

  it('--help and --version exit 0', async () => {
    const help = await weft(['--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('launch [options] [PEER...]');
    expect(help.stdout).toContain('WEFT_STATE_DIR');
    expect((await weft(['launch', '--help'], env)).stdout).toContain('--ipalloc-init <MODE>');
    expect(await weft(['--version'], env)).toMatchObject({ code: 0, stdout: `weft ${weftVersion()}\n` });
  });

  it('launch says a daemon already answers and exits 1 without starting another', async () => {
    let isSpawned = false;
    const r = await weft(['launch'], env, {
      spawner: () => {
        isSpawned = true;
        throw new Error('must not spawn');
      },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'weft: warning: no password: traffic is not encrypted and anyone who reaches port 6783 can join the network and read it; set WEFT_PASSWORD or --password-file\n' +
        `weft: weft is already running on ${server.httpAddr} (pid ${process.pid}, version ${weftVersion()}); stop it first with: weft stop\n`,
    );
    expect(isSpawned).toBe(false);
  });
});

describe('weft when no daemon is running', () => {
  it('says so in one line with what to type, for every command that needs the daemon', async () => {
    const port = await closedPort();
    const env = { WEFT_HTTP_ADDR: `127.0.0.1:${port}` };
    for (const argv of [
      ['status'],
      ['status', 'peers', '--json'],
      ['report'],
      ['connect', '10.0.0.2'],
      ['ps'],
      ['stop'],
      ['attach', '--netns', 'c1'],
    ]) {
      const r = await weft(argv, env);
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`weft is not running on 127.0.0.1:${port}; start it with: weft launch [PEER...]\n`);
    }
    expect((await weft(['version'], env)).stdout).toBe(`weft ${weftVersion()}\ndaemon not running on 127.0.0.1:${port}\n`);
  });

  it('refuses a bad WEFT_HTTP_ADDR with exit 2', async () => {
    const r = await weft(['status'], { WEFT_HTTP_ADDR: 'localhost' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('WEFT_HTTP_ADDR "localhost" is not host:port');
  });
});

describe('weft launch and stop (injected spawner, client and clock)', () => {
  let stateDir: string;
  beforeAll(() => {
    stateDir = mkdtempSync(join(tmpdir(), 'weft-launch-'));
  });
  afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

  /** A client whose /version fails until `answerAfter` polls, then answers as `pid`. */
  function fakeClient(pid: () => number | undefined, extra: Partial<ApiClient> = {}): ApiClient {
    return {
      httpAddr: '127.0.0.1:6784',
      version: async (): Promise<VersionAnswer> => {
        const p = pid();
        if (p === undefined) throw new DaemonNotRunningError('127.0.0.1:6784');
        return { version: '0.1.0', pid: p };
      },
      ...extra,
    } as ApiClient;
  }

  function time() {
    let t = 0;
    return { now: () => t, sleep: async (ms: number) => void (t += ms) };
  }

  function child(pid: number) {
    let status: { code: number | null; signal: string | null } | undefined;
    const c = {
      pid,
      isKilled: false,
      exitStatus: () => status,
      kill: () => void (c.isKilled = true),
      exit: (code: number) => void (status = { code, signal: null }),
    };
    return c;
  }

  it('starts the daemon with the same arguments (password moved to the environment) and returns once it answers', async () => {
    const spawned = child(4242);
    let polls = 0;
    let spawnCall: { args: readonly string[]; env: NodeJS.ProcessEnv; logPath: string } | undefined;
    const r = await weft(
      ['launch', '--nickname', 'h1', '--password', 's3cret', '10.0.0.2'],
      { WEFT_STATE_DIR: stateDir },
      {
        ...time(),
        createClient: () => fakeClient(() => (spawnCall && ++polls > 3 ? 4242 : undefined)),
        spawner: (args, env, logPath) => {
          spawnCall = { args, env, logPath };
          return spawned;
        },
      },
    );
    expect(r.stderr).toContain('warning: --password on the command line is visible');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`weft 0.1.0 is running on 127.0.0.1:6784 (pid 4242, log ${join(stateDir, 'weft.log')})\n`);
    // The daemon logs (rotated by size) into weft.log; its raw stdout/stderr go to weft.out.
    expect(spawnCall!.args).toEqual(['--log-file', join(stateDir, 'weft.log'), '--nickname', 'h1', '10.0.0.2']);
    expect(spawnCall!.env['WEFT_PASSWORD']).toBe('s3cret');
    expect(spawnCall!.logPath).toBe(join(stateDir, 'weft.out'));
    expect(readFileSync(join(stateDir, 'weft.pid'), 'utf8')).toBe('4242\n');
  });

  it("exits 1 with the daemon's own last words when it dies before answering", async () => {
    const spawned = child(4343);
    const r = await weft(
      ['launch'],
      { WEFT_STATE_DIR: stateDir },
      {
        ...time(),
        createClient: () => fakeClient(() => undefined),
        spawner: (_args, _env, logPath) => {
          appendFileSync(
            logPath,
            '{"level":60,"msg":"weft failed to start","err":{"message":"bridge weft: permission denied"}}\nweft: bridge weft: permission denied\n',
          );
          spawned.exit(1);
          return spawned;
        },
      },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the daemon exited (code 1) before its API answered on 127.0.0.1:6784');
    expect(r.stderr).toContain('fatal: weft failed to start: bridge weft: permission denied');
    expect(existsSync(join(stateDir, 'weft.pid'))).toBe(false);
  });

  it('stops a daemon that never answers within the wait, and says so', async () => {
    const spawned = child(4444);
    const r = await weft(
      ['launch'],
      { WEFT_STATE_DIR: stateDir },
      {
        ...time(),
        waitMs: 5_000,
        createClient: () => fakeClient(() => undefined),
        spawner: () => spawned,
      },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('did not answer on 127.0.0.1:6784 within 5 s; stopped it (pid 4444)');
    expect(spawned.isKilled).toBe(true);
  });

  it('--foreground runs the daemon in this process with the resolved config and the pid file', async () => {
    let seen: WeftConfig | undefined;
    let hadPidFile = false;
    const r = await weft(
      ['launch', '--foreground', '--no-datapath', 'h2'],
      { WEFT_STATE_DIR: stateDir },
      {
        createClient: () => fakeClient(() => undefined),
        spawner: () => {
          throw new Error('must not spawn');
        },
        runForeground: async (config) => {
          seen = config;
          hadPidFile = readFileSync(join(stateDir, 'weft.pid'), 'utf8') === `${process.pid}\n`;
        },
      },
    );
    expect(r.code).toBe(0);
    expect(seen).toMatchObject({ isForeground: true, isDatapathEnabled: false, peers: ['h2'], stateDir });
    expect(hadPidFile).toBe(true);
    expect(existsSync(join(stateDir, 'weft.pid'))).toBe(false);
  });

  it('stop asks the daemon to stop and waits for its pid to exit', async () => {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!; // a pid that has exited
    let isStopAsked = false;
    const r = await weft(
      ['stop'],
      { WEFT_STATE_DIR: stateDir },
      {
        ...time(),
        createClient: () => fakeClient(() => gone, { stop: async () => void (isStopAsked = true) }),
      },
    );
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(isStopAsked).toBe(true);
  });

  it('stop gives up after the wait and says how to kill it', async () => {
    const r = await weft(
      ['stop'],
      { WEFT_STATE_DIR: stateDir },
      {
        ...time(),
        waitMs: 1_000,
        createClient: () => fakeClient(() => process.pid, { stop: async () => undefined }),
      },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`did not exit within 1 s; look at its log, or kill it: kill ${process.pid}`);
  });
});

describe('weft identity', () => {
  it('prints the identity public key, making the key file once, from the state dir or --identity-file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-cli-identity-'));
    try {
      const first = await weft(['identity'], { WEFT_STATE_DIR: dir });
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
      expect(existsSync(join(dir, 'identity'))).toBe(true);
      expect((await weft(['identity'], { WEFT_STATE_DIR: dir })).stdout).toBe(first.stdout);
      const other = await weft(['identity', '--identity-file', join(dir, 'other')], { WEFT_STATE_DIR: dir });
      expect(other.stdout).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
      expect(other.stdout).not.toBe(first.stdout);
      appendFileSync(join(dir, 'broken'), 'nonsense\n', { mode: 0o600 });
      const broken = await weft(['identity', '--identity-file', join(dir, 'broken')], {});
      expect(broken.code).not.toBe(0);
      expect(broken.stderr).toMatch(/does not hold a key/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('weft output from hostile strings', () => {
  // What a hostile router can put in gossip, a hello or a close reason: terminal escapes, C1 CSI, DEL, a newline
  // that fakes a line, a bidi override.
  const evil = 'h2\x1b]0;owned\x07\x1b[2J\u009b31m\x7f\nfake line\u202e';
  let control: FakeControl;
  let server: ApiServer;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    control = new FakeControl();
    const r = control.reportValue;
    r.router.connections[0]!.nickname = evil;
    r.router.connections[1]!.info = `closed: ${evil}`;
    r.router.peers[1]!.nickname = evil;
    r.router.targets[1]!.lastError = evil;
    r.ipam!.peers[0]!.nickname = evil;
    r.endpoints[0]!.target = evil;
    server = await createApiServer(control, silentLogger, '127.0.0.1:0');
    env = { WEFT_HTTP_ADDR: server.httpAddr, WEFT_STATE_DIR: '/nonexistent/weft-test' };
  });
  afterAll(async () => {
    await server.close();
  });

  // Only the CLI's own newlines remain: the evil one is escaped, so no line starts with "fake line".
  // eslint-disable-next-line no-control-regex
  const isClean = (text: string) => !/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/.test(text) && !/^fake line/m.test(text);

  it('escapes control characters in every human-readable view', async () => {
    for (const args of [['status'], ['status', 'peers'], ['status', 'connections'], ['status', 'targets'], ['status', 'ipam'], ['ps']]) {
      const r = await weft(args, env);
      expect(r.code, args.join(' ')).toBe(0);
      expect(isClean(r.stdout), `${args.join(' ')}: ${JSON.stringify(r.stdout)}`).toBe(true);
    }
    expect((await weft(['status', 'connections'], env)).stdout).toContain(
      'h2\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\x7f\\x0afake line\\u{202e}',
    );
  });

  it('keeps --json and report valid JSON with the same strings, no raw control character', async () => {
    for (const args of [['report'], ['status', '--json'], ['status', 'peers', '--json']]) {
      const r = await weft(args, env);
      expect(isClean(r.stdout), args.join(' ')).toBe(true);
    }
    expect(JSON.parse((await weft(['report'], env)).stdout).router.connections[0].nickname).toBe(evil);
  });

  it('escapes the fields report -f picks (a template is for scripts; a newline in a nickname is not theirs)', async () => {
    const r = await weft(['report', '-f', '{{router.connections.0.nickname}}|{{router.peers}}\n'], env);
    expect(r.code).toBe(0);
    expect(isClean(r.stdout)).toBe(true);
    expect(r.stdout).toContain('h2\\x1b]0;owned');
  });

  it('escapes an error message the daemon sends back', async () => {
    control.failWith.detach = new ConfigError(`no such target ${evil}`);
    const r = await weft(['detach', '--netns', 'c1'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('\\x1b]0;owned');
    expect(isClean(r.stderr)).toBe(true);
  });
});

describe('weft writing into a closed pipe', () => {
  const cli = join(dirname(fileURLToPath(import.meta.url)), '../dist/cli/main.js');

  it.skipIf(!existsSync(cli))('exits quietly (no EPIPE stack trace) when the reader is gone, as in weft --help | head -1', async () => {
    for (const args of [['--help'], ['launch', '--help']]) {
      const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      // Close our end before the child writes: its write gets EPIPE.
      child.stdout.destroy();
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += String(d)));
      const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      expect(stderr, args.join(' ')).toBe('');
      expect(code, args.join(' ')).toBe(0);
    }
  });
});
