"""tests/integration/test_locks.py -- why each thread waits, who holds the lock, deadlocks.

Every scenario of tests/targets/locks.c and tests/targets/locks-cpp.cc runs on its own:
the target prints the tids of its threads by role (`holder 1232`, `waiter 1235`) and the
addresses of its objects, then `ready`. After a short settling time cprofd attaches and
serves the thread dump (debug=1 and debug=2), the locks profile (text and JSON), /metrics
and the index page; then it exits, and gdb, the oracle, prints the holder the lock itself
records (`__data.__owner` of a mutex, `__data.__cur_writer` of an rwlock), which must be
the thread cprofd names and the one the target says it is. gdb runs only after cprofd has
answered and exited: two tracers cannot attach to one process at once.

What every dump must say of a waiting thread, in its debug=2 header:
`thread TID "NAME" [STATE, KIND NAME HOLDER, DURATION]:`, the holder's block
`holds KIND NAME, N threads waiting` right after its header, debug=1 records
`# waiting for KIND NAME held by thread TID "NAME" in FUNCTION (S, DURATION)` and
`# holds ...`, and a deadlock is reported at the very top of both dumps:
`Found 1 deadlock (2 threads):`, one `thread A "a" waits for KIND NAME held by thread B
"b"` line per thread of a cycle, each followed by `at FUNCTION (FILE:LINE)` lines.

The contention scenario (four threads taking one mutex in a tight loop) is a thousand
snapshots of a process whose locks change hands all the time: none may report a deadlock
and every holder named must be a thread of the target.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402

SETTLE_S = 0.3          # after `ready`: let every waiter sink into its futex wait
CONTENTION_DUMPS = 1000  # about 15 ms each on a 2-CPU machine: well under a minute

PTHREAD_MUTEX_SIZE = 40  # sizeof(pthread_mutex_t) on the 64-bit targets we run on

# --- the target -----------------------------------------------------------------------------

ROLE_LINE = re.compile(r"^([a-z][a-z-]*) (\d+)$", re.M)
OBJECT_LINE = re.compile(r"^object (\S+) (0x[0-9a-f]+)$", re.M)


class LockTarget:
    """A scenario of cprofd-test-locks (ENV LOCKS_TARGET) or cprofd-test-locks-cpp
    (LOCKS_CPP_TARGET): its `ROLE TID` lines as roles {role: [tid]}, its `object NAME
    ADDR` lines as objects {name: address}."""

    def __init__(self, env_name, scenario):
        self.scenario = scenario
        self.target = ct.Target(env_name, [scenario])
        self.pid = self.target.pid
        with open(self.target.out, errors="replace") as f:
            text = f.read()
        self.roles = {}
        for role, tid in ROLE_LINE.findall(text):
            if role != "ready":
                self.roles.setdefault(role, []).append(int(tid))
        self.objects = {name: int(addr, 16) for name, addr in OBJECT_LINE.findall(text)}
        log(f"{scenario}: pid {self.pid}, {self.roles}")

    def one(self, role):
        tids = self.roles.get(role, [])
        require(len(tids) == 1, f"{self.scenario}: the target names one {role}", self.roles)
        return tids[0]

    def tids(self):
        return self.target.tids()


# --- what cprofd says -----------------------------------------------------------------------

DEADLOCK_HEAD = re.compile(r"^Found (\d+) deadlocks? \((\d+) threads\):$")
DEADLOCK_EDGE = re.compile(r'^thread (\d+) "((?:[^"\\]|\\.)*)" waits for (.+) '
                           r'held by thread (\d+) "((?:[^"\\]|\\.)*)"$')
DEADLOCK_AT = re.compile(r"^\s+at (.+?)(?: \(([^()]*):(\d+)\))?$")
# The word, not "deadlocks" in the description of the locks profile.
DEADLOCK_WORD = re.compile(r"\bdeadlock\b")
HOLDS_LINE = re.compile(r"^\s*holds (.+), (\d+) threads? waiting$")


class Edge:
    """One line of a deadlock report: WAITER waits for WHAT held by HOLDER."""

    def __init__(self, m):
        self.waiter, self.waiter_name = int(m.group(1)), m.group(2)
        self.what = m.group(3)
        self.holder, self.holder_name = int(m.group(4)), m.group(5)
        self.at = []            # [(function, file, line)] of the waiter's top user frames
        self.line = m.group(0)


class Deadlocks:
    """The `Found N deadlocks (M threads):` section at the top of a dump."""

    def __init__(self):
        self.count = 0
        self.threads = 0
        self.cycles = []        # [[Edge]], each closed: the last holder is the first waiter
        self.lines = []
        self.errors = []
        self.blank_after = False    # the report ends with a blank line

    def edges(self):
        return [e for c in self.cycles for e in c]


def split_deadlocks(text):
    """(Deadlocks or None, the rest of TEXT) for a dump that may start with a deadlock
    report. Cycles are told apart by closing them, not by blank lines, so the test does
    not depend on how the report separates them. debug=1's report is in comment lines."""
    lines = ct.uncomment_deadlocks(text).split("\n")
    m = DEADLOCK_HEAD.match(lines[0]) if lines else None
    if not m:
        return None, text
    d = Deadlocks()
    d.count, d.threads = int(m.group(1)), int(m.group(2))
    d.lines.append(lines[0])
    cycle = []
    i = 1
    while i < len(lines):
        line = lines[i]
        if line == "":
            i += 1
            if not cycle and len(d.cycles) == d.count:
                d.blank_after = True
                break               # the blank line after the report
            continue
        em = DEADLOCK_EDGE.match(line)
        am = DEADLOCK_AT.match(line)
        if em:
            cycle.append(Edge(em))
            if cycle[-1].holder == cycle[0].waiter:
                d.cycles.append(cycle)
                cycle = []
        elif am and (cycle or d.cycles):
            last = cycle[-1] if cycle else d.cycles[-1][-1]
            last.at.append((am.group(1), am.group(2), int(am.group(3)) if am.group(3) else None))
        else:
            break                   # the dump proper
        d.lines.append(line)
        i += 1
    if cycle:
        d.errors.append("a cycle that does not close: " + " / ".join(e.line for e in cycle))
    return d, "\n".join(lines[i:])


class Dump2:
    """A debug=2 dump: its deadlock report, its threads, the `holds` lines by tid."""

    def __init__(self, reply):
        self.reply = reply
        self.text = reply.text
        self.deadlocks, rest = split_deadlocks(reply.text)
        self.holds = {}
        kept = []
        tid = None
        for line in rest.split("\n"):
            hm = ct.DEBUG2_HEADER.match(line)
            if hm:
                tid = int(hm.group(1))
            elif tid is not None and HOLDS_LINE.match(line):
                self.holds.setdefault(tid, []).append(line.strip())
                continue
            else:
                tid = None
            kept.append(line)
        self.threads, self.errors = ct.parse_debug2("\n".join(kept))
        if self.deadlocks:
            self.errors += self.deadlocks.errors
        self.by_tid = {t.tid: t for t in self.threads}

    def wait(self, tid):
        """What the header of thread TID says it waits for (the bracket without the
        state), or None."""
        t = self.by_tid.get(tid)
        if t is None:
            return None
        parts = t.bracket.split(", ", 1)
        return parts[1] if len(parts) > 1 else ""

    def describe(self, tid=None):
        if tid is not None and tid in self.by_tid:
            return self.by_tid[tid].describe()
        return self.text if len(self.text) < 6000 else self.text[:6000] + "\n[...]"


class Dump1:
    """A debug=1 dump: its deadlock report and its records. parse_debug1 knows nothing of
    the lock lines, so those are kept out of its errors."""

    def __init__(self, reply):
        self.reply = reply
        self.text = reply.text
        self.deadlocks, rest = split_deadlocks(reply.text)
        self.parsed = ct.parse_debug1(rest)
        self.errors = [e for e in self.parsed.errors
                       if "'# waiting for " not in e and "'# holds " not in e]
        if self.deadlocks:
            self.errors += self.deadlocks.errors

    def group_of(self, tid):
        return next((g for g in self.parsed.groups if any(t == tid for t, _ in g.threads)),
                    None)


class Answers:
    """Everything cprofd serves about one target, fetched from one daemon, which is then
    stopped (so that gdb can attach)."""

    def __init__(self, lt):
        time.sleep(SETTLE_S)
        daemon = ct.Daemon([lt.pid])
        r2 = daemon.get("/debug/pprof/goroutine?debug=2")
        r1 = daemon.get("/debug/pprof/goroutine?debug=1")
        self.locks = daemon.get("/debug/pprof/locks?debug=1")
        self.locks_json_reply = daemon.get("/debug/pprof/locks?format=json")
        self.metrics = daemon.get("/metrics")
        self.index = daemon.get("/debug/pprof/")
        check(daemon.stop() == 0, f"{lt.scenario}: cprofd exits 0 on SIGTERM", daemon.stderr())
        ct.check_not_stopped(lt.pid, f"{lt.scenario}: after cprofd exited")

        name = lt.scenario
        require(r2.status == 200, f"{name}: debug=2 answers 200", r2.describe())
        require(r1.status == 200, f"{name}: debug=1 answers 200", r1.describe())
        self.d2 = Dump2(r2)
        self.d1 = Dump1(r1)
        check(not self.d2.errors, f"{name}: debug=2 parses", "\n".join(self.d2.errors)
              + "\n\n" + self.d2.describe())
        check(not self.d1.errors, f"{name}: debug=1 parses", "\n".join(self.d1.errors)
              + "\n\n" + self.d1.text)
        check(sorted(self.d2.by_tid) == lt.tids(), f"{name}: debug=2 lists every thread",
              f"dump: {sorted(self.d2.by_tid)}\n/proc: {lt.tids()}")
        self.locks_json = None
        if check(self.locks_json_reply.status == 200, f"{name}: locks?format=json answers 200",
                 self.locks_json_reply.describe()):
            try:
                self.locks_json = json.loads(self.locks_json_reply.text)
            except ValueError as e:
                check(False, f"{name}: locks?format=json is JSON ({e})",
                      self.locks_json_reply.describe())
        check(self.locks.status == 200, f"{name}: locks?debug=1 answers 200", self.locks.describe())
        check(self.metrics.status == 200, f"{name}: /metrics answers 200", self.metrics.describe())

    def json_lock(self, name):
        """The entry of the JSON locks profile whose name is NAME, or None."""
        if not self.locks_json or not isinstance(self.locks_json.get("locks"), list):
            return None
        return next((lk for lk in self.locks_json["locks"] if lk.get("name") == name), None)

    def locks_line(self, kind_re, name):
        """The line of the text locks profile about the object NAME of a kind matching
        KIND_RE, or None."""
        pattern = re.compile("^" + kind_re + " " + re.escape(name) + r"(?:[ ,;]|$)")
        return next((line for line in self.locks.text.split("\n") if pattern.match(line)),
                    None)

    def metric(self, name, pid):
        m = re.search(r"^" + re.escape(name) + r'\{[^}]*\bpid="' + str(pid) + r'"[^}]*\} (\S+)$',
                      self.metrics.text, re.M)
        return float(m.group(1)) if m else None


# --- gdb, the oracle ------------------------------------------------------------------------

GDB_VALUE = re.compile(r"^\$(\d+) = (.*)$", re.M)


def gdb_print(lt, *exprs):
    """The values gdb prints for EXPRS in the target (ints where they are), in order."""
    argv = ["gdb", "-p", str(lt.pid), "-batch", "-nx", "-iex", "set debuginfod enabled off",
            "-ex", "set pagination off"]
    for e in exprs:
        argv += ["-ex", f"print {e}"]
    proc = ct.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, kill_signal=signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    text = out.decode("utf-8", errors="replace")
    values = [v for _, v in GDB_VALUE.findall(text)]
    require(len(values) == len(exprs), f"{lt.scenario}: gdb prints {', '.join(exprs)}", text)
    ct.check_not_stopped(lt.pid, f"{lt.scenario}: after gdb detached")
    out = []
    for v in values:
        try:
            out.append(int(v, 0))
        except ValueError:
            out.append(v)
    log(f"gdb     {lt.scenario}: " + ", ".join(f"{e} = {v}" for e, v in zip(exprs, out)))
    return out


# --- the checks the scenarios share ---------------------------------------------------------

DURATION = r"(?:, (?P<duration>[^,]+))?"
HELD_BY = r"held by thread (?P<tid>\d+)"
# A condition variable nobody can hold: its name is followed by ", no owner".
NO_OWNER = r", no owner"


def joined(holder_re):
    """HOLDER_RE as it follows an object's name: after a space, unless it starts with its
    own separator (NO_OWNER)."""
    return holder_re if holder_re.startswith(",") else " " + holder_re


def check_wait(a, lt, tid, kind, name, holder_re, what):
    """Thread TID's debug=2 header says it waits for KIND NAME HOLDER (HOLDER matching
    HOLDER_RE); returns the match."""
    wait = a.d2.wait(tid)
    m = re.fullmatch(re.escape(kind) + " " + re.escape(name) + joined(holder_re) + DURATION,
                     wait or "")
    shown = holder_re.replace(HELD_BY, "held by thread N")
    check(m, f"{lt.scenario}: {what} {tid} waits for {kind} {name}{joined(shown)}",
          a.d2.describe(tid) if wait is not None else a.d2.describe())
    return m


def check_holds(a, lt, tid, kind_re, name, n_waiting, what):
    """Thread TID's debug=2 block starts with `holds KIND NAME, N threads waiting`."""
    pattern = re.compile(kind_re + " " + re.escape(name))
    holds = a.d2.holds.get(tid, [])
    ok = any(pattern.fullmatch(m.group(1)) and int(m.group(2)) == n_waiting
             for m in (HOLDS_LINE.match(h) for h in holds))
    check(ok, f"{lt.scenario}: {what} {tid}'s block says it holds {name}, "
          f"{n_waiting} thread(s) waiting", a.d2.describe(tid))


def check_debug1_waiting(a, lt, tid, kind, name, holder_text, what):
    """The debug=1 record of thread TID has `# waiting for KIND NAME HOLDER_TEXT...`."""
    g = a.d1.group_of(tid)
    if not check(g is not None, f"{lt.scenario}: debug=1 has a record of {what} {tid}", a.d1.text):
        return None
    prefix = f"# waiting for {kind} {name} {holder_text}"
    line = next((x for x in g.lines if x.startswith(prefix)), None)
    check(line is not None, f"{lt.scenario}: debug=1: the record of {what} says {prefix!r}",
          "\n".join(g.lines))
    return line


def check_debug1_holds(a, lt, tid, kind_re, name, n_waiting, what):
    g = a.d1.group_of(tid)
    if not check(g is not None, f"{lt.scenario}: debug=1 has a record of {what} {tid}", a.d1.text):
        return
    pattern = re.compile(r"# holds " + kind_re + " " + re.escape(name) + f", {n_waiting} "
                         r"threads? waiting")
    check(any(pattern.fullmatch(x) for x in g.lines),
          f"{lt.scenario}: debug=1: the record of the {what} says it holds {name}, "
          f"{n_waiting} waiting",
          "\n".join(g.lines))


def check_no_deadlock(a, lt):
    check(a.d2.deadlocks is None and a.d1.deadlocks is None and "deadlock" not in a.d2.text
          and "deadlock" not in a.d1.text,
          f"{lt.scenario}: no deadlock reported", a.d2.text[:2000])
    check(a.metric("cprofd_deadlocked_threads", lt.pid) == 0,
          f"{lt.scenario}: /metrics: cprofd_deadlocked_threads is 0", a.metrics.text)
    check(a.locks_json is None or a.locks_json.get("deadlocks") == [],
          f"{lt.scenario}: locks JSON: no deadlocks", a.locks_json_reply.text)


def check_lock_profile(a, lt, kind_re, name, holder_tid, waiters, holder_text=None, address=None,
                       lock_waiters=None):
    """The locks profile lists NAME with its holder (HOLDER_TID, or HOLDER_TEXT when it has
    none) and WAITERS, in text and in JSON; /metrics counts LOCK_WAITERS threads waiting on
    a mutex, rwlock or libc lock (default: the WAITERS)."""
    line = a.locks_line(kind_re, name)
    want = f"held by thread {holder_tid}" if holder_tid is not None else holder_text
    check(line is not None and want in line and re.search(rf"\b{len(waiters)} waiting\b", line),
          f"{lt.scenario}: locks?debug=1: {name} {want}, {len(waiters)} waiting", a.locks.text)
    first = a.locks.text.split("\n", 1)[0]
    m = re.fullmatch(r"locks profile: total (\d+)", first)
    check(m and int(m.group(1)) >= 1, f"{lt.scenario}: locks?debug=1 starts with "
          "'locks profile: total N'", first)

    lk = a.json_lock(name)
    if not check(lk is not None, f"{lt.scenario}: locks JSON lists {name}",
                 a.locks_json_reply.text):
        return
    check(re.fullmatch(kind_re, str(lk.get("kind"))), f"{lt.scenario}: locks JSON: {name} is "
          f"a {kind_re}", lk)
    if address is not None:
        got = lk.get("address")
        got = int(got, 0) if isinstance(got, str) else got
        check(got == address, f"{lt.scenario}: locks JSON: {name} is at {address:#x}", lk)
    holder = lk.get("holder")
    if holder_tid is not None:
        check(isinstance(holder, dict) and holder.get("tid") == holder_tid,
              f"{lt.scenario}: locks JSON: {name} held by {holder_tid}", lk)
    else:
        check(holder is None, f"{lt.scenario}: locks JSON: {name} has no holder", lk)
    got = sorted(w.get("tid") for w in lk.get("waiters") or [] if isinstance(w, dict))
    check(got == sorted(waiters), f"{lt.scenario}: locks JSON: {name}'s waiters are "
          f"{sorted(waiters)}", lk)
    want = len(waiters) if lock_waiters is None else lock_waiters
    n = a.metric("cprofd_lock_waiters", lt.pid)
    check(n == want, f"{lt.scenario}: /metrics: cprofd_lock_waiters is {want} ({n})",
          a.metrics.text)


def check_held(a, lt, kind, name, holder, holder_name, waiters, holder_function,
               object_kind=None, address=None):
    """A lock HOLDER holds and WAITERS wait for, everywhere cprofd reports it. OBJECT_KIND
    (a regex): the kind the holder's and the profile's lines give it (default: KIND)."""
    object_kind = object_kind or re.escape(kind)
    for w in waiters:
        m = check_wait(a, lt, w, kind, name, HELD_BY, "waiter")
        if m:
            check(int(m.group("tid")) == holder, f"{lt.scenario}: waiter {w}: held by "
                  f"{holder} ({holder_name})", a.d2.describe(w))
    check_holds(a, lt, holder, object_kind, name, len(waiters), "holder")
    line = check_debug1_waiting(a, lt, waiters[0], kind, name,
                                f'held by thread {holder} "{holder_name}"', "the waiters")
    if line:
        check(re.search(r" in " + holder_function + r"\b.* \(S(?:, [^)]+)?\)$", line),
              f"{lt.scenario}: debug=1: the holder is sleeping in {holder_function}", line)
    check_debug1_holds(a, lt, holder, object_kind, name, len(waiters), "holder")
    check_lock_profile(a, lt, object_kind, name, holder, waiters, address=address)
    check_no_deadlock(a, lt)


def check_unowned(a, lt, kind, name, holder_re, waiters, object_kind=None, profile_text=None,
                  address=None, is_lock=False):
    """An object WAITERS wait for and that no thread holds. IS_LOCK: an rwlock, whose
    waiters /metrics counts as lock waiters (not those of a condvar, semaphore, barrier)."""
    for w in waiters:
        check_wait(a, lt, w, kind, name, holder_re, "waiter")
    g = a.d1.group_of(waiters[0])
    if check(g is not None, f"{lt.scenario}: debug=1 has the waiters' record", a.d1.text):
        check(any(re.match(re.escape(f"# waiting for {kind} {name}") + r"[ ,]", x)
                  for x in g.lines),
              f"{lt.scenario}: debug=1: the waiters' record says '# waiting for {kind} {name}'",
              "\n".join(g.lines))
    check(not a.d2.holds, f"{lt.scenario}: debug=2: nobody holds anything", a.d2.holds)
    if profile_text is not None:
        check_lock_profile(a, lt, object_kind or re.escape(kind), name, None, waiters,
                           holder_text=profile_text, address=address,
                           lock_waiters=len(waiters) if is_lock else 0)
    check_no_deadlock(a, lt)


def check_deadlock(a, lt, edges, at_functions):
    """One deadlock: EDGES {waiter tid: (KIND NAME, holder tid)}; AT_FUNCTIONS {waiter tid:
    a function its `at` lines must name}."""
    n = len(edges)
    for which, d in (("debug=2", a.d2.deadlocks), ("debug=1", a.d1.deadlocks)):
        text = a.d2.text if which == "debug=2" else a.d1.text
        if not check(d is not None, f"{lt.scenario}: {which} starts with 'Found 1 deadlock "
                     f"({n} threads):'", text[:2000]):
            continue
        check(d.count == 1 and d.threads == n and len(d.cycles) == 1,
              f"{lt.scenario}: {which}: one deadlock of {n} threads", "\n".join(d.lines))
        got = {e.waiter: (e.what, e.holder) for e in d.edges()}
        check(got == edges, f"{lt.scenario}: {which}: the cycle is {edges}",
              "\n".join(d.lines))
        names = {t.tid: t.name for t in a.d2.threads}
        for e in d.edges():
            check(e.waiter_name == names.get(e.waiter) and e.holder_name == names.get(e.holder),
                  f"{lt.scenario}: {which}: {e.waiter} and {e.holder} are named as in the dump",
                  e.line)
            want = at_functions.get(e.waiter)
            check(e.at and all(f for f, _, _ in e.at)
                  and any(re.match(want + r"\b", f) for f, _, _ in e.at),
                  f"{lt.scenario}: {which}: {e.waiter}'s 'at' lines name {want}",
                  "\n".join(d.lines))
            check(all(file and line for _, file, line in e.at),
                  f"{lt.scenario}: {which}: {e.waiter}'s 'at' lines have FILE:LINE",
                  "\n".join(d.lines))
        check(d.blank_after, f"{lt.scenario}: {which}: a blank line ends the report",
              text[:2000])
    for waiter, (what, holder) in edges.items():
        kind, name = what.rsplit(" ", 1)
        m = check_wait(a, lt, waiter, kind, name, HELD_BY, "thread")
        if m:
            check(int(m.group("tid")) == holder, f"{lt.scenario}: {waiter} waits for {holder}",
                  a.d2.describe(waiter))
        check_holds(a, lt, holder, re.escape(kind), name, 1, "thread")
    check(a.metric("cprofd_deadlocked_threads", lt.pid) == n,
          f"{lt.scenario}: /metrics: cprofd_deadlocked_threads is {n}", a.metrics.text)
    check(a.metric("cprofd_lock_waiters", lt.pid) == n,
          f"{lt.scenario}: /metrics: cprofd_lock_waiters is {n}", a.metrics.text)
    check(a.index.status == 200 and DEADLOCK_WORD.search(a.index.text),
          f"{lt.scenario}: the index page says 'deadlock'", a.index.describe())
    cycles = a.locks_json.get("deadlocks") if a.locks_json else None
    check(isinstance(cycles, list) and len(cycles) == 1
          and sorted(t.get("tid") for t in cycles[0]) == sorted(edges),
          f"{lt.scenario}: locks JSON: one deadlock of {sorted(edges)}",
          a.locks_json_reply.text)


# --- C scenarios ----------------------------------------------------------------------------

def c_target(scenario):
    return LockTarget("LOCKS_TARGET", scenario)


def scenario_forgotten_unlock():
    lt = c_target("forgotten-unlock")
    holder, waiters = lt.one("holder"), lt.roles["waiter"]
    a = Answers(lt)
    owner, = gdb_print(lt, "ho_state_mu.__data.__owner")
    check(owner == holder, f"forgotten-unlock: gdb: ho_state_mu's owner is the holder {holder}")
    check_held(a, lt, "mutex", "&ho_state_mu", owner, "ho-holder", waiters, "ho_idle_after",
               address=lt.objects["ho_state_mu"])
    g = a.d1.group_of(waiters[0])
    check(g is not None and g.count == 3 and sorted(t for t, _ in g.threads) == sorted(waiters),
          "forgotten-unlock: debug=1: the three waiters share one record",
          "\n".join(g.lines) if g else a.d1.text)
    check(a.locks.text.startswith("locks profile: total 1\n"),
          "forgotten-unlock: locks?debug=1: total 1 (one object has waiters)", a.locks.text)
    check(a.index.status == 200 and not DEADLOCK_WORD.search(a.index.text),
          "forgotten-unlock: the index page does not say 'deadlock'", a.index.describe())
    ex = re.search(r'\[S \(sleeping\), mutex &ho_state_mu held by thread \d+(, [^\]]+)?\]:$',
                   a.d2.by_tid[waiters[0]].lines[0]) if waiters[0] in a.d2.by_tid else None
    check(ex, "forgotten-unlock: a waiter's header is exactly "
          "'[S (sleeping), mutex &ho_state_mu held by thread N, DURATION]:'",
          a.d2.describe(waiters[0]))


def scenario_abba():
    lt = c_target("abba")
    left, right = lt.one("left"), lt.one("right")
    a = Answers(lt)
    first, second = gdb_print(lt, "ab_first_mu.__data.__owner", "ab_second_mu.__data.__owner")
    check(first == left and second == right, "abba: gdb: ab-left owns ab_first_mu, ab-right "
          "ab_second_mu")
    check_deadlock(a, lt, {left: ("mutex &ab_second_mu", second),
                           right: ("mutex &ab_first_mu", first)},
                   {left: "ab_left_take_second", right: "ab_right_take_first"})


def scenario_cycle3():
    lt = c_target("cycle3")
    links = lt.roles["link"]
    require(len(links) == 3, "cycle3: three links", lt.roles)
    a = Answers(lt)
    owners = gdb_print(lt, *(f"cy_ring_mu[{i}].__data.__owner" for i in range(3)))
    check(owners == links, f"cycle3: gdb: cy-i owns cy_ring_mu[i] ({owners})")
    base = lt.objects["cy_ring_mu[0]"]
    names = []
    for i in range(3):
        off = lt.objects[f"cy_ring_mu[{i}]"] - base
        check(off == i * PTHREAD_MUTEX_SIZE, f"cycle3: cy_ring_mu[{i}] is at +{off:#x}")
        names.append("&cy_ring_mu" + (f"[{i}]" if i else ""))
    edges = {owners[i]: ("mutex " + names[(i + 1) % 3], owners[(i + 1) % 3]) for i in range(3)}
    check_deadlock(a, lt, edges, {t: "cy_take_next" for t in links})


def scenario_rwlock_writer():
    lt = c_target("rwlock-writer")
    writer, readers = lt.one("writer"), lt.roles["reader"]
    a = Answers(lt)
    cur_writer, = gdb_print(lt, "rw_config_lock.__data.__cur_writer")
    check(cur_writer == writer, f"rwlock-writer: gdb: __cur_writer is the writer {writer}")
    check_held(a, lt, "rwlock (read)", "&rw_config_lock", cur_writer, "rw-writer", readers,
               "rw_writer_idle", object_kind=r"rwlock(?: \((?:read|write)\))?",
               address=lt.objects["rw_config_lock"])


def scenario_rwlock_readers():
    lt = c_target("rwlock-readers")
    writer, readers = lt.one("writer"), lt.roles["reader"]
    a = Answers(lt)
    cur_writer, n_readers = gdb_print(lt, "rw_table_lock.__data.__cur_writer",
                                      "rw_table_lock.__data.__readers >> 3")
    check(cur_writer == 0 and n_readers == 2,
          f"rwlock-readers: gdb: no writer, 2 readers ({cur_writer}, {n_readers})")
    check_unowned(a, lt, "rwlock (write)", "&rw_table_lock", r"read-locked by 2 readers",
                  [writer], object_kind=r"rwlock(?: \((?:read|write)\))?",
                  profile_text="read-locked by 2 readers", address=lt.objects["rw_table_lock"],
                  is_lock=True)
    for r in readers:
        check(re.match(r"(clock_)?nanosleep\b", a.d2.wait(r) or ""),
              f"rwlock-readers: reader {r} just sleeps", a.d2.describe(r))


def mutex_kind_scenario(scenario, kind, symbol, holder_name):
    """recursive, errorcheck, robust, pi, adaptive: one holder, asleep in kind_holder_idle,
    one waiter."""
    lt = c_target(scenario)
    holder, waiters = lt.one("holder"), lt.roles["waiter"]
    a = Answers(lt)
    owner, = gdb_print(lt, f"{symbol}.__data.__owner")
    check(owner == holder, f"{scenario}: gdb: {symbol}'s owner is the holder {holder}")
    check_held(a, lt, kind, "&" + symbol, owner, holder_name, waiters, "kind_holder_idle",
               address=lt.objects[symbol])


def scenario_recursive():
    mutex_kind_scenario("recursive", "recursive mutex", "rc_tree_mu", "rc-holder")


def scenario_errorcheck():
    mutex_kind_scenario("errorcheck", "error-checking mutex", "ec_queue_mu", "ec-holder")


def scenario_robust():
    mutex_kind_scenario("robust", "robust mutex", "rb_shared_mu", "rb-holder")


def scenario_pi():
    mutex_kind_scenario("pi", "PI mutex", "pi_device_mu", "pi-holder")


def scenario_adaptive():
    mutex_kind_scenario("adaptive", "adaptive mutex", "ad_cache_mu", "ad-holder")


def scenario_orphaned():
    lt = c_target("orphaned")
    orphan, waiter = lt.one("orphan"), lt.one("waiter")
    check(orphan not in lt.tids(), f"orphaned: the holder {orphan} has exited")
    a = Answers(lt)
    owner, = gdb_print(lt, "or_journal_mu.__data.__owner")
    check(owner == orphan, f"orphaned: gdb: or_journal_mu's owner is the exited {orphan}")
    check_wait(a, lt, waiter, "mutex", "&or_journal_mu",
               rf"orphaned: holder thread {owner} exited", "waiter")
    check_debug1_waiting(a, lt, waiter, "mutex", "&or_journal_mu",
                         f"orphaned: holder thread {owner} exited", "the waiter")
    line = a.locks_line("mutex", "&or_journal_mu")
    check(line and f"orphaned: holder thread {owner} exited" in line and " 1 waiting" in line,
          "orphaned: locks?debug=1 says the holder exited", a.locks.text)
    lk = a.json_lock("&or_journal_mu")
    check(lk is not None and (lk.get("holder") is None or lk["holder"].get("tid") == owner)
          and [w.get("tid") for w in lk.get("waiters", [])] == [waiter],
          "orphaned: locks JSON: or_journal_mu, its one waiter, no live holder",
          a.locks_json_reply.text)
    check(not a.d2.holds, "orphaned: debug=2: no live thread holds it", a.d2.holds)
    check_no_deadlock(a, lt)


def scenario_cond():
    lt = c_target("cond")
    a = Answers(lt)
    check_unowned(a, lt, "condvar", "&cv_event_cond", NO_OWNER, lt.roles["waiter"],
                  profile_text="no owner", address=lt.objects["cv_event_cond"])


def scenario_sem():
    lt = c_target("sem")
    a = Answers(lt)
    check_unowned(a, lt, "semaphore", "&sm_slots_sem", r"value 0, no owner", lt.roles["waiter"],
                  profile_text="no owner", address=lt.objects["sm_slots_sem"])


def scenario_barrier():
    lt = c_target("barrier")
    a = Answers(lt)
    check_unowned(a, lt, "barrier", "&br_start_barrier", r"2 of 3 arrived, no owner",
                  lt.roles["waiter"], profile_text="no owner",
                  address=lt.objects["br_start_barrier"])


def scenario_join():
    lt = c_target("join")
    joiner, sleeper = lt.one("joiner"), lt.one("sleeper")
    check(joiner == lt.pid, "join: the joiner is the main thread")
    a = Answers(lt)
    wait = a.d2.wait(joiner)
    check(re.fullmatch(rf"pthread_join thread {sleeper}" + DURATION, wait or ""),
          f"join: main waits for 'pthread_join thread {sleeper}'", a.d2.describe(joiner))
    g = a.d1.group_of(joiner)
    check(g is not None and any(x.startswith(f"# waiting for pthread_join thread {sleeper}")
                                for x in g.lines),
          "join: debug=1: main's record says '# waiting for pthread_join thread N'",
          "\n".join(g.lines) if g else a.d1.text)
    check_no_deadlock(a, lt)


def scenario_once():
    lt = c_target("once")
    a = Answers(lt)
    check_unowned(a, lt, "pthread_once", "&on_setup_once", r"\(no owner recorded\)",
                  lt.roles["waiter"])
    initializer = lt.one("initializer")
    check(re.match(r"(clock_)?nanosleep\b", a.d2.wait(initializer) or ""),
          "once: the initializer, inside the once routine, waits for nothing but its sleep",
          a.d2.describe(initializer))


def scenario_futex():
    lt = c_target("futex")
    a = Answers(lt)
    waiter = lt.one("waiter")
    check_unowned(a, lt, "futex", "&app_futex_word", r"\(no owner recorded\)", [waiter])
    t = a.d2.by_tid.get(waiter)
    check(t is not None and "futex &app_futex_word (no owner recorded)" in t.lines[0],
          "futex: the header says 'futex &app_futex_word (no owner recorded)'",
          a.d2.describe(waiter))


def scenario_contention():
    lt = c_target("contention")
    workers = lt.roles["worker"]
    tids = set(lt.tids())
    time.sleep(SETTLE_S)
    daemon = ct.Daemon([lt.pid])
    bad = []
    waits = 0
    start = time.monotonic()
    for i in range(CONTENTION_DUMPS):
        r = daemon.get("/debug/pprof/goroutine?debug=2")
        if r.status != 200:
            bad.append(f"dump {i}: HTTP {r.status}")
            continue
        if "deadlock" in r.text:
            bad.append(f"dump {i} reports a deadlock:\n{r.text[:3000]}")
        for m in re.finditer(r"held by thread (\d+)", r.text):
            if int(m.group(1)) not in tids:
                line = r.text[r.text.rfind("\n", 0, m.start()) + 1:r.text.find("\n", m.end())]
                bad.append(f"dump {i} names a holder that is not a thread of the target: {line}")
        waits += len(re.findall(r"mutex &ct_counter_mu held by thread", r.text))
        if len(bad) > 5:
            break
    elapsed = time.monotonic() - start
    log(f"note    contention: {CONTENTION_DUMPS} dumps in {elapsed:.1f} s, "
        f"{waits} waits on ct_counter_mu seen")
    check(not bad, f"contention: {CONTENTION_DUMPS} dumps: no deadlock, every holder a thread "
          f"of the target {sorted(tids)}", "\n\n".join(bad))
    check(daemon.stop() == 0, "contention: cprofd exits 0 on SIGTERM", daemon.stderr())
    ct.check_not_stopped(lt.pid, "contention: after cprofd exited")
    before, = gdb_print(lt, "ct_counter")
    time.sleep(0.2)
    after, = gdb_print(lt, "ct_counter")
    check(isinstance(before, int) and isinstance(after, int) and after > before,
          f"contention: the workers still make progress ({before} -> {after})")
    check(set(workers) <= set(lt.tids()), "contention: every worker is still alive")


def scenario_heap_mutex():
    lt = c_target("heap-mutex")
    holder, waiters = lt.one("holder"), lt.roles["waiter"]
    address = lt.objects["heap"]
    a = Answers(lt)
    owner, = gdb_print(lt, "hp_session->mu.__data.__owner")
    check(owner == holder, f"heap-mutex: gdb: the heap mutex's owner is the holder {holder}")
    check_held(a, lt, "mutex", f"heap {address:#x}", owner, "hp-holder", waiters,
               "hp_holder_idle", address=address)


def scenario_stack_mutex():
    lt = c_target("stack-mutex")
    holder, waiters = lt.one("holder"), lt.roles["waiter"]
    address = lt.objects["stack"]
    a = Answers(lt)
    owner, = gdb_print(lt, "st_local_mu->__data.__owner")
    check(owner == holder, f"stack-mutex: gdb: the stack mutex's owner is the holder {holder}")
    check_held(a, lt, "mutex", f"stack of thread {holder} {address:#x}", owner, "st-holder",
               waiters, "st_holder_idle", address=address)


# --- C++ scenarios --------------------------------------------------------------------------

def cpp_target(scenario):
    return LockTarget("LOCKS_CPP_TARGET", scenario)


def std_held_scenario(scenario, kind, symbol, owner_expr, holder_role, waiter_role,
                      holder_name, holder_function, object_kind=None):
    lt = cpp_target(scenario)
    holder, waiters = lt.one(holder_role), lt.roles[waiter_role]
    a = Answers(lt)
    owner, = gdb_print(lt, owner_expr)
    check(owner == holder, f"{scenario}: gdb: {owner_expr} is the holder {holder}")
    check_held(a, lt, kind, "&" + symbol, owner, holder_name, waiters, holder_function,
               object_kind=object_kind, address=lt.objects[symbol])


def scenario_std_mutex():
    std_held_scenario("std-mutex", "std::mutex", "cx_registry_mu",
                      "cx_registry_mu._M_mutex.__data.__owner", "holder", "waiter", "cx-holder",
                      "cx_holder_idle")


def scenario_std_recursive_mutex():
    std_held_scenario("std-recursive-mutex", "std::recursive_mutex", "cx_tree_rmu",
                      "cx_tree_rmu._M_mutex.__data.__owner", "holder", "waiter", "cx-holder",
                      "cx_holder_idle")


def scenario_std_shared_mutex_writer():
    std_held_scenario("std-shared-mutex-writer", "std::shared_mutex (read)", "cx_config_smu",
                      "cx_config_smu._M_impl._M_rwlock.__data.__cur_writer", "writer", "reader",
                      "cx-writer", "cx_holder_idle",
                      object_kind=r"std::shared_mutex(?: \((?:read|write)\))?")


def scenario_std_shared_mutex_readers():
    lt = cpp_target("std-shared-mutex-readers")
    writer = lt.one("writer")
    a = Answers(lt)
    cur_writer, n_readers = gdb_print(lt, "cx_table_smu._M_impl._M_rwlock.__data.__cur_writer",
                                      "cx_table_smu._M_impl._M_rwlock.__data.__readers >> 3")
    check(cur_writer == 0 and n_readers == 2,
          f"std-shared-mutex-readers: gdb: no writer, 2 readers ({cur_writer}, {n_readers})")
    check_unowned(a, lt, "std::shared_mutex (write)", "&cx_table_smu",
                  r"read-locked by 2 readers", [writer],
                  object_kind=r"std::shared_mutex(?: \((?:read|write)\))?",
                  profile_text="read-locked by 2 readers", address=lt.objects["cx_table_smu"],
                  is_lock=True)


def scenario_std_condition_variable():
    lt = cpp_target("std-condition-variable")
    a = Answers(lt)
    check_unowned(a, lt, "std::condition_variable", "&cx_event_cv", NO_OWNER,
                  lt.roles["waiter"], profile_text="no owner",
                  address=lt.objects["cx_event_cv"])


def scenario_std_call_once():
    lt = cpp_target("std-call-once")
    a = Answers(lt)
    check_unowned(a, lt, "std::call_once", "&cx_init_flag",
                  r"\(no owner recorded\)", lt.roles["waiter"])


def scenario_std_abba():
    lt = cpp_target("std-abba")
    left, right = lt.one("left"), lt.one("right")
    a = Answers(lt)
    first, second = gdb_print(lt, "cx_first_mu._M_mutex.__data.__owner",
                              "cx_second_mu._M_mutex.__data.__owner")
    check(first == left and second == right,
          "std-abba: gdb: cx-left owns cx_first_mu, cx-right cx_second_mu")
    check_deadlock(a, lt, {left: ("std::mutex &cx_second_mu", second),
                           right: ("std::mutex &cx_first_mu", first)},
                   {left: "cx_left_take_second", right: "cx_right_take_first"})


class HungDemo(ct.Target):
    """demo/hung.c (ENV HUNG_DEMO): a forgotten unlock of a struct member, and an AB-BA
    deadlock, in a program whose threads are found by name."""

    scenario = "hung-demo"

    def __init__(self):
        super().__init__("HUNG_DEMO")


def scenario_hung_demo():
    lt = HungDemo()
    a = Answers(lt)
    by_name = {}
    for t in a.d2.threads:
        by_name.setdefault(t.name, []).append(t.tid)
    refresher, = by_name.get("cache-refresh", [None])
    post, = by_name.get("ledger-post", [None])
    audit, = by_name.get("ledger-audit", [None])
    readers = by_name.get("cache-reader", [])
    owners = gdb_print(lt, "cache.lock.__data.__owner", "accounts_mu.__data.__owner",
                       "journal_mu.__data.__owner")
    check(owners == [refresher, post, audit],
          f"hung-demo: gdb: the owners of cache.lock, accounts_mu, journal_mu ({owners})")
    check(len(readers) == 4, f"hung-demo: four cache readers ({readers})")
    # A member of a struct is named through DWARF, as C takes its address.
    for r in readers:
        t = a.d2.by_tid.get(r)
        check(t is not None and f"mutex &cache.lock held by thread {owners[0]}" in t.lines[0],
              f"hung-demo: reader {r} waits for &cache.lock held by the refresher",
              t.lines[0] if t else a.d2.text)
    check(a.d2.holds.get(refresher) == ["holds mutex &cache.lock, 4 threads waiting"],
          "hung-demo: the refresher holds &cache.lock with 4 waiting", a.d2.holds)
    check(a.d2.text.startswith("Found 1 deadlock (2 threads):\n"),
          "hung-demo: debug=2 opens with the ledger deadlock", a.d2.text[:600])
    # debug=1 keeps the report in comment lines: Go's text parser still reads the dump.
    path = os.path.join(tempfile.mkdtemp(prefix="cprofd-hung-"), "goroutine-debug1.txt")
    with open(path, "w") as f:
        f.write(a.d1.text)
    rc, out = ct.pprof("-raw", path)
    check(a.d1.text.startswith("# Found 1 deadlock (2 threads):\n") and rc == 0 and "threads/count" in out,
          "hung-demo: go tool pprof reads debug=1 with its deadlock report", out[-2000:])
    for waiter, obj, holder in ((post, "&journal_mu", audit), (audit, "&accounts_mu", post)):
        check(f' waits for mutex {obj} held by thread {holder} "' in a.d2.text,
              f"hung-demo: thread {waiter} waits for {obj} held by {holder}", a.d2.text[:600])


SCENARIOS = [
    scenario_forgotten_unlock, scenario_abba, scenario_cycle3, scenario_rwlock_writer,
    scenario_rwlock_readers, scenario_recursive, scenario_errorcheck, scenario_robust,
    scenario_pi, scenario_adaptive, scenario_orphaned, scenario_cond, scenario_sem,
    scenario_barrier, scenario_join, scenario_once, scenario_futex, scenario_contention,
    scenario_heap_mutex, scenario_stack_mutex,
    scenario_std_mutex, scenario_std_recursive_mutex, scenario_std_shared_mutex_writer,
    scenario_std_shared_mutex_readers, scenario_std_condition_variable, scenario_std_call_once,
    scenario_std_abba, scenario_hung_demo,
]


def main():
    """`test_locks.py [SCENARIO...]`: all of them by default, or those named (as in
    cprofd-test-locks: forgotten-unlock, std-abba, ...)."""
    chosen = SCENARIOS
    if len(sys.argv) > 1:
        names = {fn.__name__[len("scenario_"):].replace("_", "-"): fn for fn in SCENARIOS}
        unknown = [n for n in sys.argv[1:] if n not in names]
        require(not unknown, f"known scenarios ({', '.join(names)})", unknown)
        chosen = [names[n] for n in sys.argv[1:]]
    for fn in chosen:
        ct.scenario(run_scenario, fn)


def run_scenario(fn):
    """FN, where a Python error (a dump without the thread a check looks up) fails that
    scenario only."""
    try:
        fn()
    except ct.TestFailure:
        raise
    except Exception:
        import traceback
        traceback.print_exc()
        check(False, f"{fn.__name__} ran to its end")


if __name__ == "__main__":
    ct.run_test(main)
