/**
 * The weftDNS commands against a real API with a fake daemon: what reaches the daemon, what is printed, exit codes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './program.js';
import { createApiServer, type ApiServer } from '../api/server.js';
import { FakeControl, sampleReport } from '../api/fake-control.js';
import { silentLogger } from '../runtime/logger.js';
import { formatDns } from './dns-format.js';
import type { Report } from '../api/control.js';

async function weft(argv: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    exit: () => undefined,
    env,
  });
  return { code, stdout, stderr };
}

function withDns(): Report {
  return {
    ...sampleReport(),
    dns: {
      domain: 'weft.local.',
      listen: '10.32.0.1:53',
      ttlSeconds: 1,
      upstream: ['192.0.2.53'],
      records: [
        { name: 'web.weft.local.', address: '10.32.0.6', owner: '02:00:00:00:00:02', nickname: 'h2', version: 2, isTombstone: false },
        { name: 'db.weft.local.', address: '10.32.0.7', owner: '02:00:00:00:00:01', nickname: 'h1', version: 1, isTombstone: false },
      ],
      counters: {},
    },
  };
}

describe('weft dns commands', () => {
  let control: FakeControl;
  let server: ApiServer;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    control = new FakeControl(withDns());
    server = await createApiServer(control, silentLogger, '127.0.0.1:0');
    env = { WEFT_HTTP_ADDR: server.httpAddr, WEFT_STATE_DIR: '/nonexistent/weft-test' };
  });
  afterAll(async () => {
    await server.close();
  });

  it('dns-add, dns-remove, attach --name reach the daemon with what was typed', async () => {
    control.calls.length = 0;
    expect(await weft(['dns-add', '10.32.0.5', 'fd00::5', 'web'], env)).toMatchObject({ code: 0, stdout: 'web.weft.local.\n' });
    expect(await weft(['dns-remove', '10.32.0.5', 'web'], env)).toMatchObject({ code: 0, stdout: '1 record removed\n' });
    expect(await weft(['dns-remove', 'web'], env)).toMatchObject({ code: 0 });
    expect((await weft(['attach', '--netns', 'c1', '--name', 'db'], env)).code).toBe(0);
    expect(control.calls.map((c) => [c.method, ...c.args])).toEqual([
      ['dnsAdd', 'web', ['10.32.0.5', 'fd00::5']],
      ['dnsRemove', 'web', ['10.32.0.5']],
      ['dnsRemove', 'web', []],
      ['attach', { target: 'c1', addresses: ['net:default'], name: 'db' }],
    ]);
  });

  it('dns-lookup prints one address per line, and exits 1 when there are none', async () => {
    expect(await weft(['dns-lookup', 'web'], env)).toMatchObject({ code: 0, stdout: '10.32.0.5\n10.32.0.6\n' });
    expect(await weft(['dns-lookup', 'nobody'], env)).toMatchObject({ code: 1, stdout: '', stderr: 'weft: no addresses for nobody\n' });
  });

  it('dns-args prints the docker run flags; status dns lists records with their owners', async () => {
    expect((await weft(['dns-args'], env)).stdout).toBe('--dns 10.32.0.1 --dns-search weft.local\n');
    const status = (await weft(['status', 'dns'], env)).stdout;
    expect(status).toBe(formatDns(withDns()));
    expect(status).toMatch(/db\.weft\.local\.\s+10\.32\.0\.7\s+02:00:00:00:00:01 \(h1\)\n/);
    expect(status.indexOf('db.weft.local.')).toBeLessThan(status.indexOf('web.weft.local.'));
    expect(JSON.parse((await weft(['status', 'dns', '--json'], env)).stdout)).toEqual(withDns().dns);
    expect((await weft(['status'], env)).stdout).toMatch(
      /Service: dns\n\s+Domain: weft\.local\.\n\s+Listen: 10\.32\.0\.1:53\n\s+Upstream: 192\.0\.2\.53\n\s+TTL: 1\n\s+Entries: 2\n/,
    );
  });

  it('refuses misuse with exit 2 before calling the daemon', async () => {
    control.calls.length = 0;
    for (const [argv, expected] of [
      [['dns-add', 'web'], 'give at least one ADDR'],
      [['dns-add', '10.32.0', 'web'], 'is not an address'],
      [['dns-add', '10.32.0.5', 'bad name'], 'is not a name'],
      [['dns-lookup', '10.32.0.5'], 'is not a name'],
      [['attach', '--netns', 'c1', '--name', 'a..b'], 'is not a name'],
    ] as const) {
      const r = await weft([...argv], env);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr).toContain(expected);
    }
    expect(control.calls.filter((c) => c.method !== 'report')).toEqual([]);
  });
});
