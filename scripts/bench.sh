#!/usr/bin/env bash
# `npm run bench`: container-to-container throughput, packet rate and latency over five paths, in one run, on test
# hosts (network namespaces on one isolated underlay bridge, scripts/testhosts.sh):
#
#   raw     h1 -> h2 host namespaces directly: veth -> underlay bridge -> veth, no overlay (the ceiling)
#   vxlan   kernel VXLAN (id 42, port 4789) on h1/h2, a bridge per host, a container on each (10.48.2.N/24)
#   weft    `weft launch --no-fastdp` on h3/h4 (the sleeve), `weft attach` a container on each (10.48.3.N/24)
#   weft-pw the same with WEFT_PASSWORD on h5/h6 (10.48.4.N/24); skipped if `weft launch --help` has no --password
#   fastdp  `weft launch` on h7/h8, no password: the kernel's VXLAN carries, once heartbeats confirm it (10.48.5.N/24)
#   weft-pcap  weft with `--capture pcap` (libpcap on a veth pair, no offloads) on h9/h10 (10.48.6.N/24), no password;
#           only when asked for (--paths ...,weft-pcap): the cost of pcap against the TAP
#
# Per path and run: ping RTT at idle (50 pings, 10 ms apart; median and mean), iperf3 TCP with 1 and 4 streams,
# iperf3 UDP with 64-byte payloads at full speed (-b 0; what was sent, what the receiver got, the loss). The weft
# routers' CPU% and RSS are sampled from /proc during the 1-stream TCP test. Prints the median of each figure per
# path and the ratios weft/raw, weft/vxlan, weft+pw/weft, fastdp/vxlan. Everything it creates (prefix wbXXXX) is removed on exit,
# also on failure or Ctrl-C. Results and how to read them: docs/benchmarks.md.
#
#   npm run bench                        3 runs of 5 s per test (about 4 minutes)
#   npm run bench -- --quick             1 run of 2 s (a smoke test, about a minute)
#   npm run bench -- --json FILE         also write the summary, with every run's figures, as JSON
#   npm run bench -- --runs N --seconds S --paths raw,vxlan,weft,weft-pw,fastdp,weft-pcap
#   npm run bench -- --no-setup          skip scripts/setup.sh (packages and build already in place)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
ORIGINAL_ARGS="$*"

runs=3
seconds=5
json_out=""
paths="raw,vxlan,weft,weft-pw,fastdp"
setup=1
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) runs=1 seconds=2 ;;
    --json) [ $# -ge 2 ] || { echo "bench: --json needs a file name" >&2; exit 2; }
      json_out=$(realpath -m "$2"); shift ;;
    --runs) [[ "${2:-}" =~ ^[1-9]$ ]] || { echo "bench: --runs takes 1..9" >&2; exit 2; }; runs=$2; shift ;;
    --seconds) [[ "${2:-}" =~ ^([1-9]|[1-5][0-9]|60)$ ]] || { echo "bench: --seconds takes 1..60" >&2; exit 2; }
      seconds=$2; shift ;;
    --paths) [[ "${2:-}" =~ ^(raw|vxlan|weft|weft-pw|fastdp|weft-pcap)(,(raw|vxlan|weft|weft-pw|fastdp|weft-pcap))*$ ]] ||
      { echo "bench: --paths takes a comma list of raw, vxlan, weft, weft-pw, fastdp, weft-pcap" >&2; exit 2; }; paths=$2; shift ;;
    --no-setup) setup="" ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
wants() { [[ ",$paths," == *",$1,"* ]]; }

if [ "$(id -u)" != 0 ]; then
  echo "bench: needs root (it creates network namespaces): sudo npm run bench" >&2
  exit 1
fi

[ -z "$setup" ] || bash scripts/setup.sh
for t in iperf3 jq ping ip ss timeout; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing; scripts/setup.sh should have installed it" >&2; exit 1; }
done

# shellcheck source=testhosts.sh
. scripts/testhosts.sh
# shellcheck source=bench/measure.sh
. scripts/bench/measure.sh

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

# Leftovers of earlier bench runs whose shell died (testhosts only removes runs with a marker and a dead owner).
testhosts_sweep '^wb[0-9a-f]{4}$' >/dev/null || true

PREFIX=wb$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
BENCH_RUN_DIR=/run/weft-bench/$PREFIX
BENCH_RESULTS=$BENCH_RUN_DIR/results.tsv
BENCH_SECONDS=$seconds
export BENCH_RUN_DIR BENCH_RESULTS BENCH_SECONDS
declare -a SERVERS=()   # iperf3 server PIDs
declare -A SKIPPED=()   # path -> why
started_at=$(date +%s)
# Everything here shares two cores: other work running now (tests, builds) shows up as noise in every figure.
load_at_start=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load_at_start" 'BEGIN { exit !(l >= 1) }'; then
  echo "bench: warning: load average is $load_at_start before starting; figures will be noisy (see: uptime, top)" >&2
fi

# weft on host N: the compiled CLI inside the host namespace, state in the run dir. Extra env as leading VAR=VALUE.
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

# Stop weft on host N: `weft stop`, then the pid file's process by PID if it is still there.
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
  for n in 3 4 5 6 7 8 9 10; do weft_down "$n"; done
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
host_count=8
if wants weft-pcap; then host_count=10; fi
say "Creating $host_count test hosts ($PREFIX-h1..h$host_count) on one underlay"
testhosts_up "$host_count" "$PREFIX" >/dev/null
declare -a IP
for ((i = 1; i <= host_count; i++)); do IP[$i]=$(testhosts_ip "$PREFIX" "$i"); done

# measure PATH CLIENT_NS SERVER_NS SERVER_ADDR [SENDER_PID RECEIVER_PID]: every test, $runs times.
measure() {
  local path=$1 cns=$2 sns=$3 addr=$4 send_pid=${5:-} recv_pid=${6:-} server run s1 s2 window cpu rss dev side
  bench_iperf_server "$sns" "$addr" || return 1
  server=$BENCH_SERVER_PID
  SERVERS+=("$server")
  bench_wait_reachable "$cns" "$addr" 30 || return 1
  # Warm-up, not recorded: the first seconds of a fresh weft are slower (V8 compiles its hot loop, buffers grow).
  BENCH_SECONDS=1 bench_iperf "$cns" "$addr" "$BENCH_RUN_DIR/warmup.json" || return 1
  window=$((seconds > 1 ? seconds - 1 : 1))
  # The MTU the sender's packets leave with (the container's interface; eth0 for raw), to read the figures by.
  dev=$(ip -n "$cns" route get "$addr" 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -1)
  [ -z "$dev" ] ||
    bench_record "$path" mtu 1 "$(ip -n "$cns" -o link show dev "$dev" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')"
  for ((run = 1; run <= runs; run++)); do
    echo "  $path run $run/$runs: ping, TCP x1, TCP x4, UDP 64 B" >&2
    sleep 0.5
    bench_ping "$path" "$run" "$cns" "$addr" || return 1
    if [ -n "$send_pid" ]; then
      rm -f "$BENCH_RUN_DIR"/sample-*
      bench_sample_start "$send_pid" "$BENCH_RUN_DIR/sample-send" "$window"
      s1=$BENCH_SAMPLER_PID
      bench_sample_start "$recv_pid" "$BENCH_RUN_DIR/sample-recv" "$window"
      s2=$BENCH_SAMPLER_PID
    fi
    bench_tcp "$path" "$run" "$cns" "$addr" 1 tcp1_gbps || return 1
    if [ -n "$send_pid" ]; then
      wait "$s1" "$s2" || true
      for side in send recv; do
        [ -s "$BENCH_RUN_DIR/sample-$side" ] && read -r cpu rss <"$BENCH_RUN_DIR/sample-$side" &&
          bench_record "$path" "cpu_${side}_pct" "$run" "$cpu" && bench_record "$path" "rss_${side}_mib" "$run" "$rss"
      done
    fi
    bench_tcp "$path" "$run" "$cns" "$addr" 4 tcp4_gbps || return 1
    bench_udp "$path" "$run" "$cns" "$addr" || return 1
  done
  kill "$server" 2>/dev/null || true
  echo "  $path: $(awk -F '\t' -v p="$path" '$1 == p && $2 == "tcp1_gbps" {printf "%.2f ", $4}' "$BENCH_RESULTS")$(
    )Gbit/s (TCP x1)" >&2
}

# --- (a) raw veth: the host namespaces themselves, over the underlay bridge.
path_raw() {
  say "raw veth: $PREFIX-h1 -> $PREFIX-h2 (${IP[2]}), no overlay"
  measure raw "$PREFIX-h1" "$PREFIX-h2" "${IP[2]}"
}

# --- (b) kernel VXLAN: vxlan device + bridge per host, a container namespace on the bridge through a veth. The
# container MTU is the vxlan device's (1450 = 1500 - 50 bytes of outer headers), as weave's fastdp sets it.
path_vxlan() {
  local i h c peer
  say "kernel VXLAN: containers 10.48.2.1 -> 10.48.2.2 over vxlan id 42 between h1 and h2"
  for i in 1 2; do
    h="$PREFIX-h$i" c="$PREFIX-h$i-vx" peer=$((3 - i))
    testhosts_container "$PREFIX" "$i" vx >/dev/null &&
      ip -n "$h" link add vx42 type vxlan id 42 remote "${IP[$peer]}" dstport 4789 dev eth0 &&
      ip -n "$h" link add vbr type bridge &&
      ip -n "$h" link set vx42 master vbr &&
      ip -n "$h" link add vxc type veth peer name eth0 netns "$c" &&
      ip -n "$h" link set vxc mtu 1450 master vbr &&
      ip -n "$h" link set vx42 up && ip -n "$h" link set vxc up && ip -n "$h" link set vbr up &&
      ip -n "$c" link set eth0 mtu 1450 up &&
      ip -n "$c" addr add "10.48.2.$i/24" dev eth0 || { bench_err "vxlan setup on h$i failed"; return 1; }
  done
  measure vxlan "$PREFIX-h1-vx" "$PREFIX-h2-vx" 10.48.2.2
}

# weft_pair PATH A B SUBNET_OCTET [WEFT_VAR=VALUE...]: weft on hosts A and B (B joins A), a container on each
# attached at 10.48.OCTET.1 / .2, measured A -> B, then stopped. PATH fastdp waits for the routers to say fastdp.
weft_pair() {
  local path=$1 a=$2 b=$3 octet=$4 i n out established
  local envs=("${@:5}")
  weft "$a" "${envs[@]}" launch --nickname "h$a" >&2 || { bench_err "weft launch on h$a failed"; return 1; }
  weft "$b" "${envs[@]}" launch --nickname "h$b" "${IP[$a]}" >&2 || { bench_err "weft launch on h$b failed"; return 1; }
  i=1
  for n in "$a" "$b"; do
    testhosts_container "$PREFIX" "$n" c1 >/dev/null || return 1
    weft "$n" attach --netns "$PREFIX-h$n-c1" "10.48.$octet.$i/24" >/dev/null ||
      { bench_err "weft attach on h$n failed"; return 1; }
    i=$((i + 1))
  done
  established=""
  for ((i = 0; i < 60; i++)); do
    out=$(weft "$a" status connections 2>/dev/null || true)
    if grep -q established <<<"$out"; then established=1; break; fi
    sleep 0.5
  done
  [ -n "$established" ] || { bench_err "h$a and h$b did not establish a connection in 30 s: $out"; return 1; }
  if [ "$path" = fastdp ]; then
    established=""
    for ((i = 0; i < 60; i++)); do
      out=$(weft "$a" status connections 2>/dev/null || true)
      if grep -q 'established .* fastdp ' <<<"$out"; then established=1; break; fi
      sleep 0.5
    done
    [ -n "$established" ] || { bench_err "h$a did not put h$b on fastdp in 30 s: $out"; return 1; }
  fi
  echo "  $(grep established <<<"$out" | head -1)" >&2
  measure "$path" "$PREFIX-h$a-c1" "$PREFIX-h$b-c1" "10.48.$octet.2" "$(weft_pid "$a")" "$(weft_pid "$b")" || return 1
  # The routers' datapath counters (drops by reason, frames, datagrams) after all runs, for the JSON summary.
  weft "$a" report 2>/dev/null | jq '.datapath.counters // {}' >"$BENCH_RUN_DIR/counters-$path-sender.json" || true
  weft "$b" report 2>/dev/null | jq '.datapath.counters // {}' >"$BENCH_RUN_DIR/counters-$path-receiver.json" || true
  weft_down "$a"
  weft_down "$b"
}

# --- (c) weft sleeve, no password (fastdp off: the router carries every frame).
path_weft() {
  say "weft sleeve: containers 10.48.3.1 -> 10.48.3.2, weft --no-fastdp on h3 and h4"
  weft_pair weft 3 4 3 WEFT_NO_FASTDP=1
}

# --- (d) weft sleeve with a password (XChaCha20-Poly1305 on every frame).
path_weft_pw() {
  if ! node dist/cli/main.js launch --help 2>/dev/null | grep -q -- '--password'; then
    SKIPPED[weft-pw]="this weft has no --password yet (weft launch --help)"
    say "weft sleeve with password: skipped (${SKIPPED[weft-pw]})"
    return 0
  fi
  say "weft sleeve with password: containers 10.48.4.1 -> 10.48.4.2, weft on h5 and h6"
  weft_pair weft-pw 5 6 4 "WEFT_PASSWORD=bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
}

# --- (e) weft fastdp, no password: the kernel's VXLAN carries, the routers only program it and send heartbeats.
path_fastdp() {
  say "weft fastdp: containers 10.48.5.1 -> 10.48.5.2, weft on h7 and h8"
  weft_pair fastdp 7 8 5
}


# --- (f) weft sleeve with pcap capture on both hosts (no password: compare with weft).
path_weft_pcap() {
  if ! node dist/cli/main.js launch --help 2>/dev/null | grep -q -- '--capture'; then
    SKIPPED[weft-pcap]="this weft has no --capture yet (weft launch --help)"
    say "weft sleeve with pcap capture: skipped (${SKIPPED[weft-pcap]})"
    return 0
  fi
  say "weft sleeve with pcap capture: containers 10.48.6.1 -> 10.48.6.2, weft --capture pcap --no-fastdp on h9 and h10"
  weft_pair weft-pcap 9 10 6 WEFT_CAPTURE=pcap WEFT_NO_FASTDP=1
}

failed=""
for p in raw vxlan weft weft-pw fastdp weft-pcap; do
  wants "$p" || continue
  if ! "path_${p//-/_}"; then
    failed="$failed $p"
    SKIPPED[$p]="FAILED (see the messages above)"
  fi
done

say "Results: median of $runs run(s), ${seconds} s per iperf3 test ($(($(date +%s) - started_at)) s in all)"
skipped_json=$(for k in "${!SKIPPED[@]}"; do printf '%s\t%s\n' "$k" "${SKIPPED[$k]}"; done |
  jq -R -s '[split("\n")[] | select(length > 0) | split("\t") | {key: .[0], value: .[1]}] | from_entries')
jq -n --arg command "npm run bench${ORIGINAL_ARGS:+ -- $ORIGINAL_ARGS}" --argjson runs "$runs" \
  --argjson seconds "$seconds" --arg nproc "$(nproc)" --arg kernel "$(uname -sr)" --arg date "$(date -u +%FT%TZ)" \
  --arg load "$load_at_start" --arg load_end "$(cut -d' ' -f1 /proc/loadavg)" \
  --arg cpu "$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)" \
  --arg node "$(node -v)" --arg iperf3 "$(iperf3 --version | head -1)" --argjson skipped "$skipped_json" \
  '{command: $command, runs: $runs, seconds_per_test: $seconds, skipped: $skipped,
    machine: {nproc: ($nproc | tonumber), cpu: $cpu, kernel: $kernel, node: $node, iperf3: $iperf3, date: $date,
      loadavg_1min_at_start: ($load | tonumber), loadavg_1min_at_end: ($load_end | tonumber)}}' \
  >"$BENCH_RUN_DIR/meta.json"
for f in "$BENCH_RUN_DIR"/counters-*.json; do
  [ -s "$f" ] || continue
  name=${f##*/counters-} name=${name%.json}
  jq --arg path "${name%-*}" --arg side "${name##*-}" --slurpfile c "$f" \
    '.weft_datapath_counters[$path][$side] = $c[0]' "$BENCH_RUN_DIR/meta.json" >"$BENCH_RUN_DIR/meta.next" &&
    mv "$BENCH_RUN_DIR/meta.next" "$BENCH_RUN_DIR/meta.json"
done
bash scripts/bench/report.sh "$BENCH_RESULTS" "$BENCH_RUN_DIR/meta.json" "$json_out"
[ -z "$json_out" ] || echo "summary written to $json_out" >&2
if [ -n "$failed" ]; then
  echo "bench: failed paths:$failed" >&2
  exit 1
fi
