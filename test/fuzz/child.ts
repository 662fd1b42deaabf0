/**
 * Entry point of the fuzz processes the run (./run.ts) starts inside test namespaces (compiled: dist/test/fuzz/child.js):
 *
 *   node child.js sleeve  '<SleeveFuzzOptions as JSON>'   prints {"event":"joined","name":...}, waits for "go" on stdin
 *   node child.js control '<ControlFuzzOptions as JSON>'
 *   node child.js http    '<HttpFuzzOptions as JSON>'
 *
 * Each prints one {"event":"done","summary":{...}} line on stdout at the end (progress goes to stderr), or
 * {"event":"error","message":...} and exits 1.
 */
import { createInterface } from 'node:readline';
import { runSleeveFuzz, type SleeveFuzzOptions } from './sleeve-fuzz.js';
import { runControlFuzz, type ControlFuzzOptions } from './control-fuzz.js';
import { runHttpFuzz, type HttpFuzzOptions } from './http-fuzz.js';

const [mode, json] = process.argv.slice(2);
const progress = (line: string) => process.stderr.write(`${line}\n`);
const say = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

function stdinGo(): Promise<void> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: process.stdin });
    rl.on('line', (l) => {
      if (l.trim() === 'go') {
        resolve(); // before close(): closing emits 'close' at once
        rl.close();
      }
    });
    rl.on('close', () => reject(new Error('stdin closed before "go"')));
  });
}

try {
  const options = JSON.parse(json ?? '{}') as Record<string, unknown>;
  let summary: unknown;
  if (mode === 'sleeve') {
    summary = await runSleeveFuzz({
      ...(options as unknown as SleeveFuzzOptions),
      progress,
      whenJoined: async (name) => {
        say({ event: 'joined', name });
        await stdinGo();
      },
    });
  } else if (mode === 'control') {
    summary = await runControlFuzz({ ...(options as unknown as ControlFuzzOptions), progress });
  } else if (mode === 'http') {
    summary = await runHttpFuzz({ ...(options as unknown as HttpFuzzOptions), progress });
  } else {
    throw new Error(`usage: child.js sleeve|control|http OPTIONS_JSON (got ${mode})`);
  }
  say({ event: 'done', summary });
  process.exit(0);
} catch (err) {
  say({ event: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exit(1);
}
