import { describe, expect, it } from 'vitest';
import { ConfigError, parseCidr, parsePeerAddress, resolveClientConfig, resolveConfig, type ConfigSources } from './launch.js';

const KEY1 = Buffer.alloc(32, 1).toString('base64');
const KEY2 = Buffer.alloc(32, 2).toString('base64');
const sources: ConfigSources = {
  readFile: (path) => {
    if (path === '/secret') return 'hunter2\n';
    if (path === '/empty') return '\n';
    if (path === '/peers') return `# ours\n${KEY1} h1\n${KEY2}\n`;
    if (path === '/bad-peers') return `${KEY1}\nnot-a-key\n`;
    throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
  },
  hostname: () => 'box1',
};

const resolve = (argv: string[], env: NodeJS.ProcessEnv = {}) => resolveConfig(argv, env, sources);

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('ERR_CONFIG');
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('resolveConfig: identities', () => {
  it('keeps the identity in the state dir unless told otherwise', () => {
    expect(resolve([]).identityFile).toBe('/var/lib/weft/identity');
    expect(resolve(['--state-dir', '/s']).identityFile).toBe('/s/identity');
    expect(resolve([], { WEFT_IDENTITY_FILE: '/k' }).identityFile).toBe('/k');
    expect(resolve(['--identity-file', '/f'], { WEFT_IDENTITY_FILE: '/k' }).identityFile).toBe('/f');
    expect(configError(() => resolve(['--identity-file', ''])).message).toContain('empty');
  });

  it('reads --authorized-peers (with a password only), and names the file and line of a bad key', () => {
    expect(resolve([], { WEFT_PASSWORD: 'x' }).authorizedPeers).toBeUndefined();
    expect(resolve(['--authorized-peers', '/peers'], { WEFT_PASSWORD: 'x' }).authorizedPeers).toEqual([KEY1, KEY2]);
    expect(resolve([], { WEFT_PASSWORD: 'x', WEFT_AUTHORIZED_PEERS: '/peers' }).authorizedPeers).toEqual([KEY1, KEY2]);
    expect(configError(() => resolve(['--authorized-peers', '/peers'])).message).toMatch(/needs a password/);
    expect(configError(() => resolve(['--authorized-peers', '/bad-peers'], { WEFT_PASSWORD: 'x' })).message).toMatch(
      /\/bad-peers line 2: "not-a-key" is not a public key/,
    );
    expect(configError(() => resolve(['--authorized-peers', '/missing'], { WEFT_PASSWORD: 'x' })).message).toMatch(
      /cannot read the authorized peers file \/missing .*ENOENT/,
    );
  });
});

describe('resolveConfig', () => {
  it('gives the documented defaults with no flags and no environment', () => {
    const c = resolve([]);
    expect(c).toMatchObject({
      stateDir: '/var/lib/weft',
      httpAddr: '127.0.0.1:6784',
      httpHost: '127.0.0.1',
      httpPort: 6784,
      port: 6783,
      listenAddr: '0.0.0.0',
      nickname: 'box1',
      password: undefined,
      hasPassword: false,
      isDiscoveryEnabled: true,
      bridge: 'weft',
      mtuBytes: undefined,
      trustedSubnets: [],
      ipallocRange: '10.32.0.0/12',
      ipallocDefaultSubnet: '10.32.0.0/12',
      ipallocInit: { mode: 'consensus', quorum: 1 },
      logLevel: 'info',
      busyPollMicros: 200,
      captureMode: 'tap',
      segmentMode: 'auto',
      isOffloadEnabled: true,
      isFastdpEnabled: true,
      isDatapathEnabled: true,
      isForeground: false,
      peers: [],
      isRemoteApiAllowed: false,
      metricsAddr: '127.0.0.1:6782',
    });
    expect(c.warnings).toEqual([
      'no password: traffic is not encrypted and anyone who reaches port 6783 can join the network and read it; set WEFT_PASSWORD or --password-file',
    ]);
  });

  it('returns a deeply frozen object', () => {
    const c = resolve(['--trusted-subnets', '10.0.0.0/8', 'h2']);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.trustedSubnets)).toBe(true);
    expect(Object.isFrozen(c.ipallocInit)).toBe(true);
  });

  it('lets WEFT_* variables override defaults and flags override variables', () => {
    const env = { WEFT_STATE_DIR: '/env/state', WEFT_PORT: '7000', WEFT_HTTP_ADDR: '127.0.0.2:7001', WEFT_NICKNAME: 'envnick' };
    expect(resolve([], env)).toMatchObject({ stateDir: '/env/state', port: 7000, httpAddr: '127.0.0.2:7001', nickname: 'envnick' });
    const c = resolve(['--state-dir', '/flag/state', '--port=7100', '--nickname', 'flagnick'], env);
    expect(c).toMatchObject({ stateDir: '/flag/state', port: 7100, httpAddr: '127.0.0.2:7001', nickname: 'flagnick' });
  });

  it('reads boolean switches from flags and from 1/0 variables', () => {
    expect(resolve(['--no-discovery', '--no-datapath', '--foreground'])).toMatchObject({
      isDiscoveryEnabled: false,
      isDatapathEnabled: false,
      isForeground: true,
    });
    expect(resolve([], { WEFT_NO_DISCOVERY: '1', WEFT_NO_DATAPATH: 'true' })).toMatchObject({
      isDiscoveryEnabled: false,
      isDatapathEnabled: false,
    });
    expect(resolve([], { WEFT_NO_DISCOVERY: '0' }).isDiscoveryEnabled).toBe(true);
    expect(resolve(['--no-offload']).isOffloadEnabled).toBe(false);
    expect(resolve(['--no-fastdp']).isFastdpEnabled).toBe(false);
    expect(resolve([], { WEFT_NO_FASTDP: '1' }).isFastdpEnabled).toBe(false);
    expect(resolve([], { WEFT_NO_OFFLOAD: '1' }).isOffloadEnabled).toBe(false);
    expect(configError(() => resolve([], { WEFT_NO_DISCOVERY: 'maybe' })).message).toContain('WEFT_NO_DISCOVERY');
  });

  it('takes peers as positionals anywhere among the flags and counts them into the default quorum', () => {
    const c = resolve(['10.0.0.2', '--nickname', 'h1', 'h3.example:7000', '[fd00::2]:6783', 'fd00::3']);
    expect(c.peers).toEqual(['10.0.0.2', 'h3.example:7000', '[fd00::2]:6783', 'fd00::3']);
    expect(c.ipallocInit).toEqual({ mode: 'consensus', quorum: 5 });
  });

  it('refuses bad peer addresses, naming the value', () => {
    for (const bad of ['10.0.0.2:99999', '10.1', 'host:port', 'under_score', '10.0.0.2:0', '']) {
      expect(configError(() => resolve([bad])).message).toContain(JSON.stringify(bad));
    }
  });

  it('refuses unknown flags and flags without a value, with the usage in the hint', () => {
    const e = configError(() => resolve(['--frobnicate']));
    expect(e.message).toBe('unknown option --frobnicate');
    expect(e.hint).toContain('Usage: weft launch [options] [PEER...]');
    expect(configError(() => resolve(['--port'])).message).toContain('--port');
  });

  it('validates ports, addresses, MTU, bridge, log level', () => {
    expect(configError(() => resolve(['--port', '0'])).message).toContain('--port "0" is not a port');
    expect(configError(() => resolve([], { WEFT_PORT: 'abc' })).message).toContain('WEFT_PORT');
    expect(configError(() => resolve(['--http-addr', '127.0.0.1'])).message).toContain('host:port');
    expect(configError(() => resolve(['--http-addr', 'bad host:80'])).message).toContain('--http-addr');
    expect(configError(() => resolve(['--listen-addr', '300.1.1.1'])).message).toContain('--listen-addr');
    expect(configError(() => resolve(['--mtu', '100'])).message).toContain('576');
    expect(configError(() => resolve(['--bridge', 'a-very-long-bridge-name'])).message).toContain('15');
    expect(configError(() => resolve(['--log-level', 'loud'])).message).toContain('trace');
    expect(resolve(['--mtu', '1400', '--listen-addr', '::', '--http-addr', '[::1]:0', '--log-level', 'debug'])).toMatchObject({
      mtuBytes: 1400,
      listenAddr: '::',
      httpAddr: '[::1]:0',
      httpHost: '::1',
      httpPort: 0,
      logLevel: 'debug',
    });
    expect(resolve(['--mtu', 'auto']).mtuBytes).toBeUndefined();
  });

  it('normalises trusted subnets and the IPAM range and checks the default subnet lies inside', () => {
    const c = resolve([
      '--trusted-subnets',
      '10.1.2.3/16, 192.168.0.0/24',
      '--ipalloc-range',
      '10.40.0.0/16',
      '--ipalloc-default-subnet',
      '10.40.1.0/24',
    ]);
    expect(c.trustedSubnets).toEqual(['10.1.0.0/16', '192.168.0.0/24']);
    expect(c.ipallocRange).toBe('10.40.0.0/16');
    expect(c.ipallocDefaultSubnet).toBe('10.40.1.0/24');
    expect(configError(() => resolve(['--ipalloc-range', '10.40.0.0/16', '--ipalloc-default-subnet', '10.41.0.0/24'])).message).toContain(
      'not inside the IPAM range',
    );
    expect(configError(() => resolve(['--trusted-subnets', '10.0.0.0/33'])).message).toContain('10.0.0.0/33');
    expect(configError(() => resolve(['--ipalloc-range', '10.0.0/8'])).message).toContain('CIDR');
  });

  it("turns IPAM off with --ipalloc-range ''", () => {
    const c = resolve(['--ipalloc-range', '']);
    expect(c.ipallocRange).toBeUndefined();
    expect(c.ipallocDefaultSubnet).toBeUndefined();
    expect(configError(() => resolve(['--ipalloc-range=', '--ipalloc-default-subnet', '10.0.0.0/8'])).message).toContain('needs IPAM');
  });

  it('parses the three --ipalloc-init modes', () => {
    expect(resolve(['--ipalloc-init', 'consensus=3']).ipallocInit).toEqual({ mode: 'consensus', quorum: 3 });
    expect(resolve(['--ipalloc-init', 'consensus', 'a', 'b']).ipallocInit).toEqual({ mode: 'consensus', quorum: 3 });
    expect(resolve(['--ipalloc-init', 'seed=00:00:00:00:00:01,7A:3B:01:22:C4:9E']).ipallocInit).toEqual({
      mode: 'seed',
      seeds: ['00:00:00:00:00:01', '7a:3b:01:22:c4:9e'],
    });
    expect(configError(() => resolve(['--ipalloc-init', 'seed=host2'])).message).toContain('peer names');
    expect(resolve(['--ipalloc-init', 'observer']).ipallocInit).toEqual({ mode: 'observer' });
    expect(configError(() => resolve(['--ipalloc-init', 'consensus=0'])).message).toContain('quorum');
    expect(configError(() => resolve(['--ipalloc-init', 'seed='])).message).toContain('seed');
    expect(configError(() => resolve(['--ipalloc-init', 'paxos'])).message).toContain('consensus[=N]');
  });

  it('takes the rekey interval in seconds and refuses nonsense', () => {
    expect(resolveConfig([], {}, sources).rekeyIntervalMs).toBe(120_000);
    expect(resolveConfig(['--rekey-interval', '3'], {}, sources).rekeyIntervalMs).toBe(3000);
    expect(resolveConfig([], { WEFT_REKEY_INTERVAL: '2.5' }, sources).rekeyIntervalMs).toBe(2500);
    expect(() => resolveConfig(['--rekey-interval', '0'], {}, sources)).toThrow(/rekey interval/);
  });

  it('takes the busy-poll window in microseconds, 0 turning it off, and refuses nonsense', () => {
    expect(resolveConfig(['--busy-poll', '0'], {}, sources).busyPollMicros).toBe(0);
    expect(resolveConfig([], { WEFT_BUSY_POLL: '50' }, sources).busyPollMicros).toBe(50);
    for (const bad of ['-1', '1.5', 'fast', '100001']) {
      expect(() => resolveConfig([`--busy-poll=${bad}`], {}, sources)).toThrow(/busy-poll window: .*--busy-poll 200/);
    }
  });

  it('takes the capture mode, tap by default, and refuses another', () => {
    expect(resolveConfig(['--capture', 'pcap'], {}, sources).captureMode).toBe('pcap');
    expect(resolveConfig([], { WEFT_CAPTURE: 'pcap' }, sources).captureMode).toBe('pcap');
    expect(resolveConfig(['--capture', 'tap'], { WEFT_CAPTURE: 'pcap' }, sources).captureMode).toBe('tap');
    expect(resolveConfig(['--segment-offloads', 'always'], {}, sources).segmentMode).toBe('always');
    expect(resolveConfig([], { WEFT_SEGMENT_OFFLOADS: 'never' }, sources).segmentMode).toBe('never');
    expect(() => resolveConfig(['--segment-offloads', 'sometimes'], {}, sources)).toThrow(/not a segment mode: use auto/);
    expect(() => resolveConfig(['--capture', 'raw'], {}, sources)).toThrow(/not a capture mode: use tap .* or pcap/);
  });

  it('takes the password from the flag (with a ps warning), the environment or a file', () => {
    const flag = resolve(['--password', 's3cret-and-long-enough']);
    expect(flag.password).toBe('s3cret-and-long-enough');
    expect(flag.hasPassword).toBe(true);
    expect(flag.warnings.join('\n')).toContain('visible');
    const env = resolve([], { WEFT_PASSWORD: 'from-the-environment' });
    expect(env.password).toBe('from-the-environment');
    expect(env.warnings).toEqual([]);
    expect(resolve(['--password-file', '/secret']).password).toBe('hunter2');
    expect(resolve([], { WEFT_PASSWORD_FILE: '/secret' }).password).toBe('hunter2');
    expect(configError(() => resolve(['--password-file', '/missing'])).message).toContain('ENOENT');
    expect(configError(() => resolve(['--password-file', '/empty'])).message).toContain('empty');
    expect(configError(() => resolve(['--password', 'a', '--password-file', '/secret'])).message).toContain('not both');
  });
});

describe('resolveConfig: unsafe defaults are said out loud', () => {
  it('warns when there is no password, and not when there is one', () => {
    expect(resolve([]).warnings.join('\n')).toMatch(/no password: traffic is not encrypted and anyone who reaches port 6783 can join/);
    expect(resolve([], { WEFT_PASSWORD: 'a long random enough one' }).warnings).toEqual([]);
  });

  it('warns about a weak password (short, or few distinct characters) without printing it', () => {
    for (const weak of ['hunter2', 'correct1', 'aaaaaaaaaaaaaaaaaaaa', 'abababababababab', '12345678901']) {
      const w = resolve([], { WEFT_PASSWORD: weak }).warnings.join('\n');
      expect(w, weak).toMatch(/the password from WEFT_PASSWORD is weak \(.*\): anyone who records one handshake can guess it offline/);
      expect(w).not.toContain(weak);
    }
    for (const strong of [
      'correct horse battery staple',
      'q7Zx9pLm2Kd4',
      Buffer.alloc(24, 7).toString('base64').replace(/B/g, 'x') + 'abc123',
    ]) {
      expect(resolve([], { WEFT_PASSWORD: strong }).warnings, strong).toEqual([]);
    }
  });

  it('warns about a password file group or others can read, naming the file and the chmod', () => {
    const withMode = (mode: number): ConfigSources => ({
      ...sources,
      readFile: () => 'a long random enough one\n',
      fileMode: () => 0o100000 | mode,
    });
    const loose = resolveConfig(['--password-file', '/etc/weft/pw'], {}, withMode(0o644)).warnings.join('\n');
    expect(loose).toContain('the password file /etc/weft/pw can be read by other users (mode 0644); restrict it: chmod 600 /etc/weft/pw');
    expect(resolveConfig([], { WEFT_PASSWORD_FILE: '/p' }, withMode(0o640)).warnings.join('\n')).toContain('chmod 600 /p');
    expect(resolveConfig(['--password-file', '/etc/weft/pw'], {}, withMode(0o600)).warnings).toEqual([]);
    expect(resolveConfig(['--password-file', '/etc/weft/pw'], {}, withMode(0o400)).warnings).toEqual([]);
  });

  it('refuses a non-loopback --http-addr without --allow-remote-api, and warns with it', () => {
    for (const addr of ['0.0.0.0:6784', '10.0.0.1:6784', '[::]:6784', 'example.com:6784']) {
      expect(configError(() => resolve(['--http-addr', addr])).message, addr).toMatch(
        /is not a loopback address: .*anyone who does can stop weft.*--allow-remote-api/,
      );
    }
    const allowed = resolve(['--http-addr', '0.0.0.0:6784', '--allow-remote-api'], { WEFT_PASSWORD: 'a long random enough one' });
    expect(allowed).toMatchObject({ httpAddr: '0.0.0.0:6784', isRemoteApiAllowed: true });
    expect(allowed.warnings.join('\n')).toMatch(/the API listens on 0.0.0.0:6784 \(--allow-remote-api\): anyone who reaches/);
    expect(resolve([], { WEFT_HTTP_ADDR: '10.0.0.1:6784', WEFT_ALLOW_REMOTE_API: '1' }).isRemoteApiAllowed).toBe(true);
    for (const addr of ['127.0.0.1:6784', '127.0.0.2:7000', '[::1]:6784', 'localhost:6784'])
      expect(resolve(['--http-addr', addr]).isRemoteApiAllowed, addr).toBe(false);
  });

  it("takes --metrics-addr ('' turns it off) and refuses the API's own address", () => {
    expect(resolve(['--metrics-addr', '0.0.0.0:9102']).metricsAddr).toBe('0.0.0.0:9102');
    expect(resolve([], { WEFT_METRICS_ADDR: '' }).metricsAddr).toBeUndefined();
    expect(resolve(['--metrics-addr', '[::1]:6782']).metricsAddr).toBe('[::1]:6782');
    expect(configError(() => resolve(['--metrics-addr', '127.0.0.1:6784'])).message).toMatch(/is the API's address too/);
    expect(configError(() => resolve(['--metrics-addr', 'nope'])).message).toMatch(/--metrics-addr "nope" is not host:port/);
  });
});

describe('resolveClientConfig', () => {
  it('uses WEFT_STATE_DIR and WEFT_HTTP_ADDR with the daemon defaults', () => {
    expect(resolveClientConfig({})).toEqual({
      stateDir: '/var/lib/weft',
      httpAddr: '127.0.0.1:6784',
      httpHost: '127.0.0.1',
      httpPort: 6784,
    });
    expect(resolveClientConfig({ WEFT_STATE_DIR: '/s', WEFT_HTTP_ADDR: '127.0.0.9:1234' })).toMatchObject({
      stateDir: '/s',
      httpPort: 1234,
    });
    expect(() => resolveClientConfig({ WEFT_HTTP_ADDR: 'nope' })).toThrow(ConfigError);
  });
});

describe('address helpers', () => {
  it('parsePeerAddress fills in the default port', () => {
    expect(parsePeerAddress('10.0.0.2', 7000)).toEqual({ host: '10.0.0.2', port: 7000 });
    expect(parsePeerAddress('[::1]:6783')).toEqual({ host: '::1', port: 6783 });
  });
  it('parseCidr clears host bits and refuses non-CIDRs', () => {
    expect(parseCidr('10.32.5.1/12')).toBe('10.32.0.0/12');
    expect(parseCidr('fd00::1/64')).toBe('fd00::/64');
    expect(() => parseCidr('10.0.0.1')).toThrow(ConfigError);
    expect(() => parseCidr('0x0a.0.0.0/8')).toThrow(ConfigError);
  });
});

describe('resolveConfig: Docker', () => {
  it('serves the plugin on /run/docker/plugins/weft.sock and finds the engine at $DOCKER_HOST, else the default socket', () => {
    const c = resolve([]);
    expect(c.pluginSocket).toBe('/run/docker/plugins/weft.sock');
    expect(c.isPluginSocketExplicit).toBe(false);
    expect(c.dockerApi).toBe('unix:///var/run/docker.sock');
    expect(resolve([], { DOCKER_HOST: 'tcp://127.0.0.1:2375' }).dockerApi).toBe('tcp://127.0.0.1:2375');
    const explicit = resolve(['--plugin-socket', '/tmp/x/weft.sock', '--docker-api', 'unix:///tmp/x/docker.sock'], {
      DOCKER_HOST: 'tcp://127.0.0.1:2375',
    });
    expect(explicit).toMatchObject({
      pluginSocket: '/tmp/x/weft.sock',
      isPluginSocketExplicit: true,
      dockerApi: 'unix:///tmp/x/docker.sock',
    });
  });

  it("turns the plugin and the engine off with ''", () => {
    const c = resolve(['--plugin-socket', '', '--docker-api', '']);
    expect(c.pluginSocket).toBeUndefined();
    expect(c.dockerApi).toBeUndefined();
    expect(resolve([], { WEFT_DOCKER_API: '', WEFT_PLUGIN_SOCKET: '', DOCKER_HOST: 'tcp://h:1' })).toMatchObject({
      pluginSocket: undefined,
      dockerApi: undefined,
    });
  });

  it('refuses a relative socket path and an engine address it cannot use, saying what to write', () => {
    expect(configError(() => resolve(['--plugin-socket', 'weft.sock'])).message).toMatch(/absolute path/);
    expect(configError(() => resolve(['--docker-api', 'docker.sock'])).message).toMatch(
      /write unix:\/\/\/var\/run\/docker.sock or tcp:\/\/HOST:PORT/,
    );
    // Inherited from DOCKER_HOST, an address weft cannot use turns Docker off with a warning instead.
    const inherited = resolve([], { DOCKER_HOST: 'ssh://me@box' });
    expect(inherited.dockerApi).toBeUndefined();
    expect(inherited.warnings.join('\n')).toMatch(
      /DOCKER_HOST "ssh:\/\/me@box" is not a Docker address weft can use.*running without Docker/,
    );
  });
});
