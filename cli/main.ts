#!/usr/bin/env node
/**
 * The `weft` command (package.json "bin": dist/cli/main.js). All the work is in program.ts; this file only binds it
 * to the real process. The exit code is set, not forced with process.exit(), so piped output is flushed first.
 */
import { runCli } from './program.js';

await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  exit: (code) => {
    // `launch --foreground` runs the daemon here, which may have set a failing exit code itself: keep it.
    if (code !== 0 || process.exitCode === undefined) process.exitCode = code;
  },
  env: process.env,
});
