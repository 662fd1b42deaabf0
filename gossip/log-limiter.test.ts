import { expect, it } from 'vitest';
import { LogLimiter } from './log-limiter.js';

it('logs once per key per interval, within a total rate, and remembers a bounded number of keys', () => {
  const l = new LogLimiter(0, { intervalMs: 60_000, maxKeys: 50, linesPerSecond: 1000 });
  expect(l.shouldLog('a', 0)).toBe(true);
  expect(l.shouldLog('a', 59_999)).toBe(false);
  expect(l.shouldLog('a', 60_000)).toBe(true);
  for (let i = 0; i < 10_000; i++) l.shouldLog(`k${i}`, 60_000 + i);
  expect(l.size).toBe(50);

  const slow = new LogLimiter(0, { linesPerSecond: 2 });
  const logged = Array.from({ length: 100 }, (_, i) => slow.shouldLog(`addr${i}`, 0)).filter(Boolean);
  expect(logged).toHaveLength(4); // burst of twice the rate, then silence (the caller still counts)
});
