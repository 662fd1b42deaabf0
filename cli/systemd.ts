/**
 * `weft setup-systemd`: run weft as a systemd service. Writes a unit that runs `weft launch --foreground` (logs as
 * JSON lines on stdout, which the journal keeps; SIGTERM stops it cleanly; restarted on failure) and an environment
 * file for the `WEFT_*` settings. Idempotent: an unchanged unit is left alone, an existing environment file is never
 * overwritten (it is the operator's), and what was written is said.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envFileText } from '../config/launch.js';
import { DAEMON_ENV, DAEMON_NODE_FLAGS } from './launch.js';

export interface SystemdSetupOptions {
  /** Where the unit goes. @default '/etc/systemd/system' */
  unitDir: string;
  /** The environment file the unit reads. @default '/etc/weft/weft.env' */
  envFile: string;
  /** The node binary. @default process.execPath */
  nodePath: string;
  /** The `weft` CLI entry (dist/cli/main.js). @default the one beside this file */
  cliPath: string;
}

export const defaultSystemdSetup = (): SystemdSetupOptions => ({
  unitDir: '/etc/systemd/system',
  envFile: '/etc/weft/weft.env',
  nodePath: process.execPath,
  cliPath: fileURLToPath(new URL('./main.js', import.meta.url)),
});

/** The unit file's text. `$WEFT_PEERS` is split into words by systemd (unquoted `$VAR` form). */
export function systemdUnit(options: Pick<SystemdSetupOptions, 'envFile' | 'nodePath' | 'cliPath'>): string {
  for (const [what, value] of Object.entries(options)) {
    if (!value.startsWith('/') || /[\s"'\\$%;]/.test(value))
      throw new Error(`${what} ${JSON.stringify(value)} must be an absolute path without spaces, quotes or $ for a unit file`);
  }
  return `# Written by \`weft setup-systemd\`; rerun it after moving or upgrading weft.
[Unit]
Description=weft encrypted mesh router for containers
Wants=network-online.target
After=network-online.target docker.service

[Service]
Type=simple
${Object.entries(DAEMON_ENV)
  .map(([k, v]) => `Environment=${k}=${v}\n`)
  .join('')}EnvironmentFile=-${options.envFile}
ExecStart=${options.nodePath} ${DAEMON_NODE_FLAGS.join(' ')} ${options.cliPath} launch --foreground $WEFT_PEERS
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2
KillSignal=SIGTERM
TimeoutStopSec=20
LimitNOFILE=65536
StateDirectory=weft
StateDirectoryMode=0700

[Install]
WantedBy=multi-user.target
`;
}

export interface SystemdSetupResult {
  unitPath: string;
  unit: 'written' | 'unchanged';
  envFile: string;
  env: 'written' | 'kept';
}

/** Write the unit (atomically) and, if missing, the environment file (0600). */
export function setupSystemd(options: SystemdSetupOptions, envTemplate: string): SystemdSetupResult {
  const unitPath = join(options.unitDir, 'weft.service');
  const unit = systemdUnit(options);
  let unitState: SystemdSetupResult['unit'] = 'unchanged';
  if (!existsSync(unitPath) || readFileSync(unitPath, 'utf8') !== unit) {
    mkdirSync(options.unitDir, { recursive: true });
    const tmp = `${unitPath}.tmp-${process.pid}`;
    writeFileSync(tmp, unit, { mode: 0o644 });
    renameSync(tmp, unitPath);
    unitState = 'written';
  }
  let envState: SystemdSetupResult['env'] = 'kept';
  if (!existsSync(options.envFile)) {
    mkdirSync(dirname(options.envFile), { recursive: true, mode: 0o700 });
    writeFileSync(options.envFile, envTemplate, { mode: 0o600, flag: 'wx' });
    chmodSync(options.envFile, 0o600);
    envState = 'written';
  }
  return { unitPath, unit: unitState, envFile: options.envFile, env: envState };
}

/** The environment file: every launch option's variable with its default, from the one option table. */
export function envTemplate(): string {
  return envFileText();
}
