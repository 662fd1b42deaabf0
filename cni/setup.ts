/**
 * `weft setup-cni`: install the CNI plugin where runtimes look for it, and a network configuration list that names it.
 *
 *   <bin-dir>/weft               a launcher: `exec <node> <this package>/dist/cni/main.js "$@"`
 *   <conf-dir>/10-weft.conflist  {"name": "weft", "plugins": [{"type": "weft"}, portmap when <bin-dir> has it]}
 *
 * A launcher script rather than a symlink to main.js: runtimes start plugins with a small environment (kubelet and
 * containerd need not have node on PATH), so the launcher names node by its absolute path, the one that ran
 * setup-cni. The paths are computed from this file's own location, so the same command works from the repository's
 * dist/ and from an npm-installed package. Idempotent: files already right are left alone (and said so); others are
 * written atomically (temporary file, then rename), so a runtime never runs a half-written launcher.
 */
import {
  existsSync,
  mkdirSync,
  rmSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
  chmodSync,
  accessSync,
  constants,
} from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { DEFAULT_HTTP_ADDR } from './spec.js';
import { WeftError } from '../runtime/errors.js';

export const DEFAULT_BIN_DIR = '/opt/cni/bin';
export const DEFAULT_CONF_DIR = '/etc/cni/net.d';
/** The network name runtimes use (`podman run --network weft`). */
export const NETWORK_NAME = 'weft';
export const CONFLIST_NAME = '10-weft.conflist';

export interface SetupCniOptions {
  /** @default '/opt/cni/bin' */
  binDir?: string;
  /** @default '/etc/cni/net.d' */
  confDir?: string;
  /** The plugin's entry point. @default dist/cni/main.js beside this file */
  pluginMain?: string;
  /** The node binary the launcher runs. @default process.execPath */
  nodePath?: string;
  /** The weft API the plugin asks; written into the configuration only when not the default. @default 127.0.0.1:6784 */
  httpAddr?: string;
}

export interface SetupCniOutcome {
  /** Files written, with what each is. */
  written: string[];
  /** Files that were already right. */
  unchanged: string[];
  /** Whether portmap is chained (it was found in the bin dir). */
  hasPortmap: boolean;
}

/** setup-cni cannot do its job; the message says what to do. */
export class SetupCniError extends WeftError {
  readonly code = 'ERR_SETUP_CNI';
}

/** The plugin's compiled entry point beside this module (dist/cni/main.js when running from dist/). */
export function defaultPluginMain(): string {
  return fileURLToPath(new URL('./main.js', import.meta.url));
}

/** Install the launcher and the conflist. Throws `SetupCniError` when the plugin is not built or a dir is unwritable. */
export function setupCni(options: SetupCniOptions = {}): SetupCniOutcome {
  const binDir = options.binDir ?? DEFAULT_BIN_DIR;
  const confDir = options.confDir ?? DEFAULT_CONF_DIR;
  const pluginMain = options.pluginMain ?? defaultPluginMain();
  const nodePath = options.nodePath ?? process.execPath;
  if (!existsSync(pluginMain)) {
    throw new SetupCniError(`the CNI plugin is not built (${pluginMain} is missing): run npm run build (or scripts/setup.sh) first`);
  }
  const outcome: SetupCniOutcome = { written: [], unchanged: [], hasPortmap: false };
  const put = (file: string, text: string, mode: number, what: string) => {
    if (writeIfChanged(file, text, mode)) outcome.written.push(`${file} (${what})`);
    else outcome.unchanged.push(`${file} (${what})`);
  };
  put(join(binDir, 'weft'), launcherScript(nodePath, pluginMain), 0o755, 'the weft CNI plugin');
  outcome.hasPortmap = isExecutable(join(binDir, 'portmap'));
  put(
    join(confDir, CONFLIST_NAME),
    `${JSON.stringify(conflist(outcome.hasPortmap, options.httpAddr), null, 2)}\n`,
    0o644,
    `network "${NETWORK_NAME}"`,
  );
  return outcome;
}

/** The launcher: POSIX sh, both paths single-quoted. */
export function launcherScript(nodePath: string, pluginMain: string): string {
  return [
    '#!/bin/sh',
    '# The weft CNI plugin, installed by `weft setup-cni`: runs the plugin with the node that ran setup-cni.',
    `exec ${shellQuote(nodePath)} ${shellQuote(pluginMain)} "$@"`,
    '',
  ].join('\n');
}

/** The network configuration list: weft first, portmap chained after it when installed. */
export function conflist(hasPortmap: boolean, httpAddr?: string): Record<string, unknown> {
  const weft: Record<string, unknown> = { type: 'weft' };
  if (httpAddr !== undefined && httpAddr !== DEFAULT_HTTP_ADDR) weft['httpAddr'] = httpAddr;
  const plugins: Array<Record<string, unknown>> = [weft];
  if (hasPortmap) plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
  return { cniVersion: '1.0.0', name: NETWORK_NAME, plugins };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function isExecutable(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Write `text` to `file` (mode `mode`) unless it already holds exactly that; true if written. */
function writeIfChanged(file: string, text: string, mode: number): boolean {
  try {
    if (readFileSync(file, 'utf8') === text && (statSync(file).mode & 0o777) === mode) return false;
  } catch {
    // missing or unreadable: write it
  }
  const dir = join(file, '..');
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(tmp, text, { mode });
    chmodSync(tmp, mode);
    renameSync(tmp, file);
  } catch (err) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // the directory itself is the problem: nothing was written
    }
    throw new SetupCniError(
      `cannot write ${file}: ${(err as Error).message}; run as root, or choose the directory with --bin-dir/--conf-dir`,
    );
  }
  return true;
}
