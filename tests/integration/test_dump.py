"""tests/integration/test_dump.py -- the thread dump of a process whose stacks are known.

cprofd-test-threads parks eleven threads behind chains of functions with known names
(tests/targets/threads.c). The debug=2 dump must show each chain exactly, in order, with
the libc frames below it (with file:line: libc6-dbg is installed), the inlined frame
without an offset, the 60 frames of the recursion, the signal frame, and main down to
_start. The debug=1 dump must count 11 threads, group the three pool threads into one
record of count 3, sort records by count and keep every frame line well-formed. Then the
leak demo: its "producer" group must lead debug=1 and grow between two fetches.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402

# Each thread's stack, leaf first: frames of libc (at least one, one of them matching
# LIBC with a file matching LIBC_FILE), then exactly CHAIN: (function regex, regex the
# frame's source line must match, or None when the frame is not ours).
WORKER_TAIL = [(r"start_thread", None), (r"(__)?clone3", None)]
MAIN_TAIL = [(r"__libc_start_call_main", None), (r"__libc_start_main\w*", None),
             (r"_start", None)]

EXPECTED = {
    "t-read": dict(libc=r".*read.*", libc_file=r".*/read\.c", chain=[
        ("inline_read", r"read\("), ("chain_c", r"inline_read\("), ("chain_b", r"chain_c\("),
        ("chain_a", r"chain_b\("), ("thread_read_main", r"chain_a\(")] + WORKER_TAIL),
    "t-cond": dict(libc=r".*pthread_cond_wait.*", libc_file=r".*/pthread_cond_wait\.c", chain=[
        ("cond_wait_leaf", r"pthread_cond_wait\("), ("thread_cond_main", r"cond_wait_leaf\(")]
        + WORKER_TAIL),
    "t-mutex": dict(libc=r".*pthread_mutex_lock.*", libc_file=r".*/pthread_mutex_lock\.c", chain=[
        ("mutex_lock_leaf", r"pthread_mutex_lock\("), ("thread_mutex_main", r"mutex_lock_leaf\(")]
        + WORKER_TAIL),
    "t-sleep": dict(libc=r".*nanosleep.*", libc_file=r".*/nanosleep\.c", chain=[
        ("sleep_leaf", r"nanosleep\("), ("thread_sleep_main", r"sleep_leaf\(")] + WORKER_TAIL),
    "t-recurse": dict(libc=r".*nanosleep.*", libc_file=r".*/nanosleep\.c", chain=[
        ("recurse_bottom", r"nanosleep\("), ("recurse", r"recurse_bottom\(")]
        + [("recurse", r"recurse\(n - 1\)")] * 59
        + [("thread_recurse_main", r"recurse\(RECURSE_DEPTH\)")] + WORKER_TAIL),
    "t-signal": dict(libc=r".*read.*", libc_file=r".*/read\.c", chain=[
        ("signal_handler_leaf", r"read\("), ("signal_handler", r"signal_handler_leaf\("),
        (r"__restore_rt", None), ("spin_until_signal", r"spin_forever|__asm__"),
        ("thread_signal_main", r"spin_until_signal\(")] + WORKER_TAIL),
    "t-spin": dict(libc=None, libc_file=None, chain=[
        ("spin_leaf", r"spin_forever|__asm__"), ("thread_spin_main", r"spin_leaf\(")] + WORKER_TAIL),
    "t-pool": dict(libc=r".*pthread_cond_wait.*", libc_file=r".*/pthread_cond_wait\.c", chain=[
        ("pool_wait_leaf", r"pthread_cond_wait\("), ("thread_pool_main", r"pool_wait_leaf\(")]
        + WORKER_TAIL),
    "main": dict(libc=r".*pause.*", libc_file=r".*/pause\.c", chain=[
        ("main_wait", r"pause\(\)"), ("main", r"main_wait\(")] + MAIN_TAIL),
}
# Where libc6-dbg puts the outer libc frames.
LIBC_FILES = {"start_thread": r".*/pthread_create\.c", "clone3": r".*/clone3\.S",
              "__clone3": r".*/clone3\.S", "__libc_start_call_main": r".*/libc_start_call_main\.h",
              "__libc_start_main_impl": r".*/libc-start\.c"}
THREAD_NAMES = ["t-read", "t-cond", "t-mutex", "t-sleep", "t-recurse", "t-signal", "t-spin",
                "t-pool", "t-pool", "t-pool"]


def is_ours(frame):
    return frame.file is not None and ct.same_file(frame.file, ct.THREADS_SOURCE)


def check_stack(label, thread, spec):
    frames = thread.frames
    detail = thread.describe()
    chain = spec["chain"]
    first = re.compile(chain[0][0])
    start = next((i for i, f in enumerate(frames) if first.fullmatch(f.function or "")), None)
    if not check(start is not None, f"{label}: {chain[0][0]} is in the stack", detail):
        return

    libc = frames[:start]
    if spec["libc"] is None:
        check(not libc, f"{label}: {chain[0][0]} is the leaf", detail)
    else:
        check(libc and all(f.file and f.lineno and not is_ours(f) for f in libc),
              f"{label}: {len(libc)} libc frame(s) below {chain[0][0]}, each with file:line",
              detail)
        check(any(re.fullmatch(spec["libc"], f.function or "")
                  and f.file and re.fullmatch(spec["libc_file"], f.file) for f in libc),
              f"{label}: a libc frame matches {spec['libc']} in {spec['libc_file']}", detail)

    got = [f.function for f in frames[start:]]
    want = [name for name, _ in chain]
    ok = len(got) == len(want) and all(re.fullmatch(w, g or "") for w, g in zip(want, got))
    if not check(ok, f"{label}: frames above the leaf are exactly the expected chain",
                 "expected: " + " <- ".join(want) + "\ngot:      " + " <- ".join(map(str, got))
                 + "\n" + detail):
        return

    for f, (name, call) in zip(frames[start:], chain):
        if call is None:
            continue
        text = ct.source_line(ct.THREADS_SOURCE, f.lineno) if is_ours(f) and f.lineno else None
        if not check(text is not None and re.search(call, text),
                     f"{label}: {name} at {f.file}:{f.lineno} is the line with {call!r}",
                     f"line {f.lineno}: {text!r}\n{f.raw}"):
            break

    for f in frames[start:]:
        want_file = LIBC_FILES.get(f.function)
        if want_file and not check(f.file and re.fullmatch(want_file, f.file) and f.lineno,
                                   f"{label}: {f.function} at {want_file}:LINE", f.raw):
            break

    # Physical frames print "+0xOFF", inlined ones never do.
    for f in frames:
        if is_ours(f) and f.function != "inline_read":
            if not check(f.offset is not None and f.offset > 0,
                         f"{label}: {f.function} has a +0x offset", f.raw):
                break


def check_threads_dump(target, daemon):
    r, threads, errors = ct.fetch_debug2(daemon)
    require(r.status == 200, "debug=2 answers 200", r.describe())
    check(r.header("Content-Type") == "text/plain; charset=utf-8", "debug=2 is text/plain",
          r.header("Content-Type"))
    check(not errors, "debug=2 parses: every line is a header, function or location",
          "\n".join(errors) + "\n\n" + r.text)
    check(len(threads) == 11, f"debug=2 has 11 threads ({len(threads)})")
    check([t.tid for t in threads] == sorted(target.tids()),
          "debug=2 lists the target's tids, ascending",
          f"dump: {[t.tid for t in threads]}\n/proc: {target.tids()}")
    main = [t for t in threads if t.tid == target.pid]
    workers = [t for t in threads if t.tid != target.pid]
    check(sorted(t.name for t in workers) == sorted(THREAD_NAMES),
          "debug=2 names the ten workers", [t.name for t in workers])
    check(ct.debug2_partial(r.text) is None, "debug=2 is complete (no '# partial:')",
          ct.debug2_partial(r.text))
    check("[truncated]" not in r.text and not any(t.pseudo for t in threads),
          "debug=2: no stack is truncated, elided or missing",
          "\n\n".join(t.describe() for t in threads if t.pseudo))

    for t in workers:
        spec = EXPECTED.get(t.name)
        if spec:
            check_stack(f"{t.name} ({t.tid})", t, spec)
    require(len(main) == 1, "debug=2 has the main thread")
    check_stack(f"main ({target.pid})", main[0], EXPECTED["main"])

    recurse = [t for t in workers if t.name == "t-recurse"]
    if recurse:
        n = recurse[0].functions().count("recurse")
        check(n == 60, f"t-recurse: exactly 60 recurse frames ({n})")

    read = [t for t in workers if t.name == "t-read"]
    if read:
        inl = [f for f in read[0].frames if f.function == "inline_read"]
        check(inl and inl[0].offset is None and inl[0].lineno,
              "t-read: inline_read shows file:line without +0x (inlined)",
              inl[0].raw if inl else read[0].describe())

    for t in threads:
        want = "R" if t.name == "t-spin" else "S"
        check(t.state.startswith(want), f"{t.name} ({t.tid}): state {t.state!r} is {want}",
              t.lines[0])
    for name, wait in (("t-read", "read fd "), ("t-cond", "condvar &"), ("t-sleep", "nanosleep 1h0m")):
        for t in (t for t in workers if t.name == name):
            check(wait in t.bracket, f"{name}: the header names the wait ({wait})", t.lines[0])

    # A snapshot must not disturb what the next one reports: same stacks, same states and
    # waits (a sleep interrupted by the last stop is still a sleep, not restart_syscall).
    r, again, errors = ct.fetch_debug2(daemon)
    require(r.status == 200 and not errors, "a second debug=2 answers 200", r.describe())
    before = {t.tid: t for t in threads}
    for t in again:
        b = before.get(t.tid)
        if b is None or t.name == "t-spin":
            continue
        # A sleep's time left moves on, nothing else does.
        check(t.functions() == b.functions() and without_time_left(t.bracket) == without_time_left(b.bracket),
              f"{t.name} ({t.tid}): the second dump shows the same header and stack",
              b.describe() + "\n\n" + t.describe())
    return threads


def without_time_left(bracket):
    return re.sub(r", [^,]* left", "", bracket)


def check_debug1(target, daemon, threads2):
    r, d1 = ct.fetch_debug1(daemon)
    require(r.status == 200, "debug=1 answers 200", r.describe())
    check(r.header("Content-Type") == "text/plain; charset=utf-8", "debug=1 is text/plain",
          r.header("Content-Type"))
    check(r.text.startswith("threads profile: total 11\n"),
          "debug=1 starts with 'threads profile: total 11'", r.text[:200])
    check(not d1.errors, "debug=1: every line is well-formed",
          "\n".join(d1.errors) + "\n\n" + r.text)
    check(d1.partial is None, "debug=1 is complete (no '# partial:')", d1.partial)
    check(sum(g.count for g in d1.groups) == 11, "debug=1: the record counts add up to 11")
    counts = [g.count for g in d1.groups]
    check(counts == sorted(counts, reverse=True), f"debug=1: records sorted by count {counts}")
    check("[truncated]" not in r.text, "debug=1: nothing is truncated")

    for g in d1.groups:
        check(len(g.threads) == g.count,
              f"debug=1: the '# threads:' line of '{g.lines[0][:40]}…' names {g.count} thread(s)",
              "\n".join(g.lines))
        # Every frame line shows the lookup pc of one of the record's pcs.
        allowed = {pc for pc in g.pcs} | {pc - 1 for pc in g.pcs}
        stray = [f.line for f in g.frames if f.pc not in allowed]
        check(not stray, "debug=1: frame pcs belong to the record's '@' list",
              "\n".join(stray + g.lines))
        check(all(f.function and f.file and f.lineno for f in g.frames
                  if f.function not in ("_start", "__restore_rt")),
              "debug=1: every frame line has func+0xoff and file:line", "\n".join(g.lines))

    pool_tids = sorted(t.tid for t in threads2 if t.name == "t-pool")
    pool = [g for g in d1.groups if g.count == 3]
    if check(len(pool) == 1, "debug=1: one record of count 3", r.text):
        g = pool[0]
        check(sorted(tid for tid, _ in g.threads) == pool_tids
              and all(name == "t-pool" for _, name in g.threads),
              "debug=1: the count-3 record's '# threads:' line names the three t-pool tids",
              "\n".join(g.lines[:2]) + f"\nt-pool tids: {pool_tids}")
        check(d1.groups[0] is g, "debug=1: the t-pool record comes first")
        check("pool_wait_leaf" in g.functions() and "thread_pool_main" in g.functions(),
              "debug=1: the t-pool record shows pool_wait_leaf and thread_pool_main",
              "\n".join(g.lines))

    # The t-read record: same frames as debug=2, inline_read on the pc of chain_c.
    read2 = [t for t in threads2 if t.name == "t-read"]
    read1 = [g for g in d1.groups if any(name == "t-read" for _, name in g.threads)]
    if read1 and read2:
        g = read1[0]
        check(g.functions() == read2[0].functions(),
              "debug=1 and debug=2 show the same t-read frames",
              "\n".join(g.lines) + "\n\n" + read2[0].describe())
        fr = {f.function: f for f in g.frames}
        if "inline_read" in fr and "chain_c" in fr:
            check(fr["inline_read"].pc == fr["chain_c"].pc,
                  "debug=1: inline_read and chain_c share one pc", "\n".join(g.lines))


def check_leak_demo():
    log("--- leak demo")
    demo = ct.leak_demo(["--interval-ms", "50"])
    daemon = ct.Daemon([demo.pid])
    time.sleep(0.5)
    r1, a = ct.fetch_debug1(daemon)
    time.sleep(1.0)
    r2, b = ct.fetch_debug1(daemon)
    require(r1.status == 200 and r2.status == 200, "leak demo: debug=1 answers 200",
            r1.describe() + "\n" + r2.describe())
    check(not a.errors and not b.errors, "leak demo: debug=1 is well-formed",
          "\n".join(a.errors + b.errors))

    def producers(d):
        for g in d.groups:
            if "send_result" in g.functions() and "producer" in g.functions():
                return g
        return None

    pa, pb = producers(a), producers(b)
    require(pa is not None and pb is not None,
            "leak demo: a record shows producer -> send_result", r2.text)
    # The newest producer may not have its name yet: the creator names it after clone().
    named = sum(1 for _, name in pb.threads if name == "producer")
    check(named >= pb.count - 1, "leak demo: the record's threads are named 'producer'",
          pb.lines[1])
    check(any(re.search(r"write", f or "") for f in pb.functions()[:3]),
          "leak demo: the producers block in write()", "\n".join(pb.lines))
    check(pb.count > pa.count, f"leak demo: the producer count grows ({pa.count} -> {pb.count})")
    check(a.groups[0] is pa and b.groups[0] is pb,
          "leak demo: the producer record leads the list", r2.text[:2000])
    check(b.total > a.total, f"leak demo: the total grows ({a.total} -> {b.total})")
    daemon.stop()
    demo.kill()


def main():
    target = ct.threads_target()
    daemon = ct.Daemon([target.pid])
    log(f"target {target.pid}, cprofd on port {daemon.port}")
    threads2 = check_threads_dump(target, daemon)
    check_debug1(target, daemon, threads2)
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")
    ct.check_not_stopped(target.pid, "after cprofd exited")
    check_leak_demo()


if __name__ == "__main__":
    ct.run_test(main)
