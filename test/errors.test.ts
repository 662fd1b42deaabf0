/**
 * One base for every error weft throws on purpose (runtime/errors.ts): a class that extends `Error` directly would
 * reach the API as a 500 with its code lost, and its status could not be looked up by class.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { WeftError } from '../runtime/errors.js';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    if (['node_modules', 'dist', 'build', '.git'].includes(e)) return [];
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') && !p.endsWith('.test.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

describe('error classes', () => {
  it('every error class in the source tree derives from WeftError', () => {
    const direct: string[] = [];
    let classes = 0;
    for (const file of sources(root)) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/class (\w+) extends (\w+)/g)) {
        if (m[2] === 'Error' && relative(root, file) !== 'runtime/errors.ts') direct.push(`${relative(root, file)}: ${m[1]}`);
        if (m[2]!.endsWith('Error')) classes++;
      }
    }
    expect(direct).toEqual([]);
    expect(classes).toBeGreaterThan(40);
  });

  it('names an error by its class and keeps the status its class declares', () => {
    class SampleError extends WeftError {
      readonly code = 'ERR_SAMPLE';
      override readonly status = 404;
    }
    class PlainError extends WeftError {
      readonly code = 'ERR_PLAIN';
    }
    const e = new SampleError('gone', { cause: 'x' });
    expect([e.name, e.code, e.status, e.message, e.cause]).toEqual(['SampleError', 'ERR_SAMPLE', 404, 'gone', 'x']);
    expect(new PlainError('bad').status).toBe(400);
    expect(e).toBeInstanceOf(Error);
  });
});
