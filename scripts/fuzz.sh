#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed number of inputs, from
# the seeds in fuzz/corpus/<target>/. What a run adds to the corpus goes to a
# temporary directory, so the seeds stay as committed.
#
#   FUZZ_RUNS=200000       inputs per parser target
#   FUZZ_UNPACK_RUNS=30000 inputs for layer_unpack (each one unpacks to disk)
#   FUZZ_MAX_TIME=120      seconds per target at most, whatever the count
#   FUZZ_TARGETS="..."     a subset, by name
#   CARGO="cargo +stable"  the cargo to use (make passes its own)
#
# Exits non-zero when a target crashes (a panic, a failed check, or one input
# taking longer than 10 s); the input is left under fuzz/artifacts/<target>/.
set -uo pipefail
cd "$(dirname "$0")/.."

runs=${FUZZ_RUNS:-200000}
unpack_runs=${FUZZ_UNPACK_RUNS:-30000}
max_time=${FUZZ_MAX_TIME:-120}
targets=${FUZZ_TARGETS:-config_json image_reference port_spec manifest layer_unpack}
read -ra cargo <<<"${CARGO:-cargo}"

if ! "${cargo[@]}" fuzz --version >/dev/null 2>&1; then
    "${cargo[@]}" install cargo-fuzz --locked || exit 1
fi

# Stable toolchains only: the sanitizers need nightly's -Zsanitizer, and with
# `--sanitizer none` cargo-fuzz passes only stable flags (libFuzzer's coverage
# comes from -Cpasses=sancov-module), so no RUSTC_BOOTSTRAP is needed. Safe
# Rust needs no address sanitizer to turn a bug into a crash; -a (debug
# assertions) makes integer overflow one too.
fuzz_flags=(--sanitizer none -a)
"${cargo[@]}" fuzz build "${fuzz_flags[@]}" || exit 1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
summary=()
failed=0
for t in $targets; do
    n=$runs
    [ "$t" = layer_unpack ] && n=$unpack_runs
    mkdir -p "$work/$t-grown" "$work/tmp-$t"
    log="$work/$t.log"
    start=$(date +%s)
    # layer_unpack makes its sandbox under TMPDIR: this run's own, removed
    # with the rest.
    TMPDIR="$work/tmp-$t" "${cargo[@]}" fuzz run "${fuzz_flags[@]}" "$t" "$work/$t-grown" "fuzz/corpus/$t" -- \
        -runs="$n" -max_total_time="$max_time" -timeout=10 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    corpus=$(grep -oE 'corp: [0-9]+/[0-9a-zA-Z]+' "$log" | tail -1 | cut -d' ' -f2)
    crashes=0
    artifact=""
    if [ "$rc" -ne 0 ]; then
        crashes=1
        failed=1
        artifact=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
        tail -40 "$log"
    fi
    echo "fuzz: $t: ${done_runs:-?} runs in ${secs}s, corpus ${corpus:-?}, crashes $crashes${artifact:+ ($artifact)}"
    summary+=("$(printf '%-16s %10s %6ss  %-14s %s %s' "$t" "${done_runs:-?}" "$secs" "${corpus:-?}" "$crashes" "$artifact")")
done

echo
printf '%-16s %10s %7s  %-14s %s\n' target iterations time corpus crashes
printf '%s\n' "${summary[@]}"
exit $failed
