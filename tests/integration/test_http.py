"""tests/integration/test_http.py -- cprofd's HTTP face, as net/http/pprof behaves and as
`go tool pprof` and curl rely on it: the index, the redirect, errors (404 with X-Go-Pprof: 1,
text/plain), target selection in the path with two targets, cmdline, /metrics, nosniff on
every reply, and paths that try to climb out of the routes.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402

TEXT = "text/plain; charset=utf-8"
replies = []


def get(daemon, path):
    r = daemon.get(path)
    replies.append((path, r))
    return r


def check_error(r, status, what, body=None):
    check(r.status == status, f"{what}: {status}", r.describe())
    check(r.header("X-Go-Pprof") == "1", f"{what}: X-Go-Pprof: 1", r.describe())
    check(r.header("Content-Type") == TEXT, f"{what}: {TEXT}", r.describe())
    check(r.header("Content-Disposition") is None, f"{what}: no Content-Disposition",
          r.describe())
    check(r.text.endswith("\n") and r.text.count("\n") == 1,
          f"{what}: a one-line body", r.describe())
    if body is not None:
        check(r.text == body + "\n", f"{what}: body {body!r}", r.describe())


def check_index(daemon, a):
    r = get(daemon, "/debug/pprof/")
    check(r.status == 200, "index: 200", r.describe())
    check((r.header("Content-Type") or "").startswith("text/html"), "index: text/html",
          r.header("Content-Type"))
    m = re.search(r"<tr><td>(\d+)</td><td><a href='goroutine\?debug=1'>goroutine</a></td></tr>",
                  r.text)
    check(m and int(m.group(1)) == 11, "index: the goroutine row counts 11 threads", r.text)
    check("<a href=\"goroutine?debug=2\">" in r.text or "<a href='goroutine?debug=2'>" in r.text,
          "index: links goroutine?debug=2", r.text)
    check("cmdline?debug=1" in r.text, "index: lists cmdline", r.text)
    check(str(a.pid) in r.text, "index: names the target's pid", r.text)

    r = get(daemon, f"/pid/{a.pid}/debug/pprof/")
    check(r.status == 200 and "goroutine?debug=2" in r.text, "/pid/A/debug/pprof/: index",
          r.describe())


def check_redirects(daemon, a):
    for path, to in (("/debug/pprof", "/debug/pprof/"),
                     (f"/pid/{a.pid}/debug/pprof", f"/pid/{a.pid}/debug/pprof/")):
        r = get(daemon, path)
        check(r.status == 301, f"{path}: 301", r.describe())
        loc = r.header("Location") or ""
        check(loc == to or loc.endswith(f"127.0.0.1:{daemon.port}{to}"),
              f"{path}: Location {to}", r.describe())


def check_errors(daemon, a):
    r = get(daemon, "/debug/pprof/nosuchprofile")
    check_error(r, 404, "unknown profile", "Unknown profile")
    r = get(daemon, f"/pid/{a.pid}/debug/pprof/nosuchprofile?debug=1")
    check_error(r, 404, "unknown profile of /pid/A", "Unknown profile")

    unknown = daemon.proc.pid      # a pid that is no target: cprofd's own
    for path in (f"/pid/{unknown}/debug/pprof/goroutine?debug=1",
                 "/pid/1/debug/pprof/goroutine?debug=2",
                 f"/pid/{unknown}/debug/pprof/cmdline"):
        r = get(daemon, path)
        check_error(r, 404, f"{path} (no such target)")
    # Not a pid at all: a malformed request (400) or no such target (404).
    for path in ("/pid/abc/debug/pprof/goroutine?debug=1",
                 "/pid/0/debug/pprof/goroutine?debug=1",
                 "/pid/-1/debug/pprof/goroutine?debug=1",
                 "/pid/999999999999/debug/pprof/goroutine?debug=1",
                 "/pid//debug/pprof/goroutine?debug=1"):
        r = get(daemon, path)
        check(r.status in (400, 404) and r.header("X-Go-Pprof") == "1",
              f"{path}: 400 or 404 with X-Go-Pprof: 1", r.describe())

    r = get(daemon, "/nothing/here")
    check(r.status == 404, "/nothing/here: 404", r.describe())


def check_two_targets(daemon, a, b):
    r, ta, errors = ct.fetch_debug2(daemon)
    require(r.status == 200, "/debug/pprof/goroutine?debug=2: 200", r.describe())
    check({t.tid for t in ta} == set(a.tids()), "/debug/pprof/ shows A, the first --pid",
          r.text[:1500])
    check("t-read" in {t.name for t in ta}, "/debug/pprof/ shows A's thread names")

    r, tb, errors = ct.fetch_debug2(daemon, f"/pid/{b.pid}")
    require(r.status == 200, "/pid/B/debug/pprof/goroutine?debug=2: 200", r.describe())
    check(not errors, "/pid/B/…?debug=2 parses", "\n".join(errors))
    names = {t.name for t in tb}
    check({t.tid for t in tb} == set(b.tids()) and "worker" in names and "t-read" not in names,
          "/pid/B/debug/pprof/goroutine?debug=2 shows B's threads", r.text[:1500])

    r, ta2, _ = ct.fetch_debug2(daemon, f"/pid/{a.pid}")
    check(r.status == 200 and {t.tid for t in ta2} == set(a.tids()),
          "/pid/A/debug/pprof/goroutine?debug=2 shows A's threads", r.text[:1500])

    r, d1 = ct.fetch_debug1(daemon, f"/pid/{b.pid}")
    check(r.status == 200 and d1.total == len(b.tids()),
          f"/pid/B/…?debug=1: total {len(b.tids())}", r.describe())

    for prefix, t in (("", a), (f"/pid/{a.pid}", a), (f"/pid/{b.pid}", b)):
        path = f"{prefix}/debug/pprof/cmdline"
        r = get(daemon, path)
        want = "\0".join(t.argv)
        check(r.status == 200 and r.text == want,
              f"{path}: argv joined by NUL, no trailing NUL", f"{r.text!r} != {want!r}")
        check(r.header("Content-Type") == TEXT, f"{path}: {TEXT}", r.describe())

    for path in ("/debug/pprof/goroutine?debug=1", f"/pid/{b.pid}/debug/pprof/goroutine?debug=2"):
        r = get(daemon, path)
        check(r.header("Content-Type") == TEXT, f"{path}: {TEXT}", r.describe())


METRIC = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)(?: \d+)?$')


def parse_metrics(text):
    samples = []
    errors = []
    types = {}
    for line in text.split("\n"):
        if not line:
            continue
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) == 4:
                types[parts[2]] = parts[3]
            continue
        if line.startswith("#"):
            continue
        m = METRIC.match(line)
        if not m:
            errors.append(line)
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            errors.append(line)
            continue
        samples.append((m.group(1), m.group(2) or "", value))
    return samples, types, errors


def check_metrics(daemon, a, b):
    r = get(daemon, "/metrics")
    check(r.status == 200, "/metrics: 200", r.describe())
    check((r.header("Content-Type") or "").startswith("text/plain"), "/metrics: text/plain",
          r.header("Content-Type"))
    samples, types, errors = parse_metrics(r.text)
    check(not errors, "/metrics: every line is a Prometheus sample or comment", "\n".join(errors))

    def values(name):
        return [(labels, v) for n, labels, v in samples if n == name]

    snaps = values("cprofd_snapshots_total")
    check(snaps and snaps[0][1] >= 1, "/metrics: cprofd_snapshots_total counts the dumps",
          r.text)
    check(any(n.startswith("cprofd_snapshot_duration_seconds") for n, _, _ in samples),
          "/metrics: cprofd_snapshot_duration_seconds", r.text)

    check(types.get("cprofd_thread_pause_seconds") == "histogram",
          "/metrics: cprofd_thread_pause_seconds is a histogram", r.text)
    buckets = values("cprofd_thread_pause_seconds_bucket")
    count = values("cprofd_thread_pause_seconds_count")
    total = values("cprofd_thread_pause_seconds_sum")
    check(buckets and count and total, "/metrics: _bucket, _sum and _count of the pause", r.text)
    if buckets and count:
        inf = [v for labels, v in buckets if 'le="+Inf"' in labels]
        check(inf and inf[0] == count[0][1], "/metrics: the +Inf bucket equals _count", r.text)
        cumulative = [v for _, v in buckets]
        check(cumulative == sorted(cumulative), "/metrics: buckets are cumulative", r.text)
        check(count[0][1] >= 11, "/metrics: a pause was measured per thread", r.text)

    for t, n in ((a, 11), (b, len(b.tids()))):
        v = [v for labels, v in values("cprofd_target_threads") if f'pid="{t.pid}"' in labels]
        check(v and v[0] == n, f'/metrics: cprofd_target_threads{{pid="{t.pid}"}} {n}', r.text)


def check_traversal(daemon, a):
    with open("/proc/1/cmdline", "rb") as f:
        init_cmdline = f.read().rstrip(b"\0").decode(errors="replace")
    for path in ("/debug/pprof/../../../../etc/passwd",
                 "/debug/pprof/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                 "/debug/pprof/..%2f..%2f..%2fetc%2fpasswd",
                 "/debug/pprof/goroutine/../../../../etc/passwd",
                 f"/pid/{a.pid}/../../etc/passwd",
                 f"/pid/{a.pid}/debug/pprof/../../../../../proc/self/environ",
                 "/pid/../../proc/1/debug/pprof/cmdline",
                 "/pid/1/debug/pprof/cmdline",
                 "/pid/%31/debug/pprof/cmdline",
                 f"/pid/{a.pid}%2f..%2f1/debug/pprof/cmdline",
                 "/%2e%2e/%2e%2e/etc/passwd",
                 "//etc/passwd"):
        r = get(daemon, path)
        leaked = "root:" in r.text or "PATH=" in r.text or (
            len(init_cmdline) > 8 and init_cmdline in r.text)
        check(400 <= r.status < 500 and not leaked,
              f"{path}: refused with {r.status}, nothing leaked", r.describe())
        check(r.header("X-Content-Type-Options") == "nosniff", f"{path}: nosniff")


def main():
    a = ct.threads_target()
    b = ct.leak_demo(["--interval-ms", "100000", "--max-threads", "50"])
    daemon = ct.Daemon([a.pid, b.pid])
    log(f"A={a.pid} B={b.pid} cprofd on port {daemon.port}")

    check_two_targets(daemon, a, b)
    check_index(daemon, a)
    check_redirects(daemon, a)
    check_errors(daemon, a)
    check_metrics(daemon, a, b)
    check_traversal(daemon, a)

    missing = [f"{r.status} {path}" for path, r in replies
               if r.header("X-Content-Type-Options") != "nosniff"]
    check(not missing, f"X-Content-Type-Options: nosniff on all {len(replies)} replies",
          "\n".join(missing))
    check(daemon.alive(), "cprofd still runs")
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")


if __name__ == "__main__":
    ct.run_test(main)
