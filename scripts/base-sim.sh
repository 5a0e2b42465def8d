#!/usr/bin/env bash
# Builds the `sim` binary of an earlier revision (for side-by-side benchmarks) in a git worktree
# under target/bench-base/, once per revision, and prints its path.
# Usage: scripts/base-sim.sh REV
set -euo pipefail
cd "$(dirname "$0")/.."
rev=$(git rev-parse --verify "${1:?usage: scripts/base-sim.sh REV}^{commit}")
dir=target/bench-base/$rev
bin=$dir/target/release/sim
if [ ! -x "$bin" ]; then
  if [ ! -d "$dir" ]; then
    mkdir -p target/bench-base
    git worktree add --detach --force "$dir" "$rev" > /dev/null 2>&1
  fi
  (cd "$dir" && cargo build --release --quiet --bin sim) >&2
fi
echo "$PWD/$bin"
