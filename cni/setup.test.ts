import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { conflist, launcherScript, SetupCniError, setupCni } from './setup.js';

describe('weft setup-cni', () => {
  let dir = '';
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function fixture() {
    dir = mkdtempSync(join(tmpdir(), "weft-setup-cni-'q "));
    const main = join(dir, 'dist', 'cni', 'main.js');
    mkdirSync(join(dir, 'dist', 'cni'), { recursive: true });
    writeFileSync(main, 'process.stdout.write(JSON.stringify({ args: process.argv.slice(2), cmd: process.env.CNI_COMMAND }));\n');
    return { main, binDir: join(dir, 'bin'), confDir: join(dir, 'net.d') };
  }

  it('writes an executable launcher that runs node on the plugin, and a conflist naming network weft', () => {
    const { main, binDir, confDir } = fixture();
    const outcome = setupCni({ binDir, confDir, pluginMain: main });
    expect(outcome.written).toEqual([
      `${join(binDir, 'weft')} (the weft CNI plugin)`,
      `${join(confDir, '10-weft.conflist')} (network "weft")`,
    ]);
    expect(outcome.hasPortmap).toBe(false);
    expect(statSync(join(binDir, 'weft')).mode & 0o777).toBe(0o755);
    // The launcher works even with quotes and spaces in the paths, and passes arguments and environment through.
    const ran = execFileSync(join(binDir, 'weft'), ['x y'], { env: { CNI_COMMAND: 'VERSION' } }).toString();
    expect(JSON.parse(ran)).toEqual({ args: ['x y'], cmd: 'VERSION' });
    expect(JSON.parse(readFileSync(join(confDir, '10-weft.conflist'), 'utf8'))).toEqual({
      cniVersion: '1.0.0',
      name: 'weft',
      plugins: [{ type: 'weft' }],
    });
  });

  it('is idempotent: a second run writes nothing and says what was already right', () => {
    const { main, binDir, confDir } = fixture();
    setupCni({ binDir, confDir, pluginMain: main });
    const again = setupCni({ binDir, confDir, pluginMain: main });
    expect(again.written).toEqual([]);
    expect(again.unchanged).toHaveLength(2);
  });

  it('chains portmap when the bin dir has it, and records a non-default API address', () => {
    const { main, binDir, confDir } = fixture();
    mkdirSync(binDir, { recursive: true });
    writeFileSync(join(binDir, 'portmap'), '#!/bin/sh\n');
    chmodSync(join(binDir, 'portmap'), 0o755);
    const outcome = setupCni({ binDir, confDir, pluginMain: main, httpAddr: '127.0.0.1:7000' });
    expect(outcome.hasPortmap).toBe(true);
    expect(JSON.parse(readFileSync(join(confDir, '10-weft.conflist'), 'utf8')).plugins).toEqual([
      { type: 'weft', httpAddr: '127.0.0.1:7000' },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ]);
    expect(conflist(false, '127.0.0.1:6784')).toEqual({ cniVersion: '1.0.0', name: 'weft', plugins: [{ type: 'weft' }] });
  });

  it('refuses when the plugin is not built, saying how to build it', () => {
    const { binDir, confDir } = fixture();
    expect(() => setupCni({ binDir, confDir, pluginMain: join(dir, 'missing.js') })).toThrow(SetupCniError);
    expect(() => setupCni({ binDir, confDir, pluginMain: join(dir, 'missing.js') })).toThrow(/npm run build/);
  });

  it('refuses an unwritable directory with a message naming the file', () => {
    const { main, confDir } = fixture();
    writeFileSync(join(dir, 'file'), '');
    expect(() => setupCni({ binDir: join(dir, 'file'), confDir, pluginMain: main })).toThrow(/cannot write .*file\/weft/);
  });

  it('quotes paths for sh', () => {
    expect(launcherScript('/usr/bin/node', "/a b/it's/main.js")).toContain(`exec '/usr/bin/node' '/a b/it'\\''s/main.js' "$@"`);
  });
});
