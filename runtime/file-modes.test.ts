import { describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stateDirWarning } from './file-modes.js';
import { FileStore } from './store.js';
import { statSync } from 'node:fs';

describe('state dir permissions', () => {
  it('warns about a state dir other users can enter or read, naming it and the chmod; not about 0700 or a missing one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-state-'));
    try {
      for (const mode of [0o755, 0o750, 0o701, 0o777]) {
        chmodSync(dir, mode);
        expect(stateDirWarning(dir), mode.toString(8)).toBe(
          `the state dir ${dir} is open to other users (mode 0${mode.toString(8)}); it holds this router's identity and IPAM state: chmod 700 ${dir}`,
        );
      }
      chmodSync(dir, 0o700);
      expect(stateDirWarning(dir)).toBeUndefined();
      expect(stateDirWarning(join(dir, 'absent'))).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is created 0700 by the store, directories above it included', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-state-'));
    try {
      new FileStore(join(dir, 'a', 'b'));
      expect(statSync(join(dir, 'a', 'b')).mode & 0o777).toBe(0o700);
      expect(stateDirWarning(join(dir, 'a', 'b'))).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
