#!/usr/bin/env bash
# Test hosts for the demo and the benchmark: N "machines" as network namespaces on one shared underlay. The same
# layout and names as test/harness/hosts.ts (keep the two in step):
#
#   <prefix>-ul     underlay namespace: bridge br0, one port hN per host
#   <prefix>-hN     host N: eth0 = 10.<x>.0.N/24 (x random in 200..250 per run), lo up, default route via eth0
#   <prefix>-hN-cM  a container namespace on host N (`container`; weft itself attaches it)
#
# Nothing reaches outside: the underlay bridge has no uplink and cut/restore rules live inside the host namespaces.
# Before creating anything, `up` writes /run/weft-testhosts/<prefix> (owner PID, process group, subnet); `sweep`
# removes only runs with such a marker whose owner and group are both gone, never anything else. Runs of more than 16
# hosts raise the kernel's shared neighbour table limits (gc_thresh*) and the last of them to go down restores them
# (see "the kernel's neighbour table" below).
#
# As a command:
#   scripts/testhosts.sh up N [PREFIX]          create; prints the prefix on stdout (default: w + 4 random hex)
#   scripts/testhosts.sh down PREFIX            kill what runs inside, delete every <PREFIX>-* namespace (idempotent)
#   scripts/testhosts.sh exec PREFIX N CMD...   run CMD in host N (`ip netns exec PREFIX-hN CMD...`)
#   scripts/testhosts.sh ip PREFIX N            print host N's underlay address
#   scripts/testhosts.sh cut PREFIX A B         drop all traffic between hosts A and B (idempotent)
#   scripts/testhosts.sh restore PREFIX A B     undo cut (idempotent)
#   scripts/testhosts.sh isolate PREFIX N       cut N from every other host;  rejoin PREFIX N  undoes it
#   scripts/testhosts.sh container PREFIX N NAME  create namespace PREFIX-hN-NAME (lo up)
#   scripts/testhosts.sh sweep [REGEX]          remove dead runs' leftovers (prefix regex, default ^w[0-9a-f]{4}$)
# Sourced (`. scripts/testhosts.sh`), it defines the same as functions: testhosts_up, testhosts_down, testhosts_exec,
# testhosts_ip, testhosts_cut, testhosts_restore, testhosts_isolate, testhosts_rejoin, testhosts_container,
# testhosts_sweep. They return non-zero on failure and never exit the calling shell. Sourced, the run's owner is the
# sourcing shell ($$); run as a command, it is the caller ($PPID); WEFT_TESTHOSTS_OWNER=PID overrides both.

TESTHOSTS_MARKER_DIR=/run/weft-testhosts

_th_err() { echo "testhosts: $*" >&2; }

# Run a command; on failure say which one, with its stderr, and return 1.
_th_run() {
  local out
  if ! out=$("$@" 2>&1); then
    _th_err "\`$*\` failed: $out"
    return 1
  fi
  [ -z "$out" ] || printf '%s\n' "$out"
}

_th_need_tools() {
  local t
  for t in ip iptables; do
    command -v "$t" >/dev/null 2>&1 || { _th_err "\`$t\` is not installed: run scripts/setup.sh as root"; return 1; }
  done
}

_th_check_prefix() {
  [[ "$1" =~ ^[a-z][a-z0-9]{0,11}$ ]] || { _th_err "bad prefix '$1' (1-12 of [a-z0-9], starting with a letter)"; return 1; }
}

_th_check_num() {
  [[ "$1" =~ ^[1-9][0-9]?$ ]] || { _th_err "bad host number '$1'"; return 1; }
}

_th_namespaces() { ip netns list 2>/dev/null | awk '{print $1}'; }

# The namespaces of a run, containers first (reverse order), the underlay last.
_th_namespaces_of() { _th_namespaces | grep -E "^$1-" | sort -r; }

_th_alive() { [ -n "$1" ] && [ "$1" -gt 0 ] 2>/dev/null && kill -0 "$1" 2>/dev/null; }

_th_owner_alive() {
  local marker="$TESTHOSTS_MARKER_DIR/$1" owner group
  owner=$(sed -n 's/^owner=//p' "$marker" 2>/dev/null)
  group=$(sed -n 's/^group=//p' "$marker" 2>/dev/null)
  _th_alive "$owner" && return 0
  [ -n "$group" ] && [ "$group" -gt 1 ] 2>/dev/null && kill -0 -- "-$group" 2>/dev/null && return 0
  return 1
}

testhosts_ip() {
  local prefix=$1 n=$2 subnet
  _th_check_prefix "$prefix" && _th_check_num "$n" || return 1
  subnet=$(sed -n 's/^subnet=//p' "$TESTHOSTS_MARKER_DIR/$prefix" 2>/dev/null)
  if [ -n "$subnet" ]; then
    echo "${subnet%.0/24}.$n"
  else
    ip -n "$prefix-h$n" -4 -o addr show dev eth0 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}'
  fi
}

# Create the namespaces and links of a run (testhosts_up removes everything if this fails half-way).
_th_build() {
  local prefix=$1 count=$2 x=$3 ul="$1-ul" i h
  _th_run ip netns add "$ul" &&
    _th_run ip -n "$ul" link set lo up &&
    _th_run ip -n "$ul" link add name br0 type bridge &&
    _th_run ip -n "$ul" link set br0 up || return 1
  for ((i = 1; i <= count; i++)); do
    h="$prefix-h$i"
    # The default route only gives daemons an underlay device to take the MTU from; it ends on the isolated bridge.
    _th_run ip netns add "$h" &&
      _th_run ip -n "$h" link set lo up &&
      _th_run ip -n "$ul" link add name "h$i" type veth peer name eth0 netns "$h" &&
      _th_run ip -n "$ul" link set "h$i" master br0 up &&
      _th_run ip -n "$h" addr add "10.$x.0.$i/24" dev eth0 &&
      _th_run ip -n "$h" link set eth0 up &&
      _th_run ip -n "$h" route add default dev eth0 || return 1
  done
}

# ---- the kernel's neighbour table -----------------------------------------------------------------------------------
# Every namespace shares one neighbour (ARP/NDP) table, sized by net.ipv{4,6}.neigh.default.gc_thresh1/2/3 (1,024
# entries at most by default), and a full mesh of N hosts needs N(N-1) of them, so past ~20 hosts pings fail with
# ENOBUFS. A run that needs more raises the limits and records the values it found first (neigh_orig= in its marker,
# copied from another raising run's marker when one is alive, so they are the machine's own); the last raising run to
# go down puts them back. Where the sysctls cannot be written, `up` refuses and says what to set.
_TH_NEIGH_KEYS="net.ipv4.neigh.default.gc_thresh1 net.ipv4.neigh.default.gc_thresh2 net.ipv4.neigh.default.gc_thresh3 net.ipv6.neigh.default.gc_thresh1 net.ipv6.neigh.default.gc_thresh2 net.ipv6.neigh.default.gc_thresh3"

_th_sysctl_path() { echo "/proc/sys/$(echo "$1" | tr . /)"; }

# Entries a run of N hosts may want: the underlay full mesh twice over (v4 and v6), containers and other runs.
_th_neigh_need() { echo $((4 * $1 * $1 + 1024)); }

_th_neigh_current() {
  local k out=""
  for k in $_TH_NEIGH_KEYS; do out="$out $(cat "$(_th_sysctl_path "$k")" 2>/dev/null || echo '?')"; done
  echo $out
}

_th_neigh_write() { # values in _TH_NEIGH_KEYS order
  local k v
  for k in $_TH_NEIGH_KEYS; do
    v=$1; shift
    [ "$v" = '?' ] && continue
    echo "$v" >"$(_th_sysctl_path "$k")" 2>/dev/null || return 1
  done
}

# Raise the limits for a run of `count` hosts if they are too low; appends neigh_orig= to the run's marker.
_th_neigh_raise() {
  local prefix=$1 count=$2 need cur3 orig m t1 t2
  need=$(_th_neigh_need "$count")
  cur3=$(cat "$(_th_sysctl_path net.ipv4.neigh.default.gc_thresh3)" 2>/dev/null || echo 0)
  [ "$count" -gt 16 ] || return 0 # small runs fit in the default 1,024 next to others
  [ "$cur3" -ge "$need" ] 2>/dev/null && return 0
  (
    flock -w 10 9 || exit 1
    orig=""
    for m in "$TESTHOSTS_MARKER_DIR"/*; do
      [ "$m" = "$TESTHOSTS_MARKER_DIR/$prefix" ] && continue
      orig=$(sed -n 's/^neigh_orig=//p' "$m" 2>/dev/null)
      [ -n "$orig" ] && break
    done
    [ -n "$orig" ] || orig=$(_th_neigh_current)
    t1=$(cat "$(_th_sysctl_path net.ipv4.neigh.default.gc_thresh1)" 2>/dev/null || echo 128)
    t2=$((need / 2))
    if ! _th_neigh_write "$t1" "$t2" "$need" "$t1" "$t2" "$need"; then
      _th_neigh_write $orig
      _th_err "$count hosts need a larger neighbour table than the kernel's (gc_thresh3 $cur3): as root, run"
      _th_err "  sysctl -w net.ipv4.neigh.default.gc_thresh2=$t2 net.ipv4.neigh.default.gc_thresh3=$need net.ipv6.neigh.default.gc_thresh2=$t2 net.ipv6.neigh.default.gc_thresh3=$need"
      exit 1
    fi
    echo "neigh_orig=$orig" >>"$TESTHOSTS_MARKER_DIR/$prefix"
  ) 9>"$TESTHOSTS_MARKER_DIR/.neigh.lock"
}

# After the run's marker is read (orig): when no other live marker raised the limits, put them back.
_th_neigh_restore() {
  local prefix=$1 orig=$2 m
  [ -n "$orig" ] || return 0
  (
    flock -w 10 9 || exit 1
    for m in "$TESTHOSTS_MARKER_DIR"/*; do
      [ "$m" = "$TESTHOSTS_MARKER_DIR/$prefix" ] && continue
      grep -q '^neigh_orig=' "$m" 2>/dev/null && exit 0 # another run still needs them
    done
    # shellcheck disable=SC2086
    _th_neigh_write $orig || _th_err "could not restore the neighbour table limits ($_TH_NEIGH_KEYS) to: $orig"
  ) 9>"$TESTHOSTS_MARKER_DIR/.neigh.lock"
}

testhosts_up() {
  local count=$1 prefix=${2:-} x subnet owner group
  [[ "$count" =~ ^[1-9][0-9]?$ ]] && [ "$count" -le 64 ] || { _th_err "usage: up N [PREFIX] (N = 1..64)"; return 1; }
  _th_need_tools || return 1
  [ -n "$prefix" ] || prefix="w$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')"
  _th_check_prefix "$prefix" || return 1
  if [ -n "$(_th_namespaces_of "$prefix")" ]; then
    _th_err "namespaces $prefix-* already exist: choose another prefix or run: scripts/testhosts.sh down $prefix"
    return 1
  fi
  x=$((200 + RANDOM % 51))
  subnet="10.$x.0.0/24"
  if [ -n "${WEFT_TESTHOSTS_OWNER:-}" ]; then owner=$WEFT_TESTHOSTS_OWNER
  elif [ "${BASH_SOURCE[0]}" != "$0" ]; then owner=$$
  else owner=$PPID; fi
  group=$(cut -d' ' -f5 "/proc/$$/stat" 2>/dev/null)
  mkdir -p "$TESTHOSTS_MARKER_DIR" || return 1
  printf 'owner=%s\ngroup=%s\nsubnet=%s\n' "$owner" "$group" "$subnet" >"$TESTHOSTS_MARKER_DIR/$prefix" || return 1
  _th_neigh_raise "$prefix" "$count" || { rm -f "$TESTHOSTS_MARKER_DIR/$prefix"; return 1; }
  _th_build "$prefix" "$count" "$x" || { testhosts_down "$prefix"; return 1; }
  _th_err "up: $count hosts, prefix $prefix, underlay $subnet (h1 = 10.$x.0.1)"
  echo "$prefix"
}

testhosts_down() {
  local prefix=$1 namespaces pids pid ns i
  _th_check_prefix "$prefix" || return 1
  namespaces=$(_th_namespaces_of "$prefix")
  pids=""
  for ns in $namespaces; do pids="$pids $(ip netns pids "$ns" 2>/dev/null)"; done
  pids=$(echo $pids)
  if [ -n "$pids" ]; then
    # Only our runs put processes in our namespaces; end them by PID, politely first.
    kill -TERM $pids 2>/dev/null
    for ((i = 0; i < 30; i++)); do
      local any=""
      for pid in $pids; do _th_alive "$pid" && any=1; done
      [ -n "$any" ] || break
      sleep 0.1
    done
    for pid in $pids; do _th_alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
  fi
  for ns in $namespaces; do ip netns del "$ns" 2>/dev/null; done
  local orig
  orig=$(sed -n 's/^neigh_orig=//p' "$TESTHOSTS_MARKER_DIR/$prefix" 2>/dev/null)
  _th_neigh_restore "$prefix" "$orig"
  rm -f "$TESTHOSTS_MARKER_DIR/$prefix"
  return 0
}

testhosts_exec() {
  local prefix=$1 n=$2
  _th_check_prefix "$prefix" && _th_check_num "$n" || return 1
  shift 2
  [ $# -gt 0 ] || { _th_err "usage: exec PREFIX N CMD..."; return 1; }
  ip netns exec "$prefix-h$n" "$@"
}

testhosts_container() {
  local prefix=$1 n=$2 name=$3
  _th_check_prefix "$prefix" && _th_check_num "$n" || return 1
  [[ "$name" =~ ^[a-z0-9]{1,8}$ ]] || { _th_err "bad container name '$name' (1-8 of [a-z0-9])"; return 1; }
  _th_run ip netns add "$prefix-h$n-$name" && _th_run ip -n "$prefix-h$n-$name" link set lo up
}

# The four DROP rules of a cut, one per line: "NS CHAIN -s|-d ADDR".
_th_cut_rules() {
  local prefix=$1 a=$2 b=$3 ipa ipb
  ipa=$(testhosts_ip "$prefix" "$a") && ipb=$(testhosts_ip "$prefix" "$b") || return 1
  [ -n "$ipa" ] && [ -n "$ipb" ] || { _th_err "no such hosts $prefix-h$a / $prefix-h$b"; return 1; }
  echo "$prefix-h$a INPUT -s $ipb"
  echo "$prefix-h$a OUTPUT -d $ipb"
  echo "$prefix-h$b INPUT -s $ipa"
  echo "$prefix-h$b OUTPUT -d $ipa"
}

testhosts_cut() {
  local rules ns chain dir addr
  rules=$(_th_cut_rules "$@") || return 1
  while read -r ns chain dir addr; do
    ip netns exec "$ns" iptables -w 5 -C "$chain" "$dir" "$addr" -j DROP 2>/dev/null ||
      _th_run ip netns exec "$ns" iptables -w 5 -I "$chain" "$dir" "$addr" -j DROP || return 1
  done <<<"$rules"
}

testhosts_restore() {
  local rules ns chain dir addr i
  rules=$(_th_cut_rules "$@") || return 1
  while read -r ns chain dir addr; do
    for ((i = 0; i < 10; i++)); do
      ip netns exec "$ns" iptables -w 5 -C "$chain" "$dir" "$addr" -j DROP 2>/dev/null || break
      _th_run ip netns exec "$ns" iptables -w 5 -D "$chain" "$dir" "$addr" -j DROP || return 1
    done
  done <<<"$rules"
}

_th_hosts_of() { _th_namespaces | sed -n "s/^$1-h\([0-9][0-9]*\)$/\1/p" | sort -n; }

testhosts_isolate() {
  local prefix=$1 n=$2 m
  for m in $(_th_hosts_of "$prefix"); do [ "$m" = "$n" ] || testhosts_cut "$prefix" "$n" "$m" || return 1; done
}

testhosts_rejoin() {
  local prefix=$1 n=$2 m
  for m in $(_th_hosts_of "$prefix"); do [ "$m" = "$n" ] || testhosts_restore "$prefix" "$n" "$m" || return 1; done
}

testhosts_sweep() {
  local pattern=${1:-'^w[0-9a-f]{4}$'} prefix
  for prefix in $( (_th_namespaces | sed -n 's/^\([^-]*\)-.*/\1/p'; ls "$TESTHOSTS_MARKER_DIR" 2>/dev/null) | sort -u); do
    [[ "$prefix" =~ $pattern ]] || continue
    [ -f "$TESTHOSTS_MARKER_DIR/$prefix" ] || continue # not ours (no marker): never touched
    _th_owner_alive "$prefix" && continue
    testhosts_down "$prefix" && echo "$prefix"
  done
}

_th_usage() {
  sed -n 's/^#   scripts\/testhosts.sh /  /p' "${BASH_SOURCE[0]}" >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  cmd=${1:-}
  [ $# -gt 0 ] && shift
  case "$cmd" in
    up) [ $# -ge 1 ] && [ $# -le 2 ] || { _th_usage; exit 2; }; testhosts_up "$@" ;;
    down) [ $# -eq 1 ] || { _th_usage; exit 2; }; testhosts_down "$@" ;;
    exec) [ $# -ge 3 ] || { _th_usage; exit 2; }; testhosts_exec "$@" ;;
    ip) [ $# -eq 2 ] || { _th_usage; exit 2; }; testhosts_ip "$@" ;;
    cut) [ $# -eq 3 ] || { _th_usage; exit 2; }; testhosts_cut "$@" ;;
    restore) [ $# -eq 3 ] || { _th_usage; exit 2; }; testhosts_restore "$@" ;;
    isolate) [ $# -eq 2 ] || { _th_usage; exit 2; }; testhosts_isolate "$@" ;;
    rejoin) [ $# -eq 2 ] || { _th_usage; exit 2; }; testhosts_rejoin "$@" ;;
    container) [ $# -eq 3 ] || { _th_usage; exit 2; }; testhosts_container "$@" ;;
    sweep) [ $# -le 1 ] || { _th_usage; exit 2; }; testhosts_sweep "$@" ;;
    *) echo "usage: scripts/testhosts.sh COMMAND ARGS..." >&2; _th_usage; exit 2 ;;
  esac
  exit $?
fi
