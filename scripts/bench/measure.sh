# shellcheck shell=bash
# Measurements for scripts/bench.sh, sourced. Each function measures between two network namespaces the bench made
# and appends tab-separated rows "PATH METRIC RUN VALUE" to $BENCH_RESULTS. Every command runs under `timeout`, so a
# hung iperf3 or ping ends the run instead of the bench.
#
# Needs: BENCH_RESULTS (file), BENCH_SECONDS (per iperf3 test), BENCH_RUN_DIR (scratch), iperf3, jq, ping.

BENCH_IPERF_PORT=5201

# bench_record PATH METRIC RUN VALUE
bench_record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$BENCH_RESULTS"; }

bench_err() { echo "bench: $*" >&2; }

# bench_iperf_server NS ADDR: start `iperf3 -s` bound to ADDR inside NS; sets BENCH_SERVER_PID once it listens.
# `ip netns exec` execs iperf3, so that PID is iperf3's own. (Call it directly, not in $(...): the server must be a
# child of the bench's shell.)
bench_iperf_server() {
  local ns=$1 addr=$2 pid i
  ip netns exec "$ns" iperf3 -s -B "$addr" -p "$BENCH_IPERF_PORT" >"$BENCH_RUN_DIR/iperf3-server-$ns.log" 2>&1 &
  pid=$!
  for ((i = 0; i < 50; i++)); do
    if ip netns exec "$ns" ss -Hltn "sport = :$BENCH_IPERF_PORT" 2>/dev/null | grep -q .; then
      BENCH_SERVER_PID=$pid
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  bench_err "iperf3 server in $ns did not start: $(tail -3 "$BENCH_RUN_DIR/iperf3-server-$ns.log" 2>/dev/null)"
  return 1
}

# bench_iperf NS ADDR OUT ARGS...: run an iperf3 client in NS against ADDR for BENCH_SECONDS with -J into OUT.
# A failed run is retried once after a short pause (the server may still be closing the previous test).
bench_iperf() {
  local ns=$1 addr=$2 out=$3 attempt
  shift 3
  for attempt in 1 2; do
    if timeout $((BENCH_SECONDS + 20)) ip netns exec "$ns" \
      iperf3 -c "$addr" -p "$BENCH_IPERF_PORT" -t "$BENCH_SECONDS" --connect-timeout 3000 -J "$@" >"$out" 2>&1 &&
      jq -e '.end.sum_sent // .end.sum' "$out" >/dev/null 2>&1; then
      return 0
    fi
    [ "$attempt" = 1 ] && sleep 1
  done
  bench_err "iperf3 $* from $ns to $addr failed: $(jq -r '.error // empty' "$out" 2>/dev/null || tail -3 "$out")"
  return 1
}

# bench_tcp PATH RUN NS ADDR STREAMS METRIC: TCP throughput in Gbit/s as the receiver counted it.
bench_tcp() {
  local path=$1 run=$2 ns=$3 addr=$4 streams=$5 metric=$6 out
  out="$BENCH_RUN_DIR/$path-$metric-$run.json"
  bench_iperf "$ns" "$addr" "$out" -P "$streams" || return 1
  bench_record "$path" "$metric" "$run" "$(jq -r '.end.sum_received.bits_per_second / 1e9' "$out")"
  bench_record "$path" "${metric}_retransmits" "$run" "$(jq -r '.end.sum_sent.retransmits // 0' "$out")"
}

# bench_udp PATH RUN NS ADDR: 64-byte UDP payloads as fast as the sender can go (-b 0). Records what the receiver
# got per second (sent minus lost, over the test's duration) and the loss in percent. In iperf3 3.x the client's
# end.sum carries the packets sent and the lost count the server reported back.
bench_udp() {
  local path=$1 run=$2 ns=$3 addr=$4 out
  out="$BENCH_RUN_DIR/$path-udp64-$run.json"
  bench_iperf "$ns" "$addr" "$out" -u -l 64 -b 0 || return 1
  bench_record "$path" udp64_kpps "$run" \
    "$(jq -r '.end.sum | ((.packets - .lost_packets) / .seconds / 1e3)' "$out")"
  bench_record "$path" udp64_loss_pct "$run" "$(jq -r '.end.sum.lost_percent' "$out")"
  bench_record "$path" udp64_sent_kpps "$run" "$(jq -r '.end.sum | (.packets / .seconds / 1e3)' "$out")"
}

# bench_ping PATH RUN NS ADDR: idle round-trip time, 50 pings 10 ms apart; records the median and the mean (one
# slow reply, e.g. a scheduling hiccup on a busy 2-core machine, moves the mean but not the median) and mdev, in ms.
bench_ping() {
  local path=$1 run=$2 ns=$3 addr=$4 out rtt median
  out=$(timeout 20 ip netns exec "$ns" ping -n -c 50 -i 0.01 -W 1 "$addr" 2>&1) || {
    bench_err "ping from $ns to $addr failed: $(echo "$out" | tail -2)"
    return 1
  }
  # rtt min/avg/max/mdev = 0.021/0.035/0.080/0.010 ms   (followed by ", pipe N" when replies overlap)
  rtt=$(echo "$out" | sed -n 's|^rtt [^=]*= \([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\) ms.*$|\2 \4|p')
  median=$(echo "$out" | sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p' | bench_median) || median=""
  [ -n "$rtt" ] && [ -n "$median" ] || { bench_err "cannot parse ping output: $out"; return 1; }
  bench_record "$path" ping_median_ms "$run" "$median"
  bench_record "$path" ping_avg_ms "$run" "${rtt% *}"
  bench_record "$path" ping_mdev_ms "$run" "${rtt#* }"
}

# bench_wait_reachable NS ADDR [SECONDS]: ping until ADDR answers (ARP, MAC learning, weft's first heartbeats).
bench_wait_reachable() {
  local ns=$1 addr=$2 limit=${3:-30} i
  for ((i = 0; i < limit; i++)); do
    timeout 3 ip netns exec "$ns" ping -n -q -c 1 -W 1 "$addr" >/dev/null 2>&1 && return 0
  done
  bench_err "$addr is not reachable from $ns after ${limit} tries"
  return 1
}

# CPU ticks (utime + stime, all threads) of PID. Fields after the ")" that ends comm, so a comm with spaces is fine.
_bench_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'; }

# bench_sample_start PID OUT SECONDS: in the background, wait half a second (the test's connection setup), then
# sample PID for SECONDS: CPU% over the window (100 = one core, so up to 200 on two cores) and the largest VmRSS in
# MiB, written to OUT as "CPU RSS". Sets BENCH_SAMPLER_PID (call it directly, not in $(...), so `wait` works).
bench_sample_start() {
  local pid=$1 out=$2 seconds=$3
  (
    sleep 0.5
    hz=$(getconf CLK_TCK)
    t0=$(date +%s%N) s0=$(_bench_ticks "$pid") max=0
    end=$((t0 + seconds * 1000000000))
    while [ "$(date +%s%N)" -lt "$end" ]; do
      rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ "${rss:-0}" -gt "$max" ] && max=$rss
      sleep 0.2
    done
    t1=$(date +%s%N) s1=$(_bench_ticks "$pid")
    if [ -n "$s0" ] && [ -n "$s1" ]; then
      awk -v d="$((s1 - s0))" -v hz="$hz" -v ns="$((t1 - t0))" -v rss="$max" \
        'BEGIN { printf "%.1f %.1f\n", d / hz / (ns / 1e9) * 100, rss / 1024 }' >"$out"
    fi
  ) >/dev/null 2>&1 &
  BENCH_SAMPLER_PID=$!
}

# bench_median: the median of the numbers on stdin, one per line (the mean of the middle two for an even count).
bench_median() {
  sort -g | awk '{ v[NR] = $1 }
    END { if (NR == 0) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
