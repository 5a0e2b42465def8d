# Shared by the tests' venv set-up scripts (tests/*/setup-venv.sh); source it, then call
#   ensure_venv VENV REQUIREMENTS MIN_MINOR CHECK
# which creates (idempotently) the venv VENV holding exactly the pinned REQUIREMENTS, runs the
# Python snippet CHECK in it (versions, imports), and prints the venv's python path as the last
# line of stdout (quiet otherwise). Fast path: if the venv's python exists and its stamp matches
# the sha256 of the requirements and the check, nothing is installed. Otherwise the venv is
# rebuilt from scratch with `python3 -m venv` (python3 from PATH, CPython >= 3.MIN_MINOR).
ensure_venv() {
    local venv="$1" req="$2" minor="$3" check="$4"
    local py="$venv/bin/python" stamp="$venv/.spinnbed-stamp" want
    want="$( { cat "$req"; printf '%s' "$check"; } | sha256sum)"
    want="${want%% *}"
    if [[ -x "$py" && -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
        echo "$py"
        return 0
    fi
    if ! python3 -c "import sys; sys.exit(0 if sys.version_info >= (3, $minor) else 1)"; then
        echo "setup-venv.sh: python3 on PATH must be CPython >= 3.$minor (the pinned packages need it)" >&2
        return 1
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$py" -m pip install -q --no-input -r "$req"
    "$py" -c "$check"
    echo "$want" > "$stamp"
    echo "$py"
}
