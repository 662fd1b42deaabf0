import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore, MemoryStore } from './store.js';

for (const [name, make] of [
  ['FileStore', () => new FileStore(mkdtempSync(join(tmpdir(), 'weft-store-')))],
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
      if (store instanceof FileStore) rmSync(store.dir, { recursive: true });
    });

    it('refuses keys that could escape the directory', () => {
      const store = make();
      expect(() => store.write('../x', 'y')).toThrow(/invalid store key/);
    });
  });
}

it('FileStore leaves no temp file behind', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-store-'));
  const store = new FileStore(dir);
  store.write('ipam', 'x');
  expect(readdirSync(dir)).toEqual(['ipam']);
  rmSync(dir, { recursive: true });
});
