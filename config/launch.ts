/**
 * The daemon's configuration, resolved once at launch: defaults <- `WEFT_*` environment <- command-line flags,
 * validated into one frozen `WeftConfig`. Nothing else in weft reads `process.env` or argv.
 *
 * The option table (`launchOptions`) is the single source for both this parser and the `weft launch` help text, so
 * the CLI and the daemon agree on every flag. `weft launch ARGS` validates ARGS here, then starts `daemon/main.js`
 * with the same ARGS, which resolves them here again.
 */
import { hostname as osHostname } from 'node:os';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAuthorizedPeers } from '../crypto/key-text.js';
import { parseArgs } from 'node:util';
import ipaddr from 'ipaddr.js';
import { AddressError, isIpAddress, isLoopbackHost, isValidHost, joinAddress, splitAddress } from '../runtime/address.js';
import { WeftError } from '../runtime/errors.js';

/** The usage line of `weft launch` (and of the daemon entry, which takes the same arguments). */
export const launchUsage = 'weft launch [options] [PEER...]';

/** A bad flag, environment variable or value. The message names the value and says what to write instead. */
export class ConfigError extends WeftError {
  readonly code = 'ERR_CONFIG';
  /** The message plus the usage line and where to read more; what the CLI prints. */
  get hint(): string {
    return `${this.message}\nUsage: ${launchUsage}\nRun 'weft launch --help' for the options.`;
  }
}

/** How IPAM starts when no ring exists yet (Weave's --ipalloc-init). */
export type IpallocInit =
  /** Agree on the ring by Paxos among `quorum` peers (a majority of them must be reachable). */
  | { mode: 'consensus'; quorum: number }
  /** These peers (names or nicknames) split the range between them; no consensus round. */
  | { mode: 'seed'; seeds: string[] }
  /** Never own a part of the range; borrow from others. */
  | { mode: 'observer' };

/** `--capture`: how the data path reaches the bridge. */
export type CaptureMode = 'tap' | 'pcap';
const captureModes: readonly CaptureMode[] = ['tap', 'pcap'];
/** How TCP super-frames cross to peers: see router/loss.ts. */
export type SegmentMode = 'auto' | 'always' | 'never';
const segmentModes: readonly SegmentMode[] = ['auto', 'always', 'never'];

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
const logLevels: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export interface WeftConfig {
  /** Directory for the peer name, IPAM ring, pid file and log. @default '/var/lib/weft' */
  readonly stateDir: string;
  /** The HTTP API, "host:port" (IPv6 in brackets). @default '127.0.0.1:6784' */
  readonly httpAddr: string;
  readonly httpHost: string;
  /** 0 picks a free port (tests only: the CLI could not find it). */
  readonly httpPort: number;
  /**
   * The API may listen on a non-loopback --http-addr (reachable from other machines: anyone who reaches it can stop
   * weft). Without it such an address is refused. @default false
   */
  readonly isRemoteApiAllowed: boolean;
  /** Prometheus metrics listener "host:port" (GET /metrics only), or undefined when off (`--metrics-addr ''`). @default '127.0.0.1:6782' */
  readonly metricsAddr: string | undefined;
  /** TCP port for control connections and UDP port for data. @default 6783 */
  readonly port: number;
  /** Host the control and data sockets bind to (0.0.0.0 binds :: where the kernel has IPv6: daemon/socket-host.ts). @default '0.0.0.0' */
  readonly listenAddr: string;
  /** Human name of this router. @default os.hostname() */
  readonly nickname: string;
  /** Shared secret: when set, control and data traffic is encrypted and peers without it are refused. */
  readonly password: string | undefined;
  readonly hasPassword: boolean;
  /** This router's identity key file (crypto/identity.ts), made on first use. @default '<stateDir>/identity' */
  readonly identityFile: string;
  /** Identity public keys (base64) this router accepts; undefined: any router with the password. */
  readonly authorizedPeers: readonly string[] | undefined;
  /** Where `authorizedPeers` came from (re-read by `weft reload` and SIGHUP). */
  readonly authorizedPeersFile: string | undefined;
  /** Connect to peers that other peers tell us about. @default true */
  readonly isDiscoveryEnabled: boolean;
  /** Name of the Linux bridge containers attach to. @default 'weft' */
  readonly bridge: string;
  /** MTU of the bridge and container interfaces in bytes; undefined = derive from the underlay. @default undefined */
  readonly mtuBytes: number | undefined;
  /** Peers on these networks are trusted: no encryption (fastdp allowed). Normalised CIDRs. @default [] */
  readonly trustedSubnets: readonly string[];
  /** IPAM range, or undefined when IPAM is off (`--ipalloc-range ''`). @default '10.32.0.0/12' */
  readonly ipallocRange: string | undefined;
  /** Subnet for `net:default` requests; inside the range. @default the range */
  readonly ipallocDefaultSubnet: string | undefined;
  /** @default consensus with quorum = number of peers given + 1 */
  readonly ipallocInit: Readonly<IpallocInit>;
  /** @default 'info' */
  readonly logLevel: LogLevel;
  /** Log to this file, rotated by size, instead of stdout (`weft launch` in the background sets it). @default undefined */
  readonly logFile: string | undefined;
  /** Rotate the log file when it would grow past this many bytes (3 old files are kept). @default 10485760 */
  readonly logMaxBytes: number;
  /** How often encrypted connections renew their data keys. @default 120000 */
  readonly rekeyIntervalMs: number;
  /** Carry the kernel's offloads (partial checksums, TCP super-frames) through the TAP. @default true */
  readonly isOffloadEnabled: boolean;
  /**
   * Let the kernel's VXLAN carry clear paths to direct peers (fastdp, on UDP port + 1) once heartbeats confirm them;
   * `--no-fastdp` keeps every peer on the sleeve. @default true
   */
  readonly isFastdpEnabled: boolean;
  /** After handling packets, keep polling the data sockets this long before sleeping (0: off). @default 200 */
  readonly busyPollMicros: number;
  /**
   * How the router reads and writes the bridge's frames: 'tap' (a TAP device on the bridge, with offloads) or 'pcap'
   * (libpcap on a veth pair whose other end is on the bridge, for hosts without /dev/net/tun; no offloads).
   * @default 'tap'
   */
  readonly captureMode: CaptureMode;
  /**
   * TCP super-frames to a peer: cut into segments (one lost datagram loses one segment) or sent as pieces (faster
   * without loss); 'auto' segments for peers that report loss. @default 'auto'
   */
  readonly segmentMode: SegmentMode;
  /** Run the control plane only (no bridge, TAP or UDP data): for tests. @default true */
  readonly isDatapathEnabled: boolean;
  /** Stay attached to the terminal instead of running in the background. @default false */
  readonly isForeground: boolean;
  /** Peers to connect to, as given (host or host:port; a bare host means `port`). */
  readonly peers: readonly string[];
  /** Things the user should hear about (e.g. a password on the command line); the caller prints or logs them. */
  readonly warnings: readonly string[];
  /** The Docker plugin's socket, or undefined when the plugin is off (`--plugin-socket ''`). @default '/run/docker/plugins/weft.sock' */
  readonly pluginSocket: string | undefined;
  /** Whether `pluginSocket` was asked for explicitly (then failing to serve it stops the launch). */
  readonly isPluginSocketExplicit: boolean;
  /** The local Docker engine's API, or undefined when Docker integration is off (`--docker-api ''`). @default $DOCKER_HOST or 'unix:///var/run/docker.sock' */
  readonly dockerApi: string | undefined;
  /** weftDNS (docs/dns.md). */
  readonly dns: Readonly<DnsConfig>;
}

/** weftDNS settings: `--no-dns`, `--dns-domain`, `--dns-listen-address`, `--dns-ttl`, `--dns-resolv-conf`. */
export interface DnsConfig {
  /** @default true */
  isEnabled: boolean;
  /** Lower case with the trailing dot. @default 'weft.local.' */
  domain: string;
  /** Host to listen on; undefined: this router's address on the weft bridge (docs/dns.md). @default undefined */
  listenHost: string | undefined;
  /** @default 53 */
  listenPort: number;
  /** TTL of every answer in seconds. @default 1 */
  ttlSeconds: number;
  /** Where the upstream resolvers are read from. @default '/etc/resolv.conf' */
  resolvConf: string;
}

/**
 * One `weft launch` option, declared once: its flag, environment variable, help, default and parser. The CLI's help
 * (cli/program.ts), the service's environment file (`envFileText`, written by `weft setup-systemd`) and
 * `resolveConfig` all read this table, so a default is written in one place.
 */
export interface LaunchOption<T> {
  /** Value placeholder for help, or undefined for a boolean flag. */
  readonly value?: string;
  readonly env?: string;
  readonly description: string;
  /** The default as a user would write it (the parser turns it into the value); undefined: see `defaultText`. */
  readonly default?: string;
  /** Help for a default that is not a constant (the hostname, derived from the underlay). */
  readonly defaultText?: string;
  /** Text (from the flag, the variable or `default`) to value; throws `ConfigError` naming `from`. */
  readonly parse: (text: string, from: string) => T;
}

const option = <T>(o: LaunchOption<T>): LaunchOption<T> => o;
/** A boolean flag: `--name`, or its variable set to 1/true/yes. */
const flag = (o: Omit<LaunchOption<boolean>, 'parse' | 'value' | 'default'>): LaunchOption<boolean> => ({ ...o, parse: parseBoolean });
const text = (text: string) => text;
const offOr =
  <T>(parse: (text: string, from: string) => T) =>
  (text: string, from: string): T | undefined =>
    text === '' ? undefined : parse(text, from);
const nonEmpty = (example: string) => (text: string, from: string) => {
  if (text.length === 0) throw new ConfigError(`${from} is empty; give ${example}`);
  return text;
};
const integerIn = (what: string, unit: string, min: number, max: number, example: string) => (text: string, from: string) => {
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || n < min || n > max) {
    throw new ConfigError(`${from} ${JSON.stringify(text)} is not ${what}: give ${unit} from ${min} to ${max}, e.g. ${example}`);
  }
  return n;
};

/** Every `weft launch` option, in help order. */
export const launchOptions = {
  'state-dir': option({
    value: 'DIR',
    env: 'WEFT_STATE_DIR',
    description: 'state directory (peer name, IPAM, log, pid file)',
    default: '/var/lib/weft',
    parse: nonEmpty('a directory, e.g. --state-dir /var/lib/weft'),
  }),
  'http-addr': option({
    value: 'HOST:PORT',
    env: 'WEFT_HTTP_ADDR',
    description: 'address of the HTTP API the weft command talks to',
    default: '127.0.0.1:6784',
    parse: parseHttpAddr,
  }),
  'allow-remote-api': flag({
    env: 'WEFT_ALLOW_REMOTE_API',
    description:
      'let --http-addr be a non-loopback address: anyone who reaches it can stop weft, attach namespaces and read the report (prefer an SSH tunnel)',
  }),
  'metrics-addr': option({
    value: 'HOST:PORT',
    env: 'WEFT_METRICS_ADDR',
    description: "address of the Prometheus metrics listener: GET /metrics only, nothing that changes state ('' turns it off)",
    default: '127.0.0.1:6782',
    parse: offOr(parseHttpAddr),
  }),
  port: option({
    value: 'PORT',
    env: 'WEFT_PORT',
    description: 'TCP port for control connections and UDP port for data',
    default: '6783',
    parse: parsePort,
  }),
  'listen-addr': option({
    value: 'HOST',
    env: 'WEFT_LISTEN_ADDR',
    description:
      'address the control and data sockets bind to (0.0.0.0: every IPv4 and IPv6 address, dual-stack where the kernel has IPv6)',
    default: '0.0.0.0',
    parse: parseHost,
  }),
  nickname: option({
    value: 'NAME',
    env: 'WEFT_NICKNAME',
    description: 'human name of this router',
    defaultText: 'the hostname',
    parse: text,
  }),
  password: option({
    value: 'SECRET',
    env: 'WEFT_PASSWORD',
    description: 'encrypt traffic; every router needs the same password (prefer WEFT_PASSWORD or --password-file: flags are visible in ps)',
    parse: text,
  }),
  'password-file': option({ value: 'FILE', env: 'WEFT_PASSWORD_FILE', description: 'read the password from FILE', parse: text }),
  'identity-file': option({
    value: 'FILE',
    env: 'WEFT_IDENTITY_FILE',
    description: "this router's private identity key (made on first use; `weft identity` prints the public key)",
    defaultText: 'STATE_DIR/identity',
    parse: nonEmpty('a file, e.g. --identity-file /var/lib/weft/identity'),
  }),
  'authorized-peers': option({
    value: 'FILE',
    env: 'WEFT_AUTHORIZED_PEERS',
    description: 'with a password: accept only routers whose identity public key is listed in FILE (one per line)',
    parse: text,
  }),
  'no-discovery': flag({ env: 'WEFT_NO_DISCOVERY', description: 'do not connect to peers that other peers tell us about' }),
  bridge: option({
    value: 'NAME',
    env: 'WEFT_BRIDGE',
    description: 'Linux bridge containers attach to',
    default: 'weft',
    parse: parseBridgeName,
  }),
  mtu: option({
    value: 'BYTES',
    env: 'WEFT_MTU',
    description: 'MTU of the bridge and container interfaces',
    defaultText: 'derived from the underlay',
    parse: parseMtu,
  }),
  'trusted-subnets': option({
    value: 'CIDR,...',
    env: 'WEFT_TRUSTED_SUBNETS',
    description: 'peers on these networks are trusted: not encrypted',
    default: '',
    parse: (t, from) => splitList(t).map((c) => parseCidr(c, from)),
  }),
  'ipalloc-range': option({
    value: 'CIDR',
    env: 'WEFT_IPALLOC_RANGE',
    description: "range IPAM allocates from ('' turns IPAM off)",
    default: '10.32.0.0/12',
    parse: offOr(parseCidr),
  }),
  'ipalloc-default-subnet': option({
    value: 'CIDR',
    env: 'WEFT_IPALLOC_DEFAULT_SUBNET',
    description: 'subnet for containers attached without an address',
    defaultText: 'the range',
    parse: offOr(parseCidr),
  }),
  'ipalloc-init': option({
    value: 'MODE',
    env: 'WEFT_IPALLOC_INIT',
    description: 'consensus[=N] | seed=NAME,... | observer',
    defaultText: 'consensus=(number of PEERs + 1)',
    parse: parseIpallocInit,
  }),
  'rekey-interval': option({
    value: 'SECONDS',
    env: 'WEFT_REKEY_INTERVAL',
    description: 'renew the data keys of encrypted connections this often',
    default: '120',
    parse: parseRekeyIntervalMs,
  }),
  'no-offload': flag({
    env: 'WEFT_NO_OFFLOAD',
    description:
      "take no checksum or TCP segmentation offloads from the kernel: read one segment at a time (peers' TCP super-frames are still written whole)",
  }),
  'no-fastdp': flag({
    env: 'WEFT_NO_FASTDP',
    description: 'keep every peer on the sleeve: no kernel VXLAN fast path (fastdp, UDP port + 1) for clear paths',
  }),
  'busy-poll': option({
    value: 'MICROS',
    env: 'WEFT_BUSY_POLL',
    description: 'after forwarding, poll for the reply this long instead of sleeping (lower latency; capped at 10% of a CPU; 0 = off)',
    default: '200',
    parse: integerIn('a busy-poll window', 'microseconds (0: off)', 0, 100_000, '--busy-poll 200'),
  }),
  capture: option({
    value: 'MODE',
    env: 'WEFT_CAPTURE',
    description:
      'tap: a TAP device on the bridge (with offloads) | pcap: libpcap on a veth pair on the bridge, for hosts without /dev/net/tun (no offloads: slower, see docs/benchmarks.md)',
    default: 'tap',
    parse: parseCaptureMode,
  }),
  'segment-offloads': option({
    value: 'MODE',
    env: 'WEFT_SEGMENT_OFFLOADS',
    description:
      'TCP super-frames to a peer: auto (as segments while the peer reports lost datagrams, else whole in pieces) | always (segments: a lost datagram loses one segment) | never (pieces: fastest without loss)',
    default: 'auto',
    parse: parseSegmentMode,
  }),
  'log-level': option({ value: 'LEVEL', env: 'WEFT_LOG_LEVEL', description: logLevels.join(' | '), default: 'info', parse: parseLogLevel }),
  'log-file': option({
    value: 'FILE',
    env: 'WEFT_LOG_FILE',
    description: 'log JSON lines to FILE, rotated by size, instead of stdout',
    defaultText: 'stdout (STATE_DIR/weft.log when launched in the background)',
    parse: offOr(text),
  }),
  'log-max-bytes': option({
    value: 'BYTES',
    env: 'WEFT_LOG_MAX_BYTES',
    description: 'rotate the log file past this size; 3 old files are kept',
    default: '10485760',
    parse: integerIn('a log size', 'bytes', 1024, 2 ** 40, '--log-max-bytes 10485760'),
  }),
  'no-datapath': flag({ env: 'WEFT_NO_DATAPATH', description: 'run the control plane only (no bridge, TAP or UDP): for tests' }),
  'plugin-socket': option({
    value: 'PATH',
    env: 'WEFT_PLUGIN_SOCKET',
    description: "serve Docker's network and IPAM driver plugin here ('' turns it off)",
    default: '/run/docker/plugins/weft.sock',
    parse: offOr(parsePluginSocket),
  }),
  'docker-api': option({
    value: 'URL',
    env: 'WEFT_DOCKER_API',
    description: "the local Docker engine, to make the network 'weft' and resolve container names ('' turns Docker off)",
    defaultText: '$DOCKER_HOST or unix:///var/run/docker.sock',
    parse: offOr(text),
  }),
  foreground: flag({ description: 'stay attached to the terminal instead of running in the background' }),
  'no-dns': flag({ env: 'WEFT_NO_DNS', description: 'do not run weftDNS (names are neither served nor gossiped)' }),
  'dns-domain': option({
    value: 'DOMAIN',
    env: 'WEFT_DNS_DOMAIN',
    description: 'the domain weftDNS answers for',
    default: 'weft.local.',
    parse: parseDnsDomain,
  }),
  'dns-listen-address': option({
    value: 'HOST[:PORT]',
    env: 'WEFT_DNS_LISTEN_ADDRESS',
    description: 'where weftDNS listens (udp and tcp)',
    defaultText: "this router's address on the weft bridge, port 53",
    parse: offOr(parseDnsListenAddress),
  }),
  'dns-ttl': option({
    value: 'SECONDS',
    env: 'WEFT_DNS_TTL',
    description: 'TTL of weftDNS answers',
    default: '1',
    parse: integerIn('a TTL', 'seconds', 0, 86_400, '--dns-ttl 1'),
  }),
  'dns-resolv-conf': option({
    value: 'FILE',
    env: 'WEFT_DNS_RESOLV_CONF',
    description: 'resolver configuration naming the upstream servers for other names',
    default: '/etc/resolv.conf',
    parse: nonEmpty('a file, e.g. --dns-resolv-conf /etc/resolv.conf'),
  }),
} as const;

export type LaunchOptionName = keyof typeof launchOptions;
type ValueOf<N extends LaunchOptionName> = ReturnType<(typeof launchOptions)[N]['parse']>;

/** The declared default text of an option that has one. */
export function defaultOf(name: LaunchOptionName): string {
  const d = (launchOptions[name] as LaunchOption<unknown>).default;
  if (d === undefined) throw new Error(`--${name} has no constant default`);
  return d;
}

/** The default port of control connections and data (`--port`), for peers given without one. */
export const DEFAULT_PORT = Number(defaultOf('port'));

/** The `WEFT_*` environment file `weft setup-systemd` writes: every variable of the table, commented out, with its default. */
export function envFileText(): string {
  const lines = [
    "# Settings for the weft service (systemd's EnvironmentFile; `weft launch --help` says more about each).",
    '# Keep this file 0600: it may hold the network password. Uncomment a line to change a setting.',
    '#',
    '# Peers to connect to at start (host or host:port, space-separated). Peers added later with `weft connect` are',
    '# remembered in the state directory and survive restarts.',
    'WEFT_PEERS=',
  ];
  for (const [name, o] of Object.entries(launchOptions) as Array<[string, LaunchOption<unknown>]>) {
    if (o.env === undefined || name === 'password') continue; // the password goes in a file (WEFT_PASSWORD_FILE), not here
    const help = o.defaultText !== undefined ? `${o.description} (default: ${o.defaultText})` : o.description;
    lines.push(`# --${name}: ${help}`);
    lines.push(`#${o.env}=${o.value === undefined ? '1' : (o.default ?? '')}`);
  }
  return `${lines.join('\n')}\n`;
}

/** What `resolveConfig` reads from outside; tests replace it. */
export interface ConfigSources {
  readFile(path: string): string;
  hostname(): string;
  /** The permission bits of `path` (stat's mode), to warn about a password file others can read. @default none: no check */
  fileMode?(path: string): number;
}

const realSources: ConfigSources = { readFile: (p) => readFileSync(p, 'utf8'), hostname: osHostname, fileMode: (p) => statSync(p).mode };

/**
 * Resolve and validate the daemon's configuration from `argv` (the arguments after `weft launch`, or the daemon
 * entry's arguments) and `env`. Flags win over `WEFT_*` variables, which win over defaults. Throws `ConfigError` with
 * a message naming the bad value; its `hint` adds the usage line. Reads the password file, if one is given.
 */
export function resolveConfig(argv: readonly string[], env: NodeJS.ProcessEnv, sources: ConfigSources = realSources): WeftConfig {
  const flags = parseLaunchArgs(argv);
  const warnings: string[] = [];
  const pick = (name: LaunchOptionName): { value: string; from: string } | undefined => {
    const given = flags.values[name];
    if (typeof given === 'string') return { value: given, from: `--${name}` };
    const envName = (launchOptions[name] as LaunchOption<unknown>).env;
    const fromEnv = envName !== undefined ? env[envName] : undefined;
    if (fromEnv !== undefined) return { value: fromEnv, from: envName! };
    return undefined;
  };
  /** The option's value: from the flag, else its variable, else its declared default (undefined when it has none). */
  const get = <N extends LaunchOptionName>(name: N): ValueOf<N> | undefined => {
    const o = launchOptions[name] as LaunchOption<ValueOf<N>>;
    const p = pick(name);
    if (p !== undefined) return o.parse(p.value, p.from);
    return o.default === undefined ? undefined : o.parse(o.default, `--${name}`);
  };
  const isSet = (name: LaunchOptionName): boolean => flags.values[name] === true || get(name) === true;

  const stateDir = get('state-dir')!;
  const http = pick('http-addr');
  const httpParts = get('http-addr')!;
  const isRemoteApiAllowed = isSet('allow-remote-api');
  if (!isLoopbackHost(httpParts.host)) {
    const where = joinAddress(httpParts.host, httpParts.port);
    if (!isRemoteApiAllowed) {
      throw new ConfigError(
        `${http!.from} ${where} is not a loopback address: other machines could reach the API, and anyone who does can stop weft, ` +
          `attach namespaces and read the report. Keep 127.0.0.1:${httpParts.port} (reach it over SSH), or add --allow-remote-api if you mean it`,
      );
    }
    warnings.push(
      `the API listens on ${where} (--allow-remote-api): anyone who reaches that address can stop weft, attach namespaces and read the report; firewall it`,
    );
  }

  const m = get('metrics-addr');
  const metricsAddr = m === undefined ? undefined : joinAddress(m.host, m.port);
  if (
    m !== undefined &&
    m.port !== 0 &&
    m.port === httpParts.port &&
    (m.host === httpParts.host || m.host === '0.0.0.0' || m.host === '::' || httpParts.host === '0.0.0.0' || httpParts.host === '::')
  ) {
    throw new ConfigError(
      `${pick('metrics-addr')?.from ?? '--metrics-addr'} ${metricsAddr} is the API's address too; give metrics a port of their own, e.g. --metrics-addr 127.0.0.1:6782`,
    );
  }

  const port = get('port')!;
  const listenAddr = get('listen-addr')!;

  const nickPick = pick('nickname');
  const nickname = nickPick?.value ?? sources.hostname();
  if (!/^[^\s\p{Cc}\p{Cf}]{1,64}$/u.test(nickname)) {
    throw new ConfigError(
      `${nickPick?.from ?? 'the hostname'} ${JSON.stringify(nickname)} is not a nickname: use 1 to 64 characters without spaces, e.g. --nickname host1`,
    );
  }

  const password = resolvePassword(flags.values, env, sources, warnings);

  const identityFile = get('identity-file') ?? join(stateDir, 'identity');
  const authorizedPick = pick('authorized-peers');
  let authorizedPeers: string[] | undefined;
  if (authorizedPick !== undefined) {
    if (password === undefined) {
      throw new ConfigError(
        `${authorizedPick.from} needs a password: identities are proven inside the encrypted handshake (add WEFT_PASSWORD or --password-file)`,
      );
    }
    authorizedPeers = [...readAuthorizedPeers(authorizedPick.value, authorizedPick.from, sources)];
  }

  const bridge = get('bridge')!;
  const mtuBytes = get('mtu');
  const trustedSubnets = get('trusted-subnets')!;

  const ipallocRange = get('ipalloc-range');
  const subnetPick = pick('ipalloc-default-subnet');
  let ipallocDefaultSubnet = ipallocRange;
  const subnet = get('ipalloc-default-subnet');
  if (subnet !== undefined) {
    if (ipallocRange === undefined) {
      throw new ConfigError(`${subnetPick!.from} needs IPAM, but --ipalloc-range is '' (off); give a range or drop ${subnetPick!.from}`);
    }
    if (!cidrContains(ipallocRange, subnet)) {
      throw new ConfigError(`${subnetPick!.from} ${subnet} is not inside the IPAM range ${ipallocRange}; pick a subnet of it`);
    }
    ipallocDefaultSubnet = subnet;
  }

  const peers = flags.positionals.map((p) => {
    parsePeerAddress(p, port);
    return p;
  });

  // Plain "consensus" (or no flag) means: everyone named on this command line plus us.
  const parsedInit = get('ipalloc-init');
  const ipallocInit: IpallocInit =
    parsedInit === undefined || (parsedInit.mode === 'consensus' && parsedInit.quorum === 0)
      ? { mode: 'consensus', quorum: peers.length + 1 }
      : parsedInit;

  const dockerPick = pick('docker-api');
  let dockerApi = dockerPick !== undefined ? get('docker-api') : env['DOCKER_HOST'] || 'unix:///var/run/docker.sock';
  if (dockerApi !== undefined && !/^unix:\/\/\/.|^(tcp|http):\/\/[^/]+:\d{1,5}\/?$/.test(dockerApi)) {
    const why = `${dockerPick?.from ?? 'DOCKER_HOST'} ${JSON.stringify(dockerApi)} is not a Docker address weft can use: write unix:///var/run/docker.sock or tcp://HOST:PORT ('' turns Docker off)`;
    // Asked for explicitly: an error. Only inherited from DOCKER_HOST (ssh://, say): Docker off, and a warning.
    if (dockerPick !== undefined) throw new ConfigError(why);
    warnings.push(`${why}; running without Docker`);
    dockerApi = undefined;
  }

  const dnsListen = get('dns-listen-address');
  return deepFreeze({
    dns: {
      isEnabled: !isSet('no-dns'),
      domain: get('dns-domain')!,
      listenHost: dnsListen?.host,
      listenPort: dnsListen?.port ?? 53,
      ttlSeconds: get('dns-ttl')!,
      resolvConf: get('dns-resolv-conf')!,
    },
    stateDir,
    httpAddr: joinAddress(httpParts.host, httpParts.port),
    httpHost: httpParts.host,
    httpPort: httpParts.port,
    isRemoteApiAllowed,
    metricsAddr,
    port,
    listenAddr,
    nickname,
    password,
    hasPassword: password !== undefined,
    identityFile,
    authorizedPeers,
    authorizedPeersFile: authorizedPick?.value,
    isDiscoveryEnabled: !isSet('no-discovery'),
    bridge,
    mtuBytes,
    trustedSubnets,
    ipallocRange,
    ipallocDefaultSubnet,
    ipallocInit,
    logLevel: get('log-level')!,
    logFile: get('log-file'),
    logMaxBytes: get('log-max-bytes')!,
    rekeyIntervalMs: get('rekey-interval')!,
    busyPollMicros: get('busy-poll')!,
    captureMode: get('capture')!,
    segmentMode: get('segment-offloads')!,
    isOffloadEnabled: !isSet('no-offload'),
    isFastdpEnabled: !isSet('no-fastdp'),
    isDatapathEnabled: !isSet('no-datapath'),
    isForeground: flags.values['foreground'] === true,
    peers,
    warnings,
    pluginSocket: get('plugin-socket'),
    isPluginSocketExplicit: pick('plugin-socket') !== undefined,
    dockerApi,
  });
}

function parseBridgeName(name: string, from: string): string {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name) || name === '.' || name === '..') {
    throw new ConfigError(`${from} ${JSON.stringify(name)} is not an interface name: use 1 to 15 letters, digits, '-', '_' or '.'`);
  }
  return name;
}

function parseMtu(text: string, from: string): number | undefined {
  if (text === '' || text === 'auto') return undefined;
  const mtuBytes = parseInteger(text);
  // 576 is the IPv4 minimum every host must accept; 65535 is the largest an IP packet can be.
  if (mtuBytes === undefined || mtuBytes < 576 || mtuBytes > 65535) {
    throw new ConfigError(`${from} ${JSON.stringify(text)} is not an MTU: give bytes between 576 and 65535, or leave it out to derive it`);
  }
  return mtuBytes;
}

function parseRekeyIntervalMs(text: string, from: string): number {
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > 86_400) {
    throw new ConfigError(
      `${from} ${JSON.stringify(text)} is not a rekey interval: give seconds between 1 and 86400, e.g. --rekey-interval 120`,
    );
  }
  return Math.round(seconds * 1000);
}

function parseSegmentMode(text: string, from: string): SegmentMode {
  if (!segmentModes.includes(text as SegmentMode)) {
    throw new ConfigError(`${from} ${JSON.stringify(text.slice(0, 40))} is not a segment mode: use auto (the default), always or never`);
  }
  return text as SegmentMode;
}

function parseCaptureMode(text: string, from: string): CaptureMode {
  if (!captureModes.includes(text as CaptureMode)) {
    throw new ConfigError(
      `${from} ${JSON.stringify(text.slice(0, 40))} is not a capture mode: use tap (the default) or pcap, e.g. --capture pcap`,
    );
  }
  return text as CaptureMode;
}

function parseLogLevel(text: string, from: string): LogLevel {
  if (!logLevels.includes(text as LogLevel)) {
    throw new ConfigError(`${from} ${JSON.stringify(text)} is not a log level: use one of ${logLevels.join(', ')}`);
  }
  return text as LogLevel;
}

function parsePluginSocket(path: string, from: string): string {
  if (!path.startsWith('/') || path.length > 100 || path.includes('\0')) {
    throw new ConfigError(
      `${from} ${JSON.stringify(path)} is not a socket path: give an absolute path of at most 100 characters, e.g. /run/docker/plugins/weft.sock`,
    );
  }
  return path;
}

function parseDnsDomain(text: string, from: string): string {
  const domain = text.toLowerCase().endsWith('.') ? text.toLowerCase() : `${text.toLowerCase()}.`;
  if (!/^(?=.{2,254}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+$/.test(domain)) {
    throw new ConfigError(`${from} ${JSON.stringify(text.slice(0, 80))} is not a DNS domain; write it like weft.local.`);
  }
  return domain;
}

function parseDnsListenAddress(text: string, from: string): { host: string; port: number } {
  const bad = () =>
    new ConfigError(
      `${from} ${JSON.stringify(text.slice(0, 80))} is not an address: write HOST or HOST:PORT, e.g. 10.32.0.1 or 127.0.0.1:5353`,
    );
  let parts: { host: string; port: number };
  try {
    parts = splitAddress(text, 53);
  } catch {
    throw bad();
  }
  if (!isIpAddress(parts.host) || parts.port < 0 || parts.port > 65535) throw bad();
  return parts;
}

/** What every `weft` command needs to find the daemon: its state dir and API address. */
export interface ClientConfig {
  readonly stateDir: string;
  readonly httpAddr: string;
  readonly httpHost: string;
  readonly httpPort: number;
}

/** `WEFT_STATE_DIR` and `WEFT_HTTP_ADDR` with the daemon's defaults, validated like `resolveConfig` does. */
export function resolveClientConfig(env: NodeJS.ProcessEnv): ClientConfig {
  const stateDir = env['WEFT_STATE_DIR'] || defaultOf('state-dir');
  const http = parseHttpAddr(env['WEFT_HTTP_ADDR'] || defaultOf('http-addr'), env['WEFT_HTTP_ADDR'] ? 'WEFT_HTTP_ADDR' : '--http-addr');
  return Object.freeze({ stateDir, httpAddr: joinAddress(http.host, http.port), httpHost: http.host, httpPort: http.port });
}

/** Split argv into launch flags and peers; unknown flags and missing values are `ConfigError`s. */
function parseLaunchArgs(argv: readonly string[]): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const [name, o] of Object.entries(launchOptions) as Array<[string, LaunchOption<unknown>]>)
    options[name] = { type: o.value === undefined ? 'boolean' : 'string' };
  try {
    const parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
    return { values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals };
  } catch (err) {
    // parseArgs's messages name the flag but suggest `--` for values starting with a dash; say it our way.
    const message = err instanceof Error ? err.message : String(err);
    const unknown = /Unknown option '([^']+)'/.exec(message);
    if (unknown) throw new ConfigError(`unknown option ${unknown[1]}`);
    const missing = /Option '([^']+)' argument missing/.exec(message);
    if (missing) throw new ConfigError(`option ${missing[1]!.replace(/ <value>$/, '')} needs a value`);
    throw new ConfigError(message.split('.')[0]!);
  }
}

/**
 * Read and parse an authorized-peers file (at launch, and again for `weft reload`). Throws `ConfigError` naming the
 * file and, for a bad line, the line.
 */
export function readAuthorizedPeers(path: string, from: string, sources: ConfigSources = realSources): Set<string> {
  let text: string;
  try {
    text = sources.readFile(path);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
    throw new ConfigError(`cannot read the authorized peers file ${path} (${from}): ${why}`);
  }
  try {
    return parseAuthorizedPeers(text, `${from} ${path}`);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

function resolvePassword(
  values: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  sources: ConfigSources,
  warnings: string[],
): string | undefined {
  const flag = values['password'] as string | undefined;
  const fileFlag = values['password-file'] as string | undefined;
  if (flag !== undefined && fileFlag !== undefined) {
    throw new ConfigError('give either --password or --password-file, not both');
  }
  let password: string | undefined;
  let from: string;
  if (flag !== undefined) {
    password = flag;
    from = '--password';
    warnings.push('--password on the command line is visible to every user in ps; prefer WEFT_PASSWORD or --password-file');
  } else if (fileFlag !== undefined || (env['WEFT_PASSWORD_FILE'] && env['WEFT_PASSWORD'] === undefined)) {
    const path = fileFlag ?? env['WEFT_PASSWORD_FILE']!;
    from = fileFlag !== undefined ? '--password-file' : 'WEFT_PASSWORD_FILE';
    try {
      // One trailing newline is how editors and `echo` end a file; it is not part of the secret.
      password = sources.readFile(path).replace(/\r?\n$/, '');
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
      throw new ConfigError(`cannot read the password file ${path} (${from}): ${why}`);
    }
  } else {
    password = env['WEFT_PASSWORD'];
    from = 'WEFT_PASSWORD';
  }
  if (password !== undefined && password.length === 0) {
    throw new ConfigError(`the password from ${from} is empty; give a non-empty password or none at all`);
  }
  if (password === undefined) {
    warnings.push(
      'no password: traffic is not encrypted and anyone who reaches port 6783 can join the network and read it; set WEFT_PASSWORD or --password-file',
    );
    return undefined;
  }
  const weakness = passwordWeakness(password);
  if (weakness !== undefined) {
    warnings.push(
      `the password from ${from} is weak (${weakness}): anyone who records one handshake can guess it offline; use a long random one, e.g. openssl rand -base64 24`,
    );
  }
  if (from !== '--password' && from !== 'WEFT_PASSWORD' && sources.fileMode !== undefined) {
    const path = fileFlag ?? env['WEFT_PASSWORD_FILE']!;
    let mode: number | undefined;
    try {
      mode = sources.fileMode(path);
    } catch {
      mode = undefined; // It was just read; a stat failing now changes nothing about the secret.
    }
    // Warned about, not refused: orchestrators mount secrets 0644 or 0444 in directories only the service can
    // enter (Kubernetes and Docker secrets), and refusing would break those set-ups. The identity key, which weft
    // makes itself, is refused instead (crypto/identity.ts).
    if (mode !== undefined && (mode & 0o077) !== 0) {
      warnings.push(
        `the password file ${path} can be read by other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); restrict it: chmod 600 ${path}`,
      );
    }
  }
  return password;
}

/** Shorter than this is weak: 12 random characters from 64 are 72 bits; a dictionary word plus digits is far less. */
export const minPasswordLength = 12;

/**
 * Why `password` is weak, or undefined: too short, or too few distinct characters ("aaaaaaaaaaaaaaaa",
 * "abababab..."). A heuristic, not a measure of entropy: a long passphrase passes, a short one never does.
 */
export function passwordWeakness(password: string): string | undefined {
  const length = [...password].length;
  if (length < minPasswordLength) return `${length} characters; use at least ${minPasswordLength}`;
  const distinct = new Set(password).size;
  if (distinct < 6) return `only ${distinct} distinct characters`;
  return undefined;
}

/** "1", "true", "yes" (and "0", "false", "no", "") for boolean environment variables. */
function parseBoolean(value: string, from: string): boolean {
  const v = value.trim().toLowerCase();
  if (v === '1' || v === 'true' || v === 'yes') return true;
  if (v === '0' || v === 'false' || v === 'no' || v === '') return false;
  throw new ConfigError(`${from}=${JSON.stringify(value)} is not a boolean: use 1 or 0`);
}

function parseInteger(text: string): number | undefined {
  return /^\d{1,6}$/.test(text) ? Number(text) : undefined;
}

function parsePort(text: string, from: string): number {
  const port = parseInteger(text);
  if (port === undefined || port < 1 || port > 65535) {
    throw new ConfigError(`${from} ${JSON.stringify(text)} is not a port: give a number from 1 to 65535`);
  }
  return port;
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function parseHost(text: string, from: string): string {
  const host = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (!isValidHost(host)) {
    throw new ConfigError(`${from} ${JSON.stringify(text)} is not an address: give an IPv4 or IPv6 address or a host name, e.g. 0.0.0.0`);
  }
  return host;
}

/**
 * A peer as given to `weft launch`/`weft connect`: "host" or "host:port" (IPv6 in brackets when a port follows).
 * Returns the parts with `defaultPort` filled in; throws `ConfigError` naming the value.
 */
export function parsePeerAddress(text: string, defaultPort = DEFAULT_PORT): { host: string; port: number } {
  const bad = () =>
    new ConfigError(
      `peer ${JSON.stringify(text.slice(0, 80))} is not an address: write host or host:port, e.g. 10.0.0.2 or 10.0.0.2:6783 or [fd00::2]:6783`,
    );
  let parts: { host: string; port: number };
  try {
    parts = splitAddress(text, defaultPort);
  } catch (err) {
    if (err instanceof AddressError) throw bad();
    throw err;
  }
  if (parts.port < 1 || !isValidHost(parts.host)) throw bad();
  return parts;
}

/** The API's "host:port" (the port is required, 0 only for tests). Throws `ConfigError`. */
export function parseHttpAddr(text: string, from = '--http-addr'): { host: string; port: number } {
  let parts: { host: string; port: number };
  try {
    parts = splitAddress(text);
  } catch {
    throw new ConfigError(`${from} ${JSON.stringify(text.slice(0, 80))} is not host:port; write it like 127.0.0.1:6784`);
  }
  if (!isValidHost(parts.host)) {
    throw new ConfigError(`${from} ${JSON.stringify(text.slice(0, 80))} has no valid host; write it like 127.0.0.1:6784`);
  }
  return parts;
}

/**
 * A CIDR ("10.32.0.0/12"), returned in canonical form with host bits cleared ("10.32.1.0/12" -> "10.32.0.0/12").
 * Throws `ConfigError` naming `from`.
 */
export function parseCidr(text: string, from = 'CIDR'): string {
  try {
    const [addr, bits] = ipaddr.parseCIDR(text);
    if (!/^[0-9a-fA-F.:]+\/\d{1,3}$/.test(text) || (addr.kind() === 'ipv4' && !ipaddr.IPv4.isValidFourPartDecimal(text.split('/')[0]!))) {
      throw new Error('not canonical');
    }
    const network = addr.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(text) : ipaddr.IPv6.networkAddressFromCIDR(text);
    return `${network.toString()}/${bits}`;
  } catch {
    throw new ConfigError(`${from} ${JSON.stringify(text.slice(0, 80))} is not a CIDR; write it like 10.32.0.0/12`);
  }
}

/** True when `text` parses as a CIDR the way `parseCidr` accepts it (host bits may be set: "10.2.1.1/24"). */
export function isCidr(text: string): boolean {
  try {
    parseCidr(text);
    return true;
  } catch {
    return false;
  }
}

/** True when CIDR `inner` lies inside CIDR `outer` (both canonical, same family). */
function cidrContains(outer: string, inner: string): boolean {
  const [oAddr, oBits] = ipaddr.parseCIDR(outer);
  const [iAddr, iBits] = ipaddr.parseCIDR(inner);
  return oAddr.kind() === iAddr.kind() && iBits >= oBits && iAddr.match(oAddr, oBits);
}

function parseIpallocInit(text: string, from: string): IpallocInit {
  if (text === 'observer') return { mode: 'observer' };
  const consensus = /^consensus(?:=(.*))?$/.exec(text);
  if (consensus) {
    if (consensus[1] === undefined) return { mode: 'consensus', quorum: 0 }; // 0: filled in by the caller
    const quorum = parseInteger(consensus[1]);
    if (quorum === undefined || quorum < 1 || quorum > 10_000) {
      throw new ConfigError(`${from} ${JSON.stringify(text)}: the consensus quorum must be a number from 1 to 10000, e.g. consensus=3`);
    }
    return { mode: 'consensus', quorum };
  }
  const seed = /^seed=(.*)$/.exec(text);
  if (seed) {
    const seeds = splitList(seed[1]!);
    // Peer names, not nicknames: at launch nobody can tell which router a nickname means, and a seed that names no
    // router would own space nobody can use.
    if (seeds.length === 0 || seeds.some((s) => !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(s))) {
      throw new ConfigError(
        `${from} ${JSON.stringify(text)}: give seed peer names separated by commas (weft status shows each router's name), e.g. seed=7a:3b:01:22:c4:9e,7a:3b:01:22:c4:9f`,
      );
    }
    return { mode: 'seed', seeds: seeds.map((s) => s.toLowerCase()) };
  }
  throw new ConfigError(`${from} ${JSON.stringify(text)} is not an IPAM init mode: use consensus[=N], seed=NAME,... or observer`);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
