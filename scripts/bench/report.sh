#!/usr/bin/env bash
# The benchmark's summary from its raw rows: medians per path and metric, ratios, and the printed table.
#
#   bash scripts/bench/report.sh RESULTS.tsv META.json [JSON_OUT]
#
# RESULTS.tsv has rows "PATH METRIC RUN VALUE" (tab-separated; scripts/bench/measure.sh writes them). META.json is
# an object merged into the summary's top level (machine, command, runs, seconds, skipped paths). The table goes to
# stdout; the whole summary, with every run's value, to JSON_OUT if given. Runs apart from the bench, so a saved
# results file can be summarised again.
set -euo pipefail
results=$1 meta=$2 json_out=${3:-}

summary=$(jq -R -s --slurpfile meta "$meta" '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[(length - 1) / 2]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def ratio($a; $b): if $a == null or $b == null or $b == 0 then null else ($a / $b * 1000 | round / 1000) end;
  [split("\n")[] | select(length > 0) | split("\t")
    | {path: .[0], metric: .[1], run: (.[2] | tonumber), value: (.[3] | tonumber)}]
  | (group_by(.path) | map({key: .[0].path, value: (group_by(.metric) | map({key: .[0].metric,
      value: {median: (map(.value) | median), runs: (sort_by(.run) | map(.value))}}) | from_entries)}) | from_entries)
    as $paths
  | def cmp($a; $b): ($paths[$a] // {}) as $x | ($paths[$b] // {}) as $y
      | [$x | keys[] | select($y[.] != null) | {key: ., value: ratio($x[.].median; $y[.].median)}] | from_entries;
  $meta[0] + {paths: $paths,
    ratios: {"weft/raw": cmp("weft"; "raw"), "weft/vxlan": cmp("weft"; "vxlan"),
      "weft-pw/weft": cmp("weft-pw"; "weft"), "fastdp/vxlan": cmp("fastdp"; "vxlan"),
      "weft-pcap/weft": cmp("weft-pcap"; "weft")}}
' "$results")

[ -z "$json_out" ] || printf '%s\n' "$summary" >"$json_out"

# One row per metric: label, then the five paths' medians, then the four ratios ("-" where missing), as raw numbers
# that awk rounds for display.
jq -r '
  def cell: if . == null then "-" else tostring end;
  . as $s
  | ["TCP 1 stream, Gbit/s", "tcp1_gbps"], ["TCP 4 streams, Gbit/s", "tcp4_gbps"],
    ["UDP 64 B sent, kpps", "udp64_sent_kpps"], ["UDP 64 B received, kpps", "udp64_kpps"],
    ["UDP 64 B loss, %", "udp64_loss_pct"],
    ["ping RTT median, ms", "ping_median_ms"], ["ping RTT mean, ms", "ping_avg_ms"],
    ["MTU of the sending interface", "mtu"],
    ["weft CPU % sender (TCP 1)", "cpu_send_pct"], ["weft CPU % receiver (TCP 1)", "cpu_recv_pct"],
    ["weft RSS MiB sender", "rss_send_mib"], ["weft RSS MiB receiver", "rss_recv_mib"]
  | . as [$name, $m]
  | [$name,
     ($s.paths.raw[$m].median | cell), ($s.paths.vxlan[$m].median | cell),
     ($s.paths.weft[$m].median | cell), ($s.paths["weft-pw"][$m].median | cell), ($s.paths.fastdp[$m].median | cell),
     ($s.paths["weft-pcap"][$m].median | cell),
     ($s.ratios["weft/raw"][$m] | cell), ($s.ratios["weft/vxlan"][$m] | cell), ($s.ratios["weft-pw/weft"][$m] | cell),
     ($s.ratios["fastdp/vxlan"][$m] | cell), ($s.ratios["weft-pcap/weft"][$m] | cell)]
  | @tsv' <<<"$summary" |
  awk -F '\t' '
    BEGIN {
      fmt = "%-28s %9s %9s %9s %9s %9s %9s   %8s %10s %8s %12s %9s\n"
      printf fmt, "median", "raw veth", "vxlan", "weft", "weft+pw", "fastdp", "weft-pcap", "weft/raw", "weft/vxlan",
        "pw/weft", "fastdp/vxlan", "pcap/weft"
      printf fmt, "----------------------------", "--------", "--------", "--------", "--------", "--------",
        "---------", "--------", "----------", "-------", "------------", "---------"
    }
    # Three significant digits, whole numbers from 100 up.
    function num(x) { return x == "-" ? x : (x + 0 >= 100 ? sprintf("%.0f", x) : sprintf("%.3g", x)) }
    { printf fmt, $1, num($2), num($3), num($4), num($5), num($6), num($7), num($8), num($9), num($10), num($11), num($12) }'

jq -r '(.skipped // {}) | to_entries[] | "skipped \(.key): \(.value)"' <<<"$summary"
