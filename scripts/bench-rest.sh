#!/usr/bin/env bash
# Benchmarks `sim serve`'s spalloc REST API and websocket proxy (issue 14) with the real PyPI
# spinnman 1!7.4.1 SpallocClient (.venv-clients, tests/clients/setup-venv.sh), driven by
# scripts/bench-rest-load.py on a one-board job of a 1 x 1-triad machine emulated at
# 127.60.0.0 (tests/spalloc/bench_rest.toml), booted through the proxy with create_transceiver():
#   1. SCP round trips/s (CMD_VER, 8 outstanding like spinnman's pipeline) through ONE
#      websocket (spinnman's proxied SCAMP connection) and straight to the board over UDP
#      (spinnman's SCAMPConnection), and the ratio; goal: the proxy costs under 2x.
#   2. REST requests/s, a new connection per request as the client makes them (requests.get
#      of the job's state document with the session cookie): HTTPS, and plain HTTP on the
#      same port for comparison.
#   3. The figures of 1. again with a Rust client (tests/benches/proxy_load.rs, its own
#      in-process `sim serve` on 127.61.0.0, run after the Python figures): the same windowed
#      CMD_VER round trips through one websocket (wss://, and ws:// for what TLS costs) and
#      straight over UDP, with the server's CPU time per round trip. The Python client's own
#      cost (websocket-client's thread and queue under the GIL) dominates its proxied figure;
#      the Rust client's ratio is the proxy's.
#   4. The Rust figures of 3. once more with the emulated board's SC&MP timing model on
#      (proxy_load --scamp): a board that serves one request at a time at a real board's pace,
#      which is what a user's proxied SCP is compared with.
# Usage: scripts/bench-rest.sh [--quick]    (--quick: 1 s per figure instead of 5)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=5
case "${1:-}" in
  --quick) seconds=1 ;;
  "") ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

[ -x .venv-clients/bin/python ] || bash tests/clients/setup-venv.sh > /dev/null
py=.venv-clients/bin/python
cargo build --release --locked --quiet --bin sim
cargo bench --locked --quiet -p spinnbed-tests --bench proxy_load --no-run
sim=${SIM:-target/release/sim}   # SIM=path runs the Python figures against another build
mkdir -p target
work=$(mktemp -d "$PWD/target/bench-rest.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scenario=tests/spalloc/bench_rest.toml

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
field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

state="$work/state"
password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')
echo "$password" | "$sim" serve "$scenario" --state "$state" --add-user bench > /dev/null
v1_port=$(free_port)
rest_port=$(free_port)
"$sim" serve "$scenario" --state "$state" --listen "127.0.0.1:$v1_port" \
  --rest-listen "127.0.0.1:$rest_port" --quiet > "$work/serve.out" 2>&1 &
serve_pid=$!
pids+=("$serve_pid")
wait_port "$serve_pid" "$rest_port" || { cat "$work/serve.out" >&2; exit 1; }
for _ in $(seq 100); do [ -s "$state/tls/cert.pem" ] && break; sleep 0.05; done

"$py" scripts/bench-rest-load.py --url "http://127.0.0.1:$rest_port/spalloc/" \
  --cert "$state/tls/cert.pem" --user bench --password "$password" --seconds "$seconds" \
  > "$work/load.out" 2> "$work/load.err" &
load_pid=$!
pids+=("$load_pid")
wait "$load_pid" || { echo "bench-rest-load.py failed:" >&2; cat "$work/load.err" "$work/load.out" >&2; exit 1; }
get() { grep "\"figure\": \"$1\"" "$work/load.out"; }
setup=$(get setup)
proxied=$(get scp_proxied); direct=$(get scp_direct)
https=$(get rest_https); http=$(get rest_http)
# The Rust client, once the Python server has stopped (the two would share the CPUs).
kill "$serve_pid" 2>/dev/null || true
wait "$serve_pid" 2>/dev/null || true
cargo bench --locked --quiet -p spinnbed-tests --bench proxy_load -- --seconds "$seconds" \
  > "$work/rust.out" 2> "$work/rust.err" \
  || { echo "benches/proxy_load.rs failed:" >&2; cat "$work/rust.err" "$work/rust.out" >&2; exit 1; }
# And once more with the board's SC&MP timing model on (--scamp): the board a user has, which
# serves one request at a time (38 us per CMD_VER), against which the proxy's cost is judged.
cargo bench --locked --quiet -p spinnbed-tests --bench proxy_load -- --seconds "$seconds" --scamp \
  > "$work/rust-scamp.out" 2> "$work/rust-scamp.err" \
  || { echo "benches/proxy_load.rs --scamp failed:" >&2; cat "$work/rust-scamp.err" "$work/rust-scamp.out" >&2; exit 1; }
rget() { grep "\"figure\":\"$1\"" "$work/${2:-rust}.out"; }
rproxied=$(rget scp_proxied_rust); rplain=$(rget scp_proxied_plain_rust); rdirect=$(rget scp_direct_rust)
sproxied=$(rget scp_proxied_rust rust-scamp); sdirect=$(rget scp_direct_rust rust-scamp)
for r in "$proxied" "$direct" "$rproxied" "$rplain" "$rdirect" "$sproxied" "$sdirect"; do
  [ "$(field "$r" timeouts)" = 0 ] || echo "warning: receive timeouts in $r" >&2
done
rate() { field "$1" rate; }

echo "bench-rest: sim serve REST + websocket proxy, spinnman 1!7.4.1 SpallocClient, $(nproc) CPUs," \
  "${seconds} s per figure"
echo "job: $(field "$setup" job) on board $(field "$setup" board): ready in $(field "$setup" ready_s) s," \
  "booted through the proxy (create_transceiver) in $(field "$setup" boot_s) s, $(field "$setup" version)"
cost=$(echo "$(rate "$direct") / $(rate "$proxied")" | bc -l)
rcost=$(echo "$(rate "$rdirect") / $(rate "$rproxied")" | bc -l)
cpu() { field "$1" server_cpu_us_per_rt; }
printf '%-58s %9s %9s\n' "SCP CMD_VER round trips/s, 8 outstanding" "Python" "Rust"
printf '%-58s %9.0f %9.0f\n' "  direct UDP to the board" "$(rate "$direct")" "$(rate "$rdirect")"
printf '%-58s %9.0f %9.0f\n' "  through one websocket (wss://)" "$(rate "$proxied")" "$(rate "$rproxied")"
printf '%-58s %9s %9.0f\n' "  through one websocket, plain ws://" "" "$(rate "$rplain")"
printf '%-58s %8.2fx %8.2fx\n' "  proxy cost (direct / proxied)" "$cost" "$rcost"
echo "  server CPU per round trip (Rust client): direct $(cpu "$rdirect") us (the emulated board alone)," \
  "wss:// $(cpu "$rproxied") us, ws:// $(cpu "$rplain") us"
scost=$(echo "$(rate "$sdirect") / $(rate "$sproxied")" | bc -l)
echo "The same with the board's SC&MP timing model on ([machine.scamp] defaults: a real board's pace):"
printf '%-58s %9s %9.0f\n' "  direct UDP to the board" "" "$(rate "$sdirect")"
printf '%-58s %9s %9.0f\n' "  through one websocket (wss://)" "" "$(rate "$sproxied")"
printf '%-58s %9s %8.2fx\n' "  proxy cost (direct / proxied)" "" "$scost"
printf '%-66s %10s\n' "" "per second"
printf '%-66s %10.0f\n' "REST GET job state, new connection each, plain HTTP" "$(rate "$http")"
printf '%-66s %10.0f\n' "REST GET job state, new TLS connection each (what the client does)" "$(rate "$https")"
printf '%-66s %9.2fx\n' "  TLS cost (HTTP / HTTPS)" "$(echo "$(rate "$http") / $(rate "$https")" | bc -l)"
met() { awk -v c="$1" 'BEGIN { print (c < 2) ? "met" : "NOT met" }'; }
echo "goal: the proxy costs under 2x: $(met "$cost") with the Python client, $(met "$rcost") with the Rust client" \
  "against a zero-time board, $(met "$scost") with the Rust client against a board at SC&MP's pace"
