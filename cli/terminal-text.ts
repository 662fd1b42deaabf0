/**
 * Text for a terminal from strings weft does not control. Nicknames, peer names, close reasons and error messages
 * come from other routers (gossip, hellos) or from anyone who can open a connection; printed raw, an ESC sequence in
 * a nickname could retitle the window, hide lines, fake a status or (on some terminals) answer back into the shell.
 * So every string from a report is escaped before `weft status`, `weft ps` and friends print it, and everything the
 * CLI writes passes a last check that leaves only newlines and tabs of its own.
 *
 * Escaped, as `\xHH` (`\u{HHHH}` above 0xff): C0 controls (0x00-0x1f, ESC among them), DEL (0x7f), C1 controls
 * (0x80-0x9f, which some terminals read as CSI and OSC), and the Unicode bidirectional overrides and isolates
 * (U+202A-U+202E, U+2066-U+2069), which reorder what is shown. Backslashes are left alone.
 */

// eslint-disable-next-line no-control-regex
const unsafeInField = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
// The CLI's own layout uses newlines and tabs; anything else in that range is never ours.
// eslint-disable-next-line no-control-regex
const unsafeInOutput = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

function escapeChar(c: string): string {
  const code = c.codePointAt(0)!;
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** `text` with every control character (newlines and tabs too) escaped: one field on one line. */
export function escapeControls(text: string): string {
  return text.replace(unsafeInField, escapeChar);
}

/** `text` with control characters escaped except newline and tab: a whole block of the CLI's output. */
export function escapeOutput(text: string): string {
  return text.replace(unsafeInOutput, escapeChar);
}

/** A deep copy of `value` with `escapeControls` applied to every string in it (object keys included). */
export function escapeStrings<T>(value: T): T {
  if (typeof value === 'string') return escapeControls(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => escapeStrings(v)) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[escapeControls(k)] = escapeStrings(v);
    return out as T;
  }
  return value;
}

/**
 * JSON for a terminal: `JSON.stringify` already writes C0 controls as `\u00XX`; DEL, C1 and the bidi controls it
 * leaves raw are written as `\u` escapes too, so the text is still the same JSON.
 */
export function terminalJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(
    /[\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
