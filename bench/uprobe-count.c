/* bench/uprobe-count.c -- counting uprobes on a process's malloc and free, for
 * bench/heap-overhead: what the cheapest tracing a kernel offers costs every call.
 *
 *   uprobe-count PID
 *
 * Finds the libc that PID has mapped and the file offsets of its `malloc` and `free` (as
 * cprofd does for its own uprobes), and opens one perf event per function on PID with the
 * `uprobe` PMU (perf_event_open(2), config1 = path, config2 = offset): counting mode, no samples, so each call costs just
 * the breakpoint trap and the count. Prints `attached LIBC malloc@0xOFF free@0xOFF`, holds
 * the probes until SIGINT or SIGTERM, then prints `malloc N free N` (hits) and exits.
 * Needs root or CAP_PERFMON with CAP_SYS_ADMIN for uprobes. */
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "inject.h"
#include "perf.h"
#include "procfs.h"

__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "uprobe-count: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n");
        exit(1);
}

/* The libc PID maps, through /proc/PID/map_files (the very file, whatever the mount
 * namespace), and the file offsets of NAMES[0..n) in it. */
static char *find_libc(pid_t pid, const char *const *names, uint64_t *offsets, int n) {
        char path[PROCFS_MAP_FILES_PATH_MAX];
        Maps maps;

        if (procfs_read_maps(pid, &maps) < 0)
                die("cannot read the maps of process %d", (int) pid);
        const MapEntry *libc = maps_find_module(&maps, module_is_libc, NULL);
        if (!libc)
                die("no libc mapped in process %d", (int) pid);
        procfs_map_files_path(pid, libc, path, sizeof path);
        maps_done(&maps);
        for (int i = 0; i < n; i++)
                if (elf_function_file_offset(path, names[i], &offsets[i]) < 0)
                        die("no function %s in libc's .dynsym", names[i]);
        return strdup(path);
}

static int open_uprobe(uint32_t type, const char *path, uint64_t offset, pid_t pid) {
        struct perf_event_attr attr;
        int fd;

        memset(&attr, 0, sizeof attr);
        attr.size = sizeof attr;
        attr.type = type;
        attr.config = 0;                                /* an entry probe, not a return probe */
        attr.uprobe_path = (uint64_t) (uintptr_t) path;
        attr.probe_offset = offset;
        fd = (int) syscall(SYS_perf_event_open, &attr, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
        if (fd < 0)
                die("perf_event_open(uprobe): %s", strerror(errno));
        return fd;
}

int main(int argc, char *argv[]) {
        static const char *const names[] = { "malloc", "free" };
        uint64_t offsets[2], counts[2];
        int fds[2], sig;
        uint32_t type;
        unsigned return_bit;
        sigset_t set;
        char *libc;
        pid_t pid;

        if (argc != 2 || (pid = (pid_t) strtol(argv[1], NULL, 10)) <= 0) {
                fprintf(stderr, "Usage: uprobe-count PID\n");
                return 2;
        }
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigprocmask(SIG_BLOCK, &set, NULL);

        libc = find_libc(pid, names, offsets, 2);
        if (perf_uprobe_pmu(&type, &return_bit) < 0)
                die("this kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe)");
        for (int i = 0; i < 2; i++)
                fds[i] = open_uprobe(type, libc, offsets[i], pid);
        printf("attached %s malloc@0x%llx free@0x%llx\n", libc,
               (unsigned long long) offsets[0], (unsigned long long) offsets[1]);
        fflush(stdout);

        while (sigwait(&set, &sig) != 0)
                ;
        for (int i = 0; i < 2; i++)
                if (read(fds[i], &counts[i], sizeof counts[i]) != (ssize_t) sizeof counts[i])
                        die("reading a count: %s", strerror(errno));
        printf("malloc %llu free %llu\n", (unsigned long long) counts[0], (unsigned long long) counts[1]);
        free(libc);
        return 0;
}
