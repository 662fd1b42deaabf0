/**
 * The `weft` CNI plugin's commands. A runtime runs the plugin once per operation; the plugin asks the local weft
 * daemon (its HTTP API) to do the work, so addresses come from the same gossiped IPAM ring as `weft attach` and stay
 * unique across every host and runtime:
 *
 *   ADD     [delegated IPAM ADD] -> POST /attach {target: CNI_NETNS, ifname, containerId, addresses, dnsName}
 *           -> result on stdout (merged into prevResult when chained after another plugin)
 *   DEL     POST /detach {containerId, ifname} (the address is freed even when the namespace is gone) -> [IPAM DEL]
 *   CHECK   the interface in prevResult is in CNI_NETNS, up, with its MAC and addresses; the daemon runs and has the
 *           endpoint -> [IPAM CHECK]
 *   VERSION the versions weft speaks
 *
 * Everything outside is injected (`PluginIo`, `PluginDeps`), so each path, every error included, is tested without
 * a daemon, a namespace or a process. Errors go to stdout as the spec's error object, where libcni reads them (the
 * spec's text says stderr; its reference runtime parses stdout), and as one line to stderr for a person.
 */
import type { AttachRequest, EndpointReport, Report } from '../api/control.js';
import {
  CniError,
  CniErrorCode,
  compareVersions,
  dnsNameOf,
  encodeResult,
  errorResult,
  isObject,
  parseEnvironment,
  parseNetConf,
  parseResult,
  versionOfInput,
  versionResult,
  type CniEnvironment,
  type NetConf,
  type Result,
  type ResultIp,
} from './spec.js';

/** What the plugin needs from the weft daemon (a subset of cli/client.ts's `ApiClient`). */
export interface PluginDaemon {
  attach(request: AttachRequest): Promise<EndpointReport>;
  detachContainer(containerId: string, ifname: string): Promise<boolean>;
  report(): Promise<Report>;
}

/** An interface inside a namespace, as CHECK sees it. */
export interface NetnsLink {
  mac: string;
  isUp: boolean;
  /** Global addresses, CIDR form. */
  addresses: string[];
}

/** Looks into network namespaces (CHECK, and ADD's early "is the namespace there"). */
export interface NetnsProbe {
  /** Whether `path` is a network namespace file. */
  exists(path: string): Promise<boolean>;
  /** The interface `ifname` inside the namespace at `path`, or undefined when there is none. */
  link(path: string, ifname: string): Promise<NetnsLink | undefined>;
  /** Add (or replace) the route to `dst` via `gw` (on-link when undefined) on `ifname` inside the namespace at `path`. */
  addRoute(path: string, ifname: string, dst: string, gw: string | undefined): Promise<void>;
}

/** A delegated plugin's exit code and stdout (its stderr goes to ours). */
export interface DelegateOutcome {
  exitCode: number;
  stdout: string;
}

export interface PluginDeps {
  /** A client for the daemon at "host:port". */
  daemon(httpAddr: string): PluginDaemon;
  /**
   * Run the plugin named `type` from the first `path` directory that has it, with `env` and `stdin` as given.
   * Rejects with `CniError` (code 103) when it is in none of them or cannot be started.
   */
  delegate(
    type: string,
    path: readonly string[],
    env: Readonly<Record<string, string | undefined>>,
    stdin: Buffer,
  ): Promise<DelegateOutcome>;
  netns: NetnsProbe;
}

export interface PluginIo {
  env: Readonly<Record<string, string | undefined>>;
  /** The whole of stdin; rejects on a read failure (reported as code 5). */
  stdin(): Promise<Buffer>;
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/**
 * Run one CNI operation to completion: writes the result or error object to `io.stdout` and returns the exit code
 * (0 success, 1 failure). Never throws.
 */
export async function runPlugin(io: PluginIo, deps: PluginDeps): Promise<number> {
  let stdin: Buffer = Buffer.alloc(0);
  try {
    try {
      stdin = await io.stdin();
    } catch (err) {
      throw new CniError(
        CniErrorCode.ioFailure,
        'cannot read stdin',
        `the network configuration could not be read from stdin: ${(err as Error).message}`,
      );
    }
    const env = parseEnvironment(io.env);
    if (env.command === 'VERSION') {
      io.stdout.write(`${JSON.stringify(versionResult(stdin))}\n`);
      return 0;
    }
    const conf = parseNetConf(stdin);
    const command = new Command(io, deps, env, conf, stdin);
    if (env.command === 'ADD') io.stdout.write(`${JSON.stringify(encodeResult(await command.add(), conf.cniVersion))}\n`);
    else if (env.command === 'DEL') await command.del();
    else await command.check();
    return 0;
  } catch (err) {
    const error = errorResult(err, versionOfInput(stdin));
    io.stdout.write(`${JSON.stringify(error)}\n`);
    io.stderr.write(`weft CNI plugin: ${error.msg}${error.details ? `: ${error.details}` : ''}\n`);
    return 1;
  }
}

/** One operation on one attachment. */
class Command {
  private readonly daemon: PluginDaemon;

  constructor(
    private readonly io: PluginIo,
    private readonly deps: PluginDeps,
    private readonly env: CniEnvironment,
    private readonly conf: NetConf,
    private readonly stdin: Buffer,
  ) {
    this.daemon = deps.daemon(conf.httpAddr);
  }

  /** The `ipam.type` of another IPAM plugin, or undefined for weft's own. */
  private get delegatedIpam(): string | undefined {
    const type = this.conf.ipam?.type;
    return type === undefined || type === 'weft' ? undefined : type;
  }

  async add(): Promise<Result> {
    const { env, conf } = this;
    const netns = env.netns!;
    if (!(await this.deps.netns.exists(netns))) throw noNamespace(netns, env.containerId);
    let ipamResult: Result | undefined;
    let addresses: string[];
    const delegated = this.delegatedIpam;
    if (delegated !== undefined) {
      ipamResult = await this.runIpam(delegated, 'ADD');
      if (!ipamResult.ips || ipamResult.ips.length === 0) {
        await this.undoIpam(delegated);
        throw new CniError(
          CniErrorCode.ipamPluginFailed,
          'IPAM plugin gave no address',
          `the IPAM plugin "${delegated}" answered ADD without any "ips"; check its configuration`,
        );
      }
      addresses = ipamResult.ips.map((ip) => ip.address);
    } else {
      addresses = [conf.ipam?.subnet === undefined ? 'net:default' : `net:${conf.ipam.subnet}`];
    }
    const request: AttachRequest = { target: netns, addresses, ifname: env.ifname, containerId: env.containerId };
    const dnsName = dnsNameOf(env.args);
    if (dnsName !== undefined) request.dnsName = dnsName;
    else if (env.args.has('K8S_POD_NAME'))
      this.io.stderr.write(
        `weft CNI plugin: K8S_POD_NAME=${JSON.stringify(env.args.get('K8S_POD_NAME'))} is not a DNS name; the container gets no weftDNS name\n`,
      );

    let endpoint: EndpointReport;
    try {
      endpoint = await this.daemon.attach(request);
    } catch (err) {
      if (delegated !== undefined) await this.undoIpam(delegated);
      throw daemonError(err, 'attach', this.env);
    }
    // The delegated IPAM plugin's routes are the main plugin's to apply (spec section 4). A failure fails the ADD;
    // the runtime's DEL then removes the interface and the address.
    for (const route of ipamResult?.routes ?? []) {
      const gw =
        route.gw ??
        ipamResult!.ips!.find((ip) => ip.gateway !== undefined && ip.address.includes(':') === route.dst.includes(':'))?.gateway;
      try {
        await this.deps.netns.addRoute(netns, env.ifname, route.dst, gw);
      } catch (err) {
        throw new CniError(
          CniErrorCode.weftRefused,
          'cannot add the IPAM route',
          `route ${route.dst}${gw === undefined ? '' : ` via ${gw}`} on ${env.ifname} in ${netns}: ${(err as Error).message}`,
        );
      }
    }
    return this.resultOf(endpoint, ipamResult);
  }

  /** The ADD result: the container interface (and the host end), its addresses; merged after a prevResult. */
  private resultOf(endpoint: EndpointReport, ipamResult: Result | undefined): Result {
    const prev = this.conf.prevResult ?? {};
    const interfaces = [...(prev.interfaces ?? [])];
    if (endpoint.hostInterface !== undefined) interfaces.push({ name: endpoint.hostInterface });
    const index = interfaces.length;
    interfaces.push({ name: endpoint.interface, mac: endpoint.mac, sandbox: this.env.netns! });
    const gateways = new Map(
      (ipamResult?.ips ?? []).filter((ip) => ip.gateway !== undefined).map((ip) => [ip.address.split('/')[0], ip.gateway!]),
    );
    // weft's own IPAM: the host's exposed address in the subnet is the gateway, and the daemon set the default route.
    const v4 = endpoint.addresses.find((a) => !a.includes(':'));
    if (endpoint.gateway !== undefined && v4 !== undefined && !gateways.has(v4.split('/')[0]))
      gateways.set(v4.split('/')[0], endpoint.gateway);
    const ips: ResultIp[] = [
      ...(prev.ips ?? []),
      ...endpoint.addresses.map((address) => {
        const gateway = gateways.get(address.split('/')[0]);
        return gateway === undefined ? { address, interface: index } : { address, gateway, interface: index };
      }),
    ];
    const routes = [...(prev.routes ?? []), ...(ipamResult?.routes ?? [])];
    if (endpoint.gateway !== undefined && !routes.some((r) => r.dst === '0.0.0.0/0'))
      routes.push({ dst: '0.0.0.0/0', gw: endpoint.gateway });
    const dns = prev.dns ?? ipamResult?.dns ?? this.conf.dns;
    return { interfaces, ips, routes, ...(dns !== undefined && { dns }) };
  }

  async del(): Promise<void> {
    const { env } = this;
    try {
      await this.daemon.detachContainer(env.containerId, env.ifname);
    } catch (err) {
      throw daemonError(err, 'detach', env);
    }
    const delegated = this.delegatedIpam;
    if (delegated !== undefined) await this.runIpam(delegated, 'DEL');
  }

  async check(): Promise<void> {
    const { env, conf } = this;
    if (compareVersions(conf.cniVersion, '0.4.0') < 0) {
      throw new CniError(
        CniErrorCode.incompatibleVersion,
        'CHECK needs cniVersion 0.4.0 or later',
        `the configuration says "cniVersion": "${conf.cniVersion}", which has no CHECK; use "1.0.0"`,
      );
    }
    const prev = conf.prevResult;
    if (prev === undefined)
      throw new CniError(
        CniErrorCode.invalidConfig,
        'no prevResult',
        'CHECK needs the result of the ADD in "prevResult"; the runtime must pass it',
      );
    const netns = env.netns!;
    const index = (prev.interfaces ?? []).findIndex((i) => i.name === env.ifname && i.sandbox === netns);
    if (index < 0) throw checkFailed(`prevResult lists no interface ${env.ifname} in ${netns}: it is not an attachment weft made`);
    const expected = prev.interfaces![index]!;
    if (!(await this.deps.netns.exists(netns))) throw noNamespace(netns, env.containerId);

    let report: Report;
    try {
      report = await this.daemon.report();
    } catch (err) {
      throw daemonError(err, 'check', env);
    }
    if (!report.endpoints.some((e) => e.containerId === env.containerId && e.interface === env.ifname)) {
      throw checkFailed(
        `weft has no endpoint for container ${env.containerId} interface ${env.ifname} (weft ps lists what it has); delete and add the container again`,
      );
    }
    const link = await this.deps.netns.link(netns, env.ifname);
    if (link === undefined) throw checkFailed(`${netns} has no interface ${env.ifname} any more`);
    if (!link.isUp) throw checkFailed(`${env.ifname} in ${netns} is down`);
    if (expected.mac !== undefined && expected.mac.toLowerCase() !== link.mac.toLowerCase()) {
      throw checkFailed(`${env.ifname} in ${netns} has MAC ${link.mac}, prevResult says ${expected.mac}`);
    }
    const have = new Set(link.addresses);
    for (const ip of prev.ips ?? []) {
      if (ip.interface === index && !have.has(ip.address))
        throw checkFailed(`${env.ifname} in ${netns} lacks ${ip.address} (it has ${link.addresses.join(', ') || 'no address'})`);
    }
    const delegated = this.delegatedIpam;
    if (delegated !== undefined) await this.runIpam(delegated, 'CHECK');
  }

  /**
   * Run the delegated IPAM plugin with the same environment (CNI_COMMAND set to `command`) and the same stdin, as
   * the spec's delegation protocol says. ADD answers its result; a failure passes its error object through.
   */
  private async runIpam(type: string, command: 'ADD' | 'DEL' | 'CHECK'): Promise<Result> {
    const outcome = await this.deps.delegate(type, this.env.path, { ...this.io.env, CNI_COMMAND: command }, this.stdin);
    let parsed: unknown;
    try {
      parsed = outcome.stdout.trim() === '' ? undefined : JSON.parse(outcome.stdout);
    } catch {
      parsed = undefined;
    }
    if (outcome.exitCode !== 0) {
      if (isObject(parsed) && typeof parsed['code'] === 'number' && typeof parsed['msg'] === 'string') {
        const details = typeof parsed['details'] === 'string' && parsed['details'] !== '' ? parsed['details'] : `${type} ${command} failed`;
        throw new CniError(parsed['code'], parsed['msg'], details);
      }
      throw new CniError(
        CniErrorCode.ipamPluginFailed,
        'IPAM plugin failed',
        `the IPAM plugin "${type}" exited ${outcome.exitCode} on ${command} without an error object; see its output on stderr`,
      );
    }
    if (command !== 'ADD') return {};
    if (parsed === undefined)
      throw new CniError(
        CniErrorCode.ipamPluginFailed,
        'IPAM plugin gave no result',
        `the IPAM plugin "${type}" answered ADD with nothing on stdout`,
      );
    try {
      return parseResult(parsed, 'IPAM result');
    } catch (err) {
      await this.undoIpam(type);
      const why = err instanceof CniError ? err.details : String(err);
      throw new CniError(CniErrorCode.ipamPluginFailed, 'IPAM plugin gave a malformed result', `the IPAM plugin "${type}": ${why}`);
    }
  }

  /** Best effort: give back what a delegated IPAM ADD allocated, before reporting the ADD's failure. */
  private async undoIpam(type: string): Promise<void> {
    try {
      await this.runIpam(type, 'DEL');
    } catch (err) {
      this.io.stderr.write(`weft CNI plugin: undoing the IPAM ADD failed too: ${(err as Error).message}\n`);
    }
  }
}

function checkFailed(details: string): CniError {
  return new CniError(CniErrorCode.checkFailed, 'attachment is not as added', details);
}

function noNamespace(netns: string, containerId: string): CniError {
  return new CniError(
    CniErrorCode.unknownContainer,
    'no such network namespace',
    `CNI_NETNS=${netns} does not exist: container ${containerId} is gone (or the path is wrong)`,
  );
}

/**
 * The daemon's failures in CNI terms: not running or not answering is 11 (try again: a DaemonSet may be starting
 * it); a namespace it cannot find is 3; an existing interface 101; IPAM that is not ready yet (consensus pending,
 * the owner of the subnet's space across a partition) 11; anything else it refused, 100 with its code and message.
 */
function daemonError(err: unknown, what: string, env: CniEnvironment): CniError {
  const e = err as { code?: unknown; message?: unknown; httpAddr?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  switch (code) {
    case 'ERR_NOT_RUNNING':
      return new CniError(
        CniErrorCode.tryAgainLater,
        'weft is not running',
        `${message} (the plugin could not ${what} container ${env.containerId})`,
      );
    case 'ERR_API_UNREACHABLE':
      return new CniError(CniErrorCode.tryAgainLater, 'weft did not answer', message);
    case 'TARGET_NOT_FOUND':
      return new CniError(CniErrorCode.unknownContainer, 'no such network namespace', message);
    case 'ENDPOINT_EXISTS':
      return new CniError(CniErrorCode.interfaceExists, 'interface already exists', message);
    case 'ERR_IPAM_NOT_READY':
    case 'ERR_IPAM_OWNER_UNREACHABLE':
      return new CniError(CniErrorCode.tryAgainLater, 'weft IPAM is not ready', message);
    default:
      return new CniError(CniErrorCode.weftRefused, `weft refused to ${what}`, code === '' ? message : `${code}: ${message}`);
  }
}
