"""tests/integration/test_pprof.py -- what `go tool pprof` (Debian's golang-go) makes of
what cprofd serves: goroutine?debug=0 read by -raw, -top and -traces; -base of two
profiles of the leak demo and the server-side seconds=N delta both show the leaking stack's
growth; addresses taken from a served profile resolve through /symbol; and the loop keeps
answering while a delta waits, and forgets a request whose client went away.
"""

import os
import re
import shutil
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402
from cprofd_test import pprof, raw_locations, save, stacks  # noqa: E402


def check_goroutine_profile(daemon, target):
    r = daemon.get("/debug/pprof/goroutine?debug=0")
    require(r.status == 200, "goroutine?debug=0: 200", r.describe())
    check(r.header("Content-Type") == "application/octet-stream",
          "goroutine?debug=0: application/octet-stream", r.describe())
    check(r.header("Content-Disposition") == 'attachment; filename="goroutine"',
          "goroutine?debug=0: attachment; filename=\"goroutine\"", r.header("Content-Disposition"))
    check(r.body[:2] == b"\x1f\x8b", "goroutine?debug=0: gzip", r.body[:8])
    path = save(r, "goroutine.pb.gz")

    rc, raw = pprof("-raw", path)
    require(rc == 0, "go tool pprof -raw reads it", raw)
    check("goroutine/count" in raw, "-raw: sample type goroutine/count", raw[:2000])
    all_stacks = stacks(raw)
    total = sum(v[0] for v, _, _ in all_stacks)
    check(total == 11, f"-raw: the samples count 11 threads ({total})", raw[:4000])
    pool = [s for s in all_stacks if "pool_wait_leaf" in s[1]]
    check(len(pool) == 1 and pool[0][0] == [3],
          "-raw: the three t-pool threads are one sample of value 3", pool)
    check(pool and pool[0][2].get("thread_name") == "t-pool",
          "-raw: the pool sample is labelled thread_name:[t-pool]", pool)
    reader = [s for s in all_stacks if "chain_c" in s[1]]
    want = ["inline_read", "chain_c", "chain_b", "chain_a", "thread_read_main", "start_thread"]
    got = [n for n in reader[0][1] if n in want] if reader else []
    check(got == want, "-raw: t-read's stack, inlined frame first, in order", reader)
    recurse = [s for s in all_stacks if "recurse_bottom" in s[1]]
    check(recurse and recurse[0][1].count("recurse") == 60, "-raw: 60 recurse frames",
          recurse[0][1] if recurse else raw[:3000])
    exe = os.path.realpath(target.path)
    mappings = raw.split("Mappings", 1)[1] if "Mappings" in raw else ""
    first = next((l for l in mappings.split("\n") if l.strip()), "")
    check(exe in first, "-raw: mapping 1 is the main executable", mappings[:1500])
    check(re.search(r"libc\.so\.6\s+[0-9a-f]{40}", mappings) or
          re.search(r"[0-9a-f]{40}.*libc\.so\.6", mappings),
          "-raw: libc's mapping carries its build-id", mappings[:1500])

    rc, top = pprof("-top", path)
    check(rc == 0 and "pool_wait_leaf" in top and "recurse" in top,
          "go tool pprof -top lists our functions", top[:3000])
    rc, traces = pprof("-traces", path)
    check(rc == 0 and "thread_name:[t-pool]" in traces.replace(" ", "")
          or "t-pool" in traces, "go tool pprof -traces shows the thread_name label", traces[:3000])
    check(rc == 0 and re.search(r"inline_read.*\(inline\)", traces) is not None,
          "-traces: inline_read marked (inline)", traces[:3000])

    # pprof straight from the URL, as users run it.
    url = f"http://{ct.HOST}:{daemon.port}/debug/pprof/goroutine"
    rc, top = pprof("-top", url)
    check(rc == 0 and "thread_pool_main" in top, "go tool pprof -top URL works", top[:3000])
    return raw


def check_symbol(daemon, raw):
    locs = raw_locations(raw)
    named = [(addr, names[-1]) for addr, names in locs.values() if names and names[0] != "?"]
    ours = [(a, n) for a, n in named if n in ("chain_b", "chain_a", "thread_cond_main",
                                                "pool_wait_leaf", "main_wait")]
    require(len(ours) >= 3, "found our functions' addresses in the profile", named[:20])
    body = "+".join(hex(a) for a, _ in ours).encode()
    conn = __import__("http.client").client.HTTPConnection(ct.HOST, daemon.port, timeout=30)
    conn.request("POST", "/debug/pprof/symbol", body=body)
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    check(r.status == 200, "POST /symbol: 200", text)
    lines = text.split("\n")
    check(lines[0] == "num_symbols: 1", "POST /symbol: num_symbols: 1 first", text)
    got = {}
    for line in lines[1:]:
        m = re.match(r"(0x[0-9a-f]+)\s+(.*)", line)
        if m:
            got[int(m.group(1), 16)] = m.group(2)
    for addr, name in ours:
        check(got.get(addr) == name, f"POST /symbol: {addr:#x} is {name}", text)
    q = "+".join(hex(a) for a, _ in ours)
    r = daemon.get(f"/debug/pprof/symbol?{q}")
    check(r.status == 200 and all(n in r.text for _, n in ours), "GET /symbol?ADDR+ADDR",
          r.describe())


def producer_growth(text):
    return sum(v[0] for v, names, _ in stacks(text) if "producer" in names)


def check_deltas(demo_daemon):
    r0 = demo_daemon.get("/debug/pprof/goroutine")
    time.sleep(1.5)
    r1 = demo_daemon.get("/debug/pprof/goroutine")
    require(r0.status == 200 and r1.status == 200, "two goroutine profiles of the leak demo")
    p0, p1 = save(r0, "leak0.pb.gz"), save(r1, "leak1.pb.gz")
    rc, raw = pprof("-raw", "-base", p0, p1)
    require(rc == 0, "go tool pprof -raw -base p0 p1", raw)
    growth = producer_growth(raw)
    check(growth >= 3, f"-base: the producer stack grew ({growth:+d})", raw[:3000])
    others = [s for s in stacks(raw) if "producer" not in s[1]]
    check(all(v[0] == 0 for v, _, _ in others) or not others,
          "-base: the stacks that did not change cancel out", others)
    rc, top = pprof("-top", "-base", p0, p1)
    check(rc == 0 and "send_result" in top, "-top -base names the leaking function", top[:2000])

    t0 = time.monotonic()
    r = demo_daemon.get("/debug/pprof/goroutine?seconds=2", timeout=30)
    took = time.monotonic() - t0
    require(r.status == 200, "goroutine?seconds=2: 200", r.describe())
    check(r.header("Content-Disposition") == 'attachment; filename="goroutine-delta"',
          "seconds=2: filename goroutine-delta", r.header("Content-Disposition"))
    check(took >= 2.0, f"seconds=2 took the two seconds ({took:.2f} s)")
    path = save(r, "delta.pb.gz")
    rc, raw = pprof("-raw", path)
    require(rc == 0, "go tool pprof reads the delta", raw)
    growth = producer_growth(raw)
    check(growth >= 4, f"seconds=2 delta: the producer stack grew ({growth:+d})", raw[:3000])
    m = re.search(r"Duration: ([\d.]+)", raw)
    check(m is not None and 1.5 <= float(m.group(1)) <= 10, "the delta lasts about 2 s", raw[:500])


def check_async(daemon):
    """The loop answers while a delta waits; a client that leaves releases its request."""
    sock = socket.create_connection((ct.HOST, daemon.port))
    sock.sendall(b"GET /debug/pprof/goroutine?seconds=20 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.5)
    t0 = time.monotonic()
    r = daemon.get("/debug/pprof/")
    took = time.monotonic() - t0
    check(r.status == 200 and took < 2, f"the index answers while a 20 s delta waits ({took:.3f} s)")
    m = daemon.get("/metrics")
    check("cprofd_requests_in_progress 1" in m.text, "metrics: one request in progress", m.text)
    sock.close()
    deadline = time.monotonic() + 5
    text = ""
    while time.monotonic() < deadline:
        text = daemon.get("/metrics").text
        if "cprofd_requests_in_progress 0" in text:
            break
        time.sleep(0.1)
    check("cprofd_requests_in_progress 0" in text,
          "a client that disconnects releases its request at once", text)


def check_text_shapes(daemon):
    """debug=1 lines have the shapes of Go's (reference capture in tests/data)."""
    ref = open(os.path.join(ct.SOURCE_DIR, "tests", "data", "go-goroutine-debug1.txt")).read()
    ours = daemon.get("/debug/pprof/goroutine?debug=1").text
    header = re.compile(r"\A(\S+) profile: total \d+\Z")
    record = re.compile(r"^\d+ @( 0x[0-9a-f]+)+$")
    # A frame without line info (no DWARF there, e.g. _start) has no file cell.
    frame = re.compile(r"^#\t0x[0-9a-f]+\t\S+\+0x[0-9a-f]+(\t+\S+:\d+)?$")
    for name, text in (("Go's", ref), ("cprofd's", ours)):
        lines = text.split("\n")
        check(header.match(lines[0]), f"{name} header matches pprof's legacy regex", lines[0])
        recs = [l for l in lines if re.match(r"^\d+ @", l)]
        check(recs and all(record.match(l) for l in recs), f"{name} '@' lines", recs[:3])
        frames = [l for l in lines if l.startswith("#\t")]
        check(frames and all(frame.match(l) for l in frames), f"{name} frame lines",
              [l for l in frames if not frame.match(l)][:5])


def main():
    require(shutil.which("go") is not None, "go (golang-go) is installed")
    target = ct.threads_target()
    daemon = ct.Daemon([target.pid])
    log(f"threads target {target.pid}, cprofd on port {daemon.port}")
    raw = check_goroutine_profile(daemon, target)
    check_symbol(daemon, raw)
    check_text_shapes(daemon)
    check_async(daemon)
    r = daemon.get(f"/pid/{target.pid}/debug/pprof/cmdline")
    check(r.status == 200 and r.body == target.path.encode(), "/pid/PID/.../cmdline", r.describe())
    daemon.stop()

    demo = ct.leak_demo(["--interval-ms", "100"])
    demo_daemon = ct.Daemon([demo.pid])
    check_deltas(demo_daemon)
    demo_daemon.stop()


if __name__ == "__main__":
    ct.run_test(main)
