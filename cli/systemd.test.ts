import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { envTemplate, setupSystemd, systemdUnit } from './systemd.js';
import { launchOptions, resolveConfig } from '../config/launch.js';

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
const template = envTemplate();
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
    // The daemon's memory settings (issue 19), as `weft launch` gives its background daemon.
    expect(unit).toContain(`ExecStart=${process.execPath} --max-semi-space-size=1 ${paths.cliPath} launch --foreground $WEFT_PEERS`);
    expect(unit).toContain('Environment=MALLOC_ARENA_MAX=2\n');
    expect(unit).toContain(`EnvironmentFile=-${options.envFile}`);
    expect(unit).toContain('Restart=on-failure');
    expect(setupSystemd(options, template)).toMatchObject({ unit: 'unchanged', env: 'kept' });
  });

  it('writes every launch variable with the default the daemon uses, and the file resolves to the defaults', () => {
    for (const o of Object.values(launchOptions))
      if (o.env !== undefined && o.env !== 'WEFT_PASSWORD') expect(template).toContain(`#${o.env}=`);
    expect(template).toContain('#WEFT_STATE_DIR=/var/lib/weft\n');
    expect(template).toContain('#WEFT_PORT=6783\n');
    expect(template).toContain('#WEFT_IPALLOC_RANGE=10.32.0.0/12\n');
    // Uncommenting every line that has a value must not change the configuration: the file says what the defaults are.
    const env: NodeJS.ProcessEnv = {};
    for (const line of template.split('\n')) {
      const m = /^#(WEFT_[A-Z_]+)=(.+)$/.exec(line);
      if (m && m[2] !== '1') env[m[1]!] = m[2]!;
    }
    const sources = { readFile: () => '', hostname: () => 'h1' };
    const written = resolveConfig([], { ...env, WEFT_PASSWORD: 'a long enough secret' }, sources);
    // Only "was it asked for" differs (a plugin socket named explicitly must be served).
    expect({ ...written, isPluginSocketExplicit: false }).toEqual(resolveConfig([], { WEFT_PASSWORD: 'a long enough secret' }, sources));
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
