#!/usr/bin/env bash
# Times `sim run` (set-up and a short synthetic workload) on scenarios with many one-triad
# machines, each on its own addresses: the cost of a machine should be constant, whatever the
# number of machines (it used to grow with it: 6,000 machines took 10 s, 30,000 over a minute).
# With BASE=REV the same runs of that revision's `sim` are timed beside each.
# Usage: [BASE=REV] scripts/bench-machines.sh [N ...]   (default: 1000 3000 6000 12000 30000)
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1000 3000 6000 12000 30000)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --locked --quiet --bin sim
bins=("current=target/release/sim")
if [ -n "${BASE:-}" ]; then
  bins=("base=$(scripts/base-sim.sh "$BASE")" "${bins[@]}")
fi
printf '%-10s %-8s %10s %12s\n' machines build "run s" "peak MiB"
for n in "${counts[@]}"; do
  python3 - "$n" > "$work/many.toml" <<'PY'
import sys
n = int(sys.argv[1])
print(f'[run]\nname = "many{n}"\nseed = 1\nhorizon = "4h"\nsample_period = "1m"\ndrain_limit = "1d"\n')
for i in range(n):
    print(f'[[machine]]\nname = "m{i}"\nwidth = 1\nheight = 1\n[machine.ip]\nbase = "{10 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.0"\n')
print('[workload]\nsource = "synthetic"\njobs = 200\nowners = 8\nkeepalive = "60s"\n')
print('[[workload.class]]\nname = "1 board"\nweight = 1\nkind = "board"\nduration = { dist = "lognormal", median = "90s", sigma = 1.0, min = "10s", max = "30m" }')
PY
  for entry in "${bins[@]}"; do
    label=${entry%%=*}
    sim=${entry#*=}
    if /usr/bin/time -f "%e %M" -o "$work/time" timeout 300 "$sim" run "$work/many.toml" --out "$work/out-$label" --quiet --no-report; then
      read -r wall rss < "$work/time"
      printf '%-10s %-8s %10.2f %12.1f\n' "$n" "$label" "$wall" "$(echo "$rss/1024" | bc -l)"
    else
      printf '%-10s %-8s %10s\n' "$n" "$label" "> 300"
    fi
  done
done
