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
  /** Pretty-print (foreground on a TTY). @default false */
  isPretty?: boolean;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  if (options.isPretty) {
    return pino({ level, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, options.destination);
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
