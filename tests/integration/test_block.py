"""tests/integration/test_block.py -- the profiles of scheduler events: block and mutex of
tests/targets/contention.c (ct-holder holds ct_hot_mu ~9 ms of every 10 ms, ct-taker takes
it every millisecond, ct-waiter waits on a condition variable signalled every 100 ms,
ct-light-a/b share a lightly contended mutex; each thread measures its own waits):

- parameters: debug=3, seconds=x, seconds with debug: 400 with Go's messages;
- the first request starts tracking: Go's text (`--- contention:`, `cycles/second=`; mutex
  with `sampling period=`), a `# tracking since` line;
- block?seconds=5 and mutex?seconds=5 at once, with the target's own measurements over
  the same window: block has the waiter's stack (pthread_cond_wait in ct_wait_for_signal)
  on top, with a delay close to the time it spent waiting and within the window, the
  taker's stack (pthread_mutex_lock in ct_take_hot) with its delay and count close to the
  target's; the light pair far below; mutex blames the long holder's unlock site
  (ct_release_hot) with about the taker's delay and waits, the light pair far below;
- `perf sched record` of the same process over a window of block?seconds=4: the waiter's
  wait time as `perf sched timehist` sums it, close to its block delay;
- go tool pprof reads both profiles, their deltas and -base of two, and Go's debug=1 text
  (pprof's legacy contention parser) with the same totals;
- the index counts the records of each; /metrics counts events read, lost and recorded;
- tracking at attach (--block --mutex) with threads the target starts later: they are in
  the profile; the events are closed once the target exits, and the daemon runs on;
- threadcreate of tests/targets/spawner.c (a pool of four at start from tc_start_pool, then
  a short-lived thread every 100 ms from tc_spawn_one, which names itself): a delta of
  5 s counts about 50 at tc_spawn_one's stack (from clone3 up to main), labelled with
  start routine tc_short_lived and name short-lived, and the pool under "[created before
  tracking]" with tc_pool_worker; Go's text header; go tool pprof reads it; the index
  counts its records and /metrics the threads that exited;
- no tracefs (CPROFD_TRACEFS=/nonexistent) and perf_event_open refused by seccomp
  (tests/tools/no-perf): 503 naming the cause and the fix, the rest served.
Estimates are checked against generous bounds (the machine is shared): within 30 % of
the target's own measure, or of perf's.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cprofd_test as ct  # noqa: E402
from cprofd_test import check, log, require  # noqa: E402
from cprofd_test import pprof, save, stacks  # noqa: E402

NS = 1e9
WINDOW = 5


def contention_target(args=()):
    return ct.Target("CONTENTION_TARGET", args)


def target_stats(target):
    """SIGUSR1: the target's own waits since the previous SIGUSR1, {role: (waits, ns)}."""
    with open(target.out) as f:
        before = f.read().count("stats end")
    os.kill(target.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(target.out) as f:
            text = f.read()
        if text.count("stats end") > before:
            last = text.split("stats end")[before]
            return {m.group(1): (int(m.group(2)), int(m.group(3)))
                    for m in re.finditer(r"^stats (\S+) waits (\d+) blocked_ns (\d+)$", last, re.M)}
        time.sleep(0.02)
    raise ct.TestFailure("the target did not print its stats")


def parse_contention(text):
    """Go's debug=1 block/mutex text: (header lines, [(delay, count, [functions])])."""
    head, records, cur = [], [], None
    for line in text.split("\n"):
        m = re.match(r"^(\d+) (\d+) @( 0x[0-9a-f]+)+$", line)
        if m:
            cur = (int(m.group(1)), int(m.group(2)), [])
            records.append(cur)
        elif line.startswith("#\t") and cur is not None:
            parts = line.split("\t")
            if len(parts) >= 3:
                cur[2].append(parts[2].rsplit("+", 1)[0])
        elif not records and line:
            head.append(line)
    return head, records


def with_function(records, name):
    """Sum of delay and count of the records whose frames include NAME."""
    sel = [r for r in records if name in r[2]]
    return sum(r[0] for r in sel), sum(r[1] for r in sel)


def near(value, want, tolerance=0.3):
    return want > 0 and abs(value - want) <= tolerance * want


def check_params(daemon):
    for path, status, message in [
        ("/debug/pprof/block?debug=3", 400, 'invalid value for "debug" - must be 0, 1 or 2'),
        ("/debug/pprof/mutex?seconds=x", 400, 'invalid value for "seconds" - must be a positive integer'),
        ("/debug/pprof/block?seconds=2&debug=1", 400, "seconds and debug params are incompatible"),
    ]:
        r = daemon.get(path)
        check(r.status == status and r.text.strip() == message and r.header("X-Go-Pprof") == "1",
              f"{path}: {status} {message!r}", r.describe())


def fetch_delta(daemon, name, seconds, out):
    out[name] = daemon.get(f"/debug/pprof/{name}?seconds={seconds}", timeout=seconds + 60)


def check_estimates(daemon, target):
    """A window of WINDOW seconds: cprofd's deltas against the target's own measures."""
    replies = {}
    threads = [threading.Thread(target=fetch_delta, args=(daemon, name, WINDOW, replies))
               for name in ("block", "mutex")]
    target_stats(target)                       # resets the target's counters
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    own = target_stats(target)
    log(f"the target's own waits over ~{WINDOW} s: {own}")
    for name in ("block", "mutex"):
        r = replies[name]
        check(r.status == 200 and r.header("Content-Disposition") == f'attachment; filename="{name}-delta"',
              f"{name}?seconds={WINDOW}: 200, a delta profile", r.describe())
        if r.status != 200:
            return
    block_file = save(replies["block"], "block-delta.pb.gz")
    mutex_file = save(replies["mutex"], "mutex-delta.pb.gz")
    rc, raw = pprof("-raw", block_file)
    check(rc == 0, "go tool pprof reads block?seconds=N", raw)
    blocked = stacks(raw)
    rc, raw = pprof("-raw", mutex_file)
    check(rc == 0, "go tool pprof reads mutex?seconds=N", raw)
    held = stacks(raw)

    def total(samples, function):
        sel = [s for s in samples if function in s[1]]
        return sum(s[0][1] for s in sel), sum(s[0][0] for s in sel)

    waiter_ns, waiter_n = total(blocked, "ct_wait_for_signal")
    taker_ns, taker_n = total(blocked, "ct_take_hot")
    light_ns, _ = total(blocked, "ct_light_section")
    top = max(blocked, key=lambda s: s[0][1]) if blocked else ((0, 0), [], {})
    log(f"block: waiter {waiter_ns / NS:.3f} s in {waiter_n}, taker {taker_ns / NS:.3f} s in {taker_n}, "
        f"light pair {light_ns / NS:.4f} s")
    check("ct_wait_for_signal" in top[1] and "___pthread_cond_wait" in " ".join(top[1]) or
          "pthread_cond_wait" in " ".join(top[1]),
          "block: the condition-variable waiter's stack on top", top)
    check(near(waiter_ns, own["waiter"][1]) and waiter_ns <= (WINDOW + 1.5) * NS,
          "block: the waiter's delay close to the time it waited, within the window",
          (waiter_ns, own["waiter"]))
    check(near(waiter_n, own["waiter"][0], 0.35), "block: the waiter's count close to its waits",
          (waiter_n, own["waiter"]))
    check(near(taker_ns, own["taker"][1]) and near(taker_n, own["taker"][0], 0.35),
          "block: the taker's delay and count close to its own measure", (taker_ns, taker_n, own["taker"]))
    check(light_ns < 0.05 * taker_ns, "block: the lightly contended pair far below", (light_ns, taker_ns))

    hot_ns, hot_n = total(held, "ct_release_hot")
    light_held, _ = total(held, "ct_light_section")
    top = max(held, key=lambda s: s[0][1]) if held else ((0, 0), [], {})
    log(f"mutex: ct_release_hot {hot_ns / NS:.3f} s in {hot_n}, light pair {light_held / NS:.4f} s")
    check("ct_release_hot" in top[1] and "ct_long_holder" in top[1],
          "mutex: the long holder's unlock site on top", top)
    check(near(hot_ns, own["taker"][1]) and near(hot_n, own["taker"][0], 0.35),
          "mutex: the holder charged with about the taker's waits", (hot_ns, hot_n, own["taker"]))
    check(light_held < 0.05 * hot_ns, "mutex: the light pair far below", (light_held, hot_ns))
    check(not any("pthread_cond_signal" in " ".join(s[1]) for s in held),
          "mutex: no condition-variable signal counted", held)


def waiter_tid(pid):
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().strip() == "ct-waiter":
                return int(tid)
    return None


def check_against_perf(daemon, target, tmp):
    """perf sched's view of the waiter over the window of a block delta."""
    if not shutil.which("perf"):
        log("perf is not installed: the comparison with perf sched is left out")
        return
    tid = waiter_tid(target.pid)
    data = os.path.join(tmp, "sched.data")
    replies = {}
    t = threading.Thread(target=fetch_delta, args=(daemon, "block", 4, replies))
    perf = subprocess.Popen(["perf", "sched", "record", "-o", data, "-p", str(target.pid), "--", "sleep", "4"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t.start()
    perf.wait(timeout=60)
    t.join()
    out = subprocess.run(["perf", "sched", "timehist", "-i", data], capture_output=True, text=True,
                         timeout=120).stdout
    wait_ms = 0.0
    for line in out.split("\n"):
        f = line.split()
        if len(f) >= 6 and re.match(rf"^\S+\[{tid}(/\d+)?\]$", f[2]):
            try:
                wait_ms += float(f[3])
            except ValueError:
                pass
    r = replies.get("block")
    if not r or r.status != 200:
        check(False, "block?seconds=4 beside perf sched", r.describe() if r else None)
        return
    rc, raw = pprof("-raw", save(r, "block-perf.pb.gz"))
    ours = sum(s[0][1] for s in stacks(raw) if "ct_wait_for_signal" in s[1]) / 1e6
    log(f"waiter off its CPU: perf sched timehist {wait_ms:.1f} ms, cprofd block {ours:.1f} ms")
    check(near(ours, wait_ms), "block: the waiter's delay close to perf sched's wait time", (ours, wait_ms))


def check_go_tools(daemon, tmp):
    for name in ("block", "mutex"):
        r = daemon.get(f"/debug/pprof/{name}")
        check(r.status == 200 and r.header("Content-Disposition") == f'attachment; filename="{name}"',
              f"{name}: a pprof profile", r.describe())
        path = save(r, f"{name}-0.pb.gz")
        rc, top = pprof("-top", path)
        check(rc == 0 and "Type: delay" in top, f"go tool pprof -top {name}", top)
        rc, raw = pprof("-raw", path)
        check("contentions/count delay/nanoseconds" in raw and "PeriodType: contentions count" in raw,
              f"{name}: Go's sample types and period type", raw[:2000])
        time.sleep(1.5)
        later = save(daemon.get(f"/debug/pprof/{name}"), f"{name}-1.pb.gz")
        rc, diff = pprof("-raw", "-base", path, later)
        grown = [s for s in stacks(diff) if s[0][1] > 0]
        check(rc == 0 and grown, f"go tool pprof -base {name}: what was added meanwhile", diff[:2000])

        text = daemon.get(f"/debug/pprof/{name}?debug=1").text
        txt = os.path.join(tmp, f"{name}.txt")
        with open(txt, "w") as f:
            f.write(text)
        rc, legacy = pprof("-raw", txt)
        head, records = parse_contention(text)
        check(rc == 0 and records and "Samples:" in legacy, f"go tool pprof reads {name}?debug=1 (Go's text)",
              legacy[:2000])
        want = sum(r[0] for r in records)
        got = sum(s[0][1] for s in stacks(legacy))
        check(records and abs(got - want) <= 0.01 * want + 10,
              f"{name}?debug=1 read by pprof: the same total delay", (got, want))


def check_texts(daemon):
    text = daemon.get("/debug/pprof/block?debug=1").text
    head, records = parse_contention(text)
    check(head[:2] == ["--- contention:", "cycles/second=1000000000"] and
          any(h.startswith("# tracking since ") for h in head), "block?debug=1: Go's header", text[:600])
    delays = [r[0] for r in records]
    check(delays == sorted(delays, reverse=True), "block?debug=1: records by delay, largest first", delays)
    text = daemon.get("/debug/pprof/mutex?debug=1").text
    head, _ = parse_contention(text)
    check(head[:3] == ["--- mutex:", "cycles/second=1000000000", "sampling period=1"],
          "mutex?debug=1: Go's header with the sampling period", text[:600])


def check_index_and_metrics(daemon):
    index = daemon.get("/debug/pprof/").text
    for name in ("block", "mutex"):
        m = re.search(r"<tr><td>(\d+)</td><td><a href='" + name + r"\?debug=1'>", index)
        _, records = parse_contention(daemon.get(f"/debug/pprof/{name}?debug=1").text)
        check(m and int(m.group(1)) > 0 and abs(int(m.group(1)) - len(records)) <= 2,
              f"index: {name}'s count is its records", (m and m.group(1), len(records)))
    metrics = daemon.get("/metrics").text
    for name in ("block", "mutex"):
        events = ct.metric(metrics, f'cprofd_sched_events_total{{profile="{name}"}}')
        lost = ct.metric(metrics, f'cprofd_sched_events_lost_total{{profile="{name}"}}')
        recorded = ct.metric(metrics, f'cprofd_sched_recorded_total{{profile="{name}"}}')
        check(events and events > 1000 and lost is not None and recorded and recorded > 100,
              f"/metrics: {name} events read, lost and recorded", (events, lost, recorded))
        requests = ct.metric(metrics, f'cprofd_profile_requests_total{{profile="{name}"}}')
        check(requests and requests >= 3, f"/metrics: requests for {name} counted", requests)


def main_scenario():
    tmp = ct.tmp_path("block")
    os.makedirs(tmp, exist_ok=True)
    target = contention_target()
    daemon = ct.Daemon([target.pid])
    check_params(daemon)
    for name in ("block", "mutex"):
        r = daemon.get(f"/debug/pprof/{name}?debug=1")
        check(r.status == 200, f"the first {name} request starts tracking", r.describe())
    time.sleep(1)
    check_estimates(daemon, target)
    check_against_perf(daemon, target, tmp)
    check_texts(daemon)
    check_go_tools(daemon, tmp)
    check_index_and_metrics(daemon)
    ct.check_not_stopped(target.pid, "contention target under block and mutex tracking")
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")
    target.kill()


def perf_fds(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[perf_event]"
        except OSError:
            pass
    return n


def attach_scenario():
    target = contention_target(["--late"])
    t0 = time.time()
    daemon = ct.Daemon([target.pid], ["--block", "--mutex"])
    ct.wait_for_line(target.out, r"^late threads started$", target.proc)
    time.sleep(2)
    text = daemon.get("/debug/pprof/block?debug=1").text
    head, records = parse_contention(text)
    since = [h for h in head if h.startswith("# tracking since ")]
    check(since and re.search(r"\((\d+) s\)", since[0]) and int(re.search(r"\((\d+) s\)", since[0]).group(1)) >= 2,
          "--block: tracking began at attach", since)
    taker_ns, _ = with_function(records, "ct_take_hot")
    check(taker_ns > 0.5 * NS, "--block: the taker, started after tracking began, is in the profile",
          text[:3000])
    _, held = parse_contention(daemon.get("/debug/pprof/mutex?debug=1").text)
    check(with_function(held, "ct_release_hot")[0] > 0.5 * NS,
          "--mutex: the late holder's unlock site is in the profile", held)
    check(time.time() - t0 < 60, "attach scenario in time")

    target.kill()
    deadline = time.monotonic() + 10
    while perf_fds(daemon.proc.pid) > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    check(perf_fds(daemon.proc.pid) == 0, "the target exited: every event is closed")
    r = daemon.get("/debug/pprof/block?debug=1")
    check(r.status in (404, 410) and daemon.alive(), "block of an exited target: 410, daemon runs on",
          r.describe())
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")


def refused_scenario():
    target = contention_target()
    env = {k: v for k, v in os.environ.items() if k != "DEBUGINFOD_URLS"}
    env["CPROFD_TRACEFS"] = "/nonexistent"
    daemon = ct.Daemon([target.pid], env=env)
    r = daemon.get("/debug/pprof/block?debug=1")
    check(r.status == 503 and "tracefs is not mounted" in r.text and "mount -t tracefs" in r.text and
          r.text.count("\n") == 1, "no tracefs: 503 naming the cause and the fix in one line", r.describe())
    r = daemon.get("/debug/pprof/goroutine?debug=1")
    check(r.status == 200, "no tracefs: the thread dump is still served", r.describe())
    daemon.stop()

    no_perf = os.environ.get("NO_PERF")
    require(no_perf, "$NO_PERF names tests/tools/no-perf")
    out, err = ct.tmp_path("no-perf.out"), ct.tmp_path("no-perf.err")
    with open(out, "w") as o, open(err, "w") as e:
        proc = ct.spawn([no_perf, ct.env_binary("CPROFD"), "--pid", str(target.pid), "--listen", f"{ct.HOST}:0"],
                        kill_signal=signal.SIGTERM, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
    port = int(ct.wait_for_line(out, r"^listening on 127\.0\.0\.1:(\d+)$", proc).group(1))
    r = ct.http_get(port, "/debug/pprof/mutex?debug=1")
    check(r.status == 503 and "seccomp" in r.text and "CAP_PERFMON" in r.text,
          "perf_event_open refused by seccomp: 503 naming it", r.describe())
    check(ct.http_get(port, "/debug/pprof/").status == 200, "refused: the index is still served")
    proc.terminate()
    proc.wait(timeout=10)
    target.kill()


def threadcreate_scenario():
    target = ct.Target("SPAWNER_TARGET")
    daemon = ct.Daemon([target.pid])
    r = daemon.get("/debug/pprof/threadcreate?debug=1")
    check(r.status == 200 and r.text.split("\n")[0].startswith("threadcreate profile: total ") and
          re.match(r"^(\S+) profile: total \d+$", r.text.split("\n")[0]),
          "threadcreate?debug=1: Go's header (legacy parsers' regex)", r.describe())
    r = daemon.get(f"/debug/pprof/threadcreate?seconds={WINDOW}", timeout=WINDOW + 60)
    check(r.status == 200 and r.header("Content-Disposition") == 'attachment; filename="threadcreate-delta"',
          f"threadcreate?seconds={WINDOW}: a delta", r.describe())
    rc, raw = pprof("-raw", save(r, "threadcreate-delta.pb.gz"))
    check(rc == 0 and "threadcreate/count" in raw, "go tool pprof reads threadcreate?seconds=N", raw[:2000])
    spawned = [s for s in stacks(raw) if "tc_spawn_one" in s[1]]
    n = sum(s[0][0] for s in spawned)
    log(f"threadcreate over {WINDOW} s: {n} at tc_spawn_one")
    check(35 <= n <= 55, f"threadcreate: about 10 a second at tc_spawn_one over {WINDOW} s", n)
    check(spawned and all("clone3" in " ".join(s[1]) and "main" in s[1] for s in spawned),
          "threadcreate: the creating stack, from the clone call up to main", spawned[:1])
    check(spawned and all(s[2].get("start_routine") == "tc_short_lived" and s[2].get("thread_name") == "short-lived"
                          for s in spawned),
          "threadcreate: labelled with the new thread's start routine and the name it gave itself",
          [s[2] for s in spawned][:3])

    r = daemon.get("/debug/pprof/threadcreate")
    rc, raw = pprof("-raw", save(r, "threadcreate.pb.gz"))
    pool = [s for s in stacks(raw) if "[created before tracking]" in s[1] and "tc_pool_worker" in s[1]]
    check(sum(s[0][0] for s in pool) == 4 and all(s[2].get("start_routine") == "tc_pool_worker" and
                                                  s[2].get("thread_name") == "pool-worker" for s in pool),
          "threadcreate: the pool, there before tracking, under [created before tracking] with its start routine",
          stacks(raw))
    text = daemon.get("/debug/pprof/threadcreate?debug=1").text
    check('# labels: {"start_routine":"tc_short_lived", "thread_name":"short-lived"}' in text and
          "#\t[created before tracking]" in text, "threadcreate?debug=1: labels and the synthetic root",
          text[:2000])
    index = daemon.get("/debug/pprof/").text
    m = re.search(r"<tr><td>(\d+)</td><td><a href='threadcreate\?debug=1'>", index)
    check(m and int(m.group(1)) >= 3, "index: threadcreate's records", m and m.group(1))
    exits = ct.metric(daemon.get("/metrics").text, 'cprofd_sched_thread_exits_total{profile="threadcreate"}')
    check(exits and exits >= 30, "/metrics: the threads that exited are counted", exits)
    ct.check_not_stopped(target.pid, "spawner under threadcreate tracking")
    check(daemon.stop() == 0, "cprofd exits 0 on SIGTERM")
    target.kill()


def main():
    require(shutil.which("go") is not None, "go (golang-go) is installed")
    ct.scenario(threadcreate_scenario)
    ct.scenario(main_scenario)
    ct.scenario(attach_scenario)
    ct.scenario(refused_scenario)


if __name__ == "__main__":
    ct.run_test(main)
