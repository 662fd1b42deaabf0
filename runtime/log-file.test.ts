import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RotatingLogFile } from './log-file.js';
import { createLogger, formatLogLine } from './logger.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'weft-logfile-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('RotatingLogFile', () => {
  it('rotates by size, keeps `keep` old files, and never lets a file pass the limit by more than one line', () => {
    const dir = tempDir();
    const path = join(dir, 'weft.log');
    const file = new RotatingLogFile(path, { maxBytes: 4096, keep: 2 });
    const line = `${'x'.repeat(99)}\n`;
    for (let i = 0; i < 200; i++) file.write(line); // 20,000 bytes: rotates about 4 times
    file.close();
    expect(readdirSync(dir).sort()).toEqual(['weft.log', 'weft.log.1', 'weft.log.2']);
    for (const f of ['weft.log', 'weft.log.1', 'weft.log.2']) expect(statSync(join(dir, f)).size).toBeLessThanOrEqual(4096);
    expect(statSync(join(dir, 'weft.log.1')).size).toBeGreaterThan(4096 - 100);
    expect(file.droppedWrites).toBe(0);
  });

  it('appends to an existing log and counts writes after close instead of throwing', () => {
    const dir = tempDir();
    const path = join(dir, 'weft.log');
    const a = new RotatingLogFile(path);
    a.write('one\n');
    a.close();
    const b = new RotatingLogFile(path);
    b.write('two\n');
    b.close();
    expect(readFileSync(path, 'utf8')).toBe('one\ntwo\n');
    expect(b.write('after close\n')).toBe(false);
    expect(b.droppedWrites).toBe(1);
  });

  it('refuses nonsense limits', () => {
    const path = join(tempDir(), 'weft.log');
    expect(() => new RotatingLogFile(path, { maxBytes: 10 })).toThrow(RangeError);
    expect(() => new RotatingLogFile(path, { keep: 0 })).toThrow(RangeError);
  });

  it('is a pino destination: the daemon logger writes JSON lines into it', () => {
    const path = join(tempDir(), 'weft.log');
    const file = new RotatingLogFile(path);
    const log = createLogger({ destination: file });
    log.warn({ peer: 'aa:bb' }, 'hello');
    file.close();
    const entry = JSON.parse(readFileSync(path, 'utf8').trim()) as Record<string, unknown>;
    expect(entry).toMatchObject({ level: 40, msg: 'hello', peer: 'aa:bb' });
  });
});

describe('formatLogLine (foreground on a terminal, without pino-pretty)', () => {
  it('prints time, level, message and fields, and escapes control characters from remote strings', () => {
    const line = JSON.stringify({
      level: 40,
      time: '2026-12-07T04:05:06.789Z',
      msg: 'peer closed',
      nickname: 'evil\u001b[2J\u0007',
      reason: 'x',
    });
    const text = formatLogLine(line);
    expect(text).toBe('04:05:06.789  WARN   peer closed  nickname=evil\\x1b[2J\\x07  reason=x');
    // eslint-disable-next-line no-control-regex
    expect(text).not.toMatch(/[\u0000-\u001f]/);
  });

  it('leaves a line that is not JSON as it is', () => {
    expect(formatLogLine('Error: boom')).toBe('Error: boom');
  });
});
