/* tests/test-heap.c -- the sampled heap and its encodings (and those of the contention
 * profiles, which keep their stacks the same way) (Go's scaling, text and pprof
 * shapes), the map removal it relies on, and loading the agent into a live process: the
 * borrowed thread goes back to its wait, the agent's memory appears and no thread does;
 * stopped through a borrowed thread, its memory is gone again; an agent whose cprofd is
 * gone gives way to a new one. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-protocol.h"
#include "contention.h"
#include "threadcreate.h"
#include "hashmap.h"
#include "heap.h"
#include "inject.h"
#include "macro.h"
#include "pprof.h"
#include "procfs.h"
#include "threads-target.h"
#include "tiny-test.h"

static Stack one_frame_stack(uint64_t pc) {
        StackFrame *f = calloc(1, sizeof *f);
        *f = (StackFrame) { .pc = pc, .exact = true };
        return (Stack) { .frames = f, .n = 1 };
}

/* P encoded and decoded again, as pprof would read it. */
static Profile *round_trip(const Profile *p) {
        Buf out = {};
        Profile *q;
        ASSERT_EQ(profile_encode(p, PROFILE_ENCODE_UNCOMPRESSED, &out), 0);
        ASSERT_EQ(profile_decode(out.data, out.len, NULL, &q), 0);
        buf_done(&out);
        return q;
}

TEST(scaling_is_gos) {
        int64_t count, bytes;
        /* Go: scale = 1 / (1 − e^(−avg/rate)); one 1 KiB object at 512 KiB. */
        heap_scale(1, 1024, 512 * 1024, &count, &bytes);
        double scale = 1 / (1 - exp(-1024.0 / (512 * 1024)));
        ASSERT_EQ(count, (int64_t) scale);
        ASSERT_EQ(bytes, (int64_t) (1024 * scale));
        /* Objects far above the rate are nearly always sampled: scale → 1. */
        heap_scale(2, 2 * (64u << 20), 512 * 1024, &count, &bytes);
        ASSERT_EQ(count, 2);
        ASSERT_EQ(bytes, 2 * (64 << 20));
        heap_scale(0, 0, 512 * 1024, &count, &bytes);
        ASSERT_EQ(count, 0);
        heap_scale(3, 300, 1, &count, &bytes);  /* rate 1: every allocation, unscaled */
        ASSERT_EQ(count, 3);
        ASSERT_EQ(bytes, 300);
}

TEST(sites_count_allocations_and_frees) {
        Heap h;
        heap_init(&h, 1024);
        for (uint64_t i = 0; i < 10; i++) {
                Stack s = one_frame_stack(0x1000);
                ASSERT_EQ(heap_alloc(&h, 0x10000 + i * 64, 64, &s), 0);
        }
        Stack s = one_frame_stack(0x2000);
        ASSERT_EQ(heap_alloc(&h, 0x90000, 4096, &s), 0);
        s = one_frame_stack(0x1000);    /* same stack, another size: another record, as Go */
        ASSERT_EQ(heap_alloc(&h, 0x91000, 128, &s), 0);
        ASSERT_EQ(h.sites.n, 3);
        for (uint64_t i = 0; i < 4; i++)
                heap_free(&h, 0x10000 + i * 64);
        heap_free(&h, 0x10000);         /* twice: ignored */
        heap_free(&h, 0xdead0);         /* never sampled: ignored */
        ASSERT_EQ(((HeapSite *) h.sites.sites[0])->allocs, 10);
        ASSERT_EQ(((HeapSite *) h.sites.sites[0])->frees, 4);
        ASSERT_EQ(h.live.n, 8);
        /* An address sampled again before its free was seen counts as freed first. */
        s = one_frame_stack(0x2000);
        ASSERT_EQ(heap_alloc(&h, 0x90000, 4096, &s), 0);
        ASSERT_EQ(((HeapSite *) h.sites.sites[1])->allocs, 2);
        ASSERT_EQ(((HeapSite *) h.sites.sites[1])->frees, 1);

        Buf text = {};
        heap_write_text(&h, "# note\n", &text);
        ASSERT_TRUE(strncmp(text.data, "heap profile: 8: 4608 [13: 8960] @ heap/2048\n# note\n", 52) == 0);
        /* Largest in-use bytes first: the 4096-byte site, then the 64-byte one (6 × 64). */
        const char *first = strstr(text.data, "\n1: 4096 [2: 8192] @ 0x2000\n");
        const char *second = strstr(text.data, "\n6: 384 [10: 640] @ 0x1000\n");
        ASSERT_TRUE(first && second && first < second);
        buf_done(&text);
        heap_done(&h);
}

TEST(profile_has_gos_types) {
        Heap h;
        heap_init(&h, 512 * 1024);
        Stack s = one_frame_stack(0x1000);
        ASSERT_EQ(heap_alloc(&h, 0x10000, 1024, &s), 0);
        for (int allocs = 0; allocs < 2; allocs++) {
                Profile *p;
                ASSERT_EQ(profile_new(NULL, &p), 0);
                ASSERT_EQ(heap_add_to_profile(&h, allocs, p), 0);
                Profile *q = round_trip(p);
                ASSERT_EQ(q->n_sample_types, 4);
                static const char *const types[] = { "alloc_objects", "alloc_space", "inuse_objects", "inuse_space" };
                for (size_t i = 0; i < 4; i++)
                        ASSERT_STREQ(profile_string(q, q->sample_types[i].type), types[i]);
                ASSERT_STREQ(profile_string(q, q->period_type.type), "space");
                ASSERT_STREQ(profile_string(q, q->period_type.unit), "bytes");
                ASSERT_EQ(q->period, 512 * 1024);
                ASSERT_STREQ(profile_string(q, q->default_sample_type), allocs ? "alloc_space" : "");
                ASSERT_EQ(q->n_samples, 1);
                int64_t count, bytes;
                heap_scale(1, 1024, 512 * 1024, &count, &bytes);
                ASSERT_EQ(q->samples[0].values[1], bytes);
                ASSERT_EQ(q->samples[0].values[3], bytes);
                profile_free(q);
                profile_free(p);
        }
        heap_done(&h);
}

TEST(contention_sites_text_and_profile) {
        Contention c;
        contention_init(&c, 1);
        for (int i = 0; i < 3; i++) {
                Stack s = one_frame_stack(0x1000);
                ASSERT_EQ(contention_add(&c, &s, 1, 1000), 0);
        }
        Stack s = one_frame_stack(0x2000);
        ASSERT_EQ(contention_add(&c, &s, 4, 2500), 0);  /* a sampled event, weight 4 */
        ASSERT_EQ(c.sites.n, 2);
        ASSERT_TRUE(c.count == 7 && c.delay_ns == 13000);

        /* Go's text: header, cycles/second, records by delay, largest first. */
        Buf text = {};
        contention_write_text(&c, "contention", "# note\n", &text);
        ASSERT_TRUE(strncmp(text.data, "--- contention:\ncycles/second=1000000000\n# note\n10000 4 @ 0x2000\n", 64) == 0);
        ASSERT_TRUE(strstr(text.data, "\n3000 3 @ 0x1000\n") != NULL);
        ASSERT_TRUE(strstr(text.data, "sampling period") == NULL);
        buf_done(&text);

        Profile *p;
        ASSERT_EQ(profile_new(NULL, &p), 0);
        ASSERT_EQ(contention_add_to_profile(&c, p), 0);
        Profile *q = round_trip(p);
        ASSERT_EQ(q->n_sample_types, 2);
        ASSERT_STREQ(profile_string(q, q->sample_types[0].type), "contentions");
        ASSERT_STREQ(profile_string(q, q->sample_types[0].unit), "count");
        ASSERT_STREQ(profile_string(q, q->sample_types[1].type), "delay");
        ASSERT_STREQ(profile_string(q, q->sample_types[1].unit), "nanoseconds");
        ASSERT_STREQ(profile_string(q, q->period_type.type), "contentions");
        ASSERT_EQ(q->period, 1);
        ASSERT_EQ(q->n_samples, 2);
        profile_free(q);
        profile_free(p);
        contention_done(&c);

        /* Mutex: raw values in the text with the sampling period, scaled in pprof. */
        contention_init(&c, 5);
        s = one_frame_stack(0x3000);
        ASSERT_EQ(contention_add(&c, &s, 1, 700), 0);
        contention_write_text(&c, "mutex", NULL, &text);
        static const char mutex_head[] = "--- mutex:\ncycles/second=1000000000\nsampling period=5\n700 1 @ 0x3000\n#";
        ASSERT_TRUE(strncmp(text.data, mutex_head, strlen(mutex_head)) == 0);
        buf_done(&text);
        ASSERT_EQ(profile_new(NULL, &p), 0);
        ASSERT_EQ(contention_add_to_profile(&c, p), 0);
        q = round_trip(p);
        ASSERT_EQ(q->samples[0].values[0], 5);
        ASSERT_EQ(q->samples[0].values[1], 3500);
        profile_free(q);
        profile_free(p);
        contention_done(&c);
}

TEST(creations_by_stack_and_labels) {
        Creations c;
        creations_init(&c);
        for (int i = 0; i < 3; i++) {
                Stack s = one_frame_stack(0x1000);
                ASSERT_EQ(creations_add(&c, &s, false, "worker", "w-1"), 0);
        }
        Stack s = one_frame_stack(0x1000);
        ASSERT_EQ(creations_add(&c, &s, false, "worker", "w-2"), 0);   /* another name: another record */
        s = one_frame_stack(0x2000);
        ASSERT_EQ(creations_add(&c, &s, true, "pool", NULL), 0);
        ASSERT_EQ(c.sites.n, 3);
        ASSERT_EQ(c.total, 5);

        Buf text = {};
        creations_write_text(&c, NULL, &text);
        ASSERT_TRUE(strncmp(text.data, "threadcreate profile: total 5\n3 @ 0x1000\n"
                                       "# labels: {\"start_routine\":\"worker\", \"thread_name\":\"w-1\"}\n", 95) == 0);
        ASSERT_TRUE(strstr(text.data, "# labels: {\"start_routine\":\"pool\"}\n") != NULL);
        ASSERT_TRUE(strstr(text.data, "#\t[created before tracking]\n") != NULL);
        buf_done(&text);

        Profile *p;
        ASSERT_EQ(profile_new(NULL, &p), 0);
        ASSERT_EQ(creations_add_to_profile(&c, p), 0);
        Profile *q = round_trip(p);
        ASSERT_EQ(q->n_sample_types, 1);
        ASSERT_STREQ(profile_string(q, q->sample_types[0].type), "threadcreate");
        ASSERT_EQ(q->n_samples, 3);
        bool rooted = false;
        for (size_t i = 0; i < q->n_samples; i++)
                rooted = rooted || q->samples[i].n_location_ids == 2;     /* the frame and the synthetic root */
        ASSERT_TRUE(rooted);
        profile_free(q);
        profile_free(p);
        creations_done(&c);
}

TEST(map_removal_keeps_every_other_key) {
        U64Map m = {};
        /* Enough keys for long probe runs and wrap-around at the table's end. */
        for (uint64_t k = 0; k < 5000; k++)
                u64map_put(&m, k * 4096, (void *) (uintptr_t) (k + 1));
        for (uint64_t k = 0; k < 5000; k += 3)
                ASSERT_EQ((uintptr_t) u64map_remove(&m, k * 4096), k + 1);
        ASSERT_TRUE(u64map_remove(&m, 3 * 4096) == NULL);
        for (uint64_t k = 0; k < 5000; k++) {
                uintptr_t v = (uintptr_t) u64map_get(&m, k * 4096);
                ASSERT_EQ(v, k % 3 == 0 ? 0 : k + 1);
        }
        ASSERT_EQ(m.n, 5000 - 1667);
        u64map_done(&m, NULL);
}

/* ---- the agent in a live process ---- */

static pid_t thread_named(pid_t pid, const char *name) {
        pid_t *tids;
        size_t n;
        pid_t found = 0;
        if (procfs_list_threads(pid, &tids, &n) < 0)
                return 0;
        for (size_t i = 0; i < n && !found; i++) {
                ThreadInfo info;
                if (procfs_read_thread(pid, tids[i], &info) == 0 && strcmp(info.name, name) == 0)
                        found = tids[i];
        }
        free(tids);
        return found;
}

static bool has_memfd(pid_t pid, long fd) {
        char path[64], link[128] = "";
        snprintf(path, sizeof path, "/proc/%d/fd/%ld", (int) pid, fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        return n > 0 && strncmp(link, "/memfd:" AGENT_SHM_NAME, 7 + strlen(AGENT_SHM_NAME)) == 0;
}

static size_t thread_count(pid_t pid) {
        pid_t *tids;
        size_t n;
        if (procfs_list_threads(pid, &tids, &n) < 0)
                return 0;
        free(tids);
        return n;
}

static int64_t agent_call(pid_t pid, const char *symbol, uint64_t daemon_pid) {
        InjectRequest req = { .agent_path = AGENT_PATH, .start_symbol = symbol,
                              .args = { daemon_pid, 4096, AGENT_RING_SIZE_DEFAULT } };
        InjectResult res;
        char err[256] = "";
        if (inject_agent(pid, &req, &res, err, sizeof err) < 0) {
                fprintf(stderr, "inject_agent %s: %s\n", symbol, err);
                return INT64_MIN;
        }
        return res.start_result;
}

static AgentHeader *map_agent(pid_t pid, long fd, size_t *size) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/fd/%ld", (int) pid, fd);
        int f = open(path, O_RDWR | O_CLOEXEC);
        struct stat st;
        if (f < 0 || fstat(f, &st) < 0)
                return NULL;
        *size = (size_t) st.st_size;
        AgentHeader *h = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
        close(f);
        return h == MAP_FAILED ? NULL : h;
}

TEST(agent_loads_starts_and_stops) {
        pid_t pid = threads_target_start();
        size_t threads = thread_count(pid);
        InjectRequest req = { .agent_path = AGENT_PATH, .start_symbol = AGENT_START_SYMBOL,
                              .args = { (uint64_t) getpid(), 4096, AGENT_RING_SIZE_DEFAULT } };
        InjectResult res;
        char err[256] = "";
        int r = inject_agent(pid, &req, &res, err, sizeof err);
        if (r < 0)
                TINY_FAIL("inject_agent: %s", err);
        ASSERT_GE(res.start_result, 0);
        ASSERT_GT(res.pause_ns, 0);
        ASSERT_TRUE(has_memfd(pid, (long) res.start_result));

        /* The borrowed thread is back in its wait, the others never moved. */
        ThreadInfo info;
        ASSERT_EQ(procfs_read_thread(pid, res.tid, &info), 0);
        for (int i = 0; i < 2000 && info.state != 'S'; i++) {
                usleep(1000);
                ASSERT_EQ(procfs_read_thread(pid, res.tid, &info), 0);
        }
        ASSERT_EQ(info.state, 'S');
        ASSERT_TRUE(thread_named(pid, "t-spin") != 0);

        /* No thread of its own; its memory says it is sampling, from the start on. */
        ASSERT_EQ(thread_count(pid), threads);
        size_t size;
        AgentHeader *h = map_agent(pid, (long) res.start_result, &size);
        ASSERT_TRUE(h != NULL);
        ASSERT_EQ(h->magic, AGENT_MAGIC);
        ASSERT_EQ(h->state, AGENT_STATE_ACTIVE);
        ASSERT_GT(h->hooked_slots, 0);
        ASSERT_EQ(h->rate, 4096);

        /* A second start while it runs is refused. */
        ASSERT_EQ(agent_call(pid, AGENT_START_SYMBOL, (uint64_t) getpid()), -EBUSY);

        /* Stopped by a borrowed thread: hooks back, memfd gone; a second stop finds
         * nothing to do. */
        ASSERT_EQ(agent_call(pid, AGENT_STOP_SYMBOL, 0), 0);
        ASSERT_EQ(h->state, AGENT_STATE_STOPPED);
        ASSERT_FALSE(has_memfd(pid, (long) res.start_result));
        ASSERT_EQ(agent_call(pid, AGENT_STOP_SYMBOL, 0), -ESRCH);
        ASSERT_EQ(thread_count(pid), threads);
        munmap(h, size);

        /* And it can start again, in the library already loaded. */
        ASSERT_GE(agent_call(pid, AGENT_START_SYMBOL, (uint64_t) getpid()), 0);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

TEST(agent_started_by_a_cprofd_now_gone_gives_way) {
        pid_t pid = threads_target_start();
        pid_t dead = fork();
        if (dead == 0)
                _exit(0);
        ASSERT_GT(dead, 0);
        waitpid(dead, NULL, 0);

        int64_t first = agent_call(pid, AGENT_START_SYMBOL, (uint64_t) dead);
        ASSERT_GE(first, 0);
        size_t size;
        AgentHeader *h = map_agent(pid, (long) first, &size);
        ASSERT_TRUE(h != NULL);
        ASSERT_EQ(h->state, AGENT_STATE_ACTIVE);
        /* Its cprofd is gone: a new one takes over instead of being refused. */
        int64_t second = agent_call(pid, AGENT_START_SYMBOL, (uint64_t) getpid());
        ASSERT_GE(second, 0);
        ASSERT_EQ(h->state, AGENT_STATE_STOPPED);
        ASSERT_TRUE(has_memfd(pid, (long) second));
        ASSERT_TRUE(second == first || !has_memfd(pid, (long) first));
        munmap(h, size);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

TEST(agent_refuses_a_stopped_target_and_a_missing_agent) {
        pid_t pid = threads_target_start();
        InjectRequest req = { .agent_path = AGENT_PATH, .start_symbol = AGENT_START_SYMBOL,
                              .args = { (uint64_t) getpid(), 4096, 0 } };
        InjectResult res;
        char err[256] = "";

        kill(pid, SIGSTOP);
        ThreadInfo info;
        for (int i = 0; i < 2000; i++, usleep(1000))
                if (procfs_read_thread(pid, pid, &info) == 0 && info.state == 'T')
                        break;
        ASSERT_EQ(inject_agent(pid, &req, &res, err, sizeof err), -EAGAIN);
        ASSERT_TRUE(strstr(err, "try again") != NULL);
        ASSERT_EQ(procfs_read_thread(pid, pid, &info), 0);
        ASSERT_EQ(info.state, 'T');     /* still stopped */
        kill(pid, SIGCONT);

        req.agent_path = "/nonexistent/libcprofd-agent.so";
        ASSERT_EQ(inject_agent(pid, &req, &res, err, sizeof err), -ENOENT);
        ASSERT_TRUE(strstr(err, "missing") != NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

int main(int argc, char **argv) {
        return tiny_main(argc, argv);
}
