#!/usr/bin/env bash
# Runs every self-test binary and prints one closing line: "N passed, N failed".
set -u
passed=0; failed=0
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    echo "$out" | grep -E '^(ok|FAIL) ' || true
    p=$(echo "$out" | grep -c '^ok ' || true); f=$(echo "$out" | grep -c '^FAIL ' || true)
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL $t exited $rc"; echo "$out" | tail -20; fi
    passed=$((passed + p)); failed=$((failed + f))
done
echo "selftest: $passed passed, $failed failed"
[ $failed -eq 0 ]
