#!/usr/bin/env node
/**
 * The `weft` command (package.json "bin": dist/cli/main.js). All the work is in program.ts; this file only binds it
 * to the real process. The exit code is set, not forced with process.exit(), so piped output is flushed first.
 */
import { runCli } from './program.js';

// `weft --help | head -1`, `weft status | grep -q x`: the reader may close the pipe before we are done writing.
// Node ignores SIGPIPE, so the write fails with EPIPE, emitted as an 'error' nobody handles: a crash with a stack
// trace. Stop quietly instead, as a command killed by SIGPIPE would; there is nobody left to tell.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  exit: (code) => {
    // `launch --foreground` runs the daemon here, which may have set a failing exit code itself: keep it.
    if (code !== 0 || process.exitCode === undefined) process.exitCode = code;
  },
  env: process.env,
});
