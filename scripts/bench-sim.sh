#!/usr/bin/env bash
# Times the simulator and the report generator on the shipped week-long scenarios: `sim run`
# (wall time, peak memory, events per second from perf.json) and `sim report` on its output.
# With BASE=REV (a git revision, e.g. BASE=HEAD~3 or a tag), the same runs of that revision's
# `sim` (built once into target/bench-base/) are timed beside each, in the same session, and
# their outputs compared byte for byte (perf.json aside).
# Usage: [BASE=REV] scripts/bench-sim.sh [SCENARIO ...]
#   (default: busy-week, backfill, packers, busy-week-packet)
set -euo pipefail
cd "$(dirname "$0")/.."
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(busy-week backfill packers busy-week-packet)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --locked --quiet --bin sim
bins=("current=target/release/sim")
if [ -n "${BASE:-}" ]; then
  bins=("base=$(scripts/base-sim.sh "$BASE")" "${bins[@]}")
fi
printf '%-18s %-8s %10s %12s %14s %16s %12s\n' scenario build "run s" "peak MiB" "events/s" "simulated d/s" "report s"
for name in "${scenarios[@]}"; do
  for entry in "${bins[@]}"; do
    label=${entry%%=*}
    sim=${entry#*=}
    out="$work/$label/$name"
    mkdir -p "$work/$label"
    /usr/bin/time -f "%e %M" -o "$work/run.time" "$sim" run "scenarios/$name.toml" --out "$out" --quiet --no-report
    read -r wall rss < "$work/run.time"
    /usr/bin/time -f "%e" -o "$work/report.time" "$sim" report "$out" > /dev/null
    report=$(cat "$work/report.time")
    python3 - "$out/perf.json" "$name" "$label" "$wall" "$rss" "$report" <<'PY'
import json, sys
perf = json.load(open(sys.argv[1]))
name, label, wall, rss, report = sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
events = perf.get("events_per_s") or 0
days = perf.get("sim_days_per_wall_s") or 0
print(f"{name:<18} {label:<8} {wall:>10.2f} {rss / 1024:>12.1f} {events:>14,.0f} {days:>16.1f} {report:>12.2f}")
PY
  done
  if [ -n "${BASE:-}" ]; then
    same=identical
    for f in summary.json jobs.csv timeline.csv boards.csv; do
      cmp -s "$work/base/$name/$f" "$work/current/$name/$f" || same="DIFFERENT ($f)"
    done
    echo "$name: outputs $same"
  fi
done
