/**
 * Drive a CNI plugin exactly as a runtime does (CNI spec 1.0.0, section 2): exec the plugin file inside the host's
 * network namespace with only the CNI_* variables (and a PATH) in its environment and the configuration on stdin;
 * read the result or error object from stdout and the exit code. Plus checks of the spec's JSON shapes.
 */
import { spawn } from 'node:child_process';
import { expect } from 'vitest';
import type { NamespaceHandle } from './hosts.js';

export interface CniCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION';
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
}

export interface CniOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout parsed, when it is JSON. */
  json: Record<string, unknown> | undefined;
}

/** Run `plugin` in `host`'s namespace as a runtime would. */
export function execCni(host: NamespaceHandle, plugin: string, call: CniCall, stdin: unknown, timeoutMs = 60_000): Promise<CniOutcome> {
  const env: Record<string, string> = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: call.command };
  if (call.containerId !== undefined) env['CNI_CONTAINERID'] = call.containerId;
  if (call.netns !== undefined) env['CNI_NETNS'] = call.netns;
  if (call.ifname !== undefined) env['CNI_IFNAME'] = call.ifname;
  if (call.args !== undefined) env['CNI_ARGS'] = call.args;
  if (call.path !== undefined) env['CNI_PATH'] = call.path;
  const text = typeof stdin === 'string' ? stdin : JSON.stringify(stdin);
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', host.ns, plugin], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => (stderr += String(d)));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: Record<string, unknown> | undefined;
      try {
        json = stdout.trim() === '' ? undefined : (JSON.parse(stdout) as Record<string, unknown>);
      } catch {
        json = undefined;
      }
      resolve({ exitCode: code ?? -1, stdout, stderr, json });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(text);
  });
}

/** The spec's error object: exactly cniVersion, code, msg and (optional) details; a non-zero exit. */
export function expectCniError(outcome: CniOutcome, code: number, cniVersion = '1.0.0'): Record<string, unknown> {
  expect(outcome.exitCode, `stdout ${outcome.stdout} stderr ${outcome.stderr}`).not.toBe(0);
  const e = outcome.json;
  expect(e, `stdout is the error object: ${outcome.stdout}`).toBeDefined();
  expect(Object.keys(e!).every((k) => ['cniVersion', 'code', 'msg', 'details'].includes(k))).toBe(true);
  expect(e!['cniVersion']).toBe(cniVersion);
  expect(e!['code']).toBe(code);
  expect(typeof e!['msg']).toBe('string');
  expect((e!['msg'] as string).length).toBeGreaterThan(0);
  if (e!['details'] !== undefined) expect(typeof e!['details']).toBe('string');
  return e!;
}

/**
 * The spec's success result for one container interface: cniVersion, interfaces (the container's with its sandbox),
 * ips in CIDR form pointing at it (with "version" before 1.0.0 only), dns. Returns the container's address (CIDR).
 */
export function expectAddResult(outcome: CniOutcome, opts: { cniVersion: string; ifname: string; netns: string }): string {
  expect(outcome.exitCode, `stdout ${outcome.stdout} stderr ${outcome.stderr}`).toBe(0);
  const r = outcome.json!;
  expect(r['cniVersion']).toBe(opts.cniVersion);
  const interfaces = r['interfaces'] as Array<Record<string, unknown>>;
  expect(Array.isArray(interfaces)).toBe(true);
  const index = interfaces.findIndex((i) => i['name'] === opts.ifname && i['sandbox'] === opts.netns);
  expect(index).toBeGreaterThanOrEqual(0);
  expect(interfaces[index]!['mac']).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  for (const i of interfaces) expect(Object.keys(i).every((k) => ['name', 'mac', 'sandbox'].includes(k))).toBe(true);
  const ips = r['ips'] as Array<Record<string, unknown>>;
  expect(ips.length).toBeGreaterThan(0);
  const mine = ips.filter((ip) => ip['interface'] === index);
  expect(mine.length).toBe(1);
  expect(mine[0]!['address']).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
  const isLegacy = opts.cniVersion !== '1.0.0';
  for (const ip of ips) {
    if (isLegacy) expect(ip['version']).toBe('4');
    else expect(ip['version']).toBeUndefined();
  }
  expect(typeof r['dns']).toBe('object');
  return mine[0]!['address'] as string;
}
