"""tests/integration/test_gdb_oracle.py -- gdb as the oracle for every thread's stack.

`test_gdb_oracle.py [c|cpp|tail]`: the C target (cprofd-test-threads, the default), the C++
one (cprofd-test-cpp-server: std::thread, templates, lambdas, an exception in flight,
std::async, a thread pool, a coroutine), or cprofd-test-tail-call (a tail call from the
executable into libc, which gdb shows as a tailcall frame). gdb attaches to the target first (`thread apply all bt`) and detaches; then cprofd
serves debug=2; after cprofd exits, gdb attaches again, which also proves cprofd left the
target in a state a debugger can take over. (Two tracers cannot hold a process at once.)

For every thread, the functions gdb shows must appear in cprofd's frames in the same order,
with nothing in between, and for the frames of the test program file:line must agree.
cprofd may show more below main: gdb stops at main by default.

The only normalisation: "<signal handler called>" is gdb's name for the signal
trampoline, __restore_rt; and C++ names are compared by their last component without
template arguments and parameters, since gdb itself spells one function in several ways
(with and without default template arguments, `<lambda()>` or `{lambda()#1}`, parameters
for some frames only). For C++ the file:line of every frame of the test program must
agree too, so a wrong frame with a similar name still fails. Frames gdb rebuilds for tail calls (from DWARF call-site
records: no return address of theirs is on the stack) are compared like any other, since
cprofd rebuilds them the same way; gdb's Python API (run in the same session) marks them,
and the inlined and signal frames, in the failure reports.
"""

import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402

FRAME_TYPES_SCRIPT = r'''
import gdb
names = {gdb.NORMAL_FRAME: "normal", gdb.INLINE_FRAME: "inline",
         gdb.TAILCALL_FRAME: "tailcall", gdb.SIGTRAMP_FRAME: "sigtramp"}
for t in sorted(gdb.selected_inferior().threads(), key=lambda t: t.ptid[1]):
    t.switch()
    f = gdb.newest_frame()
    i = 0
    while f is not None:
        print("@@frame %d %d %s %s" % (t.ptid[1], i, names.get(f.type(), "other"), f.name()))
        f = f.older()
        i += 1
'''

THREAD_LINE = re.compile(r'^Thread \d+ \(.*\(LWP (\d+)\)(?: "(.*)")?\):$')
FRAME_LINE = re.compile(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(\S+)")
AT_FILE = re.compile(r" at (\S+):(\d+)$")
SIGNAL_LINE = re.compile(r"^#(\d+)\s+<signal handler called>$")

# gdb's name -> the name DWARF/ELF give the same frame.
GDB_NAMES = {"<signal handler called>": "__restore_rt"}


class GdbFrame:
    def __init__(self, index, function, file=None, lineno=None, raw=""):
        self.index = index
        self.function = function
        self.file = file
        self.lineno = lineno
        self.type = None
        self.raw = raw


def run_gdb(pid):
    script = ct.tmp_path("frame-types.py")
    with open(script, "w") as f:
        f.write(FRAME_TYPES_SCRIPT)
    argv = ["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "set pagination off",
            "-ex", "thread apply all bt", "-x", script]
    proc = ct.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, kill_signal=signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    return out.decode("utf-8", errors="replace")


def parse_gdb(text):
    """{lwp: (name, [GdbFrame])} from `thread apply all bt` and the frame-type lines."""
    threads = {}
    current = None
    types = {}
    for line in text.split("\n"):
        m = THREAD_LINE.match(line)
        if m:
            current = []
            threads[int(m.group(1))] = (m.group(2), current)
            continue
        if line.startswith("@@frame "):
            _, lwp, idx, kind, name = line.split(" ", 4)
            types[(int(lwp), int(idx))] = (kind, name)
            current = None
            continue
        if current is None:
            continue
        m = SIGNAL_LINE.match(line)
        if m:
            current.append(GdbFrame(int(m.group(1)), "<signal handler called>", raw=line))
            continue
        m = FRAME_LINE.match(line)
        if m:
            at = AT_FILE.search(line)
            current.append(GdbFrame(int(m.group(1)), m.group(2),
                                    at.group(1) if at else None,
                                    int(at.group(2)) if at else None, raw=line))
    # The backtrace's names end at the first " (", which C++ names may contain; the
    # Python API gives them whole.
    for lwp, (_, frames) in threads.items():
        for f in frames:
            f.type, name = types.get((lwp, f.index), (None, None))
            if name and f.function != "<signal handler called>":
                f.function = "??" if name == "None" else name
    return threads


def normalised(frames):
    for f in frames:
        f.function = GDB_NAMES.get(f.function, f.function)
    return frames


# A tail-call frame cprofd shows and gdb does not -> the function right below it.
TAIL_FRAMES_BEYOND_GDB = {"___pthread_once": "__pthread_once_slow"}


def strip_balanced(name, open_c, close_c):
    out = []
    depth = 0
    for c in name:
        if c == open_c:
            depth += 1
        elif c == close_c and depth > 0:
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out)


def cpp_key(name):
    """ho::Channel<std::string>::receive() const -> receive; operator() -> operator."""
    if not name:
        return name
    s = strip_balanced(name.replace("operator<<", "operator_shl"), "<", ">")
    s = re.sub(r"\s*(const|volatile|&&|&)\s*$", "", s)
    while s.endswith(")"):             # "operator()() const" and "operator()" alike
        depth, cut = 0, None
        for i in range(len(s) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(s[i], 0)
            if depth == 0:
                cut = i
                break
        if cut is None:
            break
        s = s[:cut]
    s = s.replace(" ", "")
    return s.rsplit("::", 1)[-1]


def compare_thread(label, gdb_frames, thread, key, source):
    got = thread.frames
    names = [key(f.function) for f in got]
    want = [key(f.function) for f in gdb_frames]
    detail = ("gdb:\n" + "\n".join(f.raw + (f"   [{f.type}]" if f.type != "normal" else "")
                                   for f in gdb_frames)
              + "\n\ncprofd:\n" + thread.describe()
              + ("\n\ncompared:\n" + " ".join(want) + "\nwith:\n" + " ".join(names)
                 if want != [f.function for f in gdb_frames] else ""))

    # gdb's functions, in order, as a subsequence of cprofd's.
    pos = []
    j = 0
    for w in want:
        while j < len(names) and names[j] != w:
            j += 1
        if j == len(names):
            break
        pos.append(j)
        j += 1
    if not check(len(pos) == len(want),
                 f"{label}: cprofd shows every function gdb shows, in order", detail):
        return
    # Frames cprofd rebuilds where gdb does not: glibc's pthread_once ends in a jump to
    # __pthread_once_slow (objdump shows the jmp); gdb finds no tail-call chain that starts
    # in another module than the call site naming it, cprofd does.
    extra = [(names[k], names[k - 1] if k > 0 else None)
             for k in range(pos[-1] + 1 if pos else 0) if k not in pos]
    check(all(TAIL_FRAMES_BEYOND_GDB.get(name) == below for name, below in extra),
          f"{label}: and nothing gdb does not show above its outermost frame", detail)

    for gf, k in zip(gdb_frames, pos):
        cf = got[k]
        if gf.file and ct.same_file(gf.file, source):
            if not check(ct.same_file(cf.file, gf.file) and cf.lineno == gf.lineno,
                         f"{label}: {gf.function} at {gf.file}:{gf.lineno} in both",
                         f"gdb:    {gf.raw}\ncprofd: {cf.raw}"):
                break
        elif gf.file and (not ct.same_file(cf.file, gf.file) or cf.lineno != gf.lineno):
            log(f"note    {label}: {gf.function}: gdb {gf.file}:{gf.lineno}, "
                f"cprofd {cf.file}:{cf.lineno}")


CPP_SOURCE = os.path.join(ct.SOURCE_DIR, "tests", "targets", "cpp-server.cc")
TAIL_SOURCE = os.path.join(ct.SOURCE_DIR, "tests", "targets", "tail-call.c")


def main():
    kind = sys.argv[1] if len(sys.argv) > 1 else "c"
    if kind == "cpp":
        target = ct.Target("CPP_SERVER_TARGET")
        key, source = cpp_key, CPP_SOURCE
    elif kind == "tail":
        target = ct.Target("TAIL_CALL_TARGET")
        key, source = (lambda name: name), TAIL_SOURCE
    else:
        target = ct.threads_target()
        key, source = (lambda name: name), ct.THREADS_SOURCE
    log(f"target {target.pid} ({kind})")

    before_text = run_gdb(target.pid)
    before = parse_gdb(before_text)
    require(sorted(before) == target.tids(), "gdb sees every thread of the target",
            before_text)
    require(all(t[1] for t in before.values()), "gdb shows a backtrace for each thread",
            before_text)
    tailcalls = sorted({f.function for _, fr in before.values() for f in fr
                        if f.type == "tailcall"})
    log(f"note    gdb's tail-call frames: {', '.join(tailcalls) or 'none'}")
    ct.check_not_stopped(target.pid, "after gdb detached")

    daemon = ct.Daemon([target.pid])
    r, threads, errors = ct.fetch_debug2(daemon)
    require(r.status == 200, "cprofd: debug=2 answers 200", r.describe())
    check(not errors, "cprofd: debug=2 parses", "\n".join(errors))
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")
    ct.check_not_stopped(target.pid, "after cprofd exited")

    after_text = run_gdb(target.pid)
    after = parse_gdb(after_text)
    check({lwp: [f.function for f in fr] for lwp, (_, fr) in before.items()}
          == {lwp: [f.function for f in fr] for lwp, (_, fr) in after.items()},
          "gdb attaches again after cprofd and sees the same stacks", after_text)

    dumped = {t.tid: t for t in threads}
    check(sorted(dumped) == sorted(before), "cprofd and gdb list the same threads",
          f"cprofd: {sorted(dumped)}\ngdb: {sorted(before)}")
    for lwp, (name, frames) in sorted(before.items()):
        if lwp in dumped:
            compare_thread(f"{name} ({lwp})", normalised(frames), dumped[lwp], key, source)
            if kind != "c":
                check(not dumped[lwp].pseudo,
                      f"{name} ({lwp}): cprofd's stack is complete", dumped[lwp].describe())


if __name__ == "__main__":
    ct.run_test(main)
