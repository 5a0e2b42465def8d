#!/usr/bin/env bash
# Create (idempotently) a venv at $REPO/.venv-spalloc-VERSION holding the pinned PyPI spalloc
# client 1!VERSION and its dependencies (requirements-VERSION.txt), for
# tests/tests/spalloc_v1.rs. VERSION is 7.4.1 or 7.3.0. See tests/venv.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VERSION="${1:?usage: setup-venv.sh VERSION (7.4.1 or 7.3.0)}"
REQ="$HERE/requirements-$VERSION.txt"
if [[ ! -f "$REQ" ]]; then
    echo "setup-venv.sh: no $REQ (known versions: 7.4.1, 7.3.0)" >&2
    exit 2
fi
source "$REPO/tests/venv.sh"
ensure_venv "$REPO/.venv-spalloc-$VERSION" "$REQ" 11 "
import importlib.metadata as md, os, sys
v = md.version('spalloc')
assert v == '1!$VERSION', 'spalloc version is %s, want 1!$VERSION' % v
import spalloc_client  # the client imports cleanly
bin = os.path.dirname(sys.executable)
for tool in ('spalloc', 'spalloc-job', 'spalloc-machine', 'spalloc-ps', 'spalloc-where-is'):
    assert os.access(os.path.join(bin, tool), os.X_OK), tool + ' was not installed'
"
