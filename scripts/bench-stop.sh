#!/usr/bin/env bash
# Wall-clock of `weft launch` and `weft stop` on 2 test hosts (password set, h2 given h1): a measurement for the
# start/stop work of issue 19, not a test. Everything is removed at the end, also on failure.
#   bash scripts/bench-stop.sh
set -u
umask 077 # password file and state dirs private (weft warns otherwise)
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
P=ws$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
RUN=$(mktemp -d "/tmp/$P-XXXX")
head -c 24 /dev/urandom | base64 > "$RUN/password"
cleanup() {
  for d in "$RUN"/h*; do [ -f "$d/weft.pid" ] && kill "$(cat "$d/weft.pid")" 2>/dev/null; done
  sleep 0.3
  bash scripts/testhosts.sh down "$P" >/dev/null
  rm -rf "$RUN"
}
trap cleanup EXIT
bash scripts/testhosts.sh up 2 "$P" >/dev/null 2>&1 || exit 1
IP1=$(bash scripts/testhosts.sh ip "$P" 1)
w() { local h=$1; shift; mkdir -p "$RUN/h$h"; ip netns exec "$P-h$h" env WEFT_STATE_DIR="$RUN/h$h" node dist/cli/main.js "$@"; }
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
echo "weft --help (CLI start-up alone): $(t node dist/cli/main.js --help) s"
echo "launch h1: $(t w 1 launch --nickname h1 --password-file "$RUN/password") s"
echo "launch h2: $(t w 2 launch --nickname h2 --password-file "$RUN/password" "$IP1") s"
for _ in $(seq 1 100); do w 2 status connections 2>/dev/null | grep -q established && break; sleep 0.2; done
echo "stop h2: $(t w 2 stop) s"
echo "stop h1: $(t w 1 stop) s"
