#!/usr/bin/env bash
# `npm run fuzz`: the long fuzz run against live daemons in network namespaces (root). Builds what it needs, then runs
# test/fuzz/main.ts (see docs/security.md, "Fuzzing"). Arguments go to it: --datagrams N --control-frames N
# --hellos N --http N --seed S --rate PPS.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.fuzz.json
exec node dist/test/fuzz/main.js "$@"
