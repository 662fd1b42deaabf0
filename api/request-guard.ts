/**
 * Who the local API serves: the `weft` command and a local user's scripts (`curl 127.0.0.1:6784/...`), never a web
 * page. A browser on the host can reach 127.0.0.1:6784 too: a page can send it "simple" cross-site requests (a form
 * POST, `fetch(..., {mode: 'no-cors'})`, an `<img>`), and with DNS rebinding (a name of the attacker's that first
 * points at its own server, then at 127.0.0.1) even read the answers. So before any route runs, a request is refused
 * (403, counted by reason) when:
 *
 * - its `Host` is not one the API answers to: the address it listens on, `localhost`, `127.0.0.1` or `[::1]`, with
 *   the API's port (any IP literal when it listens on a wildcard address). DNS rebinding always carries the
 *   attacker's name in `Host`, so this stops it; no browser lets a page set `Host`.
 * - it carries an `Origin` header (browsers send one on every cross-origin POST and CORS fetch, and on form POSTs;
 *   nothing else weft knows sends one, and the API serves no page that could be its own origin), or
 * - it carries `Sec-Fetch-Site` other than `none` (browsers send it on every request, including no-cors GETs that
 *   have no `Origin`; `none` is a user typing the URL into the address bar).
 *
 * Then state-changing routes take POST only, with no body or a JSON one (`Content-Type: application/json`): the
 * content types a page may send without a CORS preflight (text/plain, forms) are refused with 415.
 */
import type { IncomingHttpHeaders } from 'node:http';
import ipaddr from 'ipaddr.js';

/** Why a request was refused; the keys of `ApiCounters.refused`. */
export type RefusalReason = 'host' | 'origin' | 'fetch_site' | 'content_type' | 'method' | 'not_found' | 'too_large' | 'bad_request';

/**
 * The API's counters: plain numbers, read at scrape time (`weft report` under `api`, and the metrics listener as
 * `weft_api_requests_refused_total{reason}`). One object is shared by the API handler and the daemon's report.
 */
export class ApiCounters {
  /** Requests answered 2xx. */
  served = 0;
  readonly refused: Record<RefusalReason, number> = {
    host: 0,
    origin: 0,
    fetch_site: 0,
    content_type: 0,
    method: 0,
    not_found: 0,
    too_large: 0,
    bad_request: 0,
  };

  /** A plain copy for the report. */
  snapshot(): { served: number; refused: Record<RefusalReason, number> } {
    return { served: this.served, refused: { ...this.refused } };
  }
}

/** A refusal: its reason (counter), stable code and a message a user can act on. */
export interface Refusal {
  reason: RefusalReason;
  code: string;
  message: string;
}

/** Hosts the API answers to, for a listener on `host:port` (the bound port, not 0). */
export interface HostPolicy {
  readonly port: number;
  /** Lower-case host names and bracket-free IP literals allowed in `Host` (with `port`). */
  readonly names: ReadonlySet<string>;
  /** The listener is on 0.0.0.0 or ::, so any IP literal of this machine may be the one a client used. */
  readonly isWildcard: boolean;
}

/** The policy for a listener bound to `host` (as in --http-addr, IPv6 without brackets) and `port`. */
export function hostPolicy(host: string, port: number): HostPolicy {
  const names = new Set(['localhost', '127.0.0.1', '::1', normaliseHost(host)]);
  const isWildcard = host === '0.0.0.0' || host === '::' || host === '';
  return { port, names, isWildcard };
}

/**
 * The refusal for a request with these headers, or undefined when it may go on to its route. `Host` and
 * browser headers only: method and content type are checked per route (`contentTypeRefusal`).
 */
export function callerRefusal(headers: IncomingHttpHeaders, policy: HostPolicy): Refusal | undefined {
  const hostHeader = headers.host;
  if (hostHeader === undefined || !isAllowedHost(hostHeader, policy)) {
    return {
      reason: 'host',
      code: 'ERR_FORBIDDEN_HOST',
      message:
        `refused: Host ${JSON.stringify(String(hostHeader ?? '').slice(0, 80))} is not this API's address; ` +
        `the API answers only to 127.0.0.1:${policy.port}, localhost:${policy.port} or the address it listens on (a web page with a DNS name cannot use it)`,
    };
  }
  if (headers.origin !== undefined) {
    return {
      reason: 'origin',
      code: 'ERR_FORBIDDEN_ORIGIN',
      message: `refused: the request comes from a web page (Origin ${JSON.stringify(headers.origin.slice(0, 80))}); the weft API serves the weft command and local scripts, never browsers`,
    };
  }
  const site = headers['sec-fetch-site'];
  if (site !== undefined && site !== 'none') {
    return {
      reason: 'fetch_site',
      code: 'ERR_FORBIDDEN_ORIGIN',
      message: `refused: the request comes from a web page (Sec-Fetch-Site ${JSON.stringify(String(site).slice(0, 40))}); the weft API serves the weft command and local scripts, never browsers`,
    };
  }
  return undefined;
}

/**
 * The refusal for a POST whose body is not JSON by its declared type: none (with an empty body) or
 * `application/json` are fine; `text/plain` and the form types, which a page may send cross-site without a
 * preflight, are not.
 */
export function contentTypeRefusal(headers: IncomingHttpHeaders): Refusal | undefined {
  const type = headers['content-type'];
  if (type === undefined) return undefined;
  const mediaType = type.split(';')[0]!.trim().toLowerCase();
  if (mediaType === 'application/json') return undefined;
  return {
    reason: 'content_type',
    code: 'ERR_UNSUPPORTED_MEDIA_TYPE',
    message: `refused: the body's Content-Type is ${JSON.stringify(type.slice(0, 80))}; send JSON with Content-Type: application/json (or no body at all)`,
  };
}

/** `Host` is `name:port` with an allowed name and the API's port (a missing port means 80). */
function isAllowedHost(header: string, policy: HostPolicy): boolean {
  const parsed = splitHostHeader(header);
  if (parsed === undefined || parsed.port !== policy.port) return false;
  const name = normaliseHost(parsed.host);
  if (policy.names.has(name)) return true;
  // On a wildcard address the client may have used any of this machine's addresses. An IP literal is never the
  // product of DNS rebinding (that needs a name), so any literal is as safe as 127.0.0.1.
  return policy.isWildcard && ipaddr.isValid(name) && (name.includes(':') || ipaddr.IPv4.isValidFourPartDecimal(name));
}

function splitHostHeader(header: string): { host: string; port: number } | undefined {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(header.trim());
  if (m === null) return undefined;
  return { host: m[1]!, port: m[2] === undefined ? 80 : Number(m[2]) };
}

function normaliseHost(host: string): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const lower = bare.toLowerCase();
  // One spelling per IPv6 address ("0:0::1" is "::1").
  return lower.includes(':') && ipaddr.IPv6.isValid(lower) ? ipaddr.IPv6.parse(lower).toString() : lower;
}
