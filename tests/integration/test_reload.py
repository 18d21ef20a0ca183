"""tests/integration/test_reload.py -- SIGHUP re-reads --config, against the real daemon:

- a --pid added to the file is served, the target that stays is not attached again: its
  snapshot count keeps growing from where it was, never reset;
- an invalid file is logged with its line number, and everything keeps working as before;
- a selector removed from the file drops its target;
- a token file added to the file is required from then on, and a wrong one is refused;
- a changed listen address is logged as needing a restart, and the old one kept;
- with $NOTIFY_SOCKET, the reload is announced with RELOADING=1 and ends with READY=1;
- without --config, SIGHUP is logged and changes nothing.
"""

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402

TOKEN = "reloaded-token-42"


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def snapshots(port, pid):
    r = ct.http_get(port, "/metrics")
    if r.status != 200:
        return None
    v = ct.metric(r.text, f'cprofd_target_snapshots_total{{pid="{pid}"}}')
    return int(v) if v is not None else None


def wait_until(what, cond, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    return None


def read_notify(sock, timeout=20):
    """The messages received until one holds READY=1 (or TIMEOUT passes)."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        got.append(msg)
        if "READY=1" in msg.split("\n"):
            break
    return got


def stderr_has(daemon, regex, timeout=30):
    return wait_until(regex, lambda: re.search(regex, daemon.stderr(), re.M), timeout)


def main():
    a = ct.threads_target()
    b = ct.leak_demo(["--interval-ms", "100000", "--max-threads", "5"])
    conf = ct.tmp_path("reload.conf")
    write(conf, f"# targets\npid = {a.pid}\ninterval = 200ms\nlisten = {ct.HOST}:0\n")

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"cprofd-test-reload/{os.getpid()}"
    notify.bind("\0" + name)
    env = dict(os.environ, NOTIFY_SOCKET="@" + name)

    # Not ct.Daemon: its --listen would win over the file's, and it sets no NOTIFY_SOCKET.
    out = ct.tmp_path("cprofd-reload.out")
    err = ct.tmp_path("cprofd-reload.err")
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = ct.spawn([ct.env_binary("CPROFD"), "--config", conf], kill_signal=signal.SIGTERM,
                        stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=env)
    port = int(ct.wait_for_line(out, r"^listening on 127\.0\.0\.1:(\d+)$", proc).group(1))

    class Log:
        def stderr(self):
            with open(err, errors="replace") as f:
                return f.read()
    d = Log()
    ready = read_notify(notify)
    check(any("READY=1" in m for m in ready), "READY=1 at start", ready)

    v0 = wait_until("snapshots of A", lambda: (lambda v: v if v and v >= 3 else None)(snapshots(port, a.pid)))
    require(v0, "A is snapshotted every 200ms")
    r = ct.http_get(port, f"/pid/{b.pid}/debug/pprof/goroutine?debug=1")
    check(r.status == 404, "B is not served before the reload", r.describe())

    # Add B.
    write(conf, f"pid = {a.pid}\npid = {b.pid}\ninterval = 200ms\nlisten = {ct.HOST}:0\n")
    proc.send_signal(signal.SIGHUP)
    msgs = read_notify(notify)
    check(msgs and msgs[0].split("\n")[0] == "RELOADING=1" and "READY=1" in msgs[-1].split("\n"),
          "RELOADING=1, then READY=1", msgs)
    r = wait_until("B served", lambda: (lambda x: x if x.status == 200 else None)(
        ct.http_get(port, f"/pid/{b.pid}/debug/pprof/goroutine?debug=1")))
    check(r is not None, "after the reload, B is served at /pid/B/")
    seen = []

    def grown():
        v = snapshots(port, a.pid)
        seen.append(v)
        return v is not None and v >= v0 + 5

    wait_until("A keeps growing", grown)
    check(seen and all(v is not None and v >= v0 for v in seen) and seen[-1] >= v0 + 5,
          f"A was kept, not attached again: its snapshot count went on from {v0}", seen)
    r = ct.http_get(port, "/debug/pprof/goroutine?debug=1")
    check(r.status == 200 and r.text.startswith("threads profile: total 11"),
          "A is still the default target", r.text[:200])

    # An invalid file: logged with its line, nothing changes.
    write(conf, f"pid = {a.pid}\npid = {b.pid}\ninterval = 200ms\nbogus = 1\n")
    proc.send_signal(signal.SIGHUP)
    msgs = read_notify(notify)
    check(msgs and "READY=1" in msgs[-1], "READY=1 after a failed reload too", msgs)
    m = stderr_has(d, re.escape(f"{conf}:4: unknown key \"bogus\""))
    check(m and "keeping the running one" in d.stderr(),
          "an invalid file is logged with its line number, the running configuration kept", d.stderr())
    for path in ("/debug/pprof/goroutine?debug=1", f"/pid/{b.pid}/debug/pprof/goroutine?debug=1"):
        r = ct.http_get(port, path)
        check(r.status == 200, f"{path} still served after the failed reload", r.describe())
    check(proc.poll() is None, "cprofd still runs")

    # A token file that is readable by others: refused, as at start.
    tok = ct.tmp_path("reload-token")
    with open(tok, "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(tok, 0o644)
    write(conf, f"pid = {a.pid}\npid = {b.pid}\ninterval = 200ms\ntoken-file = {tok}\n")
    proc.send_signal(signal.SIGHUP)
    read_notify(notify)
    check(stderr_has(d, r"token file may be read or written by group or others"),
          "a token file readable by others is refused on reload", d.stderr())
    check(ct.http_get(port, "/debug/pprof/").status == 200, "… and no token is required yet")

    # Now a good one; and B goes away; and a new listen address is only logged.
    os.chmod(tok, 0o600)
    write(conf, f"pid = {a.pid}\ninterval = 200ms\ntoken-file = {tok}\nlisten = {ct.HOST}:1\n")
    proc.send_signal(signal.SIGHUP)
    read_notify(notify)
    r = ct.http_get(port, "/debug/pprof/")
    check(r.status == 401, "the token is required after the reload", r.describe())
    conn_headers = {"Authorization": f"Bearer {TOKEN}"}

    def get_auth(path):
        c = http.client.HTTPConnection(ct.HOST, port, timeout=30)
        try:
            c.request("GET", path, headers=conn_headers)
            x = c.getresponse()
            return ct.Reply(x.status, x.headers, x.read())
        finally:
            c.close()

    r = get_auth("/debug/pprof/goroutine?debug=1")
    check(r.status == 200, "served with the token", r.describe())
    r = get_auth(f"/pid/{b.pid}/debug/pprof/goroutine?debug=1")
    check(r.status == 404, "B, removed from the file, is no longer served", r.describe())
    check(stderr_has(d, r"takes a restart of cprofd; still listening on 127\.0\.0\.1:\d+"),
          "a changed listen address is logged as needing a restart", d.stderr())
    r = get_auth("/metrics")
    v = ct.metric(r.text, f'cprofd_target_snapshots_total{{pid="{a.pid}"}}')
    check(v is not None and v >= seen[-1], "A's history survived every reload", f"{v} vs {seen[-1]}")

    proc.terminate()
    check(proc.wait(timeout=30) == 0, "exits 0 on SIGTERM")
    notify.close()

    # Without --config there is nothing to reload.
    d = ct.Daemon([a.pid])
    os.kill(d.proc.pid, signal.SIGHUP)
    check(stderr_has(d, r"without --config: nothing to reload"), "SIGHUP without --config is logged",
          d.stderr())
    check(d.get("/debug/pprof/").status == 200 and d.alive(), "and changes nothing")
    check(d.stop() == 0, "exits 0")


if __name__ == "__main__":
    ct.run_test(main)
