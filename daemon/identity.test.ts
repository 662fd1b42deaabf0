import { expect, it } from 'vitest';
import { MemoryStore } from '../runtime/store.js';
import { loadOrCreatePeerName, newLaunchUid } from './identity.js';

it('creates a peer name once and keeps it', () => {
  const store = new MemoryStore();
  const name = loadOrCreatePeerName(store);
  expect(name).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  expect(parseInt(name.slice(0, 2), 16) & 0x03).toBe(0x02);
  expect(loadOrCreatePeerName(store)).toBe(name);
  expect(loadOrCreatePeerName(new MemoryStore())).not.toBe(name);
});

it('refuses a corrupt peer-name file with a message saying what to do', () => {
  const store = new MemoryStore();
  store.write('peer-name', 'garbage');
  expect(() => loadOrCreatePeerName(store)).toThrow(/remove it/);
});

it('makes a new uid each launch', () => {
  expect(newLaunchUid()).not.toBe(newLaunchUid());
});
