"""tests/integration/test_demangle.py -- frames named from ELF symbols only, demangled as gdb
names them.

Targets without DWARF: tests/targets/cpp-server.cc with .symtab only (objcopy
--strip-debug) and with .dynsym only (linked -rdynamic, then strip --strip-all), and
tests/targets/mangled.rs (no DWARF) with legacy and with v0 Rust mangling. gdb attaches
first and names every frame (its Python API, frame.name()); then cprofd serves debug=2.
For every thread, the frames of the target's own file must have the names gdb gives them,
in the same order. Known names must be among them (so a target that stopped needing
demangling fails here). Then, from the same cprofd: debug=1 shows the demangled name,
/symbol answers it for a pc, and in the goroutine profile (pprof) the function's name is
the demangled one and its system_name the mangled one, also as `go tool pprof -raw`
reads them.
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402

FRAMES_SCRIPT = r'''
import gdb
for t in sorted(gdb.selected_inferior().threads(), key=lambda t: t.ptid[1]):
    t.switch()
    f = gdb.newest_frame()
    while f is not None:
        print("@@frame %d %#x %s" % (t.ptid[1], f.pc(), f.name()))
        f = f.older()
'''

RECEIVE = ("ho::Channel<std::__cxx11::basic_string<char, std::char_traits<char>, "
           "std::allocator<char> > >::receive()")
RECEIVE_MANGLED = "_ZN2ho7ChannelINSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEEE7receiveEv"

# target env, {demangled name that must be on some stack: its mangled name}
CASES = [
    ("CPP_SERVER_SYMTAB_TARGET", {
        "ho::async_task(int)": "_ZN2hoL10async_taskEi",
        RECEIVE: RECEIVE_MANGLED,
        "ho::throw_with_guard() [clone .cold]": "_ZN2hoL16throw_with_guardEv.cold",
    }),
    # Only what -rdynamic exports (static functions are not in .dynsym).
    ("CPP_SERVER_DYNSYM_TARGET", {
        RECEIVE: RECEIVE_MANGLED,
        "ho::ThreadPool::worker_loop()": "_ZN2ho10ThreadPool11worker_loopEv",
        "ho::BlocksOnDestruction::~BlocksOnDestruction()": None,   # D1 and D2 at one address
    }),
    ("RUST_LEGACY_TARGET", {
        "<u64 as mangled::Checkout>::checkout::h*": None,
        "mangled::shop::Cart<T>::total::h*": None,
    }),
    ("RUST_V0_TARGET", {
        "<u64 as mangled[*]::Checkout>::checkout": None,
        "<mangled[*]::shop::Cart<u32>>::total": None,
    }),
]


def gdb_frames(pid):
    script = ct.tmp_path("demangle-frames.py")
    with open(script, "w") as f:
        f.write(FRAMES_SCRIPT)
    proc = ct.spawn(["gdb", "-p", str(pid), "-batch", "-nx", "-x", script],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, kill_signal=signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    frames = {}
    for line in out.decode("utf-8", errors="replace").split("\n"):
        if line.startswith("@@frame "):
            _, tid, pc, name = line.split(" ", 3)
            if name == "None":
                name = "??"     # no symbol: cprofd's name for it
            frames.setdefault(int(tid), []).append((int(pc, 16), name))
    return frames


def own_ranges(pid, path):
    """[(start, end)] of PID's mappings of PATH."""
    real = os.path.realpath(path)
    ranges = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and os.path.realpath(fields[5]) == real:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                ranges.append((start, end))
    return ranges


def matches(pattern, name):
    """PATTERN with "[*]" standing for a v0 crate disambiguator ("[0123…]") and a final
    "::h*" for a legacy Rust hash ("::h" and 16 hex digits)."""
    regex = re.escape(pattern).replace(r"\[\*\]", r"\[[0-9a-f]+\]")
    if regex.endswith(r"::h\*"):
        regex = regex[:-len(r"\*")] + "[0-9a-f]{16}"
    return re.fullmatch(regex, name) is not None


def wait_sleeping(target):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        states = ct.task_states(target.pid)
        if states and all(s == "S" for s in states.values()):
            return
        time.sleep(0.05)
    raise ct.TestFailure(f"{target.path}: threads not all sleeping: {ct.task_states(target.pid)}")


def check_target(env_name, known):
    target = ct.Target(env_name)
    wait_sleeping(target)
    label = os.path.basename(target.path)
    ranges = own_ranges(target.pid, target.path)
    require(ranges, f"{label}: its own file is mapped")

    def own(pc):
        return any(s <= pc < e for s, e in ranges)

    want = {tid: [(pc, name) for pc, name in frames if own(pc)]
            for tid, frames in gdb_frames(target.pid).items()}
    require(want, f"{label}: gdb named frames")
    seen = {name for frames in want.values() for _, name in frames}
    for pattern in known:
        check(any(matches(pattern, n) for n in seen), f"{label}: gdb shows {pattern}",
              "\n".join(sorted(seen)))

    d = ct.Daemon([target.pid])
    r, threads, errors = ct.fetch_debug2(d)
    require(r.status == 200 and not errors, f"{label}: debug=2 parses", r.describe())
    got = {t.tid: [f.function for f in t.frames
                   if f.module and os.path.realpath(f.module) == os.path.realpath(target.path)]
           for t in threads}
    for tid, frames in sorted(want.items()):
        # gdb stops at main; cprofd goes on to _start.
        names = [n for _, n in frames]
        mine = got.get(tid) or []
        check(mine[:len(names)] == names and (mine == names or names[-1] == "main"),
              f"{label}: thread {tid}: cprofd names its frames as gdb",
              f"gdb:    {names}\ncprofd: {mine}")

    r, dump = ct.fetch_debug1(d)
    require(r.status == 200, f"{label}: debug=1", r.describe())
    for pattern in known:
        check(any(matches(pattern, fn) for g in dump.groups for fn in g.functions()),
              f"{label}: debug=1 shows {pattern}")

    # /symbol for the pc of each known frame, as gdb named it.
    for tid, frames in sorted(want.items()):
        for pc, name in frames:
            if any(matches(p, name) for p in known):
                r = d.get(f"/debug/pprof/symbol?{pc:#x}")
                check(r.status == 200 and f"{pc:#x} {name}\n" in r.text,
                      f"{label}: /symbol {pc:#x} is {name}", r.describe())

    # pprof: Function.name demangled, system_name mangled.
    r = d.get("/debug/pprof/goroutine")
    require(r.status == 200, f"{label}: goroutine profile", r.describe())
    prof = ct.decode_profile(r.body)
    funcs = {f.name: f for f in prof.functions.values()}
    for pattern, mangled in known.items():
        hits = [f for n, f in funcs.items() if matches(pattern, n)]
        if not check(len(hits) == 1, f"{label}: one pprof function {pattern}",
                     "\n".join(sorted(funcs))):
            continue
        f = hits[0]
        check(f.system_name != f.name and f.system_name.startswith(("_Z", "_R")),
              f"{label}: {pattern} has its mangled system_name", f.system_name)
        if mangled:
            check(f.system_name == mangled, f"{label}: system_name of {pattern} is {mangled}",
                  f.system_name)
    path = ct.save(r, f"{label}.pb.gz")
    rc, out = ct.pprof("-raw", path)
    require(rc == 0, f"{label}: go tool pprof -raw reads it", out)
    for pattern, mangled in known.items():
        if mangled:
            check(f"{pattern} :0 s=0({mangled})" in out,
                  f"{label}: go tool pprof shows {pattern} ({mangled})", out[:4000])

    check(d.stop() == 0, f"{label}: cprofd exits cleanly", d.stderr())
    target.kill()


def main():
    for env_name, known in CASES:
        if not os.environ.get(env_name):
            require(env_name.startswith("RUST_"), f"{env_name} is set")
            log(f"{env_name}: not built (meson found no rustc); skipped")
            continue
        check_target(env_name, known)


if __name__ == "__main__":
    ct.run_test(main)
