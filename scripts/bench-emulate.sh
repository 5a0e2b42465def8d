#!/usr/bin/env bash
# Benchmarks `sim emulate` serving SpiNNaker1M (scenarios/lab-1m.toml: 50 BMPs and 1,194 live
# boards, one loopback address each) against `sim load`, each in its own process: the emulator's
# memory when idle and after every board was powered, booted and loaded, and the SCP reply rate
# for CMD_VER, 256-byte CMD_READ and 256-byte CMD_WRITE with many requests outstanding.
# Usage: scripts/bench-emulate.sh [SECONDS] [OUTSTANDING]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
outstanding=${2:-256}
scenario=scenarios/lab-1m.toml
work=$(mktemp -d)
cargo build --release --locked --quiet --bin sim
sim=target/release/sim
"$sim" emulate "$scenario" --quiet --ready-file "$work/ready" &
emu=$!
trap 'kill "$emu" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 300); do [ -f "$work/ready" ] && break; sleep 0.1; done
[ -f "$work/ready" ] || { echo "sim emulate did not bind its sockets" >&2; exit 1; }
rss() { awk -v k="$1:" '$1 == k { printf "%.1f", $2 / 1024 }' "/proc/$emu/status"; }
echo "sim emulate $scenario: $(cat "$work/ready"), idle RSS $(rss VmRSS) MiB"
for request in version read write; do
  "$sim" load "$scenario" --seconds "$seconds" --outstanding "$outstanding" --request "$request" \
    --json "$work/$request.json" 2> /dev/null | sed 's/^/  /'
done
echo "sim emulate after power-on, boot and load of every board: RSS $(rss VmRSS) MiB, peak $(rss VmHWM) MiB"
