/**
 * The CNI protocol as weft's plugin speaks it (CNI spec 1.0.0, and the older versions it still answers): the
 * environment a runtime sets, the plugin configuration it writes on stdin, and the result, error and version objects
 * the plugin writes on stdout. Pure: parsing and encoding only, with explicit limits, so every refusal is a
 * `CniError` carrying one of the spec's codes.
 *
 *   runtime --env CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH--> plugin
 *           --stdin {cniVersion, name, type, ipam?, dns?, prevResult?, runtimeConfig?, ...}-->
 *           <--stdout result (ADD), version (VERSION), nothing (DEL, CHECK) or error; exit 0 or 1--
 */
import { WeftError } from '../runtime/errors.js';

/** Spec versions weft answers, oldest first. 0.3.0 brought the result type this plugin returns; 0.4.0 CHECK. */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
/** The version weft speaks when the input names none (VERSION with an empty stdin). */
export const CURRENT_VERSION: CniVersion = '1.0.0';

/**
 * Error codes: 1-11 are the spec's well-known ones; 100 and up are weft's own (the spec leaves 100+ to plugins).
 */
export const CniErrorCode = {
  /** 1: the configuration's cniVersion is not one weft speaks (or CHECK below 0.4.0). */
  incompatibleVersion: 1,
  /** 2: a field weft does not support; the message names the key and value. */
  unsupportedField: 2,
  /** 3: the container (its network namespace) does not exist; the runtime need not clean up. */
  unknownContainer: 3,
  /** 4: a CNI_* environment variable is missing or malformed; the message names it. */
  invalidEnvironment: 4,
  /** 5: stdin could not be read. */
  ioFailure: 5,
  /** 6: stdin is not JSON (or a result is not the shape the spec gives). */
  decodeFailure: 6,
  /** 7: the configuration is JSON but invalid. */
  invalidConfig: 7,
  /** 11: something transient (the weft daemon not running yet, IPAM not ready): the runtime may retry. */
  tryAgainLater: 11,
  /** 100: the weft daemon refused the request; details carry its code and message. */
  weftRefused: 100,
  /** 101: the interface already exists in the container (ADD twice without DEL, or a second weft network). */
  interfaceExists: 101,
  /** 102: CHECK found the attachment missing or different from prevResult. */
  checkFailed: 102,
  /** 103: the delegated IPAM plugin could not be run, or answered something that is not a CNI result. */
  ipamPluginFailed: 103,
} as const;

/** A failure the plugin reports to the runtime as the spec's error object. */
export class CniError extends WeftError {
  readonly code = 'ERR_CNI';
  constructor(
    /** The numeric CNI error code (see `CniErrorCode`). */
    readonly cniCode: number,
    /** Short: what failed. */
    readonly msg: string,
    /** Longer: the value at fault and what to do. */
    readonly details: string,
  ) {
    super(`${msg}: ${details}`);
  }
}

/** The spec's error object (Section 5, "Error"). */
export interface ErrorResult {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/** The spec's version object (Section 5, "Version"). */
export interface VersionResult {
  cniVersion: string;
  supportedVersions: string[];
}

export interface ResultInterface {
  name: string;
  mac?: string;
  /** The namespace path for an interface inside the container; absent on the host. */
  sandbox?: string;
}

export interface ResultIp {
  /** CIDR form: the address and its prefix length. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface ResultRoute {
  dst: string;
  gw?: string;
}

export interface ResultDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A success result, version-neutral (no per-ip `version`: `encodeResult` adds it for versions before 1.0.0). */
export interface Result {
  interfaces?: ResultInterface[];
  ips?: ResultIp[];
  routes?: ResultRoute[];
  dns?: ResultDns;
}

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION';

/** The CNI_* environment, checked. */
export interface CniEnvironment {
  command: CniCommand;
  /** CNI_CONTAINERID; '' only for VERSION. */
  containerId: string;
  /** CNI_NETNS, an absolute path; undefined when not given (allowed for DEL and VERSION). */
  netns: string | undefined;
  /** CNI_IFNAME; '' only for VERSION. */
  ifname: string;
  /** CNI_ARGS as key/value pairs, in order. */
  args: Map<string, string>;
  /** CNI_PATH split on ':' (empty entries dropped). */
  path: string[];
}

/** The plugin configuration on stdin, as far as weft reads it. Unknown keys are kept in `raw` and ignored. */
export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  /** The `ipam` section; undefined or type 'weft' means weft's own IPAM. */
  ipam: { type: string; subnet?: string } | undefined;
  /** The well-known `dns` section, copied into the result. */
  dns: ResultDns | undefined;
  /** The weft API to ask ("host:port"). @default '127.0.0.1:6784' */
  httpAddr: string;
  /** The previous plugin's result (chained), or the ADD result (CHECK, DEL from 0.4.0). */
  prevResult: Result | undefined;
  /** The whole object as read. */
  raw: Record<string, unknown>;
}

// ---- limits: far above what any runtime sends, low enough that bad input costs nothing -----------------------------
/** Largest stdin accepted: a configuration with a prevResult is a few KiB. */
export const MAX_STDIN_BYTES = 1024 * 1024;
const MAX_STRING_CHARS = 4096;
const MAX_LIST_LENGTH = 256;
const MAX_CNI_ARGS_CHARS = 8192;
const MAX_CNI_ARGS_PAIRS = 64;
const MAX_CNI_PATH_ENTRIES = 64;
/** PATH_MAX. */
const MAX_PATH_CHARS = 4096;

/** The weft API's default address (as the CLI's). */
export const DEFAULT_HTTP_ADDR = '127.0.0.1:6784';

const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION'];
/** CNI's rule for container ids and network names: alphanumeric first, then alphanumerics, '_', '.', '-'. */
const CNI_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** IFNAMSIZ - 1 characters, none of '/', ':' or whitespace (the kernel's rule, as netdev/validation.ts). */
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const SEMVER_RE = /^\d{1,4}\.\d{1,4}\.\d{1,4}$/;
const MAC_RE = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;

/** Whether `v` is a version weft speaks. */
export function isSupportedVersion(v: unknown): v is CniVersion {
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** -1, 0 or 1 as semantic version `a` is below, equal to or above `b` (both X.Y.Z). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/**
 * Read and check the CNI_* variables for the command they name. Throws `CniError` code 4 naming the variable:
 * missing CNI_COMMAND, CNI_CONTAINERID, CNI_IFNAME (ADD, DEL, CHECK) or CNI_NETNS (ADD, CHECK), or any malformed.
 */
export function parseEnvironment(env: Readonly<Record<string, string | undefined>>): CniEnvironment {
  const rawCommand = env['CNI_COMMAND'];
  if (rawCommand === undefined || rawCommand === '') {
    throw envError(
      'CNI_COMMAND is not set',
      'this is a CNI plugin: a container runtime runs it with CNI_COMMAND=ADD, DEL, CHECK or VERSION and the network configuration on stdin',
    );
  }
  const command = rawCommand.toUpperCase() as CniCommand;
  if (!COMMANDS.includes(command))
    throw envError('CNI_COMMAND is invalid', `CNI_COMMAND=${quote(rawCommand)}: expected ADD, DEL, CHECK or VERSION`);
  const path = parsePath(env['CNI_PATH']);
  if (command === 'VERSION') return { command, containerId: '', netns: undefined, ifname: '', args: new Map(), path };

  const containerId = env['CNI_CONTAINERID'] ?? '';
  if (containerId === '') throw envError('CNI_CONTAINERID is not set', `${command} needs the container id in CNI_CONTAINERID`);
  if (containerId.length > 128 || !CNI_NAME_RE.test(containerId)) {
    throw envError(
      'CNI_CONTAINERID is invalid',
      `CNI_CONTAINERID=${quote(containerId)}: expected 1-128 letters, digits, '_', '.', '-', starting with a letter or digit`,
    );
  }
  const ifname = env['CNI_IFNAME'] ?? '';
  if (ifname === '')
    throw envError('CNI_IFNAME is not set', `${command} needs the interface name inside the container in CNI_IFNAME, e.g. eth0`);
  if (!IFNAME_RE.test(ifname) || ifname === '.' || ifname === '..') {
    throw envError('CNI_IFNAME is invalid', `CNI_IFNAME=${quote(ifname)}: an interface name is 1-15 letters, digits, '_', '.', '-'`);
  }
  const rawNetns = env['CNI_NETNS'];
  let netns: string | undefined;
  if (rawNetns === undefined || rawNetns === '') {
    if (command !== 'DEL')
      throw envError('CNI_NETNS is not set', `${command} needs the container's network namespace path in CNI_NETNS, e.g. /run/netns/NAME`);
  } else {
    if (!rawNetns.startsWith('/') || rawNetns.length > MAX_PATH_CHARS || rawNetns.includes('\0')) {
      throw envError(
        'CNI_NETNS is invalid',
        `CNI_NETNS=${quote(rawNetns)}: expected an absolute path to a network namespace, e.g. /run/netns/NAME or /proc/PID/ns/net`,
      );
    }
    netns = rawNetns;
  }
  return { command, containerId, netns, ifname, args: parseCniArgs(env['CNI_ARGS'] ?? ''), path };
}

/** CNI_ARGS "K=V;K2=V2" into pairs. Throws `CniError` code 4 for a pair without '=' or over the limits. */
export function parseCniArgs(text: string): Map<string, string> {
  const args = new Map<string, string>();
  if (text === '') return args;
  if (text.length > MAX_CNI_ARGS_CHARS)
    throw envError('CNI_ARGS is too long', `CNI_ARGS has ${text.length} characters; weft reads at most ${MAX_CNI_ARGS_CHARS}`);
  const pairs = text.split(';').filter((p) => p !== '');
  if (pairs.length > MAX_CNI_ARGS_PAIRS)
    throw envError('CNI_ARGS has too many pairs', `CNI_ARGS has ${pairs.length} pairs; weft reads at most ${MAX_CNI_ARGS_PAIRS}`);
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    if (eq <= 0 || !/^[A-Za-z0-9_-]{1,128}$/.test(key)) {
      throw envError(
        'CNI_ARGS is invalid',
        `CNI_ARGS pair ${quote(pair)}: expected KEY=VALUE pairs separated by ';', e.g. K8S_POD_NAME=web;K8S_POD_NAMESPACE=default`,
      );
    }
    args.set(key, pair.slice(eq + 1));
  }
  return args;
}

/**
 * The DNS name a runtime gave the container: K8S_POD_NAME from CNI_ARGS when it is a valid DNS name (lower-cased),
 * else undefined. Podman passes its container name there, which may hold '_' (not valid in DNS): that container
 * simply gets no name, and the attach goes on.
 */
export function dnsNameOf(args: ReadonlyMap<string, string>): string | undefined {
  const name = args.get('K8S_POD_NAME');
  if (name === undefined || !isDnsName(name)) return undefined;
  return name.toLowerCase();
}

/** RFC 1123 host name: labels of 1-63 letters, digits and inner hyphens, 253 characters in all. */
export function isDnsName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && name.split('.').every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
}

function parsePath(text: string | undefined): string[] {
  if (text === undefined || text === '') return [];
  const dirs = text.split(':').filter((d) => d !== '');
  if (dirs.length > MAX_CNI_PATH_ENTRIES || dirs.some((d) => d.length > MAX_PATH_CHARS || d.includes('\0'))) {
    throw envError('CNI_PATH is invalid', `CNI_PATH must be at most ${MAX_CNI_PATH_ENTRIES} directories separated by ':'`);
  }
  return dirs;
}

/**
 * The cniVersion the input asks for, read as leniently as possible, for error objects ("the same value as provided
 * by the configuration"): the input's when it is a version-looking string, else weft's current one.
 */
export function versionOfInput(stdin: Buffer | string): string {
  try {
    const parsed: unknown = JSON.parse(typeof stdin === 'string' ? stdin : stdin.toString('utf8'));
    const v = (parsed as { cniVersion?: unknown } | null)?.cniVersion;
    if (typeof v === 'string' && SEMVER_RE.test(v)) return v;
  } catch {
    // not JSON: the error object says so
  }
  return CURRENT_VERSION;
}

/** The answer to VERSION: the input's cniVersion (or 1.0.0 for an empty stdin) and every version weft speaks. */
export function versionResult(stdin: Buffer): VersionResult {
  const text = stdin.toString('utf8').trim();
  if (text !== '') {
    const parsed = parseJsonObject(text);
    const v = parsed['cniVersion'];
    if (v !== undefined && (typeof v !== 'string' || !SEMVER_RE.test(v))) {
      throw new CniError(CniErrorCode.decodeFailure, 'invalid cniVersion', `"cniVersion": ${quote(v)} is not a version like "1.0.0"`);
    }
    return { cniVersion: v ?? CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
  }
  return { cniVersion: CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/**
 * Parse the plugin configuration from stdin. Throws `CniError`: 6 when it is not a JSON object, 1 for a cniVersion
 * weft does not speak, 7 for a missing or malformed field (naming it), 2 for a field weft does not support
 * (`ipMasq: true`).
 */
export function parseNetConf(stdin: Buffer): NetConf {
  if (stdin.length > MAX_STDIN_BYTES) {
    throw new CniError(
      CniErrorCode.decodeFailure,
      'configuration too large',
      `stdin has ${stdin.length} bytes; weft reads at most ${MAX_STDIN_BYTES}`,
    );
  }
  const raw = parseJsonObject(stdin.toString('utf8'));
  const version = raw['cniVersion'];
  if (version === undefined)
    throw invalidConfig('"cniVersion" is missing', `give the spec version, e.g. "cniVersion": "${CURRENT_VERSION}"`);
  if (!isSupportedVersion(version)) {
    throw new CniError(
      CniErrorCode.incompatibleVersion,
      'incompatible CNI version',
      `"cniVersion": ${quote(version)} is not supported; weft speaks ${SUPPORTED_VERSIONS.join(', ')}: change the network configuration's cniVersion`,
    );
  }
  const name = requiredString(raw, 'name');
  if (!CNI_NAME_RE.test(name))
    throw invalidConfig(
      'invalid "name"',
      `"name": ${quote(name)}: a network name is letters, digits, '_', '.', '-', starting with a letter or digit`,
    );
  const type = requiredString(raw, 'type');
  if (type.includes('/') || type.includes('\\'))
    throw invalidConfig('invalid "type"', `"type": ${quote(type)} must be a plugin file name, without '/'`);
  if (raw['ipMasq'] !== undefined && raw['ipMasq'] !== false) {
    throw new CniError(
      CniErrorCode.unsupportedField,
      'unsupported field',
      `"ipMasq": ${quote(raw['ipMasq'])}: weft does not masquerade; remove it, or chain a plugin that does`,
    );
  }
  const httpAddr = raw['httpAddr'] === undefined ? DEFAULT_HTTP_ADDR : requiredString(raw, 'httpAddr');
  const port = Number(httpAddr.slice(httpAddr.lastIndexOf(':') + 1));
  if (!/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(httpAddr) || port < 1 || port > 65535)
    throw invalidConfig('invalid "httpAddr"', `"httpAddr": ${quote(httpAddr)}: expected host:port, e.g. ${DEFAULT_HTTP_ADDR}`);
  return {
    cniVersion: version,
    name,
    type,
    ipam: parseIpam(raw['ipam']),
    dns: raw['dns'] === undefined ? undefined : parseDns(raw['dns'], 'dns'),
    httpAddr,
    prevResult: raw['prevResult'] === undefined ? undefined : parseResult(raw['prevResult'], 'prevResult'),
    raw,
  };
}

function parseIpam(value: unknown): NetConf['ipam'] {
  if (value === undefined) return undefined;
  if (!isObject(value))
    throw invalidConfig('invalid "ipam"', '"ipam" must be an object with a "type", e.g. {"type": "weft"} or {"type": "host-local", ...}');
  const type = value['type'];
  if (
    typeof type !== 'string' ||
    type === '' ||
    type.length > 255 ||
    type.includes('/') ||
    type.includes('\\') ||
    type === '.' ||
    type === '..'
  ) {
    throw invalidConfig('invalid "ipam.type"', `"ipam.type": ${quote(type)} must name an IPAM plugin file ("weft" for weft's own IPAM)`);
  }
  const subnet = value['subnet'];
  if (type === 'weft' && subnet !== undefined) {
    if (typeof subnet !== 'string' || !isIpv4Cidr(subnet))
      throw invalidConfig(
        'invalid "ipam.subnet"',
        `"ipam.subnet": ${quote(subnet)}: expected an IPv4 subnet inside weft's range, e.g. 10.32.8.0/24`,
      );
    return { type, subnet };
  }
  return { type };
}

/**
 * Check a success result (a prevResult, or a delegated IPAM plugin's answer) against the spec's shapes, of any
 * version weft speaks: 0.3.x/0.4.0 results carry a per-ip "version", which is dropped here. Throws `CniError` code
 * 6 naming the field at fault.
 */
export function parseResult(value: unknown, what: string): Result {
  if (!isObject(value)) throw decodeError(what, 'must be a result object');
  const result: Result = {};
  const interfaces = optionalList(value, 'interfaces', what);
  if (interfaces) {
    result.interfaces = interfaces.map((i, n) => {
      const at = `${what}.interfaces[${n}]`;
      if (!isObject(i) || !isShortString(i['name'])) throw decodeError(at, 'needs a "name"');
      const out: ResultInterface = { name: i['name'] };
      if (i['mac'] !== undefined) {
        if (!isShortString(i['mac'])) throw decodeError(`${at}.mac`, 'must be a string');
        out.mac = i['mac'];
      }
      if (i['sandbox'] !== undefined) {
        if (typeof i['sandbox'] !== 'string' || i['sandbox'].length > MAX_PATH_CHARS) throw decodeError(`${at}.sandbox`, 'must be a path');
        if (i['sandbox'] !== '') out.sandbox = i['sandbox'];
      }
      return out;
    });
  }
  const ips = optionalList(value, 'ips', what);
  if (ips) {
    result.ips = ips.map((ip, n) => {
      const at = `${what}.ips[${n}]`;
      if (!isObject(ip) || typeof ip['address'] !== 'string' || !isCidr(ip['address']))
        throw decodeError(`${at}.address`, 'must be an address in CIDR form, e.g. 10.32.0.5/12');
      const out: ResultIp = { address: ip['address'] };
      if (ip['gateway'] !== undefined && ip['gateway'] !== '') {
        if (typeof ip['gateway'] !== 'string' || !isIp(ip['gateway'])) throw decodeError(`${at}.gateway`, 'must be an IP address');
        out.gateway = ip['gateway'];
      }
      if (ip['interface'] !== undefined && ip['interface'] !== null) {
        const index = ip['interface'];
        if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= (result.interfaces?.length ?? 0)) {
          throw decodeError(`${at}.interface`, 'must be an index into "interfaces"');
        }
        out.interface = index;
      }
      return out;
    });
  }
  const routes = optionalList(value, 'routes', what);
  if (routes) {
    result.routes = routes.map((r, n) => {
      const at = `${what}.routes[${n}]`;
      if (!isObject(r) || typeof r['dst'] !== 'string' || !isCidr(r['dst']))
        throw decodeError(`${at}.dst`, 'must be a destination in CIDR form');
      const out: ResultRoute = { dst: r['dst'] };
      if (r['gw'] !== undefined && r['gw'] !== '') {
        if (typeof r['gw'] !== 'string' || !isIp(r['gw'])) throw decodeError(`${at}.gw`, 'must be an IP address');
        out.gw = r['gw'];
      }
      return out;
    });
  }
  if (value['dns'] !== undefined) result.dns = parseDns(value['dns'], `${what}.dns`, decodeError);
  return result;
}

function parseDns(value: unknown, what: string, fail: (field: string, expected: string) => CniError = invalidDns): ResultDns {
  if (!isObject(value)) throw fail(what, 'must be an object');
  const dns: ResultDns = {};
  for (const key of ['nameservers', 'search', 'options'] as const) {
    const list = value[key];
    if (list === undefined) continue;
    if (!Array.isArray(list) || list.length > MAX_LIST_LENGTH || !list.every(isShortString))
      throw fail(`${what}.${key}`, 'must be a list of strings');
    if (key === 'nameservers' && !list.every((s: string) => isIp(s))) throw fail(`${what}.nameservers`, 'must be IP addresses');
    dns[key] = [...list];
  }
  if (value['domain'] !== undefined) {
    if (!isShortString(value['domain'])) throw fail(`${what}.domain`, 'must be a string');
    dns.domain = value['domain'];
  }
  return dns;
}

/**
 * A result as the JSON object of `cniVersion`: 1.0.0 as is; 0.3.x and 0.4.0 add each ip's "version" ("4" or "6"),
 * which those versions require. Empty sections are left out.
 */
export function encodeResult(result: Result, cniVersion: CniVersion): Record<string, unknown> {
  const isLegacy = compareVersions(cniVersion, '1.0.0') < 0;
  const out: Record<string, unknown> = { cniVersion };
  if (result.interfaces && result.interfaces.length > 0) out['interfaces'] = result.interfaces.map((i) => ({ ...i }));
  if (result.ips && result.ips.length > 0) {
    out['ips'] = result.ips.map((ip) => (isLegacy ? { version: ip.address.includes(':') ? '6' : '4', ...ip } : { ...ip }));
  }
  if (result.routes && result.routes.length > 0) out['routes'] = result.routes.map((r) => ({ ...r }));
  out['dns'] = result.dns ? { ...result.dns } : {};
  return out;
}

/** The spec's error object for anything thrown: a `CniError` as is, anything else as code 100 with its message. */
export function errorResult(err: unknown, cniVersion: string): ErrorResult {
  if (err instanceof CniError) return { cniVersion, code: err.cniCode, msg: err.msg, details: err.details };
  const message = err instanceof Error ? err.message : String(err);
  return { cniVersion, code: CniErrorCode.weftRefused, msg: 'weft plugin failed', details: message };
}

// ---- small checks ---------------------------------------------------------------------------------------------------

function parseJsonObject(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CniError(
      CniErrorCode.decodeFailure,
      'configuration is not JSON',
      `stdin must hold the network configuration as one JSON object: ${(err as Error).message}`,
    );
  }
  if (!isObject(parsed))
    throw new CniError(
      CniErrorCode.decodeFailure,
      'configuration is not a JSON object',
      'stdin must hold one JSON object, e.g. {"cniVersion": "1.0.0", "name": "weft", "type": "weft"}',
    );
  return parsed;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function isShortString(v: unknown): v is string {
  return typeof v === 'string' && v.length <= MAX_STRING_CHARS;
}

function requiredString(raw: Record<string, unknown>, key: string): string {
  const v = raw[key];
  if (v === undefined) throw invalidConfig(`"${key}" is missing`, `the network configuration needs "${key}"`);
  if (typeof v !== 'string' || v === '' || v.length > 255)
    throw invalidConfig(`invalid "${key}"`, `"${key}": ${quote(v)} must be a non-empty string of at most 255 characters`);
  return v;
}

function optionalList(value: Record<string, unknown>, key: string, what: string): unknown[] | undefined {
  const v = value[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length > MAX_LIST_LENGTH) throw decodeError(`${what}.${key}`, `must be a list of at most ${MAX_LIST_LENGTH}`);
  return v;
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function isIp(s: string): boolean {
  return IPV4_RE.test(s) || (s.includes(':') && s.length <= 45 && /^[0-9A-Fa-f:.]+$/.test(s));
}

function isCidr(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash < 0) return false;
  const addr = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits)) return false;
  return IPV4_RE.test(addr) ? Number(bits) <= 32 : isIp(addr) && Number(bits) <= 128;
}

function isIpv4Cidr(s: string): boolean {
  return isCidr(s) && IPV4_RE.test(s.slice(0, s.indexOf('/')));
}

export function isMac(s: string): boolean {
  return MAC_RE.test(s);
}

function quote(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

function envError(msg: string, details: string): CniError {
  return new CniError(CniErrorCode.invalidEnvironment, msg, details);
}

function invalidConfig(msg: string, details: string): CniError {
  return new CniError(CniErrorCode.invalidConfig, msg, details);
}

function invalidDns(field: string, expected: string): CniError {
  return invalidConfig(`invalid "${field}"`, `"${field}" ${expected}`);
}

function decodeError(field: string, expected: string): CniError {
  return new CniError(CniErrorCode.decodeFailure, `invalid ${field.split('.')[0]}`, `"${field}" ${expected}`);
}
