#!/bin/sh
# Fails when a program carries test code: the classes' self-tests, the test
# peer, the self-test runner or the test databases (pgtest). They are kept out by the link (sections
# garbage-collected, libomnitest not linked); this says so if that breaks.
status=0
for bin in "$@"; do
    found=$(nm --defined-only "$bin" 2>/dev/null |
        awk '$2 == "T" && $3 ~ /(_test$|^testpeer_|^selftest_|^testrec_)/ { print $3 }' | head -n 5)
    if [ -n "$found" ]; then
        echo "check-binaries: $bin carries test code: $(echo $found | tr '\n' ' ')" >&2
        status=1
    fi
done
exit $status
