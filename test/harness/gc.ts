/**
 * The allocation check of STYLE.md's "Measure": how many minor GCs (scavenges) a synchronous run causes. A data path
 * that allocates nothing per packet shows a handful per million packets (timers, batches), not hundreds.
 */
import { PerformanceObserver, constants } from 'node:perf_hooks';

/** Run `run` and count the scavenges it caused (GC entries are delivered after a short wait). */
export async function countScavenges(run: () => void): Promise<number> {
  let scavenges = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  run();
  await new Promise((r) => setTimeout(r, 50));
  obs.disconnect();
  return scavenges;
}
