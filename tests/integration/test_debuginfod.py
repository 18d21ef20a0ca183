"""tests/integration/test_debuginfod.py -- debug files fetched from a debuginfod server
in the background, by build-id, without ever holding up a dump.

A copy of cprofd-test-threads has its DWARF split out (objcopy --only-keep-debug into a
directory of its own; the binary stripped of .debug_* and of .gnu_debuglink, so nothing
local finds it). Debian's debuginfod serves that directory on loopback.
- With DEBUGINFOD_URLS naming it: the first dump comes at once, the target's frames named
  from its symbol table without file:line; within seconds a later dump has them with
  threads.c:LINE, the file is in DEBUGINFOD_CACHE_PATH and /metrics counts the fetch.
- Without DEBUGINFOD_URLS: the server sees no request, /metrics counts none.
- A server that accepts connections and never answers: dumps are not delayed (libdwfl's
  own synchronous query would wait 90 s), and the daemon still exits promptly.
"""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402

CHAIN = ["inline_read", "chain_c", "chain_b", "chain_a", "thread_read_main"]
FIRST_DUMP_MAX_S = 5.0


def free_port():
    with socket.socket() as s:
        s.bind((ct.HOST, 0))
        return s.getsockname()[1]


def build_id(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "Build ID:" in line:
            return line.split()[-1]
    raise ct.TestFailure(f"{path} has no build-id")


def split_target():
    """(stripped binary, directory holding only its debug file, build-id)."""
    work = ct.tmp_path("split")
    debug_dir = os.path.join(work, "debug")
    os.makedirs(debug_dir)
    binary = os.path.join(work, "cprofd-test-threads")
    shutil.copy(ct.env_binary("THREADS_TARGET"), binary)
    subprocess.run(["objcopy", "--only-keep-debug", binary, os.path.join(debug_dir, "threads.debug")],
                   check=True)
    subprocess.run(["objcopy", "--strip-debug", "--remove-section=.gnu_debuglink", binary], check=True)
    sections = subprocess.run(["readelf", "-S", binary], capture_output=True, text=True, check=True).stdout
    require(".debug_info" not in sections and ".gnu_debuglink" not in sections,
            "the test binary has neither DWARF nor a debug link")
    return binary, debug_dir, build_id(binary)


def http_text(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode(errors="replace")


class Server:
    """debuginfod on loopback, serving DEBUG_DIR, waited for until it serves BUILD_ID."""

    def __init__(self, debug_dir, build_id):
        self.port = free_port()
        self.url = f"http://{ct.HOST}:{self.port}"
        self.log = ct.tmp_path(f"debuginfod-{self.port}.log")
        with open(self.log, "w") as f:
            self.proc = ct.spawn(["debuginfod", "-p", str(self.port), "-d",
                                  ct.tmp_path(f"debuginfod-{self.port}.sqlite"), "-F", debug_dir],
                                 stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        indexed = False
        while not indexed and self.proc.poll() is None and time.monotonic() < deadline:
            try:
                indexed = http_text(f"{self.url}/buildid/{build_id}/debuginfo")[0] == 200
            except OSError:
                time.sleep(0.2)
        require(indexed, "debuginfod indexed the debug file", open(self.log).read())

    def debuginfo_requests(self):
        text = http_text(f"{self.url}/metrics")[1]
        return ct.metric(text, 'http_requests_total{type="debuginfo"}') or 0


def daemon_env(urls, cache):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBUGINFOD_")}
    env["DEBUGINFOD_CACHE_PATH"] = cache
    if urls:
        env["DEBUGINFOD_URLS"] = urls
    return env


def read_chain(daemon):
    """(seconds the dump took, the t-read thread's frames of CHAIN by name)."""
    start = time.monotonic()
    r, threads, errors = ct.fetch_debug2(daemon)
    took = time.monotonic() - start
    require(r.status == 200 and not errors, "debug=2 dump", r.describe() if r.status != 200 else errors)
    t = ct.by_name(threads).get("t-read")
    require(t, "the t-read thread is in the dump", r.text[:2000])
    return took, {f.function: f for f in t[0].frames if f.function in CHAIN}, t[0]


def start_target(binary):
    os.environ["STRIPPED_THREADS_TARGET"] = binary
    return ct.Target("STRIPPED_THREADS_TARGET")


def test_fetch(binary, debug_dir, bid):
    server = Server(debug_dir, bid)
    cache = ct.tmp_path("cache-fetch")
    target = start_target(binary)
    daemon = ct.Daemon([target.pid], env=daemon_env(server.url, cache))

    took, chain, thread = read_chain(daemon)
    check(took < FIRST_DUMP_MAX_S, f"the first dump came in {took:.2f} s (< {FIRST_DUMP_MAX_S} s)")
    # Without DWARF there is no inline tree: inline_read is part of chain_c then.
    check(set(chain) == set(CHAIN) - {"inline_read"} and all(f.file is None for f in chain.values()),
          "the first dump names the target's frames from its symbol table, without file:line",
          thread.describe())

    deadline = time.monotonic() + 20
    while True:
        took, chain, thread = read_chain(daemon)
        if chain.get("chain_c") and chain["chain_c"].file:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.3)
    check(set(chain) == set(CHAIN) and
          all(ct.same_file(f.file, ct.THREADS_SOURCE) and f.lineno for f in chain.values()),
          "a later dump has the target's frames with threads.c:LINE", thread.describe())
    check(chain.get("inline_read") and chain["inline_read"].offset is None,
          "and the inlined frame from the fetched DWARF", thread.describe())
    check(os.path.exists(os.path.join(cache, bid, "debuginfo")),
          "the debug file is in DEBUGINFOD_CACHE_PATH")
    text = daemon.get("/metrics").text
    started = ct.metric(text, "cprofd_debuginfod_fetches_started_total")
    succeeded = ct.metric(text, "cprofd_debuginfod_fetches_succeeded_total")
    check(started is not None and started >= 1 and succeeded is not None and succeeded >= 1,
          f"/metrics counts the fetch (started {started}, succeeded {succeeded})")
    check(daemon.stop() == 0, "the daemon exits cleanly", daemon.stderr())


def test_unset(binary, debug_dir, bid):
    server = Server(debug_dir, bid)
    before = server.debuginfo_requests()
    target = start_target(binary)
    daemon = ct.Daemon([target.pid], env=daemon_env(None, ct.tmp_path("cache-unset")))
    read_chain(daemon)
    time.sleep(1.5)
    _, chain, thread = read_chain(daemon)
    check(chain and all(f.file is None for f in chain.values()),
          "without DEBUGINFOD_URLS the frames stay without file:line", thread.describe())
    after = server.debuginfo_requests()
    check(after == before, f"without DEBUGINFOD_URLS the server saw no request ({before} -> {after})")
    text = daemon.get("/metrics").text
    started = ct.metric(text, "cprofd_debuginfod_fetches_started_total")
    check(started == 0, f"without DEBUGINFOD_URLS /metrics counts no fetch ({started})")


def test_silent_server(binary, debug_dir, bid):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((ct.HOST, 0))
    listener.listen(16)
    held = []
    accepted = threading.Event()

    def accept_forever():
        while True:
            try:
                c, _ = listener.accept()
            except OSError:
                return
            held.append(c)
            accepted.set()
    threading.Thread(target=accept_forever, daemon=True).start()

    url = f"http://{ct.HOST}:{listener.getsockname()[1]}"
    target = start_target(binary)
    daemon = ct.Daemon([target.pid], env=daemon_env(url, ct.tmp_path("cache-silent")))
    took, chain, thread = read_chain(daemon)
    check(took < FIRST_DUMP_MAX_S, f"with a silent server the first dump came in {took:.2f} s")
    check(set(chain) == set(CHAIN) - {"inline_read"}, "and names the target's frames", thread.describe())
    check(accepted.wait(10), "the fetch reached the silent server")
    took, _, _ = read_chain(daemon)
    check(took < FIRST_DUMP_MAX_S, f"a dump while the fetch hangs came in {took:.2f} s")
    text = daemon.get("/metrics").text
    check(ct.metric(text, "cprofd_debuginfod_fetches_succeeded_total") == 0,
          "nothing counted as fetched")
    start = time.monotonic()
    status = daemon.stop(timeout=10)
    check(status == 0, f"the daemon exits cleanly while the fetch hangs ({time.monotonic() - start:.1f} s)",
          daemon.stderr())
    listener.close()
    for c in held:
        c.close()


def main():
    for tool in ("debuginfod", "objcopy", "readelf"):
        require(shutil.which(tool), f"{tool} is installed")
    binary, debug_dir, bid = split_target()
    log(f"build-id {bid}")
    ct.scenario(test_fetch, binary, debug_dir, bid)
    ct.scenario(test_unset, binary, debug_dir, bid)
    ct.scenario(test_silent_server, binary, debug_dir, bid)


if __name__ == "__main__":
    ct.run_test(main)
