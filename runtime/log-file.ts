/**
 * A log file rotated by size, for daemons run without systemd (`weft launch` in the background): when a write would
 * take `path` past `maxBytes`, `path.N` moves to `path.N+1` (the oldest beyond `keep` is removed), `path` becomes
 * `path.1`, and a new `path` is started. Under systemd the daemon logs JSON lines to stdout and the journal rotates.
 *
 * Writes are synchronous (pino's default destination is too): a log line is never lost to a crash right after it,
 * and the daemon logs per event, never per packet. A write that fails (disk full, file removed by hand) is dropped
 * and counted in `droppedWrites`, never thrown into the caller.
 */
import { closeSync, existsSync, fstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

export interface RotatingLogFileOptions {
  /** Rotate when the file would grow past this. @default 10 MiB */
  maxBytes?: number;
  /** Rotated files kept beside the current one (`path.1` .. `path.keep`). @default 3 */
  keep?: number;
}

export class RotatingLogFile {
  readonly maxBytes: number;
  readonly keep: number;
  private fd: number;
  private sizeBytes: number;
  /** Lines that could not be written (counted, not thrown). */
  droppedWrites = 0;

  constructor(
    readonly path: string,
    options: RotatingLogFileOptions = {},
  ) {
    this.maxBytes = options.maxBytes ?? 10 * 1024 * 1024;
    this.keep = options.keep ?? 3;
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 1024)
      throw new RangeError(`log max bytes must be an integer >= 1024, got ${this.maxBytes}`);
    if (!Number.isInteger(this.keep) || this.keep < 1 || this.keep > 100)
      throw new RangeError(`rotated log files to keep must be 1..100, got ${this.keep}`);
    this.fd = openSync(path, 'a', 0o640);
    this.sizeBytes = fstatSync(this.fd).size;
  }

  /** Append `text` (one or more whole lines), rotating first when it would not fit. */
  write(text: string): boolean {
    const bytes = Buffer.byteLength(text);
    try {
      if (this.sizeBytes > 0 && this.sizeBytes + bytes > this.maxBytes) this.rotate();
      writeSync(this.fd, text);
      this.sizeBytes += bytes;
      return true;
    } catch {
      this.droppedWrites++;
      return false;
    }
  }

  /** Close the file. Further writes are dropped and counted. Idempotent. */
  close(): void {
    if (this.fd < 0) return;
    try {
      closeSync(this.fd);
    } catch {
      // Closing a log file cannot fail in a way worth reporting on the way out.
    }
    this.fd = -1;
  }

  private rotate(): void {
    closeSync(this.fd);
    this.fd = -1;
    rmSync(`${this.path}.${this.keep}`, { force: true });
    for (let i = this.keep - 1; i >= 1; i--) {
      if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
    }
    renameSync(this.path, `${this.path}.1`);
    this.fd = openSync(this.path, 'a', 0o640);
    this.sizeBytes = 0;
  }
}
