#!/usr/bin/env bash
# Leave one speaker out, then adapt to that speaker: for every speaker of FSDD, a model trained
# 30 epochs without the speaker (`--split speaker:NAME`; 40 log-mel bands and a constant lr, the
# PyTorch reference's recipe) is tested on the speaker's takes 5-49,
# fine-tuned 20 epochs (Adam 3e-4, batch 10) on the speaker's takes 0-4 (5 per digit, 50 clips)
# and tested again. Prints a Markdown table, before and after, with the means; with PYTHON set
# to an interpreter that has torch and librosa, bench/speech_torch.py does the same in PyTorch
# and its columns join the table.
#
#   scripts/speech-table.sh [MODEL] [DATA]   (cnn, data/fsdd/recordings by default)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-cnn}"
DATA="${2:-data/fsdd/recordings}"
BIN="${FERROGRAD:-target/release/ferrograd}"
PY="${PYTHON:-}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
pct() { sed -n "s/^$1: \([0-9.]*\)%.*/\1/p"; }
echo "| speaker | ferrograd before | ferrograd after | PyTorch before | PyTorch after |"
echo "|---|---|---|---|---|"
sums="0 0 0 0"
n=0
for s in george jackson lucas nicolas theo yweweler; do
  "$BIN" speech train --data "$DATA" --model "$MODEL" --split "speaker:$s" --epochs 30 \
      --features logmel --scheduler none \
      --log-every 100000 --out "$WORK/$s.safetensors" > "$WORK/$s.train"
  "$BIN" speech adapt --weights "$WORK/$s.safetensors" --data "$DATA" --speaker "$s" \
      --shots 5 --epochs 20 --lr 3e-4 --batch-size 10 --log-every 100000 > "$WORK/$s.adapt"
  fb="$(pct "Before adaptation" < "$WORK/$s.adapt")"
  fa="$(pct "After adaptation" < "$WORK/$s.adapt")"
  tb=n/a ta=n/a
  if [ -n "$PY" ]; then
    line="$("$PY" bench/speech_torch.py "$DATA" "speaker:$s" "$MODEL" 30 --adapt 5 20 3e-4)"
    tb="$(echo "$line" | "$PY" -c 'import json,sys; print("%.2f%%" % (100*json.load(sys.stdin)["before"]))')"
    ta="$(echo "$line" | "$PY" -c 'import json,sys; print("%.2f%%" % (100*json.load(sys.stdin)["after"]))')"
  fi
  echo "| $s | $fb% | $fa% | $tb | $ta |"
  sums="$(echo "$sums $fb $fa ${tb%\%} ${ta%\%}" | awk '{ printf "%s %s %s %s", $1+$5, $2+$6, $3+$7, $4+$8 }')"
  n=$((n + 1))
done
echo "$sums" | awk -v n="$n" -v py="$PY" '{ if (py == "") printf "| mean | %.2f%% | %.2f%% | n/a | n/a |\n", $1/n, $2/n; else printf "| mean | %.2f%% | %.2f%% | %.2f%% | %.2f%% |\n", $1/n, $2/n, $3/n, $4/n }'
