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

# The browser tests (tests/test_serve_browser.py) drive Debian's chromium at /usr/bin/chromium.
# Install it where we can (root with apt-get, as .ci/run does); otherwise warn, but never fail set-up.
# EMOSPEC_NO_APT=1 skips the install attempt (the warning stays).
ensure_chromium() {
    local why=""
    if [ -x /usr/bin/chromium ]; then
        return 0
    elif [ -n "${EMOSPEC_NO_APT:-}" ]; then
        why="EMOSPEC_NO_APT is set"
    elif [ "$(id -u)" -ne 0 ]; then
        why="not root"
    elif ! command -v apt-get >/dev/null 2>&1; then
        why="no apt-get"
    else
        echo "setup: installing Debian's chromium for the browser tests (apt-get install chromium)" >&2
        if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
            why="apt-get install chromium failed"
        elif [ ! -x /usr/bin/chromium ]; then
            why="the chromium package gave no /usr/bin/chromium"
        else
            return 0
        fi
    fi
    echo "setup: WARNING: Debian's chromium is not installed (/usr/bin/chromium; $why): the 4 browser" \
        "tests will be SKIPPED. Install it with: sudo apt-get install chromium" >&2
}
case ",$extras," in
    *,test,*) ensure_chromium ;;
esac

# The test extra also brings the linters `make test` runs: a venv without them is not up to date.
tools_ok=1
case ",$extras," in
    *,test,*) [ -x "$venv/bin/ruff" ] && [ -x "$venv/bin/mypy" ] || tools_ok=0 ;;
esac
if [ -f "$stamp" ] && [ "$stamp" -nt "$here/pyproject.toml" ] && [ "$tools_ok" = 1 ] \
    && "$vpy" -c "import emospec, torch" 2>/dev/null; then
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
