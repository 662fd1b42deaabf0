/**
 * Docker's plugin protocol (libnetwork's "remote" network driver and "remote" IPAM driver), as dockerd 20.10 speaks
 * it: one HTTP POST per call on the plugin's unix socket, path `/<Interface>.<Method>` (e.g. `/NetworkDriver.Join`),
 * a JSON object in, a JSON object out. Field names are Go's: capitalised, and absent fields are omitted.
 *
 * Failures: dockerd's plugin client reads any non-200 answer as `{"Err": "message"}` and shows the message to the
 * user (`docker run` prints it), so every refusal here is a `PluginError` with a message a person can act on. (A 200
 * answer would need `Err` for the network driver but `Error` for IPAM; a non-200 status avoids that split.)
 *
 * This file holds the request and response shapes and the validation of untrusted request bodies; the drivers
 * (network-driver.ts, ipam-driver.ts) work on the validated types only. Notes for outsiders: docs/docker.md.
 */
import { WeftError } from '../runtime/errors.js';

/** What `Plugin.Activate` answers: weft is both a network driver and an IPAM driver. */
export const IMPLEMENTS = ['NetworkDriver', 'IpamDriver'] as const;

/** The content type dockerd expects on plugin answers. */
export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1+json';

/** Docker's option key for the gateway an IPAM driver hands back with a pool (libnetwork netlabel.Gateway). */
export const GATEWAY_OPTION = 'com.docker.network.gateway';
/** Set in RequestAddress options when dockerd asks for a network's gateway (ipamapi.RequestAddressType). */
export const REQUEST_ADDRESS_TYPE = 'RequestAddressType';
/** libnetwork's key for the user's `-o key=value` driver options inside CreateNetwork's Options (netlabel.GenericData). */
export const GENERIC_DATA = 'com.docker.network.generic';

/** A refused plugin call: answered with `status` and `{"Err": message}`. */
export class PluginError extends WeftError {
  constructor(
    readonly code: string,
    message: string,
    override readonly status = 500,
  ) {
    super(message);
  }
}

/** A request body that is not what the protocol says (not JSON, a missing or mistyped field). */
export class PluginBadRequestError extends PluginError {
  constructor(method: string, why: string) {
    super('ERR_PLUGIN_BAD_REQUEST', `weft plugin: bad ${method} request: ${why}`, 400);
  }
}

// Limits on what a request may carry: far above what dockerd sends (ids are 64 hex digits, options a few entries).
const MAX_ID_CHARS = 128;
const MAX_STRING_CHARS = 4096;
const MAX_OPTIONS = 256;

// ---- network driver ---------------------------------------------------------------------------------------------

export interface IpamData {
  AddressSpace: string;
  Pool: string;
  Gateway?: string;
  AuxAddresses?: Record<string, string>;
}

export interface CreateNetworkRequest {
  NetworkID: string;
  /** The user's `-o key=value` options (from Options[com.docker.network.generic]), strings only. */
  driverOptions: Record<string, string>;
  IPv4Data: IpamData[];
  IPv6Data: IpamData[];
}

export interface NetworkRequest {
  NetworkID: string;
}

export interface EndpointRequest {
  NetworkID: string;
  EndpointID: string;
}

export interface CreateEndpointRequest extends EndpointRequest {
  Interface: { Address: string; AddressIPv6: string; MacAddress: string };
}

export interface JoinRequest extends EndpointRequest {
  SandboxKey: string;
}

export interface CreateEndpointResponse {
  Interface?: { MacAddress?: string };
}

export interface JoinResponse {
  InterfaceName: { SrcName: string; DstPrefix: string };
  Gateway?: string;
  StaticRoutes?: Array<{ Destination: string; RouteType: number; NextHop?: string }>;
  DisableGatewayService?: boolean;
}

// ---- IPAM driver ------------------------------------------------------------------------------------------------

export interface RequestPoolRequest {
  AddressSpace: string;
  Pool: string;
  SubPool: string;
  Options: Record<string, string>;
  V6: boolean;
}

export interface RequestPoolResponse {
  PoolID: string;
  Pool: string;
  Data: Record<string, string>;
}

export interface ReleasePoolRequest {
  PoolID: string;
}

export interface RequestAddressRequest {
  PoolID: string;
  Address: string;
  Options: Record<string, string>;
}

export interface ReleaseAddressRequest {
  PoolID: string;
  Address: string;
}

// ---- parsing ----------------------------------------------------------------------------------------------------

type Body = Record<string, unknown>;

/** Parse a request body: JSON, an object (an empty body is `{}`). Throws `PluginBadRequestError`. */
export function parseBody(method: string, text: string): Body {
  if (text.trim().length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new PluginBadRequestError(method, 'the body is not JSON');
  }
  // dockerd sends `null` for calls without arguments (GetCapabilities).
  if (parsed === null) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new PluginBadRequestError(method, 'the body must be a JSON object');
  return parsed as Body;
}

function id(method: string, body: Body, field: string): string {
  const v = body[field];
  if (typeof v !== 'string' || v.length === 0) throw new PluginBadRequestError(method, `${field} is missing (a non-empty string)`);
  if (v.length > MAX_ID_CHARS || !/^[A-Za-z0-9_.-]+$/.test(v)) {
    throw new PluginBadRequestError(
      method,
      `${field} ${JSON.stringify(v.slice(0, 80))} is not an id (letters, digits, '_', '.', '-', at most ${MAX_ID_CHARS})`,
    );
  }
  return v;
}

function str(method: string, body: Body, field: string): string {
  const v = body[field];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string' || v.length > MAX_STRING_CHARS) throw new PluginBadRequestError(method, `${field} must be a string`);
  return v;
}

function stringMap(method: string, body: Body, field: string): Record<string, string> {
  const v = body[field];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new PluginBadRequestError(method, `${field} must be an object of strings`);
  const entries = Object.entries(v as Body);
  if (entries.length > MAX_OPTIONS) throw new PluginBadRequestError(method, `${field} has more than ${MAX_OPTIONS} entries`);
  const out: Record<string, string> = {};
  for (const [k, val] of entries) {
    if (typeof val !== 'string' || val.length > MAX_STRING_CHARS) throw new PluginBadRequestError(method, `${field}.${k} must be a string`);
    out[k] = val;
  }
  return out;
}

function ipamDataList(method: string, body: Body, field: string): IpamData[] {
  const v = body[field];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.length > MAX_OPTIONS) throw new PluginBadRequestError(method, `${field} must be a list of pools`);
  return v.map((item, i) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item))
      throw new PluginBadRequestError(method, `${field}[${i}] must be an object`);
    const d = item as Body;
    const out: IpamData = { AddressSpace: str(method, d, 'AddressSpace'), Pool: str(method, d, 'Pool') };
    const gw = str(method, d, 'Gateway');
    if (gw !== '') out.Gateway = gw;
    return out;
  });
}

export function parseCreateNetwork(body: Body): CreateNetworkRequest {
  const m = 'CreateNetwork';
  const options = body['Options'];
  const driverOptions: Record<string, string> = {};
  if (options !== undefined && options !== null) {
    if (typeof options !== 'object' || Array.isArray(options)) throw new PluginBadRequestError(m, 'Options must be an object');
    const generic = (options as Body)[GENERIC_DATA];
    // Only string options are ours to read; dockerd puts other things (booleans) beside them.
    if (generic !== undefined && generic !== null && typeof generic === 'object' && !Array.isArray(generic)) {
      for (const [k, val] of Object.entries(generic as Body).slice(0, MAX_OPTIONS)) if (typeof val === 'string') driverOptions[k] = val;
    }
  }
  return {
    NetworkID: id(m, body, 'NetworkID'),
    driverOptions,
    IPv4Data: ipamDataList(m, body, 'IPv4Data'),
    IPv6Data: ipamDataList(m, body, 'IPv6Data'),
  };
}

export function parseNetworkRequest(method: string, body: Body): NetworkRequest {
  return { NetworkID: id(method, body, 'NetworkID') };
}

export function parseEndpointRequest(method: string, body: Body): EndpointRequest {
  return { NetworkID: id(method, body, 'NetworkID'), EndpointID: id(method, body, 'EndpointID') };
}

export function parseCreateEndpoint(body: Body): CreateEndpointRequest {
  const m = 'CreateEndpoint';
  const base = parseEndpointRequest(m, body);
  const iface = body['Interface'];
  if (iface === undefined || iface === null) {
    return { ...base, Interface: { Address: '', AddressIPv6: '', MacAddress: '' } };
  }
  if (typeof iface !== 'object' || Array.isArray(iface)) throw new PluginBadRequestError(m, 'Interface must be an object');
  const i = iface as Body;
  return {
    ...base,
    Interface: { Address: str(m, i, 'Address'), AddressIPv6: str(m, i, 'AddressIPv6'), MacAddress: str(m, i, 'MacAddress') },
  };
}

export function parseJoin(body: Body): JoinRequest {
  const m = 'Join';
  return { ...parseEndpointRequest(m, body), SandboxKey: str(m, body, 'SandboxKey') };
}

export function parseRequestPool(body: Body): RequestPoolRequest {
  const m = 'RequestPool';
  const v6 = body['V6'];
  if (v6 !== undefined && v6 !== null && typeof v6 !== 'boolean') throw new PluginBadRequestError(m, 'V6 must be true or false');
  return {
    AddressSpace: str(m, body, 'AddressSpace'),
    Pool: str(m, body, 'Pool'),
    SubPool: str(m, body, 'SubPool'),
    Options: stringMap(m, body, 'Options'),
    V6: v6 === true,
  };
}

export function parseReleasePool(body: Body): ReleasePoolRequest {
  const m = 'ReleasePool';
  const poolId = str(m, body, 'PoolID');
  if (poolId === '') throw new PluginBadRequestError(m, 'PoolID is missing');
  return { PoolID: poolId };
}

export function parseRequestAddress(body: Body): RequestAddressRequest {
  const m = 'RequestAddress';
  const poolId = str(m, body, 'PoolID');
  if (poolId === '') throw new PluginBadRequestError(m, 'PoolID is missing');
  return { PoolID: poolId, Address: str(m, body, 'Address'), Options: stringMap(m, body, 'Options') };
}

export function parseReleaseAddress(body: Body): ReleaseAddressRequest {
  const m = 'ReleaseAddress';
  const poolId = str(m, body, 'PoolID');
  const address = str(m, body, 'Address');
  if (poolId === '') throw new PluginBadRequestError(m, 'PoolID is missing');
  if (address === '') throw new PluginBadRequestError(m, 'Address is missing');
  return { PoolID: poolId, Address: address };
}
