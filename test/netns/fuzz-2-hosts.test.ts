/**
 * The fuzz run of test/fuzz/ (see docs/security.md, "Fuzzing"), shortened for CI: two real routers with a container
 * each, a sealed and a clear fuzz member sending structure-aware sleeve datagrams, a control fuzzer with the network
 * password, an HTTP fuzzer on the target's API, all at once. `npm run fuzz` is the long run.
 *
 * The seed is printed (and in the failure message): WEFT_FUZZ_SEED=N replays a run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { netnsSkipReason } from '../harness/hosts.js';
import { builtSkipReason, repoRoot } from '../harness/weft.js';
import { formatReport, runFuzz } from '../fuzz/run.js';
import { freshSeed } from '../fuzz/rng.js';

const skip = netnsSkipReason() ?? builtSkipReason();

/** The fuzz processes run compiled (dist/test/fuzz/child.js): build them when missing or older than a source. */
function ensureFuzzBuilt(): void {
  const child = join(repoRoot, 'dist/test/fuzz/child.js');
  const built = existsSync(child) ? statSync(child).mtimeMs : 0;
  const isStale = ['test/fuzz', 'test/harness'].some((d) =>
    readdirSync(join(repoRoot, d)).some(
      (f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && statSync(join(repoRoot, d, f)).mtimeMs > built,
    ),
  );
  if (isStale) execFileSync('npx', ['tsc', '-p', 'tsconfig.fuzz.json'], { cwd: repoRoot, stdio: 'inherit' });
}

describe.skipIf(skip)('fuzzing live routers (short run)', () => {
  it('survives 20k hostile datagrams, 2k control frames and 300 HTTP requests: same pids, traffic flowing, every drop counted', async () => {
    ensureFuzzBuilt();
    const seed = Number(process.env['WEFT_FUZZ_SEED'] ?? freshSeed());
    const report = await runFuzz({
      datagrams: 20_000,
      controlFrames: 2_000,
      hellos: 40,
      httpRequests: 300,
      seed,
      timeLimitMs: 150_000,
      log: (l) => console.log(l),
    });
    const text = formatReport(report, `WEFT_FUZZ_SEED=${seed} npx vitest run test/netns/fuzz-2-hosts.test.ts`);
    console.log(text);
    expect(report.failures, text).toEqual([]);
    expect(report.sleeve.reduce((n, s) => n + s.sent, 0)).toBeGreaterThanOrEqual(20_000);
    expect(report.drops.find((d) => d.outcome === 'drop_bad_record')!.observed).toBeGreaterThan(0);
  }, 175_000);
});
