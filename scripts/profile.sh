#!/usr/bin/env bash
# `bash scripts/profile.sh [SECONDS]`: where the router's time goes under load. Two test hosts, weft on each run
# under `node --cpu-prof`, a container on each, one iperf3 TCP stream for SECONDS (default 10) from h1's container to
# h2's; then both routers stop (writing their profiles) and the top functions by self time are printed for each
# (h1 = sender, h2 = receiver). Profiles are kept in /tmp/weft-profile-<prefix>/ to open in Chrome DevTools.
# With WEFT_PASSWORD set in the environment, both routers encrypt.
#
# `bash scripts/profile.sh --perf [SECONDS]`: the whole machine instead (`perf record -a`, kernel included: on one
# machine the routers' system calls carry the kernel's bridge, TAP and UDP work, and iperf3 competes for the same
# cores). Prints the top processes and symbols by share of all CPU time; installs linux-perf if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=node
if [ "${1:-}" = "--perf" ]; then MODE=perf; shift; fi
SECONDS_RUN=${1:-10}
[ "$(id -u)" = 0 ] || { echo "profile: needs root (network namespaces)" >&2; exit 1; }
bash scripts/setup.sh >/dev/null
if [ "$MODE" = perf ] && ! command -v perf >/dev/null; then
  echo "profile: installing linux-perf" >&2
  apt-get install -y -q linux-perf >/dev/null
fi
P=wp$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
RUN=/tmp/weft-profile-$P
mkdir -p "$RUN/h1" "$RUN/h2" "$RUN/prof"
cleanup() {
  for h in 1 2; do [ -f "$RUN/h$h/weft.pid" ] && kill "$(cat "$RUN/h$h/weft.pid")" 2>/dev/null || true; done
  sleep 1
  bash scripts/testhosts.sh down "$P" >/dev/null || true
}
trap cleanup EXIT
bash scripts/testhosts.sh up 2 "$P" >/dev/null
IP1=$(bash scripts/testhosts.sh ip "$P" 1)
cli() { local h=$1; shift; ip netns exec "$P-h$h" env WEFT_STATE_DIR="$RUN/h$h" WEFT_DOCKER_API= WEFT_PLUGIN_SOCKET= node dist/cli/main.js "$@"; }
daemon() {
  local h=$1; shift
  local prof=(--cpu-prof --cpu-prof-dir="$RUN/prof" --cpu-prof-name="h$h.cpuprofile")
  [ "$MODE" = perf ] && prof=()
  ip netns exec "$P-h$h" env WEFT_STATE_DIR="$RUN/h$h" WEFT_DOCKER_API= WEFT_PLUGIN_SOCKET= ${WEFT_PASSWORD:+WEFT_PASSWORD="$WEFT_PASSWORD"} node "${prof[@]}" \
    dist/daemon/main.js --nickname "h$h" --ipalloc-range '' "$@" >"$RUN/h$h/weft.log" 2>&1 &
}
daemon 1
daemon 2 "$IP1"
for _ in $(seq 1 40); do cli 2 status >/dev/null 2>&1 && cli 1 status >/dev/null 2>&1 && break; sleep 0.25; done
for h in 1 2; do
  bash scripts/testhosts.sh container "$P" "$h" c1 >/dev/null
  cli "$h" attach --netns "$P-h$h-c1" "10.98.0.$h/24" >/dev/null
done
for _ in $(seq 1 40); do ip netns exec "$P-h1-c1" ping -c1 -W1 10.98.0.2 >/dev/null 2>&1 && break; sleep 0.5; done
ip netns exec "$P-h2-c1" iperf3 -s -1 -D
sleep 0.5
if [ "$MODE" = perf ]; then
  perf record -a -F 2999 -o "$RUN/perf.data" -- ip netns exec "$P-h1-c1" iperf3 -c 10.98.0.2 -t "$SECONDS_RUN" -J >"$RUN/iperf.json" 2>"$RUN/perf.log"
else
  ip netns exec "$P-h1-c1" iperf3 -c 10.98.0.2 -t "$SECONDS_RUN" -J >"$RUN/iperf.json"
fi
echo "iperf3 TCP 1 stream: $(jq -r '.end.sum_received.bits_per_second / 1e6 | floor' "$RUN/iperf.json") Mbit/s"
if [ "$MODE" = perf ]; then
  echo "== share of all CPU time by process and object"
  perf report -i "$RUN/perf.data" --no-children --sort comm,dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
  echo "== by symbol"
  perf report -i "$RUN/perf.data" --no-children --sort comm,sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
  echo "perf data: $RUN/perf.data"
  exit 0
fi
for h in 1 2; do cli "$h" stop; done
for _ in $(seq 1 20); do [ -f "$RUN/prof/h1.cpuprofile" ] && [ -f "$RUN/prof/h2.cpuprofile" ] && break; sleep 0.5; done
node scripts/profile-summary.mjs "$RUN/prof/h1.cpuprofile" "$RUN/prof/h2.cpuprofile"
echo "profiles: $RUN/prof/"
