#!/usr/bin/env bash
# Create (idempotently) the reference-oracle venv at $REPO/.venv-ref holding the
# pinned PyPI spalloc-server 1!7.0.0 and its dependencies (requirements.txt).
# Quiet on success; the last line of stdout is the venv's python path.
# Fast path: if the venv's python exists and its stamp matches the sha256 of
# requirements.txt, nothing is installed. Otherwise the venv is rebuilt from
# scratch with `python3 -m venv` (python3 from PATH, CPython >= 3.10).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$REPO/.venv-ref"
REQ="$HERE/requirements.txt"
PY="$VENV/bin/python"
STAMP="$VENV/.spinnbed-ref-stamp"

want="$(sha256sum "$REQ")"
want="${want%% *}"
if [[ -x "$PY" && -f "$STAMP" && "$(<"$STAMP")" == "$want" ]]; then
    echo "$PY"
    exit 0
fi

if ! python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    echo "setup-venv.sh: python3 on PATH must be CPython >= 3.10 (3.9's set internals differ)" >&2
    exit 1
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip install -q --no-input -r "$REQ"
"$PY" - <<'PYEOF'
import importlib.metadata as md
v = md.version("spalloc-server")
assert v == "1!7.0.0", "spalloc-server version is %s, want 1!7.0.0" % v
PYEOF
echo "$want" > "$STAMP"
echo "$PY"
