#!/usr/bin/env bash
# The local sweep executor's overhead (issue 15): 100 points of the quick scenario (25 offered
# loads x 2 queue disciplines x 2 packers, one seed) run by `sim sweep --jobs N` (N = cores),
# against the same 100 scenarios run one after another by `sim run --no-report` (the sum of
# their single-run wall times). Goal: the sweep's run phase takes no more than 1.5 x that sum / N.
# Also prints the sweep's whole wall time (planning, the run, collecting the CSVs and drawing the
# report).
# Usage: scripts/bench-sweep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet --bin sim
sim=$PWD/target/release/sim
cores=$(nproc)
mkdir -p target
work=$(mktemp -d "$PWD/target/bench-sweep.XXXXXX")
trap 'rm -rf "$work"' EXIT

loads=$(python3 -c 'print(", ".join(f"{0.4 + 0.05 * i:.2f}" for i in range(25)))')
cat > "$work/hundred.toml" <<TOML
[sweep]
name = "hundred"
base = "$PWD/scenarios/quick.toml"
seeds = 1

[axes]
policy.queue = ["fifo", "easy"]
policy.packer = ["spalloc", "anywhere"]
workload.load_scale = [$loads]
TOML

start=$(date +%s.%N)
"$sim" sweep "$work/hundred.toml" --out "$work/sweep" --jobs "$cores" > "$work/sweep.out"
end=$(date +%s.%N)
ran=$(sed -n 's/^ran .* in \([0-9.]*\) s (planned.*/\1/p' "$work/sweep.out")
planned=$(sed -n 's/.*(planned in \([0-9.]*\) s).*/\1/p' "$work/sweep.out")
collected=$(sed -n 's/.*collected with the report in \([0-9.]*\) s.*/\1/p' "$work/sweep.out")

# The same scenarios, one at a time (each point's frozen scenario from the sweep directory; the
# sweep resolves relative paths against the base's directory, so copy them beside it).
sum=0
for p in "$work"/sweep/points/p*.toml; do
  cp "$p" scenarios/.bench-sweep-point.toml
  t0=$(date +%s.%N)
  "$sim" run scenarios/.bench-sweep-point.toml --quiet --no-report --out "$work/single" > /dev/null
  t1=$(date +%s.%N)
  rm -rf "$work/single"
  sum=$(python3 -c "print($sum + $t1 - $t0)")
done
rm -f scenarios/.bench-sweep-point.toml

python3 - "$sum" "$cores" "$ran" "$planned" "$collected" "$start" "$end" <<'PY'
import sys
total, cores, ran, planned, collected, start, end = map(float, sys.argv[1:])
ideal = total / cores
print(f"100 single runs (sim run --no-report), one after another: {total:.2f} s "
      f"(/ {cores:.0f} cores = {ideal:.2f} s)")
print(f"sim sweep --jobs {cores:.0f}, run phase:                 {ran:.2f} s "
      f"= {ran / ideal:.2f} x the ideal (goal <= 1.5 x)")
print(f"sim sweep, whole: {end - start:.2f} s (planned {planned:.2f} s, run {ran:.2f} s, "
      f"collected + report {collected:.2f} s)")
PY
