"""tests/integration/test_robustness.py -- cprofd under the conditions that break profilers:

  (a) the target exits in the middle of snapshots: every request still gets an answer
      (200 or 410, never a hang), the daemon lives on, later dumps answer 410, and the
      exited target can be reaped by its parent (no zombie thread left traced by cprofd);
  (b) a target whose threads appear and vanish all the time: 50 dumps in a row succeed;
  (c) a target held by another debugger (gdb): 503 naming the tracer's pid, and dumps
      work again once gdb has detached;
  (d) afterwards no thread of any target is left stopped or traced;
  (e) cprofd killed with SIGKILL in the middle of snapshots: the kernel lets the target go;
  (f) a target stopped by SIGSTOP can be dumped and stays stopped.
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402


def check_error_reply(r, status, what):
    check(r.status == status, f"{what}: {status}", r.describe())
    check(r.header("X-Go-Pprof") == "1", f"{what}: X-Go-Pprof: 1", r.describe())
    check((r.header("Content-Type") or "").startswith("text/plain"), f"{what}: text/plain",
          r.describe())
    check(r.text.count("\n") == 1 and r.text.endswith("\n"), f"{what}: a one-line reason",
          r.describe())


def test_exit_mid_snapshot(exit_after_ms):
    log(f"--- (a) target exits after {exit_after_ms} ms")
    target = ct.threads_target(["--exit-after-ms", str(exit_after_ms)])
    daemon = ct.Daemon([target.pid])
    reaper = threading.Thread(target=target.proc.wait, daemon=True)
    reaper.start()

    def exited():
        states = ct.task_states(target.pid)
        return not reaper.is_alive() or states.get(target.pid) in (None, "Z", "X")

    hammer = ct.Hammer(daemon, ["/debug/pprof/goroutine?debug=2", "/debug/pprof/goroutine?debug=1"],
                       timeout=20)
    deadline = time.monotonic() + exit_after_ms / 1000 + 20
    while not exited() and time.monotonic() < deadline:
        time.sleep(0.01)
    exited_at = time.monotonic()
    require(exited(), "the target exited on its own")
    time.sleep(1.0)
    results = hammer.stop()

    # An exited thread that is still traced stays a zombie until its tracer reaps it, and
    # the process cannot be reaped by its parent before all its threads are: cprofd must
    # not keep an exited target from being waited for.
    reaper.join(timeout=3)
    held = {tid: (state, ct.tracer_pid(f"{target.pid}/task/{tid}"))
            for tid, state in ct.task_states(target.pid).items()}
    check(not reaper.is_alive(),
          "the exited target can be reaped by its parent (cprofd holds none of its threads)",
          "threads left, (state, TracerPid): " + str(held) + f"; cprofd is {daemon.proc.pid}")

    bad = [(path, status, r) for _, path, status, r in results if status not in (200, 410)]
    check(results and not bad, f"{len(results)} requests: each answered 200 or 410",
          "\n".join(f"{s} {p}: {r.text.strip() if r else ''}" for p, s, r in bad[:20]))
    ok = sum(1 for _, _, s, _ in results if s == 200)
    gone = sum(1 for _, _, s, _ in results if s == 410)
    log(f"        ({ok} x 200, {gone} x 410)")
    malformed = []
    partial = 0
    for _, path, status, r in results:
        if status != 200:
            continue
        if path.endswith("debug=2"):
            threads, errors = ct.parse_debug2(r.text)
            partial += ct.debug2_partial(r.text) is not None
            if not threads or errors:
                malformed.append("\n".join(errors) + "\n" + r.text[:2000])
        else:
            d1 = ct.parse_debug1(r.text)
            partial += d1.partial is not None
            if d1.errors or not d1.groups:
                malformed.append("\n".join(d1.errors) + "\n" + r.text[:2000])
    check(not malformed, f"every 200 is a well-formed dump ({partial} marked partial)",
          "\n\n".join(malformed[:2]))

    require(daemon.alive(), "cprofd survives the target's exit", daemon.stderr())
    late = [(p, s) for t, p, s, _ in results if t > exited_at + 0.5 and s != 410]
    check(not late, "requests well after the exit answer 410", str(late[:10]))
    for path in ("/debug/pprof/goroutine?debug=2", "/debug/pprof/goroutine?debug=1"):
        check_error_reply(daemon.get(path), 410, f"{path} after the exit")
    r = daemon.get("/metrics")
    check(r.status == 200 and "cprofd_snapshots_total" in r.text, "/metrics still works",
          r.describe())
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM", daemon.stderr())


def test_churn():
    log("--- (b) threads appear and vanish")
    target = ct.churn_target()
    daemon = ct.Daemon([target.pid])
    totals = set()
    failures = []
    for i in range(50):
        if i % 2 == 0:
            r, d1 = ct.fetch_debug1(daemon)
            if r.status != 200 or d1.errors or d1.total != sum(g.count for g in d1.groups):
                failures.append(r.describe() + "\n" + "\n".join(d1.errors if d1 else []))
                continue
            totals.add(d1.total)
        else:
            r, threads, errors = ct.fetch_debug2(daemon)
            if r.status != 200 or errors:
                failures.append(r.describe() + "\n" + "\n".join(errors or []))
                continue
            totals.add(len(threads))
            long_lived = [t for t in threads if t.name.startswith("churn-long-")]
            if len(long_lived) != 3 or not all("long_lived_sleep" in t.functions()
                                               for t in long_lived):
                failures.append("long-lived threads missing or without their stack:\n"
                                + "\n\n".join(t.describe() for t in long_lived))
    check(not failures, "50 dumps of the churning target: all 200 and well-formed",
          "\n\n".join(failures[:3]))
    check(len(totals) > 1, f"the thread totals vary between dumps {sorted(totals)}")
    check(daemon.alive(), "cprofd still runs", daemon.stderr())
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM", daemon.stderr())
    check(target.alive(), "the churning target still runs")
    ct.check_not_stopped(target.pid, "(d) churn target after cprofd")
    target.kill()


def hold_with_gdb(pid, attempts=10):
    """gdb attached to PID and waiting on a FIFO: (gdb Popen, fifo path)."""
    for attempt in range(attempts):
        fifo = ct.tmp_path(f"gdb-release-{attempt}")
        os.mkfifo(fifo)
        gdb = ct.spawn(["gdb", "-p", str(pid), "-batch", "-nx",
                        "-ex", f"shell read line < {fifo}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL, kill_signal=signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and gdb.poll() is None:
            # gdb attaches thread by thread, then all of them are in tracing stop.
            if ct.tracer_pid(pid) == gdb.pid and set(ct.task_states(pid).values()) == {"t"}:
                return gdb, fifo
            time.sleep(0.05)
        # gdb lost the race with a snapshot (or failed): let it go and try again.
        ct.release_gdb(gdb, fifo)
    raise ct.TestFailure(f"gdb could not attach to {pid}")


def test_gdb_holds():
    log("--- (c) another debugger holds the target")
    target = ct.threads_target()
    daemon = ct.Daemon([target.pid])
    r = daemon.get("/debug/pprof/goroutine?debug=1")
    check(r.status == 200, "a dump before gdb attaches: 200", r.describe())

    gdb, fifo = hold_with_gdb(target.pid)
    log(f"        gdb {gdb.pid} holds {target.pid}")
    for path in ("/debug/pprof/goroutine?debug=2", "/debug/pprof/goroutine?debug=1"):
        start = time.monotonic()
        r = daemon.get(path)
        check(time.monotonic() - start < 10, f"{path} while gdb holds: answered at once")
        check_error_reply(r, 503, f"{path} while gdb holds")
        check(str(gdb.pid) in r.text, f"{path}: the reason names the tracer pid {gdb.pid}",
              r.text)
    check(daemon.alive(), "cprofd still runs while gdb holds the target", daemon.stderr())

    ct.release_gdb(gdb, fifo)
    deadline = time.monotonic() + 10
    while ct.tracer_pid(target.pid) != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    r, threads, errors = ct.fetch_debug2(daemon)
    check(r.status == 200 and threads is not None and len(threads) == 11,
          "after gdb detached: debug=2 answers 200 with 11 threads", r.describe())
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM", daemon.stderr())
    ct.check_not_stopped(target.pid, "(d) gdb-held target after gdb and cprofd")
    target.kill()


def test_sigkill_mid_snapshot(rounds=5):
    log("--- (e) cprofd killed with SIGKILL in the middle of snapshots")
    target = ct.threads_target()
    rng = random.Random(1)
    for i in range(rounds):
        daemon = ct.Daemon([target.pid])
        hammer = ct.Hammer(daemon, ["/debug/pprof/goroutine?debug=2"], clients=2, timeout=20)
        time.sleep(rng.uniform(0.05, 0.4))
        daemon.proc.kill()
        daemon.proc.wait()
        hammer.stop()
        check(ct.check_not_stopped(target.pid, f"round {i + 1}: after SIGKILL"),
              f"round {i + 1}: the target runs on")
    check(target.alive(), "the target survived every round")
    target.kill()


def test_job_control_stop():
    log("--- (f) a target stopped by SIGSTOP")
    target = ct.threads_target()
    daemon = ct.Daemon([target.pid])
    os.kill(target.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while set(ct.task_states(target.pid).values()) != {"T"} and time.monotonic() < deadline:
        time.sleep(0.02)
    require(set(ct.task_states(target.pid).values()) == {"T"}, "every thread is stopped (T)")
    r, threads, errors = ct.fetch_debug2(daemon)
    check(r.status == 200 and threads and len(threads) == 11,
          "the stopped target is dumped: 200 with 11 threads", r.describe())
    if threads:
        check(all(t.state.startswith("T") for t in threads), "its threads show state T",
              "\n".join(t.lines[0] for t in threads))
    time.sleep(0.2)
    states = ct.task_states(target.pid)
    check(set(states.values()) == {"T"}, "the target is still stopped after the dump", states)
    os.kill(target.pid, signal.SIGCONT)
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM", daemon.stderr())
    ct.check_not_stopped(target.pid, "(d) after SIGCONT")
    target.kill()


def main():
    for ms in (400, 900, 1500):
        test_exit_mid_snapshot(ms)
    test_churn()
    test_gdb_holds()
    test_sigkill_mid_snapshot()
    test_job_control_stop()


if __name__ == "__main__":
    ct.run_test(main)
