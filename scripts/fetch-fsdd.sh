#!/usr/bin/env bash
# Gets the Free Spoken Digit Dataset (3,000 WAV clips, 8 kHz, 6 speakers x 10 digits x 50 takes;
# CC BY-SA 4.0, Zohar Jackson et al., doi:10.5281/zenodo.1342401) into data/fsdd/ (ignored by
# git: the recordings are never committed). From its public repository by default, or copied
# from a folder that already holds it. Either way the clips are checked before they are used:
# 3,000 files named {digit}_{speaker}_{take}.wav, 21,128,848 bytes, and the sha256 over (file
# name, file bytes) in name order that the repository's commit 26eb9aa gives.
#
#   scripts/fetch-fsdd.sh [--from DIR] [DEST]    (DEST defaults to data/fsdd; DIR holds
#                                                 recordings/ or the WAVs themselves)
set -euo pipefail
cd "$(dirname "$0")/.."
FROM=""
if [ "${1:-}" = "--from" ]; then
  FROM="${2:?--from needs a folder}"
  shift 2
fi
DEST="${1:-data/fsdd}"
COUNT=3000
BYTES=21128848
SHA=45a9b976ba3397a2fd5c70a9f2e43c34f442a3a6be47392ecfc41174b678f37e
PY="${PYTHON:-python3}"

# prints nothing and exits 0 when DIR holds exactly the dataset; else says what differs
check() {
  "$PY" - "$1" "$COUNT" "$BYTES" "$SHA" <<'PY'
import hashlib, os, re, sys
d, count, size, sha = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if not os.path.isdir(d):
    sys.exit(f"{d}: not a folder")
wavs = sorted(f for f in os.listdir(d) if f.endswith(".wav"))
bad = [f for f in wavs if not re.fullmatch(r"[0-9]_[a-z]+_[0-9]+\.wav", f)]
if bad:
    sys.exit(f"{d}: {len(bad)} WAV files not named {{digit}}_{{speaker}}_{{take}}.wav, e.g. {bad[0]}")
if len(wavs) != count:
    sys.exit(f"{d}: {len(wavs)} WAV files, FSDD has {count}: not the Free Spoken Digit Dataset")
total = sum(os.path.getsize(os.path.join(d, f)) for f in wavs)
if total != size:
    sys.exit(f"{d}: the WAV files hold {total} bytes, FSDD's {size}")
h = hashlib.sha256()
for f in wavs:
    h.update(f.encode())
    with open(os.path.join(d, f), "rb") as fh:
        h.update(fh.read())
if h.hexdigest() != sha:
    sys.exit(f"{d}: sha256 {h.hexdigest()} is not FSDD's {sha}")
PY
}

if [ -d "$DEST/recordings" ] && check "$DEST/recordings" 2>/dev/null; then
  echo "fetch-fsdd: $DEST/recordings already holds the checked dataset"
  exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
if [ -n "$FROM" ]; then
  SRC="$FROM"
  [ -d "$FROM/recordings" ] && SRC="$FROM/recordings"
else
  git clone --quiet --depth 50 https://github.com/Jakobovski/free-spoken-digit-dataset "$WORK/repo"
  git -C "$WORK/repo" checkout --quiet 26eb9aa
  SRC="$WORK/repo/recordings"
fi
if ! msg="$(check "$SRC" 2>&1)"; then
  echo "fetch-fsdd: refused: $msg" >&2
  exit 1
fi
mkdir -p "$DEST"
rm -rf "$DEST/recordings.tmp"
mkdir "$DEST/recordings.tmp"
cp "$SRC"/*.wav "$DEST/recordings.tmp/"
check "$DEST/recordings.tmp"
rm -rf "$DEST/recordings" && mv "$DEST/recordings.tmp" "$DEST/recordings"
echo "fetch-fsdd: 3,000 clips checked (sha256 $SHA) in $DEST/recordings"
