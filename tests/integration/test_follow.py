"""tests/integration/test_follow.py -- the daemon's clock: periodic snapshots, the history
they build, and processes followed by what they are rather than by pid.

  (a) thread growth: the leak demo under --interval 1s; threadgrowth?debug=1 puts the
      producer stack first with its growth and the window line, threadgrowth (debug=0) is
      a pprof profile whose largest sample is that stack, the index says "+N in …";
  (b) wait times: on the threads target, the blocked threads' debug=2 headers carry
      ", N seconds]" that grows with the history; the spinning thread's wait restarts
      whenever its stack changes (its pc moves inside the loop);
  (c) --exe: cprofd starts with nothing to follow and says so, finds two processes as they
      start, answers 410 for the one killed and marks it exited in the targets table while
      the other goes on, and finds a third started after that;
  (d) --comm: a process found by its (15-byte, truncated) comm;
  (e) --cgroup: a process moved into a fresh cgroup v2 directory is served, one outside it
      is not (skipped when no cgroup v2 directory can be made).

The followed targets run from copies of the test binaries under unique names in the test's
temporary directory, so that no other process on the machine (another test run, another
build's targets) matches --exe or --comm. No thread is ever left stopped.
"""

import os
import re
import secrets
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402

INTERVAL = "1s"
# A new process is found by the next tick (≤ 1 s) or, when that one is still busy, the
# one after: ~3 s, with a second to spare for a loaded machine. The time it took is logged.
FIND_WITHIN = 4.0

GROWTH_HEADER = re.compile(r"^threadgrowth profile: total (-?\d+)$")
GROWTH_WINDOW = re.compile(r"^# window: (\S+), threads (\d+) -> (\d+) \(([+-]\d+)\)$")
WAIT = re.compile(r", (\d+) (seconds|minutes)$")


def go_duration_seconds(s):
    """Go's time.Duration.String() back to seconds: "1.5s", "5m0s", "300ms", "0s"."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        return None
    return sum(float(n) * units[u] for n, u in parts)


def copy_binary(env_name, name):
    """Copies $ENV_NAME to NAME in the temporary directory; returns the name of a new
    environment variable that holds the copy's path (what ct.Target starts)."""
    path = ct.tmp_path(name)
    shutil.copy2(ct.env_binary(env_name), path)
    var = "FOLLOW_" + re.sub(r"\W", "_", name).upper()
    os.environ[var] = path
    return var


def wait_until(what, fn, deadline):
    """Calls FN until it returns something true or DEADLINE seconds pass; returns (last
    value, seconds it took)."""
    t0 = time.monotonic()
    while True:
        v = fn()
        if v or time.monotonic() - t0 > deadline:
            took = time.monotonic() - t0
            log(f"        {what}: {'after' if v else 'not within'} {took:.2f} s")
            return v, took
        time.sleep(0.1)


def wait_seconds(thread):
    """The wait a debug=2 header shows, in seconds (minutes × 60), or None."""
    m = WAIT.search(thread.bracket)
    if not m:
        return None
    return int(m.group(1)) * (60 if m.group(2) == "minutes" else 1)


# --- (a) thread growth ---------------------------------------------------------------------

def parse_growth_text(text):
    """(total, window match, Debug1 of the records) of threadgrowth?debug=1, or a reason."""
    lines = text.split("\n")
    if len(lines) < 2:
        return None, None, None
    h = GROWTH_HEADER.match(lines[0])
    w = GROWTH_WINDOW.match(lines[1])
    if not h or not w:
        return None, None, None
    # The records are debug=1's: parse them as one, under debug=1's header.
    d1 = ct.parse_debug1("threads profile: total 0\n" + "\n".join(lines[2:]))
    return int(h.group(1)), w, d1


def is_producer(functions):
    return "send_result" in functions and "producer" in functions


def check_growth():
    log("--- (a) thread growth: the leak demo under --interval 1s")
    demo = ct.leak_demo(["--interval-ms", "100"])
    daemon = ct.Daemon([demo.pid], ["--interval", INTERVAL])
    started = time.monotonic()
    time.sleep(3.5)

    r = daemon.get("/debug/pprof/threadgrowth?debug=1")
    require(r.status == 200, "threadgrowth?debug=1: 200", r.describe())
    check(r.header("Content-Type") == "text/plain; charset=utf-8",
          "threadgrowth?debug=1 is text/plain", r.header("Content-Type"))
    total, window, d1 = parse_growth_text(r.text)
    require(total is not None, "threadgrowth?debug=1 starts with 'threadgrowth profile: total N' "
            "and '# window: DURATION, threads A -> B (+D)'", r.text[:1000])
    check(not d1.errors, "threadgrowth?debug=1: every record and frame line is well-formed",
          "\n".join(d1.errors) + "\n\n" + r.text[:3000])
    covered = go_duration_seconds(window.group(1))
    before, after, delta = int(window.group(2)), int(window.group(3)), int(window.group(4))
    elapsed = time.monotonic() - started
    check(covered is not None and 1.0 <= covered <= elapsed,
          f"the window ({window.group(1)}) spans at least two ticks and at most the "
          f"daemon's life ({elapsed:.1f} s)", window.group(0))
    check(delta == after - before and delta >= 5,
          f"the window line's change is threads after - before, and ≥ 5 ({before} -> {after}, "
          f"{delta:+d})", window.group(0))
    require(d1.groups, "threadgrowth?debug=1 has records", r.text)
    first = d1.groups[0]
    check(is_producer(first.functions()),
          "the first record is the producer stack (send_result <- producer)",
          "\n".join(first.lines))
    check(first.count >= 5, f"the producer record's delta is ≥ 5 ({first.count})",
          "\n".join(first.lines))
    check(any(re.search(r"write", f or "") for f in first.functions()[:3]),
          "the producer record blocks in write()", "\n".join(first.lines))
    counts = [g.count for g in d1.groups]
    check(counts == sorted(counts, reverse=True) and all(c > 0 for c in counts),
          f"records are positive deltas, largest first {counts}")
    check(total == sum(counts), f"the header's total is the sum of the deltas ({total} = "
          f"{sum(counts)})")
    check(not any(g.threads for g in d1.groups),
          "growth records carry no '# threads:' line (counts are deltas, not threads)",
          r.text[:2000])
    check(all(f.function and f.file and f.lineno for f in first.frames
              if f.function not in ("_start", "clone3", "__clone3")),
          "the producer record's frames have func+0xoff and file:line", "\n".join(first.lines))

    r = daemon.get("/debug/pprof/threadgrowth")
    require(r.status == 200, "threadgrowth (debug=0): 200", r.describe())
    check(r.header("Content-Disposition") == 'attachment; filename="threadgrowth"',
          "threadgrowth: attachment; filename=\"threadgrowth\"", r.header("Content-Disposition"))
    try:
        prof = ct.decode_profile(r.body)
    except (ct.ProtoError, OSError, EOFError) as e:
        prof = None
        check(False, "threadgrowth decodes as profile.proto", str(e))
    if prof:
        check(prof.sample_types == [("threads", "count")]
              and prof.period_type == ("threads", "count") and prof.period == 1,
              "sample type and period type threads/count, period 1",
              f"{prof.sample_types} {prof.period_type} {prof.period}")
        check(prof.duration_nanos >= 1e9, f"duration_nanos is the window ({prof.duration_nanos})")
        check(any(c.startswith("window: ") for c in prof.comments),
              "a comment carries the window line", prof.comments)
    path = ct.save(r, "threadgrowth.pb.gz")
    rc, raw = ct.pprof("-raw", path)
    require(rc == 0, "go tool pprof -raw reads threadgrowth", raw[:3000])
    samples = ct.stacks(raw)
    require(samples, "pprof -raw shows samples", raw[:3000])
    values, names, _ = max(samples, key=lambda s: s[0][0])
    check(is_producer(names) and values[0] >= 5,
          f"pprof: the largest sample ({values[0]}) is the producer stack",
          " <- ".join(names) + "\n\n" + raw[:3000])

    r = daemon.get("/debug/pprof/")
    require(r.status == 200, "the index: 200", r.describe())
    m = re.search(rf"pid {demo.pid} \([^)]*\): (\d+) threads, \+(\d+) in (\S+)<br>", r.text)
    check(m and int(m.group(2)) >= 5, "the index shows 'N threads, +D in WINDOW' with D ≥ 5",
          m.group(0) if m else r.text[:1200])
    m = re.search(r"<tr><td>(\d+)</td><td><a href='threadgrowth\?debug=1'>", r.text)
    check(m and int(m.group(1)) >= 1, "the index counts at least one growing group",
          m.group(0) if m else r.text[:1200])
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")
    ct.check_not_stopped(demo.pid, "leak demo")
    demo.kill()


# --- (b) wait times --------------------------------------------------------------------------

BLOCKED = ("t-sleep", "t-cond", "t-read")


def check_wait_times():
    log("--- (b) wait times: the threads target under --interval 1s")
    target = ct.threads_target()
    daemon = ct.Daemon([target.pid], ["--interval", INTERVAL])
    started = time.monotonic()
    time.sleep(3.5)

    # Ticks at 1, 2, 3 s and this request: the blocked threads have been seen the same way
    # for ≥ 2 s. On a loaded machine a tick may come late: ask again for a while.
    deadline = started + 10
    while True:
        r, threads, errors = ct.fetch_debug2(daemon)
        elapsed = time.monotonic() - started
        require(r.status == 200 and not errors, "debug=2: 200 and well-formed",
                r.describe() + "\n" + "\n".join(errors or []))
        named = ct.by_name(threads)
        waits = {name: wait_seconds(named[name][0]) if name in named else None for name in BLOCKED}
        if all(w is not None and w >= 2 for w in waits.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    log(f"        after {elapsed:.1f} s: " + ", ".join(f"{n} {w}" for n, w in waits.items()))
    for name in BLOCKED:
        t = named.get(name, [None])[0]
        w = waits[name]
        check(t is not None and w is not None and w >= 2,
              f"{name}: the header ends in ', N seconds]' with N ≥ 2",
              t.lines[0] if t else r.text[:2000])
        check(t is not None and (w or 0) <= elapsed,
              f"{name}: the wait ({w} s) is no longer than cprofd has watched ({elapsed:.1f} s)",
              t.lines[0] if t else None)
        check(t is not None and t.state.startswith("S"), f"{name}: still S (sleeping)",
              t.lines[0] if t else None)

    # t-spin runs a three-instruction loop: each snapshot catches it at one pc or another,
    # and a wait counts only while the stack (pcs included) stays the same. So all that
    # holds every time is: it is running, and it was not seen the same way for longer
    # than the history is old (no longer than the blocked threads).
    spin = named.get("t-spin", [None])[0]
    require(spin is not None, "debug=2 has t-spin", r.text[:2000])
    check(spin.state.startswith("R"), f"t-spin: state R ({spin.lines[0]})")
    w = wait_seconds(spin) or 0
    longest = max((x for x in waits.values() if x is not None), default=0)
    check(w <= longest, f"t-spin: its wait ({w} s) is no longer than the blocked threads' "
          f"({longest} s)", spin.lines[0])
    log(f"        t-spin: {spin.lines[0]}")

    # Periodic snapshots stop a blocked thread once, then reuse its stack for as long as it
    # does not run; the growth over those snapshots and our full dumps is nil for them.
    m = daemon.get("/metrics").text
    unchanged = ct.metric(m, "cprofd_threads_unchanged_total") or 0
    stopped = ct.metric(m, "cprofd_threads_captured_total") or 0
    log(f"        threads stopped {stopped:.0f}, not stopped (unchanged) {unchanged:.0f}")
    check(unchanged >= len(BLOCKED), f"periodic snapshots did not stop the blocked threads again "
          f"(cprofd_threads_unchanged_total {unchanged:.0f} ≥ {len(BLOCKED)})", m[:3000])
    r = daemon.get("/debug/pprof/threadgrowth?debug=1")
    total, window, d1 = parse_growth_text(r.text) if r.status == 200 else (None, None, None)
    grown = [g for g in (d1.groups if d1 else []) if "spin_leaf" not in g.functions()]
    check(d1 and not grown, "reused stacks are the stacks a full stop shows: no blocked thread's "
          "stack grew across periodic snapshots and dumps", r.text)
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")

    # Without periodic snapshots the history holds only our dumps, so which one came
    # before is known: whenever t-spin's leaf pc differs from the previous dump's, its
    # wait must have restarted (none printed), while the blocked threads' waits go on.
    daemon = ct.Daemon([target.pid], ["--interval", "0"])
    r = daemon.get("/debug/pprof/threadgrowth?debug=1")
    check(r.status == 503 and r.header("X-Go-Pprof") == "1" and "no snapshot" in r.text,
          "--interval 0, before any dump: threadgrowth?debug=1 answers 503 'no snapshot … yet'",
          r.describe())
    prev = None
    changes = violations = 0
    detail = []
    first_dump = None
    sleep_waits = []
    for _ in range(14):
        r, threads, errors = ct.fetch_debug2(daemon)
        if first_dump is None:
            first_dump = time.monotonic()
        if r.status != 200 or errors:
            check(False, "debug=2 (--interval 0): 200 and well-formed", r.describe())
            break
        named = ct.by_name(threads)
        spin = named["t-spin"][0]
        leaf = spin.lines[1:3]
        sleep_waits.append(wait_seconds(named["t-sleep"][0]) or 0)
        if prev is not None and leaf != prev:
            changes += 1
            if wait_seconds(spin) is not None:
                violations += 1
            detail.append(f"{spin.lines[0]} {leaf[-1].strip()} (was {prev[-1].strip()})")
        prev = leaf
        time.sleep(0.3)
    watched = time.monotonic() - first_dump
    log(f"        t-spin's leaf changed {changes} time(s) in 14 dumps")
    check(violations == 0, "t-spin: a dump that finds it at another pc shows no wait",
          "\n".join(detail))
    check(sleep_waits == sorted(sleep_waits) and sleep_waits[-1] >= int(watched) - 1,
          f"t-sleep: its wait grows with our dumps alone ({sleep_waits}, {watched:.1f} s)")
    # A steady target: the thread count did not move, and no blocked thread's stack grew.
    # t-spin's may: the group of the pc it is at now has one more thread than in the base
    # snapshot, where it was at another pc (shrunk groups are not listed).
    r = daemon.get("/debug/pprof/threadgrowth?debug=1")
    total, window, d1 = parse_growth_text(r.text) if r.status == 200 else (None, None, None)
    check(r.status == 200 and window and window.group(2) == window.group(3) == "11"
          and window.group(4) == "+0",
          "threadgrowth of a steady target: '# window: …, threads 11 -> 11 (+0)'", r.describe())
    grown = [g for g in (d1.groups if d1 else []) if "spin_leaf" not in g.functions()]
    check(d1 and not d1.errors and not grown and total == sum(g.count for g in d1.groups) <= 1,
          f"threadgrowth of a steady target: no blocked thread's stack grew (total {total}; "
          f"only t-spin's moving pc may show as +1)", r.text)
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")
    ct.check_not_stopped(target.pid, "threads target")
    target.kill()


# --- (c) --exe ---------------------------------------------------------------------------------

def check_error(r, status, reason, what):
    check(r.status == status and r.header("X-Go-Pprof") == "1"
          and (r.header("Content-Type") or "").startswith("text/plain")
          and r.text == reason + "\n",
          f"{what}: {status} '{reason}'", r.describe())


def debug1_total(daemon, pid):
    r = daemon.get(f"/pid/{pid}/debug/pprof/goroutine?debug=1")
    m = ct.DEBUG1_HEADER.match(r.text.split("\n", 1)[0]) if r.status == 200 else None
    return r, int(m.group(1)) if m else None


def targets_table(text):
    """{pid: row html} of an index page's targets table."""
    rows = {}
    for row in re.findall(r"<tr><td>[^<]*</td><td><a href='/pid/\d+/debug/pprof/'>.*?</tr>", text):
        m = re.search(r"href='/pid/(\d+)/", row)
        rows[int(m.group(1))] = row
    return rows


def check_follow_exe():
    log("--- (c) --exe: following processes that start and exit")
    var = copy_binary("THREADS_TARGET", f"cprofd-follow-{secrets.token_hex(4)}")
    exe = os.environ[var]
    daemon = ct.Daemon([], ["--exe", exe, "--interval", INTERVAL])
    log(f"        cprofd --exe {exe} on port {daemon.port}")

    r = daemon.get("/debug/pprof/")
    check_error(r, 404, "no target to profile", "nothing to follow yet: the index")
    r = daemon.get("/debug/pprof/goroutine?debug=1")
    check_error(r, 404, "no target to profile", "nothing to follow yet: goroutine?debug=1")
    r = daemon.get("/metrics")
    check(r.status == 200 and ct.metric(r.text, "cprofd_snapshots_total") == 0,
          "nothing to follow yet: /metrics answers, no snapshot taken", r.describe())
    time.sleep(1.5)                     # a tick with nothing to find
    check(daemon.alive(), "cprofd keeps running with nothing to follow", daemon.stderr())

    a = ct.Target(var)
    b = ct.Target(var)
    log(f"        started {a.pid} and {b.pid}")

    def both():
        return all(debug1_total(daemon, t.pid)[1] == 11 for t in (a, b))

    found, took = wait_until("both served", both, FIND_WITHIN)
    check(found, f"both processes are served within {FIND_WITHIN:.0f} s ({took:.1f} s): "
          f"/pid/PID/debug/pprof/goroutine?debug=1 is 200 with 'total 11'",
          "\n".join(debug1_total(daemon, t.pid)[0].describe() for t in (a, b)))

    a.kill()                            # SIGKILL, reaped
    log(f"        killed {a.pid}")

    def gone():
        return daemon.get(f"/pid/{a.pid}/debug/pprof/goroutine?debug=1").status == 410

    ok, took = wait_until("410 for the killed one", gone, 3.0)
    r = daemon.get(f"/pid/{a.pid}/debug/pprof/goroutine?debug=1")
    check_error(r, 410, f"target pid {a.pid} has exited", "the killed process")
    r = daemon.get(f"/pid/{a.pid}/debug/pprof/")
    check(r.status == 410, "the killed process's index: 410", r.describe())
    r, total = debug1_total(daemon, b.pid)
    check(total == 11, "the other process keeps answering 200 'total 11'", r.describe())

    def table_marks_exited():
        r = daemon.get(f"/pid/{b.pid}/debug/pprof/")
        rows = targets_table(r.text) if r.status == 200 else {}
        return rows if a.pid in rows and "(exited)" in rows[a.pid] else None

    rows, _ = wait_until("the targets table marks it exited", table_marks_exited, 3.0)
    r = daemon.get(f"/pid/{b.pid}/debug/pprof/")
    rows = targets_table(r.text)
    check(rows and a.pid in rows and "(exited)" in rows[a.pid],
          "the targets table marks the killed process '(exited)'", r.text[-1500:])
    check(b.pid in rows and "(exited)" not in rows[b.pid] and "11 threads" in rows[b.pid],
          "the targets table shows the other one alive with 11 threads", r.text[-1500:])
    r = daemon.get("/metrics")
    check(ct.metric(r.text, f'cprofd_target_up{{pid="{a.pid}"}}') == 0
          and ct.metric(r.text, f'cprofd_target_up{{pid="{b.pid}"}}') == 1,
          "/metrics: cprofd_target_up 0 for the killed one, 1 for the other", r.text[:3000])

    # A process that starts later (the same program restarted) is found too, and the
    # exited one stays listed meanwhile.
    c = ct.Target(var)
    found, took = wait_until("the third served", lambda: debug1_total(daemon, c.pid)[1] == 11,
                             FIND_WITHIN)
    check(found, f"a process started later is served within {FIND_WITHIN:.0f} s ({took:.1f} s)")
    r = daemon.get(f"/pid/{c.pid}/debug/pprof/")
    rows = targets_table(r.text)
    check(set(rows) == {a.pid, b.pid, c.pid} and "(exited)" in rows.get(a.pid, ""),
          "the targets table lists all three, the killed one still as exited", r.text[-1500:])
    r = daemon.get(f"/pid/{a.pid}/debug/pprof/goroutine?debug=1")
    check(r.status == 410, "the killed process still answers 410, not 404", r.describe())
    # The default target is a live one: unprefixed URLs survive a restart.
    r = daemon.get("/debug/pprof/")
    check(r.status == 200 and f"pid {b.pid} (" in r.text,
          f"unprefixed /debug/pprof/ serves a live target (pid {b.pid}), not the killed one",
          r.describe())
    r = daemon.get("/debug/pprof/goroutine?debug=1")
    check(r.status == 200 and "threads profile: total 11" in r.text,
          "unprefixed goroutine?debug=1 answers from the live target", r.describe())

    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")
    for t in (b, c):
        ct.check_not_stopped(t.pid, f"followed process {t.pid}")
        t.kill()


# --- (d) --comm -----------------------------------------------------------------------------

def check_follow_comm():
    log("--- (d) --comm: the churn target by its comm")
    # A name longer than 15 bytes, unique in its first 15: the kernel keeps those as comm.
    name = f"cpc-{secrets.token_hex(4)}-churn-target"
    comm = name[:15]
    var = copy_binary("CHURN_TARGET", name)
    daemon = ct.Daemon([], ["--comm", comm, "--interval", INTERVAL])
    churn = ct.Target(var)
    with open(f"/proc/{churn.pid}/comm") as f:
        actual = f.read().strip()
    require(actual == comm, f"the churn copy's comm is the first 15 bytes of its name ({actual!r})")
    log(f"        cprofd --comm {comm} on port {daemon.port}, churn target {churn.pid}")

    def served():
        r, total = debug1_total(daemon, churn.pid)
        return total if r.status == 200 and total and total >= 4 else None

    found, took = wait_until("churn target served", served, FIND_WITHIN)
    check(found, f"--comm {comm}: the churn target is served within {FIND_WITHIN:.0f} s "
          f"({took:.1f} s): goroutine?debug=1 "
          f"is 200 with its main and three long-lived threads at least",
          debug1_total(daemon, churn.pid)[0].describe())
    r = daemon.get("/debug/pprof/")
    check(r.status == 200 and f"pid {churn.pid} ({comm}):" in r.text,
          f"the default target is pid {churn.pid} ({comm})", r.text[:800])
    r, threads, errors = ct.fetch_debug2(daemon)
    names = {t.name for t in threads or []}
    check(r.status == 200 and {"churn-long-0", "churn-long-1", "churn-long-2"} <= names,
          "debug=2 shows the long-lived churn threads", r.text[:1500])
    r = daemon.get("/metrics")
    up = re.findall(r'^cprofd_target_up\{pid="(\d+)"\} 1$', r.text, re.M)
    check(up == [str(churn.pid)], f"only the churn target is followed ({up})")
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")
    ct.check_not_stopped(churn.pid, "churn target")
    churn.kill()


# --- (e) --cgroup ----------------------------------------------------------------------------

def cgroup2_root():
    """Where cgroup v2 is mounted, as attach/discover.c's cgroup2_root() looks: None if
    neither /sys/fs/cgroup nor /sys/fs/cgroup/unified is a cgroup2 mount."""
    mounts = {}
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                mounts[left.split()[4]] = right.split()[0]
    except OSError:
        return None
    for path in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if mounts.get(path) == "cgroup2":
            return path
    return None


def remove_cgroup(root, path):
    """Moves whatever is still in PATH to ROOT, then removes PATH (retried: an exiting
    process may keep it busy for a moment). True when it is gone."""
    for _ in range(50):
        if not os.path.isdir(path):
            return True
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids = f.read().split()
            for pid in pids:
                try:
                    with open(os.path.join(root, "cgroup.procs"), "w") as f:
                        f.write(pid)
                except OSError:
                    pass
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.1)
    return not os.path.isdir(path)


def check_follow_cgroup():
    log("--- (e) --cgroup: a process in a cgroup of its own")
    root = cgroup2_root()
    if root is None:
        log("skipped: no cgroup v2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
        return
    path = os.path.join(root, f"cprofd-test-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.mkdir(path)
    except OSError as e:
        log(f"skipped: cannot create a cgroup v2 directory ({path}: {e})")
        return
    ct.at_cleanup(lambda: remove_cgroup(root, path))
    log(f"        cgroup {path}")

    var = copy_binary("THREADS_TARGET", f"cprofd-cgroup-{secrets.token_hex(4)}")
    inside = ct.Target(var)
    outside = ct.Target(var)
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(inside.pid))
    with open(f"/proc/{inside.pid}/cgroup") as f:
        line = next((x for x in f.read().split("\n") if x.startswith("0::")), "")
    require(line == "0::/" + os.path.basename(path),
            f"pid {inside.pid} is in the new cgroup ({line})")

    daemon = ct.Daemon([], ["--cgroup", path, "--interval", INTERVAL])
    r = daemon.get("/debug/pprof/")
    check(r.status == 200 and f"pid {inside.pid} (" in r.text,
          f"--cgroup {path}: the default target is pid {inside.pid}", r.text[:800])
    r, total = debug1_total(daemon, inside.pid)
    check(total == 11, "its goroutine?debug=1 is 200 with 'total 11'", r.describe())
    r = daemon.get(f"/pid/{outside.pid}/debug/pprof/goroutine?debug=1")
    check_error(r, 404, f"unknown target pid {outside.pid}", "a process outside the cgroup")
    time.sleep(1.5)                     # a tick: still only the one inside
    r = daemon.get("/metrics")
    up = re.findall(r'^cprofd_target_up\{pid="(\d+)"\} 1$', r.text, re.M)
    check(up == [str(inside.pid)], f"only the process in the cgroup is followed ({up})")
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")
    for t in (inside, outside):
        ct.check_not_stopped(t.pid, f"pid {t.pid}")
    inside.kill()
    outside.kill()
    check(remove_cgroup(root, path), f"the cgroup {path} is removed")


def main():
    check_growth()
    check_wait_times()
    check_follow_exe()
    check_follow_comm()
    check_follow_cgroup()


if __name__ == "__main__":
    ct.run_test(main)
