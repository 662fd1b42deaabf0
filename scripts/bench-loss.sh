#!/usr/bin/env bash
# `npm run bench:loss`: TCP under independent random packet loss, weft (with a password) against plain TCP between
# the same two test hosts, in one run (scripts/testhosts.sh: network namespaces on one isolated underlay bridge):
#
#   plain   h1 -> h2 host namespaces directly (iperf3 TCP, 1 stream); loss: iptables on h2 drops that share of the
#           TCP packets to the iperf3 port
#   weft    `weft launch` with WEFT_PASSWORD on h1/h2, a container on each (10.48.5.N/24), iperf3 TCP between the
#           containers; loss: iptables on h2 drops that share of the UDP datagrams to port 6783 (the sleeve)
#
# Loss is per packet on the wire: segmentation offloads are off on h1's underlay interface (tso, gso,
# tx-udp-segmentation), so one drop is one TCP segment or one datagram, not a 64 KiB batch of them. Each figure is
# the median of the runs at that loss; ratio = weft / plain. Everything it creates (prefix wlXXXX) is removed on
# exit, also on failure or Ctrl-C. Results: docs/benchmarks.md, "TCP under packet loss".
#
#   npm run bench:loss                          3 runs of 5 s per loss rate and path
#   npm run bench:loss -- --runs N --seconds S --loss 0,0.1,0.5,2,5
#   npm run bench:loss -- --no-setup            skip scripts/setup.sh (packages and build already in place)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
ORIGINAL_ARGS="$*"

runs=3
seconds=5
losses="0,0.1,0.5,2,5"
setup=1
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [[ "${2:-}" =~ ^[1-9]$ ]] || { echo "bench:loss: --runs takes 1..9" >&2; exit 2; }; runs=$2; shift ;;
    --seconds) [[ "${2:-}" =~ ^([1-9]|[1-5][0-9]|60)$ ]] || { echo "bench:loss: --seconds takes 1..60" >&2; exit 2; }
      seconds=$2; shift ;;
    --loss) [[ "${2:-}" =~ ^[0-9.]+(,[0-9.]+)*$ ]] || { echo "bench:loss: --loss takes percentages, e.g. 0,0.5,2" >&2; exit 2; }
      losses=$2; shift ;;
    --no-setup) setup="" ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench:loss: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

if [ "$(id -u)" != 0 ]; then
  echo "bench:loss: needs root (it creates network namespaces): sudo npm run bench:loss" >&2
  exit 1
fi
[ -z "$setup" ] || bash scripts/setup.sh
for t in iperf3 jq ip ss timeout iptables ethtool; do
  command -v "$t" >/dev/null || { echo "bench:loss: $t is missing" >&2; exit 1; }
done

# shellcheck source=testhosts.sh
. scripts/testhosts.sh
# shellcheck source=bench/measure.sh
. scripts/bench/measure.sh

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
testhosts_sweep '^wl[0-9a-f]{4}$' >/dev/null || true

PREFIX=wl$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
BENCH_RUN_DIR=/run/weft-bench/$PREFIX
BENCH_RESULTS=$BENCH_RUN_DIR/results.tsv
BENCH_SECONDS=$seconds
export BENCH_RUN_DIR BENCH_RESULTS BENCH_SECONDS
declare -a SERVERS=()
started_at=$(date +%s)
load_at_start=$(cut -d' ' -f1 /proc/loadavg)

weft() {
  local n=$1
  shift
  local envs=()
  while [[ "${1:-}" == WEFT_*=* ]]; do envs+=("$1"); shift; done
  mkdir -p "$BENCH_RUN_DIR/h$n"
  timeout 60 ip netns exec "$PREFIX-h$n" env WEFT_STATE_DIR="$BENCH_RUN_DIR/h$n" WEFT_DOCKER_API= WEFT_PLUGIN_SOCKET= "${envs[@]}" \
    node "$REPO/dist/cli/main.js" "$@"
}
weft_pid() { cat "$BENCH_RUN_DIR/h$1/weft.pid" 2>/dev/null || true; }
weft_down() {
  local n=$1 pid i
  pid=$(weft_pid "$n")
  [ -n "$pid" ] || return 0
  weft "$n" stop >/dev/null 2>&1 || true
  for ((i = 0; i < 30; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -TERM "$pid" 2>/dev/null || true
  sleep 0.5
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? pid n
  trap - EXIT INT TERM
  for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for n in 1 2; do weft_down "$n"; done
  testhosts_down "$PREFIX" >/dev/null 2>&1 || true
  rm -rf "${BENCH_RUN_DIR:?}"
  rmdir /run/weft-bench 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$BENCH_RUN_DIR"
: >"$BENCH_RESULTS"
say "Creating 2 test hosts ($PREFIX-h1, h2) on one underlay"
testhosts_up 2 "$PREFIX" >/dev/null
IP1=$(testhosts_ip "$PREFIX" 1)
IP2=$(testhosts_ip "$PREFIX" 2)
ip netns exec "$PREFIX-h1" ethtool -K eth0 tso off gso off tx-udp-segmentation off >/dev/null 2>&1 ||
  { bench_err "cannot turn segmentation offloads off on h1's eth0"; exit 1; }

say "weft with a password on h1 and h2, a container on each (10.48.5.1 -> 10.48.5.2)"
PW="WEFT_PASSWORD=bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
weft 1 "$PW" launch --nickname h1 >&2
weft 2 "$PW" launch --nickname h2 "$IP1" >&2
for n in 1 2; do
  testhosts_container "$PREFIX" "$n" c1 >/dev/null
  weft "$n" attach --netns "$PREFIX-h$n-c1" "10.48.5.$n/24" >/dev/null
done
for ((i = 0; i < 60; i++)); do
  weft 1 status connections 2>/dev/null | grep -q established && break
  sleep 0.5
done

bench_iperf_server "$PREFIX-h2" "$IP2"
SERVERS+=("$BENCH_SERVER_PID")
bench_iperf_server "$PREFIX-h2-c1" 10.48.5.2
SERVERS+=("$BENCH_SERVER_PID")
bench_wait_reachable "$PREFIX-h1-c1" 10.48.5.2 30
BENCH_SECONDS=1 bench_iperf "$PREFIX-h1-c1" 10.48.5.2 "$BENCH_RUN_DIR/warmup.json"

# with_loss PERCENT PROTO PORT CMD...: CMD with an iptables rule on h2 dropping PERCENT % of PROTO packets to PORT.
with_loss() {
  local pct=$1 proto=$2 port=$3 rc=0 rule
  shift 3
  rule=(INPUT -p "$proto" --dport "$port" -m statistic --mode random --probability "$(awk -v p="$pct" 'BEGIN { printf "%.6f", p / 100 }')" -j DROP)
  if awk -v p="$pct" 'BEGIN { exit !(p > 0) }'; then ip netns exec "$PREFIX-h2" iptables -w 5 -I "${rule[@]}"; fi
  "$@" || rc=$?
  if awk -v p="$pct" 'BEGIN { exit !(p > 0) }'; then ip netns exec "$PREFIX-h2" iptables -w 5 -D "${rule[@]}" || true; fi
  return $rc
}

IFS=, read -r -a LOSS_LIST <<<"$losses"
for pct in "${LOSS_LIST[@]}"; do
  for ((run = 1; run <= runs; run++)); do
    echo "  loss $pct %, run $run/$runs: plain TCP, weft TCP" >&2
    with_loss "$pct" tcp "$BENCH_IPERF_PORT" bench_tcp "plain@$pct" "$run" "$PREFIX-h1" "$IP2" 1 tcp1_gbps || true
    sleep 0.5
    with_loss "$pct" udp 6783 bench_tcp "weft@$pct" "$run" "$PREFIX-h1-c1" 10.48.5.2 1 tcp1_gbps || true
    sleep 0.5
  done
done
weft 1 report 2>/dev/null | jq '.datapath.counters // {}' >"$BENCH_RUN_DIR/counters-sender.json" || true
weft 2 report 2>/dev/null | jq '.datapath.counters // {}' >"$BENCH_RUN_DIR/counters-receiver.json" || true

median_of() { awk -F '\t' -v p="$1" -v m="$2" '$1 == p && $2 == m { print $4 }' "$BENCH_RESULTS" | bench_median 2>/dev/null || echo ""; }
say "Results: median of $runs run(s), ${seconds} s per iperf3 test ($(($(date +%s) - started_at)) s in all, load $load_at_start at start)"
echo "command: npm run bench:loss${ORIGINAL_ARGS:+ -- $ORIGINAL_ARGS}"
echo "machine: $(nproc) cores, $(uname -sr), node $(node -v), load average $load_at_start at start, $(cut -d' ' -f1 /proc/loadavg) at end"
echo
echo "| loss | weft (password) Gbit/s | plain TCP Gbit/s | ratio | weft retransmits | plain retransmits |"
echo "|---|---|---|---|---|---|"
for pct in "${LOSS_LIST[@]}"; do
  w=$(median_of "weft@$pct" tcp1_gbps)
  p=$(median_of "plain@$pct" tcp1_gbps)
  wr=$(median_of "weft@$pct" tcp1_gbps_retransmits)
  pr=$(median_of "plain@$pct" tcp1_gbps_retransmits)
  ratio=$(awk -v w="$w" -v p="$p" 'BEGIN { if (w == "" || p == "" || p == 0) print "-"; else printf "%.2f", w / p }')
  printf '| %s %% | %s | %s | %s | %s | %s |\n' "$pct" "$(printf '%.3f' "${w:-0}")" "$(printf '%.3f' "${p:-0}")" "$ratio" "${wr:--}" "${pr:--}"
done
echo
echo "weft counters (sender h1): $(jq -c '{segmented_out, segments_out, pieces_out}' "$BENCH_RUN_DIR/counters-sender.json" 2>/dev/null)"
echo "weft counters (receiver h2): $(jq -c '{segment_gaps, segments_coalesced, coalesced_delivered, pieces_in, drop_piece_gap}' "$BENCH_RUN_DIR/counters-receiver.json" 2>/dev/null)"
