import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { escapeControls, escapeOutput, escapeStrings, terminalJson } from './terminal-text.js';

// Every code point a terminal may act on: C0, DEL, C1, bidi overrides and isolates.
const isUnsafe = (code: number) =>
  code < 0x20 || (code >= 0x7f && code <= 0x9f) || (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069);

describe('terminal text', () => {
  it('escapes ESC, C0, DEL, C1 and bidi controls in a field, newlines and tabs too', () => {
    expect(escapeControls('h1\x1b]0;pwned\x07\x1b[2J')).toBe('h1\\x1b]0;pwned\\x07\\x1b[2J');
    expect(escapeControls('a\nb\tc\rd\x00e\x7ff\u009bg\u202eh')).toBe('a\\x0ab\\x09c\\x0dd\\x00e\\x7ff\\x9bg\\u{202e}h');
    expect(escapeControls('plain h1 (10.0.0.1:6783) é ✓')).toBe('plain h1 (10.0.0.1:6783) é ✓');
  });

  it('keeps the CLI’s own newlines and tabs in whole output, escaping the rest', () => {
    expect(escapeOutput('Name: h1\x1b[31m\n\tnext\n')).toBe('Name: h1\\x1b[31m\n\tnext\n');
  });

  it('leaves no unsafe code point in any string, and changes safe strings not at all (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 64 }), (s) => {
        const escaped = escapeControls(s);
        for (const ch of escaped) expect(isUnsafe(ch.codePointAt(0)!)).toBe(false);
        if (![...s].some((ch) => isUnsafe(ch.codePointAt(0)!))) expect(escaped).toBe(s);
      }),
    );
  });

  it('escapes every string of a report deeply, keys included, and leaves numbers and booleans', () => {
    const report = { router: { nickname: 'h\x1b[2J', peers: [{ name: 'x\u009b', isUp: true, n: 3 }], counters: { 'k\x07': 1 } } };
    expect(escapeStrings(report)).toEqual({
      router: { nickname: 'h\\x1b[2J', peers: [{ name: 'x\\x9b', isUp: true, n: 3 }], counters: { 'k\\x07': 1 } },
    });
    expect(report.router.nickname).toBe('h\x1b[2J');
  });

  it('writes JSON with no raw control character that still parses to the same value', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), fc.string({ unit: 'binary', maxLength: 16 })), (value) => {
        const text = terminalJson(value);
        for (const ch of text) if (ch !== '\n') expect(isUnsafe(ch.codePointAt(0)!)).toBe(false);
        expect(JSON.parse(text)).toEqual(value);
      }),
    );
  });
});
