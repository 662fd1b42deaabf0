/**
 * The Logger seam: pino everywhere. Field vocabulary (same in every folder): `peer` (peer name), `nickname`,
 * `addr` (host:port), `conn` (connection id), `reason`, `err`. Bind a connection's fields once with `child()`.
 */
import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';
import { Writable } from 'node:stream';

export type Logger = PinoLogger;

export interface LoggerOptions {
  /** @default 'info' */
  level?: string;
  /** Where JSON lines go. @default stdout */
  destination?: DestinationStream;
  /**
   * One readable line per entry instead of JSON (`weft launch --foreground` on a terminal). Off the terminal (systemd,
   * a pipe, the log file) the JSON lines stay, for the journal and for log shippers. @default false
   */
  isPretty?: boolean;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const destination = options.isPretty ? prettyDestination(options.destination ?? process.stdout) : options.destination;
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/**
 * Format one pino JSON line for a person: `12:03:04.567 WARN  message  peer=ab:cd addr=10.0.0.2:6783`. Control
 * characters in values (a remote nickname or close reason can carry any) are escaped so a log line cannot drive the
 * terminal. A line that is not JSON is returned as it is.
 */
export function formatLogLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (entry === null || typeof entry !== 'object') return line;
  const { time, level, msg, err, ...fields } = entry;
  const clock = typeof time === 'string' ? time.slice(11, 23) : '';
  const levelName = (LEVEL_NAMES[Number(level)] ?? 'LOG').padEnd(5);
  const parts = [clock, levelName, escapeControl(String(msg ?? ''))];
  for (const [k, v] of Object.entries(fields)) parts.push(`${k}=${escapeControl(typeof v === 'string' ? v : JSON.stringify(v))}`);
  if (err !== undefined) {
    const e = err as { message?: unknown; stack?: unknown };
    parts.push(`err=${escapeControl(String(e.message ?? JSON.stringify(err)))}`);
  }
  return parts.filter((p) => p.length > 0).join('  ');
}

/** C0, DEL and C1 control characters as `\xNN`. */
function escapeControl(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** A destination that turns pino's JSON lines into `formatLogLine` lines on `out`. */
function prettyDestination(out: { write(text: string): unknown }): DestinationStream {
  let pending = '';
  return {
    write(chunk: string) {
      pending += chunk;
      let nl = pending.indexOf('\n');
      while (nl >= 0) {
        out.write(`${formatLogLine(pending.slice(0, nl))}\n`);
        pending = pending.slice(nl + 1);
        nl = pending.indexOf('\n');
      }
    },
  };
}

/** A logger that writes into memory; tests read `lines()` to assert on what was logged. */
export function createMemoryLogger(level = 'debug'): { log: Logger; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  const log = pino({ level, base: undefined }, sink as unknown as DestinationStream);
  return {
    log,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** A logger that discards everything. */
export const silentLogger: Logger = pino({ level: 'silent' });
