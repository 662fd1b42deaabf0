// Prints the top functions by self time of V8 .cpuprofile files: node scripts/profile-summary.mjs FILE... [--top N]
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 12;
for (const file of args) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfTime = new Map();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const { functionName, url, lineNumber } = nodes.get(id).callFrame;
    const key = `${functionName || '(anonymous)'}  ${url.split('/').slice(-2).join('/')}${lineNumber >= 0 ? `:${lineNumber + 1}` : ''}`;
    selfTime.set(key, (selfTime.get(key) ?? 0) + dt);
  });
  console.log(`== ${file}: ${(total / 1e6).toFixed(1)} s sampled`);
  for (const [key, t] of [...selfTime].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((100 * t) / total).toFixed(1).padStart(6)}%  ${key}`);
  }
}
