import { describe, expect, it } from 'vitest';
import type { AttachRequest, EndpointReport, Report } from '../api/control.js';
import { runPlugin, type DelegateOutcome, type NetnsLink, type PluginDaemon, type PluginDeps } from './plugin.js';

const netns = '/run/netns/c1';
const endpoint: EndpointReport = {
  target: netns,
  interface: 'eth0',
  mac: '02:aa:00:00:00:01',
  addresses: ['10.32.0.5/12'],
  containerId: 'ctr1',
  hostInterface: 'vethwl12345678',
};
const baseEnv = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr1', CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
const conf = (extra: Record<string, unknown> = {}) => ({ cniVersion: '1.0.0', name: 'weft', type: 'weft', ...extra });

class DaemonError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A recording daemon, namespace probe and delegate. */
function harness(
  options: {
    attach?: (r: AttachRequest) => Promise<EndpointReport>;
    detach?: () => Promise<boolean>;
    report?: () => Promise<Report>;
    exists?: boolean;
    link?: NetnsLink | undefined;
    delegate?: (command: string) => DelegateOutcome;
    routeFails?: boolean;
  } = {},
) {
  const calls: Array<[string, unknown]> = [];
  const daemon: PluginDaemon = {
    attach: (r) => {
      calls.push(['attach', r]);
      return options.attach ? options.attach(r) : Promise.resolve(endpoint);
    },
    detachContainer: (id, ifname) => {
      calls.push(['detachContainer', [id, ifname]]);
      return options.detach ? options.detach() : Promise.resolve(true);
    },
    report: () => {
      calls.push(['report', undefined]);
      return options.report ? options.report() : Promise.resolve({ endpoints: [endpoint] } as unknown as Report);
    },
  };
  const deps: PluginDeps = {
    daemon: (httpAddr) => {
      calls.push(['daemon', httpAddr]);
      return daemon;
    },
    delegate: async (type, path, env, stdin) => {
      calls.push(['delegate', { type, path, command: env['CNI_COMMAND'], stdin: stdin.toString() }]);
      if (!options.delegate) throw new Error('no delegate expected');
      return options.delegate(env['CNI_COMMAND']!);
    },
    netns: {
      exists: async () => options.exists ?? true,
      link: async () => ('link' in options ? options.link : { mac: endpoint.mac, isUp: true, addresses: endpoint.addresses }),
      addRoute: async (path, ifname, dst, gw) => {
        calls.push(['addRoute', [path, ifname, dst, gw]]);
        if (options.routeFails) throw new Error('RTNETLINK answers: Network is unreachable');
      },
    },
  };
  return { calls, deps };
}

async function invoke(env: Record<string, string | undefined>, stdin: unknown, deps: PluginDeps) {
  let stdout = '';
  let stderr = '';
  const code = await runPlugin(
    {
      env,
      stdin: async () => Buffer.from(typeof stdin === 'string' ? stdin : JSON.stringify(stdin)),
      stdout: { write: (t: string) => (stdout += t) },
      stderr: { write: (t: string) => (stderr += t) },
    },
    deps,
  );
  return { code, stdout, stderr, json: stdout.trim() === '' ? undefined : (JSON.parse(stdout) as Record<string, unknown>) };
}

describe('CNI ADD', () => {
  it('asks the daemon for the namespace, interface, container and an IPAM address, and answers the spec result', async () => {
    const h = harness();
    const out = await invoke(
      { ...baseEnv, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web-0' },
      conf({ dns: { nameservers: ['10.32.0.1'] } }),
      h.deps,
    );
    expect(out.code).toBe(0);
    expect(h.calls.find((c) => c[0] === 'attach')![1]).toEqual({
      target: netns,
      addresses: ['net:default'],
      ifname: 'eth0',
      containerId: 'ctr1',
      dnsName: 'web-0',
    });
    expect(out.json).toEqual({
      cniVersion: '1.0.0',
      interfaces: [{ name: 'vethwl12345678' }, { name: 'eth0', mac: '02:aa:00:00:00:01', sandbox: netns }],
      ips: [{ address: '10.32.0.5/12', interface: 1 }],
      dns: { nameservers: ['10.32.0.1'] },
    });
    expect(out.stderr).toBe('');
  });

  it('asks for the configured subnet and API address', async () => {
    const h = harness();
    await invoke(baseEnv, conf({ ipam: { type: 'weft', subnet: '10.32.8.0/24' }, httpAddr: '127.0.0.1:7000' }), h.deps);
    expect(h.calls[0]).toEqual(['daemon', '127.0.0.1:7000']);
    expect((h.calls.find((c) => c[0] === 'attach')![1] as AttachRequest).addresses).toEqual(['net:10.32.8.0/24']);
  });

  it('sends no DNS name for a K8S_POD_NAME that is not one, and says so on stderr', async () => {
    const h = harness();
    const out = await invoke({ ...baseEnv, CNI_ARGS: 'K8S_POD_NAME=busy_hamilton' }, conf(), h.deps);
    expect(out.code).toBe(0);
    expect((h.calls.find((c) => c[0] === 'attach')![1] as AttachRequest).dnsName).toBeUndefined();
    expect(out.stderr).toContain('not a DNS name');
  });

  it('appends to a prevResult when chained after another plugin, indexing its own interface', async () => {
    const h = harness();
    const prevResult = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'lo0', sandbox: netns }],
      ips: [{ address: '192.168.1.2/24', interface: 0 }],
    };
    const out = await invoke(baseEnv, conf({ prevResult }), h.deps);
    expect(out.json!['interfaces']).toEqual([
      { name: 'lo0', sandbox: netns },
      { name: 'vethwl12345678' },
      { name: 'eth0', mac: endpoint.mac, sandbox: netns },
    ]);
    expect(out.json!['ips']).toEqual([
      { address: '192.168.1.2/24', interface: 0 },
      { address: '10.32.0.5/12', interface: 2 },
    ]);
  });

  it('answers in the configuration\'s version: 0.4.0 ips carry "version"', async () => {
    const out = await invoke(baseEnv, conf({ cniVersion: '0.4.0' }), harness().deps);
    expect(out.json!['cniVersion']).toBe('0.4.0');
    expect(out.json!['ips']).toEqual([{ version: '4', address: '10.32.0.5/12', interface: 1 }]);
  });

  it('fails with code 3 for a namespace that does not exist, without asking the daemon', async () => {
    const h = harness({ exists: false });
    const out = await invoke(baseEnv, conf(), h.deps);
    expect(out.code).toBe(1);
    expect(out.json).toMatchObject({ cniVersion: '1.0.0', code: 3, msg: 'no such network namespace' });
    expect(h.calls.some((c) => c[0] === 'attach')).toBe(false);
  });

  it("maps the daemon's failures to CNI codes: not running 11, no namespace 3, interface exists 101, IPAM not ready 11, else 100", async () => {
    const cases: Array<[string, number]> = [
      ['ERR_NOT_RUNNING', 11],
      ['ERR_API_UNREACHABLE', 11],
      ['TARGET_NOT_FOUND', 3],
      ['ENDPOINT_EXISTS', 101],
      ['ERR_IPAM_NOT_READY', 11],
      ['ERR_IPAM_OWNER_UNREACHABLE', 11],
      ['ERR_IPAM_EXHAUSTED', 100],
    ];
    for (const [code, cni] of cases) {
      const out = await invoke(
        baseEnv,
        conf(),
        harness({ attach: () => Promise.reject(new DaemonError(code, `daemon says ${code}`)) }).deps,
      );
      expect(out.code).toBe(1);
      expect(out.json!['code'], code).toBe(cni);
      expect(String(out.json!['details'])).toContain(`daemon says ${code}`);
      expect(out.stderr).toContain(`daemon says ${code}`);
    }
  });

  it('delegates IPAM: runs the plugin with ADD and the same stdin, attaches its addresses, keeps its gateway and routes', async () => {
    const ipamResult = { cniVersion: '1.0.0', ips: [{ address: '10.1.0.5/16', gateway: '10.1.0.1' }], routes: [{ dst: '0.0.0.0/0' }] };
    const h = harness({
      attach: async (r) => ({ ...endpoint, addresses: r.addresses }),
      delegate: () => ({ exitCode: 0, stdout: JSON.stringify(ipamResult) }),
    });
    const stdin = conf({ ipam: { type: 'host-local', subnet: '10.1.0.0/16' } });
    const out = await invoke(baseEnv, stdin, h.deps);
    expect(out.code).toBe(0);
    expect(h.calls.find((c) => c[0] === 'delegate')![1]).toEqual({
      type: 'host-local',
      path: ['/opt/cni/bin'],
      command: 'ADD',
      stdin: JSON.stringify(stdin),
    });
    expect((h.calls.find((c) => c[0] === 'attach')![1] as AttachRequest).addresses).toEqual(['10.1.0.5/16']);
    expect(out.json!['ips']).toEqual([{ address: '10.1.0.5/16', gateway: '10.1.0.1', interface: 1 }]);
    expect(out.json!['routes']).toEqual([{ dst: '0.0.0.0/0' }]);
    // The IPAM plugin's route is applied in the container, via the subnet's gateway.
    expect(h.calls.find((c) => c[0] === 'addRoute')![1]).toEqual([netns, 'eth0', '0.0.0.0/0', '10.1.0.1']);
    const failing = harness({
      attach: async (r) => ({ ...endpoint, addresses: r.addresses }),
      delegate: () => ({ exitCode: 0, stdout: JSON.stringify(ipamResult) }),
      routeFails: true,
    });
    const failed = await invoke(baseEnv, stdin, failing.deps);
    expect(failed.json!['code']).toBe(100);
    expect(String(failed.json!['details'])).toContain('route 0.0.0.0/0 via 10.1.0.1');
  });

  it('reports the gateway the daemon set (the host exposed in the subnet) in ips and as the default route', async () => {
    const h = harness({ attach: async () => ({ ...endpoint, gateway: '10.32.0.1' }) });
    const out = await invoke(baseEnv, conf(), h.deps);
    expect(out.json!['ips']).toEqual([{ address: '10.32.0.5/12', gateway: '10.32.0.1', interface: 1 }]);
    expect(out.json!['routes']).toEqual([{ dst: '0.0.0.0/0', gw: '10.32.0.1' }]);
  });

  it("passes a delegated plugin's error object through, and gives back its address when the attach fails", async () => {
    const failing = harness({
      delegate: () => ({
        exitCode: 1,
        stdout: JSON.stringify({ cniVersion: '1.0.0', code: 7, msg: 'no range', details: 'subnet missing' }),
      }),
    });
    const out = await invoke(baseEnv, conf({ ipam: { type: 'host-local' } }), failing.deps);
    expect(out.json).toEqual({ cniVersion: '1.0.0', code: 7, msg: 'no range', details: 'subnet missing' });

    const commands: string[] = [];
    const h = harness({
      attach: () => Promise.reject(new DaemonError('INVALID_NETDEV_INPUT', 'bad')),
      delegate: (command) => {
        commands.push(command);
        return { exitCode: 0, stdout: command === 'ADD' ? JSON.stringify({ cniVersion: '1.0.0', ips: [{ address: '10.1.0.5/16' }] }) : '' };
      },
    });
    const failed = await invoke(baseEnv, conf({ ipam: { type: 'host-local' } }), h.deps);
    expect(failed.json!['code']).toBe(100);
    expect(commands).toEqual(['ADD', 'DEL']);
  });

  it('refuses a delegated result that is not a CNI result with code 103, and undoes it', async () => {
    const commands: string[] = [];
    const h = harness({
      delegate: (command) => {
        commands.push(command);
        return { exitCode: 0, stdout: command === 'ADD' ? '{"ips": [{"address": "nonsense"}]}' : '' };
      },
    });
    const out = await invoke(baseEnv, conf({ ipam: { type: 'host-local' } }), h.deps);
    expect(out.json!['code']).toBe(103);
    expect(commands).toEqual(['ADD', 'DEL']);
    const silent = await invoke(
      baseEnv,
      conf({ ipam: { type: 'host-local' } }),
      harness({ delegate: () => ({ exitCode: 2, stdout: '' }) }).deps,
    );
    expect(silent.json!['code']).toBe(103);
    expect(String(silent.json!['details'])).toContain('exited 2');
  });
});

describe('CNI DEL', () => {
  const delEnv = { ...baseEnv, CNI_COMMAND: 'DEL' };

  it('detaches by container id and interface, prints nothing, and succeeds when nothing was there', async () => {
    const h = harness({ detach: async () => false });
    const out = await invoke({ ...delEnv, CNI_NETNS: undefined }, conf(), h.deps);
    expect(out).toMatchObject({ code: 0, stdout: '' });
    expect(h.calls.find((c) => c[0] === 'detachContainer')![1]).toEqual(['ctr1', 'eth0']);
  });

  it('fails with code 11 when the daemon is not running (the address could not be freed: the runtime retries)', async () => {
    const out = await invoke(
      delEnv,
      conf(),
      harness({ detach: () => Promise.reject(new DaemonError('ERR_NOT_RUNNING', 'weft is not running on 127.0.0.1:6784')) }).deps,
    );
    expect(out.json).toMatchObject({ code: 11, msg: 'weft is not running' });
  });

  it("runs the delegated IPAM plugin's DEL too", async () => {
    const commands: string[] = [];
    const h = harness({
      delegate: (command) => {
        commands.push(command);
        return { exitCode: 0, stdout: '' };
      },
    });
    expect((await invoke(delEnv, conf({ ipam: { type: 'host-local' } }), h.deps)).code).toBe(0);
    expect(commands).toEqual(['DEL']);
  });
});

describe('CNI CHECK', () => {
  const checkEnv = { ...baseEnv, CNI_COMMAND: 'CHECK' };
  const prevResult = {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'vethwl12345678' }, { name: 'eth0', mac: endpoint.mac, sandbox: netns }],
    ips: [{ address: '10.32.0.5/12', interface: 1 }],
  };

  it('passes silently when the interface is there, up, with its MAC and addresses, and the daemon has it', async () => {
    const out = await invoke(checkEnv, conf({ prevResult }), harness().deps);
    expect(out).toMatchObject({ code: 0, stdout: '' });
  });

  it('fails with code 102 naming what differs', async () => {
    const cases: Array<[Parameters<typeof harness>[0], string]> = [
      [{ link: undefined }, 'no interface eth0'],
      [{ link: { mac: endpoint.mac, isUp: false, addresses: endpoint.addresses } }, 'is down'],
      [{ link: { mac: '02:bb:00:00:00:01', isUp: true, addresses: endpoint.addresses } }, 'has MAC 02:bb:00:00:00:01'],
      [{ link: { mac: endpoint.mac, isUp: true, addresses: [] } }, 'lacks 10.32.0.5/12'],
      [{ report: async () => ({ endpoints: [] }) as unknown as Report }, 'weft has no endpoint for container ctr1'],
    ];
    for (const [options, text] of cases) {
      const out = await invoke(checkEnv, conf({ prevResult }), harness(options).deps);
      expect(out.json!['code'], text).toBe(102);
      expect(String(out.json!['details'])).toContain(text);
    }
  });

  it('needs a prevResult that lists the interface (7, 102), cniVersion 0.4.0 or later (1), and an existing namespace (3)', async () => {
    expect((await invoke(checkEnv, conf(), harness().deps)).json!['code']).toBe(7);
    expect(
      (
        await invoke(
          checkEnv,
          conf({ prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'eth9', sandbox: netns }] } }),
          harness().deps,
        )
      ).json!['code'],
    ).toBe(102);
    const old = await invoke(checkEnv, conf({ cniVersion: '0.3.1', prevResult }), harness().deps);
    expect(old.json).toMatchObject({ cniVersion: '0.3.1', code: 1 });
    expect((await invoke(checkEnv, conf({ prevResult }), harness({ exists: false }).deps)).json!['code']).toBe(3);
  });

  it('fails with 11 when the daemon it depends on is not running', async () => {
    const out = await invoke(
      checkEnv,
      conf({ prevResult }),
      harness({ report: () => Promise.reject(new DaemonError('ERR_NOT_RUNNING', 'not running')) }).deps,
    );
    expect(out.json!['code']).toBe(11);
  });
});

describe('CNI VERSION and input errors', () => {
  it('answers VERSION without touching the daemon', async () => {
    const h = harness();
    const out = await invoke({ CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' }, h.deps);
    expect(out.json).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] });
    expect(h.calls).toEqual([]);
  });

  it('reports a stdin read failure as code 5', async () => {
    let stdout = '';
    const code = await runPlugin(
      {
        env: baseEnv,
        stdin: () => Promise.reject(new Error('EIO')),
        stdout: { write: (t: string) => (stdout += t) },
        stderr: { write: () => true },
      },
      harness().deps,
    );
    expect(code).toBe(1);
    expect(JSON.parse(stdout)).toMatchObject({ code: 5, msg: 'cannot read stdin' });
  });

  it("answers every error with exactly the spec's keys and the input's cniVersion", async () => {
    const out = await invoke({ ...baseEnv, CNI_IFNAME: undefined }, conf({ cniVersion: '0.4.0' }), harness().deps);
    expect(Object.keys(out.json!).sort()).toEqual(['cniVersion', 'code', 'details', 'msg']);
    expect(out.json).toMatchObject({ cniVersion: '0.4.0', code: 4 });
  });
});
