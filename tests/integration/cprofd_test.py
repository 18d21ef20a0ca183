"""tests/integration/cprofd_test.py -- what the integration tests share: start the test
targets and the real daemon, talk HTTP to it, parse its thread dumps.

Every process started here is registered and killed on every exit path (normal exit,
exception, SIGTERM from meson's timeout): targets with SIGKILL, the daemon with SIGTERM
and then SIGKILL. The binaries come from the environment meson sets: CPROFD,
THREADS_TARGET, CHURN_TARGET, CPU_TARGET, LEAK_DEMO. Python's standard library only.
"""

import atexit
import gzip
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
THREADS_SOURCE = os.path.join(SOURCE_DIR, "tests", "targets", "threads.c")

_processes = []         # (Popen, kill signal) to clean up, in start order
_failures = []
_tmpdir = tempfile.TemporaryDirectory(prefix="cprofd-test-")


class TestFailure(Exception):
    pass


def env_binary(name):
    path = os.environ.get(name)
    if not path:
        raise TestFailure(f"${name} is not set: run the integration tests through meson test")
    if not os.access(path, os.X_OK):
        raise TestFailure(f"${name}={path} is not an executable")
    return path


# --- output and checks ------------------------------------------------------------------

def log(msg):
    print(msg, flush=True)


def check(cond, what, detail=None):
    """Records WHAT as passed or failed; the test goes on, and fails at the end."""
    if cond:
        log(f"ok      {what}")
    else:
        log(f"FAILED  {what}")
        if detail is not None:
            for line in str(detail).rstrip("\n").split("\n"):
                log(f"        | {line}")
        _failures.append(what)
    return bool(cond)


def require(cond, what, detail=None):
    """As check(), but nothing that follows makes sense if it fails."""
    if not check(cond, what, detail):
        raise TestFailure(what)


def run_test(main):
    """Runs MAIN, then cleans up; exits 0 when every check passed, else 1."""
    try:
        main()
    except TestFailure as e:
        log(f"ABORTED {e}")
        if not _failures:
            _failures.append(str(e))
    except Exception:
        import traceback
        traceback.print_exc()
        _failures.append("exception")
    finally:
        cleanup()
    if _failures:
        log(f"{len(_failures)} check(s) failed")
        sys.exit(1)
    log("all checks passed")
    sys.exit(0)


# --- processes --------------------------------------------------------------------------

def _register(proc, kill_signal):
    _processes.append((proc, kill_signal))
    return proc


_cleanup_hooks = []     # callables run by cleanup() after the processes are gone


def at_cleanup(fn):
    """Registers FN (no arguments) to run in cleanup(), after every process is killed and
    reaped, on every exit path: for what a test creates besides processes (a cgroup to
    remove). Last registered first; each runs once; an exception is logged, not raised."""
    _cleanup_hooks.append(fn)
    return fn


def _stop_processes(since=0):
    """Ends the processes registered since the SINCE-th, last first, and forgets them."""
    for proc, sig in reversed(_processes[since:]):
        if proc.poll() is not None:
            continue
        try:
            proc.send_signal(sig)
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    del _processes[since:]


def scenario(fn, *args):
    """Runs FN(*ARGS), one of several scenarios of a test: a requirement it misses ends it,
    not the others; the processes it started (targets, daemons) are ended after it."""
    mark = len(_processes)
    try:
        fn(*args)
    except TestFailure as e:
        log(f"ABORTED {e}")
        if not _failures:
            _failures.append(str(e))
    finally:
        _stop_processes(mark)


def cleanup():
    _stop_processes()
    while _cleanup_hooks:
        fn = _cleanup_hooks.pop()
        try:
            fn()
        except Exception as e:
            log(f"cleanup: {getattr(fn, '__name__', fn)}: {type(e).__name__}: {e}")


def _on_signal(signum, frame):
    log(f"killed by signal {signum}")
    cleanup()
    os._exit(1)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def spawn(argv, kill_signal=signal.SIGKILL, **kwargs):
    """Popen, registered for cleanup."""
    return _register(subprocess.Popen(argv, **kwargs), kill_signal)


def tmp_path(name):
    return os.path.join(_tmpdir.name, name)


_counter = 0


def _output_file(stem):
    global _counter
    _counter += 1
    return tmp_path(f"{stem}-{_counter}.out")


def wait_for_line(path, regex, proc, timeout=15.0):
    """The first match of REGEX in the file PATH that PROC writes, or a TestFailure."""
    pattern = re.compile(regex, re.M)
    deadline = time.monotonic() + timeout
    while True:
        with open(path, errors="replace") as f:
            text = f.read()
        m = pattern.search(text)
        if m:
            return m
        if proc.poll() is not None:
            raise TestFailure(f"{proc.args[0]} exited with {proc.returncode} before printing "
                              f"{regex!r}; output:\n{text}")
        if time.monotonic() > deadline:
            raise TestFailure(f"{proc.args[0]} did not print {regex!r} within {timeout} s")
        time.sleep(0.02)


class Target:
    """A test target started and waited for until it printed `ready PID`."""

    def __init__(self, env_name, args=(), env=None):
        """ENV: variables added to the target's environment."""
        self.path = env_binary(env_name)
        self.argv = [self.path, *args]
        self.out = _output_file(os.path.basename(self.path))
        with open(self.out, "w") as f:
            self.proc = _register(subprocess.Popen(self.argv, stdout=f, stdin=subprocess.DEVNULL,
                                                   env={**os.environ, **(env or {})}),
                                  signal.SIGKILL)
        m = wait_for_line(self.out, r"^ready (\d+)$", self.proc)
        self.pid = int(m.group(1))
        if self.pid != self.proc.pid:
            raise TestFailure(f"target printed ready {self.pid}, but its pid is {self.proc.pid}")

    def alive(self):
        return self.proc.poll() is None

    def tids(self):
        try:
            return sorted(int(t) for t in os.listdir(f"/proc/{self.pid}/task"))
        except FileNotFoundError:
            return []

    def kill(self):
        if self.alive():
            self.proc.kill()
        self.proc.wait()


class Hammer:
    """Client threads fetching PATHS from DAEMON in a loop until stopped; every outcome is
    kept as (monotonic time, path, status or exception text, Reply or None)."""

    def __init__(self, daemon, paths, clients=2, timeout=120):
        self.daemon = daemon
        self.paths = paths
        self.timeout = timeout
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.results = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self, i):
        n = i
        while not self.stopping.is_set():
            path = self.paths[n % len(self.paths)]
            n += 1
            try:
                r = self.daemon.get(path, timeout=self.timeout)
                outcome = (time.monotonic(), path, r.status, r)
            except Exception as e:        # a hang (timeout) or a dropped connection
                outcome = (time.monotonic(), path, f"{type(e).__name__}: {e}", None)
            with self.lock:
                self.results.append(outcome)

    def count(self):
        with self.lock:
            return len(self.results)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=self.timeout + 30)
        return self.results


def threads_target(args=()):
    return Target("THREADS_TARGET", args)


def churn_target(args=()):
    return Target("CHURN_TARGET", args)


def cpu_target(args=()):
    return Target("CPU_TARGET", args)


def leak_demo(args=()):
    return Target("LEAK_DEMO", args)


class Daemon:
    """cprofd on 127.0.0.1:0, started and waited for until it printed its address."""

    def __init__(self, pids, extra_args=(), env=None):
        """ENV: the daemon's whole environment (default: ours without DEBUGINFOD_URLS, so no
        test reaches for a debuginfod server it did not start)."""
        if env is None:
            env = {k: v for k, v in os.environ.items() if k != "DEBUGINFOD_URLS"}
        self.path = env_binary("CPROFD")
        self.argv = [self.path]
        for pid in pids:
            self.argv += ["--pid", str(pid)]
        self.argv += ["--listen", f"{HOST}:0", *extra_args]
        self.out = _output_file("cprofd")
        self.err = _output_file("cprofd-stderr")
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = _register(subprocess.Popen(self.argv, stdout=out, stderr=err,
                                                   stdin=subprocess.DEVNULL, env=env),
                                  signal.SIGTERM)
        m = wait_for_line(self.out, r"^listening on 127\.0\.0\.1:(\d+)$", self.proc)
        self.port = int(m.group(1))

    def alive(self):
        return self.proc.poll() is None

    def stdout(self):
        with open(self.out, errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.err, errors="replace") as f:
            return f.read()

    def stop(self, timeout=10):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    def get(self, path, timeout=30):
        return http_get(self.port, path, timeout)


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # http.client.HTTPMessage: case-insensitive
        self.body = body
        self.text = body.decode("utf-8", errors="replace")

    def header(self, name):
        return self.headers.get(name)

    def describe(self):
        head = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        text = self.text if len(self.text) < 3000 else self.text[:3000] + "\n[...]"
        return f"HTTP {self.status}\n{head}\n\n{text}"


def http_get(port, path, timeout=30):
    """GET PATH sent as is (no normalisation, no redirects followed)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        r = conn.getresponse()
        return Reply(r.status, r.headers, r.read())
    finally:
        conn.close()


# --- /proc --------------------------------------------------------------------------------

def task_ids(pid):
    """The thread ids of PID as /proc lists them (strings), [] once it is gone."""
    try:
        return os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []


def thread_stats(pid):
    """{tid: the fields of /proc/PID/task/TID/stat after "(comm)", and comm} of every
    thread of PID; threads that exit meanwhile are left out."""
    out = {}
    for tid in task_ids(pid):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[int(tid)] = (stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split())
    return out


def task_states(pid):
    """{tid: state letter} of every thread of PID, from /proc/PID/task/TID/stat."""
    return {tid: fields[0] for tid, (_, fields) in thread_stats(pid).items()}
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        states[int(tid)] = stat[stat.rindex(")") + 2]
    return states


def tracer_pid(pid):
    """TracerPid of PID (or of "PID/task/TID"); 0 when untraced or gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def release_gdb(gdb, fifo, timeout=30):
    """Lets the `read` gdb runs (`-ex "shell read line < FIFO"`) return, so gdb detaches and
    exits on its own: killing gdb instead could leave the target stopped (gdb stops
    threads with SIGSTOP). Waits TIMEOUT seconds for it to exit before terminating it."""
    deadline = time.monotonic() + 30
    while gdb.poll() is None and time.monotonic() < deadline:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:         # ENXIO: gdb's shell has not opened the FIFO yet
            time.sleep(0.05)
            continue
        os.write(fd, b"\n")
        os.close(fd)
        break
    try:
        gdb.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        gdb.terminate()
        gdb.wait(timeout=10)


def check_not_stopped(pid, what, samples=5):
    """No thread of PID is stopped ('t' traced or 'T' job control) or still traced, over
    a few samples (a thread caught between two snapshots would be a false alarm)."""
    bad = {}
    traced = 0
    for _ in range(samples):
        states = task_states(pid)
        bad = {tid: s for tid, s in states.items() if s in "tT"}
        traced = tracer_pid(pid) if states else 0
        if not bad and traced == 0:
            break
        time.sleep(0.2)
    return check(not bad and traced == 0,
                 f"{what}: no thread of {pid} left stopped or traced",
                 f"stopped: {bad}, TracerPid: {traced}")


# --- debug=1 ------------------------------------------------------------------------------

# "#\t0xLPC\tfunc+0xOFF\tfile:line", "#\t0xLPC\tfunc+0xOFF", "#\t0xLPC\tmodule+0xOFF",
# the tab writer may pad a column with more tabs.
DEBUG1_FRAME = re.compile(r"^#\t(0x[0-9a-f]+)\t+(\S.*?)\+(0x[0-9a-f]+)(?:\t+(\S.*):(\d+))?$")
DEBUG1_FRAME_BARE = re.compile(r"^#\t(0x[0-9a-f]+)$")
DEBUG1_PSEUDO = re.compile(r"^#\t+\[(truncated|no stack|not captured: .*)\]$")
DEBUG1_RECORD = re.compile(r"^(\d+) @((?: 0x[0-9a-f]+)*)$")
DEBUG1_HEADER = re.compile(r"^threads profile: total (\d+)$")
# A thread of a container's pid namespace: `TID (ns NSTID) "NAME"`.
THREADS_ITEM = re.compile(r'(\d+)(?: \(ns \d+\))? "((?:[^"\\]|\\.)*)"')


class Debug1Frame:
    def __init__(self, line, pc, function, offset, file, lineno):
        self.line = line
        self.pc = pc
        self.function = function
        self.offset = offset
        self.file = file
        self.lineno = lineno


class Group:
    def __init__(self, count, pcs):
        self.count = count
        self.pcs = pcs
        self.threads = []       # [(tid, name)]
        self.frames = []        # Debug1Frame
        self.pseudo = []        # "truncated", "no stack", ...
        self.waits = []         # "# waiting for …" and "# holds …" lines, without "# "
        self.lines = []

    def functions(self):
        return [f.function for f in self.frames]


def uncomment_deadlocks(text):
    """debug=1 gives the deadlock report as "# " comment lines: the same text without."""
    if not text.startswith("# Found "):
        return text
    end = text.find("\n\n")
    head, rest = (text, "") if end < 0 else (text[:end + 1], text[end + 1:])
    return "".join(line[2:] if line.startswith("# ") else line
                   for line in head.splitlines(keepends=True)) + rest


def split_deadlocks(text):
    """(deadlock report, rest): the "Found N deadlock…" report that opens a dump when
    threads wait for each other, up to its blank line (in debug=1 as comments); "" when
    there is none."""
    text = uncomment_deadlocks(text)
    if not text.startswith("Found "):
        return "", text
    end = text.find("\n\n")
    if end < 0:
        return text, ""
    return text[:end + 1], text[end + 2:]


class Debug1:
    def __init__(self, total, groups, errors, partial=None, deadlocks=""):
        self.deadlocks = deadlocks
        self.total = total
        self.groups = groups
        self.errors = errors    # malformed lines, with their numbers
        self.partial = partial  # the "# partial: …" trailer of an incomplete dump


def parse_debug1(text):
    deadlocks, text = split_deadlocks(text)
    lines = text.split("\n")
    errors = []
    m = DEBUG1_HEADER.match(lines[0]) if lines else None
    if not m:
        errors.append(f"1: bad header {lines[0]!r}")
        return Debug1(None, [], errors)
    total = int(m.group(1))
    groups = []
    group = None
    partial = None
    for n, line in enumerate(lines[1:], 2):
        if line == "":
            group = None
            continue
        if group is None and line.startswith("# partial: ") and partial is None:
            partial = line
            continue
        if partial is not None:
            errors.append(f"{n}: text after the '# partial:' trailer: {line!r}")
            continue
        if group is None:
            m = DEBUG1_RECORD.match(line)
            if not m:
                errors.append(f"{n}: expected a record line, got {line!r}")
                continue
            group = Group(int(m.group(1)), [int(x, 16) for x in m.group(2).split()])
            groups.append(group)
            group.lines.append(line)
            continue
        group.lines.append(line)
        if line.startswith("# threads:"):
            items = line[len("# threads:"):].split(", ")
            for item in items:
                im = THREADS_ITEM.fullmatch(item.strip())
                if not im:
                    errors.append(f"{n}: bad # threads: item {item!r}")
                    continue
                group.threads.append((int(im.group(1)), im.group(2)))
            continue
        m = DEBUG1_FRAME.match(line)
        if m:
            group.frames.append(Debug1Frame(line, int(m.group(1), 16), m.group(2),
                                            int(m.group(3), 16), m.group(4),
                                            int(m.group(5)) if m.group(5) else None))
            continue
        m = DEBUG1_FRAME_BARE.match(line)
        if m:
            group.frames.append(Debug1Frame(line, int(m.group(1), 16), None, None, None, None))
            continue
        m = DEBUG1_PSEUDO.match(line)
        if m:
            group.pseudo.append(m.group(1))
            continue
        if line.startswith("# waiting for ") or line.startswith("# holds "):
            group.waits.append(line[2:])
            continue
        errors.append(f"{n}: malformed line {line!r}")
    if groups and not (text.endswith("\n\n") or (partial and text.endswith("\n\n" + partial + "\n"))):
        errors.append("the last record does not end with a blank line")
    return Debug1(total, groups, errors, partial, deadlocks)


# --- debug=2 ------------------------------------------------------------------------------

DEBUG2_HEADER = re.compile(r'^thread (\d+)(?: \(ns \d+\))? "((?:[^"\\]|\\.)*)" \[(.*)\]:$')
DEBUG2_FUNC = re.compile(r"^(\S.*)\(\.\.\.\)$")
DEBUG2_LOC_FILE = re.compile(r"^\t(\S.*):(\d+)(?: \+(0x[0-9a-f]+))?$")
DEBUG2_LOC_MODULE = re.compile(r"^\t(\S.*)\+(0x[0-9a-f]+)$")


class Debug2Frame:
    def __init__(self, function, file=None, lineno=None, offset=None, module=None,
                 raw=""):
        self.function = function
        self.file = file
        self.lineno = lineno
        self.offset = offset    # None: no "+0x" (inlined frames)
        self.module = module    # set when the location is "module+0xoff"
        self.raw = raw

    def __repr__(self):
        return self.raw.replace("\n", " ")


class Thread:
    def __init__(self, tid, name, bracket):
        self.tid = tid
        self.name = name
        self.bracket = bracket  # "S (sleeping), read, 3 minutes"
        self.frames = []
        self.pseudo = []        # "truncated", "elided", "no stack", "not captured: …"
        self.holds = []         # "holds mutex &m, 3 threads waiting"
        self.lines = []

    @property
    def state(self):
        return self.bracket.split(", ")[0]

    def functions(self):
        return [f.function for f in self.frames]

    def describe(self):
        return "\n".join(self.lines)


PARTIAL_TRAILER = re.compile(r"\n\n(# partial: [^\n]*)\n$")


def debug2_partial(text):
    """The "# partial: …" trailer of an incomplete debug=2 dump, or None."""
    m = PARTIAL_TRAILER.search(text)
    return m.group(1) if m else None


def parse_debug2(text):
    """([Thread], [errors]); a "# partial: …" trailer and the deadlock report that opens
    the text (split_deadlocks) are left out."""
    threads = []
    errors = []
    _, text = split_deadlocks(text)
    m = PARTIAL_TRAILER.search(text)
    if m:
        text = text[:m.start()] + "\n"
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    thread = None
    i = 0
    while i < len(lines):
        line = lines[i]
        n = i + 1
        i += 1
        if line == "":
            if thread is None:
                errors.append(f"{n}: unexpected blank line")
            thread = None
            continue
        if thread is None:
            m = DEBUG2_HEADER.match(line)
            if not m:
                errors.append(f"{n}: expected a thread header, got {line!r}")
                continue
            thread = Thread(int(m.group(1)), m.group(2), m.group(3))
            thread.lines.append(line)
            threads.append(thread)
            continue
        thread.lines.append(line)
        if line.startswith("holds ") and not thread.frames and not thread.pseudo:
            thread.holds.append(line)
            continue
        if line == "...additional frames elided...":
            thread.pseudo.append("elided")
            continue
        if line == "[truncated]":
            thread.pseudo.append("truncated")
            if i < len(lines) and lines[i].startswith("\t("):
                thread.lines.append(lines[i])
                i += 1
            continue
        if line in ("[no stack]",) or line.startswith("[not captured:"):
            thread.pseudo.append(line.strip("[]"))
            continue
        m = DEBUG2_FUNC.match(line)
        if not m or i >= len(lines):
            errors.append(f"{n}: expected a function line, got {line!r}")
            continue
        loc = lines[i]
        i += 1
        thread.lines.append(loc)
        raw = line + "\n" + loc
        fm = DEBUG2_LOC_FILE.match(loc)
        if fm:
            thread.frames.append(Debug2Frame(m.group(1), fm.group(1), int(fm.group(2)),
                                             int(fm.group(3), 16) if fm.group(3) else None,
                                             raw=raw))
            continue
        mm = DEBUG2_LOC_MODULE.match(loc)
        if mm:
            thread.frames.append(Debug2Frame(m.group(1), None, None, int(mm.group(2), 16),
                                             module=mm.group(1), raw=raw))
            continue
        errors.append(f"{n + 1}: malformed location line {loc!r}")
    return threads, errors


def fetch_debug1(daemon, prefix=""):
    r = daemon.get(f"{prefix}/debug/pprof/goroutine?debug=1")
    return r, (parse_debug1(r.text) if r.status == 200 else None)


def fetch_debug2(daemon, prefix=""):
    r = daemon.get(f"{prefix}/debug/pprof/goroutine?debug=2")
    if r.status != 200:
        return r, None, None
    threads, errors = parse_debug2(r.text)
    return r, threads, errors


def by_name(threads):
    """{name: [Thread]}"""
    d = {}
    for t in threads:
        d.setdefault(t.name, []).append(t)
    return d


def same_file(a, b):
    """True when two spellings of a source path name the same file: the DWARF name may
    be relative to the compilation directory ("../tests/targets/threads.c")."""
    if a is None or b is None:
        return False
    a, b = os.path.normpath(a), os.path.normpath(b)
    if a == b:
        return True
    a_parts = [p for p in a.split("/") if p not in ("", ".", "..")]
    b_parts = [p for p in b.split("/") if p not in ("", ".", "..")]
    k = min(len(a_parts), len(b_parts))
    return k > 0 and a_parts[-k:] == b_parts[-k:]


_source_cache = {}


def source_line(path, lineno):
    if path not in _source_cache:
        with open(path) as f:
            _source_cache[path] = f.read().split("\n")
    lines = _source_cache[path]
    return lines[lineno - 1] if 0 < lineno <= len(lines) else None


# --- go tool pprof ----------------------------------------------------------------------

_go_env = None


def go_env():
    """The environment for `go`: HOME, caches and pprof's profile directory in a temporary
    directory, so nothing is written to the real home."""
    global _go_env
    if _go_env is None:
        home = tmp_path("go-home")
        os.makedirs(home, exist_ok=True)
        _go_env = dict(os.environ, HOME=home, GOCACHE=os.path.join(home, "cache"),
                       GOPATH=os.path.join(home, "go"), PPROF_TMPDIR=home, GOFLAGS="-mod=mod",
                       GOTOOLCHAIN="local")
    return _go_env


def pprof(*args, timeout=120):
    """Runs `go tool pprof ARGS`; returns (exit status, stdout + stderr)."""
    p = subprocess.run(["go", "tool", "pprof", *args], env=go_env(), capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def save(reply, name):
    path = tmp_path(name)
    with open(path, "wb") as f:
        f.write(reply.body)
    return path


def raw_samples(text):
    """Parses pprof -raw: [(values, [location ids leaf first], {labels})]."""
    samples = []
    lines = text.split("\n")
    i = 0
    while i < len(lines) and not lines[i].startswith("Samples:"):
        i += 1
    i += 2                                  # "Samples:" and the sample type line
    current = None
    while i < len(lines) and lines[i].strip() and not lines[i].startswith("Locations"):
        line = lines[i]
        m = re.match(r"^\s+(-?\d+(?:\s+-?\d+)*):\s*(.*)$", line)
        if m:
            current = ([int(v) for v in m.group(1).split()], m.group(2).split(), {})
            samples.append(current)
        elif current is not None and ":[" in line:
            for k, v in re.findall(r"(\S+):\[([^\]]*)\]", line):
                current[2][k] = v
        elif current is not None:
            current[1].extend(line.split())
        i += 1
    return samples


def raw_locations(text):
    """{location id: (address, [function names innermost first])} from pprof -raw."""
    locs = {}
    part = text.split("Locations", 1)[1] if "Locations" in text else ""
    part = part.split("Mappings", 1)[0]
    cur = None
    for line in part.split("\n"):
        # A location of cprofd's own making ("[created before tracking]") has no mapping.
        m = re.match(r"^\s*(\d+):\s+(0x[0-9a-f]+)(?:\s+M=\d+)?\s+(.*?)\s+\S*:\d+\s+s=\d+\s*$", line)
        m2 = re.match(r"^\s*(\d+):\s+(0x[0-9a-f]+)(?:\s+M=\d+)?\s*(.*)$", line)
        if m or m2:
            mm = m or m2
            cur = mm.group(1)
            locs[cur] = (int(mm.group(2), 16), [])
            rest = mm.group(3).strip()
            if rest.startswith("["):            # a synthetic name may hold spaces
                locs[cur][1].append(rest[:rest.index("]") + 1] if "]" in rest else rest)
            elif rest:
                locs[cur][1].append(rest.split()[0])
        elif cur and line.strip():
            locs[cur][1].append(line.split()[0])
    return locs


def stacks(text):
    """The sample stacks of pprof -raw output as lists of function names (innermost first,
    inlined frames included), with their values and labels."""
    locs = raw_locations(text)
    out = []
    for values, ids, labels in raw_samples(text):
        names = []
        for i in ids:
            names.extend(locs.get(i, (0, ["?"]))[1])
        out.append((values, names, labels))
    return out


# --- profile.proto, decoded here ----------------------------------------------------------
# What go tool pprof prints rounds some fields (Duration: 4 digits) and hides others
# (numeric label units, mapping of each location): the tests that need them exactly read
# the protobuf themselves. Field numbers from profile/profile.proto.

class ProtoError(Exception):
    pass


def _varint(buf, i):
    v = shift = 0
    while True:
        if i >= len(buf):
            raise ProtoError("truncated varint")
        b = buf[i]
        i += 1
        v |= (b & 0x7f) << shift
        if not b & 0x80:
            return v, i
        shift += 7
        if shift > 63:
            raise ProtoError("varint too long")


def _fields(buf):
    """[(field number, wire type, value)]: ints for varints, bytes for length-delimited."""
    out = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ProtoError(f"field {num}: length {n} past the end")
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = int.from_bytes(buf[i:i + 8], "little"), i + 8
        elif wt == 5:
            v, i = int.from_bytes(buf[i:i + 4], "little"), i + 4
        else:
            raise ProtoError(f"field {num}: wire type {wt}")
        out.append((num, wt, v))
    if i != len(buf):
        raise ProtoError("message runs past its end")
    return out


def _ints(wt, v):
    """A repeated integer field's values, packed (bytes) or not."""
    if wt == 0:
        return [v]
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(x)
    return out


def _signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


class PLabel:
    def __init__(self):
        self.key = self.str = self.num_unit = 0
        self.num = 0


class PSample:
    def __init__(self):
        self.location_ids = []
        self.values = []
        self.labels = {}        # key → str value
        self.num_labels = {}    # key → (num, unit)
        self.locations = []     # PLocation, leaf first (resolved)

    def frames(self):
        """[(function name, mapping filename)] leaf first, inlined frames expanded (the
        innermost first, as the Location's lines)."""
        out = []
        for loc in self.locations:
            module = loc.mapping.filename if loc.mapping else None
            if not loc.lines:
                out.append((None, module))
            for fn, _ in loc.lines:
                out.append((fn.name if fn else None, module))
        return out

    def functions(self):
        return [f for f, _ in self.frames()]


class PMapping:
    def __init__(self):
        self.id = self.memory_start = self.memory_limit = self.file_offset = 0
        self.filename = self.build_id = ""
        self.flags = {}


class PLocation:
    def __init__(self):
        self.id = self.mapping_id = self.address = 0
        self.lines = []         # [(PFunction, line)] innermost first
        self.mapping = None


class PFunction:
    def __init__(self):
        self.id = self.start_line = 0
        self.name = self.system_name = self.filename = ""


class Profile:
    def __init__(self):
        self.sample_types = []  # [(type, unit)]
        self.samples = []
        self.mappings = []
        self.locations = {}
        self.functions = {}
        self.strings = []
        self.time_nanos = self.duration_nanos = self.period = 0
        self.period_type = None
        self.comments = []
        self.default_sample_type = None


def decode_profile(data):
    """A Profile from the bytes of a (gzipped or not) profile.proto message; ProtoError
    when malformed or inconsistent in the ways go tool pprof rejects."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    p = Profile()
    raw = _fields(data)
    for num, wt, v in raw:
        if num == 6:
            p.strings.append(v.decode("utf-8", errors="replace"))
    if not p.strings or p.strings[0] != "":
        raise ProtoError("string_table[0] is not empty")

    def s(i):
        if i >= len(p.strings):
            raise ProtoError(f"string index {i} out of range")
        return p.strings[i]

    def value_type(buf):
        d = {n: v for n, _, v in _fields(buf)}
        return (s(d.get(1, 0)), s(d.get(2, 0)))

    functions_raw, locations_raw = [], []
    for num, wt, v in raw:
        if num == 1:
            p.sample_types.append(value_type(v))
        elif num == 2:
            smp = PSample()
            for n, w, x in _fields(v):
                if n == 1:
                    smp.location_ids += _ints(w, x)
                elif n == 2:
                    smp.values += [_signed(y) for y in _ints(w, x)]
                elif n == 3:
                    lab = PLabel()
                    for ln, _, lv in _fields(x):
                        if ln == 1:
                            lab.key = lv
                        elif ln == 2:
                            lab.str = lv
                        elif ln == 3:
                            lab.num = _signed(lv)
                        elif ln == 4:
                            lab.num_unit = lv
                    if lab.str:
                        smp.labels[s(lab.key)] = s(lab.str)
                    else:
                        smp.num_labels[s(lab.key)] = (lab.num, s(lab.num_unit))
            p.samples.append(smp)
        elif num == 3:
            m = PMapping()
            for n, _, x in _fields(v):
                if n == 1:
                    m.id = x
                elif n == 2:
                    m.memory_start = x
                elif n == 3:
                    m.memory_limit = x
                elif n == 4:
                    m.file_offset = x
                elif n == 5:
                    m.filename = s(x)
                elif n == 6:
                    m.build_id = s(x)
                elif 7 <= n <= 10:
                    m.flags[n] = x
            p.mappings.append(m)
        elif num == 4:
            locations_raw.append(v)
        elif num == 5:
            functions_raw.append(v)
        elif num == 9:
            p.time_nanos = _signed(v)
        elif num == 10:
            p.duration_nanos = _signed(v)
        elif num == 11:
            p.period_type = value_type(v)
        elif num == 12:
            p.period = _signed(v)
        elif num == 13:
            p.comments += [s(i) for i in _ints(wt, v)]
        elif num == 14:
            p.default_sample_type = s(v)

    for v in functions_raw:
        f = PFunction()
        for n, _, x in _fields(v):
            if n == 1:
                f.id = x
            elif n == 2:
                f.name = s(x)
            elif n == 3:
                f.system_name = s(x)
            elif n == 4:
                f.filename = s(x)
            elif n == 5:
                f.start_line = x
        if f.id == 0 or f.id in p.functions:
            raise ProtoError(f"function id {f.id} is 0 or repeated")
        p.functions[f.id] = f
    mappings = {}
    for m in p.mappings:
        if m.id == 0 or m.id in mappings:
            raise ProtoError(f"mapping id {m.id} is 0 or repeated")
        mappings[m.id] = m
    for v in locations_raw:
        loc = PLocation()
        for n, _, x in _fields(v):
            if n == 1:
                loc.id = x
            elif n == 2:
                loc.mapping_id = x
            elif n == 3:
                loc.address = x
            elif n == 4:
                d = {ln: lv for ln, _, lv in _fields(x)}
                fid = d.get(1, 0)
                if fid and fid not in p.functions:
                    raise ProtoError(f"location {loc.id}: unknown function {fid}")
                loc.lines.append((p.functions.get(fid), _signed(d.get(2, 0))))
        if loc.id == 0 or loc.id in p.locations:
            raise ProtoError(f"location id {loc.id} is 0 or repeated")
        if loc.mapping_id:
            if loc.mapping_id not in mappings:
                raise ProtoError(f"location {loc.id}: unknown mapping {loc.mapping_id}")
            loc.mapping = mappings[loc.mapping_id]
        p.locations[loc.id] = loc
    for smp in p.samples:
        if len(smp.values) != len(p.sample_types):
            raise ProtoError(f"a sample has {len(smp.values)} values for "
                             f"{len(p.sample_types)} sample types")
        for lid in smp.location_ids:
            if lid not in p.locations:
                raise ProtoError(f"a sample names unknown location {lid}")
            smp.locations.append(p.locations[lid])
    return p


# --- /metrics -------------------------------------------------------------------------------

def metric(text, name):
    """The value of the sample NAME (with its labels, if any, as written) in Prometheus
    text, or None."""
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None
