import { describe, expect, it } from 'vitest';
import { formatReport, ReportFormatError } from './report-format.js';

const report = {
  router: { peerName: 'aa:bb:cc:dd:ee:ff', nickname: 'h1' },
  connections: [{ state: 'established' }, { state: 'failed' }],
  n: 3,
};

describe('weft report -f', () => {
  it('replaces fields, with or without a leading dot, and array indexes', () => {
    expect(formatReport('{{router.nickname}} {{.router.peerName}} {{connections.1.state}} {{n}}', report)).toBe(
      'h1 aa:bb:cc:dd:ee:ff failed 3',
    );
  });

  it('prints objects and arrays as JSON, and interprets \\n and \\t', () => {
    expect(formatReport('{{connections}}\\n{{router}}', report)).toBe(
      '[{"state":"established"},{"state":"failed"}]\n{"peerName":"aa:bb:cc:dd:ee:ff","nickname":"h1"}',
    );
  });

  it('names the path and the keys that exist when a field is missing', () => {
    expect(() => formatReport('{{router.name}}', report)).toThrow(ReportFormatError);
    expect(() => formatReport('{{router.name}}', report)).toThrow(/router has no "name"; it has: peerName, nickname/);
  });

  it('does not walk into the prototype', () => {
    expect(() => formatReport('{{router.constructor}}', report)).toThrow(ReportFormatError);
    expect(() => formatReport('{{__proto__}}', report)).toThrow(ReportFormatError);
  });

  it('refuses a malformed field instead of printing it', () => {
    expect(() => formatReport('{{router nickname}}', report)).toThrow(/is not a field/);
  });
});
