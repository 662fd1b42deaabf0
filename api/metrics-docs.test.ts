import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const docs = (name: string) => readFileSync(fileURLToPath(new URL(`../docs/${name}`, import.meta.url)), 'utf8');

/** The metric names in the Families table of docs/metrics.md. */
function documented(): Set<string> {
  const text = docs('metrics.md');
  return new Set([...text.slice(text.indexOf('## Families')).matchAll(/^\| `([a-z_:][a-z0-9_:]*)`/gm)].map((m) => m[1]!));
}

describe('the dashboard and alert rules', () => {
  it('use only metrics docs/metrics.md lists (the netns test checks those against a live router)', () => {
    const names = documented();
    expect(names.size).toBeGreaterThan(25);
    for (const file of ['grafana-dashboard.json', 'alerts.yml']) {
      const used = new Set([...docs(file).matchAll(/\b((?:weft|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!));
      expect(used.size, file).toBeGreaterThan(5);
      expect(
        [...used].filter((n) => !names.has(n)),
        file,
      ).toEqual([]);
    }
  });

  it('ship a dashboard Grafana can import and the four alerts the issue asks for', () => {
    const dashboard = JSON.parse(docs('grafana-dashboard.json')) as { panels: Array<{ targets: Array<{ expr: string }> }>; uid: string };
    expect(dashboard.uid).toBe('weft-mesh');
    expect(dashboard.panels.every((p) => p.targets.length > 0 && p.targets.every((t) => t.expr.length > 0))).toBe(true);
    const alerts = docs('alerts.yml');
    for (const name of ['WeftPeerUnreachable', 'WeftEncryptionOff', 'WeftDropsRising', 'WeftIpamNearlyExhausted'])
      expect(alerts).toContain(`- alert: ${name}`);
  });
});
