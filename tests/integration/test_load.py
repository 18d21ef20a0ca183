"""tests/integration/test_load.py -- cprofd under 200 concurrent clients while a CPU
profile runs: nothing crashes, every request gets an answer (200, or 503 when a limit is
reached: nothing else, no reset, no hang), dumps and the index are still served, and the
daemon's memory stays bounded (VmHWM under RSS_MAX_MB). Not timed: the replies may be
slow on a loaded machine; the client waits up to TIMEOUT seconds for each.

The clients are bench/load.c (load-client), the same as bench/load uses.
"""

import os
import re
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402

CLIENTS = 200
SECONDS = 8
TIMEOUT = 240
RSS_MAX_MB = 200
RSS_MAX_MB_ASAN = 1024          # AddressSanitizer's shadow and quarantine count in RSS


def sanitized(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def main():
    cpu = ct.cpu_target()
    threads = ct.threads_target()
    d = ct.Daemon([cpu.pid, threads.pid])
    client = ct.env_binary("LOAD_CLIENT")

    # A CPU profile of the busy target runs through the whole load (503 where perf
    # events are refused, which is an answer too).
    profile = {}

    def run_profile():
        profile["reply"] = d.get(f"/pid/{cpu.pid}/debug/pprof/profile?seconds={SECONDS}", timeout=TIMEOUT)

    t = threading.Thread(target=run_profile)
    t.start()

    p = subprocess.run([client, "--port", str(d.port), "--clients", str(CLIENTS), "--seconds", str(SECONDS),
                        "--profiles", "2", "--profile-path", f"/pid/{threads.pid}/debug/pprof/wall?seconds=2",
                        "--daemon-pid", str(d.proc.pid), "--timeout", str(TIMEOUT)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=SECONDS + 2 * TIMEOUT + 60)
    out = p.stdout.decode(errors="replace")
    log(out.rstrip("\n"))
    check(p.returncode == 0, "load-client: no error, nothing unanswered", out + p.stderr.decode(errors="replace"))
    m = re.search(r"^replies (\d+) errors (\d+) unanswered (\d+)$", out, re.M)
    require(m, "load-client printed its totals", out)
    check(int(m.group(1)) >= CLIENTS and m.group(2) == "0" and m.group(3) == "0",
          f"at least {CLIENTS} replies, all of them 200 or 503", m.group(0))
    for name in ("index", "goroutine?debug=1", "goroutine?debug=2"):
        row = re.search(r"^" + re.escape(name) + r"\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", out, re.M)
        check(row and int(row.group(2)) > 0, f"{name}: some 200s under the load", out)

    t.join(timeout=TIMEOUT + 30)
    r = profile.get("reply")
    check(r is not None and r.status in (200, 503), "the CPU profile was answered (200, or 503 without perf)",
          r.describe() if r else "no reply")
    if r is not None and r.status == 200:
        check(ct.decode_profile(r.body).samples is not None, "the CPU profile decodes")

    require(d.alive(), "cprofd survived")
    r = d.get("/debug/pprof/goroutine?debug=1")
    check(r.status == 200 and r.text.startswith("threads profile:"), "and serves dumps afterwards",
          r.describe())
    hwm = vm_kib(d.proc.pid, "VmHWM")
    limit = RSS_MAX_MB_ASAN if sanitized(d.proc.pid) else RSS_MAX_MB
    log(f"cprofd VmHWM: {hwm / 1024:.1f} MB")
    check(hwm is not None and hwm < limit * 1024, f"cprofd's peak RSS stayed under {limit} MB", hwm)
    m = ct.metric(d.get("/metrics").text, "cprofd_requests_in_progress")
    check(m is not None and m <= 1, "no request left in progress", m)
    check(d.stop() == 0, "exits 0 on SIGTERM")


if __name__ == "__main__":
    ct.run_test(main)
