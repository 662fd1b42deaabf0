#!/usr/bin/env bash
# Make a machine (a fresh Debian 12, as root) ready to build, test, demo and benchmark weft. Run by `npm test`,
# `npm run demo`, `npm run bench` and CI. Idempotent: each step checks first and does nothing when nothing changed,
# so a second run is fast (about a second) and needs no network. One line per step; a failing step prints its log.
#
#   1. Debian packages the netns tests, demo and benchmark use (apt-get update once, only if one is missing; as root)
#   2. npm install, only if node_modules is missing or package.json / package-lock.json changed since the last install
#   3. the native addon (node-gyp), only if native/ sources are newer than the built .node file
#   4. the TypeScript build (tsc -> dist/), only if a source or tsconfig is newer than the last build
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

# Run a command with its output in a log; show the log only if it fails.
quietly() {
  local log
  log=$(mktemp /tmp/weft-setup-XXXXXX.log)
  if "$@" >"$log" 2>&1; then
    rm -f "$log"
  else
    local rc=$?
    cat "$log" >&2
    rm -f "$log"
    say "FAILED: $* (exit $rc)"
    exit "$rc"
  fi
}

# --- 0. Node.js itself is a prerequisite, not installed here (Debian 12's own is 18; weft needs 20+).
if ! command -v node >/dev/null 2>&1; then
  say "node is not installed: install Node.js 20 or newer (e.g. from https://nodejs.org or NodeSource), then rerun"
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  say "node $(node -v) is too old: weft needs Node.js 20 or newer"
  exit 1
fi

# --- 1. Debian packages. util-linux (nsenter) is Essential on Debian, listed so a stripped image is caught too.
# curl and chromium: test/netns/local-api-2-hosts.test.ts attacks the local API as a script and as a web page would.
packages=(iproute2 iputils-ping iputils-arping iperf3 tcpdump iptables ethtool jq python3 make g++ util-linux curl chromium)
# The CNI tests (test/netns/cni-*): a real runtime (podman on its CNI backend, runc, conmon), the reference plugins
# (host-local, portmap in /usr/lib/cni) and a static busybox to make the container image from.
packages+=(containernetworking-plugins podman runc conmon busybox-static)
# weftDNS tests (test/netns/dns-*): dig, a real resolver client.
packages+=(bind9-dnsutils)
# The Docker netns tests run their own dockerd per test host, with a busybox image imported from busybox-static.
packages+=(docker.io)
# libpcap's headers: the native addon is built with `--capture pcap` support when they are there (native/binding.gyp).
packages+=(libpcap-dev)
# curl and chromium: test/netns/local-api-2-hosts.test.ts attacks the local API as a script and as a web page would.
packages+=(curl chromium)
# The NAT tests (test/netns/nat-*): conntrack, to make a NAT router forget its mappings (rebinding).
packages+=(conntrack)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null | awk '/ install ok installed$/ {print $1}' || true)
  for p in "${packages[@]}"; do
    grep -qx "$p" <<<"$installed" || missing+=("$p")
  done
else
  # Not Debian: check for the commands instead and leave installing to the user.
  declare -A command_of=([iproute2]=ip [iputils-ping]=ping [iputils-arping]=arping [iperf3]=iperf3 [tcpdump]=tcpdump
    [iptables]=iptables [ethtool]=ethtool [jq]=jq [python3]=python3 [make]=make [g++]=g++ [util-linux]=nsenter
    [curl]=curl [chromium]=chromium)
  command_of+=([containernetworking-plugins]=true [podman]=podman [runc]=runc [conmon]=conmon [busybox-static]=busybox)
  command_of+=([bind9-dnsutils]=dig)
  command_of+=([docker.io]=dockerd)
  command_of+=([libpcap-dev]=true)
  command_of+=([curl]=curl [chromium]=chromium)
  command_of+=([conntrack]=conntrack)
  for p in "${packages[@]}"; do
    command -v "${command_of[$p]}" >/dev/null 2>&1 || missing+=("$p")
  done
fi
if [ ${#missing[@]} -eq 0 ]; then
  say "packages: all ${#packages[@]} present"
elif [ "$(id -u)" != 0 ]; then
  say "packages: skipped apt (not root); missing: ${missing[*]}; run scripts/setup.sh as root or install them (netns tests, demo and bench need them)"
elif ! command -v apt-get >/dev/null 2>&1; then
  say "packages: missing ${missing[*]} and there is no apt-get; install them with your package manager"
  exit 1
else
  say "packages: installing ${missing[*]} (apt-get update + install)"
  export DEBIAN_FRONTEND=noninteractive
  quietly apt-get update -q
  quietly apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- 1b. promtool, for test/alert-rules.test.ts (docs/alerts.yml). Debian ships it only inside the prometheus
# package, whose install would enable and start a Prometheus server on :9090; so take the one binary out of the
# package file instead (apt-get download, no install, no service) and put it in /usr/local/bin.
if command -v promtool >/dev/null 2>&1; then
  :
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
  say "promtool: extracting it from Debian's prometheus package (not installing the package)"
  promdir=$(mktemp -d /tmp/weft-promtool-XXXXXX)
  if ! (cd "$promdir" && apt-get download -q prometheus >/dev/null 2>&1); then
    quietly apt-get update -q # a fresh image may have no package lists yet
    (cd "$promdir" && quietly apt-get download -q prometheus)
  fi
  quietly dpkg-deb -x "$(ls "$promdir"/prometheus_*.deb)" "$promdir/root"
  install -m 0755 "$promdir/root/usr/bin/promtool" /usr/local/bin/promtool
  rm -rf "$promdir"
else
  say "promtool: not found (test/alert-rules.test.ts skips its promtool checks; CI needs it)"
fi

# --- 2. npm install. npm leaves node_modules/.package-lock.json behind after every install; we touch it afterwards
# so "package.json newer than it" means exactly "changed since our last install".
stamp=node_modules/.package-lock.json
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ] ||
  { [ -f package-lock.json ] && [ package-lock.json -nt "$stamp" ]; }; then
  say "npm install: installing dependencies"
  quietly npm install --no-audit --no-fund
  touch "$stamp"
else
  say "npm install: up to date"
fi

# --- 3. Native addon.
addon=native/build/Release/weft_native.node
if [ ! -f "$addon" ] || [ -n "$(find native/src native/binding.gyp -newer "$addon" -print -quit 2>/dev/null)" ]; then
  say "native addon: building ($addon)"
  quietly npm run build:native
else
  say "native addon: up to date"
fi

# --- 4. TypeScript. The source folders are those tsconfig.build.json includes.
build_stamp=dist/.setup-build-stamp
src_dirs=$(node -e 'const c = JSON.parse(require("fs").readFileSync("tsconfig.build.json", "utf8")); console.log(c.include.join(" "))')
# shellcheck disable=SC2086 # src_dirs is a word list on purpose
if [ ! -f "$build_stamp" ] ||
  [ -n "$(find $src_dirs tsconfig.json tsconfig.build.json package.json \( -name node_modules -o -name build \) -prune -o \
    -newer "$build_stamp" \( -name '*.ts' ! -name '*.test.ts' -o -name 'tsconfig*.json' -o -name package.json \) \
    -print -quit 2>/dev/null)" ]; then
  say "typescript: building (tsc -p tsconfig.build.json -> dist/)"
  started=$(mktemp /tmp/weft-setup-stamp-XXXXXX) # taken before tsc, so an edit during the build triggers the next one
  trap 'rm -f "$started"' EXIT                     # a failed build leaves no stamp behind
  quietly npm run build:ts
  mkdir -p dist && mv "$started" "$build_stamp"
else
  say "typescript: up to date"
fi
