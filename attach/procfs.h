/* attach/procfs.h -- read what /proc says about a process and its threads, without
 * stopping anything.
 *
 * Everything read here comes from the target and is treated as untrusted: lengths are
 * bounded, numbers are range-checked, and a malformed line is skipped, never fatal. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MAPS_MAX_ENTRIES 65536          /* /proc/PID/maps lines beyond this are ignored */
#define THREADS_MAX 65536               /* threads listed beyond this are ignored */
#define THREAD_NAME_MAX 64              /* comm is 16 bytes today; room for growth */

typedef struct MapEntry {
        uint64_t start, end;            /* [start, end) */
        uint64_t offset;                /* file offset of start */
        uint64_t inode;
        uint32_t dev_major, dev_minor;
        bool readable, writable, executable, shared;
        bool deleted;                   /* the path ended in " (deleted)"; stripped from path */
        char *path;                     /* NULL for anonymous; "[stack]", "[vdso]", … kept */
} MapEntry;

typedef struct Maps {
        MapEntry *entries;              /* sorted by start, as the kernel lists them */
        size_t n;
} Maps;

/* 0, or negative errno (-ESRCH when the process is gone). *ret is filled on success only. */
int procfs_read_maps(pid_t pid, Maps *ret);
void maps_done(Maps *m);

/* The mapping of offset 0 of the first module (not deleted) whose path satisfies MATCH,
 * or NULL. */
const MapEntry *maps_find_module(const Maps *maps, bool (*match)(const char *path, const void *arg),
                                 const void *arg);
/* Matches for maps_find_module: the C library (libc.so.N, libc-X.Y.so); the path ARG. */
bool module_is_libc(const char *path, const void *arg);
bool module_is_path(const char *path, const void *arg);

#define PROCFS_MAP_FILES_PATH_MAX 128
/* /proc/PID/map_files/START-END of M: the very file PID maps there, whatever its mount
 * namespace. */
void procfs_map_files_path(pid_t pid, const MapEntry *m, char *buf, size_t size);
/* Deep copy. 0 or -ENOMEM. */
int maps_copy(const Maps *src, Maps *ret);
/* The entry containing ADDR, or NULL. Binary search. */
const MapEntry *maps_find(const Maps *m, uint64_t addr);

/* Thread ids of PID from /proc/PID/task, sorted ascending. 0, or negative errno.
 * *ret_tids is malloc'ed; caller frees. */
int procfs_list_threads(pid_t pid, pid_t **ret_tids, size_t *ret_n);

/* Where a blocked thread sits, from /proc/…/syscall: the syscall and its six arguments,
 * and the user sp and pc it entered the kernel with. */
typedef struct SyscallPlace {
        bool known;                     /* false: running, not in a syscall, or unreadable */
        int nr;
        uint64_t args[6];
        uint64_t sp, pc;
} SyscallPlace;

#define RUN_NS_UNKNOWN UINT64_MAX

typedef struct ThreadInfo {
        char name[THREAD_NAME_MAX];     /* comm, NUL-terminated */
        char state;                     /* stat field 3: 'R', 'S', 'D', 'T', 't', 'Z', … */
        int syscall;                    /* syscall number it is blocked in; -1 when running
                                           or unknown */
        SyscallPlace place;             /* the same syscall with its arguments, sp and pc */
        char wchan[64];                 /* kernel wait channel, "" when none or hidden */
        pid_t pgrp;                     /* stat field 5: its process group */
        uint64_t start_time_ticks;      /* stat field 22: identifies the thread across reuse */
        uint64_t utime_ticks, stime_ticks;
        uint64_t run_ns;                /* CPU time it has ever run, to the nanosecond
                                           (schedstat); RUN_NS_UNKNOWN unless asked for */
} ThreadInfo;

/* Reads stat, syscall and wchan of TID. 0, or negative errno (-ESRCH: thread gone). */
int procfs_read_thread(pid_t pid, pid_t tid, ThreadInfo *ret);
/* The two halves of procfs_read_thread(): stat (name, state, process group, times;
 * everything else unknown), then syscall and wchan for a thread that stat showed not
 * running. */
int procfs_read_thread_stat(pid_t pid, pid_t tid, ThreadInfo *ret);
void procfs_read_thread_wait(pid_t pid, pid_t tid, ThreadInfo *info);
/* Fills INFO->run_ns from /proc/…/schedstat: the scheduler's exact sum of the thread's
 * run time, which changes whenever the thread runs at all. 0, or negative errno. */
int procfs_read_thread_run_ns(pid_t pid, pid_t tid, ThreadInfo *info);

/* The raw NUL-separated command line, trailing NUL removed; at most 128 KiB.
 * *ret is malloc'ed (NUL-terminated for convenience; the length excludes that). */
int procfs_read_cmdline(pid_t pid, char **ret, size_t *ret_len);

/* The path of the process's executable (readlink of /proc/PID/exe), " (deleted)"
 * stripped. *ret is malloc'ed. 0, or negative errno. */
int procfs_read_exe(pid_t pid, char **ret);

/* comm of the process. 0, or negative errno. */
int procfs_read_comm(pid_t pid, char ret[THREAD_NAME_MAX]);

/* Whether PID is in cprofd's own namespace of kind NS ("pid", "mnt"): 1, 0, or negative
 * errno. */
int procfs_same_namespace(pid_t pid, const char *ns);

/* TID's id in its own pid namespace (the last NSpid of /proc/PID/task/TID/status): TID
 * itself unless it runs in a container's pid namespace. 0, or negative errno. */
int procfs_read_ns_tid(pid_t pid, pid_t tid, pid_t *ret);

/* TracerPid from /proc/PID/status (0 when untraced). 0, or negative errno. */
int procfs_read_tracer(pid_t pid, pid_t *ret);

/* The process (Tgid) thread TID of any process belongs to, from /proc/TID/status. 0, or
 * negative errno (-ESRCH: no such thread). */
int procfs_read_tgid(pid_t tid, pid_t *ret);

/* The pid of PID in its own pid namespace (a container's view; the last NSpid field of
 * /proc/PID/status), PID itself on kernels without NSpid. 0, or negative errno. */
int procfs_read_nspid(pid_t pid, pid_t *ret);

/* "S (sleeping)" and friends, as /proc/PID/status spells them; "? (unknown)" otherwise. */
const char *thread_state_description(char state);

/* x86-64 syscall name ("read", "futex") or NULL for an unknown number. */
const char *syscall_name(int nr);
