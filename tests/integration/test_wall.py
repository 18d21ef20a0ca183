"""tests/integration/test_wall.py -- the wall-clock profile: every thread, running or
blocked, sampled through snapshots. A thread that spends half its time in a CPU loop and
half asleep shows both halves; blocked threads show where they wait; samples carry the
thread and its state; go tool pprof reads it all.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402


def main():
    target = ct.cpu_target(["--busy", "1", "--duty", "1"])
    daemon = ct.Daemon([target.pid])
    log(f"cpu target {target.pid} (one busy thread, one 50/50 duty thread), cprofd on {daemon.port}")

    r = daemon.get("/debug/pprof/wall?seconds=4&hz=20", timeout=60)
    require(r.status == 200, "wall?seconds=4&hz=20: 200", r.describe())
    check(r.header("Content-Disposition") == 'attachment; filename="wall"',
          "wall: attachment; filename=\"wall\"", r.header("Content-Disposition"))
    path = ct.save(r, "wall.pb.gz")
    rc, raw = ct.pprof("-raw", path)
    require(rc == 0, "go tool pprof reads the wall profile", raw)
    check("samples/count wall/nanoseconds" in raw.replace("\n", " ") or
          ("samples/count" in raw and "wall/nanoseconds" in raw),
          "sample types samples/count and wall/nanoseconds", raw[:600])
    check("Period: 50000000" in raw, "period 1e9/hz = 50 ms", raw[:600])

    samples = ct.stacks(raw)
    duty = [(v[0], names, labels) for v, names, labels in samples if labels.get("thread_name") == "duty"]
    spin = sum(n for n, names, _ in duty if "duty_spin" in names)
    sleep = sum(n for n, names, _ in duty if "duty_sleep" in names)
    total = spin + sleep
    log(f"duty thread: {spin} samples in duty_spin, {sleep} in duty_sleep")
    check(total >= 30, f"the duty thread was sampled ({total} samples)", raw[:3000])
    check(total and 0.25 <= spin / total <= 0.75,
          f"the duty thread splits between its CPU loop and its sleep ({spin}:{sleep})")
    running = sum(n for n, names, labels in duty if "duty_spin" in names and labels.get("state", "").startswith("R"))
    asleep = sum(n for n, names, labels in duty if "duty_sleep" in names and labels.get("state", "").startswith("S"))
    check(running >= spin * 0.8 and asleep >= sleep * 0.8,
          f"the state label says running in the loop, sleeping in the sleep ({running}/{spin}, {asleep}/{sleep})")

    busy = sum(v[0] for v, names, labels in samples if labels.get("thread_name") == "busy-1")
    main_thread = sum(v[0] for v, names, labels in samples if "pause" in " ".join(names) or
                      "__libc_pause" in names)
    check(busy >= 30, f"the busy thread is in every snapshot ({busy})")
    check(main_thread >= 30, f"the main thread, blocked in pause(), is there too ({main_thread})")
    rc, top = ct.pprof("-top", "-tagfocus", "state=sleeping", path)
    check(rc == 0 and "duty_sleep" in top and "hot_leaf" not in top,
          "-tagfocus state=sleeping keeps the sleepers only", top[:2000])

    r = daemon.get("/debug/pprof/wall?hz=101")
    check(r.status == 400 and r.header("X-Go-Pprof") == "1", "wall?hz=101: 400", r.describe())
    r = daemon.get("/debug/pprof/")
    check("wall?debug=1" in r.text, "the index lists wall", r.text[:500])
    daemon.stop()
    ct.check_not_stopped(target.pid, "after the wall profile")


if __name__ == "__main__":
    ct.run_test(main)
