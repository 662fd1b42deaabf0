/**
 * docs/alerts.yml as Prometheus reads it: `promtool check rules` (Debian's `prometheus` package; scripts/setup.sh
 * installs it), every metric the rules and the Grafana dashboard name is in docs/metrics.md's table, and one rule
 * run by `promtool test rules` against made-up series: a peer unreachable for 2 minutes fires WeftPeerUnreachable,
 * one back within a minute does not.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const repoRoot = resolve(new URL('..', import.meta.url).pathname);
const alerts = join(repoRoot, 'docs', 'alerts.yml');
const hasPromtool = (() => {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
// CI installs promtool (scripts/setup.sh): there its absence is a failure, not a skip.
const skipPromtool = !hasPromtool && !process.env['CI'];

/** Metric names in docs/metrics.md's table. */
function documented(): Set<string> {
  const names = new Set<string>();
  for (const m of readFileSync(join(repoRoot, 'docs', 'metrics.md'), 'utf8').matchAll(/^\|\s*`([a-z_:]+)`\s*\|/gm)) names.add(m[1]!);
  return names;
}

describe('alert rules and dashboard', () => {
  it('name only documented weft metrics', () => {
    const names = documented();
    const used = (text: string) => new Set([...text.matchAll(/\bweft_[a-z_]+\b/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')));
    for (const file of ['alerts.yml', 'grafana-dashboard.json']) {
      const unknown = [...used(readFileSync(join(repoRoot, 'docs', file), 'utf8'))].filter((n) => !names.has(n));
      expect(unknown, `docs/${file} names metrics docs/metrics.md does not list`).toEqual([]);
    }
  });

  it.skipIf(skipPromtool)('pass promtool check rules', () => {
    const r = spawnSync('promtool', ['check', 'rules', alerts], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.status).toBe(0);
  });

  it.skipIf(skipPromtool)(
    'fire WeftPeerUnreachable after 2 minutes of an unreachable peer, not for a 1-minute blip (promtool test rules)',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'weft-alerts-'));
      try {
        const tests = join(dir, 'alerts.test.yml');
        writeFileSync(
          tests,
          [
            `rule_files: [${JSON.stringify(alerts)}]`,
            'evaluation_interval: 30s',
            'tests:',
            '  - interval: 30s',
            '    input_series:',
            // a: down from minute 1 on; b: down for one minute only.
            '      - series: \'weft_peer_reachable{instance="h1", peer="aa:00:00:00:00:01"}\'',
            "        values: '1 1 0x10'",
            '      - series: \'weft_peer_reachable{instance="h1", peer="aa:00:00:00:00:02"}\'',
            "        values: '1 1 0 0 1x8'",
            '    alert_rule_test:',
            '      - eval_time: 4m',
            '        alertname: WeftPeerUnreachable',
            '        exp_alerts:',
            '          - exp_labels: { severity: warning, instance: h1, peer: "aa:00:00:00:00:01" }',
            '            exp_annotations:',
            "              summary: 'weft on h1 cannot reach peer aa:00:00:00:00:01'",
            "              description: 'No path of established connections reaches aa:00:00:00:00:01 for 2 minutes. Check `weft status connections` on both hosts, and the underlay (UDP and TCP 6783) between them. If the peer is gone for good, `weft rmpeer` it.'",
            '      - eval_time: 2m',
            '        alertname: WeftPeerUnreachable',
            '        exp_alerts: []',
            '',
          ].join('\n'),
        );
        const r = spawnSync('promtool', ['test', 'rules', tests], { encoding: 'utf8' });
        expect(`${r.stdout}${r.stderr}`, 'promtool test rules').toMatch(/SUCCESS/);
        expect(r.status).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
