"""tests/integration/test_access.py -- who may reach cprofd, and how much one client may
hold, against the real daemon:

- a unix socket: reachable, with the mode asked for, removed at exit; a stale socket is
  replaced, a regular file or a live socket at the path is not;
- a bearer token: every route answers 401 (WWW-Authenticate, X-Go-Pprof, nosniff, one
  line) without it, with a wrong one or another scheme, and as usual with it; a token file
  readable by others, or an empty one, stops cprofd;
- listening beyond loopback is refused without --allow-remote or a token, and works with
  either;
- limits: a client sending its headers a byte at a time is cut off by the header
  deadline while another client is served; connections over --max-connections are
  closed; profiles over --max-profiles get 503 while dumps still work; a /symbol body
  over the limit gets 413.
"""

import http.client
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402

TEXT = "text/plain; charset=utf-8"
TOKEN = "c0rrect-h0rse-battery-staple"


class Started:
    """cprofd with ARGV as given, waited for until it printed its address."""

    def __init__(self, argv, env=None):
        self.argv = [ct.env_binary("CPROFD"), *argv]
        self.out = ct.tmp_path(f"cprofd-access-{time.monotonic_ns()}.out")
        self.err = self.out + ".err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = ct.spawn(self.argv, kill_signal=signal.SIGTERM, stdout=out, stderr=err,
                                 stdin=subprocess.DEVNULL, env=env)
        m = ct.wait_for_line(self.out, r"^listening on (\S+)$", self.proc, timeout=30)
        self.address = m.group(1)
        self.port = int(self.address.rsplit(":", 1)[1]) if not self.address.startswith("unix:") else None

    def stderr(self):
        with open(self.err, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


def run_refused(argv, timeout=30):
    """cprofd that must not start: (exit status, stderr)."""
    try:
        p = subprocess.run([ct.env_binary("CPROFD"), *argv], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:       # it started: run() killed it
        return None, f"still running after {timeout} s"
    return p.returncode, p.stderr.decode(errors="replace")


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def request(port, path, method="GET", headers=None, body=None, timeout=60, unix=None):
    conn = UnixConnection(unix, timeout) if unix else http.client.HTTPConnection(ct.HOST, port,
                                                                                   timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return ct.Reply(r.status, r.headers, r.read())
    finally:
        conn.close()


def write_token(name, text, mode=0o600):
    path = ct.tmp_path(name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


# --- unix sockets -----------------------------------------------------------------------

def test_unix_socket(target):
    path = ct.tmp_path("cprofd.sock")
    d = Started(["--pid", str(target.pid), "--listen", f"unix:{path}", "--listen-mode", "0660"])
    check(d.address == f"unix:{path}", f"prints listening on unix:{path}", d.address)
    st = os.lstat(path)
    check(stat.S_ISSOCK(st.st_mode), "the path is a socket", oct(st.st_mode))
    check(stat.S_IMODE(st.st_mode) == 0o660, "the socket's mode is 0660", oct(st.st_mode))
    r = request(None, "/debug/pprof/goroutine?debug=1", unix=path)
    check(r.status == 200 and r.text.startswith("threads profile: total 11"),
          "goroutine?debug=1 over the unix socket", r.describe())
    r = request(None, "/metrics", unix=path)
    check(r.status == 200 and "cprofd_snapshots_total" in r.text, "/metrics over the unix socket",
          r.describe())
    check(d.stop() == 0, "exits 0 on SIGTERM")
    check(not os.path.exists(path), "the socket is removed at exit")

    # The default mode is 0600.
    d = Started(["--pid", str(target.pid), "--listen", f"unix:{path}"])
    check(stat.S_IMODE(os.lstat(path).st_mode) == 0o600, "default mode 0600",
          oct(os.lstat(path).st_mode))
    d.stop()

    # A socket left by a process that died: nobody accepts on it, so it is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    require(os.path.exists(path), "a stale socket file is left behind")
    d = Started(["--pid", str(target.pid), "--listen", f"unix:{path}"])
    r = request(None, "/debug/pprof/", unix=path)
    check(r.status == 200, "a stale socket is replaced and served", r.describe())
    d.stop()

    # A regular file is never removed.
    with open(path, "w") as f:
        f.write("precious\n")
    rc, err = run_refused(["--pid", str(target.pid), "--listen", f"unix:{path}"])
    check(rc == 1 and "is not a socket" in err, "a regular file at the path: refused", f"{rc}: {err}")
    with open(path) as f:
        check(f.read() == "precious\n", "the regular file is left alone")
    os.unlink(path)

    # Nor a socket somebody accepts on.
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(path)
    live.listen(1)
    rc, err = run_refused(["--pid", str(target.pid), "--listen", f"unix:{path}"])
    check(rc == 1 and "another process accepts connections there" in err,
          "a live socket at the path: refused", f"{rc}: {err}")
    live.close()
    os.unlink(path)

    rc, err = run_refused(["--pid", str(target.pid), "--listen", "unix:/tmp/x", "--listen-mode", "0800"])
    check(rc == 2 and "--listen-mode" in err, "--listen-mode 0800: usage error", f"{rc}: {err}")


# --- the token --------------------------------------------------------------------------

def routes(pid):
    return ["/debug/pprof/", "/debug/pprof", "/debug/pprof/goroutine?debug=1",
            "/debug/pprof/goroutine?debug=2", "/debug/pprof/goroutine", "/debug/pprof/goroutine?seconds=1",
            "/debug/pprof/threadgrowth?debug=1", "/debug/pprof/profile?seconds=1",
            "/debug/pprof/wall?seconds=1", "/debug/pprof/symbol?0x1000", "/debug/pprof/cmdline",
            "/debug/pprof/nosuchprofile", f"/pid/{pid}/debug/pprof/goroutine?debug=1",
            f"/pid/{pid}/debug/pprof/cmdline", "/metrics", "/nothing/here"]


def check_401(r, what):
    ok = (r.status == 401 and r.header("WWW-Authenticate") == 'Bearer realm="cprofd"' and
          r.header("X-Go-Pprof") == "1" and r.header("Content-Type") == TEXT and
          r.header("X-Content-Type-Options") == "nosniff" and r.text.count("\n") == 1 and
          r.text.endswith("\n") and TOKEN not in r.text)
    return check(ok, f"{what}: 401, Bearer realm, X-Go-Pprof, nosniff, one line", r.describe())


def test_token(target):
    token_file = write_token("token", TOKEN + "\n")
    d = Started(["--pid", str(target.pid), "--listen", f"{ct.HOST}:0", "--token-file", token_file])
    good = {"Authorization": f"Bearer {TOKEN}"}
    for path in routes(target.pid):
        check_401(request(d.port, path), f"{path} without a token")
        check_401(request(d.port, path, headers={"Authorization": f"Bearer {TOKEN}x"}),
                  f"{path} with a wrong token")
    for headers, what in (({"Authorization": "Bearer"}, "an empty Bearer"),
                          ({"Authorization": f"Bearer {TOKEN[:-1]}"}, "a token's prefix"),
                          ({"Authorization": f"Basic {TOKEN}"}, "another scheme"),
                          ({"Authorization": TOKEN}, "no scheme")):
        check_401(request(d.port, "/debug/pprof/goroutine?debug=1", headers=headers), what)
    r = request(d.port, "/debug/pprof/symbol", method="POST", body=b"0x1000")
    check_401(r, "POST /symbol without a token")

    expected = {"/debug/pprof": 301, "/debug/pprof/nosuchprofile": 404, "/nothing/here": 404}
    for path in routes(target.pid):
        r = request(d.port, path, headers=good)
        want = expected.get(path, 200)
        if "profile?" in path and r.status == 503:
            log(f"{path}: 503 (perf events refused here), not 401")
            want = 503
        check(r.status == want, f"{path} with the token: {want}", r.describe())
    r = request(d.port, "/debug/pprof/goroutine?debug=1", headers={"authorization": f"bearer  {TOKEN}"})
    check(r.status == 200, "the scheme is case-insensitive, blanks before the token allowed",
          r.describe())
    r = request(d.port, "/debug/pprof/symbol", method="POST", body=b"0x1000", headers=good)
    check(r.status == 200 and r.text.startswith("num_symbols: 1"), "POST /symbol with the token",
          r.describe())
    check(d.stop() == 0, "exits 0")

    for mode in (0o644, 0o640, 0o604):
        path = write_token(f"token-{mode:o}", TOKEN + "\n", mode)
        rc, err = run_refused(["--pid", str(target.pid), "--listen", f"{ct.HOST}:0", "--token-file", path])
        check(rc == 2 and "group or others" in err and "chmod 600" in err,
              f"a token file of mode {mode:o}: refused, saying why", f"{rc}: {err}")
    path = write_token("token-empty", "\n")
    rc, err = run_refused(["--pid", str(target.pid), "--listen", f"{ct.HOST}:0", "--token-file", path])
    check(rc == 2 and "no token" in err, "an empty token: refused", f"{rc}: {err}")
    rc, err = run_refused(["--pid", str(target.pid), "--listen", f"{ct.HOST}:0", "--token-file",
                           ct.tmp_path("no-such-token")])
    check(rc == 2 and "cannot open the token file" in err, "a missing token file: refused", f"{rc}: {err}")


# --- remote listening -------------------------------------------------------------------

def test_remote(target):
    for listen in ("0.0.0.0:0", "[::]:0"):
        rc, err = run_refused(["--pid", str(target.pid), "--listen", listen])
        check(rc == 2 and "--allow-remote" in err and "--token-file" in err and err.count("\n") == 1,
              f"--listen {listen} without a token or --allow-remote: refused in one line naming the flags",
              f"{rc}: {err}")

    d = Started(["--pid", str(target.pid), "--listen", "0.0.0.0:0", "--allow-remote"])
    check(d.address.startswith("0.0.0.0:"), "--allow-remote: listening on 0.0.0.0", d.address)
    r = request(d.port, "/debug/pprof/goroutine?debug=1")
    check(r.status == 200, "--allow-remote: served", r.describe())
    d.stop()

    token_file = write_token("token-remote", TOKEN + "\n")
    d = Started(["--pid", str(target.pid), "--listen", "0.0.0.0:0", "--token-file", token_file])
    r = request(d.port, "/debug/pprof/goroutine?debug=1", headers={"Authorization": f"Bearer {TOKEN}"})
    check(r.status == 200, "a token allows a remote listen", r.describe())
    check(request(d.port, "/debug/pprof/").status == 401, "… and is required there")
    d.stop()

    conf = ct.tmp_path("remote.conf")
    with open(conf, "w") as f:
        f.write(f"pid = {target.pid}\nlisten = 0.0.0.0:0\nallow-remote = yes\n")
    d = Started(["--config", conf])
    check(request(d.port, "/debug/pprof/").status == 200, "allow-remote = yes in the file")
    d.stop()
    with open(conf, "w") as f:
        f.write(f"pid = {target.pid}\nlisten = 0.0.0.0:0\n")
    rc, err = run_refused(["--config", conf])
    check(rc == 2 and "allow-remote" in err, "the file without allow-remote: refused", f"{rc}: {err}")

    d = Started(["--pid", str(target.pid), "--listen", "[::1]:0"])
    check(d.address.startswith("[::1]:"), "::1 is loopback: no flag needed", d.address)
    d.stop()


# --- limits -----------------------------------------------------------------------------

def slow_sender(port, result):
    """Sends a request a byte every 0.5 s; records when the server cut it off, or that it
    got an answer."""
    data = (b"GET /debug/pprof/goroutine?debug=1 HTTP/1.1\r\nHost: x\r\n" +
            b"".join(b"X-Slow-%d: %s\r\n" % (i, b"a" * 20) for i in range(10)) + b"\r\n")
    s = socket.create_connection((ct.HOST, port), timeout=5)
    s.settimeout(0.5)
    t0 = time.monotonic()
    try:
        for i in range(len(data)):
            try:
                s.sendall(data[i:i + 1])
            except OSError:
                result["closed"] = time.monotonic() - t0
                return
            try:
                got = s.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                result["closed"] = time.monotonic() - t0
                return
            if got == b"":
                result["closed"] = time.monotonic() - t0
                return
            result["answered"] = got[:200]
            return
    finally:
        s.close()


def test_slowloris(target):
    d = Started(["--pid", str(target.pid), "--listen", f"{ct.HOST}:0", "--header-timeout", "3s"])
    result = {}
    t = threading.Thread(target=slow_sender, args=(d.port, result))
    t.start()
    time.sleep(1)
    r = request(d.port, "/debug/pprof/goroutine?debug=1")
    check(r.status == 200, "a normal client is served while a slow one dribbles", r.describe())
    t.join(timeout=150)
    closed = result.get("closed")
    check("answered" not in result and closed is not None and 2.5 <= closed <= 60,
          "the slow sender is cut off by the 3 s header deadline (not at every byte's timeout)",
          result)
    # An idle keep-alive connection goes the same way.
    conn = http.client.HTTPConnection(ct.HOST, d.port, timeout=30)
    conn.request("GET", "/debug/pprof/")
    r = conn.getresponse()
    r.read()
    check(r.status == 200, "a keep-alive request is answered")
    sock = conn.sock
    sock.settimeout(60)
    t0 = time.monotonic()
    try:
        eof = sock.recv(1) == b""
    except OSError:
        eof = True
    idle = time.monotonic() - t0
    check(eof and 2 <= idle <= 50, f"an idle keep-alive connection is closed ({idle:.1f} s)", idle)
    conn.close()
    check(d.proc.poll() is None, "cprofd still runs")
    d.stop()


def wait_until(cond, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def closed_by_server(sock, timeout):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def test_connection_cap(target):
    d = Started(["--pid", str(target.pid), "--listen", f"{ct.HOST}:0", "--max-connections", "4",
                 "--header-timeout", "120s"])
    idle = [socket.create_connection((ct.HOST, d.port), timeout=10) for _ in range(4)]
    time.sleep(0.5)
    extra = socket.create_connection((ct.HOST, d.port), timeout=10)
    check(closed_by_server(extra, 20), "the fifth connection is closed at once")
    check(not any(closed_by_server(s, 0.2) for s in idle), "the four within the cap stay open")
    extra.close()
    for s in idle:
        s.close()
    deadline = time.monotonic() + 30
    r = None
    while time.monotonic() < deadline:
        try:
            r = request(d.port, "/debug/pprof/", timeout=10)
            if r.status == 200:
                break
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    check(r is not None and r.status == 200, "served again once they closed",
          r.describe() if r else "no reply")

    def counted():
        m = ct.metric(request(d.port, "/metrics").text, "cprofd_http_connections")
        return m == 1           # the one asking
    check(wait_until(counted), "cprofd_http_connections is back to 1: closed connections are uncounted")
    idle = [socket.create_connection((ct.HOST, d.port), timeout=10) for _ in range(2)]
    check(wait_until(lambda: ct.metric(request(d.port, "/metrics").text, "cprofd_http_connections") == 3),
          "cprofd_http_connections counts open connections")
    for s in idle:
        s.close()
    d.stop()


def test_profile_cap(target):
    d = Started(["--pid", str(target.pid), "--listen", f"{ct.HOST}:0", "--max-profiles", "1"])
    first = {}

    def long_profile():
        first["reply"] = request(d.port, "/debug/pprof/wall?seconds=6&hz=5", timeout=120)

    t = threading.Thread(target=long_profile)
    t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = ct.metric(request(d.port, "/metrics").text, "cprofd_requests_in_progress")
        if m and m >= 1:
            break
        time.sleep(0.1)
    r = request(d.port, "/debug/pprof/wall?seconds=1")
    check(r.status == 503 and r.text == "too many profiles in progress\n" and r.header("X-Go-Pprof") == "1",
          "a second profile: 503 too many profiles in progress", r.describe())
    r = request(d.port, "/debug/pprof/profile?seconds=1")
    check(r.status == 503, "a CPU profile too", r.describe())
    r = request(d.port, "/debug/pprof/goroutine?debug=2")
    check(r.status == 200, "thread dumps are still served", r.describe())
    t.join(timeout=120)
    check(first.get("reply") is not None and first["reply"].status == 200, "the first profile completes",
          first.get("reply").describe() if first.get("reply") else "no reply")
    r = request(d.port, "/debug/pprof/wall?seconds=1")
    check(r.status == 200, "a profile is accepted again afterwards", r.describe())

    r = request(d.port, "/debug/pprof/symbol", method="POST", body=b"0x1000+" * 20000)
    check(r.status == 413, "a /symbol body over 64 KiB: 413", r.describe())
    r = request(d.port, "/debug/pprof/symbol", method="POST", body=b"0x1000+" * 9000)
    check(r.status == 200, "one under it: 200", r.describe())
    check(d.proc.poll() is None, "cprofd still runs")
    d.stop()


def test_flags(target):
    for flag, value in (("--max-profiles", "0"), ("--max-requests", "4097"), ("--max-connections", "x"),
                        ("--max-seconds", "0"), ("--header-timeout", "500ms"), ("--header-timeout", "2h"),
                        ("--listen-mode", "\t660"), ("--token-file", "relative/token")):
        rc, err = run_refused(["--pid", str(target.pid), "--listen", f"{ct.HOST}:0", flag, value])
        check(rc == 2 and f"invalid {flag}" in err, f"{flag} {value!r}: usage error naming the flag",
              f"{rc}: {err}")
    p = subprocess.run([ct.env_binary("CPROFD"), "--help"], capture_output=True, timeout=30)
    text = p.stdout.decode()
    missing = [f for f in ("--listen-mode", "--token-file", "--allow-remote", "--max-requests", "--max-profiles",
                           "--max-connections", "--max-seconds", "--header-timeout", "unix:/PATH", "SIGHUP")
               if f not in text]
    check(p.returncode == 0 and not missing, "--help names every access and limit flag", missing)


def main():
    target = ct.threads_target()
    test_flags(target)
    test_unix_socket(target)
    test_token(target)
    test_remote(target)
    test_slowloris(target)
    test_connection_cap(target)
    test_profile_cap(target)


if __name__ == "__main__":
    ct.run_test(main)
