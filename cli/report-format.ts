/**
 * `weft report -f TEMPLATE`: pick fields from the report for scripts, as `weave report -f '{{...}}'` does.
 * `{{router.peerName}}` (a leading dot is allowed: `{{.router.peerName}}`) is replaced by that value; strings and
 * numbers print as they are, objects and arrays as compact JSON; array elements by index (`{{connections.0.state}}`).
 * `\n` and `\t` in the template are a newline and a tab. A path that names nothing is an error naming the path and the
 * keys that do exist there, so a typo is found at once.
 */
import { WeftError } from '../runtime/errors.js';
export class ReportFormatError extends WeftError {
  readonly code = 'REPORT_FORMAT';
}

/** Any `{{...}}`; its inside must be a path (letters, digits, `_`, `-` between dots, a leading dot allowed). */
const BRACES = /\{\{(.*?)\}\}/g;
const PATH = /^\s*\.?([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)?\s*$/;

export function formatReport(template: string, report: unknown): string {
  if (template.length > 4096) throw new ReportFormatError('the template is longer than 4096 characters');
  const text = template.replace(/\\n/g, '\n').replace(/\\t/g, '\t');
  return text.replace(BRACES, (whole, inside: string) => {
    const path = PATH.exec(inside);
    if (path === null)
      throw new ReportFormatError(
        `${JSON.stringify(whole)} is not a field: write {{router.peerName}} (letters, digits, _ and - between dots)`,
      );
    return render(lookup(report, path[1] ?? ''));
  });
}

function lookup(root: unknown, path: string): unknown {
  if (path === '') return root;
  let value: unknown = root;
  const walked: string[] = [];
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.prototype.hasOwnProperty.call(value, key)) {
      const here = walked.length > 0 ? walked.join('.') : 'the report';
      const keys =
        value !== null && typeof value === 'object' ? Object.keys(value).slice(0, 30).join(', ') : `a ${typeof value}, which has no fields`;
      throw new ReportFormatError(`${path}: ${here} has no ${JSON.stringify(key)}; it has: ${keys || 'nothing'}`);
    }
    value = (value as Record<string, unknown>)[key];
    walked.push(key);
  }
  return value;
}

function render(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  return JSON.stringify(value);
}
