import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore, MemoryStore } from './store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'weft-store-'));
  dirs.push(d);
  return d;
};

for (const [name, make] of [
  ['FileStore', () => new FileStore(tempDir())],
  ['MemoryStore', () => new MemoryStore()],
] as const) {
  describe(name, () => {
    it('reads back what was written, and nothing after remove', () => {
      const store = make();
      expect(store.read('peer-name')).toBeUndefined();
      store.write('peer-name', 'aa:bb');
      store.write('peer-name', 'cc:dd');
      expect(store.read('peer-name')?.toString()).toBe('cc:dd');
      store.remove('peer-name');
      expect(store.read('peer-name')).toBeUndefined();
    });

    it('refuses keys that could escape the directory', () => {
      const store = make();
      expect(() => store.write('../x', 'y')).toThrow(/invalid store key/);
    });
  });
}

it('FileStore leaves no temp file behind', () => {
  const dir = tempDir();
  const store = new FileStore(dir);
  store.write('ipam', 'x');
  expect(readdirSync(dir)).toEqual(['ipam']);
});
