#!/usr/bin/env bash
# demo.sh -- see cprofd find a thread leak and a hung server: builds cprofd, starts a
# process that leaks one blocked thread every 200 ms and one that hangs on a forgotten
# unlock and a lock-order deadlock, attaches cprofd to both on 127.0.0.1:6060 (or $PORT)
# and waits for Ctrl-C. All three processes are stopped on the way out.
#
# Needs root (or sudo) for apt-get and for ptrace.
# shellcheck disable=SC2317  # functions called from traps look unreachable
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

PORT="${PORT:-6060}"
PACKAGES=(meson ninja-build pkg-config gcc g++ libunwind-dev libelf-dev libdw-dev
          libprotobuf-c-dev protobuf-c-compiler libevent-dev zlib1g-dev elfutils
          libc6-dbg curl)

as_root() {
        if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
                missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
        echo "Installing: ${missing[*]}"
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y --no-install-recommends "${missing[@]}"
fi

[ -f build/build.ninja ] || meson setup build
meson compile -C build

# threadcreate reads the scheduler's tracepoints: tracefs must be mounted (systemd does
# it at boot; a container or a minimal VM may not have).
if ! grep -qs ' - tracefs ' /proc/self/mountinfo && [ -d /sys/kernel/tracing ]; then
        as_root mount -t tracefs nodev /sys/kernel/tracing || true
fi

tmp=$(mktemp -d)
leak_pid=
hung_pid=
cprofd_pid=
# gone PID: true once PID has exited (a zombie counts: bash reaps it when it exits).
gone() {
        local state
        state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
        [ -z "$state" ] || [ "$state" = Z ] || [ "$state" = X ]
}

# Stops both processes without `wait`: bash's wait can hang when a trap interrupted one.
cleanup() {
        trap - EXIT INT TERM
        if [ -n "$cprofd_pid" ]; then
                kill "$cprofd_pid" 2>/dev/null || true
                for _ in $(seq 50); do gone "$cprofd_pid" && break; sleep 0.1; done
        fi
        for p in "$leak_pid" "$hung_pid"; do
                [ -z "$p" ] || kill -9 "$p" 2>/dev/null || true
        done
        rm -rf "$tmp"
        echo
        echo "Stopped cprofd and the demos."
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for_line FILE REGEX PID: waits until FILE has a line matching REGEX, while PID runs.
wait_for_line() {
        for _ in $(seq 100); do
                grep -qE "$2" "$1" && return 0
                kill -0 "$3" 2>/dev/null || break
                sleep 0.1
        done
        return 1
}

build/demo/cprofd-demo-leak >"$tmp/leak.out" &
leak_pid=$!
if ! wait_for_line "$tmp/leak.out" '^ready ' "$leak_pid"; then
        echo "demo.sh: the leak demo did not start" >&2
        exit 1
fi
sed -n 2p "$tmp/leak.out"

build/demo/cprofd-demo-hung >"$tmp/hung.out" &
hung_pid=$!
if ! wait_for_line "$tmp/hung.out" '^ready ' "$hung_pid"; then
        echo "demo.sh: the hung-server demo did not start" >&2
        exit 1
fi

build/daemon/cprofd --pid "$leak_pid" --pid "$hung_pid" --listen "127.0.0.1:$PORT" >"$tmp/cprofd.out" &
cprofd_pid=$!
if ! wait_for_line "$tmp/cprofd.out" '^listening on ' "$cprofd_pid"; then
        echo "demo.sh: cprofd did not start (is port $PORT in use? try PORT=6061 $0)" >&2
        exit 1
fi

url="http://127.0.0.1:$PORT"
cat <<EOF

cprofd (pid $cprofd_pid) serves the leaking process (pid $leak_pid, the default target)
and the hung server (pid $hung_pid) at $url

Try, in another terminal:
  curl $url/debug/pprof/                           # index: profiles and thread count
  curl $url/debug/pprof/goroutine?debug=1          # stacks grouped: watch "producer" grow
  curl $url/debug/pprof/goroutine?debug=2          # every thread, state and stack
  curl $url/pid/$leak_pid/debug/pprof/goroutine?debug=1   # the same, target chosen by pid
  curl $url/debug/pprof/heap?debug=1               # sampled heap: each producer's 32 KiB buffer
  go tool pprof -top -sample_index=inuse_space "$url/debug/pprof/heap?seconds=10"   # what leaked in 10 s
  curl $url/debug/pprof/threadcreate?debug=1       # who creates the leaking threads (counts from now)
  go tool pprof -top "$url/debug/pprof/threadcreate?seconds=10"   # the threads created in 10 s
  curl $url/pid/$hung_pid/debug/pprof/goroutine?debug=2   # hung: who holds the lock, the deadlock
  curl $url/pid/$hung_pid/debug/pprof/locks?debug=1       # every lock waited on, holder and waiters
  curl $url/debug/pprof/cmdline                    # the target's command line
  curl $url/metrics                                # cprofd's own metrics

Press Ctrl-C to stop.
EOF

# Ctrl-C reaches cprofd too (same process group) and it exits 0. The trap only notes
# the signal: cleaning up from a trap that interrupted `wait` can hang in bash.
interrupted=
trap 'interrupted=1' INT TERM
status=0
wait "$cprofd_pid" || status=$?
if [ -z "$interrupted" ] && [ "$status" -ne 0 ]; then
        echo "demo.sh: cprofd exited with status $status" >&2
        exit 1
fi
exit 0
