# Sourced by scripts/n8nctl and scripts/test: make .venv hold this checkout's package and dependencies.
# Shared packages are held to bridge-requirements.txt's pins (pip -c), so the suite runs what the bridge
# image runs, whatever PyPI released since. Re-installs only when either file changed (stamp in .venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${N8NCTL_PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
stamp="$VENV/.n8nctl-installed"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/bridge-requirements.txt" | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "n8nctl: preparing $VENV (first run, or pyproject.toml or bridge-requirements.txt changed)..." >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c "$ROOT/bridge-requirements.txt" -e "$ROOT[dev]"
    echo "$want" > "$stamp"
fi
