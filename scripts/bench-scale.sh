#!/usr/bin/env bash
# Scale benchmark (issue 19): N real routers in network namespaces, password set, star bootstrap (every router given
# only h1; the rest found by gossip). Measures, as an outside tester would:
#   mesh_s         time from the last `weft launch` returning to every router having N-1 established connections
#   rss_mb         resident memory per router after the idle period (min / median / max)
#   idle_cpu_pct   CPU per router over the idle period, % of one core (min / median / max)
#   underlay       packets and bytes per second on the underlay (all hosts' ports of the underlay bridge) at idle
#   stop_s         wall-clock of `weft stop` run on every router at once (median / max), and of all of them together
# With --kill-quarter, before the stop: kill -9 a quarter of the routers at once (h1, the bootstrap, among them),
# watch the survivors for 20 s, then launch the killed ones again (each given h2):
#   kill.survivor_links_lost   survivor pairs whose connection dropped (`lost connection to peer` naming a survivor)
#   kill.survivor_hb_timeouts  heartbeat timeouts in the survivors' logs meanwhile (dead peers' sockets close at once:
#                              a timeout there is a survivor giving up on another survivor, or on a dead one late)
#   kill.rejoin_s              from the last relaunch returning to the full mesh again
# Everything is bounded in time and removed at the end, also on failure or Ctrl-C.
#   npm run bench:scale -- [--routers N] [--idle SECONDS] [--settle SECONDS] [--kill-quarter] [--json]
# --settle waits that long after the full mesh before the idle window (default 0: the window starts at once, while
# the routers' own devices still send their first IPv6 router solicitations, flooded to every peer as data).
# WEFT_CLI=path/to/dist/cli/main.js measures another build (e.g. main's, for a before/after).
# Default 16 routers, 30 s idle. The machine is shared: the figures are for this machine at this load.
set -uo pipefail
umask 077 # password file and state dirs private (weft warns otherwise)
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
ROUTERS=16 IDLE=30 SETTLE=0 JSON=0 MESH_TIMEOUT=300 KILL=0
CLI=${WEFT_CLI:-dist/cli/main.js}
while [ $# -gt 0 ]; do
  case "$1" in
    --routers) ROUTERS=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --settle) SETTLE=$2; shift 2 ;;
    --json) JSON=1; shift ;;
    --kill-quarter) KILL=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "bench-scale: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "$ROUTERS" =~ ^[0-9]+$ ]] && [ "$ROUTERS" -ge 2 ] && [ "$ROUTERS" -le 64 ] || { echo "bench-scale: --routers must be 2..64" >&2; exit 2; }
[[ "$IDLE" =~ ^[0-9]+$ ]] && [ "$IDLE" -ge 1 ] && [ "$IDLE" -le 600 ] || { echo "bench-scale: --idle must be 1..600 s" >&2; exit 2; }
[[ "$SETTLE" =~ ^[0-9]+$ ]] && [ "$SETTLE" -le 900 ] || { echo "bench-scale: --settle must be 0..900 s" >&2; exit 2; }
[ -f "$CLI" ] || { echo "bench-scale: weft is not built ($CLI): run scripts/setup.sh" >&2; exit 1; }
[ $KILL = 0 ] || [ "$ROUTERS" -ge 4 ] || { echo "bench-scale: --kill-quarter needs --routers 4 or more" >&2; exit 2; }

log() { echo "bench-scale: $*" >&2; }
now() { date +%s.%N; }
P=wb$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
RUN=$(mktemp -d "/tmp/$P-XXXX")
cleanup() {
  for d in "$RUN"/h*; do [ -f "$d/weft.pid" ] && kill "$(cat "$d/weft.pid")" 2>/dev/null; done
  sleep 0.5
  bash scripts/testhosts.sh down "$P" >/dev/null 2>&1
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
head -c 24 /dev/urandom | base64 > "$RUN/password"

bash scripts/testhosts.sh up "$ROUTERS" "$P" >/dev/null || exit 1
IP1=$(bash scripts/testhosts.sh ip "$P" 1)
# The CLI's own bound on a launch is 20 s after the daemon's last log line, at most 120 s: give it room.
w() { local h=$1; shift; mkdir -p "$RUN/h$h"; timeout 180 ip netns exec "$P-h$h" env WEFT_STATE_DIR="$RUN/h$h" node "$CLI" "$@"; }
# A relaunch that finds the daemon already running (it answered only after the CLI gave up) counts as launched.
relaunch() {
  local i=$1 out
  out=$(w "$i" launch --nickname "h$i" --password-file "$RUN/password" "$2" 2>&1 >/dev/null) && return 0
  case "$out" in *"already running"* | *"did not answer: no answer"*) log "h$i was running after all (slow to answer)"; return 0 ;; esac
  log "h$i did not launch: $out"
  return 1
}
api() { timeout 10 ip netns exec "$P-h$1" curl -s --max-time 8 "http://127.0.0.1:6784$2"; }
established() { api "$1" /report | grep -o '"state":"established"' | wc -l; }

log "$ROUTERS routers, prefix $P; launching h1, then h2..h$ROUTERS at once (each given only h1)"
w 1 launch --nickname h1 --password-file "$RUN/password" >/dev/null || { log "h1 did not launch"; exit 1; }
for i in $(seq 2 "$ROUTERS"); do
  (w "$i" launch --nickname "h$i" --password-file "$RUN/password" "$IP1" >/dev/null 2>&1 || touch "$RUN/failed-$i") &
done
wait
# On a loaded machine a daemon may not answer within the CLI's bound and is stopped: launch those once more, alone.
for f in "$RUN"/failed-*; do
  [ -e "$f" ] || continue
  i=${f##*-}
  rm -f "$f"
  log "h$i did not launch at once; launching it again"
  relaunch "$i" "$IP1"
done
LAST_LAUNCH=$(now)
log "all launched; waiting for the full mesh (at most $MESH_TIMEOUT s)"
MESH_S=null
while :; do
  full=1
  for i in $(seq 1 "$ROUTERS"); do
    [ "$(established "$i")" -ge $((ROUTERS - 1)) ] || { full=0; break; }
  done
  if [ $full = 1 ]; then MESH_S=$(echo "$(now) - $LAST_LAUNCH" | bc); break; fi
  if [ "$(echo "$(now) - $LAST_LAUNCH > $MESH_TIMEOUT" | bc)" = 1 ]; then log "no full mesh within $MESH_TIMEOUT s"; break; fi
  sleep 0.5
done
log "full mesh after ${MESH_S} s; settling $SETTLE s, then idling $IDLE s"
sleep "$SETTLE"

PIDS=()
for i in $(seq 1 "$ROUTERS"); do PIDS+=("$(cat "$RUN/h$i/weft.pid" 2>/dev/null || echo 0)"); done
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
ul_sum() { ip netns exec "$P-ul" sh -c "cat /sys/class/net/h*/statistics/$1" 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }
declare -a T0
for i in "${!PIDS[@]}"; do T0[$i]=$(cpu_ticks "${PIDS[$i]}"); done
PK0=$(ul_sum rx_packets) BY0=$(ul_sum rx_bytes) S0=$(now)
sleep "$IDLE"
S1=$(now) PK1=$(ul_sum rx_packets) BY1=$(ul_sum rx_bytes)
HZ=$(getconf CLK_TCK)
ELAPSED=$(echo "$S1 - $S0" | bc)
CPU=() RSS=()
for i in "${!PIDS[@]}"; do
  t1=$(cpu_ticks "${PIDS[$i]}")
  CPU+=("$(echo "scale=3; 100 * ($t1 - ${T0[$i]}) / $HZ / $ELAPSED" | bc)")
  RSS+=("$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/${PIDS[$i]}/status" 2>/dev/null || echo 0)")
done
PPS=$(echo "scale=1; ($PK1 - $PK0) / $ELAPSED" | bc)
BPS=$(echo "scale=0; ($BY1 - $BY0) / $ELAPSED" | bc)

# full_mesh SECONDS: wait until every router has ROUTERS-1 established connections; prints the seconds or null
full_mesh() {
  local t0 i full
  t0=$(now)
  while :; do
    full=1
    for i in $(seq 1 "$ROUTERS"); do
      [ "$(established "$i")" -ge $((ROUTERS - 1)) ] || { full=0; break; }
    done
    [ $full = 1 ] && { echo "$(now) - $t0" | bc; return; }
    [ "$(echo "$(now) - $t0 > $1" | bc)" = 1 ] && { echo null; return; }
    sleep 0.5
  done
}

KILL_LOST=null KILL_HB=null KILL_REJOIN=null
if [ $KILL = 1 ]; then
  Q=$((ROUTERS / 4))
  VICTIMS="1 $(seq $((ROUTERS - Q + 2)) "$ROUTERS" | tr '\n' ' ')"
  SURVIVORS=$(seq 2 $((ROUTERS - Q + 1)) | tr '\n' ' ')
  declare -A OFF
  for i in $SURVIVORS; do OFF[$i]=$(stat -c %s "$RUN/h$i/weft.log" 2>/dev/null || echo 0); done
  log "kill -9 of $(for i in $VICTIMS; do printf 'h%s ' "$i"; done)at once; watching the survivors for 20 s"
  for i in $VICTIMS; do kill -9 "$(cat "$RUN/h$i/weft.pid")" 2>/dev/null; done
  sleep 20
  KILL_LOST=0 KILL_HB=0
  names=" $(for i in $SURVIVORS; do printf 'h%s ' "$i"; done)"
  for i in $SURVIVORS; do
    tail -c +$((OFF[$i] + 1)) "$RUN/h$i/weft.log" >"$RUN/after-kill-$i"
    while read -r nick; do
      case "$names" in *" $nick "*) KILL_LOST=$((KILL_LOST + 1)) ;; esac
    done < <(grep '"lost connection to peer' "$RUN/after-kill-$i" | grep -o '"nickname":"[^"]*"' | cut -d'"' -f4)
    KILL_HB=$((KILL_HB + $(grep -c 'heartbeat timeout' "$RUN/after-kill-$i" || true)))
  done
  log "survivor links lost: $KILL_LOST; heartbeat timeouts among survivors: $KILL_HB; relaunching the killed routers"
  IP2=$(bash scripts/testhosts.sh ip "$P" 2)
  for i in $VICTIMS; do
    (w "$i" launch --nickname "h$i" --password-file "$RUN/password" "$IP2" >/dev/null 2>&1 || touch "$RUN/failed-$i") &
  done
  wait
  for f in "$RUN"/failed-*; do
    [ -e "$f" ] || continue
    i=${f##*-}
    rm -f "$f"
    log "h$i did not relaunch at once; launching it again"
    relaunch "$i" "$IP2"
  done
  KILL_REJOIN=$(full_mesh 180)
  log "full mesh again after ${KILL_REJOIN} s"
fi

log "stopping every router at once"
STOP0=$(now)
for i in $(seq 1 "$ROUTERS"); do
  (s=$(now); w "$i" stop >/dev/null 2>&1; echo "$(now) - $s" | bc > "$RUN/stop-$i") &
done
wait
STOP_ALL=$(echo "$(now) - $STOP0" | bc)
STOPS=()
for i in $(seq 1 "$ROUTERS"); do STOPS+=("$(cat "$RUN/stop-$i" 2>/dev/null || echo null)"); done
TIMEOUTS=$(cat "$RUN"/h*/weft.log 2>/dev/null | grep -c 'heartbeat timeout' || true)
[ $KILL = 1 ] && TIMEOUTS="$TIMEOUTS (all runs' logs, kill included)"

# min / median / max of numbers on stdin
stats() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) {print "null null null"; exit} printf "%s %s %s\n", a[1], a[int((NR + 1) / 2)], a[NR]}'; }
read -r RMIN RMED RMAX < <(printf '%s\n' "${RSS[@]}" | stats)
read -r CMIN CMED CMAX < <(printf '%s\n' "${CPU[@]}" | stats)
read -r _ SMED SMAX < <(printf '%s\n' "${STOPS[@]}" | grep -v null | stats)

# Numbers with a leading zero and fixed decimals (bc prints ".5"); null stays null.
f() { if [ "$1" = null ] || [ -z "$1" ]; then echo null; else printf "%.${2}f" "$1"; fi; }
MESH_S=$(f "$MESH_S" 2) RMIN=$(f "$RMIN" 1) RMED=$(f "$RMED" 1) RMAX=$(f "$RMAX" 1) CMIN=$(f "$CMIN" 2) CMED=$(f "$CMED" 2)
CMAX=$(f "$CMAX" 2) PPS=$(f "$PPS" 1) BPS=$(f "$BPS" 0) SMED=$(f "$SMED" 2) SMAX=$(f "$SMAX" 2) STOP_ALL=$(f "$STOP_ALL" 2)
KILL_REJOIN=$(f "$KILL_REJOIN" 2)
if [ $JSON = 1 ]; then
  printf '{"routers":%s,"settle_s":%s,"idle_s":%s,"mesh_s":%s,"rss_mb":{"min":%s,"median":%s,"max":%s},"idle_cpu_pct":{"min":%s,"median":%s,"max":%s},"underlay":{"packets_per_s":%s,"bytes_per_s":%s},"stop_s":{"median":%s,"max":%s,"all":%s},"heartbeat_timeouts":%s,"kill":{"survivor_links_lost":%s,"survivor_hb_timeouts":%s,"rejoin_s":%s}}\n' \
    "$ROUTERS" "$SETTLE" "$IDLE" "$MESH_S" "$RMIN" "$RMED" "$RMAX" "$CMIN" "$CMED" "$CMAX" "$PPS" "$BPS" "$SMED" "$SMAX" "$STOP_ALL" "${TIMEOUTS%% *}" "$KILL_LOST" "$KILL_HB" "$KILL_REJOIN"
else
  printf '| routers | full mesh after last launch | RSS per router (min / median / max) | idle CPU per router (min / median / max) | idle underlay (all hosts) | weft stop, all at once (median / max; all) | heartbeat timeouts |\n'
  printf '|---|---|---|---|---|---|---|\n'
  printf '| %s | %s s | %s / %s / %s MB | %s / %s / %s %% | %s pkt/s, %s B/s | %s / %s s; %s s | %s |\n' \
    "$ROUTERS" "$MESH_S" "$RMIN" "$RMED" "$RMAX" "$CMIN" "$CMED" "$CMAX" "$PPS" "$BPS" "$SMED" "$SMAX" "$STOP_ALL" "$TIMEOUTS"
fi
if [ $KILL = 1 ] && [ $JSON = 0 ]; then
  printf '\n| routers | killed at once (kill -9, h1 among them) | survivor links lost | heartbeat timeouts among survivors (20 s) | full mesh after relaunch |\n'
  printf '|---|---|---|---|---|\n'
  printf '| %s | %s | %s | %s | %s s |\n' "$ROUTERS" "$((ROUTERS / 4))" "$KILL_LOST" "$KILL_HB" "$KILL_REJOIN"
fi
