/* symbolize/debuginfod.c -- see debuginfod.h.
 *
 * One thread, one libdebuginfod client, one download at a time, in request order. Every
 * build-id asked for is remembered (up to DEBUG_FETCHER_KNOWN_MAX) with its state, so a
 * module is downloaded once and a failure is retried only after DEBUG_FETCHER_RETRY_NS.
 * libdebuginfod reads the servers, timeouts and cache from its environment variables;
 * its progress callback is how a download in progress is cancelled at shutdown (it runs
 * at least once a second while the transfer waits). */
#include <elfutils/debuginfod.h>
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "debuginfod.h"
#include "hashmap.h"
#include "macro.h"

#define BUILD_ID_HEX_MAX 128

typedef enum FetchState {
        FETCH_QUEUED,
        FETCH_RUNNING,
        FETCH_DONE,
        FETCH_FAILED,
} FetchState;

typedef struct FetchEntry {
        struct FetchEntry *hash_next;   /* same hash */
        struct FetchEntry *queue_next;
        FetchState state;
        uint64_t failed_at_ns;
        char build_id[];
} FetchEntry;

typedef struct Fetched {
        struct Fetched *next;
        char *build_id, *path;
} Fetched;

struct DebugFetcher {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        atomic_bool stop;

        /* Under lock: */
        U64Map entries;                 /* hash of build-id -> FetchEntry chain */
        size_t n_entries;
        FetchEntry *queue_head, *queue_tail;
        size_t queue_len;
        Fetched *done_head, **done_tail;
        DebugFetcherStats stats;
};

bool debug_fetcher_configured(void) {
        const char *urls = getenv(DEBUGINFOD_URLS_ENV_VAR);
        return urls && urls[strspn(urls, " \t")];
}

static int progress(debuginfod_client *c, long done, long total) {
        DebugFetcher *f = debuginfod_get_user_data(c);
        return atomic_load(&f->stop) ? 1 : 0;   /* nonzero cancels the transfer */
}

static void *fetch_loop(void *userdata) {
        DebugFetcher *f = userdata;
        debuginfod_client *client = debuginfod_begin();

        if (client) {
                debuginfod_set_user_data(client, f);
                debuginfod_set_progressfn(client, progress);
        }
        pthread_mutex_lock(&f->lock);
        for (;;) {
                while (!atomic_load(&f->stop) && !f->queue_head)
                        pthread_cond_wait(&f->wake, &f->lock);
                if (atomic_load(&f->stop))
                        break;
                FetchEntry *e = f->queue_head;
                f->queue_head = e->queue_next;
                if (!f->queue_head)
                        f->queue_tail = NULL;
                f->queue_len--;
                e->state = FETCH_RUNNING;
                f->stats.started++;
                pthread_mutex_unlock(&f->lock);

                /* Entries live as long as the fetcher: E stays valid unlocked. A build-id
                 * length of 0 means "hex string". */
                char *path = NULL;
                int fd = client ? debuginfod_find_debuginfo(client, (const unsigned char *) e->build_id,
                                                            0, &path) : -ENOSYS;
                if (fd >= 0)
                        (void) close(fd);
                Fetched *done = fd >= 0 && path ? calloc(1, sizeof *done) : NULL;
                if (done) {
                        done->build_id = strdup(e->build_id);
                        done->path = TAKE_PTR(path);
                        if (!done->build_id) {
                                free(done->path);
                                free(done);
                                done = NULL;
                        }
                }
                free(path);

                pthread_mutex_lock(&f->lock);
                if (done) {
                        e->state = FETCH_DONE;
                        *f->done_tail = done;
                        f->done_tail = &done->next;
                        f->stats.succeeded++;
                } else {
                        e->state = FETCH_FAILED;
                        e->failed_at_ns = now_monotonic_ns();
                        f->stats.failed++;
                }
        }
        pthread_mutex_unlock(&f->lock);
        if (client)
                debuginfod_end(client);
        return NULL;
}

int debug_fetcher_new(DebugFetcher **ret) {
        DebugFetcher *f = calloc(1, sizeof *f);
        sigset_t all, old;
        int r;

        if (!f)
                return -ENOMEM;
        pthread_mutex_init(&f->lock, NULL);
        pthread_cond_init(&f->wake, NULL);
        f->done_tail = &f->done_head;
        atomic_init(&f->stop, false);

        /* Signals are the daemon's business, not the downloader's. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = pthread_create(&f->thread, NULL, fetch_loop, f);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r != 0) {
                pthread_cond_destroy(&f->wake);
                pthread_mutex_destroy(&f->lock);
                free(f);
                return -r;
        }
        *ret = f;
        return 0;
}

DebugFetcher *debug_fetcher_free(DebugFetcher *f) {
        if (!f)
                return NULL;
        pthread_mutex_lock(&f->lock);
        atomic_store(&f->stop, true);
        pthread_cond_broadcast(&f->wake);
        pthread_mutex_unlock(&f->lock);
        (void) pthread_join(f->thread, NULL);

        uint64_t k;
        void *v;
        for (size_t i = 0; u64map_next(&f->entries, &i, &k, &v);)
                for (FetchEntry *e = v, *next; e; e = next) {
                        next = e->hash_next;
                        free(e);
                }
        u64map_done(&f->entries, NULL);
        for (Fetched *d = f->done_head, *next; d; d = next) {
                next = d->next;
                free(d->build_id);
                free(d->path);
                free(d);
        }
        pthread_cond_destroy(&f->wake);
        pthread_mutex_destroy(&f->lock);
        free(f);
        return NULL;
}

static bool valid_build_id(const char *id, size_t len) {
        if (len == 0 || len > BUILD_ID_HEX_MAX || len % 2 != 0)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                        return false;
        return true;
}

static void enqueue(DebugFetcher *f, FetchEntry *e) {
        e->state = FETCH_QUEUED;
        e->queue_next = NULL;
        if (f->queue_tail)
                f->queue_tail->queue_next = e;
        else
                f->queue_head = e;
        f->queue_tail = e;
        f->queue_len++;
        pthread_cond_signal(&f->wake);
}

void debug_fetcher_request(DebugFetcher *f, const char *build_id) {
        size_t len = build_id ? strlen(build_id) : 0;
        if (!f || !valid_build_id(build_id, len))
                return;

        uint64_t h = hash_bytes(build_id, len);
        pthread_mutex_lock(&f->lock);
        FetchEntry *head = u64map_get(&f->entries, h), *e;
        for (e = head; e; e = e->hash_next)
                if (strcmp(e->build_id, build_id) == 0)
                        break;
        if (e) {
                if (e->state == FETCH_FAILED && f->queue_len < DEBUG_FETCHER_QUEUE_MAX &&
                    now_monotonic_ns() - e->failed_at_ns >= DEBUG_FETCHER_RETRY_NS)
                        enqueue(f, e);
        } else if (f->n_entries < DEBUG_FETCHER_KNOWN_MAX && f->queue_len < DEBUG_FETCHER_QUEUE_MAX &&
                   (e = calloc(1, sizeof *e + len + 1))) {
                memcpy(e->build_id, build_id, len + 1);
                e->hash_next = head;
                u64map_put(&f->entries, h, e);
                f->n_entries++;
                enqueue(f, e);
        }
        pthread_mutex_unlock(&f->lock);
}

bool debug_fetcher_take(DebugFetcher *f, char **ret_build_id, char **ret_path) {
        if (!f)
                return false;
        pthread_mutex_lock(&f->lock);
        Fetched *d = f->done_head;
        if (d) {
                f->done_head = d->next;
                if (!f->done_head)
                        f->done_tail = &f->done_head;
        }
        pthread_mutex_unlock(&f->lock);
        if (!d)
                return false;
        *ret_build_id = d->build_id;
        *ret_path = d->path;
        free(d);
        return true;
}

void debug_fetcher_get_stats(DebugFetcher *f, DebugFetcherStats *ret) {
        if (!f) {
                *ret = (DebugFetcherStats) {};
                return;
        }
        pthread_mutex_lock(&f->lock);
        *ret = f->stats;
        pthread_mutex_unlock(&f->lock);
}

/* ---- local search ---- */

static bool has_build_id(int fd, const unsigned char *id, int id_len) {
        Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
        const void *bits;
        ssize_t n = elf ? dwelf_elf_gnu_build_id(elf, &bits) : -1;
        bool match = n == id_len && memcmp(bits, id, (size_t) n) == 0;
        if (elf)
                elf_end(elf);
        return match;
}

int debug_find_local(Dwfl_Module *mod, const char *file_name, const char *debuglink_file,
                     char **ret_name) {
        const unsigned char *id;
        GElf_Addr vaddr;
        int id_len = dwfl_module_build_id(mod, &id, &vaddr);

        int fd = dwfl_build_id_find_debuginfo(mod, NULL, NULL, 0, NULL, NULL, 0, ret_name);
        if (fd >= 0 || id_len <= 0 || !file_name)
                return fd;

        const char *slash = strrchr(file_name, '/');
        if (!slash)
                return -1;
        char dir[PATH_MAX], name[NAME_MAX + 16], path[2 * PATH_MAX];
        int dir_len = (int) (slash - file_name);
        if (dir_len >= (int) sizeof dir)
                return -1;
        (void) snprintf(dir, sizeof dir, "%.*s", dir_len, file_name);
        if (debuglink_file)
                (void) snprintf(name, sizeof name, "%s", debuglink_file);
        else
                (void) snprintf(name, sizeof name, "%s.debug", slash + 1);

        /* libdwfl's default debuginfo_path ":.debug:/usr/lib/debug"; an absolute link
         * names the file itself. */
        struct stat main_st;
        bool have_main = stat(file_name, &main_st) == 0;
        for (int i = 0; i < (name[0] == '/' ? 1 : 3); i++) {
                struct stat st;
                if (name[0] == '/')
                        (void) snprintf(path, sizeof path, "%s", name);
                else
                        (void) snprintf(path, sizeof path, i == 0 ? "%s/%s" : i == 1 ? "%s/.debug/%s" :
                                        "/usr/lib/debug%s/%s", dir, name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                /* The file itself is no debug file of its own. */
                if (!(have_main && fstat(fd, &st) == 0 && st.st_dev == main_st.st_dev &&
                      st.st_ino == main_st.st_ino) && has_build_id(fd, id, id_len)) {
                        *ret_name = strdup(path);
                        return fd;
                }
                (void) close(fd);
        }
        errno = 0;
        return -1;
}
