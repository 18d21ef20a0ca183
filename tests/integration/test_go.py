"""tests/integration/test_go.py -- a Go binary, profiled natively.

tests/targets/go-hot is built here with Debian's go (GOFLAGS=-mod=mod, caches in a
temporary home). Go's linker writes no .eh_frame and no .debug_aranges: CFI comes from
.debug_frame and the CU of a pc from the CUs' own ranges. The CPU profile must name the
hot goroutine's functions with file:line, go tool pprof must read it, and the thread dump
must show the same stack down to runtime.main.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402

SOURCE = os.path.join(ct.SOURCE_DIR, "tests", "targets", "go-hot")
MAIN_GO = os.path.join(SOURCE, "main.go")
HOT_STACK = ["main.hotLeaf", "main.hotLoop", "main.main", "runtime.main"]


def build():
    exe = ct.tmp_path("go-hot")
    p = subprocess.run(["go", "build", "-o", exe, "."], cwd=SOURCE, env=ct.go_env(),
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
    require(p.returncode == 0, "go build of the Go target",
            (p.stdout + p.stderr).decode(errors="replace"))
    return exe


def main():
    exe = build()
    out = ct.tmp_path("go-hot.out")
    with open(out, "w") as f:
        proc = ct.spawn([exe], stdout=f, stdin=subprocess.DEVNULL)
    pid = int(ct.wait_for_line(out, r"^ready (\d+)$", proc).group(1))
    log(f"target {pid}")
    daemon = ct.Daemon([pid])

    r = daemon.get("/debug/pprof/profile?seconds=2&hz=200", timeout=60)
    require(r.status == 200, "profile?seconds=2 answers 200", r.describe())
    prof = ct.decode_profile(r.body)
    total = sum(s.values[0] for s in prof.samples)
    hot = [s for s in prof.samples if s.functions()[:4] == HOT_STACK]
    n_hot = sum(s.values[0] for s in hot)
    check(total > 0 and n_hot >= 0.8 * total,
          f"CPU profile: {n_hot} of {total} samples are {' <- '.join(HOT_STACK)}",
          "\n".join(str(s.functions()) for s in prof.samples[:20]))
    lines = {fn.name: (fn.filename, line) for s in hot for loc in s.locations
             for fn, line in loc.lines}
    for name in ("main.hotLeaf", "main.hotLoop", "main.main"):
        file, line = lines.get(name, (None, 0))
        check(ct.same_file(file, MAIN_GO) and line > 0, f"{name} has file:line in main.go",
              f"{name}: {file}:{line}")

    path = ct.save(r, "go-hot.pb.gz")
    rc, text = ct.pprof("-top", "-nodecount=5", path)
    check(rc == 0 and "main.hotLeaf" in text, "go tool pprof -top reads it and shows main.hotLeaf",
          text)

    r, threads, errors = ct.fetch_debug2(daemon)
    require(r.status == 200, "debug=2 answers 200", r.describe())
    running = [t for t in threads if "main.hotLoop" in t.functions()]
    check(len(running) == 1 and not running[0].pseudo and
          running[0].functions()[running[0].functions().index("main.hotLoop"):][:3]
          == ["main.hotLoop", "main.main", "runtime.main"],
          "debug=2: the hot thread's stack through main.main to runtime.main, complete",
          r.text[:3000])
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")
    ct.check_not_stopped(pid, "after cprofd exited")


if __name__ == "__main__":
    ct.run_test(main)
