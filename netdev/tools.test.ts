import { describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { missingTools, missingToolsMessage } from './tools.js';

describe('host tools check', () => {
  it('finds executables on PATH and reports the rest', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-tools-'));
    try {
      writeFileSync(join(dir, 'ip'), '#!/bin/sh\n');
      chmodSync(join(dir, 'ip'), 0o755);
      writeFileSync(join(dir, 'ethtool'), 'not executable');
      chmodSync(join(dir, 'ethtool'), 0o644);
      expect(missingTools(['ip', 'ethtool', 'nsenter'], dir)).toEqual(['ethtool', 'nsenter']);
      expect(missingTools(['ip'], `/nonexistent:${dir}`)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the Debian packages to install', () => {
    const message = missingToolsMessage(['ip', 'nsenter']);
    expect(message).toContain('apt-get install iproute2 util-linux');
    expect(message).toContain('ip (the bridge');
  });
});
