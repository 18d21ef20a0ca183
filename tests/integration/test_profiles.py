"""tests/integration/test_profiles.py -- every profile of cprofd's table (`cprofd
--list-profiles`) as the index, the router and /metrics serve it, on the threads target:

- the index has a row and a description for each, with what its count counts, in Go's
  shape (sorted by name);
- a NAMED profile answers debug=1 and debug=0 (a pprof profile go tool pprof reads),
  seconds=1 when the table says it has deltas and 400 with Go's message when not,
  format=json when the table says so and 400 when not;
- a WINDOW profile answers seconds=1 with a pprof profile, and refuses debug=1's seconds
  rules as Go's CPU profile does (seconds=x means the default, not an error);
- /metrics counts the requests for each by name;
- a name not in the table: 404 "Unknown profile".
The table is the only list: a profile added to it is tested here without a new test.
"""

import html
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, require  # noqa: E402


def read_table():
    out = subprocess.run([ct.env_binary("CPROFD"), "--list-profiles"], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.strip().split("\n"):
        name, kind, delta, json, source, description, counts = line.split("\t")
        rows.append(dict(name=name, kind=kind, delta=delta == "delta", json=json == "json", source=source,
                         description=description, counts=counts))
    return rows


def main():
    rows = read_table()
    names = [r["name"] for r in rows]
    require(len(rows) >= 9 and names == sorted(names), "--list-profiles: the table, sorted by name", names)
    for want in ("goroutine", "heap", "allocs", "block", "mutex", "threadcreate", "trace", "profile", "wall",
                 "locks", "threadgrowth"):
        check(want in names, f"the table has {want}")

    target = ct.threads_target()
    daemon = ct.Daemon([target.pid], ["--interval", "1s"])
    index = daemon.get("/debug/pprof/").text
    listed = [line.split("'")[1].split("?")[0] for line in index.split("\n") if line.startswith("<tr><td>")]
    check(listed == sorted(names + ["cmdline"]), "index: a row per profile of the table, sorted", listed)
    plain = html.unescape(index)
    for r in rows:
        check(f"{r['description']} Count: {r['counts']}" in plain,
              f"index: {r['name']}'s description and what its count counts")

    for r in rows:
        name = r["name"]
        if r["kind"] == "window":
            reply = daemon.get(f"/debug/pprof/{name}?seconds=1", timeout=60)
            kind = reply.header("Content-Type")
            check(reply.status == 200 and kind in ("application/octet-stream", "application/json") and
                  reply.header("Content-Disposition") == f'attachment; filename="{name}"',
                  f"{name}: a window profile of seconds=1", reply.describe()[:1500])
            if kind == "application/json":         # trace: the Trace Event Format
                check("traceEvents" in json.loads(reply.text), f"{name}: a Trace Event Format file")
                continue
            path = ct.save(reply, f"{name}.pb.gz")
            rc, out = ct.pprof("-raw", path)
            check(rc == 0, f"go tool pprof reads {name}", out[:1500])
            continue
        reply = daemon.get(f"/debug/pprof/{name}?debug=1", timeout=60)
        check(reply.status == 200 and reply.header("Content-Type").startswith("text/plain"),
              f"{name}?debug=1: text", reply.describe())
        reply = daemon.get(f"/debug/pprof/{name}", timeout=60)
        check(reply.status == 200 and reply.header("Content-Disposition") == f'attachment; filename="{name}"',
              f"{name}: a pprof profile", reply.describe())
        rc, out = ct.pprof("-raw", ct.save(reply, f"{name}.pb.gz"))
        check(rc == 0, f"go tool pprof reads {name}", out[:1500])
        reply = daemon.get(f"/debug/pprof/{name}?seconds=1", timeout=60)
        if r["delta"]:
            check(reply.status == 200 and
                  reply.header("Content-Disposition") == f'attachment; filename="{name}-delta"',
                  f"{name}?seconds=1: a delta, as the table says", reply.describe())
        else:
            check(reply.status == 400 and
                  reply.text.strip() == '"seconds" parameter is not supported for this profile type',
                  f"{name}?seconds=1: 400, no deltas, as the table says", reply.describe())
        reply = daemon.get(f"/debug/pprof/{name}?format=json", timeout=60)
        if r["json"]:
            check(reply.status == 200 and reply.header("Content-Type") == "application/json",
                  f"{name}?format=json: JSON, as the table says", reply.describe())
        else:
            check(reply.status == 400, f"{name}?format=json: 400, as the table says", reply.describe())

    metrics = daemon.get("/metrics").text
    for name in names:
        n = ct.metric(metrics, f'cprofd_profile_requests_total{{profile="{name}"}}')
        check(n is not None and n >= 1, f"/metrics: the requests for {name} are counted", n)
    reply = daemon.get("/debug/pprof/nosuchprofile")
    check(reply.status == 404 and reply.text.strip() == "Unknown profile", "a name not in the table: 404",
          reply.describe())
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")
    target.kill()


if __name__ == "__main__":
    ct.run_test(main)
