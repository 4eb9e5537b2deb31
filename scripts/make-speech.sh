#!/usr/bin/env bash
# Speaks the ten digits with espeak-ng (Debian package espeak-ng) in several voices, speeds and
# pitches, into DIR as {digit}_{speaker}_{take}.wav (22,050 Hz 16-bit mono, as espeak-ng writes
# them): generated speech for the tests of `ferrograd speech`, which may not ship FSDD's
# recordings. 4 speakers (voices) x 10 digits x 12 takes (4 speeds x 3 pitches) = 480 clips.
#
#   scripts/make-speech.sh DIR
set -euo pipefail
DIR="${1:?usage: make-speech.sh DIR}"
command -v espeak-ng >/dev/null || { echo "make-speech: espeak-ng is not installed (apt-get install espeak-ng)" >&2; exit 1; }
mkdir -p "$DIR"
WORDS=(zero one two three four five six seven eight nine)
# speaker name = voice
VOICES="us:en-us gb:en-gb scot:en-gb-scotland carib:en-029"
for entry in $VOICES; do
  speaker="${entry%%:*}"
  voice="${entry#*:}"
  take=0
  for speed in 120 145 170 195; do
    for pitch in 35 50 65; do
      for d in 0 1 2 3 4 5 6 7 8 9; do
        espeak-ng -v "$voice" -s "$speed" -p "$pitch" -w "$DIR/${d}_${speaker}_${take}.wav" "${WORDS[$d]}"
      done
      take=$((take + 1))
    done
  done
done
echo "make-speech: $(ls "$DIR"/*.wav | wc -l) clips in $DIR"
