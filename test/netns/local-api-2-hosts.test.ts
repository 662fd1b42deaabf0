/**
 * The local API against what can reach it without being the weft command: a web page in a browser on the host
 * (cross-site POSTs, DNS rebinding), a request to the wrong port, and another machine. Real daemons in test hosts:
 *
 *   h1  the router under attack, API on its own 127.0.0.1:6784, metrics on 127.0.0.1:6782; curl and a real
 *       headless chromium (when installed) send the attacks from inside h1's namespace
 *   h2  a router whose API listens on 0.0.0.0:6784 (only with --allow-remote-api); h1 talks to it over the underlay
 *
 * Each attack must be refused (403/405/415 with a stable code), counted under its reason in `weft report` and in
 * the metrics, and leave the daemon running with the same pid.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsSkipReason, type NamespaceHandle } from '../harness/hosts.js';
import { weftNetwork } from '../harness/network.js';
import { builtSkipReason, repoRoot, waitFor } from '../harness/weft.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const chromiumPath = '/usr/bin/chromium';

interface Answer {
  status: number;
  body: string;
}

/** curl inside `on`: the status and body of one request (curl exits 0 for any HTTP status). */
async function curl(on: NamespaceHandle, args: readonly string[]): Promise<Answer> {
  const out = await on.exec('curl', ['-sS', '-m', '10', '-w', '\n%{http_code}', ...args], { timeoutMs: 20_000 });
  const i = out.lastIndexOf('\n');
  return { status: Number(out.slice(i + 1)), body: out.slice(0, i) };
}

function errorCode(a: Answer): string | undefined {
  try {
    return (JSON.parse(a.body) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(skip)('the local API refuses web pages, DNS rebinding and GETs that would change state', () => {
  const net = weftNetwork(2);
  let pid: number;

  beforeAll(async () => {
    await net.weft[0]!.launch(['--no-datapath']);
    pid = net.weft[0]!.pid()!;
    expect(pid).toBeGreaterThan(0);
  });

  /** After every attack: the same daemon still runs and answers. */
  afterEach(async () => {
    const w = net.weft[0]!;
    await new Promise((r) => setTimeout(r, 300)); // a /stop that got through would have the daemon exit by now
    expect(isAlive(pid)).toBe(true);
    expect(w.pid()).toBe(pid);
    expect((await w.report()).router.nickname).toBe('h1');
  });

  const h1 = () => net.hosts.host(1);
  const refused = async () => (await net.weft[0]!.report()).api!.refused;

  it("refuses the issue's curl attack (POST /stop, foreign Origin and Host, text/plain) with 403, and counts it", async () => {
    const before = await refused();
    const attack = await curl(h1(), [
      '-XPOST',
      '-H',
      'Origin: http://evil.example',
      '-H',
      'Host: evil.example:6784',
      '-H',
      'Content-Type: text/plain',
      '--data',
      '',
      '127.0.0.1:6784/stop',
    ]);
    expect(attack.status).toBe(403);
    expect(errorCode(attack)).toBe('ERR_FORBIDDEN_HOST');
    // The same with the right Host: the Origin alone is enough to refuse, on every state-changing route.
    for (const path of ['/stop', '/ipam/reset', '/connect', '/attach', '/expose']) {
      const r = await curl(h1(), [
        '-XPOST',
        '-H',
        'Origin: http://evil.example',
        '-H',
        'Content-Type: text/plain',
        '--data',
        '{"peers":["10.99.99.99"]}',
        `127.0.0.1:6784${path}`,
      ]);
      expect(r.status, path).toBe(403);
      expect(errorCode(r), path).toBe('ERR_FORBIDDEN_ORIGIN');
    }
    const after = await refused();
    expect(after['host']! - before['host']!).toBe(1);
    expect(after['origin']! - before['origin']!).toBe(5);
    expect((await net.weft[0]!.report()).router.targets.map((t) => t.address).join(' ')).not.toContain('10.99.99.99');
    expect(readFileSync(join(net.weft[0]!.stateDir, 'weft.log'), 'utf8')).toMatch(
      /"reason":"ERR_FORBIDDEN_HOST".*"msg":"api request refused"/,
    );
  });

  it('refuses a DNS-rebinding read: a name of the attacker resolving to 127.0.0.1', async () => {
    const before = await refused();
    const rebound = await curl(h1(), ['--resolve', 'evil.example:6784:127.0.0.1', 'http://evil.example:6784/report']);
    expect(rebound.status).toBe(403);
    expect(errorCode(rebound)).toBe('ERR_FORBIDDEN_HOST');
    expect(rebound.body).not.toContain('"router"');
    const header = await curl(h1(), ['-H', 'Host: evil.example:6784', '127.0.0.1:6784/report']);
    expect(header.status).toBe(403);
    expect((await refused())['host']! - before['host']!).toBe(2);
  });

  it('answers GET to a state-changing route with 405, a text/plain POST with 415, and changes nothing', async () => {
    for (const path of ['/stop', '/ipam/reset', '/connect']) {
      const r = await curl(h1(), [`127.0.0.1:6784${path}`]);
      expect(r.status, path).toBe(405);
      expect(errorCode(r)).toBe('ERR_METHOD_NOT_ALLOWED');
    }
    const form = await curl(h1(), ['-XPOST', '--data', 'peers=10.99.99.98', '127.0.0.1:6784/connect']);
    expect(form.status).toBe(415);
    expect(errorCode(form)).toBe('ERR_UNSUPPORTED_MEDIA_TYPE');
    expect((await net.weft[0]!.report()).router.targets.map((t) => t.address).join(' ')).not.toContain('10.99.99.98');
  });

  it('keeps serving plain curl and the weft command: GET /report, JSON POSTs, localhost', async () => {
    expect((await curl(h1(), ['127.0.0.1:6784/report'])).status).toBe(200);
    expect((await curl(h1(), ['http://localhost:6784/version'])).status).toBe(200);
    const connect = await curl(h1(), [
      '-XPOST',
      '-H',
      'Content-Type: application/json',
      '--data',
      '{"peers":["10.99.99.97"]}',
      '127.0.0.1:6784/connect',
    ]);
    expect(connect.status).toBe(200);
    await net.weft[0]!.run(['forget', '10.99.99.97']);
    const status = await net.weft[0]!.run(['status']);
    expect(status).toMatch(/Encryption: disabled — anyone who reaches port 6783 can join and read traffic/);
    expect(status).toContain('Metrics: http://127.0.0.1:6782/metrics');
    // Launched without a password: said in the log.
    expect(readFileSync(join(net.weft[0]!.stateDir, 'weft.log'), 'utf8')).toContain('no password: traffic is not encrypted');
  });

  it('serves metrics on 127.0.0.1:6782 only (GET), not on the API port, and counts the refusals there', async () => {
    const metrics = await curl(h1(), ['127.0.0.1:6782/metrics']);
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/weft_api_requests_refused_total\{reason="origin"\} [1-9]/);
    expect(metrics.body).toMatch(/weft_api_requests_refused_total\{reason="host"\} [1-9]/);
    expect(metrics.body).toMatch(/weft_peers 1/);
    expect((await curl(h1(), ['127.0.0.1:6784/metrics'])).status).toBe(404);
    expect((await curl(h1(), ['-XPOST', '127.0.0.1:6782/metrics'])).status).toBe(405);
    expect((await curl(h1(), ['-XPOST', '127.0.0.1:6782/stop'])).status).toBe(404);
    expect((await curl(h1(), ['-XPOST', '-H', 'Content-Type: application/json', '--data', '{}', '127.0.0.1:6782/ipam/reset'])).status).toBe(
      404,
    );
    expect((await curl(h1(), ['127.0.0.1:6782/report'])).status).toBe(404);
  });

  it('a non-loopback API needs --allow-remote-api; then another machine reaches it by IP, never by a rebound name', async () => {
    const w2 = net.weft[1]!;
    const h1ToH2 = `${net.hosts.host(2).ip}:6784`;
    const refusedLaunch = await w2.launch(['--no-datapath', '--http-addr', '0.0.0.0:6784']).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    expect(refusedLaunch?.message).toMatch(/--http-addr 0.0.0.0:6784 is not a loopback address: .*--allow-remote-api/);
    expect(w2.pid()).toBeUndefined();

    await w2.launch(['--no-datapath', '--http-addr', '0.0.0.0:6784', '--allow-remote-api']);
    expect(readFileSync(join(w2.stateDir, 'weft.log'), 'utf8')).toMatch(
      /the API listens on 0.0.0.0:6784 \(--allow-remote-api\): anyone who reaches/,
    );
    expect((await curl(h1(), [`http://${h1ToH2}/version`])).status).toBe(200);
    const rebound = await curl(h1(), ['--resolve', `evil.example:6784:${net.hosts.host(2).ip}`, 'http://evil.example:6784/report']);
    expect(rebound.status).toBe(403);
    const page = await curl(h1(), ['-XPOST', '-H', 'Origin: http://evil.example', `http://${h1ToH2}/stop`]);
    expect(page.status).toBe(403);
    expect(isAlive(w2.pid()!)).toBe(true);
  });

  it.skipIf(!existsSync(chromiumPath))('a real page in headless chromium cannot stop, reset, connect, attach or read the API', async () => {
    const w = net.weft[0]!;
    const before = await refused();
    const endpointsBefore = (await w.report()).endpoints.length;
    const server = h1().spawn(process.execPath, [join(repoRoot, 'test/netns/fixtures/attack-page.mjs'), '0', '6784']);
    let serverOut = '';
    server.stdout?.on('data', (d) => (serverOut += String(d)));
    const profile = mkdtempSync(join(tmpdir(), 'weft-chromium-'));
    let browserErr = '';
    let browser: ReturnType<typeof spawn> | undefined;
    try {
      const port = await waitFor('the attack page to listen', () => /listening (\d+)/.exec(serverOut)?.[1], 15_000, 100);
      // nsenter execs chromium, so this pid is chromium's, and (detached) its process group is chromium's alone.
      browser = spawn(
        'nsenter',
        [
          `--net=${h1().path}`,
          chromiumPath,
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--disable-dev-shm-usage',
          `--user-data-dir=${profile}`,
          `http://127.0.0.1:${port}/`,
        ],
        { detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      browser.stderr?.on('data', (d) => (browserErr = (browserErr + String(d)).slice(-4000)));
      const done = await waitFor('the page to report what it saw', () => /done (.*)/.exec(serverOut)?.[1], 120_000, 250).catch(
        (err: unknown) => {
          throw new Error(`${(err as Error).message}\nchromium stderr (tail):\n${browserErr}`);
        },
      );
      const seen = JSON.parse(done!) as Record<string, string>;
      // The page could send, but not read: the CORS read failed (no CORS headers on a 403).
      expect(seen['report-cors']).toMatch(/^error:/);
      const after = await refused();
      const delta = (k: string) => after[k]! - before[k]!;
      // stop, ipam-reset, connect, attach, report-cors and the form POST carry Origin; the <img> and the no-cors GET
      // carry Sec-Fetch-Site.
      expect(delta('origin'), JSON.stringify({ before, after, seen })).toBeGreaterThanOrEqual(6);
      expect(delta('fetch_site'), JSON.stringify({ before, after, seen })).toBeGreaterThanOrEqual(2);
      const report = await w.report();
      expect(report.router.targets.map((t) => t.address).join(' ')).not.toContain('10.99.99.99');
      expect(report.endpoints.length).toBe(endpointsBefore);
      const metrics = await curl(h1(), ['127.0.0.1:6782/metrics']);
      expect(metrics.body).toContain(`weft_api_requests_refused_total{reason="origin"} ${after['origin']}`);
    } finally {
      if (browser?.pid !== undefined) {
        const exited = new Promise((r) => browser!.once('exit', r));
        try {
          process.kill(-browser.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        if (browser.exitCode === null && browser.signalCode === null)
          await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      }
      server.kill('SIGTERM');
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
