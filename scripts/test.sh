#!/usr/bin/env bash
# The README's test command (`npm test`): installs what it needs, builds, then runs all three test tiers
# (unit, in-process simulation, netns integration as root). Extra arguments go to vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" != 0 ]; then
  echo "NOTE: not root: the netns integration tests will be skipped (run as root to include them)." >&2
fi
results=$(mktemp /tmp/weft-vitest-XXXXXX.json)
trap 'rm -f "$results"' EXIT
rc=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@" || rc=$?
if [ -s "$results" ]; then
  # A plain closing line any CI can read.
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
  ' "$results"
fi
exit $rc
