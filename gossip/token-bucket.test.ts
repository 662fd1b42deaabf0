import { expect, it } from 'vitest';
import { TokenBucket } from './token-bucket.js';

it('allows a burst of capacity, then refills at the given rate', () => {
  const b = new TokenBucket(10, 10, 0);
  for (let i = 0; i < 10; i++) expect(b.take(0)).toBe(true);
  expect(b.take(0)).toBe(false);
  expect(b.take(50)).toBe(false); // half a token
  expect(b.take(100)).toBe(true);
  expect(b.take(100)).toBe(false);
  expect([...Array(20)].filter(() => b.take(10_000)).length).toBe(10); // never above capacity
});
