#!/usr/bin/env bash
# Create .venv (once) and install emospec with the given extras into it.
# Usage: scripts/setup.sh EXTRAS   (e.g. "all" or "test")
# Re-running reuses what is installed: it only reinstalls when pyproject.toml changed.
set -euo pipefail
extras="${1:-all}"
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${EMOSPEC_VENV:-$here/.venv}"
py="${PYTHON:-python3}"
stamp="$venv/.emospec-installed-$extras"

if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating $venv" >&2
    "$py" -m venv "$venv"
fi
vpy="$venv/bin/python"
if [ -f "$stamp" ] && [ "$stamp" -nt "$here/pyproject.toml" ] && "$vpy" -c "import emospec, torch" 2>/dev/null; then
    exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! "$vpy" -c "import torch" 2>/dev/null; then
    # Install torch first and pinned, so nothing pulls an unpinned (multi-GB CUDA) build.
    # With no NVIDIA driver present this resolves to the CPU build.
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        echo "setup: CUDA present: installing torch==2.13.0" >&2
    else
        echo "setup: no CUDA: installing the CPU build of torch==2.13.0" >&2
    fi
    "$vpy" -m pip install -q "torch==2.13.0"
fi
echo "setup: installing emospec[$extras] (editable)" >&2
"$vpy" -m pip install -q -e "$here[$extras]"
touch "$stamp"
