#!/usr/bin/env bash
# Create (idempotently) the real-client venv at $REPO/.venv-clients holding the pinned PyPI
# spinnman 1!7.4.1 and rig 2.4.1 and their dependencies (requirements.txt), for tests/tests/real_clients.rs.
# Quiet on success; the last line of stdout is the venv's python path.
# Fast path: if the venv's python exists and its stamp matches the sha256 of
# requirements.txt, nothing is installed. Otherwise the venv is rebuilt from
# scratch with `python3 -m venv` (python3 from PATH, CPython >= 3.11: the pinned
# numpy/matplotlib need it).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$REPO/.venv-clients"
REQ="$HERE/requirements.txt"
PY="$VENV/bin/python"
STAMP="$VENV/.spinnbed-clients-stamp"

want="$(sha256sum "$REQ")"
want="${want%% *}"
if [[ -x "$PY" && -f "$STAMP" && "$(<"$STAMP")" == "$want" ]]; then
    echo "$PY"
    exit 0
fi

if ! python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "setup-venv.sh: python3 on PATH must be CPython >= 3.11 (the pinned numpy/matplotlib need it)" >&2
    exit 1
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip install -q --no-input -r "$REQ"
"$PY" - <<'PYEOF'
import importlib.metadata as md
v = md.version("SpiNNMan")
assert v == "1!7.4.1", "spinnman version is %s, want 1!7.4.1" % v
import spinnman.transceiver  # noqa: F401 - the client imports cleanly
v = md.version("rig")
assert v == "2.4.1", "rig version is %s, want 2.4.1" % v
PYEOF
echo "$want" > "$STAMP"
echo "$PY"
