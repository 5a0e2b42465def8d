#!/usr/bin/env bash
# Create (idempotently) the real-client venv at $REPO/.venv-clients holding the pinned PyPI
# spinnman 1!7.4.1 and rig 2.4.1 and their dependencies (requirements.txt), for
# tests/tests/real_clients.rs and the REST client tests. See tests/venv.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
source "$REPO/tests/venv.sh"
ensure_venv "$REPO/.venv-clients" "$HERE/requirements.txt" 11 '
import importlib.metadata as md
v = md.version("SpiNNMan")
assert v == "1!7.4.1", "spinnman version is %s, want 1!7.4.1" % v
import spinnman.transceiver  # the client imports cleanly
v = md.version("rig")
assert v == "2.4.1", "rig version is %s, want 2.4.1" % v
'
