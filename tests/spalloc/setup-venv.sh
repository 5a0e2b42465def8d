#!/usr/bin/env bash
# Create (idempotently) a venv at $REPO/.venv-spalloc-VERSION holding the pinned PyPI spalloc
# client 1!VERSION and its dependencies (requirements-VERSION.txt), for
# tests/tests/spalloc_v1.rs. VERSION is 7.4.1 or 7.3.0.
# Quiet on success; the last line of stdout is the venv's python path.
# Fast path: if the venv's python exists and its stamp matches the sha256 of the requirements
# file, nothing is installed. Otherwise the venv is rebuilt from scratch with `python3 -m venv`
# (python3 from PATH, CPython >= 3.11: the pinned numpy needs it).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VERSION="${1:?usage: setup-venv.sh VERSION (7.4.1 or 7.3.0)}"
REQ="$HERE/requirements-$VERSION.txt"
if [[ ! -f "$REQ" ]]; then
    echo "setup-venv.sh: no $REQ (known versions: 7.4.1, 7.3.0)" >&2
    exit 2
fi
VENV="$REPO/.venv-spalloc-$VERSION"
PY="$VENV/bin/python"
STAMP="$VENV/.spinnbed-spalloc-stamp"

want="$(sha256sum "$REQ")"
want="${want%% *}"
if [[ -x "$PY" && -f "$STAMP" && "$(<"$STAMP")" == "$want" ]]; then
    echo "$PY"
    exit 0
fi

if ! python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "setup-venv.sh: python3 on PATH must be CPython >= 3.11 (the pinned numpy needs it)" >&2
    exit 1
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip install -q --no-input -r "$REQ"
SPALLOC_WANT="1!$VERSION" "$PY" - <<'PYEOF'
import importlib.metadata as md
import os
v = md.version("spalloc")
want = os.environ["SPALLOC_WANT"]
assert v == want, "spalloc version is %s, want %s" % (v, want)
import spalloc_client  # noqa: F401 - the client imports cleanly
PYEOF
for tool in spalloc spalloc-job spalloc-machine spalloc-ps spalloc-where-is; do
    [[ -x "$VENV/bin/$tool" ]] || { echo "setup-venv.sh: $tool was not installed" >&2; exit 1; }
done
echo "$want" > "$STAMP"
echo "$PY"
