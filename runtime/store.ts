/**
 * The Store seam: small persisted documents in the state directory. Writes are atomic (write to a temp file, fsync,
 * rename), so a crash leaves either the old or the new document, never a partial one.
 */
import { mkdirSync, openSync, writeSync, fsyncSync, closeSync, renameSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export interface Store {
  /** The document stored under `key`, or undefined if there is none. */
  read(key: string): Buffer | undefined;
  /** Replace the document under `key` atomically. */
  write(key: string, value: Uint8Array | string): void;
  /** Remove the document; no error if absent. */
  remove(key: string): void;
}

const KEY_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function checkKey(key: string): void {
  if (!KEY_RE.test(key)) throw new Error(`invalid store key ${JSON.stringify(key)}`);
}

/** Files in a directory, one per key. */
export class FileStore implements Store {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  read(key: string): Buffer | undefined {
    checkKey(key);
    const p = join(this.dir, key);
    if (!existsSync(p)) return undefined;
    return readFileSync(p);
  }
  write(key: string, value: Uint8Array | string): void {
    checkKey(key);
    const p = join(this.dir, key);
    const tmp = `${p}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, typeof value === 'string' ? Buffer.from(value) : value);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, p);
  }
  remove(key: string): void {
    checkKey(key);
    rmSync(join(this.dir, key), { force: true });
  }
}

/** In memory, for tests. */
export class MemoryStore implements Store {
  private docs = new Map<string, Buffer>();
  read(key: string): Buffer | undefined {
    checkKey(key);
    const v = this.docs.get(key);
    return v ? Buffer.from(v) : undefined;
  }
  write(key: string, value: Uint8Array | string): void {
    checkKey(key);
    this.docs.set(key, Buffer.from(typeof value === 'string' ? Buffer.from(value) : value));
  }
  remove(key: string): void {
    checkKey(key);
    this.docs.delete(key);
  }
}
