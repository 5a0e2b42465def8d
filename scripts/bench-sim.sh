#!/usr/bin/env bash
# Times the simulator and the report generator on the shipped week-long scenarios: `sim run`
# (wall time, peak memory, events per second from perf.json) and `sim report` on its output.
# Usage: scripts/bench-sim.sh [SCENARIO ...]   (default: busy-week, backfill, packers, busy-week-packet)
set -euo pipefail
cd "$(dirname "$0")/.."
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(busy-week backfill packers busy-week-packet)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --locked --quiet --bin sim
sim=target/release/sim
printf '%-18s %10s %12s %14s %16s %12s\n' scenario "run s" "peak MiB" "events/s" "simulated d/s" "report s"
for name in "${scenarios[@]}"; do
  out="$work/$name"
  /usr/bin/time -f "%e %M" -o "$work/run.time" "$sim" run "scenarios/$name.toml" --out "$out" --quiet --no-report
  read -r wall rss < "$work/run.time"
  /usr/bin/time -f "%e" -o "$work/report.time" "$sim" report "$out" > /dev/null
  report=$(cat "$work/report.time")
  python3 - "$out/perf.json" "$name" "$wall" "$rss" "$report" <<'PY'
import json, sys
perf = json.load(open(sys.argv[1]))
name, wall, rss, report = sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
events = perf.get("events_per_s") or 0
days = perf.get("sim_days_per_wall_s") or 0
print(f"{name:<18} {wall:>10.2f} {rss / 1024:>12.1f} {events:>14,.0f} {days:>16.1f} {report:>12.2f}")
PY
done
