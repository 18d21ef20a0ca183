"""tests/integration/test_cli.py -- cprofd's command line: help, version, usage errors and
their exit codes (2 for usage, 1 for a pid that does not exist), the one "listening on"
line, and a clean exit 0 on SIGTERM that leaves the target running and untraced.
"""

import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log  # noqa: E402


def run(args, timeout=20):
    argv = [ct.env_binary("CPROFD"), *args]
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode(errors="replace"), (e.stderr or b"").decode(
            errors="replace")
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def show(rc, out, err):
    return f"exit status {rc}\nstdout:\n{out}\nstderr:\n{err}"


def nonexistent_pid():
    """The pid of a child that has been reaped: nothing has that pid right now."""
    while True:
        p = subprocess.Popen(["true"])
        p.wait()
        try:
            os.kill(p.pid, 0)
        except ProcessLookupError:
            return p.pid


def main():
    rc, out, err = run(["--help"])
    check(rc == 0, "--help exits 0", show(rc, out, err))
    check("--pid" in out and "--listen" in out and re.search(r"usage", out, re.I),
          "--help prints the usage with --pid and --listen on stdout", show(rc, out, err))

    rc, out, err = run(["--version"])
    check(rc == 0 and out == "cprofd 0.1.0\n", "--version prints 'cprofd 0.1.0' and exits 0",
          show(rc, out, err))

    for args, what in (([], "no arguments"),
                       (["--listen", "127.0.0.1:0"], "no --pid"),
                       (["--pid", "abc"], "--pid abc"),
                       (["--pid", "12x"], "--pid 12x"),
                       (["--pid", "0"], "--pid 0"),
                       (["--pid", "-5"], "--pid -5"),
                       (["--pid", ""], "--pid ''"),
                       (["--pid", "99999999999999999999"], "--pid out of range"),
                       (["--pid", "1", "--stack-max", "abc"], "--stack-max abc"),
                       (["--pid", "1", "--stack-max", "-1"], "--stack-max -1"),
                       (["--pid", "1", "--log-level", "loud"], "--log-level loud")):
        rc, out, err = run(args)
        check(rc == 2 and err.startswith("cprofd: "),
              f"{what}: usage error on stderr starting 'cprofd: ', exit 2", show(rc, out, err))
        check(out == "", f"{what}: nothing on stdout", show(rc, out, err))

    rc, out, err = run(["--pid", "1", "--bogus-option"])
    check(rc == 2, "an unknown option exits 2", show(rc, out, err))

    pid = nonexistent_pid()
    rc, out, err = run(["--pid", str(pid), "--listen", "127.0.0.1:0"])
    check(rc == 1 and err.startswith("cprofd: ") and str(pid) in err,
          f"nonexistent pid {pid}: an error naming it, exit 1", show(rc, out, err))
    check("listening" not in out, "nonexistent pid: never listens", show(rc, out, err))

    target = ct.threads_target()
    daemon = ct.Daemon([target.pid], ["--stack-max", "65536", "--log-level", "debug"])
    r = daemon.get("/debug/pprof/goroutine?debug=2")
    check(r.status == 200 and r.text.count("\nthread ") == 10,
          "--stack-max 65536 --log-level debug: a full dump", r.describe())
    check(daemon.stop() == 0, "exits 0 on SIGTERM", daemon.stderr())

    daemon = ct.Daemon([target.pid])
    log(f"cprofd listening on port {daemon.port}")
    r = daemon.get("/debug/pprof/goroutine?debug=1")
    check(r.status == 200, "the daemon answers a dump", r.describe())
    daemon.proc.send_signal(signal.SIGTERM)
    try:
        rc = daemon.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0, f"SIGTERM: exits 0 ({rc})", daemon.stderr())
    out = daemon.stdout()
    check(re.fullmatch(r"listening on 127\.0\.0\.1:\d+\n", out),
          "stdout is exactly one 'listening on 127.0.0.1:PORT' line", out)
    check(target.alive(), "the target still runs after cprofd exited")
    ct.check_not_stopped(target.pid, "after SIGTERM")


if __name__ == "__main__":
    ct.run_test(main)
