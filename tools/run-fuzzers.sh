#!/usr/bin/env bash
# Runs the three libFuzzer targets side by side for SECONDS each and fails if
# any of them found a crash. Side by side because `make test` has a time
# budget and two cores; each target's output is kept whole in build-fuzz/ and
# its closing lines are printed in a fixed order. (Run one after another
# behind `| tail`, a crash used to leave make's exit status untouched.)
set -u
seconds=${1:-60}
cd "$(dirname "$0")/.."
mkdir -p build-fuzz/corpus build-fuzz/corpus-intake build-fuzz/corpus-delivery

build-fuzz/fuzz_record -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
    -dict=proto/fuzz_record.dict \
    build-fuzz/corpus proto/fuzz_seeds > build-fuzz/fuzz_record.log 2>&1 &
p1=$!
build-fuzz/fuzz_intake -max_total_time="$seconds" -max_len=16384 -print_final_stats=1 \
    -close_fd_mask=2 build-fuzz/corpus-intake proto/fuzz_seeds ingestd/fuzz_intake_seeds \
    > build-fuzz/fuzz_intake.log 2>&1 &
p2=$!
build-fuzz/fuzz_delivery -max_total_time="$seconds" -max_len=16384 -print_final_stats=1 \
    -close_fd_mask=2 build-fuzz/corpus-delivery proto/fuzz_seeds client/fuzz_delivery_seeds \
    > build-fuzz/fuzz_delivery.log 2>&1 &
p3=$!

failed=0
for pair in "fuzz_record:$p1" "fuzz_intake:$p2" "fuzz_delivery:$p3"; do
    name=${pair%%:*}; pid=${pair##*:}
    wait "$pid"; rc=$?
    echo "== $name (exit $rc)"
    if [ $rc -ne 0 ]; then
        failed=1
        tail -n 60 "build-fuzz/$name.log"
    else
        tail -n 8 "build-fuzz/$name.log"
    fi
done
[ $failed -eq 0 ] && echo "fuzz: 3 targets, ${seconds} s each, no crash"
exit $failed
