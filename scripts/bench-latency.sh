#!/usr/bin/env bash
# `bash scripts/bench-latency.sh [options]`: idle round-trip time through weft, two variants side by side in one run.
# Four test hosts: variant A on h1/h2, variant B on h3/h4, a container on each host; then ROUNDS rounds, each of
# COUNT pings (10 ms apart) A, then B, so both see the same machine load; prints every round's median per variant and
# the median of the medians. Optionally a `perf trace` of A's first router during a few pings (--trace), to read the
# time between a wake (epoll_wait/poll returning) and the send that forwards the packet.
#
#   --a-repo DIR / --b-repo DIR    the weft checkout each variant runs (its dist/ and native/ built; default this one)
#   --a-args "ARGS" / --b-args "ARGS"   more `weft launch` arguments (e.g. "--busy-poll 0")
#   --rounds N (default 5)  --count N (default 100)  --trace
#   --perf   also `perf record` A's first router during one more round of A, and print where its CPU time went
#
# Run only under the machine's bench lock (flock /work/wt/bench.lock ...) and read it with the load average printed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
a_repo=$REPO b_repo=$REPO a_args="" b_args="" rounds=5 count=100 trace="" perf=""
while [ $# -gt 0 ]; do
  case "$1" in
    --a-repo) a_repo=$(realpath "$2"); shift ;;
    --b-repo) b_repo=$(realpath "$2"); shift ;;
    --a-args) a_args=$2; shift ;;
    --b-args) b_args=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --count) count=$2; shift ;;
    --trace) trace=1 ;;
    --perf) perf=1 ;;
    *) echo "bench-latency: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "bench-latency: needs root (network namespaces)" >&2; exit 1; }
. scripts/testhosts.sh
P=wl$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
RUN=/tmp/weft-latency-$P
mkdir -p "$RUN"
cleanup() {
  local h
  trap - EXIT INT TERM
  for h in 1 2 3 4; do [ -f "$RUN/h$h/weft.pid" ] && kill "$(cat "$RUN/h$h/weft.pid")" 2>/dev/null || true; done
  sleep 0.5
  testhosts_down "$P" >/dev/null 2>&1 || true
  rm -rf "${RUN:?}"
}
trap cleanup EXIT
trap 'exit 130' INT
testhosts_up 4 "$P" >/dev/null
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
cli() {
  local h=$1 repo=$2
  shift 2
  mkdir -p "$RUN/h$h"
  ip netns exec "$P-h$h" env WEFT_STATE_DIR="$RUN/h$h" WEFT_DOCKER_API= WEFT_PLUGIN_SOCKET= node "$repo/dist/cli/main.js" "$@"
}
pair() {
  local a=$1 b=$2 repo=$3 args=$4 octet=$5
  # shellcheck disable=SC2086
  cli "$a" "$repo" launch --nickname "h$a" --ipalloc-range '' $args >/dev/null 2>&1
  # shellcheck disable=SC2086
  cli "$b" "$repo" launch --nickname "h$b" --ipalloc-range '' $args "$(testhosts_ip "$P" "$a")" >/dev/null 2>&1
  for h in "$a" "$b"; do
    testhosts_container "$P" "$h" c1 >/dev/null
    cli "$h" "$repo" attach --netns "$P-h$h-c1" "10.97.$octet.$h/24" >/dev/null
  done
  for _ in $(seq 1 60); do ip netns exec "$P-h$a-c1" ping -c1 -W1 "10.97.$octet.$b" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "bench-latency: pair h$a-h$b never answered" >&2
  return 1
}
pair 1 2 "$a_repo" "$a_args" 1
pair 3 4 "$b_repo" "$b_args" 1
# Warm-up, not recorded: a flood of pings, so V8 has optimised the hot path (at 100 packets a second it would still
# run in its baseline tier for a long while, at several times the cost per batch).
ip netns exec "$P-h1-c1" ping -n -q -f -c 20000 10.97.1.2 >/dev/null
ip netns exec "$P-h3-c1" ping -n -q -f -c 20000 10.97.1.4 >/dev/null
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
rtts() { ip netns exec "$1" ping -n -c "$count" -i 0.01 -W 1 "$2" | sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p'; }
: >"$RUN/a" && : >"$RUN/b"
for ((r = 1; r <= rounds; r++)); do
  ma=$(rtts "$P-h1-c1" 10.97.1.2 | tee -a "$RUN/a" | median)
  mb=$(rtts "$P-h3-c1" 10.97.1.4 | tee -a "$RUN/b" | median)
  echo "round $r: A median ${ma} ms   B median ${mb} ms   (load $(cut -d' ' -f1 /proc/loadavg))"
done
echo "all pings: A median $(median <"$RUN/a") ms (n=$(wc -l <"$RUN/a")), B median $(median <"$RUN/b") ms (n=$(wc -l <"$RUN/b"))"
for h in 1 2 3 4; do
  echo "h$h busy polling: $(cli "$h" "$([ "$h" -le 2 ] && echo "$a_repo" || echo "$b_repo")" report 2>/dev/null |
    jq -c '.datapath.counters | with_entries(select(.key | startswith("busy_poll_")))')"
done
echo "A: $a_repo $a_args"
echo "B: $b_repo $b_args"
if [ -n "$perf" ]; then
  perf record -o "$RUN/perf.data" -p "$(cat "$RUN/h1/weft.pid")" -- sleep "$((count / 100 + 2))" >/dev/null 2>&1 &
  pp=$!
  sleep 0.5
  rtts "$P-h1-c1" 10.97.1.2 >/dev/null
  wait "$pp" || true
  echo "== A's first router, by object"
  perf report -i "$RUN/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
  echo "== by symbol"
  perf report -i "$RUN/perf.data" --no-children --sort sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
fi
if [ -n "$trace" ]; then
  pid=$(cat "$RUN/h1/weft.pid")
  perf trace -p "$pid" -e 'epoll_wait,epoll_pwait,poll,read,write,sendmmsg,recvmmsg,sched_yield' -o "$RUN/trace" &
  tp=$!
  sleep 1
  ip netns exec "$P-h1-c1" ping -n -q -c 20 -i 0.02 10.97.1.2 >/dev/null
  sleep 0.5
  kill -INT "$tp" 2>/dev/null || true
  wait "$tp" 2>/dev/null || true
  # Per ping on A's first router: the wake that brought the request, its read, the send; the reply's recvmmsg and
  # the TAP write (spins that found nothing and timer wakes left out).
  grep -v 'sched_yield\|poll(.*= 0$\|EAGAIN' "$RUN/trace" | sed 's/(fd: \([0-9]*\),.*) *=/(fd \1) =/; s/(epfd:.*) *=/ =/; s/(ufds:.*) *=/ =/' | tail -120
fi
