/**
 * The daemon process: `node dist/daemon/main.js [launch options] [PEER...]` (what `weft launch` starts in the
 * background), or `runDaemon(config)` in-process (`weft launch --foreground`).
 *
 * Writes `<state-dir>/weft.pid` once serving and removes it on a clean exit. On a start-up failure it prints one line
 * `weft: <what went wrong>` to stderr and exits 1, so `weft launch` can show the daemon's own error.
 */
import { pathToFileURL } from 'node:url';
import { rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveConfig, type WeftConfig } from '../config/launch.js';
import { Daemon } from './daemon.js';
import { hostDaemonDeps } from './daemon-deps.js';
import { createLogger } from '../runtime/logger.js';
import { RotatingLogFile } from '../runtime/log-file.js';

export interface RunOptions {
  /** Pretty logs (foreground on a TTY). @default false */
  isPretty?: boolean;
}

export async function runDaemon(config: WeftConfig, options: RunOptions = {}): Promise<void> {
  const logFile = config.logFile !== undefined ? new RotatingLogFile(config.logFile, { maxBytes: config.logMaxBytes }) : undefined;
  const log = createLogger({
    level: config.logLevel,
    isPretty: logFile === undefined && (options.isPretty ?? false),
    destination: logFile,
  });
  for (const warning of config.warnings) log.warn(warning);
  let daemon: Daemon;
  try {
    daemon = new Daemon(config, hostDaemonDeps(config, log));
    await daemon.start();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log.fatal({ err }, 'weft failed to start');
    process.stderr.write(`weft: ${message}\n`);
    process.exitCode = 1;
    await new Promise((r) => setTimeout(r, 50)); // let pino flush
    return;
  }
  const pidFile = join(config.stateDir, 'weft.pid');
  writeFileSync(pidFile, `${process.pid}\n`);
  const onSignal = (signal: string) => {
    log.info({ reason: signal }, 'stopping on signal');
    void daemon.stop();
  };
  // SIGHUP re-reads --authorized-peers, like `weft reload`.
  const onHangup = () => {
    try {
      daemon.reloadAuthorizedPeers();
    } catch (err) {
      log.error({ err }, `reload on SIGHUP failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onHangup);
  await daemon.whenStopped();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('SIGHUP', onHangup);
  try {
    if (readFileSync(pidFile, 'utf8').trim() === String(process.pid)) rmSync(pidFile, { force: true });
  } catch {
    /* already gone */
  }
  logFile?.close();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  let config: WeftConfig;
  try {
    config = resolveConfig(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`weft: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  runDaemon(config).then(
    () => process.exit(process.exitCode ?? 0),
    (err: unknown) => {
      process.stderr.write(`weft: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
