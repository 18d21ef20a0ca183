"""tests/integration/test_cpu.py -- CPU profiles (/debug/pprof/profile) of the cpu test
program (tests/targets/cpu.c), read by `go tool pprof` and by a protobuf decoder of our own:

- the reply: gzipped pprof, attachment "profile", sample types samples/count and
  cpu/nanoseconds, period 1e9/hz, duration_nanos, thread_id and thread_name labels that
  match /proc, and about as many samples as the target's CPU time × hz;
- what it shows (at 500 Hz, for enough samples): hot_leaf has ≥ 80 % of the busy threads'
  samples flat, reached through path_a and path_b 2:1; ≥ 99 % of stacks end at
  start_thread/clone3 or _start, the rest in a [truncated] frame; the syscall thread's
  samples carry kernel frames
  ([kernel.kallsyms], entry_SYSCALL_64 or do_syscall_64), first in the stack, above
  syscall_loop, in about the share of its time /proc says it spends in the kernel;
- a thread created mid-profile is sampled; mode=fp gives a valid profile; concurrent
  requests (same target, other rates, another target) each get full profiles;
- parameters: hz and mode are strict (400 with X-Go-Pprof: 1), seconds as Go's (lenient,
  bounded by the write timeout); a client that disconnects ends its request, and the
  perf events are closed once the last request is done;
- perf_event_open refused (tests/tools/no-perf): 503 with a one-line reason;
- the target is never left stopped and keeps running.
Exits 77 (skipped) when this machine refuses perf events to us, too.
"""

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402
from cprofd_test import decode_profile, metric, pprof, save  # noqa: E402

TEXT = "text/plain; charset=utf-8"
CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOTS = {"start_thread", "clone3", "__clone3", "clone", "__clone", "_start",
         "__libc_start_main", "__libc_start_main_impl", "__libc_start_call_main"}
KERNEL = "[kernel.kallsyms]"
KERNEL_START = 0xffff800000000000   # x86-64: the kernel's half of the address space


# --- helpers ------------------------------------------------------------------------------

def perf_events_allowed(pid):
    """Whether we may open a cpu-clock sampling event of PID's user time ourselves (the
    daemon runs as us): perf_event_open(2) through ctypes, PERF_ATTR_SIZE_VER0."""
    nr = {"x86_64": 298, "aarch64": 241}.get(os.uname().machine)
    if nr is None:
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    attr = bytearray(64)
    attr[0:4] = (1).to_bytes(4, "little")           # PERF_TYPE_SOFTWARE
    attr[4:8] = (64).to_bytes(4, "little")          # size
    attr[8:16] = (0).to_bytes(8, "little")          # PERF_COUNT_SW_CPU_CLOCK
    attr[16:24] = (10_000_000).to_bytes(8, "little")  # sample_period
    attr[40:48] = (1 | 1 << 5 | 1 << 6).to_bytes(8, "little")  # disabled, exclude_kernel, _hv
    buf = (ctypes.c_char * 64).from_buffer(attr)
    fd = libc.syscall(nr, buf, pid, -1, -1, 0)
    if fd < 0:
        log(f"perf_event_open refused to us: {os.strerror(ctypes.get_errno())}")
        return False
    os.close(fd)
    return True


def thread_times(pid):
    """{tid: (comm, utime + stime, stime) in clock ticks} of every thread of PID."""
    return {tid: (comm, int(f[11]) + int(f[12]), int(f[12]))
            for tid, (comm, f) in ct.thread_stats(pid).items()}
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        utime, stime = int(fields[11]), int(fields[12])
        out[int(tid)] = (comm, utime + stime, stime)
    return out


def thread_start_ns(pid, tid):
    """When TID started, wall-clock nanoseconds (to a clock tick)."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    ticks = int(stat[stat.rindex(")") + 2:].split()[19])
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / CLK_TCK
    return int((time.time() - age) * 1e9)


def process_cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def perf_fds(pid):
    """How many perf event fds PID holds."""
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[perf_event]":
                    n += 1
            except OSError:
                pass
    except FileNotFoundError:
        pass
    return n


def metrics(daemon):
    return daemon.get("/metrics").text


def wait_in_progress(daemon, want, timeout=5.0):
    """Polls /metrics until cprofd_requests_in_progress is WANT; returns (ok, seconds, the
    last value seen)."""
    t0 = time.monotonic()
    v = None
    while time.monotonic() - t0 < timeout:
        v = metric(metrics(daemon), "cprofd_requests_in_progress")
        if v == want:
            return True, time.monotonic() - t0, v
        time.sleep(0.05)
    return False, time.monotonic() - t0, v


class Fetched:
    """A CPU profile request, its reply, the decoded profile and what /proc said about the
    target's threads around it."""

    def __init__(self, daemon, path, pid, timeout=60):
        self.path = path
        self.before = thread_times(pid)
        self.cpu_before = process_cpu_ticks(pid)
        self.t0 = time.monotonic()
        self.wall0 = time.time_ns()
        self.reply = daemon.get(path, timeout=timeout)
        self.took = time.monotonic() - self.t0
        self.cpu_after = process_cpu_ticks(pid)
        self.after = thread_times(pid)
        self.profile = None
        self.error = None
        if self.reply.status == 200:
            try:
                self.profile = decode_profile(self.reply.body)
            except Exception as e:      # noqa: BLE001 -- reported as a check failure
                self.error = f"{type(e).__name__}: {e}"

    def total(self):
        return sum(s.values[0] for s in self.profile.samples)

    def cpu_seconds(self):
        return (self.cpu_after - self.cpu_before) / CLK_TCK

    def thread_cpu(self, tid):
        """(CPU seconds, of which in the kernel) of TID during the request."""
        a = self.after.get(tid)
        b = self.before.get(tid, (None, 0, 0))
        if a is None:
            return None, None
        return (a[1] - b[1]) / CLK_TCK, (a[2] - b[2]) / CLK_TCK


def fetch(daemon, path, pid, what, timeout=60):
    f = Fetched(daemon, path, pid, timeout)
    require(f.reply.status == 200, f"{what}: 200", f.reply.describe())
    require(f.profile is not None, f"{what}: the reply decodes as profile.proto", f.error)
    return f


def by_thread(profile):
    """{thread_name: [samples]}"""
    d = {}
    for s in profile.samples:
        d.setdefault(s.labels.get("thread_name"), []).append(s)
    return d


def count(samples):
    return sum(s.values[0] for s in samples)


def kernel_frames(s):
    """[is kernel] per frame of S, leaf first, inlined frames expanded as frames() does;
    by address, so it holds whatever mapping the profile gives kernel locations."""
    out = []
    for loc in s.locations:
        out += [loc.address >= KERNEL_START] * max(1, len(loc.lines))
    return out


def has_kernel(s):
    return any(loc.address >= KERNEL_START for loc in s.locations)


def describe_samples(samples, n=8):
    out = []
    for s in sorted(samples, key=lambda s: -s.values[0])[:n]:
        out.append(f"{s.values} {s.labels} {s.num_labels}: " +
                   " ← ".join(f"{f}" + ("[k]" if k else "")
                              for (f, _), k in zip(s.frames(), kernel_frames(s))))
    return "\n".join(out)


def pprof_top(path, *args):
    """go tool pprof -top in sample counts: (exit status, output, {function: (flat, cum)})."""
    rc, out = pprof("-top", "-sample_index=samples", "-nodecount=1000", "-nodefraction=0",
                    "-edgefraction=0", *args, path)
    rows = {}
    for line in out.split("\n"):
        m = re.match(r"^\s*(\d+)\s+\S+%\s+\S+%\s+(\d+)\s+\S+%\s+(.*?)(?: \(inline\))?\s*$", line)
        if m:
            rows[m.group(3)] = (int(m.group(1)), int(m.group(2)))
    return rc, out, rows


# --- the checks ---------------------------------------------------------------------------

def check_reply_shape(f, hz, seconds, what):
    r, p = f.reply, f.profile
    check(r.header("Content-Type") == "application/octet-stream",
          f"{what}: application/octet-stream", r.describe()[:500])
    check(r.header("Content-Disposition") == 'attachment; filename="profile"',
          f"{what}: attachment; filename=\"profile\"", r.header("Content-Disposition"))
    check(r.header("X-Content-Type-Options") == "nosniff", f"{what}: nosniff")
    check(r.body[:2] == b"\x1f\x8b", f"{what}: gzip", r.body[:8])
    check(p.sample_types == [("samples", "count"), ("cpu", "nanoseconds")],
          f"{what}: sample types samples/count, cpu/nanoseconds", p.sample_types)
    check(p.period_type == ("cpu", "nanoseconds"), f"{what}: period type cpu/nanoseconds",
          p.period_type)
    check(p.period == 1_000_000_000 // hz, f"{what}: period 1e9/{hz} = {1_000_000_000 // hz}",
          p.period)
    bad = [s for s in p.samples if len(s.values) != 2 or s.values[1] != s.values[0] * p.period
           or s.values[0] <= 0]
    check(not bad, f"{what}: every sample's cpu/nanoseconds is its count × period",
          describe_samples(bad))
    check(seconds * 0.95e9 <= p.duration_nanos <= seconds * 1e9 + 1.5e9,
          f"{what}: duration_nanos about {seconds} s ({p.duration_nanos / 1e9:.3f} s)",
          p.duration_nanos)
    check(abs(p.time_nanos - f.wall0) < 2e9,
          f"{what}: time_nanos is when the request started "
          f"({(p.time_nanos - f.wall0) / 1e6:+.0f} ms)", p.time_nanos)
    check(seconds <= f.took <= seconds + 3,
          f"{what}: answered after the {seconds} s ({f.took:.2f} s)")
    check(p.mappings and os.path.realpath(ct.env_binary("CPU_TARGET")) == p.mappings[0].filename,
          f"{what}: mapping 1 is the target's executable",
          [m.filename for m in p.mappings][:5])
    # Locations are symbolized by cprofd. (PLT stubs, read@plt and the like, have no
    # symbol of their own: a sample that lands in one keeps a bare address.)
    unnamed = {l.id for l in p.locations.values()
               if not l.lines or any(fn is None or not fn.name for fn, _ in l.lines)}
    hit = count(s for s in p.samples if unnamed & {l.id for l in s.locations})
    check(hit <= 0.01 * sum(s.values[0] for s in p.samples),
          f"{what}: ≤ 1 % of samples have a location without a function name ({hit})",
          [f"{p.locations[i].address:#x} {p.locations[i].mapping.filename if p.locations[i].mapping else ''}"
           for i in sorted(unnamed)][:20])
    if unnamed:
        log(f"{what}: unnamed locations: " + ", ".join(
            f"{p.locations[i].address:#x}" for i in sorted(unnamed)[:10]))


def check_labels(f, what):
    """thread_id is numeric, thread_name a string, and both name a thread of the target
    as /proc did."""
    names = {tid: v[0] for tid, v in {**f.before, **f.after}.items()}
    bad = []
    for s in f.profile.samples:
        tid = s.num_labels.get("thread_id", (None, None))[0]
        name = s.labels.get("thread_name")
        if tid is None or name is None or "thread_id" in s.labels:
            bad.append(s)
        elif tid in names and names[tid] != name:
            bad.append(s)
    check(not bad, f"{what}: every sample has a numeric thread_id and the thread_name /proc "
          "gives that thread", describe_samples(bad))
    unknown = {s.num_labels["thread_id"][0] for s in f.profile.samples
               if "thread_id" in s.num_labels} - set(names)
    check(not unknown, f"{what}: every thread_id is a thread of the target", unknown)


def check_counts_match_cpu_time(f, hz, what, tolerance=0.2):
    """The samples of each thread ≈ its CPU time during the request × hz (the request's
    window is a little shorter than what we measure around it)."""
    total = f.total()
    # The threads are busy all along, so the window's share of what we measured around it
    # is its share of the time.
    window = min(1.0, f.profile.duration_nanos / 1e9 / f.took)
    want = f.cpu_seconds() * hz * window
    check(abs(total - want) <= tolerance * want + 5,
          f"{what}: {total} samples ≈ the target's CPU time × hz ({want:.0f})",
          f"cpu {f.cpu_seconds():.2f} s in {f.took:.2f} s, window {window:.2f}, hz {hz}")
    for tid, (name, _, _) in sorted(f.after.items()):
        if not name.startswith("busy-") and name != "syscaller":
            continue
        cpu, _ = f.thread_cpu(tid)
        want = cpu * hz * window
        n = sum(s.values[0] for s in f.profile.samples
                if s.num_labels.get("thread_id", (0,))[0] == tid)
        check(abs(n - want) <= tolerance * want + 5,
              f"{what}: thread {name} ({tid}): {n} samples ≈ its CPU time × hz ({want:.0f})")


def check_kernel_frames(f, busy, sysc, what):
    """Kernel frames come first in a stack, from [kernel.kallsyms]; the syscall thread's
    samples have them, above syscall_loop, in about the share of its time in the kernel."""
    p = f.profile
    nbusy = count(busy)
    misplaced = []
    for s in p.samples:
        kinds = kernel_frames(s)
        if kinds != sorted(kinds, reverse=True):
            misplaced.append(s)
    check(not misplaced, f"{what}: kernel frames only come first in a stack",
          describe_samples(misplaced))
    nsys = count(sysc)
    with_kernel = [s for s in sysc if has_kernel(s)]
    entry = [s for s in with_kernel
             if {"entry_SYSCALL_64", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"}
             & set(s.functions())]
    under_loop = count(s for s in with_kernel if "syscall_loop" in s.functions())
    check(nsys > 0 and entry and under_loop == count(with_kernel),
          f"{what}: the syscaller's kernel stacks run through entry_SYSCALL_64/do_syscall_64 "
          f"under syscall_loop ({count(entry)} with the entry, {under_loop} of "
          f"{count(with_kernel)} under syscall_loop, {nsys} samples)", describe_samples(sysc))
    sys_tid = next((tid for tid, v in f.after.items() if v[0] == "syscaller"), None)
    cpu, kcpu = f.thread_cpu(sys_tid) if sys_tid else (None, None)
    if cpu:
        share = count(with_kernel) / max(nsys, 1)
        want = kcpu / cpu
        check(abs(share - want) <= 0.2,
              f"{what}: {100 * share:.0f} % of the syscaller's samples have kernel frames, "
              f"/proc says it spent {100 * want:.0f} % of its time in the kernel (± 20)")
    klocs = [loc for loc in p.locations.values() if loc.address >= KERNEL_START]
    knames = {fn.name if fn else None for loc in klocs for fn, _ in loc.lines}
    check(klocs and all(len(loc.lines) == 1 for loc in klocs) and None not in knames,
          f"{what}: kernel locations are named, one function each ({len(knames)} functions)",
          sorted(str(k) for k in knames)[:30])
    kmaps = [m for m in p.mappings if m.filename == KERNEL]
    outside = [hex(loc.address) for loc in klocs
               if not (loc.mapping and loc.mapping.filename == KERNEL and
                       loc.mapping.memory_start <= loc.address < loc.mapping.memory_limit)]
    check(len(kmaps) == 1 and not outside,
          f"{what}: kernel locations are in the [kernel.kallsyms] mapping "
          f"({len(outside)} of {len(klocs)} not; mappings: "
          f"{[m.filename for m in p.mappings]})", outside[:10])
    busy_kernel = count(s for s in busy if has_kernel(s))
    check(busy_kernel <= 0.1 * nbusy,
          f"{what}: the busy threads are hardly ever in the kernel ({busy_kernel}/{nbusy})")


def check_main_profile(daemon, target, hz=500, seconds=3):
    what = f"profile?seconds={seconds}&hz={hz}"
    m0 = metrics(daemon)
    f = fetch(daemon, f"/debug/pprof/profile?seconds={seconds}&hz={hz}", target.pid, what)
    m1 = metrics(daemon)
    p = f.profile
    path = save(f.reply, "cpu.pb.gz")
    log(f"{what}: {len(p.samples)} samples, total {f.total()}, took {f.took:.2f} s, "
        f"comments {p.comments}")
    check_reply_shape(f, hz, seconds, what)
    check_labels(f, what)
    check_counts_match_cpu_time(f, hz, what)

    # /metrics counts what was read; a lost-sample count shows up in a comment.
    read = (metric(m1, "cprofd_cpu_samples_total") or 0) - (metric(m0, "cprofd_cpu_samples_total") or 0)
    lost = (metric(m1, "cprofd_cpu_samples_lost_total") or 0) - \
        (metric(m0, "cprofd_cpu_samples_lost_total") or 0)
    check(metric(m1, "cprofd_cpu_samples_total") is not None and
          metric(m1, "cprofd_cpu_samples_lost_total") is not None,
          "metrics: cprofd_cpu_samples_total and cprofd_cpu_samples_lost_total", m1)
    check(f.total() * 0.95 <= read <= f.total() * 1.1 + 10,
          f"metrics: cprofd_cpu_samples_total grew by the profile's samples ({read:.0f} for "
          f"{f.total()})")
    if lost:
        check(any("lost" in c for c in p.comments),
              f"{lost:.0f} samples lost: a comment says so", p.comments)
    else:
        log(f"no samples lost; comments: {p.comments}")

    threads = by_thread(p)
    busy = [s for name, v in threads.items() if name and name.startswith("busy-") for s in v]
    sysc = threads.get("syscaller", [])
    nbusy = count(busy)
    # How many depends on the CPU time the machine leaves them (checked against /proc
    # above); the shares below need a few hundred.
    require(nbusy >= 200, f"{what}: the busy threads have samples ({nbusy})",
            describe_samples(p.samples))

    # hot_leaf flat, from our decoding and from pprof with the syscall thread left out.
    flat = count(s for s in busy if s.functions() and s.functions()[0] == "hot_leaf")
    check(flat >= 0.8 * nbusy,
          f"{what}: hot_leaf has ≥ 80 % of the busy threads' samples flat "
          f"({flat}/{nbusy} = {100 * flat / nbusy:.1f} %)", describe_samples(busy))
    rc, out, rows = pprof_top(path, "-tagignore=thread_name=syscaller")
    require(rc == 0, "go tool pprof -top -tagignore=thread_name=syscaller reads it", out)
    shown = sum(fl for fl, _ in rows.values())
    hot = rows.get("hot_leaf", (0, 0))[0]
    check(shown == nbusy and hot >= 0.8 * shown,
          f"pprof -top without the syscaller: hot_leaf {hot} flat of {shown} samples "
          f"({100 * hot / max(shown, 1):.1f} %)", out[:3000])

    # The 2:1 split of hot_leaf between path_a and path_b, ours and pprof's.
    on_leaf = [s for s in busy if "hot_leaf" in s.functions()]
    a = count(s for s in on_leaf if "path_a" in s.functions())
    b = count(s for s in on_leaf if "path_b" in s.functions())
    ratio = a / b if b else float("inf")
    check(b > 0 and 2 * 0.7 <= ratio <= 2 * 1.3,
          f"{what}: hot_leaf's samples split path_a:path_b = {a}:{b} = {ratio:.2f} (2 ± 30 %)",
          describe_samples(on_leaf))
    check(a + b >= 0.97 * count(on_leaf),
          f"{what}: hot_leaf's stacks go through path_a or path_b ({a + b}/{count(on_leaf)})",
          describe_samples([s for s in on_leaf if "path_a" not in s.functions() and
                            "path_b" not in s.functions()]))
    rc, out, rows = pprof_top(path, "-focus=^hot_leaf$")
    pa, pb = rows.get("path_a", (0, 0))[1], rows.get("path_b", (0, 0))[1]
    check(rc == 0 and (pa, pb) == (a, b),
          f"pprof -top -focus=hot_leaf: path_a cum {pa}, path_b cum {pb}, as decoded", out[:3000])
    chains = (["hot_leaf", "work", "path_a", "busy_loop", "busy_main", "start_thread"],
              ["hot_leaf", "work", "path_b", "busy_loop", "busy_main", "start_thread"])
    names = set(chains[0]) | set(chains[1])
    good = count(s for s in on_leaf if [x for x in s.functions() if x in names] in chains)
    check(good >= 0.97 * count(on_leaf),
          f"{what}: hot_leaf ← work ← path_a|path_b ← busy_loop ← busy_main ← start_thread "
          f"({good}/{count(on_leaf)})", describe_samples(on_leaf))

    # Stacks end at a thread's root, or say they were cut.
    roots = count(s for s in p.samples if s.functions() and s.functions()[-1] in ROOTS)
    truncated = [s for s in p.samples if s.functions() and "[truncated" in (s.functions()[-1] or "")]
    silent = [s for s in p.samples if not (s.functions() and (s.functions()[-1] in ROOTS or
                                                              "[truncated" in (s.functions()[-1] or "")))]
    check(roots >= 0.99 * f.total(),
          f"{what}: ≥ 99 % of stacks end at start_thread/clone3 or _start "
          f"({roots}/{f.total()}, {count(truncated)} [truncated])", describe_samples(truncated))
    check(not silent, f"{what}: no stack ends anywhere else without a [truncated] frame",
          describe_samples(silent))

    if any("kernel samples and frames not permitted" in c for c in p.comments):
        log(f"{what}: kernel frames are not permitted here (perf_event_paranoid): their checks "
            "are skipped")
    else:
        check_kernel_frames(f, busy, sysc, what)

    # What pprof prints.
    rc, raw = pprof("-raw", path)
    require(rc == 0, "go tool pprof -raw reads it", raw)
    raw_stacks = ct.stacks(raw)
    raw_total = sum(v[0] for v, _, _ in raw_stacks)
    check(raw_total == f.total(), f"pprof -raw: {raw_total} samples, as decoded")
    leaf = [(v[0], names) for v, names, labels in raw_stacks
            if labels.get("thread_name", "").startswith("busy-") and "hot_leaf" in names]
    ra = sum(n for n, names in leaf if "path_a" in names)
    rb = sum(n for n, names in leaf if "path_b" in names)
    check((ra, rb) == (a, b), f"pprof -raw: hot_leaf's stacks split path_a:path_b = {ra}:{rb}, "
          "as decoded")
    check("thread_name:[syscaller]" in raw.replace(" ", "") and re.search(r"thread_id:\[\d+", raw),
          "pprof -raw shows the thread_name and thread_id labels", raw[:3000])
    check(re.search(r"^PeriodType: cpu nanoseconds$", raw, re.M) and
          re.search(rf"^Period: {1_000_000_000 // hz}$", raw, re.M),
          "pprof -raw: PeriodType cpu nanoseconds, the period", raw[:500])
    rc, top = pprof("-top", path)
    check(rc == 0 and "Type: cpu" in top and re.search(r"\shot_leaf$", top, re.M),
          "go tool pprof -top: Type: cpu, hot_leaf listed", top[:2000])
    return f


def check_fp_mode(daemon, target):
    what = "profile?seconds=2&hz=200&mode=fp"
    f = fetch(daemon, "/debug/pprof/profile?seconds=2&hz=200&mode=fp", target.pid, what)
    log(f"{what}: {len(f.profile.samples)} samples, total {f.total()}")
    check_reply_shape(f, 200, 2, what)
    check_labels(f, what)
    check(f.total() > 0, f"{what}: has samples ({f.total()})")
    check_counts_match_cpu_time(f, 200, what, tolerance=0.25)
    path = save(f.reply, "cpu-fp.pb.gz")
    rc, raw = pprof("-raw", path)
    check(rc == 0 and sum(v[0] for v, _, _ in ct.stacks(raw)) == f.total(),
          f"{what}: go tool pprof -raw reads it", raw[:2000])
    leaves = count(s for s in f.profile.samples if s.functions() and s.functions()[0] == "hot_leaf")
    check(leaves > 0, f"{what}: hot_leaf is a leaf ({leaves} samples)",
          describe_samples(f.profile.samples))


def check_spawned_thread():
    """A thread created while a profile runs is sampled: through the events it inherits
    from main, since it did not exist when cprofd opened its events. The target starts it
    1 s after `ready`. On a machine so slow that cprofd's events only open after that,
    the case is tried again with cprofd warmed up first (debug info and kernel symbols
    loaded by a 1 s profile) and the thread started 8 s after `ready`."""
    for spawn_ms in (1000, 8000):
        target = ct.cpu_target(["--spawn-after-ms", str(spawn_ms)])
        ready = time.monotonic()
        daemon = ct.Daemon([target.pid])
        if spawn_ms > 1000:
            r = daemon.get("/debug/pprof/profile?seconds=1&hz=200")
            require(r.status == 200, "warm-up profile: 200", r.describe())
        seconds = 3 if spawn_ms == 1000 else int(spawn_ms / 1000 - (time.monotonic() - ready)) + 3
        what = (f"profile?seconds={seconds}&hz=200 of a target that starts busy-late after "
                f"{spawn_ms} ms")
        before = {v[0] for v in thread_times(target.pid).values()}
        check("busy-late" not in before, f"{what}: busy-late does not exist yet when the "
              "profile is asked for", before)
        result = []
        req = threading.Thread(target=lambda: result.append(Fetched(
            daemon, f"/debug/pprof/profile?seconds={seconds}&hz=200", target.pid)))
        req.start()
        opened = None
        while req.is_alive() and opened is None:
            if perf_fds(daemon.proc.pid):
                opened = time.time_ns()
            time.sleep(0.005)
        req.join()
        f = result[0]
        late_tid = next((tid for tid, v in f.after.items() if v[0] == "busy-late"), None)
        started = thread_start_ns(target.pid, late_tid) if late_tid else None
        if opened and started and started < opened and spawn_ms == 1000:
            log(f"busy-late started {(opened - started) / 1e6:.0f} ms before cprofd opened its "
                "events: this machine is slow; again with cprofd warmed up")
            daemon.stop()
            target.kill()
            continue
        require(f.reply.status == 200 and f.profile is not None, f"{what}: 200 and a profile",
                f.error or f.reply.describe())
        check(opened and started and started > opened,
              f"{what}: busy-late started after cprofd opened its events "
              f"({(started - opened) / 1e6 if opened and started else 0:+.0f} ms), so it is "
              "sampled through the events it inherited")
        late = by_thread(f.profile).get("busy-late", [])
        cpu, _ = f.thread_cpu(late_tid) if late_tid else (0, 0)
        check(count(late) > 0 and count(late) >= 0.75 * cpu * 200,
              f"{what}: busy-late is sampled ({count(late)} samples, its CPU time × hz "
              f"{cpu * 200:.0f})", sorted(by_thread(f.profile), key=str))
        check(late and all(s.num_labels.get("thread_id", (0,))[0] == late_tid for s in late),
              f"{what}: busy-late's samples carry its thread_id {late_tid}")
        hot = count(s for s in late if "hot_leaf" in s.functions() and "busy_main" in s.functions())
        check(hot >= 0.8 * count(late), f"{what}: busy-late's stacks are hot_leaf … busy_main "
              f"({hot}/{count(late)})", describe_samples(late))
        check_labels(f, what)
        ct.check_not_stopped(target.pid, f"{what}: after the profile")
        daemon.stop()
        target.kill()
        return


def check_concurrent(daemon, target, other):
    """Five requests at once: two identical, one at another rate, one in fp mode, one of
    another target. Each is a full profile of its own."""
    reqs = [
        ("same #1", "/debug/pprof/profile?seconds=2&hz=200", target, 200),
        ("same #2", f"/pid/{target.pid}/debug/pprof/profile?seconds=2&hz=200", target, 200),
        ("hz=500", "/debug/pprof/profile?seconds=2&hz=500", target, 500),
        ("fp", "/debug/pprof/profile?seconds=2&hz=200&mode=fp", target, 200),
        ("other target", f"/pid/{other.pid}/debug/pprof/profile?seconds=2&hz=200", other, 200),
    ]
    results = {}

    def run(name, path, t):
        try:
            results[name] = Fetched(daemon, path, t.pid)
        except Exception as e:      # noqa: BLE001
            results[name] = e

    threads = [threading.Thread(target=run, args=(n, p, t)) for n, p, t, _ in reqs]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(0.7)
    m = metrics(daemon)
    check(metric(m, "cprofd_requests_in_progress") == len(reqs),
          f"concurrent: {len(reqs)} requests in progress at once", m)
    for t in threads:
        t.join(timeout=30)
    took = time.monotonic() - t0
    check(took < 2 + 4, f"concurrent: all {len(reqs)} answered in {took:.2f} s (they ran side "
          "by side)")
    for name, path, t, hz in reqs:
        f = results.get(name)
        if not isinstance(f, Fetched):
            check(False, f"concurrent {name}: answered", f)
            continue
        if not check(f.reply.status == 200 and f.profile is not None,
                     f"concurrent {name}: 200 and a profile", f.error or f.reply.describe()):
            continue
        check(f.profile.period == 1_000_000_000 // hz, f"concurrent {name}: period for {hz} Hz")
        # Shared samplers must hand every request every sample: none split, none doubled.
        check_counts_match_cpu_time(f, hz, f"concurrent {name}", tolerance=0.25)
        hot = count(s for s in f.profile.samples if s.functions() and s.functions()[0] == "hot_leaf")
        check(hot > 0, f"concurrent {name}: hot_leaf samples ({hot})")
        if t is other:
            tids = set(other.tids())
            check(all(s.num_labels.get("thread_id", (0,))[0] in tids for s in f.profile.samples),
                  f"concurrent {name}: only the other target's threads")


def check_bad_params(daemon, target):
    cases = [
        ("hz=0", None), ("hz=5000", None), ("hz=1001", None), ("hz=abc", None), ("hz=-5", None),
        ("mode=xyz", None), ("mode=FP", None),
        ("seconds=3600", "profile duration exceeds server's WriteTimeout"),
        ("seconds=4000&hz=100", "profile duration exceeds server's WriteTimeout"),
        ("seconds=3600&hz=0", "profile duration exceeds server's WriteTimeout"),
    ]
    for prefix in ("", f"/pid/{target.pid}"):
        for q, body in cases:
            what = f"{prefix}/debug/pprof/profile?{q}"
            t0 = time.monotonic()
            r = daemon.get(f"{prefix}/debug/pprof/profile?{q}")
            took = time.monotonic() - t0
            check(r.status == 400 and took < 3, f"{what}: 400 at once ({took * 1000:.0f} ms)",
                  r.describe())
            check(r.header("X-Go-Pprof") == "1" and r.header("Content-Type") == TEXT and
                  r.header("Content-Disposition") is None,
                  f"{what}: X-Go-Pprof: 1, {TEXT}, no Content-Disposition", r.describe())
            check(r.text.endswith("\n") and r.text.count("\n") == 1, f"{what}: one line",
                  r.describe())
            if body:
                check(r.text == body + "\n", f"{what}: {body!r}", r.describe())
            else:
                key = q.split("=")[0]
                check(key in r.text, f"{what}: the reason names {key}", r.text)


def check_lenient_seconds_and_disconnect(daemon, target):
    """seconds=abc, 0, -5 mean 30 s and 3599 is allowed: all accepted (no reply within
    half a second); closing the connections ends the requests and the samplers."""
    queries = ["seconds=abc", "seconds=0", "seconds=-5", "seconds=3599&hz=50", "seconds=abc&mode=fp"]
    socks = []
    for q in queries:
        s = socket.create_connection((ct.HOST, daemon.port))
        s.sendall(f"GET /debug/pprof/profile?{q} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        socks.append((q, s))
    time.sleep(0.5)
    for q, s in socks:
        s.setblocking(False)
        try:
            data = s.recv(4096)
        except BlockingIOError:
            data = None
        check(data is None, f"profile?{q}: accepted, still running after 0.5 s", data)
    m = metrics(daemon)
    check(metric(m, "cprofd_requests_in_progress") == len(queries),
          f"metrics: {len(queries)} requests in progress", m)
    check(perf_fds(daemon.proc.pid) > 0,
          f"cprofd holds perf events meanwhile ({perf_fds(daemon.proc.pid)})")
    for _, s in socks:
        s.close()
    ok, took, v = wait_in_progress(daemon, 0)
    check(ok, f"clients that disconnect end their requests (in progress 0 after {took:.2f} s)",
          f"cprofd_requests_in_progress {v}")
    t0 = time.monotonic()
    while perf_fds(daemon.proc.pid) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    check(perf_fds(daemon.proc.pid) == 0,
          f"cprofd closed its perf events once no request needs them "
          f"({perf_fds(daemon.proc.pid)} left after {time.monotonic() - t0:.2f} s)")
    r = daemon.get("/debug/pprof/profile?seconds=1&hz=100&foo=bar")
    check(r.status == 200, "profile?seconds=1&foo=bar: unknown parameters are ignored",
          r.describe())


def check_pprof_url(daemon, target):
    url = f"http://{ct.HOST}:{daemon.port}/pid/{target.pid}/debug/pprof/profile"
    rc, out = pprof("-top", "-seconds", "2", url)
    check(rc == 0 and "hot_leaf" in out, "go tool pprof -top -seconds 2 URL, as users run it",
          out[:3000])


def check_refused(daemon, target, what):
    """perf_event_open refused (seccomp, as in a container): 503 with one line that says
    why and what to do; everything else is still served."""
    r = daemon.get("/debug/pprof/profile?seconds=1")
    check(r.status == 503, f"{what}: 503", r.describe())
    check(r.header("X-Go-Pprof") == "1" and r.header("Content-Type") == TEXT,
          f"{what}: X-Go-Pprof: 1, text/plain", r.describe())
    check(r.text.endswith("\n") and r.text.count("\n") == 1 and "perf" in r.text,
          f"{what}: a one-line reason that names perf: {r.text.strip()!r}", r.describe())
    r = daemon.get("/debug/pprof/goroutine?debug=1")
    check(r.status == 200, f"{what}: goroutine?debug=1 is still served", r.describe())
    ok, _, v = wait_in_progress(daemon, 0)
    check(ok, f"{what}: no request left in progress", v)
    check(perf_fds(daemon.proc.pid) == 0, f"{what}: no perf event left open")
    ct.check_not_stopped(target.pid, what)


def check_no_perf():
    no_perf = os.environ.get("NO_PERF")
    if not no_perf:
        log("$NO_PERF is not set: cprofd with perf_event_open refused is not tested")
        return
    target = ct.cpu_target()
    daemon = NoPerfDaemon(no_perf, target.pid)
    check_refused(daemon, target, "perf_event_open refused by seccomp")
    check(daemon.stop() == 0, "perf_event_open refused: cprofd exits 0 on SIGTERM")
    target.kill()


class NoPerfDaemon(ct.Daemon):
    """cprofd run under tests/tools/no-perf."""

    def __init__(self, no_perf, pid):
        self.path = ct.env_binary("CPROFD")
        self.argv = [no_perf, self.path, "--pid", str(pid), "--listen", f"{ct.HOST}:0"]
        self.out = ct.tmp_path("cprofd-no-perf.out")
        self.err = ct.tmp_path("cprofd-no-perf.err")
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = ct.spawn(self.argv, kill_signal=signal.SIGTERM, stdout=out, stderr=err,
                                 stdin=subprocess.DEVNULL)
        m = ct.wait_for_line(self.out, r"^listening on 127\.0\.0\.1:(\d+)$", self.proc)
        self.port = int(m.group(1))


def run_time_ns(pid):
    """{tid: (comm, run time in ns from schedstat)} of every thread of PID."""
    out = {}
    for tid, (comm, _, _) in thread_times(pid).items():
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[tid] = (comm, int(f.read().split()[0]))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def check_keeps_running(target, what):
    a = run_time_ns(target.pid)
    time.sleep(1)
    b = run_time_ns(target.pid)
    stuck = [v[0] for tid, v in a.items() if v[0].startswith(("busy-", "syscaller")) and
             tid in b and b[tid][1] <= v[1]]
    check(target.alive() and not stuck, f"{what}: the target runs on, every busy thread "
          "gaining CPU time", stuck)


def main():
    require(shutil.which("go") is not None, "go (golang-go) is installed")
    target = ct.cpu_target()
    if not perf_events_allowed(target.pid):
        daemon = ct.Daemon([target.pid])
        check_refused(daemon, target, "perf events refused on this machine")
        if ct._failures:
            raise ct.TestFailure("perf events are refused here, and cprofd does not say so well")
        log("perf events are refused here: the rest is skipped")
        ct.cleanup()
        sys.exit(77)
    # The other target only runs for the concurrent requests: until then the first one
    # has the machine's CPUs to itself.
    other = ct.cpu_target(["--busy", "1"])
    os.kill(other.pid, signal.SIGSTOP)
    # Five profiles run at once below: above the default --max-profiles (4).
    daemon = ct.Daemon([target.pid, other.pid], extra_args=["--max-profiles", "8"])
    log(f"cpu target {target.pid}, other {other.pid}, cprofd {daemon.proc.pid} on port {daemon.port}")

    check_main_profile(daemon, target)
    ct.check_not_stopped(target.pid, "after the main profile")
    check_fp_mode(daemon, target)
    check_bad_params(daemon, target)
    check_lenient_seconds_and_disconnect(daemon, target)
    os.kill(other.pid, signal.SIGCONT)
    check_concurrent(daemon, target, other)
    check_pprof_url(daemon, target)
    ct.check_not_stopped(target.pid, "after every profile")
    ct.check_not_stopped(other.pid, "after every profile (other target)")
    check("Sanitizer" not in daemon.stderr(), "cprofd's stderr has no sanitizer report",
          daemon.stderr()[-3000:])
    check(daemon.alive(), "cprofd is still running")
    status = daemon.stop()
    check(status == 0, f"cprofd exits 0 on SIGTERM ({status})", daemon.stderr()[-2000:])
    check_keeps_running(target, "after cprofd exited")

    check_spawned_thread()
    check_no_perf()


if __name__ == "__main__":
    ct.run_test(main)
