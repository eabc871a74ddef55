#!/usr/bin/env bash
# Runs every self-test binary and prints one closing line: "N passed, N failed, N skipped".
set -u
passed=0; failed=0; skipped=0
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    echo "$out" | grep -E '^(ok|FAIL|skip) ' || true
    # A failure says why: the runner's lines alone ("FAIL x (exit code 1)") do not
    if [ $rc -ne 0 ] && echo "$out" | grep -q '^FAIL '; then echo "$out" | tail -40; fi
    p=$(echo "$out" | grep -c '^ok ' || true); f=$(echo "$out" | grep -c '^FAIL ' || true)
    s=$(echo "$out" | grep -c '^skip ' || true)
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL $t exited $rc"; echo "$out" | tail -20; fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
done
echo "selftest: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
