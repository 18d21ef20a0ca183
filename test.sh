#!/usr/bin/env bash
# test.sh -- the whole test suite of cprofd, from a fresh Debian 12 machine.
#
# Installs what is missing, builds and runs every test twice: a normal build (build/) and
# an ASan+UBSan build (build-asan/). Then builds the libFuzzer targets with clang
# (build-fuzz/) and runs each for a short smoke over its seed corpus (FUZZ_SECONDS, default
# 15; fuzz/run-smoke): each fuzzer counts as one test. The last line is the sum of it all,
# "N passed, N failed" (", N skipped" when something skipped). The exit status is non-zero
# when anything failed or skipped: on a supported machine every test must run.
#
# Needs root (or sudo) for apt-get and for ptrace of the test targets.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

PACKAGES=(meson ninja-build pkg-config gcc g++ libunwind-dev libelf-dev libdw-dev
          libdebuginfod-dev libprotobuf-c-dev protobuf-c-compiler libevent-dev zlib1g-dev
          elfutils debuginfod gdb libc6-dbg python3 golang-go curl strace systemd clang
          libclang-rt-14-dev libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 libiberty-dev rustc
          nodejs linux-perf chromium golang-1.19-src)

as_root() {
        if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_missing() {
        local missing=() p
        for p in "${PACKAGES[@]}"; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
                        missing+=("$p")
        done
        [ "${#missing[@]}" -eq 0 ] && return 0
        echo "Installing: ${missing[*]}"
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y --no-install-recommends "${missing[@]}"
}

PASSED=0
FAILED=0
SKIPPED=0

# Adds the results of the last `meson test` in build dir $1 to the totals.
count_results() {
        local log="$1/meson-logs/testlog.json" counts
        if [ ! -s "$log" ]; then
                echo "test.sh: no test results in $log" >&2
                FAILED=$((FAILED + 1))
                return
        fi
        counts=$(python3 - "$log" <<'EOF'
import json, sys
ok = fail = skip = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    result = json.loads(line).get("result")
    if result in ("OK", "EXPECTEDFAIL"):
        ok += 1
    elif result == "SKIP":
        skip += 1
    else:                       # FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS, INTERRUPT...
        fail += 1
print(ok, fail, skip)
EOF
)
        read -r ok fail skip <<<"$counts"
        PASSED=$((PASSED + ok))
        FAILED=$((FAILED + fail))
        SKIPPED=$((SKIPPED + skip))
}

# run_suite BUILDDIR [meson setup options...]
run_suite() {
        local dir="$1"; shift
        echo "=== $dir ==="
        rm -f "$dir/meson-logs/testlog.json"
        if [ ! -f "$dir/build.ninja" ]; then
                if ! meson setup "$dir" "$@"; then
                        echo "test.sh: meson setup $dir failed" >&2
                        FAILED=$((FAILED + 1))
                        return
                fi
        fi
        if ! meson compile -C "$dir"; then
                echo "test.sh: build in $dir failed" >&2
                FAILED=$((FAILED + 1))
                return
        fi
        # A failing test is counted from the log, not by the exit status.
        meson test -C "$dir" --print-errorlogs --timeout-multiplier "${TIMEOUT_MULTIPLIER:-1}" || true
        count_results "$dir"
}

if ! install_missing; then
        echo "test.sh: installing the build dependencies failed" >&2
        FAILED=$((FAILED + 1))
fi

# The block and mutex profiles read the scheduler's tracepoints through tracefs, which a
# machine booted without systemd's sys-kernel-tracing.mount does not have mounted.
mount_tracefs() {
        grep -qs ' - tracefs ' /proc/self/mountinfo && return 0
        [ -d /sys/kernel/tracing ] || return 0
        echo "Mounting tracefs on /sys/kernel/tracing"
        as_root mount -t tracefs nodev /sys/kernel/tracing
}
if ! mount_tracefs; then
        echo "test.sh: mounting tracefs failed" >&2
        FAILED=$((FAILED + 1))
fi

run_suite build
# UBSan only reports by default: make any report fail the test that caused it.
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
        TIMEOUT_MULTIPLIER=3 run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false

# Every fuzzer for FUZZ_SECONDS over its seeds, one test each. A crash, leak or hang fails
# it, and run-smoke prints the path of the input that caused it (under build-fuzz/artifacts/;
# new inputs go to build-fuzz/corpus/, never into fuzz/corpus/).
run_fuzzers() {
        local dir=build-fuzz t rc
        echo "=== $dir ==="
        FUZZ_BUILD_DIR="$dir" FUZZ_SECONDS="${FUZZ_SECONDS:-15}" fuzz/run-smoke || true
        for t in $(fuzz/run-smoke --list); do
                rc=$(cat "$dir/logs/$t.rc" 2>/dev/null || echo "none (not run)")
                if [ "$rc" = 0 ]; then
                        PASSED=$((PASSED + 1))
                else
                        echo "test.sh: $t failed: exit status $rc (log: $dir/logs/$t.log)" >&2
                        grep -h 'Test unit written to' "$dir/logs/$t.log" 2>/dev/null | sed 's/^/    /' >&2 || true
                        FAILED=$((FAILED + 1))
                fi
        done
}
run_fuzzers

if [ "$SKIPPED" -gt 0 ]; then
        echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
else
        echo "$PASSED passed, $FAILED failed"
fi
[ "$FAILED" -eq 0 ] && [ "$SKIPPED" -eq 0 ]
