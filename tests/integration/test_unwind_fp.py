"""tests/integration/test_unwind_fp.py -- stacks through code that has no CFI.

cprofd-test-no-cfi runs two threads through trampolines that keep a frame pointer but have
no FDE: one is assembler in the executable's .text, the other machine code copied into an
anonymous executable mapping (a JIT's shape). cprofd must cross both by the frame-pointer
chain and go on with DWARF above them to clone3, with the whole stack complete, in the
thread dump and in the pprof goroutine profile, whose samples through such frames carry
the label unwind="frame pointer". The CPU-bound case is covered by the JIT tests.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402

EXPECTED = {
    "t-asm": ["block_in_read", "asm_blocker", "nocfi_call", "asm_thread_main",
              "start_thread", "clone3"],
    "t-jit": ["block_in_read", "jit_blocker", None, "jit_thread_main",
              "start_thread", "clone3"],
}


def user_part(functions):
    """From block_in_read on: the libc read frames below it vary with the build."""
    return functions[functions.index("block_in_read"):] if "block_in_read" in functions else functions


def main():
    target = ct.Target("NO_CFI_TARGET")
    log(f"target {target.pid}")
    daemon = ct.Daemon([target.pid])

    r, threads, errors = ct.fetch_debug2(daemon)
    require(r.status == 200, "debug=2 answers 200", r.describe())
    check(not errors, "debug=2 parses", "\n".join(errors))
    named = ct.by_name(threads)
    for name, want in EXPECTED.items():
        require(name in named, f"{name} is in the dump", r.text)
        t = named[name][0]
        got = user_part([None if f.function == "??" else f.function for f in t.frames])
        check(got == want, f"{name}: frames through the code without CFI, then DWARF again",
              f"want {want}\ngot  {got}\n\n{t.describe()}")
        check(not t.pseudo, f"{name}: the stack is complete", t.describe())
    jit = named["t-jit"][0]
    anon = [f for f in jit.frames if f.function == "??"]
    check(len(anon) == 1 and anon[0].module == "[anon]",
          "t-jit: the JIT frame is shown in its anonymous mapping", jit.describe())

    r = daemon.get("/debug/pprof/goroutine?debug=0")
    require(r.status == 200, "debug=0 answers 200", r.describe())
    prof = ct.decode_profile(r.body)
    by_fp = [s for s in prof.samples if s.labels.get("unwind") == "frame pointer"]
    through = [s for s in prof.samples
               if "asm_blocker" in s.functions() or "jit_blocker" in s.functions()]
    check(len(through) == 2 and all(s in by_fp for s in through),
          "pprof: both stacks through frames without CFI carry unwind=\"frame pointer\"",
          "\n".join(f"{s.labels} {s.functions()}" for s in prof.samples))
    check(len(by_fp) == len(through),
          "pprof: no stack unwound by DWARF alone carries the label",
          "\n".join(f"{s.labels} {s.functions()}" for s in by_fp))

    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")
    ct.check_not_stopped(target.pid, "after cprofd exited")


if __name__ == "__main__":
    ct.run_test(main)
