import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  CniError,
  CniErrorCode,
  compareVersions,
  dnsNameOf,
  encodeResult,
  errorResult,
  MAX_STDIN_BYTES,
  parseCniArgs,
  parseEnvironment,
  parseNetConf,
  parseResult,
  SUPPORTED_VERSIONS,
  versionOfInput,
  versionResult,
} from './spec.js';

const addEnv = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'abc123',
  CNI_NETNS: '/run/netns/c1',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
};
const conf = (extra: Record<string, unknown> = {}) =>
  Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'weft', type: 'weft', ...extra }));

function cniCode(f: () => unknown): number {
  try {
    f();
  } catch (err) {
    if (err instanceof CniError) return err.cniCode;
    throw err;
  }
  throw new Error('did not throw');
}

describe('CNI environment', () => {
  it('reads every variable of an ADD', () => {
    const env = parseEnvironment({ ...addEnv, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web-0' });
    expect(env).toEqual({
      command: 'ADD',
      containerId: 'abc123',
      netns: '/run/netns/c1',
      ifname: 'eth0',
      args: new Map([
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAME', 'web-0'],
      ]),
      path: ['/opt/cni/bin', '/usr/lib/cni'],
    });
  });

  it('needs only CNI_COMMAND for VERSION', () => {
    expect(parseEnvironment({ CNI_COMMAND: 'VERSION' }).command).toBe('VERSION');
  });

  it('lets DEL go without CNI_NETNS (the namespace may be gone), but not ADD or CHECK', () => {
    expect(parseEnvironment({ ...addEnv, CNI_COMMAND: 'DEL', CNI_NETNS: '' }).netns).toBeUndefined();
    expect(cniCode(() => parseEnvironment({ ...addEnv, CNI_NETNS: undefined }))).toBe(4);
    expect(cniCode(() => parseEnvironment({ ...addEnv, CNI_COMMAND: 'CHECK', CNI_NETNS: undefined }))).toBe(4);
  });

  it('refuses each missing or malformed variable with code 4, naming it', () => {
    const cases: Array<[Record<string, string | undefined>, string]> = [
      [{ ...addEnv, CNI_COMMAND: undefined }, 'CNI_COMMAND'],
      [{ ...addEnv, CNI_COMMAND: 'GC' }, 'CNI_COMMAND'],
      [{ ...addEnv, CNI_CONTAINERID: '' }, 'CNI_CONTAINERID'],
      [{ ...addEnv, CNI_CONTAINERID: '-leading-dash' }, 'CNI_CONTAINERID'],
      [{ ...addEnv, CNI_CONTAINERID: 'a'.repeat(129) }, 'CNI_CONTAINERID'],
      [{ ...addEnv, CNI_CONTAINERID: 'has space' }, 'CNI_CONTAINERID'],
      [{ ...addEnv, CNI_IFNAME: undefined }, 'CNI_IFNAME'],
      [{ ...addEnv, CNI_IFNAME: 'sixteen-chars-xx' }, 'CNI_IFNAME'],
      [{ ...addEnv, CNI_IFNAME: 'eth/0' }, 'CNI_IFNAME'],
      [{ ...addEnv, CNI_NETNS: 'relative/path' }, 'CNI_NETNS'],
      [{ ...addEnv, CNI_ARGS: 'novalue' }, 'CNI_ARGS'],
      [{ ...addEnv, CNI_ARGS: '=x' }, 'CNI_ARGS'],
      [{ ...addEnv, CNI_PATH: Array.from({ length: 65 }, (_, i) => `/d${i}`).join(':') }, 'CNI_PATH'],
    ];
    for (const [env, name] of cases) {
      try {
        parseEnvironment(env);
        throw new Error(`accepted ${JSON.stringify(env)}`);
      } catch (err) {
        expect(err).toBeInstanceOf(CniError);
        expect((err as CniError).cniCode).toBe(CniErrorCode.invalidEnvironment);
        expect((err as CniError).msg).toContain(name);
      }
    }
  });

  it('limits CNI_ARGS in length and pairs', () => {
    expect(cniCode(() => parseCniArgs('K=' + 'v'.repeat(9000)))).toBe(4);
    expect(cniCode(() => parseCniArgs(Array.from({ length: 65 }, (_, i) => `K${i}=v`).join(';')))).toBe(4);
    expect(parseCniArgs('A=1;;B=x=y;')).toEqual(
      new Map([
        ['A', '1'],
        ['B', 'x=y'],
      ]),
    );
  });

  it('takes a DNS name from K8S_POD_NAME only when it is one (podman names may hold "_")', () => {
    expect(dnsNameOf(new Map([['K8S_POD_NAME', 'Web-0']]))).toBe('web-0');
    expect(dnsNameOf(new Map([['K8S_POD_NAME', 'busy_hamilton']]))).toBeUndefined();
    expect(dnsNameOf(new Map([['K8S_POD_NAME', 'a'.repeat(64)]]))).toBeUndefined();
    expect(dnsNameOf(new Map())).toBeUndefined();
  });
});

describe('CNI network configuration', () => {
  it('reads the fields weft uses, with defaults', () => {
    const c = parseNetConf(conf({ dns: { nameservers: ['10.32.0.1'] }, extra: { kept: true } }));
    expect(c).toMatchObject({
      cniVersion: '1.0.0',
      name: 'weft',
      type: 'weft',
      ipam: undefined,
      httpAddr: '127.0.0.1:6784',
      prevResult: undefined,
    });
    expect(c.dns).toEqual({ nameservers: ['10.32.0.1'] });
    expect(c.raw['extra']).toEqual({ kept: true });
    expect(parseNetConf(conf({ ipam: { type: 'weft', subnet: '10.32.8.0/24' } })).ipam).toEqual({ type: 'weft', subnet: '10.32.8.0/24' });
    expect(parseNetConf(conf({ ipam: { type: 'host-local', subnet: 'x' } })).ipam).toEqual({ type: 'host-local' });
    expect(parseNetConf(conf({ httpAddr: '127.0.0.1:7000' })).httpAddr).toBe('127.0.0.1:7000');
  });

  it('speaks every supported version, and refuses others with code 1 naming what it speaks', () => {
    for (const v of SUPPORTED_VERSIONS) expect(parseNetConf(conf({ cniVersion: v })).cniVersion).toBe(v);
    for (const v of ['0.2.0', '0.1.0', '1.1.0', '2.0.0', 1]) {
      try {
        parseNetConf(conf({ cniVersion: v }));
        throw new Error(`accepted ${String(v)}`);
      } catch (err) {
        expect((err as CniError).cniCode).toBe(1);
        expect((err as CniError).details).toContain('0.3.0, 0.3.1, 0.4.0, 1.0.0');
      }
    }
  });

  it('refuses what is not a JSON object with code 6, and oversized input', () => {
    for (const bad of ['', 'not json', '[1,2]', 'null', '"s"', '{"cniVersion": '])
      expect(cniCode(() => parseNetConf(Buffer.from(bad)))).toBe(6);
    expect(cniCode(() => parseNetConf(Buffer.alloc(MAX_STDIN_BYTES + 1, 0x20)))).toBe(6);
  });

  it('refuses missing or malformed fields with code 7 naming them, and ipMasq with code 2 naming key and value', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ cniVersion: undefined }, 'cniVersion'],
      [{ name: undefined }, 'name'],
      [{ name: '' }, 'name'],
      [{ name: '-x' }, 'name'],
      [{ type: undefined }, 'type'],
      [{ type: '../weft' }, 'type'],
      [{ ipam: 'host-local' }, 'ipam'],
      [{ ipam: { type: '' } }, 'ipam.type'],
      [{ ipam: { type: '/bin/sh' } }, 'ipam.type'],
      [{ ipam: { type: 'weft', subnet: 'fd00::/64' } }, 'ipam.subnet'],
      [{ httpAddr: 'localhost' }, 'httpAddr'],
      [{ httpAddr: '127.0.0.1:70000' }, 'httpAddr'],
      [{ dns: { nameservers: ['not-an-ip'] } }, 'dns.nameservers'],
      [{ dns: [] }, 'dns'],
    ];
    for (const [extra, field] of cases) {
      try {
        parseNetConf(conf(extra));
        throw new Error(`accepted ${JSON.stringify(extra)}`);
      } catch (err) {
        expect((err as CniError).cniCode, JSON.stringify(extra)).toBe(7);
        expect(`${(err as CniError).msg} ${(err as CniError).details}`).toContain(field);
      }
    }
    try {
      parseNetConf(conf({ ipMasq: true }));
      throw new Error('accepted ipMasq');
    } catch (err) {
      expect((err as CniError).cniCode).toBe(2);
      expect((err as CniError).details).toContain('"ipMasq": true');
    }
  });

  it('never throws anything but CniError, whatever the bytes', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.json().map((s) => new TextEncoder().encode(s)),
        ),
        (bytes) => {
          try {
            parseNetConf(Buffer.from(bytes));
          } catch (err) {
            expect(err).toBeInstanceOf(CniError);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('CNI results', () => {
  const result = {
    interfaces: [{ name: 'vethwl00000001' }, { name: 'eth0', mac: '02:00:00:00:00:01', sandbox: '/run/netns/c1' }],
    ips: [{ address: '10.32.0.5/12', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.32.0.1' }],
    dns: { nameservers: ['10.32.0.1'] },
  };

  it('encodes 1.0.0 without per-ip version, and earlier versions with it', () => {
    expect(encodeResult(result, '1.0.0')).toEqual({ cniVersion: '1.0.0', ...result });
    for (const v of ['0.3.0', '0.3.1', '0.4.0'] as const) {
      const encoded = encodeResult(result, v);
      expect(encoded['cniVersion']).toBe(v);
      expect(encoded['ips']).toEqual([{ version: '4', address: '10.32.0.5/12', interface: 1 }]);
    }
    expect(encodeResult({ ips: [{ address: 'fd00::5/64' }] }, '0.4.0')['ips']).toEqual([{ version: '6', address: 'fd00::5/64' }]);
  });

  it('reads back what it encodes, in every version', () => {
    for (const v of SUPPORTED_VERSIONS) expect(parseResult(encodeResult(result, v), 'prevResult')).toEqual(result);
  });

  it("reads an IPAM plugin's abbreviated result (no interfaces, no interface index)", () => {
    expect(
      parseResult(
        { cniVersion: '1.0.0', ips: [{ address: '10.1.0.5/16', gateway: '10.1.0.1' }], routes: [{ dst: '0.0.0.0/0' }] },
        'IPAM result',
      ),
    ).toEqual({
      ips: [{ address: '10.1.0.5/16', gateway: '10.1.0.1' }],
      routes: [{ dst: '0.0.0.0/0' }],
    });
  });

  it("refuses results that break the spec's shapes with code 6, naming the field", () => {
    const cases: Array<[unknown, string]> = [
      [[], 'prevResult'],
      [{ interfaces: 'eth0' }, 'interfaces'],
      [{ interfaces: [{ mac: 'x' }] }, 'interfaces[0]'],
      [{ ips: [{ address: '10.0.0.1' }] }, 'ips[0].address'],
      [{ ips: [{ address: '10.0.0.1/33' }] }, 'ips[0].address'],
      [{ ips: [{ address: '10.0.0.1/24', interface: 0 }] }, 'ips[0].interface'],
      [{ ips: [{ address: '10.0.0.1/24', gateway: 'gw' }] }, 'ips[0].gateway'],
      [{ routes: [{ dst: 'default' }] }, 'routes[0].dst'],
      [{ ips: Array.from({ length: 257 }, () => ({ address: '10.0.0.1/24' })) }, 'ips'],
    ];
    for (const [value, field] of cases) {
      try {
        parseResult(value, 'prevResult');
        throw new Error(`accepted ${JSON.stringify(value)}`);
      } catch (err) {
        expect((err as CniError).cniCode, JSON.stringify(value)).toBe(6);
        expect((err as CniError).details).toContain(field);
      }
    }
  });
});

describe('CNI version and error objects', () => {
  it('answers VERSION with the input cniVersion (1.0.0 for none) and the supported list', () => {
    expect(versionResult(Buffer.from('{"cniVersion":"0.3.1"}'))).toEqual({
      cniVersion: '0.3.1',
      supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'],
    });
    expect(versionResult(Buffer.from(''))).toEqual({ cniVersion: '1.0.0', supportedVersions: [...SUPPORTED_VERSIONS] });
    expect(cniCode(() => versionResult(Buffer.from('{')))).toBe(6);
    expect(cniCode(() => versionResult(Buffer.from('{"cniVersion": 7}')))).toBe(6);
  });

  it("puts the input's cniVersion in error objects when it has one", () => {
    expect(versionOfInput('{"cniVersion":"0.4.0"}')).toBe('0.4.0');
    expect(versionOfInput('{"cniVersion":"banana"}')).toBe('1.0.0');
    expect(versionOfInput('garbage')).toBe('1.0.0');
    expect(errorResult(new CniError(7, 'bad', 'worse'), '0.4.0')).toEqual({ cniVersion: '0.4.0', code: 7, msg: 'bad', details: 'worse' });
    expect(errorResult(new Error('boom'), '1.0.0')).toEqual({ cniVersion: '1.0.0', code: 100, msg: 'weft plugin failed', details: 'boom' });
  });

  it('orders versions numerically', () => {
    expect(compareVersions('0.10.0', '0.4.0')).toBe(1);
    expect(compareVersions('0.3.1', '0.4.0')).toBe(-1);
    expect(compareVersions('1.0.0', '1.0.0')).toBe(0);
  });
});
