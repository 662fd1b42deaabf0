#!/usr/bin/env bash
# `npm run demo`: three test hosts (network namespaces on one underlay), host 1 and host 3 cut apart so their
# traffic must go through host 2. weft is launched on each with one random network password (everything between
# hosts encrypted), a container attached on each, and every container pings every other. When Debian's docker.io and
# busybox-static are installed, each host also runs its own dockerd (in the host's namespace, with a private mount
# namespace) and Docker containers on the `weft` network ping across hosts too. Everything is removed at the end,
# also on failure.
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

# One dockerd per demo host: its own plugin directory (bind-mounted on /run/docker/plugins in a private mount
# namespace), no bridge, no iptables, vfs storage. `ip netns exec` would remount /sys (dockerd then finds no cgroups).
dockerd_up() {
  local ns=$1 dir=$2
  mkdir -p /run/docker/plugins "$dir/plugins" "$dir/root" "$dir/exec"
  nsenter --net="/run/netns/$ns" unshare -m --propagation slave sh -c \
    "mount --bind $dir/plugins /run/docker/plugins && exec dockerd --data-root $dir/root --exec-root $dir/exec \
     -H unix://$dir/docker.sock --pidfile $dir/docker.pid --bridge none --iptables=false --ip-masq=false \
     --storage-driver vfs --log-level warn >>$dir/dockerd.log 2>&1" </dev/null >/dev/null 2>&1 &
  echo $! > "$dir/dockerd.pid"
  for _ in $(seq 1 120); do docker -H "unix://$dir/docker.sock" version >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "demo: dockerd in $ns did not start; its log: $dir/dockerd.log" >&2
  return 1
}

dockerd_down() {
  local dir=$1
  [ -f "$dir/dockerd.pid" ] || return 0
  local pid; pid=$(cat "$dir/dockerd.pid")
  local ids; ids=$(docker -H "unix://$dir/docker.sock" ps -aq 2>/dev/null || true)
  [ -n "$ids" ] && docker -H "unix://$dir/docker.sock" rm -f $ids >/dev/null 2>&1 || true
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  # Shims left behind, by the directory in their command line, by PID.
  for p in /proc/[0-9]*; do
    grep -qsF "$dir" "$p/cmdline" && kill -9 "${p#/proc/}" 2>/dev/null || true
  done
  rm -f "$dir/dockerd.pid"
}

# busybox:weft from Debian's busybox-static (nothing can be pulled).
busybox_image() {
  local dir=$1 rootfs; rootfs=$(mktemp -d)
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
  cp /bin/busybox "$rootfs/bin/busybox"
  for l in sh ping ip sleep hostname; do ln -s busybox "$rootfs/bin/$l"; done
  tar -C "$rootfs" -c . | docker -H "unix://$dir/docker.sock" import -c 'CMD ["sh"]' - busybox:weft >/dev/null
  rm -rf "$rootfs"
}

down() {
  local prefix=$1
  for d in "$STATE/$prefix"/docker-h*; do
    [ -d "$d" ] && dockerd_down "$d"
  done
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

DOCKER=""
if command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 && [ -x /bin/busybox ]; then
  say "Starting a Docker engine on each host (its own dockerd inside the host's namespace)"
  DOCKER=1
  for i in 1 2 3; do
    if ! dockerd_up "$PREFIX-h$i" "$RUN/docker-h$i"; then DOCKER=""; break; fi
  done
  if [ -n "$DOCKER" ]; then for i in 1 3; do busybox_image "$RUN/docker-h$i"; done; fi
  [ -n "$DOCKER" ] || echo "  could not start dockerd: skipping the Docker part"
else
  say "No docker.io or busybox-static here: skipping the Docker part (scripts/setup.sh installs them)"
fi
docker_args() {
  [ -n "$DOCKER" ] && echo "--plugin-socket $RUN/docker-h$1/plugins/weft.sock --docker-api unix://$RUN/docker-h$1/docker.sock"
  return 0
}

say "Launching weft with a random network password (in $RUN/password): h1 alone, h2 -> h1, h3 -> h2 (h3 learns of h1 by gossip but cannot reach it)"
(umask 077; head -c 24 /dev/urandom | base64 > "$RUN/password")
# shellcheck disable=SC2046
weft 1 launch --nickname h1 --password-file "$RUN/password" $(docker_args 1)
# shellcheck disable=SC2046
weft 2 launch --nickname h2 --password-file "$RUN/password" $(docker_args 2) "${IP[1]}"
# shellcheck disable=SC2046
weft 3 launch --nickname h3 --password-file "$RUN/password" $(docker_args 3) "${IP[2]}"

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

if [ -n "$DOCKER" ]; then
  dk() { local h=$1; shift; docker -H "unix://$RUN/docker-h$h/docker.sock" "$@"; }
  say "Docker: weft made the network 'weft' on every engine (docker network ls on h1)"
  for _ in $(seq 1 60); do dk 1 network ls --format '{{.Name}}' | grep -qx weft && break; sleep 0.5; done
  dk 1 network ls
  say "docker run --network weft on h1 and h3 (their traffic goes through h2)"
  dk 1 run -d --name web --network weft busybox:weft sleep 3600 >/dev/null
  dk 3 run -d --name client --network weft busybox:weft sleep 3600 >/dev/null
  WEB=$(dk 1 inspect -f '{{.NetworkSettings.Networks.weft.IPAddress}}' web)
  echo "  web on h1: $WEB;  client on h3: $(dk 3 inspect -f '{{.NetworkSettings.Networks.weft.IPAddress}}' client)"
  ok=""
  for _ in $(seq 1 20); do
    if out=$(dk 3 exec client ping -c 3 -W 1 "$WEB" 2>&1); then ok=1; break; fi
    sleep 0.5
  done
  if [ -n "$ok" ]; then echo "  client (h3) -> web (h1)  ok   $(echo "$out" | tail -1)"; else echo "  client (h3) -> web (h1)  FAILED"; fail=1; fi
  say "weft ps (on h1): containers by id and name"
  weft 1 ps
fi

if [ "$mode" = keep ]; then
  say "Kept running. Try:"
  echo "  ip netns exec $PREFIX-h1 env WEFT_STATE_DIR=$RUN/h1 node dist/cli/main.js status"
  echo "  ip netns exec $PREFIX-h1-c1 ping ${CIP[3]}"
  [ -n "$DOCKER" ] && echo "  docker -H unix://$RUN/docker-h3/docker.sock exec client ping $WEB"
  echo "  npm run demo -- --down"
fi
[ $fail = 0 ] && say "All containers reach each other." || { say "Some pings failed (see above)."; exit 1; }
