#!/usr/bin/env bash
# Times `sim replay` and the reference server (PyPI spalloc-server, via tests/reference/replay_ref.py)
# on the same seeded 50,000-job SpiNNaker1M trace, side by side, with peak memory of both.
# With BASE=REV (a git revision) the same replay by that revision's `sim` (built once into
# target/bench-base/) is timed too, in the same session, and its job lines compared.
# Usage: [BASE=REV] scripts/bench-replay.sh [JOBS] [LOAD]
# LOAD is the offered load of the generated trace (gen-trace --load): the default 0.05 keeps the
# queue short, as on a lightly used service; 0.5 saturates the machine (waits of weeks). On the
# 2-core development machine the reference took 61-70 s at 0.02-0.1 and 98-128 s at 0.5 for the
# 50,000 jobs; sim replay 0.08-0.14 s (0.2 s before the #17 work).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-50000}
load=${2:-0.05}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py=$(bash tests/reference/setup-venv.sh | tail -n 1)
cargo build --release --locked --quiet --bin sim
sim=target/release/sim
machine=scenarios/machines/spinnaker1m.json
"$sim" gen-trace --machine "$machine" --jobs "$jobs" --seed 50000 --load "$load" --out "$work/trace.csv"

measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/$label.time" "$@" > /dev/null
  read -r wall rss < "$work/$label.time"
  echo "$wall $rss"
}

echo "trace: $jobs jobs, offered load $load, machine $machine"
read -r ours_wall ours_rss < <(measure ours "$sim" replay --machine "$machine" --trace "$work/trace.csv" --out "$work/ours.jsonl")
read -r ref_wall ref_rss < <(measure ref "$py" tests/reference/replay_ref.py --machine "$machine" --trace "$work/trace.csv" --out "$work/ref.jsonl")
if [ -n "${BASE:-}" ]; then
  base=$(scripts/base-sim.sh "$BASE")
  read -r base_wall base_rss < <(measure base "$base" replay --machine "$machine" --trace "$work/trace.csv" --out "$work/base.jsonl")
fi
loop() { tail -n 1 "$1" | sed 's/.*"wall_s": \([0-9.]*\).*/\1/'; }
ours_loop=$(loop "$work/ours.jsonl"); ref_loop=$(loop "$work/ref.jsonl")
if cmp -s <(head -n -1 "$work/ours.jsonl") <(head -n -1 "$work/ref.jsonl"); then same=identical; else same=DIFFERENT; fi
printf '%-10s %12s %12s %14s\n' "" "process s" "loop s" "peak RSS MiB"
printf '%-10s %12s %12s %14.1f\n' reference "$ref_wall" "$ref_loop" "$(echo "$ref_rss/1024" | bc -l)"
if [ -n "${BASE:-}" ]; then
  printf '%-10s %12s %12s %14.1f\n' base "$base_wall" "$(loop "$work/base.jsonl")" "$(echo "$base_rss/1024" | bc -l)"
  if cmp -s <(head -n -1 "$work/ours.jsonl") <(head -n -1 "$work/base.jsonl"); then echo "base and current: job lines identical"; else echo "base and current: job lines DIFFERENT"; fi
fi
printf '%-10s %12s %12s %14.1f\n' spinnbed "$ours_wall" "$ours_loop" "$(echo "$ours_rss/1024" | bc -l)"
echo "speed-up: process $(echo "$ref_wall/$ours_wall" | bc -l | cut -c1-6)x, replay loop $(echo "$ref_loop/$ours_loop" | bc -l | cut -c1-6)x; job lines $same"
