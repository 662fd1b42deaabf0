import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeSavedTargets, MAX_SAVED_TARGETS, SavedTargets, SavedTargetsError } from './saved-targets.js';

describe('saved targets (weft connect survives a restart)', () => {
  it('keeps launch peers and connects, drops forgets, and round-trips through the file', () => {
    const t = new SavedTargets(['10.0.0.2'], 6783);
    t.connect(['10.0.0.3:7000', '10.0.0.2:6783'], false);
    t.forget(['10.0.0.3:7000']);
    t.connect(['[fd00::5]:6783'], false);
    expect(t.list()).toEqual(['10.0.0.2:6783', '[fd00::5]:6783']);
    expect(decodeSavedTargets(t.encode())).toEqual(t.list());
  });

  it('replace swaps the whole set; forget matches a peer given without its port', () => {
    const t = new SavedTargets(['10.0.0.2', '10.0.0.3']);
    t.forget(['10.0.0.3']);
    expect(t.list()).toEqual(['10.0.0.2:6783']);
    t.connect(['10.0.0.9'], true);
    expect(t.list()).toEqual(['10.0.0.9:6783']);
  });

  it(`holds at most ${MAX_SAVED_TARGETS} targets`, () => {
    const t = new SavedTargets();
    t.connect(
      Array.from({ length: MAX_SAVED_TARGETS + 50 }, (_, i) => `10.1.${i >> 8}.${i & 255}`),
      false,
    );
    expect(t.list()).toHaveLength(MAX_SAVED_TARGETS);
  });

  it('refuses damaged or foreign files with SavedTargetsError only', () => {
    for (const bad of [
      '',
      'null',
      '[]',
      '{"version":2,"targets":[]}',
      '{"version":1,"targets":[5]}',
      '{"version":1,"targets":["a:99999"]}',
    ]) {
      expect(() => decodeSavedTargets(bad), bad).toThrow(SavedTargetsError);
    }
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          decodeSavedTargets(text);
        } catch (err) {
          expect(err).toBeInstanceOf(SavedTargetsError);
        }
      }),
    );
  });
});
