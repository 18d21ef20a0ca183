"""tests/integration/cprofd_test.py -- what the integration tests share: start the test
targets and the real daemon, talk HTTP to it, parse its thread dumps.

Every process started here is registered and killed on every exit path (normal exit,
exception, SIGTERM from meson's timeout): targets with SIGKILL, the daemon with SIGTERM
and then SIGKILL. The binaries come from the environment meson sets: CPROFD,
THREADS_TARGET, CHURN_TARGET, LEAK_DEMO. Python's standard library only.
"""

import atexit
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
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


def cleanup():
    for proc, sig in reversed(_processes):
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
    _processes.clear()


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

    def __init__(self, env_name, args=()):
        self.path = env_binary(env_name)
        self.argv = [self.path, *args]
        self.out = _output_file(os.path.basename(self.path))
        with open(self.out, "w") as f:
            self.proc = _register(subprocess.Popen(self.argv, stdout=f, stdin=subprocess.DEVNULL),
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


def threads_target(args=()):
    return Target("THREADS_TARGET", args)


def churn_target(args=()):
    return Target("CHURN_TARGET", args)


def leak_demo(args=()):
    return Target("LEAK_DEMO", args)


class Daemon:
    """cprofd on 127.0.0.1:0, started and waited for until it printed its address."""

    def __init__(self, pids, extra_args=()):
        self.path = env_binary("CPROFD")
        self.argv = [self.path]
        for pid in pids:
            self.argv += ["--pid", str(pid)]
        self.argv += ["--listen", f"{HOST}:0", *extra_args]
        self.out = _output_file("cprofd")
        self.err = _output_file("cprofd-stderr")
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = _register(subprocess.Popen(self.argv, stdout=out, stderr=err,
                                                   stdin=subprocess.DEVNULL),
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

def task_states(pid):
    """{tid: state letter} of every thread of PID, from /proc/PID/task/TID/stat."""
    states = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return states
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
THREADS_ITEM = re.compile(r'(\d+) "((?:[^"\\]|\\.)*)"')


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
        self.lines = []

    def functions(self):
        return [f.function for f in self.frames]


class Debug1:
    def __init__(self, total, groups, errors, partial=None):
        self.total = total
        self.groups = groups
        self.errors = errors    # malformed lines, with their numbers
        self.partial = partial  # the "# partial: …" trailer of an incomplete dump


def parse_debug1(text):
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
        errors.append(f"{n}: malformed line {line!r}")
    if groups and not (text.endswith("\n\n") or (partial and text.endswith("\n\n" + partial + "\n"))):
        errors.append("the last record does not end with a blank line")
    return Debug1(total, groups, errors, partial)


# --- debug=2 ------------------------------------------------------------------------------

DEBUG2_HEADER = re.compile(r'^thread (\d+) "((?:[^"\\]|\\.)*)" \[(.*)\]:$')
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
    """([Thread], [errors]); a "# partial: …" trailer is left out (see debug2_partial)."""
    threads = []
    errors = []
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
