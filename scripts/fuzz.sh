#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets, bodies in crates/fuzz-targets) with libFuzzer via
# cargo fuzz, each for SECONDS (default 600), one after another, starting from its committed
# corpus fuzz/corpus/<target>/. Limits: 2 GiB resident, 1 GiB for one allocation, 10 s for one
# input; going past any of them is a finding. A finding stops the script with the input saved
# in fuzz/artifacts/<target>/; new inputs that add coverage are merged into the corpus (which
# the ordinary tests replay: crates/fuzz-targets/tests/replay.rs). A summary line per target
# (executions, seconds, corpus size) goes to stdout and to fuzz/last-run.txt.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(safetensors checkpoint idx corpus labelled tokenizer png wav interactions)
fi
cargo +nightly fuzz build -O
bin=fuzz/target/x86_64-unknown-linux-gnu/release
touch fuzz/last-run.txt
for t in "${targets[@]}"; do
    work="$(mktemp -d)"
    mkdir -p "fuzz/artifacts/$t"
    log="fuzz/artifacts/$t/log.txt"
    rc=0
    start=$SECONDS
    "$bin/$t" "$work" "fuzz/corpus/$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
        -malloc_limit_mb=1024 -timeout=10 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" > "$log" 2>&1 || rc=$?
    elapsed=$((SECONDS - start))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    # keep what added coverage (a minimised merge of the new inputs into the committed corpus)
    "$bin/$t" -merge=1 "fuzz/corpus/$t" "$work" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -timeout=10 -max_len=65536 > /dev/null 2>&1 || true
    rm -rf "$work"
    size=$(ls "fuzz/corpus/$t" | wc -l)
    line="$t: $execs executions in $elapsed s, corpus $size inputs, exit $rc"
    echo "$line" | tee -a fuzz/last-run.txt
    if [ "$rc" -ne 0 ]; then
        echo "finding in $t: see $log and fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
