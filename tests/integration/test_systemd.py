"""tests/integration/test_systemd.py -- the systemd unit, systemd/cprofd.service as meson
configured it ($CPROFD_UNIT):

- `systemd-analyze verify` accepts it without a word (the ExecStart= binary pointed at the
  built cprofd: verify insists that it exists);
- `systemd-analyze security --offline=true` rates its exposure at most EXPOSURE_MAX, and
  the capability bounding set is exactly the five cprofd needs;
- every system call the real daemon makes -- attaching, thread dumps, deltas, CPU, wall,
  block and mutex profiles, periodic snapshots and discovery, shutdown on SIGTERM, all under strace -f --
  is one the unit's SystemCallFilter= allows, every socket it opens is of a family
  RestrictAddressFamilies= allows, and it opens no file for writing (ProtectSystem=strict);
- Type=notify holds: with $NOTIFY_SOCKET set, cprofd sends READY=1 (and a STATUS=) once it
  listens, and STOPPING=1 on SIGTERM.

Nothing here runs under systemd (this machine's PID 1 is not systemd): the filter is
checked against what the daemon does, not enforced on it. Skips (77) only where
systemd-analyze or strace is not installed.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402

# systemd 252 (Debian 12) rates the unit 2.8; a change that weakens the sandbox shows here.
EXPOSURE_MAX = 2.8
CAPABILITIES = {"CAP_SYS_PTRACE", "CAP_PERFMON", "CAP_SYSLOG", "CAP_DAC_READ_SEARCH",
                "CAP_CHECKPOINT_RESTORE"}
FAMILIES = {"AF_UNIX", "AF_INET", "AF_INET6"}
# glibc's getaddrinfo(AI_ADDRCONFIG), which evhttp's bind uses, asks netlink which address
# families are configured; when RestrictAddressFamilies= refuses the socket it assumes
# both (sysdeps/unix/sysv/linux/check_pf.c), and binding works as before.
FAMILIES_REFUSED_AND_HANDLED = {"AF_NETLINK"}


def run(argv, timeout=60):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def unit_settings(path):
    """[(key, value)] of the unit file, in order, comments and sections left out."""
    settings = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[" or "=" not in line:
                continue
            key, value = line.split("=", 1)
            settings.append((key.strip(), value.strip()))
    return settings


def unit_for_verify(unit, cprofd):
    """A copy of UNIT whose ExecStart= runs the built CPROFD."""
    path = ct.tmp_path("cprofd.service")
    with open(unit) as f:
        text = f.read()
    text, n = re.subn(r"^ExecStart=\S+", lambda m: "ExecStart=" + cprofd, text, flags=re.M)
    require(n == 1, "the unit has one ExecStart=", text)
    with open(path, "w") as f:
        f.write(text)
    return path


# --- verify and security ------------------------------------------------------------------

def test_verify(unit):
    rc, out, err = run(["systemd-analyze", "verify", unit])
    check(rc == 0 and out == "" and err == "", "systemd-analyze verify: no error, no warning",
          f"exit status {rc}\n{out}{err}")


def test_security(unit):
    rc, out, err = run(["systemd-analyze", "security", "--no-pager", "--offline=true", unit])
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", out)
    require(rc == 0 and m, "systemd-analyze security --offline=true rates the unit",
            f"exit status {rc}\n{out}{err}")
    score = float(m.group(1))
    log(f"exposure: {score} {m.group(2)}")
    check(score <= EXPOSURE_MAX, f"exposure {score} is at most {EXPOSURE_MAX}",
          "\n".join(line for line in out.split("\n") if line.startswith("✗")))

    for key in ("CapabilityBoundingSet", "AmbientCapabilities"):
        caps = [v for k, v in unit_settings(unit) if k == key]
        check(len(caps) == 1 and set(caps[0].split()) == CAPABILITIES,
              f"{key}= is exactly " + " ".join(sorted(CAPABILITIES)), caps)
    for key, want in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("Type", "notify"),
                      ("SystemCallErrorNumber", "EPERM"), ("ProtectKernelLogs", None),
                      ("PrivateUsers", None)]:
        got = [v for k, v in unit_settings(unit) if k == key]
        if want is None:
            check(not got, f"{key}= is not set (it would break cprofd: see the unit)", got)
        else:
            check(got == [want], f"{key}={want}", got)


# --- system calls -------------------------------------------------------------------------

_groups = {}


def expand(name):
    """The system calls of a name: itself, or the members of an @group, recursively, as
    this machine's systemd defines them."""
    if not name.startswith("@"):
        return {name}
    if name not in _groups:
        _groups[name] = set()           # a cycle ends here
        rc, out, err = run(["systemd-analyze", "syscall-filter", "--no-pager", name])
        if rc != 0:
            raise ct.TestFailure(f"systemd-analyze syscall-filter {name}: exit status {rc}\n{err}")
        members = set()
        for line in out.split("\n")[1:]:
            line = line.strip()
            if line and not line.startswith("#"):
                members |= expand(line)
        _groups[name] = members
    return _groups[name]


def allowed_syscalls(unit):
    """What the unit's SystemCallFilter= lines allow, with systemd's rules: the first line
    decides between an allow list and a deny list, later lines add to it or take away
    ('~') from it."""
    allowed = None
    for key, value in unit_settings(unit):
        if key != "SystemCallFilter":
            continue
        deny = value.startswith("~")
        names = set()
        for item in value.lstrip("~").split():
            names |= expand(item)
        if allowed is None:
            require(not deny, "SystemCallFilter= is an allow list")
            allowed = names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    require(allowed, "the unit has a SystemCallFilter=")
    return allowed


STRACE_CALL = re.compile(r"^(\d+) +([a-z_][a-z0-9_]*)\(")
STRACE_SOCKET = re.compile(r"^\d+ +socket\((AF_[A-Z0-9]+)")
STRACE_OPEN = re.compile(r'^\d+ +(?:open|openat|openat2|creat)\((?:[^,]*, )?"([^"]*)", ([A-Z_|]+)')


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def run_workload(cprofd):
    """cprofd under strace -f, through everything it does; the strace output's lines."""
    threads = ct.threads_target()
    cpu = ct.cpu_target()
    trace = ct.tmp_path("strace.out")
    out = ct.tmp_path("cprofd-strace.out")
    env = dict(os.environ)
    # LeakSanitizer stops the world with ptrace at exit, which strace's tracing refuses.
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    with open(out, "w") as f:
        strace = ct.spawn(["strace", "-f", "-qq", "-s", "256", "-o", trace, cprofd,
                           "--pid", str(threads.pid), "--exe", cpu.path, "--interval", "200ms",
                           "--listen", f"{ct.HOST}:0"],
                          stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        m = ct.wait_for_line(out, r"^listening on 127\.0\.0\.1:(\d+)$", strace, timeout=60)
    port = int(m.group(1))
    daemon = children_of(strace.pid)
    require(len(daemon) == 1, "cprofd runs under strace", daemon)

    paths = ["/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/goroutine?debug=2",
             "/debug/pprof/goroutine", "/debug/pprof/goroutine?seconds=1",
             "/debug/pprof/threadgrowth?debug=1", "/debug/pprof/cmdline",
             "/debug/pprof/symbol?0x1000", "/metrics", f"/pid/{cpu.pid}/debug/pprof/goroutine?debug=2"]
    for path in paths:
        r = ct.http_get(port, path, timeout=60)
        check(r.status == 200, f"GET {path}: 200", r.describe())
    perf = True
    for path in [f"/pid/{cpu.pid}/debug/pprof/profile?seconds=1",
                 f"/pid/{cpu.pid}/debug/pprof/wall?seconds=1",
                 f"/pid/{cpu.pid}/debug/pprof/block?seconds=1",
                 f"/pid/{cpu.pid}/debug/pprof/mutex?seconds=1"]:
        r = ct.http_get(port, path, timeout=60)
        if r.status == 503:
            log(f"GET {path}: 503, perf events refused here: their system calls are not covered")
            perf = False
        else:
            check(r.status == 200, f"GET {path}: 200", r.describe())
    time.sleep(0.5)                     # a few periodic snapshots and scans more

    os.kill(daemon[0], signal.SIGTERM)
    try:
        rc = strace.wait(timeout=30)
    except subprocess.TimeoutExpired:
        rc = None
        os.kill(daemon[0], signal.SIGKILL)      # killing strace would leave it running
    with open(trace, errors="replace") as f:
        lines = f.read().split("\n")
    with open(out, errors="replace") as f:
        output = f.read()
    check(rc == 0, "cprofd exits 0 on SIGTERM under strace",
          f"exit status {rc}; its output ends:\n{output[-6000:]}\nand the trace:\n" +
          "\n".join(line[:200] for line in lines[-40:]))
    return lines, perf


def test_syscalls(unit, cprofd):
    allowed = allowed_syscalls(unit)
    lines, perf = run_workload(cprofd)
    used, families, written = {}, {}, {}
    for line in lines:
        m = STRACE_CALL.match(line)
        if m:
            used.setdefault(m.group(2), line)
        m = STRACE_SOCKET.match(line)
        if m:
            families.setdefault(m.group(1), line)
        m = STRACE_OPEN.match(line)
        if m and re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC", m.group(2)):
            written.setdefault(m.group(1), line)
    log(f"system calls used: {len(used)}: {' '.join(sorted(used))}")

    refused = {name: line for name, line in used.items() if name not in allowed}
    check(not refused, "every system call cprofd makes is allowed by SystemCallFilter=",
          "\n".join(refused.values()))
    expected = ["ptrace", "process_vm_readv", "pidfd_open", "wait4"] + (["perf_event_open"] if perf else [])
    missing = [name for name in expected if name not in used]
    check(not missing, "the workload made the calls the filter is about: " + " ".join(expected),
          f"not seen: {missing}")

    bad = {f: line for f, line in families.items() if f not in FAMILIES | FAMILIES_REFUSED_AND_HANDLED}
    check(not bad, "every socket is AF_UNIX, AF_INET or AF_INET6 (RestrictAddressFamilies=)",
          "\n".join(bad.values()))
    family_line = [v for k, v in unit_settings(unit) if k == "RestrictAddressFamilies"]
    check(len(family_line) == 1 and set(family_line[0].split()) == FAMILIES,
          "RestrictAddressFamilies= is " + " ".join(sorted(FAMILIES)), family_line)
    check(not written, "no file is opened for writing (ProtectSystem=strict)", "\n".join(written.values()))


# --- Type=notify --------------------------------------------------------------------------

def test_notify(cprofd):
    threads = ct.threads_target()
    name = f"@cprofd-test-notify/{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.settimeout(20)
    env = dict(os.environ, NOTIFY_SOCKET=name)
    out = ct.tmp_path("cprofd-notify.out")
    with open(out, "w") as f:
        proc = ct.spawn([cprofd, "--pid", str(threads.pid), "--listen", f"{ct.HOST}:0"],
                        kill_signal=signal.SIGTERM, stdout=f, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL, env=env)
    m = ct.wait_for_line(out, r"^listening on (127\.0\.0\.1:\d+)$", proc)
    try:
        ready = sock.recv(4096).decode()
    except socket.timeout:
        ready = "(nothing within 20 s)"
    fields = dict(line.split("=", 1) for line in ready.split("\n") if "=" in line)
    check(fields.get("READY") == "1", "READY=1 once listening", ready)
    check(m.group(1) in fields.get("STATUS", "") and "1 target" in fields.get("STATUS", ""),
          "STATUS= names the address and the target count", ready)

    proc.send_signal(signal.SIGTERM)
    try:
        stopping = sock.recv(4096).decode()
    except socket.timeout:
        stopping = "(nothing within 20 s)"
    check("STOPPING=1" in stopping.split("\n"), "STOPPING=1 on SIGTERM", stopping)
    check(proc.wait(timeout=30) == 0, "exit status 0")
    sock.close()


def main():
    missing = [tool for tool in ("systemd-analyze", "strace") if not shutil.which(tool)]
    if missing:
        log(f"skipped: {' and '.join(missing)} not installed")
        sys.exit(77)
    cprofd = ct.env_binary("CPROFD")
    unit = os.environ.get("CPROFD_UNIT")
    require(unit and os.path.exists(unit), "$CPROFD_UNIT is the configured unit", unit)
    unit = unit_for_verify(unit, cprofd)

    test_verify(unit)
    test_security(unit)
    test_syscalls(unit, cprofd)
    test_notify(cprofd)


if __name__ == "__main__":
    ct.run_test(main)
