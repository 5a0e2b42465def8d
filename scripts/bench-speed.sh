#!/usr/bin/env bash
# Issue #17's figures, side by side with an earlier release (BASE, default ce67aff, the release
# before flow transfers), in one session:
#  1. the packet-level busy week with booting users and their data (scenarios/busy-week-full.toml):
#     this code with transfers = "flow" (the scenario as shipped) against the base, which has only
#     exact transfers, on a one-day cut (`DAY=1d`, 20,000 jobs scaled to the cut) — and this
#     code's exact mode on the same cut, with how far the flow run's job times are from it;
#     with FULL=1 also the whole week in both modes (the exact runs take 25-30 minutes each);
#  2. `sim replay` of a 1,000,000-job SpiNNaker1M trace (sim gen-trace --jobs 1000000).
# Each line: wall time and peak memory. Goals (#17): busy-week-full <= 60 s and <= 500 MiB;
# replay <= 1.5 s and <= 200 MiB.
# Usage: [BASE=REV] [FULL=1] [DAY=1d] scripts/bench-speed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
base_rev=${BASE:-ce67aff}
day=${DAY:-1d}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --locked --quiet --bin sim
sim=$PWD/target/release/sim
base=$(scripts/base-sim.sh "$base_rev")

measure() { # label, command... -> "wall rss_kib"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/$label.time" "$@" > /dev/null
  cat "$work/$label.time"
}
row() { # what, build, wall, rss_kib, note
  printf '%-34s %-16s %10s %10.1f  %s\n' "$1" "$2" "$3" "$(echo "$4/1024" | bc -l)" "${5:-}"
}
# The largest difference of any job's start, ready or end time between two runs, in seconds.
jobdiff() {
  python3 - "$1/jobs.csv" "$2/jobs.csv" <<'PY'
import csv, sys
a = {r["id"]: r for r in csv.DictReader(open(sys.argv[1]))}
b = {r["id"]: r for r in csv.DictReader(open(sys.argv[2]))}
worst = 0.0
for k, r in a.items():
    for f in ("start_s", "ready_s", "end_s"):
        if r[f] and b[k][f]:
            worst = max(worst, abs(float(r[f]) - float(b[k][f])))
        elif r[f] != b[k][f]:
            worst = float("inf")
print(f"job times within {worst:.3f} s of this code's exact run")
PY
}

printf '%-34s %-16s %10s %10s\n' "" build "wall s" "peak MiB"
full=scenarios/busy-week-full.toml
exact_of() { sed 's/^transfers = "flow"/transfers = "packets"/' "$1"; }
base_of() { sed '/^transfers = /d' "$1"; }   # the base has no transfers key: exact
cut="$work/busy-week-full-$day.toml"
days=$(python3 -c "import sys; s=sys.argv[1]; print({'h': 1/24, 'd': 1}[s[-1]] * float(s[:-1]))" "$day")
jobs=$(python3 -c "print(round(20000 * $days / 7))")
sed -e "s/^horizon = \"7d\"/horizon = \"$day\"/" -e "s/^jobs = 20000/jobs = $jobs/" "$full" > "$cut"
exact_of "$cut" > "$work/cut-exact.toml"
base_of "$cut" > "$work/cut-base.toml"

read -r w m < <(measure flow "$sim" run "$full" --out "$work/full-flow" --quiet --no-report)
row "busy-week-full (7 d, 20,000 jobs)" "this, flow" "$w" "$m"
if [ -n "${FULL:-}" ]; then
  exact_of "$full" > "$work/full-exact.toml"
  base_of "$full" > "$work/full-base.toml"
  read -r w m < <(measure full-exact "$sim" run "$work/full-exact.toml" --out "$work/full-exact" --quiet --no-report)
  row "" "this, packets" "$w" "$m" "$(jobdiff "$work/full-exact" "$work/full-flow")"
  read -r w m < <(measure full-base "$base" run "$work/full-base.toml" --out "$work/full-base" --quiet --no-report)
  row "" "base $base_rev" "$w" "$m"
fi
read -r w m < <(measure cut-flow "$sim" run "$cut" --out "$work/cut-flow" --quiet --no-report)
row "busy-week-full, $day cut ($jobs jobs)" "this, flow" "$w" "$m"
read -r w m < <(measure cut-exact "$sim" run "$work/cut-exact.toml" --out "$work/cut-exact" --quiet --no-report)
row "" "this, packets" "$w" "$m" "$(jobdiff "$work/cut-exact" "$work/cut-flow")"
read -r w m < <(measure cut-base "$base" run "$work/cut-base.toml" --out "$work/cut-base" --quiet --no-report)
same=$(cmp -s "$work/cut-base/jobs.csv" "$work/cut-exact/jobs.csv" && echo "jobs.csv identical to this code's exact run" || echo "jobs.csv DIFFERS from this code's exact run")
row "" "base $base_rev" "$w" "$m" "$same"

machine=scenarios/machines/spinnaker1m.json
"$sim" gen-trace --machine "$machine" --jobs 1000000 --seed 50000 --load 0.05 --out "$work/trace.csv"
read -r w m < <(measure replay "$sim" replay --machine "$machine" --trace "$work/trace.csv" --out "$work/replay.jsonl")
row "sim replay, 1M jobs (SpiNNaker1M)" "this" "$w" "$m"
read -r w m < <(measure replay-base "$base" replay --machine "$machine" --trace "$work/trace.csv" --out "$work/replay-base.jsonl")
same=$(cmp -s <(head -n -1 "$work/replay.jsonl") <(head -n -1 "$work/replay-base.jsonl") && echo "job lines identical" || echo "job lines DIFFER")
row "" "base $base_rev" "$w" "$m" "$same"
