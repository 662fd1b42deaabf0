/**
 * `npm run fuzz` (scripts/fuzz.sh builds this to dist/test/fuzz/main.js and runs it as root):
 *
 *   npm run fuzz -- [--datagrams N] [--control-frames N] [--hellos N] [--http N] [--seed S] [--rate PPS]
 *
 * Defaults are the full run of docs/security.md ("Fuzzing"). Prints the figures and PASS, or FAIL with each failure,
 * and exits non-zero on failure.
 */
import { formatReport, runFuzz, type FuzzRunOptions } from './run.js';

const args = process.argv.slice(2);
const options: FuzzRunOptions = { datagrams: 1_000_000, controlFrames: 100_000, httpRequests: 10_000 };
const flags: Record<string, (v: number) => void> = {
  '--datagrams': (v) => (options.datagrams = v),
  '--control-frames': (v) => (options.controlFrames = v),
  '--hellos': (v) => (options.hellos = v),
  '--http': (v) => (options.httpRequests = v),
  '--seed': (v) => (options.seed = v),
  '--rate': (v) => (options.ratePerSecond = v),
  '--max-rss-mib': (v) => (options.maxRssMiB = v),
  '--time-limit-s': (v) => (options.timeLimitMs = v * 1000),
  '--hostile-gossip': (v) => (options.hostileGossip = v !== 0),
};
for (let i = 0; i < args.length; i += 2) {
  const set = flags[args[i]!];
  const value = Number(args[i + 1]);
  if (!set || !Number.isFinite(value) || value < 0) {
    process.stderr.write(
      `usage: npm run fuzz -- ${Object.keys(flags)
        .map((f) => `[${f} N]`)
        .join(' ')}\n(got ${args[i]} ${args[i + 1] ?? ''})\n`,
    );
    process.exit(2);
  }
  set(value);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('npm run fuzz needs root: it builds network namespaces and runs real daemons in them\n');
  process.exit(2);
}
const report = await runFuzz(options).catch((err: unknown) => {
  process.stderr.write(`fuzz: the run itself failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
process.stdout.write(`${formatReport(report, `npm run fuzz -- ${args.join(' ')}`.trim())}\n`);
process.exit(report.failures.length === 0 ? 0 : 1);
