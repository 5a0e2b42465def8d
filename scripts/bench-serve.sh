#!/usr/bin/env bash
# Benchmarks `sim serve` (the spalloc v1 server) side by side with the reference server (PyPI
# spalloc-server 1!7.0.0 with a fake BMP, tests/reference/spalloc_ref_server.py) on the same
# 2 x 2-triad machine (one dead board, one dead link), driven by scripts/bench-serve-load.py
# (Python stdlib, pipelined raw sockets; it uses well under a core at 600,000 replies/s):
#   1. get_job_state requests/s, pipelined (N requests sent without waiting, then N replies
#      read) on 1 and on 100 connections, and lock-step on 1; create_job + destroy_job pairs/s
#      on 1 and 100 connections, lock-step and pipelined; the ratios; both servers' peak RSS.
#   2. sim serve's memory with 1,000 open connections and 10,000 live (queued, keepalive None)
#      jobs: VmRSS and the peak, VmHWM, from /proc/PID/status. (Not the reference's: it listens
#      with a backlog of 5, and 1,000 connections opened one after another took it 158 s.)
#   3. Restart: the same server driven with create/destroy pairs until its journal holds
#      1,000,000 records (each pair of a queued job is two), stopped with SIGTERM, then timed
#      from starting `sim serve --state DIR` to "listening on" and to the first answer.
# sim serve runs with --quiet (no console line per job; the job log and the fsynced journal
# are written as always) on an emulated machine at 127.30.0.0; its state directory is on the
# repository's file system (target/), so journal commits are real fdatasyncs.
# Usage: scripts/bench-serve.sh [--quick]    (--quick: 1 s per figure, a 100,000-record journal)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=3
records=1000000
case "${1:-}" in
  --quick) seconds=1; records=100000 ;;
  "") ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac
conns_held=1000
jobs_held=10000

py=$(bash tests/reference/setup-venv.sh | tail -n 1)
cargo build --release --locked --quiet --bin sim
sim=target/release/sim
load=(python3 scripts/bench-serve-load.py)
mkdir -p target
work=$(mktemp -d "$PWD/target/bench-serve.XXXXXX")
pids=()
hold_fd_open=0
cleanup() {
  [ "$hold_fd_open" = 1 ] && exec 3>&-
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat > "$work/bench-serve.toml" <<'EOF'
# scripts/bench-serve.sh: a 2 x 2-triad machine emulated on 127.30.0.0 (no test uses it),
# quick BMP timings (the reference's fake BMP takes 0.05 s per batch).
[run]
name = "bench-serve"
horizon = "1h"

[[machine]]
name = "bench"
width = 2
height = 2
dead_boards = [[1, 1, 2]]
dead_links = [[0, 0, 0, "east"]]

[machine.ip]
base = "127.30.0.0"

[machine.timing]
power_on = "0.05s"
power_off = "20ms"
boot = "0.2s"

[host]
post_power_on_delay = "0.05s"

[workload]
source = "synthetic"
jobs = 1
EOF

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # pid, port
  for _ in $(seq 600); do
    kill -0 "$1" 2>/dev/null || { echo "the server (pid $1) exited before listening" >&2; return 1; }
    if (exec 4<> "/dev/tcp/127.0.0.1/$2") 2> /dev/null; then return 0; fi
    sleep 0.05
  done
  echo "the server (pid $1) did not listen on port $2" >&2
  return 1
}
stop() { # pid: SIGTERM, then wait for it
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
serve() { # state dir, port
  "$sim" serve "$work/bench-serve.toml" --state "$1" --listen "127.0.0.1:$2" --quiet > "$work/serve.out" 2>&1 &
  serve_pid=$!
  pids+=("$serve_pid")
  wait_port "$serve_pid" "$2" || { cat "$work/serve.out" >&2; exit 1; }
}
# One lock-step call on a fresh connection (the first job of each server: get_job_state's).
call() { # port, JSON request line
  python3 - "$1" "$2" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.argv[2].encode() + b"\n")
reply = s.makefile("rb").readline()
if b'"return"' not in reply:
    sys.exit("unexpected reply: %r" % reply)
PYEOF
}

# --- 1. Throughput, both servers up, each figure measured on one and then the other ----------
ours_port=$(free_port)
serve "$work/state-throughput" "$ours_port"
ours_pid=$serve_pid
"${load[@]}" config "$ours_port" --base 127.30.0.0 > "$work/reference.json"
"$py" tests/reference/spalloc_ref_server.py --config "$work/reference.json" --port 0 \
  > "$work/ref.out" 2> "$work/ref.err" &
ref_pid=$!
pids+=("$ref_pid")
for _ in $(seq 600); do grep -q '^READY' "$work/ref.out" && break; sleep 0.05; done
grep -q '^READY' "$work/ref.out" || { echo "the reference server did not start" >&2; cat "$work/ref.err" >&2; exit 1; }
ref_port=$(awk '/^READY/ { print $2 }' "$work/ref.out")
create='{"command": "create_job", "args": [1], "kwargs": {"owner": "bench", "keepalive": null}}'
call "$ref_port" "$create"
call "$ours_port" "$create"

echo "bench-serve: 2 x 2-triad machine (11 live boards), $(nproc) CPUs, ${seconds} s per figure"
printf '%-60s %10s %10s %8s\n' "" reference "sim serve" ratio
row() { # label, load arguments...
  local label=$1 ref ours
  shift
  ref=$("${load[@]}" "$1" "$ref_port" "${@:2}" --seconds "$seconds")
  ours=$("${load[@]}" "$1" "$ours_port" "${@:2}" --seconds "$seconds")
  for r in "$ref" "$ours"; do
    [ "$(field "$r" exceptions)" = 0 ] || { echo "$label: some requests raised: $r" >&2; exit 1; }
  done
  ref=$(field "$ref" rate); ours=$(field "$ours" rate)
  printf '%-60s %10.0f %10.0f %7.1fx\n' "$label" "$ref" "$ours" "$(echo "$ours / $ref" | bc -l)"
  last_ref=$ref; last_ours=$ours
}
row "get_job_state/s, 1 connection, pipelined" state --conns 1
state1_ref=$last_ref; state1_ours=$last_ours
row "get_job_state/s, 100 connections, pipelined" state --conns 100
row "get_job_state/s, 1 connection, lock-step" state --lockstep
row "create+destroy pairs/s, 1 connection, lock-step" pairs --conns 1 --window 1
row "create+destroy pairs/s, 1 connection, 100 in flight" pairs --conns 1 --window 100
row "create+destroy pairs/s, 100 connections, lock-step" pairs --conns 100 --window 1
row "create+destroy pairs/s, 100 connections, 10 in flight each" pairs --conns 100 --window 10
printf '%-60s %10s %10s\n' "peak RSS over these runs (VmHWM), MiB" \
  "$(mib "$(status_kib "$ref_pid" VmHWM)")" "$(mib "$(status_kib "$ours_pid" VmHWM)")"
verdict() { awk -v a="$1" -v b="$2" 'BEGIN { print (a >= b) ? "met" : "NOT met" }'; }
echo "goals: >= 100,000 get_job_state/s on 1 connection pipelined: $(verdict "$state1_ours" 100000);" \
  ">= 50x the reference: $(verdict "$(echo "$state1_ours / $state1_ref" | bc -l)" 50)" \
  "($(printf '%.1f' "$(echo "$state1_ours / $state1_ref" | bc -l)")x)"
stop "$ref_pid"
stop "$ours_pid"

# --- 2. Memory: 1,000 connections and 10,000 live jobs on a fresh server ----------------------
port=$(free_port)
serve "$work/state" "$port"
idle=$(status_kib "$serve_pid" VmRSS)
mkfifo "$work/hold.in"
"${load[@]}" hold "$port" --conns "$conns_held" --jobs "$jobs_held" < "$work/hold.in" > "$work/hold.out" &
hold_pid=$!
pids+=("$hold_pid")
exec 3> "$work/hold.in"
hold_fd_open=1
for _ in $(seq 1200); do
  grep -q HOLDING "$work/hold.out" && break
  kill -0 "$hold_pid" 2>/dev/null || { cat "$work/hold.out" >&2; exit 1; }
  sleep 0.05
done
read -r _ _ _ t_connect t_create < "$work/hold.out"
rss=$(status_kib "$serve_pid" VmRSS)
hwm=$(status_kib "$serve_pid" VmHWM)
exec 3>&-
hold_fd_open=0
wait "$hold_pid"
echo
echo "memory (sim serve): idle $(mib "$idle") MiB; with $conns_held connections open and $jobs_held live" \
  "jobs: RSS $(mib "$rss") MiB, peak (VmHWM) $(mib "$hwm") MiB" \
  "(connecting took ${t_connect} s, creating the jobs ${t_create} s)"

# --- 3. Restart with a journal of a million records (--quick: 100,000) -----------------------
fill=$("${load[@]}" pairs "$port" --conns 4 --window 1000 --journal "$work/state/journal" --records "$records")
stop "$serve_pid"
n=$(field "$("${load[@]}" journal-records "$work/state/journal")" records)
bytes=$(stat -c %s "$work/state/journal")
echo "restart: journal of $n records ($(mib $((bytes / 1024))) MiB, written by" \
  "$(printf '%.0f' "$(field "$fill" pairs)") create/destroy pairs at $(printf '%.0f' "$(field "$fill" rate)")/s" \
  "after the $jobs_held jobs above)"
for attempt in 1 2; do
  r=$("${load[@]}" restart -- "$sim" serve "$work/bench-serve.toml" --state "$work/state" --listen 127.0.0.1:0)
  printf '  start %d: "listening on" after %.3f s, first answer after %.3f s (target < 2 s: %s)\n' \
    "$attempt" "$(field "$r" listening_s)" "$(field "$r" answering_s)" \
    "$(awk -v t="$(field "$r" answering_s)" 'BEGIN { print (t < 2) ? "met" : "NOT met" }')"
  echo "    $(field "$r" recovered)"
done
