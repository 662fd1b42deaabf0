import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setupSystemd, systemdUnit } from './systemd.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'weft-systemd-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const repoRoot = resolve(new URL('..', import.meta.url).pathname);
const template = readFileSync(join(repoRoot, 'packaging', 'weft.env'), 'utf8');
const paths = { nodePath: process.execPath, cliPath: join(repoRoot, 'dist', 'cli', 'main.js') };
const hasSystemdAnalyze = (() => {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('weft setup-systemd', () => {
  it('writes the unit and a 0600 environment file, then changes nothing on a second run', () => {
    const dir = tempDir();
    const options = { ...paths, unitDir: join(dir, 'units'), envFile: join(dir, 'etc', 'weft.env') };
    const first = setupSystemd(options, template);
    expect(first).toMatchObject({ unit: 'written', env: 'written' });
    expect(statSync(options.envFile).mode & 0o777).toBe(0o600);
    const unit = readFileSync(first.unitPath, 'utf8');
    expect(unit).toContain(`ExecStart=${process.execPath} ${paths.cliPath} launch --foreground $WEFT_PEERS`);
    expect(unit).toContain(`EnvironmentFile=-${options.envFile}`);
    expect(unit).toContain('Restart=on-failure');
    expect(setupSystemd(options, template)).toMatchObject({ unit: 'unchanged', env: 'kept' });
  });

  it("never overwrites the operator's environment file", () => {
    const dir = tempDir();
    const envFile = join(dir, 'weft.env');
    writeFileSync(envFile, 'WEFT_PASSWORD_FILE=/etc/weft/pw\n');
    setupSystemd({ ...paths, unitDir: dir, envFile }, template);
    expect(readFileSync(envFile, 'utf8')).toBe('WEFT_PASSWORD_FILE=/etc/weft/pw\n');
  });

  it('refuses paths a unit file would misread', () => {
    expect(() => systemdUnit({ ...paths, envFile: '/etc/weft dir/weft.env' })).toThrow(/absolute path without spaces/);
    expect(() => systemdUnit({ ...paths, envFile: 'relative.env' })).toThrow(/absolute path/);
  });

  it.skipIf(!hasSystemdAnalyze || !existsSync(paths.cliPath))('the unit passes systemd-analyze verify', () => {
    const dir = tempDir();
    const { unitPath } = setupSystemd({ ...paths, unitDir: dir, envFile: join(dir, 'weft.env') }, template);
    // systemd-analyze exits 0 on unknown keys and bad values: read what it says about our unit, on either stream.
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', unitPath], { encoding: 'utf8' });
    const output = `${r.stdout}${r.stderr}`;
    expect(output.split('\n').filter((l) => l.includes('weft.service'))).toEqual([]);
  });
});
