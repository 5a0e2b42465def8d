#!/usr/bin/env bash
# Create (idempotently) the reference-oracle venv at $REPO/.venv-ref holding the pinned PyPI
# spalloc-server 1!7.0.0 and its dependencies (requirements.txt). See tests/venv.sh
# (CPython >= 3.10: 3.9's set internals differ).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
source "$REPO/tests/venv.sh"
ensure_venv "$REPO/.venv-ref" "$HERE/requirements.txt" 10 '
import importlib.metadata as md
v = md.version("spalloc-server")
assert v == "1!7.0.0", "spalloc-server version is %s, want 1!7.0.0" % v
'
