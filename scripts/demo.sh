#!/usr/bin/env bash
# `npm run demo`: three test hosts (network namespaces on one underlay), host 1 and host 3 cut apart so their
# traffic must go through host 2. weft is launched on each with one random network password (everything between
# hosts encrypted), a container attached on each, and every container pings every other. Everything is removed at
# the end, also on failure.
#
#   npm run demo                 run it and tear down
#   npm run demo -- --keep       leave it running (prints how to look around)
#   npm run demo -- --down       remove what a --keep run left
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
STATE=/run/weft-demo
mode=run
for a in "$@"; do
  case "$a" in
    --keep) mode=keep ;;
    --down) mode=down ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown option $a (use --keep or --down)" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" != 0 ]; then
  echo "demo: needs root (it creates network namespaces): sudo npm run demo" >&2
  exit 1
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

down() {
  local prefix=$1
  for d in "$STATE/$prefix"/h*; do
    [ -f "$d/weft.pid" ] || continue
    local pid; pid=$(cat "$d/weft.pid")
    kill "$pid" 2>/dev/null || true
  done
  sleep 0.5
  bash scripts/testhosts.sh down "$prefix" >/dev/null || true
  rm -rf "${STATE:?}/$prefix"
}

if [ "$mode" = down ]; then
  found=0
  for d in "$STATE"/*/; do
    [ -d "$d" ] || continue
    found=1; p=$(basename "$d"); echo "removing demo $p"; down "$p"
  done
  [ $found = 1 ] || echo "no demo is running"
  exit 0
fi

say "Setting up (Debian packages, npm packages, native addon, TypeScript)"
bash scripts/setup.sh

PREFIX=wd$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
RUN=$STATE/$PREFIX
mkdir -p "$RUN"
if [ "$mode" = run ]; then trap 'say "Tearing down"; down "$PREFIX"; echo "done."' EXIT; fi

say "Creating 3 test hosts ($PREFIX-h1..h3) on one underlay; cutting h1 <-> h3"
bash scripts/testhosts.sh up 3 "$PREFIX" >/dev/null
bash scripts/testhosts.sh cut "$PREFIX" 1 3
declare -a IP
for i in 1 2 3; do IP[$i]=$(bash scripts/testhosts.sh ip "$PREFIX" "$i"); echo "  h$i: ${IP[$i]}"; done

weft() {
  local h=$1; shift
  mkdir -p "$RUN/h$h"
  # No Docker on test hosts unless asked: the machine's own engine must never see them.
  ip netns exec "$PREFIX-h$h" env WEFT_STATE_DIR="$RUN/h$h" WEFT_DOCKER_API= WEFT_PLUGIN_SOCKET= node "$REPO/dist/cli/main.js" "$@"
}

say "Launching weft with a random network password (in $RUN/password): h1 alone, h2 -> h1, h3 -> h2 (h3 learns of h1 by gossip but cannot reach it)"
(umask 077; head -c 24 /dev/urandom | base64 > "$RUN/password")
weft 1 launch --nickname h1 --password-file "$RUN/password"
weft 2 launch --nickname h2 --password-file "$RUN/password" "${IP[1]}"
weft 3 launch --nickname h3 --password-file "$RUN/password" "${IP[2]}"

say "Attaching a container on each host; IPAM picks the addresses (from 10.32.0.0/12, no two alike)"
declare -a CIP
for i in 1 2 3; do
  bash scripts/testhosts.sh container "$PREFIX" "$i" c1 >/dev/null
  addr=$(weft "$i" attach --netns "$PREFIX-h$i-c1")
  CIP[$i]=${addr%%/*}
  echo "  c$i on h$i: $addr"
done

printf '\nwaiting for connections to be established'
for _ in $(seq 1 60); do
  n=$(weft 2 status connections | grep -c established || true)
  [ "$n" -ge 2 ] && break
  printf '.'; sleep 0.5
done
echo

say "weft status (on h2)"
weft 2 status
say "weft status connections (on h1: no direct link to h3; the cipher each connection agreed on)"
weft 1 status connections
say "weft status peers (on h2)"
weft 2 status peers
say "weft ps (on h1)"
weft 1 ps
say "weft status ipam (on h2)"
weft 2 status ipam

say "Every container pings every other (c1 -> c3 goes through h2)"
fail=0
for i in 1 2 3; do
  for j in 1 2 3; do
    [ "$i" = "$j" ] && continue
    ok=""
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      if out=$(ip netns exec "$PREFIX-h$i-c1" ping -c 3 -i 0.2 -W 1 "${CIP[$j]}" 2>&1); then ok=1; break; fi
      sleep 0.5
    done
    if [ -n "$ok" ]; then
      echo "  c$i -> c$j  ok   $(echo "$out" | tail -1)"
    else
      echo "  c$i -> c$j  FAILED"; fail=1
    fi
  done
done

if [ "$mode" = keep ]; then
  say "Kept running. Try:"
  echo "  ip netns exec $PREFIX-h1 env WEFT_STATE_DIR=$RUN/h1 node dist/cli/main.js status"
  echo "  ip netns exec $PREFIX-h1-c1 ping ${CIP[3]}"
  echo "  npm run demo -- --down"
fi
[ $fail = 0 ] && say "All containers reach each other." || { say "Some pings failed (see above)."; exit 1; }
