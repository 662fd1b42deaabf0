/**
 * A real headless chromium (Debian's `chromium`) inside a test host's network namespace, driven over the DevTools
 * protocol on a pipe (`--remote-debugging-pipe`: fd 3 to the browser, fd 4 from it), so the test process in the root
 * namespace can drive a browser that only sees the test host's network. One page, opened at `url`.
 *
 *   const browser = await openChromium(host, 'http://127.0.0.1:6782/');
 *   try { await browser.evaluate('document.title'); } finally { await browser.close(); }
 *
 * `close()` kills chromium's process group by its pid and removes its profile directory; call it in a `finally`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { NamespaceHandle } from './hosts.js';

export const chromiumPath = '/usr/bin/chromium';

/** Why a chromium test cannot run here, or undefined when it can. */
export function chromiumSkipReason(): string | undefined {
  return existsSync(chromiumPath) ? undefined : `${chromiumPath} is not installed (scripts/setup.sh installs Debian's chromium)`;
}

export interface Chromium {
  /** Evaluate `expression` in the page (awaiting a promise) and return its value as JSON. */
  evaluate<T = unknown>(expression: string): Promise<T>;
  /** A PNG of the page as it is drawn now. */
  screenshot(): Promise<Buffer>;
  /** The last few kB chromium wrote to stderr (for failure messages). */
  stderr(): string;
  /** Kill chromium (its process group, by pid) and remove its profile. Idempotent. */
  close(): Promise<void>;
}

interface Reply {
  id?: number;
  result?: Record<string, unknown>;
  error?: { message: string };
}

export async function openChromium(on: NamespaceHandle, url: string, options: { width?: number; height?: number } = {}): Promise<Chromium> {
  const profile = mkdtempSync(join(tmpdir(), 'weft-chromium-'));
  const args = [
    `--net=${on.path}`,
    chromiumPath,
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-dev-shm-usage',
    '--remote-debugging-pipe',
    `--window-size=${options.width ?? 1280},${options.height ?? 900}`,
    `--user-data-dir=${profile}`,
    url,
  ];
  // nsenter execs chromium, so this pid is chromium's, and (detached) its process group is chromium's alone.
  const child: ChildProcess = spawn('nsenter', args, { detached: true, stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  let errTail = '';
  child.stderr?.on('data', (d) => (errTail = (errTail + String(d)).slice(-4000)));
  const toBrowser = child.stdio[3] as Writable;
  const fromBrowser = child.stdio[4] as Readable;
  const waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let buffered = '';
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.once('exit', () => {
    for (const w of waiting.values()) w.reject(new Error(`chromium exited\n${errTail}`));
    waiting.clear();
  });
  fromBrowser.on('data', (d: Buffer) => {
    buffered += d.toString('utf8');
    let end;
    while ((end = buffered.indexOf('\0')) >= 0) {
      const message = JSON.parse(buffered.slice(0, end)) as Reply;
      buffered = buffered.slice(end + 1);
      if (message.id !== undefined) {
        const w = waiting.get(message.id);
        waiting.delete(message.id);
        w?.resolve(message);
      }
    }
  });
  toBrowser.on('error', () => undefined);

  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`chromium did not answer ${method} in 30 s\n${errTail}`));
      }, 30_000);
      waiting.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          if (r.error) reject(new Error(`${method}: ${r.error.message}`));
          else resolve(r.result ?? {});
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      toBrowser.write(JSON.stringify({ id, method, params, ...(sessionId !== undefined && { sessionId }) }) + '\0');
    });

  let isClosed = false;
  const close = async () => {
    if (isClosed) return;
    isClosed = true;
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    }
    rmSync(profile, { recursive: true, force: true });
  };

  try {
    let targetId: string | undefined;
    for (let i = 0; i < 100 && targetId === undefined; i++) {
      const { targetInfos } = (await send('Target.getTargets')) as { targetInfos: Array<{ targetId: string; type: string }> };
      targetId = targetInfos.find((t) => t.type === 'page')?.targetId;
      if (targetId === undefined) await new Promise((r) => setTimeout(r, 200));
    }
    if (targetId === undefined) throw new Error(`chromium opened no page\n${errTail}`);
    const { sessionId } = (await send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    return {
      async evaluate<T>(expression: string): Promise<T> {
        const r = (await send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true }, sessionId)) as {
          result: { value?: unknown };
          exceptionDetails?: { text: string; exception?: { description?: string } };
        };
        if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
        return r.result.value as T;
      },
      async screenshot(): Promise<Buffer> {
        const { data } = (await send('Page.captureScreenshot', { format: 'png' }, sessionId)) as { data: string };
        return Buffer.from(data, 'base64');
      },
      stderr: () => errTail,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
