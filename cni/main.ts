#!/usr/bin/env node
/**
 * The `weft` CNI plugin executable (installed by `weft setup-cni` as <bin-dir>/weft, a launcher that runs node on this
 * file). All the work is in plugin.ts; this file binds it to the real process: the environment, stdin, stdout.
 */
import { runPlugin } from './plugin.js';
import { realPluginDeps } from './runtime-deps.js';
import { MAX_STDIN_BYTES } from './spec.js';

function readStdin(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    process.stdin.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Keep one byte past the limit so the parser can say "too large" instead of "not JSON".
      if (size - chunk.length <= MAX_STDIN_BYTES) chunks.push(chunk);
    });
    process.stdin.on('end', () => resolve(Buffer.concat(chunks)));
    process.stdin.on('error', reject);
  });
}

process.exitCode = await runPlugin(
  { env: process.env, stdin: readStdin, stdout: process.stdout, stderr: process.stderr },
  realPluginDeps(process.stderr),
);
