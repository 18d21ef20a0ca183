"""tests/integration/test_heap.py -- heap profiles (/debug/pprof/heap and allocs) of the heap
test programs, read by `go tool pprof` and by a protobuf decoder of our own:

- tests/targets/heap-leak.c (leak_site leaks 1 KiB a millisecond, churn_site allocates and
  frees 4 KiB 20 times a millisecond), cprofd at --heap-rate 32768:
  - parameters: debug=3 and seconds=x are refused with 400 and Go's messages;
  - debug=1 is Go's heap text: `heap profile: … @ heap/2*RATE`, totals that add up,
    records sorted by in-use bytes, leak_site's frames with file:line at its malloc call,
    a `# tracking since` line and a trailing block of `# VmRSS = N` memory facts;
  - heap?seconds=5: pprof -top -sample_index=inuse_space puts leak_site first with about
    5 s × 1000/s × 1 KiB (the values estimate true totals, scaled as Go scales them), and
    churn_site, present in alloc_space, near zero in use;
  - allocs?seconds=3: alloc_space is the default type, churn_site first with about
    3 s × 80 MiB/s; the full profiles' types, period, comment and default type;
- tests/targets/heap-cpp.cc: new/delete (from libstdc++'s operator new) at newdel_site in
  alloc_space, the leaking new at new_leak_site in inuse_space;
- tests/targets/heap-realloc.c, at --heap-rate 65536: the realloc-grown buffers at
  grow_site in inuse_space; calloc, reallocarray, posix_memalign, aligned_alloc, memalign
  and valloc each at its site in alloc_space, with what it allocated (counted once); the
  target, which checks every block it gets, runs on;
- the agent adds no thread to the target (a second thread would slow a single-threaded
  program's malloc for good);
- heap-leak --spin tracked at a high rate and let go by SIGTERM and SIGKILL in turn, ten
  times: the target runs on at full speed, with nothing left;
- heap-leak with jemalloc, tcmalloc and mimalloc preloaded (Debian's packages): leak_site
  first in inuse_space with about the bytes leaked, churn_site near zero (the frees of
  sampled blocks are seen), nothing left after cprofd exits;
- tests/targets/heap-plugin.c, which loads a module once tracked and allocates only through
  it: its leak shows (cprofd, seeing the module in the maps, has a borrowed thread hook it,
  as no sample can);
- cprofd ended by SIGTERM (the agent is stopped by a borrowed thread), then by SIGKILL (the
  agent's next sample finds cprofd gone), each on a target started with --heap: within
  seconds the target has no `/memfd:cprofd-agent` fd or mapping, no thread stopped, it keeps running, and malloc/free runs as fast as before
  cprofd came (`rate N pairs/s` of the target's spinner thread, per CPU second); a
  second cprofd then attaches to the same target again.
Tests poll with generous timeouts; no check is on a duration.
"""

import glob
import os
import random
import re
import signal
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402
from cprofd_test import decode_profile, pprof, save  # noqa: E402

TEXT = "text/plain; charset=utf-8"
# A tenth of Go's default: enough samples (~150 for leak_site over 5 s) for the
# estimates to stay well within the bounds checked, from a sampling error of ~8 %.
RATE = 32768
KIB = 1024
MIB = 1024 * 1024
AGENT_MEMFD = "/memfd:cprofd-agent"
HEAP_TYPES = [("alloc_objects", "count"), ("alloc_space", "bytes"),
              ("inuse_objects", "count"), ("inuse_space", "bytes")]
LEAK_SOURCE = os.path.join(ct.SOURCE_DIR, "tests", "targets", "heap-leak.c")
LEAK_SIZE_MIN = 1024
LEAK_SIZE_MAX = 1040    # the block's usable size would do too


def heap_leak_target(args=(), env=None):
    return ct.Target("HEAP_LEAK_TARGET", args, env)


def heap_cpp_target(args=()):
    return ct.Target("HEAP_CPP_TARGET", args)


def heap_realloc_target(args=()):
    return ct.Target("HEAP_REALLOC_TARGET", args)


# --- the agent in the target, seen from /proc ---------------------------------------------

def agent_fds(pid):
    out = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return out
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith(AGENT_MEMFD):
            out.append(f"{fd} -> {link}")
    return out


def agent_maps(pid):
    try:
        with open(f"/proc/{pid}/maps") as f:
            return [line.rstrip("\n") for line in f if AGENT_MEMFD in line]
    except FileNotFoundError:
        return []


def agent_traces(pid):
    """What the agent leaves visible in PID while it runs: its shared memory, as an fd and
    a mapping."""
    return {"fds": agent_fds(pid), "maps": agent_maps(pid)}


def thread_count(pid):
    return len(ct.task_ids(pid))


def wait_until(fn, timeout, interval=0.1):
    """Polls FN until it returns something true; (True, value) or (False, last value)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return True, v
        if time.monotonic() > deadline:
            return False, v
        time.sleep(interval)


def vm_rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


# --- the target's output ------------------------------------------------------------------

def output(target):
    with open(target.out, errors="replace") as f:
        return f.read()


def rates(target):
    return [int(x) for x in re.findall(r"^rate (\d+) pairs/s$", output(target), re.M)]


def progress(target):
    """The last `progress A B` line's numbers, or None."""
    m = re.findall(r"^progress (\d+) (\d+)$", output(target), re.M)
    return tuple(int(x) for x in m[-1]) if m else None


def wait_rates(target, n, timeout=30):
    """The next N `rate` lines the target prints."""
    start = len(rates(target))
    ok, _ = wait_until(lambda: len(rates(target)) >= start + n or not target.alive(), timeout)
    got = rates(target)[start:start + n]
    if len(got) != n:
        require(False, f"the target printed {n} more rate lines", output(target)[-2000:])
    return got


def check_runs_on(target, what, timeout=15):
    """The target is alive and its progress counters advance."""
    wait_until(lambda: not target.alive() or progress(target) is not None, timeout)
    before = progress(target)
    ok, _ = wait_until(lambda: not target.alive() or
                       (before is not None and
                        all(b > a for a, b in zip(before, progress(target)))), timeout)
    check(target.alive() and ok and "corrupt" not in output(target),
          f"{what}: the target runs on (progress {before} → {progress(target)})",
          output(target)[-2000:])


# --- debug=1 heap text --------------------------------------------------------------------

HEAP_HEADER = re.compile(r"^heap profile: (\d+): (\d+) \[(\d+): (\d+)\] @ heap/(\d+)$")
HEAP_RECORD = re.compile(r"^(-?\d+): (-?\d+) \[(-?\d+): (-?\d+)\] @((?: 0x[0-9a-f]+)*)$")
FACT = re.compile(r"^# (\w+) = (\S.*)$")


class HeapRecord:
    def __init__(self, m, lineno):
        self.inuse_objects, self.inuse_bytes, self.alloc_objects, self.alloc_bytes = \
            (int(m.group(i)) for i in range(1, 5))
        self.pcs = [int(x, 16) for x in m.group(5).split()]
        self.frames = []
        self.lineno = lineno
        self.lines = [m.group(0)]

    def functions(self):
        return [f.function for f in self.frames]


class HeapText:
    def __init__(self):
        self.header = None      # the header's match
        self.records = []
        self.comments = []      # (line number, line) of "# …" lines outside records
        self.facts = {}         # "# Key = value": {key: (value, line number)}
        self.errors = []


def parse_heap_text(text):
    h = HeapText()
    lines = text.split("\n")
    h.header = HEAP_HEADER.match(lines[0]) if lines else None
    if not h.header:
        h.errors.append(f"1: bad header {lines[0]!r}")
        return h
    record = None
    for n, line in enumerate(lines[1:], 2):
        if line == "":
            record = None
            continue
        if record is not None and line.startswith("#\t"):
            m = ct.DEBUG1_FRAME.match(line)
            if m:
                record.frames.append(ct.Debug1Frame(line, int(m.group(1), 16), m.group(2),
                                                    int(m.group(3), 16), m.group(4),
                                                    int(m.group(5)) if m.group(5) else None))
            elif ct.DEBUG1_FRAME_BARE.match(line) or ct.DEBUG1_PSEUDO.match(line):
                record.frames.append(ct.Debug1Frame(line, None, None, None, None, None))
            else:
                h.errors.append(f"{n}: malformed frame line {line!r}")
            record.lines.append(line)
            continue
        if line.startswith("# ") or line == "#":
            h.comments.append((n, line))
            m = FACT.match(line)
            if m:
                h.facts[m.group(1)] = (m.group(2), n)
            continue
        m = HEAP_RECORD.match(line)
        if m and record is None:
            record = HeapRecord(m, n)
            h.records.append(record)
            continue
        h.errors.append(f"{n}: unexpected line {line!r}")
    return h


def site_matches(name, site):
    """NAME is the function SITE: exactly, or qualified/with parameters as C++ prints it."""
    return name is not None and re.search(rf"(?<!\w){re.escape(site)}(?!\w)", name) is not None


def site_records(h, site):
    return [r for r in h.records if any(site_matches(f, site) for f in r.functions())]


def fetch_heap_text(daemon, what):
    r = daemon.get("/debug/pprof/heap?debug=1", timeout=60)
    require(r.status == 200, f"{what}: heap?debug=1: 200", r.describe())
    return r, parse_heap_text(r.text)


def wait_for_site(daemon, site, what, timeout=30):
    """Polls heap?debug=1 until a record with SITE and bytes in use shows (tracking starts
    with the first request); returns (reply, HeapText). A 503 is retried: tracking cannot
    start while no thread of the target waits in a syscall, and says "try again"."""
    deadline = time.monotonic() + timeout
    while True:
        r = daemon.get("/debug/pprof/heap?debug=1", timeout=60)
        if r.status == 503 and time.monotonic() < deadline:
            log(f"{what}: heap?debug=1: 503 {r.text.strip()}; retrying")
            time.sleep(0.5)
            continue
        require(r.status == 200, f"{what}: heap?debug=1: 200", r.describe())
        h = parse_heap_text(r.text)
        if any(rec.inuse_bytes > 0 for rec in site_records(h, site)):
            check(True, f"{what}: {site} shows in heap?debug=1")
            return r, h
        if time.monotonic() > deadline:
            require(False, f"{what}: {site} shows in heap?debug=1 within {timeout} s",
                    r.text[:4000])
        time.sleep(0.5)


# --- pprof ----------------------------------------------------------------------------------

TOP_ROW = re.compile(r"^\s*(-?\d+)B?\s+-?[\d.]+%\s+-?[\d.]+%\s+(-?\d+)B?\s+-?[\d.]+%\s+(.*?)"
                     r"(?: \(inline\))?\s*$")


def pprof_top(path, what, *args):
    """go tool pprof -top -unit=B ARGS PATH: (output, [(function, flat, cum)] in pprof's
    order); requires pprof to succeed."""
    rc, out = pprof("-top", "-unit=B", "-nodecount=1000", "-nodefraction=0",
                    "-edgefraction=0", *args, path)
    require(rc == 0, f"{what}: go tool pprof -top {' '.join(args)} reads it", out[-3000:])
    rows = []
    for line in out.split("\n"):
        m = TOP_ROW.match(line)
        if m:
            rows.append((m.group(3), int(m.group(1)), int(m.group(2))))
    return out, rows


def top_value(rows, site, cum=False):
    """SITE's flat (or cum) value in pprof -top rows; 0 when pprof left it out (nothing)."""
    vals = [(c if cum else f) for name, f, c in rows if site_matches(name, site)]
    return max(vals, key=abs) if vals else 0


def present(rows, site):
    return any(site_matches(name, site) for name, _, _ in rows)


def mb(v):
    return f"{v / 1e6:.2f} MB"


def check_within(v, lo, hi, what, detail=None):
    return check(lo <= v <= hi, f"{what}: {mb(v)} (expected {mb(lo)} to {mb(hi)})", detail)


# --- the reply and the profile ------------------------------------------------------------

def fetch_profile(daemon, path, what, timeout=60):
    r = daemon.get(path, timeout=timeout)
    require(r.status == 200, f"{what}: 200", r.describe())
    try:
        p = decode_profile(r.body)
    except Exception as e:      # noqa: BLE001 -- reported as a failure
        require(False, f"{what}: the reply decodes as profile.proto", f"{type(e).__name__}: {e}")
    return r, p


def check_profile_shape(r, p, name, rate, what, seconds=None):
    filename = f"{name}-delta" if seconds else name
    check(r.header("Content-Type") == "application/octet-stream",
          f"{what}: application/octet-stream", r.describe()[:500])
    check(r.header("Content-Disposition") == f'attachment; filename="{filename}"',
          f"{what}: attachment; filename=\"{filename}\"", r.header("Content-Disposition"))
    check(r.body[:2] == b"\x1f\x8b", f"{what}: gzip", r.body[:8])
    check(p.sample_types == HEAP_TYPES, f"{what}: sample types alloc_objects/count, "
          "alloc_space/bytes, inuse_objects/count, inuse_space/bytes", p.sample_types)
    check(p.period_type == ("space", "bytes"), f"{what}: period type space/bytes", p.period_type)
    check(p.period == rate, f"{what}: period {rate}", p.period)
    if name == "allocs":
        check(p.default_sample_type == "alloc_space", f"{what}: default sample type alloc_space",
              p.default_sample_type)
    else:
        # Go leaves it unset: pprof then shows the last type, inuse_space.
        check(p.default_sample_type in (None, "", "inuse_space"),
              f"{what}: default sample type unset or inuse_space", p.default_sample_type)
    check(p.samples, f"{what}: has samples")
    bad = [s.values for s in p.samples if len(s.values) != 4]
    check(not bad, f"{what}: four values per sample", bad[:5])
    if seconds:
        check(seconds * 0.95e9 <= p.duration_nanos <= seconds * 1e9 + 5e9,
              f"{what}: duration_nanos about {seconds} s ({p.duration_nanos / 1e9:.3f} s)")
    else:
        check(any("tracking since" in c for c in p.comments),
              f"{what}: a comment says since when tracking runs", p.comments)
        bad = [s.values for s in p.samples if len(s.values) == 4 and
               (min(s.values) < 0 or s.values[2] > s.values[0] or s.values[3] > s.values[1])]
        check(not bad, f"{what}: no negative values, in use ≤ allocated", bad[:5])
        bad = [s.values for s in p.samples if len(s.values) == 4 and
               (s.values[0] > 0) != (s.values[1] > 0)]
        check(not bad, f"{what}: objects and bytes are both zero or both not", bad[:5])


def check_bad_params(daemon):
    cases = [
        ("heap?debug=3", None, "debug"),
        ("allocs?debug=3", None, "debug"),
        ("heap?seconds=x", 'invalid value for "seconds" - must be a positive integer', None),
        ("allocs?seconds=x", 'invalid value for "seconds" - must be a positive integer', None),
        ("heap?seconds=-1", 'invalid value for "seconds" - must be a positive integer', None),
        ("heap?seconds=1&debug=1", "seconds and debug params are incompatible", None),
        ("heap?seconds=3600", "profile duration exceeds server's WriteTimeout", None),
    ]
    for q, body, names in cases:
        what = f"/debug/pprof/{q}"
        r = daemon.get(what)
        check(r.status == 400, f"{what}: 400", r.describe())
        check(r.header("X-Go-Pprof") == "1" and r.header("Content-Type") == TEXT and
              r.header("Content-Disposition") is None,
              f"{what}: X-Go-Pprof: 1, {TEXT}, no Content-Disposition", r.describe())
        check(r.text.endswith("\n") and r.text.count("\n") == 1, f"{what}: one line", r.describe())
        if body:
            check(r.text == body + "\n", f"{what}: {body!r}", r.describe())
        if names:
            check(names in r.text, f"{what}: the reason names {names}", r.text)


def stop_daemon(daemon, what):
    """SIGTERM: cprofd exits 0, and its stderr has no sanitizer report."""
    check("Sanitizer" not in daemon.stderr(), f"{what}: cprofd's stderr has no sanitizer "
          "report", daemon.stderr()[-3000:])
    status = daemon.stop()
    check(status == 0, f"{what}: cprofd exits 0 on SIGTERM ({status})", daemon.stderr()[-2000:])


def start_daemon(target, what, args=("--heap-rate", str(RATE))):
    try:
        daemon = ct.Daemon([target.pid], args)
    except ct.TestFailure as e:
        # The Daemon's error has its stdout; what a refused option says is on stderr.
        errs = sorted(glob.glob(ct.tmp_path("cprofd-stderr-*.out")), key=os.path.getmtime)
        err = open(errs[-1], errors="replace").read() if errs else ""
        require(False, f"{what}: cprofd {' '.join(args)} starts", f"{e}\nstderr:\n{err[-2000:]}")
    log(f"{what}: target {target.pid}, cprofd {daemon.proc.pid} on port {daemon.port}")
    return daemon


# --- heap-leak ------------------------------------------------------------------------------

def check_heap_text(target, r, h, what):
    """Go's heap text, plus cprofd's tracking line and memory facts."""
    check(r.header("Content-Type") == TEXT, f"{what}: {TEXT}", r.header("Content-Type"))
    check(not h.errors, f"{what}: parses", "\n".join(h.errors[:20]) + "\n" + r.text[:2000])
    require(h.header is not None, f"{what}: first line is `heap profile: A: B [C: D] @ heap/N`",
            r.text[:300])
    check(int(h.header.group(5)) == 2 * RATE, f"{what}: heap/{2 * RATE} (2 × the rate, as Go)",
          h.header.group(0))
    totals = [sum(getattr(x, k) for x in h.records)
              for k in ("inuse_objects", "inuse_bytes", "alloc_objects", "alloc_bytes")]
    header = [int(h.header.group(i)) for i in range(1, 5)]
    # Go adds one to the allocated bytes when they equal the bytes in use.
    check(header[:3] == totals[:3] and header[3] in (totals[3], totals[3] + 1),
          f"{what}: the header's totals are the records' sums", f"{header} vs {totals}")
    inuse = [x.inuse_bytes for x in h.records]
    check(inuse == sorted(inuse, reverse=True), f"{what}: records sorted by in-use bytes",
          inuse[:50])
    check(any(line.startswith("# tracking since ") for _, line in h.comments),
          f"{what}: a `# tracking since` line", h.comments[:10])

    recs = sorted(site_records(h, "leak_site"), key=lambda x: -x.inuse_bytes)
    if check(recs, f"{what}: a record with leak_site", r.text[:3000]):
        rec = recs[0]
        desc = "\n".join(rec.lines)
        fr = rec.frames
        check(len(fr) >= 3 and fr[0].function == "leak_site" and
              fr[1].function == "leaker_loop" and fr[2].function == "leaker_main",
              f"{what}: leak_site's record starts leak_site ← leaker_loop ← leaker_main", desc)
        if fr and fr[0].function == "leak_site":
            src = ct.source_line(LEAK_SOURCE, fr[0].lineno) if fr[0].lineno else None
            check(ct.same_file(fr[0].file, LEAK_SOURCE) and src is not None and "malloc(" in src,
                  f"{what}: leak_site's frame is heap-leak.c:LINE of its malloc call "
                  f"({fr[0].file}:{fr[0].lineno}: {src and src.strip()!r})", desc)
            check(fr[0].pc is not None and fr[0].pc in [pc - 1 for pc in rec.pcs] +
                  rec.pcs, f"{what}: the frame's pc is one of the record's", desc)
        check(rec.inuse_objects > 0 and
              LEAK_SIZE_MIN <= rec.inuse_bytes / rec.inuse_objects <= LEAK_SIZE_MAX,
              f"{what}: leak_site's blocks are 1 KiB", desc)
    churn = site_records(h, "churn_site")
    if churn and recs:
        # Unscaled, as Go's text is, one block caught live would be 4096 bytes.
        check(sum(x.inuse_bytes for x in churn) < max(0.1 * recs[0].inuse_bytes, 2 * 4096),
              f"{what}: churn_site has next to nothing in use",
              "\n".join("\n".join(x.lines) for x in churn))

    facts = h.facts
    missing = [k for k in ("VmRSS", "VmHWM", "RssAnon") if k not in facts]
    check(not missing, f"{what}: memory facts VmRSS, VmHWM, RssAnon", h.comments[-30:])
    if not missing:
        last_record = max((x.lineno for x in h.records), default=0)
        check(all(n > last_record for _, n in facts.values()),
              f"{what}: the facts come after the records")
        vals = {k: facts[k][0] for k in ("VmRSS", "VmHWM", "RssAnon")}
        ints = all(re.fullmatch(r"\d+", v) for v in vals.values())
        check(ints, f"{what}: the facts are integers", vals)
        proc = vm_rss_bytes(target.pid)
        if ints and proc:
            rss, hwm = int(vals["VmRSS"]), int(vals["VmHWM"])
            check(0.5 * proc <= rss <= 2 * proc,
                  f"{what}: VmRSS = {rss} is about /proc's, in bytes ({proc})")
            check(hwm >= 0.9 * rss, f"{what}: VmHWM ({hwm}) ≥ VmRSS ({rss})")


def check_leak_delta(daemon, what, seconds, filename, lo, hi):
    """heap?seconds=SECONDS of heap-leak, read by pprof: leak_site first in inuse_space with
    LO to HI bytes in use. Returns (saved path, pprof's output, its rows, leak_site's bytes)."""
    q = f"heap?seconds={seconds}"
    r, p = fetch_profile(daemon, f"/debug/pprof/{q}", f"{what}: {q}")
    check_profile_shape(r, p, "heap", RATE, f"{what}: {q}", seconds=seconds)
    path = save(r, filename)
    out, rows = pprof_top(path, f"{what}: {q}", "-sample_index=inuse_space")
    require(rows, f"{what}: {q}: pprof -top has rows", out[-3000:])
    check(site_matches(rows[0][0], "leak_site"), f"{what}: {q}: leak_site is first in inuse_space",
          out[-3000:])
    leak = top_value(rows, "leak_site")
    check_within(leak, lo, hi, f"{what}: {q}: leak_site in use ({seconds} s × 1000/s × 1 KiB = "
                 f"{seconds * 1.024:.2f} MB)", out[-3000:])
    return path, out, rows, leak


def check_leak():
    what = "heap-leak"
    target = heap_leak_target()
    threads = thread_count(target.pid)
    daemon = start_daemon(target, what)
    check_bad_params(daemon)
    r, h = wait_for_site(daemon, "leak_site", what)
    traces = agent_traces(target.pid)
    check(traces["fds"] and traces["maps"], f"{what}: the agent's `{AGENT_MEMFD}` is open "
          "and mapped in the target", traces)
    check(thread_count(target.pid) == threads, f"{what}: the agent added no thread "
          f"({threads} before, {thread_count(target.pid)} now)")
    time.sleep(2)           # for churn_site to have records too
    r, h = fetch_heap_text(daemon, what)
    check_heap_text(target, r, h, f"{what}: heap?debug=1")

    # In-use space over five seconds: ~5.1 MB at leak_site.
    path, out, rows, leak = check_leak_delta(daemon, what, 5, "heap-leak-delta.pb.gz", 3.5e6, 7e6)
    churn = top_value(rows, "churn_site")
    _, arows = pprof_top(path, f"{what}: heap?seconds=5", "-sample_index=alloc_space")
    check(present(arows, "churn_site"), f"{what}: heap?seconds=5: churn_site is in "
          "alloc_space", arows[:20])
    check(abs(churn) < 0.1 * max(leak, 1), f"{what}: heap?seconds=5: churn_site in use "
          f"{mb(churn)} is < 10 % of leak_site's", out[-3000:])
    check_within(top_value(arows, "leak_site"), 0.8 * leak, 1.25 * leak + 1,
                 f"{what}: heap?seconds=5: leak_site allocated about what it has in use",
                 arows[:20])

    # Allocated space over three seconds: ~246 MB at churn_site (20000/s × 4 KiB).
    r, p = fetch_profile(daemon, "/debug/pprof/allocs?seconds=3", f"{what}: allocs?seconds=3")
    check_profile_shape(r, p, "allocs", RATE, f"{what}: allocs?seconds=3", seconds=3)
    path = save(r, "heap-leak-allocs.pb.gz")
    out, rows = pprof_top(path, f"{what}: allocs?seconds=3")
    check("Type: alloc_space" in out, f"{what}: allocs?seconds=3: pprof shows alloc_space "
          "by default", out[:500])
    require(rows, f"{what}: allocs?seconds=3: pprof -top has rows", out[-3000:])
    check(site_matches(rows[0][0], "churn_site"),
          f"{what}: allocs?seconds=3: churn_site is first in alloc_space", out[-3000:])
    churn = top_value(rows, "churn_site")
    check_within(churn, 0.6 * 3 * 20000 * 4096, 1.5 * 3 * 20000 * 4096,
                 f"{what}: allocs?seconds=3: churn_site allocated "
                 "(3 s × 20000/s × 4 KiB = 246 MB)", out[-3000:])
    check(churn > 10 * top_value(rows, "leak_site"),
          f"{what}: allocs?seconds=3: churn_site allocated more than leak_site", out[-3000:])

    # The profiles since tracking started.
    for name in ("heap", "allocs"):
        r, p = fetch_profile(daemon, f"/debug/pprof/{name}", f"{what}: {name}")
        check_profile_shape(r, p, name, RATE, f"{what}: {name}")
    path = save(r, "heap-leak-allocs-full.pb.gz")
    out, rows = pprof_top(path, f"{what}: allocs", "-sample_index=inuse_space")
    check(rows and site_matches(rows[0][0], "leak_site"),
          f"{what}: allocs: leak_site is first in inuse_space", out[-3000:])

    ct.check_not_stopped(target.pid, what)
    check(daemon.alive(), f"{what}: cprofd is still running", daemon.stderr()[-2000:])
    stop_daemon(daemon, what)
    check_runs_on(target, f"{what}: after cprofd exited")


# --- heap-cpp -------------------------------------------------------------------------------

def check_cpp():
    what = "heap-cpp"
    target = heap_cpp_target()
    daemon = start_daemon(target, what)
    wait_for_site(daemon, "new_leak_site", what)

    # newdel_site: 3 s × 8000/s × (64 + 16 × 64 + 8) bytes = 26.3 MB allocated.
    r, p = fetch_profile(daemon, "/debug/pprof/allocs?seconds=3", f"{what}: allocs?seconds=3")
    check_profile_shape(r, p, "allocs", RATE, f"{what}: allocs?seconds=3", seconds=3)
    out, rows = pprof_top(save(r, "heap-cpp-allocs.pb.gz"), f"{what}: allocs?seconds=3",
                          "-cum")
    expected = 3 * 8000 * (64 + 16 * 64 + 8)
    check_within(top_value(rows, "newdel_site", cum=True), 0.5 * expected, 2 * expected,
                 f"{what}: allocs?seconds=3: newdel_site allocated (26.3 MB)", out[-3000:])

    # new_leak_site: 3 s × 1000/s × 512 bytes = 1.5 MB in use.
    r, p = fetch_profile(daemon, "/debug/pprof/heap?seconds=3", f"{what}: heap?seconds=3")
    check_profile_shape(r, p, "heap", RATE, f"{what}: heap?seconds=3", seconds=3)
    out, rows = pprof_top(save(r, "heap-cpp-heap.pb.gz"), f"{what}: heap?seconds=3",
                          "-cum", "-sample_index=inuse_space")
    leak = top_value(rows, "new_leak_site", cum=True)
    expected = 3 * 1000 * 512
    check_within(leak, 0.4 * expected, 2.5 * expected,
                 f"{what}: heap?seconds=3: new_leak_site in use (1.5 MB)", out[-3000:])
    newdel = top_value(rows, "newdel_site", cum=True)
    check(abs(newdel) < 0.1 * max(leak, 1),
          f"{what}: heap?seconds=3: newdel_site in use {mb(newdel)} is < 10 % of "
          "new_leak_site's", out[-3000:])

    ct.check_not_stopped(target.pid, what)
    stop_daemon(daemon, what)
    check_runs_on(target, f"{what}: after cprofd exited")


# --- heap-realloc -----------------------------------------------------------------------------

OTHER_SITES = ("calloc_site", "reallocarray_site", "posix_memalign_site",
               "aligned_alloc_site", "memalign_site", "valloc_site")


REALLOC_RATE = 65536    # ~2000 samples a second of its ~130 MB/s


def check_realloc():
    what = "heap-realloc"
    target = heap_realloc_target()
    daemon = start_daemon(target, what, ("--heap-rate", str(REALLOC_RATE)))
    wait_for_site(daemon, "grow_site", what)
    check_runs_on(target, f"{what}: while tracked")

    # One 16 KiB buffer kept every 10 ms: 3 s × 100/s × 16 KiB = 4.9 MB in use.
    r, p = fetch_profile(daemon, "/debug/pprof/heap?seconds=3", f"{what}: heap?seconds=3")
    check_profile_shape(r, p, "heap", REALLOC_RATE, f"{what}: heap?seconds=3", seconds=3)
    out, rows = pprof_top(save(r, "heap-realloc-heap.pb.gz"), f"{what}: heap?seconds=3",
                          "-sample_index=inuse_space")
    check(rows and site_matches(rows[0][0], "grow_site"),
          f"{what}: heap?seconds=3: grow_site is first in inuse_space", out[-3000:])
    expected = 3 * 100 * 16 * KIB
    check_within(top_value(rows, "grow_site"), 0.25 * expected, 3 * expected,
                 f"{what}: heap?seconds=3: grow_site in use (4.9 MB)", out[-3000:])

    # Each other call: 3 s × 1000/s × 4 KiB = 12.3 MB allocated, nothing kept;
    # reallocarray_site's 2 KiB block grown to 4 KiB allocates 2 + 4 KiB (or, counting
    # only what a realloc adds, 2 + 2 KiB: within the bounds too).
    r, p = fetch_profile(daemon, "/debug/pprof/allocs?seconds=3", f"{what}: allocs?seconds=3")
    check_profile_shape(r, p, "allocs", REALLOC_RATE, f"{what}: allocs?seconds=3", seconds=3)
    path = save(r, "heap-realloc-allocs.pb.gz")
    out, rows = pprof_top(path, f"{what}: allocs?seconds=3")
    for site in OTHER_SITES:
        expected = 3 * 1000 * (6144 if site == "reallocarray_site" else 4096)
        check_within(top_value(rows, site), 0.6 * expected, 1.6 * expected,
                     f"{what}: allocs?seconds=3: {site} allocated ({mb(expected)})",
                     out[-3000:])
    _, irows = pprof_top(path, f"{what}: allocs?seconds=3", "-sample_index=inuse_space")
    for site in OTHER_SITES:
        v = top_value(irows, site)
        check(abs(v) < 0.05 * 3 * 1000 * 4096, f"{what}: allocs?seconds=3: {site} has "
              f"next to nothing in use ({mb(v)})", irows[:20])

    ct.check_not_stopped(target.pid, what)
    stop_daemon(daemon, what)
    check_runs_on(target, f"{what}: after cprofd exited")
    check("corrupt" not in output(target), f"{what}: every block the target got was sound",
          output(target)[-2000:])


# --- detaching ------------------------------------------------------------------------------

def attach(target, what):
    """cprofd --heap on TARGET, tracking from the start; returns the daemon."""
    daemon = start_daemon(target, what, ["--heap"])
    ok, _ = wait_until(lambda: agent_maps(target.pid), 30)
    require(ok, f"{what}: --heap: the agent's `{AGENT_MEMFD}` is mapped in the target "
            f"within 30 s", f"{agent_traces(target.pid)}\ncprofd's stderr:\n"
            f"{daemon.stderr()[-2000:]}")
    wait_for_site(daemon, "leak_site", what)
    return daemon


def agent_left(target, timeout=10):
    """Whether TARGET is alive with no trace of the agent within TIMEOUT seconds."""
    ok, _ = wait_until(lambda: not target.alive() or not any(agent_traces(target.pid).values()),
                       timeout)
    return ok and target.alive()


def check_detached(target, what, baseline):
    check(agent_left(target), f"{what}: within 10 s the target has no `{AGENT_MEMFD}` fd or "
          "mapping", agent_traces(target.pid))
    ct.check_not_stopped(target.pid, what)
    check_runs_on(target, what)
    wait_rates(target, 1)       # a second that may have begun before the agent left
    after = statistics.median(wait_rates(target, 3))
    check(after >= 0.5 * baseline, f"{what}: malloc/free runs as fast as before cprofd came "
          f"({after} pairs/s, before {baseline})", output(target)[-1000:])


def check_detach(how):
    what = f"detach on {'SIGTERM' if how == signal.SIGTERM else 'SIGKILL'}"
    target = heap_leak_target(["--spin"])
    wait_rates(target, 1)
    baseline = statistics.median(wait_rates(target, 3))
    log(f"{what}: {baseline} pairs/s before cprofd")
    daemon = attach(target, what)
    log(f"{what}: {statistics.median(wait_rates(target, 3))} pairs/s while tracked")
    if how == signal.SIGTERM:
        status = daemon.stop()
        check(status == 0, f"{what}: cprofd exits 0 on SIGTERM ({status})",
              daemon.stderr()[-2000:])
    else:
        os.kill(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait()
    check_detached(target, what, baseline)
    if how != signal.SIGTERM:
        return
    # A cprofd started again (a restarted service) finds the agent it left and tracks.
    what = "attach again after SIGTERM"
    daemon = attach(target, what)
    stop_daemon(daemon, what)
    check_detached(target, what, baseline)


def let_go(daemon, target, what):
    """No thread of TARGET stopped; cprofd ended by SIGTERM; then the agent's memory is gone
    within 10 s and the target runs on."""
    ct.check_not_stopped(target.pid, what)
    stop_daemon(daemon, what)
    check(agent_left(target), f"{what}: within 10 s of cprofd's exit the target has no "
          f"`{AGENT_MEMFD}`", agent_traces(target.pid))
    check_runs_on(target, f"{what}: after cprofd exited")


# --- attach and detach, again and again --------------------------------------------------------

def check_cycles(n=10):
    """cprofd --heap at a high rate on heap-leak --spin (three threads allocating), stopped
    after a random moment by SIGTERM and SIGKILL in turn, N times: every time the agent
    comes and goes, and the target runs on at full speed with nothing left."""
    what = "attach/detach cycles"
    target = heap_leak_target(["--spin"])
    wait_rates(target, 1)
    baseline = statistics.median(wait_rates(target, 3))
    rng = random.Random(1)
    for i in range(n):
        daemon = ct.Daemon([target.pid], ["--heap", "--heap-rate", "4096"])
        ok, _ = wait_until(lambda: agent_maps(target.pid), 30)
        require(ok, f"{what}: {i}: the agent is mapped within 30 s", daemon.stderr()[-2000:])
        time.sleep(rng.uniform(0, 0.5))
        if i % 2:
            os.kill(daemon.proc.pid, signal.SIGKILL)
            daemon.proc.wait()
        else:
            require(daemon.stop() == 0, f"{what}: {i}: cprofd exits 0 on SIGTERM",
                    daemon.stderr()[-2000:])
        require(agent_left(target), f"{what}: {i}: within 10 s of cprofd's end the target "
                f"has no `{AGENT_MEMFD}`", agent_traces(target.pid))
    log(f"{what}: {n} times attached and gone, by SIGTERM and SIGKILL in turn")
    check_detached(target, what, baseline)


# --- other allocators ------------------------------------------------------------------------

# Debian's packages of the allocators that replace malloc by exporting its names.
ALLOCATORS = [("jemalloc", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"),
              ("tcmalloc", "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"),
              ("mimalloc", "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2")]


def check_allocator(name, lib):
    """heap-leak on another allocator, preloaded: the hooks call it, frees of sampled blocks
    are seen (churn_site near zero in use), and the agent leaves as it came."""
    what = f"heap-leak on {name}"
    require(os.path.exists(lib), f"{what}: {lib} is installed")
    target = heap_leak_target(env={"LD_PRELOAD": lib})
    with open(f"/proc/{target.pid}/maps") as f:
        require(lib in f.read(), f"{what}: the target maps {lib}")
    daemon = start_daemon(target, what)
    wait_for_site(daemon, "leak_site", what)
    _, out, rows, leak = check_leak_delta(daemon, what, 3, f"heap-{name}-delta.pb.gz", 2.0e6, 4.5e6)
    check(abs(top_value(rows, "churn_site")) < 0.1 * max(leak, 1),
          f"{what}: heap?seconds=3: churn_site, freed as fast as allocated, is < 10 % of "
          "leak_site in use", out[-3000:])
    let_go(daemon, target, what)


# --- modules loaded later -------------------------------------------------------------------

def check_plugin():
    """A module loaded after the agent started, through which alone the target allocates:
    no sample through a module hooked before can notice it, so cprofd, seeing it in the
    maps, has a borrowed thread hook it."""
    what = "module loaded later"
    target = ct.Target("HEAP_PLUGIN_TARGET", [ct.env_binary("HEAP_PLUGIN_LIB")])
    daemon = start_daemon(target, what, ("--heap", "--heap-rate", str(RATE)))
    ok, _ = wait_until(lambda: agent_maps(target.pid), 30)
    require(ok, f"{what}: --heap: the agent's `{AGENT_MEMFD}` is mapped in the target "
            "within 30 s", daemon.stderr()[-2000:])
    os.kill(target.pid, signal.SIGUSR1)
    ct.wait_for_line(target.out, r"^loaded$", target.proc)
    r, h = wait_for_site(daemon, "plugin_leak_site", what)
    recs = site_records(h, "plugin_leak_site")
    check(recs and all(LEAK_SIZE_MIN <= x.inuse_bytes / x.inuse_objects <= LEAK_SIZE_MAX
                       for x in recs if x.inuse_objects),
          f"{what}: plugin_leak_site's blocks are 1 KiB",
          "\n".join("\n".join(x.lines) for x in recs))
    check("hooked the modules loaded since" in daemon.stderr(),
          f"{what}: cprofd had a borrowed thread hook the new module", daemon.stderr()[-2000:])
    let_go(daemon, target, what)


# --- the uprobe fallback -------------------------------------------------------------------

def check_uprobes():
    what = "heap-leak --heap-uprobes"
    target = heap_leak_target()
    daemon = start_daemon(target, what, ("--heap-rate", str(RATE), "--heap-uprobes"))
    r, h = wait_for_site(daemon, "leak_site", what)
    check(not any(agent_traces(target.pid).values()),
          f"{what}: no agent in the target: no `{AGENT_MEMFD}`", agent_traces(target.pid))
    r, p = fetch_profile(daemon, "/debug/pprof/heap?seconds=4", f"{what}: heap?seconds=4")
    check_profile_shape(r, p, "heap", RATE, f"{what}: heap?seconds=4", seconds=4)
    path = save(r, "heap-uprobes-delta.pb.gz")
    out, rows = pprof_top(path, f"{what}: heap?seconds=4", "-sample_index=inuse_space")
    require(rows, f"{what}: heap?seconds=4: pprof -top has rows", out[-3000:])
    check(site_matches(rows[0][0], "leak_site"),
          f"{what}: heap?seconds=4: leak_site is first in inuse_space (the allocator's own "
          "frame is not shown)", out[-3000:])
    # Records can be lost at this call rate, and with them the pairs of an entry and
    # its return: the estimate may only fall short.
    check_within(top_value(rows, "leak_site"), 0.5e6, 6e6, f"{what}: heap?seconds=4: "
                 "leak_site in use (4 s × 1000/s × 1 KiB = 4.1 MB at most)", out[-3000:])
    ct.check_not_stopped(target.pid, what)
    stop_daemon(daemon, what)
    check_runs_on(target, f"{what}: after cprofd exited")


def main():
    require(shutil.which("go") is not None, "go (golang-go) is installed")
    ct.scenario(check_leak)
    ct.scenario(check_cpp)
    ct.scenario(check_realloc)
    ct.scenario(check_detach, signal.SIGTERM)
    ct.scenario(check_detach, signal.SIGKILL)
    ct.scenario(check_cycles)
    ct.scenario(check_plugin)
    for name, lib in ALLOCATORS:
        ct.scenario(check_allocator, name, lib)
    ct.scenario(check_uprobes)


if __name__ == "__main__":
    ct.run_test(main)
