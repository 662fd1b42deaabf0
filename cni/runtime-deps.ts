/**
 * The real `PluginDeps`: the daemon over HTTP (cli/client.ts), delegated plugins run as child processes found in
 * CNI_PATH, and namespaces looked into with `nsenter --net=PATH ip ...`.
 */
import { spawn } from 'node:child_process';
import { access, constants, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createApiClient } from '../cli/client.js';
import { globalCidrs, ip, ipJson, isNoSuchDevice, type IpAddrLink } from '../netdev/command.js';
import { CniError, CniErrorCode } from './spec.js';
import type { DelegateOutcome, NetnsProbe, PluginDaemon, PluginDeps } from './plugin.js';

/** How long a delegated plugin may run (DHCP may wait for a lease); then it is killed and the ADD fails. */
const DELEGATE_TIMEOUT_MS = 120_000;
/** A delegated plugin's result is a few KiB; more is not a CNI result. */
const MAX_DELEGATE_STDOUT_BYTES = 1024 * 1024;
/** Per request to the daemon: an attach waits on the kernel and, for a new subnet, on IPAM. */
const DAEMON_TIMEOUT_MS = 60_000;

export function realPluginDeps(stderr: NodeJS.WritableStream): PluginDeps {
  return {
    daemon: (httpAddr) => daemonClient(httpAddr),
    delegate: (type, path, env, stdin) => runDelegate(type, path, env, stdin, stderr),
    netns: realNetnsProbe,
  };
}

function daemonClient(httpAddr: string): PluginDaemon {
  // spec.ts checked the form (host:port or [v6]:port); the plugin loads no daemon code.
  const colon = httpAddr.lastIndexOf(':');
  const host = httpAddr.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(httpAddr.slice(colon + 1));
  return createApiClient({ httpHost: host, httpPort: port, httpAddr }, { timeoutMs: DAEMON_TIMEOUT_MS });
}

/** The first executable file named `type` in the `path` directories, or undefined. */
export async function findPlugin(type: string, path: readonly string[]): Promise<string | undefined> {
  for (const dir of path) {
    const file = join(dir, type);
    try {
      const st = await stat(file);
      if (!st.isFile()) continue;
      await access(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

async function runDelegate(
  type: string,
  path: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  stdin: Buffer,
  stderr: NodeJS.WritableStream,
): Promise<DelegateOutcome> {
  const file = await findPlugin(type, path);
  if (file === undefined) {
    throw new CniError(
      CniErrorCode.ipamPluginFailed,
      'IPAM plugin not found',
      `no executable "${type}" in CNI_PATH (${path.join(':') || 'empty'}); install it (Debian: containernetworking-plugins) or use "ipam": {"type": "weft"}`,
    );
  }
  return new Promise((resolve, reject) => {
    const child = spawn(file, [], { env: env as NodeJS.ProcessEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => child.kill('SIGKILL'), DELEGATE_TIMEOUT_MS);
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_DELEGATE_STDOUT_BYTES) chunks.push(chunk);
    });
    // "Ensure that the delegated plugin's stderr is output to the calling plugin's stderr."
    child.stderr.on('data', (chunk: Buffer) => stderr.write(chunk));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new CniError(CniErrorCode.ipamPluginFailed, 'IPAM plugin could not run', `${file}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (size > MAX_DELEGATE_STDOUT_BYTES) {
        reject(
          new CniError(
            CniErrorCode.ipamPluginFailed,
            'IPAM plugin answered too much',
            `${file} wrote over ${MAX_DELEGATE_STDOUT_BYTES} bytes`,
          ),
        );
        return;
      }
      if (signal !== null) {
        reject(
          new CniError(
            CniErrorCode.ipamPluginFailed,
            'IPAM plugin was killed',
            `${file} ended by ${signal}${signal === 'SIGKILL' ? ` (over ${DELEGATE_TIMEOUT_MS / 1000} s?)` : ''}`,
          ),
        );
        return;
      }
      resolve({ exitCode: code ?? 1, stdout: Buffer.concat(chunks).toString('utf8') });
    });
    child.stdin.on('error', () => undefined); // a plugin that exits without reading stdin
    child.stdin.end(stdin);
  });
}

export const realNetnsProbe: NetnsProbe = {
  async exists(path) {
    try {
      // A namespace file (nsfs, or a bind mount of one) stats as a regular file.
      return (await stat(path)).isFile();
    } catch {
      return false;
    }
  },
  async link(path, ifname) {
    let links: IpAddrLink[];
    try {
      links = await ipJson<IpAddrLink>(ifname, ['addr', 'show', 'dev', ifname], path);
    } catch (err) {
      if (isNoSuchDevice(err)) return undefined;
      throw err;
    }
    const link = links[0];
    if (link === undefined) return undefined;
    return { mac: link.address ?? '', isUp: (link.flags ?? []).includes('UP'), addresses: globalCidrs(link) };
  },
  async addRoute(path, ifname, dst, gw) {
    await ip(ifname, ['route', 'replace', dst, ...(gw === undefined ? [] : ['via', gw]), 'dev', ifname], path);
  },
};
