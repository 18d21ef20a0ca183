"""tests/integration/test_trace.py -- trace?seconds=N, a scheduling timeline in the Trace
Event Format, of tests/targets/contention.c (ct-holder holds ct_hot_mu 9 ms of every 10,
ct-taker takes it every millisecond, ct-waiter waits on a condition variable):

- parameters as Go's CPU profile: seconds unparsable means the default (1 s here, Go's
  trace default), seconds past the write timeout 400, hz= (the CPU samples') bounded; Content-Disposition
  `attachment; filename="trace"`; gzip with Content-Encoding when the client accepts it;
- the JSON: the process and thread names, running slices with their CPU and CPU samples
  with their stacks, off-CPU slices
  named by why (blocked: mutex for the taker, blocked: condition variable for the
  waiter) with the sleeping stack, wake-up flows from ct-holder to ct-taker;
- Catapult's trace viewer as Debian's golang-1.19-src ships it (Go's own `go tool trace`
  UI), loaded in headless Chromium: the trace imports without a warning, and the page's
  own model has the threads, their slices and the flows from holder to taker;
- --trace-events-max: a trace past it is cut, says so in the file and a header.
"""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402

VIEWER_DIR = "/usr/share/go-1.19/src/cmd/trace/static"
CHROMIUM = shutil.which("chromium")

PAGE = """<html><head>
<script src="webcomponents.min.js"></script>
<link rel="import" href="trace_viewer_full.html">
<script>
var TRACE = %s;
function summarize() {
  var out = {};
  try {
    var m = new tr.Model();
    new tr.importer.Import(m).importTraces([TRACE]);
    out.warnings = m.importWarnings.map(function(w) { return w.message; });
    out.threads = [];
    m.getAllProcesses().forEach(function(p) {
      out.process = p.name;
      Object.values(p.threads).forEach(function(t) {
        var titles = {};
        t.sliceGroup.slices.forEach(function(s) { titles[s.title] = (titles[s.title] || 0) + 1; });
        out.threads.push({tid: t.tid, name: t.name, slices: titles});
      });
    });
    out.flows = m.flowEvents.map(function(f) {
      return [f.startSlice && f.startSlice.parentContainer.tid, f.endSlice && f.endSlice.parentContainer.tid];
    });
  } catch (e) { out.exception = String(e) + " " + e.stack; }
  var pre = document.createElement('pre');
  pre.id = 'result';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}
window.addEventListener('WebComponentsReady', summarize);
</script></head><body></body></html>
"""


def tids_by_name(pid):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            out[f.read().strip()] = int(tid)
    return out


def gzip_get(port, path):
    import http.client
    conn = http.client.HTTPConnection(ct.HOST, port, timeout=60)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Accept-Encoding", "gzip")
        conn.endheaders()
        r = conn.getresponse()
        return ct.Reply(r.status, r.headers, r.read())
    finally:
        conn.close()


def load_in_catapult(trace_text):
    """The viewer's model of TRACE_TEXT, as the page summarizes it, or None."""
    tmp = ct.tmp_path("catapult")
    os.makedirs(tmp, exist_ok=True)
    for f in ("webcomponents.min.js", "trace_viewer_full.html"):
        shutil.copy(os.path.join(VIEWER_DIR, f), tmp)
    page = os.path.join(tmp, "page.html")
    with open(page, "w") as f:
        f.write(PAGE % json.dumps(trace_text))
    # A profile directory of its own: the test may run without a usable HOME.
    profile = os.path.join(tmp, "profile")
    p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                        f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--dump-dom", "file://" + page],
                       capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    m = re.search(r'<pre id="result">(.*?)</pre>', p.stdout, re.S)
    if not m:
        errors = "\n".join(line for line in p.stderr.split("\n") if "dbus" not in line)
        log(f"chromium exited with {p.returncode} and printed no result; its stderr:\n{errors[-3000:]}")
        return None
    import html
    return json.loads(html.unescape(m.group(1)))


def main():
    require(os.path.exists(os.path.join(VIEWER_DIR, "trace_viewer_full.html")),
            "Catapult's trace viewer is installed (golang-1.19-src)")
    require(CHROMIUM is not None, "chromium is installed")
    target = ct.Target("CONTENTION_TARGET")
    daemon = ct.Daemon([target.pid])
    names = tids_by_name(target.pid)

    for path, status, message in [
        ("/debug/pprof/trace?seconds=3600", 400, "profile duration exceeds server's WriteTimeout"),
        ("/debug/pprof/trace?hz=5000", 400, 'invalid value for "hz" - must be an integer from 1 to 1000'),
    ]:
        r = daemon.get(path)
        check(r.status == status and r.text.strip() == message, f"{path}: {status} {message!r}", r.describe())
    r = daemon.get("/debug/pprof/trace?seconds=x")
    check(r.status == 200 and json.loads(r.text)["otherData"]["duration_ns"] < 3e9,
          "trace?seconds=x: Go's default (1 s) instead", r.describe()[:500])

    r = gzip_get(daemon.port, "/debug/pprof/trace?seconds=2&hz=1000")
    check(r.status == 200 and r.header("Content-Encoding") == "gzip" and
          r.header("Content-Disposition") == 'attachment; filename="trace"' and
          r.header("Content-Type") == "application/json", "trace?seconds=2: gzipped JSON, attachment \"trace\"",
          r.describe()[:800])
    text = gzip.decompress(r.body).decode()
    data = json.loads(text)
    events = data["traceEvents"]
    check(data["otherData"]["truncated"] is False and 1.9e9 < data["otherData"]["duration_ns"] < 4e9,
          "trace: two seconds, not truncated", data["otherData"])
    thread_names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    procs = [e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"]
    check(procs and procs[0].startswith("cprofd-test-con"), "trace: the process's name", procs)
    for name in ("ct-holder", "ct-taker", "ct-waiter", "ct-signaller", "ct-light-a", "ct-light-b"):
        check(thread_names.get(names[name]) == name, f"trace: thread {name} named", thread_names)

    def slices(tid, title=None):
        return [e for e in events if e["ph"] == "X" and e["tid"] == tid and (title is None or e["name"] == title)]

    taker, holder, waiter = names["ct-taker"], names["ct-holder"], names["ct-waiter"]
    running = slices(taker, "running")
    blocked = slices(taker, "blocked: mutex")
    check(len(running) > 50 and all(isinstance(e["args"].get("cpu"), int) for e in running[1:]),
          "trace: the taker's running slices, with their CPU", len(running))
    check(len(blocked) > 50 and any("ct_take_hot" in " ".join(e["args"].get("stack", [])) for e in blocked),
          "trace: the taker blocked on the mutex, with its stack at ct_take_hot", blocked[:2])
    blocked_ms = sum(e["dur"] for e in blocked) / 1000
    log(f"taker: {len(blocked)} mutex waits, {blocked_ms:.0f} ms blocked of 2000")
    check(1000 < blocked_ms < 2100, "trace: the taker blocked about 90 % of the window", blocked_ms)
    cond = slices(waiter, "blocked: condition variable")
    check(cond and any("ct_wait_for_signal" in " ".join(e["args"].get("stack", [])) for e in cond),
          "trace: the waiter blocked on its condition variable", slices(waiter)[:3])
    flows = [e for e in events if e["ph"] == "s" and e["tid"] == holder and e["args"].get("wakee") == taker]
    ends = {e["id"] for e in events if e["ph"] == "f" and e["tid"] == taker}
    check(len(flows) > 50 and sum(f["id"] in ends for f in flows) > 50,
          "trace: wake-up flows from the holder to the taker, each ending on the taker", len(flows))
    preempted = [e for e in events if e["ph"] == "X" and e["name"] in ("preempted", "sleep")]
    check(preempted, "trace: sleeps (nanosleep) named as such")
    samples = [e for e in events if e["ph"] == "i" and e["name"] == "cpu sample"]
    ours = [e for e in samples if "ct_" in " ".join(e["args"]["stack"])]
    log(f"{len(samples)} CPU samples, {len(ours)} in the target's own functions")
    check(len(ours) >= 5, "trace: CPU samples with their stacks on the running threads", samples[:3])

    model = load_in_catapult(text)
    require(model is not None, "Catapult's trace viewer ran in headless Chromium")
    check(not model.get("exception") and not model.get("warnings"), "Catapult imports the trace without a warning",
          {k: model.get(k) for k in ("exception", "warnings")})
    by_tid = {t["tid"]: t for t in model.get("threads", [])}
    check(by_tid.get(taker, {}).get("name") == "ct-taker" and
          by_tid[taker]["slices"].get("running", 0) > 50 and by_tid[taker]["slices"].get("blocked: mutex", 0) > 50,
          "Catapult's model: the taker's run and wait slices", by_tid.get(taker))
    check(by_tid.get(waiter, {}).get("slices", {}).get("blocked: condition variable", 0) > 0,
          "Catapult's model: the waiter's condition-variable waits", by_tid.get(waiter))
    model_flows = [f for f in model.get("flows", []) if f == [holder, taker]]
    check(len(model_flows) > 50, "Catapult's model: flows from the holder's slices to the taker's",
          len(model_flows))
    daemon.stop()

    daemon = ct.Daemon([target.pid], ["--trace-events-max", "200"])
    r = daemon.get("/debug/pprof/trace?seconds=1")
    data = json.loads(r.text)
    marks = [e for e in data["traceEvents"] if e["ph"] == "i" and "truncated" in e["name"]]
    check(r.header("X-Cprofd-Truncated") == "1" and data["otherData"]["truncated"] is True and marks and
          data["otherData"]["events"] <= 201, "--trace-events-max: the trace cut, marked in the file and a header",
          (r.header("X-Cprofd-Truncated"), data["otherData"]))
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")
    ct.check_not_stopped(target.pid, "contention target after traces")
    target.kill()


if __name__ == "__main__":
    ct.run_test(main)
