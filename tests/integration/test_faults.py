"""tests/integration/test_faults.py -- cprofd must never harm a target: whatever happens to
cprofd or to the target, no thread is left stopped or traced, nothing of cprofd stays in
the target, and the target keeps making progress. One scenario per run (meson runs each as
its own test): `test_faults.py SCENARIO`.

  kill       cprofd killed with SIGKILL at random moments, 20 times: in the middle of
             snapshots (two clients looping on debug=2, --interval 100ms, a target with
             hundreds of threads) and with a CPU profile in flight
  storm      the target creates and joins threads all the time, forks children all the
             time, execs itself over and over (and at last into another program, under
             the same pid): every request is answered, partial dumps say so, the new
             image is dumped, no thread or child is left stopped
  many       10,000 threads: debug=0, 1 and 2 count them all, /metrics answers meanwhile
  gdb        a target held by gdb: 503 naming gdb, periodic snapshots meanwhile take
             nothing from gdb (it keeps every thread, lists them all, exits 0), and cprofd
             works again once gdb detaches
  sigstop    a target in job-control stop stays stopped through dumps and periodic
             snapshots, and runs on at SIGCONT
  pidreuse   the target exits, with a CPU profile in flight, and another process gets
             its pid: never taken for it (410, no snapshot of it, no sample of it in the
             profile)
  sigterm    SIGTERM with a delta, a CPU profile, a wall profile and big dumps in flight:
             each is answered in full or with a one-line error (a dump not read yet may
             see its connection closed); cprofd exits 0 and releases the target

The target is tests/targets/faults.c: its "ticker" thread writes a count to a file every
5 ms, so "makes progress" means the count moves.
"""

import http.client
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

DUMPS = ["/debug/pprof/goroutine?debug=2", "/debug/pprof/goroutine?debug=1",
         "/debug/pprof/goroutine"]


# --- the target and what we check of it ----------------------------------------------------

class FaultsTarget(ct.Target):
    """tests/targets/faults.c with a progress file."""

    def __init__(self, args=()):
        self.progress_path = ct.tmp_path(f"progress-{time.monotonic_ns()}")
        super().__init__("FAULTS_TARGET", ["--progress", self.progress_path, *args])

    def progress(self):
        """(generation, count) the ticker wrote last, or None."""
        try:
            with open(self.progress_path) as f:
                count, gen = f.readline().split()
            return int(gen), int(count)
        except (FileNotFoundError, ValueError):
            return None


def wait_until(cond, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def check_progress(target, what, timeout=30):
    """The ticker's count moves on (polled: a loaded machine may be slow to schedule it)."""
    first = target.progress()
    moved = wait_until(lambda: (p := target.progress()) is not None and first is not None and p > first,
                       timeout)
    return check(moved, f"{what}: the target makes progress",
                 f"progress {first} -> {target.progress()}; states {ct.task_states(target.pid)}")


def task_tracers(pid):
    """{tid: TracerPid} of every thread of PID."""
    return {int(tid): ct.tracer_pid(f"{pid}/task/{tid}") for tid in ct.task_ids(pid)}


def perf_fds(pid):
    """How many perf event fds PID holds."""
    n = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return 0
    for fd in fds:
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[perf_event]"
        except FileNotFoundError:
            pass
    return n


def released(pid, stopped_ok=False):
    """None when no thread of PID is in tracing stop (nor in job-control stop, unless
    STOPPED_OK), no thread is traced and PID holds no perf event fd; else what is wrong."""
    states = ct.task_states(pid)
    stopped = {t: s for t, s in states.items() if s == "t" or (s == "T" and not stopped_ok)}
    traced = {t: p for t, p in task_tracers(pid).items() if p != 0}
    fds = perf_fds(pid)
    if not stopped and not traced and fds == 0:
        return None
    return f"stopped: {stopped}, traced: {traced}, perf fds: {fds}"


def check_released(pid, what, stopped_ok=False, timeout=10):
    """released(), polled for a while: a thread seen between two of its own syscalls may
    look stopped for a moment after a snapshot by someone else, never for long."""
    problem = None

    def ok():
        nonlocal problem
        problem = released(pid, stopped_ok)
        return problem is None
    wait_until(ok, timeout, step=0.1)
    return check(problem is None, f"{what}: every thread of {pid} runs free (no stop, no tracer, "
                 f"no perf event)", problem)


def children_of(pid):
    """{child pid: (state, TracerPid)} of the live children of PID."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out[int(entry)] = (fields[0], ct.tracer_pid(entry))
    return out


# --- HTTP ------------------------------------------------------------------------------------

def dump_problem(path, r, expect_threads=None):
    """None when R is a well-formed reply of PATH, else why not."""
    if r.status != 200:
        lines = r.text.split("\n")
        if r.status in (410, 503) and len(lines) == 2 and lines[1] == "" and r.header("X-Go-Pprof") == "1":
            return None
        return f"{path}: {r.status} {r.text[:300]!r}"
    if path.endswith("debug=2"):
        threads, errors = ct.parse_debug2(r.text)
        if errors or not threads:
            return f"{path}: malformed: {errors[:3]}\n{r.text[:1000]}"
        if ct.debug2_partial(r.text) is None and any(t.pseudo and t.pseudo[0].startswith("not captured")
                                                     for t in threads):
            return f"{path}: threads not captured but no '# partial:' line"
        if expect_threads is not None and len(threads) != expect_threads:
            return f"{path}: {len(threads)} threads, expected {expect_threads}"
        return None
    if path.endswith("debug=1"):
        d1 = ct.parse_debug1(r.text)
        if d1.errors or not d1.groups or d1.total != sum(g.count for g in d1.groups):
            return f"{path}: malformed: {d1.errors[:3]}\n{r.text[:1000]}"
        if d1.partial is None and any(p.startswith("not captured") for g in d1.groups for p in g.pseudo):
            return f"{path}: threads not captured but no '# partial:' line"
        if expect_threads is not None and d1.total != expect_threads:
            return f"{path}: total {d1.total}, expected {expect_threads}"
        return None
    try:
        p = ct.decode_profile(r.body)
    except Exception as e:
        return f"{path}: not a profile: {e}"
    if expect_threads is not None and sum(s.values[0] for s in p.samples) != expect_threads:
        return f"{path}: {sum(s.values[0] for s in p.samples)} threads, expected {expect_threads}"
    return None


def check_results(results, what, allow_exceptions=False):
    """Every request answered, every answer well-formed. Returns the statuses."""
    problems = []
    statuses = {}
    partial = 0
    for _, path, status, r in results:
        statuses[status] = statuses.get(status, 0) + 1
        if r is None:
            if not allow_exceptions:
                problems.append(f"{path}: {status}")
            continue
        p = dump_problem(path, r)
        if p:
            problems.append(p)
        elif r.status == 200 and "debug=" in path and "# partial:" in r.text[-300:]:
            partial += 1
    check(results and not problems, f"{what}: {len(results)} requests, each answered and well-formed "
          f"({statuses}; {partial} marked partial)", "\n\n".join(problems[:5]))
    errors = {}
    for _, path, status, r in results:
        if r is not None and r.status != 200:
            errors.setdefault(f"{r.status} {r.text.strip()}", []).append(path)
    for reason, paths in errors.items():
        log(f"        {len(paths)} x {reason}")
    return statuses


def daemon_pid_gone(pid):
    return not os.path.exists(f"/proc/{pid}")


# --- scenarios -------------------------------------------------------------------------------

def scenario_kill(rounds=20):
    """cprofd SIGKILLed at random moments of snapshots and of CPU profiles."""
    target = FaultsTarget(["--threads", "300"])
    rng = random.Random(int(os.environ.get("CPROFD_TEST_SEED", "20")))
    log(f"target {target.pid}: {len(target.tids())} threads")
    for i in range(rounds):
        cpu = i % 4 == 3
        what = f"round {i + 1} ({'CPU profile' if cpu else 'snapshots'})"
        daemon = ct.Daemon([target.pid], ["--interval", "100ms"])
        hammer = ct.Hammer(daemon, DUMPS[:2], clients=2)
        profile = None
        if cpu:
            profile = ct.Hammer(daemon, ["/debug/pprof/profile?seconds=30&hz=1000"], clients=1)
            require(wait_until(lambda: perf_fds(daemon.proc.pid) > 0, 120),
                    f"{what}: the CPU profile has opened its perf events", daemon.stderr())
        else:
            # Make sure snapshots are under way: the first dump may need the symbols first.
            wait_until(lambda: hammer.count() > 0, 60)
        time.sleep(rng.uniform(0.0, 0.6))
        daemon.proc.kill()
        daemon.proc.wait()
        hammer.stop()
        if profile:
            profile.stop()
        check(wait_until(lambda: daemon_pid_gone(daemon.proc.pid), 10), f"{what}: cprofd is gone")
        check_released(target.pid, what)
        check_progress(target, what)
    check(target.alive(), "the target survived every SIGKILL of cprofd")
    target.kill()


def storm(args, what, seconds=4.0, extra=None):
    target = FaultsTarget(args)
    daemon = ct.Daemon([target.pid], ["--interval", "100ms"])
    hammer = ct.Hammer(daemon, DUMPS, clients=2, timeout=60)     # a hung worker fails in time
    time.sleep(seconds)
    if extra:
        extra(target, daemon)
    results = hammer.stop()
    check_results(results, what)
    check(daemon.alive(), f"{what}: cprofd still runs", daemon.stderr())
    # Between its periodic snapshots cprofd holds nothing.
    check_released(target.pid, f"{what}, cprofd running")
    r = daemon.get("/metrics")
    check(r.status == 200, f"{what}: /metrics answers", r.describe())
    return target, daemon


def scenario_storm():
    # Threads created and joined all the time.
    target, daemon = storm(["--spawn", "8", "--threads", "20"], "thread storm")
    check(daemon.stop() == 0, "thread storm: cprofd exits 0 on SIGTERM", daemon.stderr())
    check_released(target.pid, "thread storm")
    check_progress(target, "thread storm")
    target.kill()

    # Children forked all the time: none may be left stopped or traced.
    seen_children = {}

    def watch_children(target, daemon):
        for _ in range(20):
            for pid, (state, tracer) in children_of(target.pid).items():
                if state in "tT" or tracer != 0:
                    seen_children[pid] = (state, tracer)
            time.sleep(0.05)
    target, daemon = storm(["--fork", "--threads", "20"], "fork storm", extra=watch_children)
    lingering = {p: s for p, s in seen_children.items()
                 if p in children_of(target.pid) and children_of(target.pid)[p][0] in "tT"}
    check(not lingering, "fork storm: no child of the target stays stopped or traced",
          f"{lingering} (all seen: {seen_children})")
    check(daemon.stop() == 0, "fork storm: cprofd exits 0 on SIGTERM", daemon.stderr())
    check_released(target.pid, "fork storm")
    check_progress(target, "fork storm")
    check(not any(s in "tT" for s, _ in children_of(target.pid).values()),
          "fork storm: no child left stopped", children_of(target.pid))
    target.kill()

    # A new image every 100 ms, half of the time exec'd from a thread other than main;
    # at least five of them (a loaded machine takes longer), under requests all along.
    def generations(target, daemon):
        wait_until(lambda: (p := target.progress()) is not None and p[0] >= 5, 120)
    target, daemon = storm(["--exec", "100", "--spawn", "2", "--threads", "10"], "exec storm",
                           extra=generations)
    p = target.progress()
    check(p is not None and p[0] >= 5, f"exec storm: the target went through generations {p}")
    check(daemon.stop() == 0, "exec storm: cprofd exits 0 on SIGTERM", daemon.stderr())
    check_released(target.pid, "exec storm")
    check_progress(target, "exec storm")
    target.kill()

    # The same pid becomes another program: its threads are what cprofd shows next.
    threads_path = ct.env_binary("THREADS_TARGET")
    target = FaultsTarget(["--exec", "300", "--threads", "10", "--exec-into", threads_path])
    daemon = ct.Daemon([target.pid], ["--interval", "100ms"])
    hammer = ct.Hammer(daemon, DUMPS, clients=2)
    became = wait_until(lambda: open(target.out).read().count("ready ") == 2, 60)
    require(became, "exec into another program: the target became tests/targets/threads.c")
    time.sleep(1.0)
    check_results(hammer.stop(), "exec into another program")
    r, threads, errors = None, None, None
    for _ in range(10):         # the last snapshot may still be of the old image's exit
        r, threads, errors = ct.fetch_debug2(daemon)
        if threads and len(threads) == 11:
            break
        time.sleep(0.5)
    names = sorted(t.name for t in threads or [])
    check(r.status == 200 and threads and len(threads) == 11 and not errors,
          "exec into another program: debug=2 shows the new program's 11 threads", r.describe())
    reader = [t for t in threads or [] if t.name == "t-read"]
    check(reader and "thread_read_main" in reader[0].functions(),
          "exec into another program: its stacks are symbolized from the new image",
          "\n".join(t.describe() for t in reader) or names)
    r = daemon.get("/debug/pprof/cmdline")
    check(r.status == 200 and r.body.split(b"\0")[0] == threads_path.encode(),
          "exec into another program: cmdline is the new program's", r.describe())
    r = daemon.get("/debug/pprof/goroutine")
    mapping = ct.decode_profile(r.body).mappings[0].filename if r.status == 200 else None
    check(mapping == threads_path, f"exec into another program: the profile's main mapping is the new "
          f"program ({mapping})", r.describe())
    comm = os.path.basename(threads_path)[:15]
    r = daemon.get("/debug/pprof/")
    check(f"pid {target.pid} ({comm})" in r.text, f"exec into another program: the index names it {comm}",
          r.text[:3000])
    check(daemon.stop() == 0, "exec into another program: cprofd exits 0 on SIGTERM", daemon.stderr())
    check_released(target.pid, "exec into another program")
    target.kill()


def raise_limit(path, want):
    with open(path) as f:
        have = int(f.read())
    if have >= want:
        return
    require(os.geteuid() == 0, f"{path} is {have}, below {want}, and we are not root to raise it")
    with open(path, "w") as f:
        f.write(str(want))
    log(f"raised {path} from {have} to {want}")

    def restore():
        with open(path, "w") as f:
            f.write(str(have))
    ct.at_cleanup(restore)


def scenario_many(n=10000):
    in_use = sum(len(os.listdir(f"/proc/{p}/task")) for p in os.listdir("/proc")
                 if p.isdigit() and os.path.isdir(f"/proc/{p}/task"))
    raise_limit("/proc/sys/kernel/threads-max", in_use + n + 4096)
    raise_limit("/proc/sys/kernel/pid_max", in_use + n + 4096)
    start = time.monotonic()
    target = FaultsTarget(["--threads", str(n)])
    log(f"target {target.pid} started {n + 2} threads in {time.monotonic() - start:.1f} s")
    total = n + 2               # main, ticker and the idle threads
    require(len(target.tids()) == total, f"the target has {total} threads", len(target.tids()))
    daemon = ct.Daemon([target.pid])

    for path in ["/debug/pprof/goroutine?debug=1", "/debug/pprof/goroutine?debug=2",
                 "/debug/pprof/goroutine"]:
        # /metrics answers while the dump is in the worker's hands.
        metrics = []

        def poll_metrics():
            while not metrics or not done.is_set():
                try:
                    t0 = time.monotonic()
                    r = daemon.get("/metrics", timeout=60)
                    metrics.append((r.status, time.monotonic() - t0))
                except Exception as e:
                    metrics.append((f"{type(e).__name__}: {e}", None))
                time.sleep(0.1)
        done = threading.Event()
        poller = threading.Thread(target=poll_metrics, daemon=True)
        poller.start()
        t0 = time.monotonic()
        r = daemon.get(path, timeout=600)
        took = time.monotonic() - t0
        done.set()
        poller.join(timeout=90)
        log(f"        {path}: {len(r.body)} bytes in {took:.2f} s; /metrics meanwhile: "
            f"{len(metrics)} answers, slowest {max((s for _, s in metrics if s), default=0):.3f} s")
        check(dump_problem(path, r, expect_threads=total) is None,
              f"{path}: counts all {total} threads", dump_problem(path, r, expect_threads=total))
        check(metrics and all(s == 200 for s, _ in metrics), f"{path}: /metrics answered meanwhile",
              metrics[:5])
        if path.endswith("debug=1"):
            # On a loaded machine a thread may not stop in time: it is listed, not captured,
            # and the dump says it is partial (dump_problem checks that).
            d1 = ct.parse_debug1(r.text)
            idle = [g for g in d1.groups if g.threads and all(name == "idle" for _, name in g.threads)]
            captured = [g for g in idle if "idle_block" in g.functions()]
            missed = sum(g.count for g in idle if any(p.startswith("not captured") for p in g.pseudo))
            if missed:
                log(f"        {missed} idle thread(s) not captured in time")
            check(len(captured) == 1 and captured[0].count + missed == n,
                  f"debug=1: the {n} idle threads form one record in idle_block",
                  [(g.count, g.functions()[:4], g.pseudo) for g in d1.groups[:5]])
        check_released(target.pid, f"after {path}")
    check(daemon.stop(timeout=120) == 0, "cprofd exits 0 on SIGTERM", daemon.stderr())
    check_released(target.pid, "after cprofd")
    check_progress(target, "after cprofd")
    target.kill()


def scenario_gdb():
    target = FaultsTarget(["--threads", "10"])
    total = 12
    daemon = ct.Daemon([target.pid], ["--interval", "100ms"])
    r = daemon.get("/debug/pprof/goroutine?debug=1")
    check(r.status == 200, "a dump before gdb: 200", r.describe())

    fifo = ct.tmp_path("gdb-release")
    os.mkfifo(fifo)
    gdb_out = ct.tmp_path("gdb.out")
    # gdb attaches, lists the threads, waits, lists them again. It may race with a
    # periodic snapshot: a thread cprofd holds at that moment refuses gdb's attach, which
    # any second tracer would see; gdb then warns, or fails. Try again in that case.
    for attempt in range(10):
        with open(gdb_out, "w") as out:
            gdb = ct.spawn(["gdb", "-p", str(target.pid), "-batch", "-nx",
                            "-ex", "info threads", "-ex", f"shell read line < {fifo}",
                            "-ex", "info threads", "-ex", "detach"],
                           stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           kill_signal=signal.SIGTERM)
        held = wait_until(lambda: gdb.poll() is not None or
                          (ct.tracer_pid(target.pid) == gdb.pid and
                           set(task_tracers(target.pid).values()) == {gdb.pid} and
                           set(ct.task_states(target.pid).values()) == {"t"}), 60)
        if gdb.poll() is None and held and "warning" not in open(gdb_out).read().lower():
            break
        # gdb lost the race with a snapshot, or failed: let it go and try again.
        ct.release_gdb(gdb, fifo, timeout=60)
    else:
        raise ct.TestFailure("gdb could not attach")
    log(f"        gdb {gdb.pid} holds {target.pid} (attempt {attempt + 1})")

    for path in DUMPS:
        r = daemon.get(path, timeout=60)
        check(r.status == 503 and f"process {gdb.pid} (gdb)" in r.text and r.text.count("\n") == 1,
              f"{path} while gdb holds: 503 naming gdb {gdb.pid}", r.describe())
    time.sleep(1.0)             # periodic snapshots meet gdb too
    check(daemon.alive(), "cprofd still runs while gdb holds the target", daemon.stderr())
    check(set(task_tracers(target.pid).values()) == {gdb.pid},
          "gdb still traces every thread", task_tracers(target.pid))
    ct.release_gdb(gdb, fifo, timeout=60)
    check(gdb.returncode == 0, f"gdb exits 0 (exit {gdb.returncode})", open(gdb_out).read())
    out = open(gdb_out).read()
    listings = out.split("\n  Id ")
    check(len(listings) == 3 and all(x.count("\n") >= total for x in listings[1:]) and
          "warning" not in out.lower() and "error" not in out.lower(),
          f"gdb saw the {total} threads before and after cprofd's attempts, no warning", out)

    check(wait_until(lambda: set(task_tracers(target.pid).values()) == {0}, 30),
          "gdb has detached", task_tracers(target.pid))
    for path in DUMPS:
        r = wait_until(lambda: (x := daemon.get(path, timeout=60)).status == 200 and x, 30, step=0.5)
        check(r and dump_problem(path, r, expect_threads=total) is None,
              f"{path} after gdb detached: 200 with {total} threads",
              r.describe() if r else daemon.get(path).describe())
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM", daemon.stderr())
    check_released(target.pid, "after gdb and cprofd")
    check_progress(target, "after gdb and cprofd")
    target.kill()


def scenario_sigstop():
    target = FaultsTarget(["--threads", "10", "--spawn", "2"])
    daemon = ct.Daemon([target.pid], ["--interval", "100ms"])
    os.kill(target.pid, signal.SIGSTOP)
    require(wait_until(lambda: set(ct.task_states(target.pid).values()) == {"T"}, 30),
            "every thread is in job-control stop (T)", ct.task_states(target.pid))
    stopped_at = target.progress()
    for path in DUMPS:
        r = daemon.get(path, timeout=60)
        check(dump_problem(path, r) is None and r.status == 200, f"{path} of the stopped target: 200",
              r.describe())
        if path.endswith("debug=2") and r.status == 200:
            threads, _ = ct.parse_debug2(r.text)
            check(threads and all(t.state.startswith("T") for t in threads),
                  "debug=2: every thread shows T (stopped)", "\n".join(t.lines[0] for t in threads or []))
    # Periodic snapshots, too.
    def snapshots():
        return ct.metric(daemon.get("/metrics").text, f'cprofd_target_snapshots_total{{pid="{target.pid}"}}') or 0
    taken = wait_until(lambda: snapshots() >= 10, 60)
    check(taken, f"periodic snapshots of the stopped target were taken ({snapshots()})")
    states = ct.task_states(target.pid)
    check(set(states.values()) == {"T"}, "after dumps and periodic snapshots: still stopped (T)", states)
    check(set(task_tracers(target.pid).values()) == {0}, "no thread is traced",
          task_tracers(target.pid))
    check(target.progress() == stopped_at, "the stopped target made no progress",
          f"{stopped_at} -> {target.progress()}")

    os.kill(target.pid, signal.SIGCONT)
    check_released(target.pid, "after SIGCONT")
    check_progress(target, "after SIGCONT")
    r = daemon.get(DUMPS[0])
    check(r.status == 200 and dump_problem(DUMPS[0], r) is None, "dumps work after SIGCONT", r.describe())
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM", daemon.stderr())
    check_released(target.pid, "after cprofd")
    target.kill()


def spawn_with_pid(pid, argv, attempts=200):
    """A process with pid PID running ARGV, by setting /proc/sys/kernel/ns_last_pid just
    before forking: other processes of the machine may take the pid first, so retry."""
    for _ in range(attempts):
        try:
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(pid - 1))
        except OSError as e:
            raise ct.TestFailure(f"cannot write ns_last_pid: {e}")
        out = ct.tmp_path(f"newcomer-{time.monotonic_ns()}")
        with open(out, "w") as f:
            p = ct.spawn(argv, stdout=f, stdin=subprocess.DEVNULL)
        if p.pid == pid:
            return p, out
        p.kill()
        p.wait()
        if os.path.exists(f"/proc/{pid}"):
            time.sleep(0.1)     # someone else got the pid: wait for it to go
    return None, None


def scenario_pidreuse():
    require(os.geteuid() == 0, "root, to choose the next pid through ns_last_pid")
    target = FaultsTarget(["--threads", "4"])
    pid = target.pid
    daemon = ct.Daemon([pid], ["--interval", "100ms"])
    r = daemon.get(DUMPS[0])
    check(r.status == 200, "the target is dumped", r.describe())
    # A CPU profile runs on while the target exits and another process takes its pid.
    profile = {}

    def fetch_profile():
        try:
            profile["reply"] = daemon.get("/debug/pprof/profile?seconds=6&hz=1000", timeout=120)
        except Exception as e:
            profile["error"] = f"{type(e).__name__}: {e}"
    profiler = threading.Thread(target=fetch_profile, daemon=True)
    profiler.start()
    require(wait_until(lambda: perf_fds(daemon.proc.pid) > 0, 120), "a CPU profile of the target is under way",
            daemon.stderr())
    old_names = set()
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/comm") as f:
            old_names.add(f.read().strip())
    target.kill()
    check(wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 30), f"the target {pid} is gone")

    # The newcomer burns CPU in known functions, on threads of its own.
    newcomer, out = spawn_with_pid(pid, [ct.env_binary("CPU_TARGET")])
    require(newcomer, f"another process got pid {pid}")
    ct.wait_for_line(out, r"^ready \d+$", newcomer)
    newcomer_tids = set(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    newcomer_names = set()
    for t in newcomer_tids:
        with open(f"/proc/{pid}/task/{t}/comm") as f:
            newcomer_names.add(f.read().strip())
    newcomer_names -= old_names
    log(f"        a new {os.path.basename(newcomer.args[0])} runs as {pid}, threads {sorted(newcomer_tids)}")
    time.sleep(0.3)             # a periodic tick or two sees the old target gone
    before = ct.metric(daemon.get("/metrics").text, "cprofd_snapshots_total")
    for path in DUMPS + [f"/pid/{pid}/debug/pprof/goroutine?debug=2", "/debug/pprof/cmdline"]:
        r = daemon.get(path, timeout=60)
        check(r.status == 410 and "has exited" in r.text, f"{path}: 410, the target has exited",
              r.describe())
    r = daemon.get("/debug/pprof/profile?seconds=1")
    check(r.status == 410, "a new CPU profile: 410", r.describe())
    time.sleep(1.0)             # ten periodic ticks
    metrics = daemon.get("/metrics").text
    after = ct.metric(metrics, "cprofd_snapshots_total")
    check(before == after, f"no snapshot of the newcomer (snapshots {before} -> {after})")
    check(ct.metric(metrics, f'cprofd_target_up{{pid="{pid}"}}') == 0, "the target is down in /metrics",
          metrics)
    index = daemon.get("/debug/pprof/").text
    check("exited" in index, "the index lists the target as exited", index[:2000])

    profiler.join(timeout=130)
    r = profile.get("reply")
    require(r is not None, "the CPU profile in flight is answered", profile.get("error"))
    if r.status == 200:
        p = ct.decode_profile(r.body)
        # By its functions: the newcomer's thread ids may be the old target's again.
        theirs = [s for s in p.samples
                  if any(f in ("hot_leaf", "busy_main", "syscall_loop") for f in s.functions()) or
                  s.labels.get("thread_name") in newcomer_names]
        check(not theirs, f"the CPU profile in flight has no sample of the newcomer ({len(p.samples)} samples)",
              "\n".join(f"{s.num_labels} {s.labels} {s.functions()[:6]}" for s in theirs[:5]))
    else:
        check(r.status in (410, 503) and r.text.count("\n") == 1, "the CPU profile in flight: a one-line error",
              r.describe())
    check_released(pid, "the newcomer")
    check(daemon.alive(), "cprofd still runs", daemon.stderr())
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM", daemon.stderr())
    newcomer.kill()


def scenario_sigterm(rounds=3):
    target = FaultsTarget(["--threads", "5000"])
    total = 5002
    for i in range(rounds):
        what = f"round {i + 1}"
        daemon = ct.Daemon([target.pid], ["--interval", "100ms"])
        waiting = ["/debug/pprof/goroutine?seconds=5", "/debug/pprof/profile?seconds=30",
                   "/debug/pprof/wall?seconds=30"]
        dumps = ["/debug/pprof/goroutine?debug=2", "/debug/pprof/goroutine?debug=2",
                 "/debug/pprof/goroutine"]
        results = {}

        def fetch(k, path):
            try:
                r = daemon.get(path, timeout=300)
                results[k] = (path, r.status, r)
            except (http.client.RemoteDisconnected, ConnectionResetError) as e:
                results[k] = (path, f"closed: {type(e).__name__}", None)
            except Exception as e:
                results[k] = (path, f"{type(e).__name__}: {e}", None)

        def start(k, path):
            c = threading.Thread(target=fetch, args=(k, path), daemon=True)
            c.start()
            return c

        def in_progress():
            return ct.metric(daemon.get("/metrics").text, "cprofd_requests_in_progress") or 0
        clients = [start(k, p) for k, p in enumerate(waiting)]
        # The three wait on timers: the perf events are open, the delta and the wall
        # profile have taken their first snapshots.
        require(wait_until(lambda: perf_fds(daemon.proc.pid) > 0 and in_progress() >= len(waiting), 120),
                f"{what}: the delta, CPU and wall profiles are under way", daemon.stderr())
        time.sleep(i * 0.4)
        # Then big dumps, SIGTERM as soon as the first is in the worker's hands.
        clients += [start(len(waiting) + k, p) for k, p in enumerate(dumps)]
        wait_until(lambda: in_progress() > len(waiting), 60, step=0.01)
        t0 = time.monotonic()
        daemon.proc.terminate()
        try:
            status = daemon.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            status = None
        log(f"        {what}: cprofd exited {status} {time.monotonic() - t0:.2f} s after SIGTERM")
        check(status == 0, f"{what}: SIGTERM → exit status 0, in bounded time", daemon.stderr())
        for c in clients:
            c.join(timeout=60)
        check(len(results) == len(clients), f"{what}: every client is done", results)
        problems = []
        for k, (path, status_, r) in sorted(results.items()):
            log(f"        {path}: {status_}")
            if r is None:
                # A dump that libevent had not read yet may see its connection closed;
                # a request cprofd was working on must be answered.
                if k < len(waiting) or not str(status_).startswith("closed"):
                    problems.append(f"{path}: {status_}")
                continue
            if r.status != 200:
                # An error is fine when it says so in one line.
                if not (r.status == 503 and r.text.count("\n") == 1 and r.header("X-Go-Pprof") == "1"):
                    problems.append(f"{path}: {r.status} {r.text[:200]!r}")
                continue
            expect = total if "debug=2" in path else None
            p = dump_problem(path if "goroutine" in path else "profile", r, expect_threads=expect)
            if p:
                problems.append(p)
        check(not problems, f"{what}: each request answered in full or with an error", "\n".join(problems))
        check_released(target.pid, what)
        check_progress(target, what)
    target.kill()


SCENARIOS = {
    "kill": scenario_kill,
    "storm": scenario_storm,
    "many": scenario_many,
    "gdb": scenario_gdb,
    "sigstop": scenario_sigstop,
    "pidreuse": scenario_pidreuse,
    "sigterm": scenario_sigterm,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        print(f"usage: {sys.argv[0]} {'|'.join(SCENARIOS)}", file=sys.stderr)
        sys.exit(2)
    ct.run_test(SCENARIOS[sys.argv[1]])
