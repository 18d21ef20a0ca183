"""tests/integration/test_container.py -- a target in a container of its own, as a runtime
starts one: other mount and pid namespaces, another root directory, its executable at a
path that does not exist on the host.

The root is made here: tests/targets/heap-leak.c copied to ROOT/opt/ctr-only/bin/target
with the libraries `ldd` lists, its DWARF moved to ROOT/usr/lib/debug/.build-id/xx/yyyy.debug
(objcopy --only-keep-debug, strip --strip-debug: file:line can only come from that file),
and it is started with `unshare --mount --pid --fork --mount-proc=ROOT/proc chroot ROOT …`
(a runtime mounts the container's /proc in its root). Then:

- goroutine?debug=2 names the target's functions, with file:line from the root's debug
  file, and every thread header shows the host's id and the namespace's, as
  `thread TID (ns NSTID) "NAME"`, NSTID the last NSpid of /proc/TID/status; debug=1's
  `# threads:` items show both too;
- heap tracking works: the agent is loaded from a memfd copy (`/memfd:libcprofd-agent.so`
  in the target's maps), heap?debug=1 names leak_site with file:line;
- cprofd ended by SIGTERM: the target runs on, no thread stopped, the agent's shared memory
  gone; cprofd ended by SIGKILL: the agent sees it go through its pipe (a pid would mean
  nothing in the target's pid namespace) and lets its shared memory go within seconds; a
  second cprofd then tracks the heap again (the copy already loaded is reused);
- nothing was written into the root (a listing of every file, with sizes, times and
  modes, is the same after as before);
- the same root started with plain `--mount-proc` has no /proc inside: the dump still
  works, and heap tracking is refused with the reason (the agent could only be loaded
  from a file written into the root).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402
import test_heap as th  # noqa: E402

INSIDE = "/opt/ctr-only/bin/target"
AGENT_COPY = "/memfd:libcprofd-agent.so"
LEAK_SOURCE = os.path.basename(th.LEAK_SOURCE)


# --- the root -----------------------------------------------------------------------------

def ldd_paths(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = []
    for line in out.split("\n"):
        m = re.search(r"(/\S+) \(0x", line)
        if m:
            paths.append(m.group(1))
    return paths


def build_id(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    require(m, f"{path} has a build-id", out)
    return m.group(1)


def make_root():
    """ROOT with the heap-leak target, its libraries and its split debug file."""
    require(not os.path.exists(os.path.dirname(INSIDE)),
            f"{os.path.dirname(INSIDE)} does not exist on the host")
    root = ct.tmp_path("ctr-root")
    source = ct.env_binary("HEAP_LEAK_TARGET")
    exe = root + INSIDE
    os.makedirs(os.path.dirname(exe))
    shutil.copy2(source, exe)
    for lib in ldd_paths(source):
        dest = root + lib
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dest)
    os.makedirs(root + "/proc")
    bid = build_id(exe)
    debug = f"{root}/usr/lib/debug/.build-id/{bid[:2]}/{bid[2:]}.debug"
    os.makedirs(os.path.dirname(debug))
    subprocess.run(["objcopy", "--only-keep-debug", exe, debug], check=True)
    subprocess.run(["strip", "--strip-debug", exe], check=True)
    sections = subprocess.run(["readelf", "-S", exe], capture_output=True, text=True).stdout
    require(".debug_info" not in sections, "the target in the root has no DWARF of its own")
    require(not os.path.exists(f"/usr/lib/debug/.build-id/{bid[:2]}/{bid[2:]}.debug"),
            "the host has no debug file of that build-id")
    return root


def listing(root):
    """Every entry under ROOT with its type, mode, size and times (the empty /proc mount
    point included: a mount inside the container's namespace is no write)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns,
                                                st.st_ctime_ns)
    st = os.lstat(root)
    out["."] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return out


class ContainerTarget:
    """The target started by unshare + chroot; pid is its host pid."""

    def __init__(self, root, mount_proc_inside=True):
        self.out = ct.tmp_path(f"container-{time.monotonic_ns()}.out")
        proc_opt = f"--mount-proc={root}/proc" if mount_proc_inside else "--mount-proc"
        argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child", proc_opt,
                "chroot", root, INSIDE]
        with open(self.out, "w") as f:
            # unshare ignores SIGTERM while it waits; SIGKILL ends it, and --kill-child
            # the target with it.
            self.proc = ct.spawn(argv, kill_signal=signal.SIGKILL, stdout=f,
                                 stdin=subprocess.DEVNULL)
        m = ct.wait_for_line(self.out, r"^ready (\d+)$", self.proc)
        self.ns_pid = int(m.group(1))
        children = open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read().split()
        require(len(children) == 1, "unshare has one child, the target", children)
        self.pid = int(children[0])
        require(os.readlink(f"/proc/{self.pid}/exe").endswith(INSIDE),
                f"pid {self.pid} is the target", os.readlink(f"/proc/{self.pid}/exe"))

    def alive(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False


def ns_tid(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    return None


# --- checks -------------------------------------------------------------------------------

DEBUG2_HEADER_NS = re.compile(r'^thread (\d+) \(ns (\d+)\) "((?:[^"\\]|\\.)*)" \[(.*)\]:$')
THREADS_ITEM_NS = re.compile(r'(\d+) \(ns (\d+)\) "((?:[^"\\]|\\.)*)"')


def check_dump(daemon, target, what, with_lines=True):
    r = daemon.get("/debug/pprof/goroutine?debug=2")
    require(r.status == 200, f"{what}: debug=2: 200", r.describe())
    threads, errors = ct.parse_debug2(r.text)
    check(not errors, f"{what}: debug=2 parses", "\n".join(errors[:10]))
    headers = [line for line in r.text.split("\n") if line.startswith("thread ")]
    tids = [int(t) for t in ct.task_ids(target.pid)]
    seen = {}
    for h in headers:
        m = DEBUG2_HEADER_NS.match(h)
        check(m, f"{what}: debug=2 header {h!r} has the namespace's id")
        if m:
            seen[int(m.group(1))] = int(m.group(2))
    check(sorted(seen) == sorted(tids), f"{what}: debug=2 shows the host's tids {tids}",
          sorted(seen))
    check(all(seen[t] == ns_tid(target.pid, t) for t in seen if t in tids),
          f"{what}: the ns ids are the last NSpid of each thread ({seen})")
    check(seen.get(target.pid) == target.ns_pid == 1,
          f"{what}: the main thread is {target.pid} (ns 1)", seen)
    # By its stack: without /proc in its root, pthread_setname_np cannot name it.
    leaker = next((t for t in threads if "leaker_main" in t.functions()), None)
    require(leaker, f"{what}: a thread in leaker_main", [t.describe() for t in threads])
    frames = {f.function: f for f in leaker.frames}
    check("leaker_loop" in frames and "leaker_main" in frames,
          f"{what}: the leaker's stack names the target's functions", leaker.describe())
    if with_lines:
        f = frames.get("leaker_loop")
        check(f is not None and f.file and f.file.endswith(LEAK_SOURCE) and f.lineno,
              f"{what}: leaker_loop has file:line (from the root's debug file)",
              leaker.describe())

    r = daemon.get("/debug/pprof/goroutine?debug=1")
    require(r.status == 200, f"{what}: debug=1: 200", r.describe())
    items = [i.strip() for line in r.text.split("\n") if line.startswith("# threads:")
             for i in line[len("# threads:"):].split(", ")]
    check(items and all(THREADS_ITEM_NS.fullmatch(i) for i in items),
          f"{what}: every debug=1 # threads: item has the namespace's id", items)


def check_heap(root):
    what = "container heap"
    target = ContainerTarget(root)
    daemon = th.start_daemon(target, what)
    check_dump(daemon, target, what)
    _, h = th.wait_for_site(daemon, "leak_site", what)
    rec = th.site_records(h, "leak_site")[0]
    leak = [f for f in rec.frames if f.function == "leak_site"]
    check(leak and leak[0].file and leak[0].file.endswith(LEAK_SOURCE) and leak[0].lineno,
          f"{what}: leak_site has file:line", "\n".join(rec.lines))
    maps = open(f"/proc/{target.pid}/maps").read()
    check(AGENT_COPY in maps, f"{what}: the agent is mapped from its memfd copy",
          [line for line in maps.split("\n") if "agent" in line])
    check(th.agent_traces(target.pid)["fds"], f"{what}: the agent's shared memory is open")
    th.stop_daemon(daemon, what)
    check(th.agent_left(target), f"{what}: after SIGTERM the agent's shared memory is gone",
          th.agent_traces(target.pid))
    ct.check_not_stopped(target.pid, what)
    th.check_runs_on(target, f"{what}: after cprofd exited")

    what = "container heap, SIGKILL"
    daemon = th.start_daemon(target, what)
    th.wait_for_site(daemon, "leak_site", what)
    daemon.proc.kill()
    daemon.proc.wait()
    check(th.agent_left(target, timeout=15), f"{what}: the agent sees cprofd go and lets its "
          "shared memory go", th.agent_traces(target.pid))
    ct.check_not_stopped(target.pid, what)
    th.check_runs_on(target, f"{what}: after cprofd was killed")

    what = "container heap, again"
    daemon = th.start_daemon(target, what)
    th.wait_for_site(daemon, "leak_site", what)
    maps = open(f"/proc/{target.pid}/maps").read()
    copies = {line.split()[4] for line in maps.split("\n") if AGENT_COPY in line}
    check(len(copies) == 1, f"{what}: the copy loaded before is reused", copies)
    th.stop_daemon(daemon, what)
    th.check_runs_on(target, f"{what}: after cprofd exited")


def check_no_proc(root):
    what = "container without /proc"
    target = ContainerTarget(root, mount_proc_inside=False)
    daemon = th.start_daemon(target, what)
    check_dump(daemon, target, what)
    r = daemon.get("/debug/pprof/heap?debug=1")
    check(r.status != 200 and "without /proc mounted" in r.text,
          f"{what}: heap tracking is refused with the reason", r.describe())
    th.stop_daemon(daemon, what)
    th.check_runs_on(target, f"{what}: after cprofd exited")


def main():
    for tool in ("unshare", "chroot", "objcopy", "strip", "readelf", "ldd"):
        require(shutil.which(tool), f"{tool} is installed")
    root = make_root()
    before = listing(root)
    log(f"root {root}: {len(before)} entries")
    ct.scenario(check_heap, root)
    ct.scenario(check_no_proc, root)
    after = listing(root)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    check(not changed, "nothing was written into the container's root", changed)


if __name__ == "__main__":
    ct.run_test(main)
