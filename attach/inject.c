/* attach/inject.c -- see inject.h. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <gelf.h>
#include <libelf.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "inject.h"
#include "macro.h"
#include "procfs.h"
#include "snapshot.h"

#define XSTATE_MAX 8192                 /* bytes of FPU/vector state (XSAVE area) */
#define DEFERRED_SIGNALS_MAX 8
#define STACK_SKIP 512                  /* below the thread's sp: red zone and then some */

static int fail(char *err, size_t errlen, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int r, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        return r;
}

/* ---- finding functions in the target ---- */

/* Dynamic function NAME of the ELF file at PATH: its value, the vaddr its first PT_LOAD
 * is linked at, and the file offset of its code (where a uprobe goes). 0, -ENOENT (no
 * such function), -EIO (unreadable, not ELF, or the function in no loaded segment). */
static int elf_function(const char *path, const char *name, uint64_t *ret_value, uint64_t *ret_first_load,
                        uint64_t *ret_file_offset) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -EIO;
        elf_version(EV_CURRENT);
        Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
        int r = -EIO;
        size_t n_phdr;
        if (!elf || elf_kind(elf) != ELF_K_ELF || elf_getphdrnum(elf, &n_phdr) < 0)
                goto out;
        uint64_t value = 0;
        r = -ENOENT;
        for (Elf_Scn *scn = elf_nextscn(elf, NULL); scn && r == -ENOENT; scn = elf_nextscn(elf, scn)) {
                GElf_Shdr sh;
                if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM || sh.sh_entsize == 0)
                        continue;
                Elf_Data *data = elf_getdata(scn, NULL);
                if (!data)
                        continue;
                size_t n = sh.sh_size / sh.sh_entsize;
                for (size_t i = 0; i < n; i++) {
                        GElf_Sym sym;
                        if (!gelf_getsym(data, (int) i, &sym) || sym.st_value == 0 ||
                            GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF)
                                continue;
                        const char *s = elf_strptr(elf, sh.sh_link, sym.st_name);
                        if (s && strcmp(s, name) == 0) {
                                value = sym.st_value;
                                r = 0;
                                break;
                        }
                }
        }
        if (r < 0)
                goto out;
        bool have_load = false, have_offset = false;
        for (size_t i = 0; i < n_phdr; i++) {
                GElf_Phdr ph;
                if (!gelf_getphdr(elf, (int) i, &ph) || ph.p_type != PT_LOAD)
                        continue;
                if (!have_load) {
                        *ret_first_load = ph.p_vaddr & ~(uint64_t) 0xfff;
                        have_load = true;
                }
                if (!have_offset && value >= ph.p_vaddr && value < ph.p_vaddr + ph.p_filesz) {
                        *ret_file_offset = value - ph.p_vaddr + ph.p_offset;
                        have_offset = true;
                }
        }
        *ret_value = value;
        r = have_load && have_offset ? 0 : -EIO;
out:
        if (elf)
                elf_end(elf);
        close(fd);
        return r;
}

int elf_function_file_offset(const char *path, const char *name, uint64_t *ret) {
        uint64_t value, first_load;
        return elf_function(path, name, &value, &first_load, ret);
}

/* The address of function NAME of the module mapped at M in PID, read from the file the
 * target maps (through /proc/PID/map_files, so a container's own libc is the one read). */
static int target_symbol(pid_t pid, const MapEntry *m, const char *name, uint64_t *ret) {
        char path[PROCFS_MAP_FILES_PATH_MAX];
        uint64_t value, first_load, file_offset;
        procfs_map_files_path(pid, m, path, sizeof path);
        int r = elf_function(path, name, &value, &first_load, &file_offset);
        if (r == -EIO)
                r = elf_function(m->path, name, &value, &first_load, &file_offset);
        if (r < 0)
                return r;
        *ret = m->start - first_load + value;
        return 0;
}

/* ---- borrowing a thread ---- */

/* Syscalls that wait for something else to happen: a thread blocked in one holds no lock
 * of the C library in any program that does not deadlock on its own. */
static bool waits(int nr) {
        switch (nr) {
        case SYS_read: case SYS_readv: case SYS_pread64: case SYS_poll: case SYS_ppoll: case SYS_select:
        case SYS_pselect6: case SYS_epoll_wait: case SYS_epoll_pwait: case SYS_futex: case SYS_nanosleep:
        case SYS_clock_nanosleep: case SYS_accept: case SYS_accept4: case SYS_recvfrom: case SYS_recvmsg:
        case SYS_recvmmsg: case SYS_wait4: case SYS_waitid: case SYS_pause: case SYS_rt_sigsuspend:
        case SYS_rt_sigtimedwait: case SYS_msgrcv: case SYS_semop: case SYS_semtimedop: case SYS_restart_syscall:
        case SYS_connect: case SYS_sendto: case SYS_sendmsg: case SYS_write: case SYS_writev:
#ifdef SYS_epoll_pwait2
        case SYS_epoll_pwait2:
#endif
                return true;
        default:
                return false;
        }
}

/* The stop interrupted a waiting syscall: it restarts when we let go, or (sigtimedwait,
 * epoll_wait and the like) returns EINTR, as under any debugger's stop. */
static bool interrupted_syscall(const struct user_regs_struct *regs) {
        long nr = (long) regs->orig_rax;
        return nr >= 0 && nr < 4096 && waits((int) nr) &&
               (tracee_restarted_syscall(regs) >= 0 || (long) regs->rax == -EINTR);
}

typedef struct Borrowed {
        pid_t pid, tid;
        struct user_regs_struct regs;
        uint8_t xstate[XSTATE_MAX];
        size_t xstate_len;
        int regset_fp;                  /* NT_X86_XSTATE, or NT_PRFPREG where that fails */
        int deferred[DEFERRED_SIGNALS_MAX];
        size_t n_deferred;
        uint64_t t0;
} Borrowed;

static int get_regs(pid_t tid, struct user_regs_struct *regs) {
        struct iovec iov = { .iov_base = regs, .iov_len = sizeof *regs };
        return ptrace(PTRACE_GETREGSET, tid, (void *) NT_PRSTATUS, &iov) < 0 ? -errno : 0;
}

static int set_regs(pid_t tid, const struct user_regs_struct *regs) {
        struct iovec iov = { .iov_base = (void *) regs, .iov_len = sizeof *regs };
        return ptrace(PTRACE_SETREGSET, tid, (void *) NT_PRSTATUS, &iov) < 0 ? -errno : 0;
}

/* Lets B go: its registers and FPU state back as they were, the signals that came
 * meanwhile passed on. */
static void give_back(Borrowed *b) {
        (void) set_regs(b->tid, &b->regs);
        if (b->xstate_len > 0) {
                struct iovec iov = { .iov_base = b->xstate, .iov_len = b->xstate_len };
                (void) ptrace(PTRACE_SETREGSET, b->tid, (void *) (long) b->regset_fp, &iov);
        }
        int first = b->n_deferred > 0 ? b->deferred[0] : 0;
        if (ptrace(PTRACE_DETACH, b->tid, NULL, (void *) (long) first) < 0 && errno == ESRCH)
                tracee_add_straggler(b->tid);
        for (size_t i = 1; i < b->n_deferred; i++)
                (void) syscall(SYS_tgkill, (int) b->pid, (int) b->tid, b->deferred[i]);
}

/* Seizes TID and stops it; keeps it only if it sits in an interrupted waiting syscall. */
static int borrow(pid_t pid, pid_t tid, Borrowed *b) {
        if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) < 0)
                return -errno;
        b->pid = pid;
        b->tid = tid;
        b->t0 = now_monotonic_ns();
        if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0) {
                int r = -errno;
                if (ptrace(PTRACE_DETACH, tid, NULL, NULL) < 0)
                        tracee_add_straggler(tid);
                return r;
        }
        int status;
        int r = tracee_wait_stop(tid, 200 * NSEC_PER_MSEC, &status);
        if (r == -ETIMEDOUT)
                tracee_add_straggler(tid);
        if (r < 0)
                return r;
        int sig = (status >> 16) == 0 && WSTOPSIG(status) != SIGTRAP ? WSTOPSIG(status) : 0;
        if (sig == 0 && (status >> 16) == PTRACE_EVENT_STOP && WSTOPSIG(status) != SIGTRAP) {
                /* A group stop: the process is stopped on purpose; leave it so. */
                (void) ptrace(PTRACE_DETACH, tid, NULL, NULL);
                return -EAGAIN;
        }
        r = get_regs(tid, &b->regs);
        if (r < 0 || sig != 0 || !interrupted_syscall(&b->regs)) {
                (void) ptrace(PTRACE_DETACH, tid, NULL, (void *) (long) sig);
                return r < 0 ? r : -EAGAIN;
        }
        b->regset_fp = NT_X86_XSTATE;
        struct iovec iov = { .iov_base = b->xstate, .iov_len = sizeof b->xstate };
        if (ptrace(PTRACE_GETREGSET, tid, (void *) NT_X86_XSTATE, &iov) < 0) {
                b->regset_fp = NT_PRFPREG;
                iov.iov_len = sizeof b->xstate;
                if (ptrace(PTRACE_GETREGSET, tid, (void *) NT_PRFPREG, &iov) < 0)
                        iov.iov_len = 0;
        }
        b->xstate_len = iov.iov_len;
        return 0;
}

/* Copies LEN bytes of DATA below *SP on the target's stack; *SP and *RET_ADDR become
 * their address. */
static int push_data(pid_t pid, uint64_t *sp, const void *data, size_t len, uint64_t *ret_addr) {
        uint64_t at = (*sp - len) & ~(uint64_t) 15;
        struct iovec local = { .iov_base = (void *) data, .iov_len = len };
        struct iovec remote = { .iov_base = (void *) (uintptr_t) at, .iov_len = len };
        if (process_vm_writev(pid, &local, 1, &remote, 1, 0) != (ssize_t) len)
                return -EIO;
        *sp = at;
        if (ret_addr)
                *ret_addr = at;
        return 0;
}

/* Calls FN(ARGS…) on B's stack, below SP. 0 with *RET the return value. */
static int remote_call(pid_t pid, Borrowed *b, uint64_t sp, uint64_t fn, const uint64_t *args, size_t n_args,
                       uint64_t *ret) {
        struct user_regs_struct regs = b->regs;
        /* A call: 16-aligned before the return address is pushed; that address is 0, so
         * the return faults and stops the thread for us. */
        sp = ((sp - 64) & ~(uint64_t) 15) - 8;
        uint64_t zero = 0;
        struct iovec local = { .iov_base = &zero, .iov_len = sizeof zero };
        struct iovec remote = { .iov_base = (void *) (uintptr_t) sp, .iov_len = sizeof zero };
        if (process_vm_writev(pid, &local, 1, &remote, 1, 0) != (ssize_t) sizeof zero)
                return -EIO;
        int r;
        unsigned long long *argregs[] = { &regs.rdi, &regs.rsi, &regs.rdx, &regs.rcx, &regs.r8, &regs.r9 };
        for (size_t i = 0; i < n_args && i < ARRAY_SIZE(argregs); i++)
                *argregs[i] = args[i];
        regs.rsp = sp;
        regs.rip = fn;
        regs.rax = 0;
        regs.orig_rax = (uint64_t) -1;  /* no syscall restart on the way out of this stop */
        r = set_regs(b->tid, &regs);
        if (r < 0)
                return r;

        uint64_t deadline = now_monotonic_ns() + INJECT_CALL_TIMEOUT_NS;
        int sig = 0;
        for (;;) {
                if (ptrace(PTRACE_CONT, b->tid, NULL, (void *) (long) sig) < 0)
                        return -errno;
                sig = 0;
                uint64_t now = now_monotonic_ns();
                int status;
                r = now < deadline ? tracee_wait_stop(b->tid, deadline - now, &status) : -ETIMEDOUT;
                if (r == -ETIMEDOUT) {
                        /* Take it back mid-call: nothing better to do than to restore it. */
                        if (ptrace(PTRACE_INTERRUPT, b->tid, NULL, NULL) == 0)
                                (void) tracee_wait_stop(b->tid, 200 * NSEC_PER_MSEC, &status);
                        return -ETIMEDOUT;
                }
                if (r < 0)
                        return r;
                if ((status >> 16) != 0)
                        continue;       /* an event stop (a group stop, say): go on */
                int s = WSTOPSIG(status);
                if (s == SIGSEGV) {
                        struct user_regs_struct after;
                        r = get_regs(b->tid, &after);
                        if (r < 0)
                                return r;
                        if (after.rip != 0)
                                return -EFAULT; /* the call itself faulted */
                        *ret = after.rax;
                        return 0;
                }
                /* A signal for the program: keep it for after, so its handler runs on
                 * the thread's own state. */
                if (b->n_deferred < DEFERRED_SIGNALS_MAX)
                        b->deferred[b->n_deferred++] = s;
        }
}

/* Threads worth trying, best first: the main thread, then the others, each only if /proc
 * shows it sleeping in a waiting syscall. */
static size_t candidates(pid_t pid, pid_t *ret, size_t max) {
        _cleanup_free_ pid_t *tids = NULL;
        size_t n = 0, k = 0;
        if (procfs_list_threads(pid, &tids, &n) < 0)
                return 0;
        for (size_t i = 0; i < n && k < max; i++) {
                ThreadInfo info;
                if (procfs_read_thread(pid, tids[i], &info) == 0 && info.state == 'S' && info.syscall >= 0 &&
                    waits(info.syscall))
                        ret[k++] = tids[i];
        }
        return k;
}

/* ---- how the target sees the agent ---- */

/* Whether PID, opening PATH, opens our very file: the same root, or a container that
 * bind-mounts it where we have it. */
static bool target_sees_file(pid_t pid, const char *path) {
        char in_root[PATH_MAX + 32];
        struct stat a, b;
        snprintf(in_root, sizeof in_root, "/proc/%d/root%s", (int) pid, path);
        return stat(in_root, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Whether the target's root has a procfs at /proc, for dlopen("/proc/self/fd/N"). */
static bool target_has_proc(pid_t pid) {
        char path[64];
        struct statfs st;
        snprintf(path, sizeof path, "/proc/%d/root/proc/", (int) pid);
        return statfs(path, &st) == 0 && st.f_type == PROC_SUPER_MAGIC;
}

/* The agent's mapping (offset 0) in MAPS under the name MODULE: a file's path, or the
 * deleted "/memfd:…" of a copy. */
static const MapEntry *find_agent(const Maps *maps, const char *module, bool copy) {
        for (size_t i = 0; i < maps->n; i++) {
                const MapEntry *e = &maps->entries[i];
                if (e->path && e->offset == 0 && e->deleted == copy && strcmp(e->path, module) == 0)
                        return e;
        }
        return NULL;
}

/* Functions of the target's libc the borrowed thread calls. */
typedef struct TargetLibc {
        uint64_t dlopen;                /* dlopen, or __libc_dlopen_mode before glibc 2.34 */
        uint64_t dlerror;               /* 0 when libc has none (before 2.34: in libdl) */
        uint64_t syscall;               /* syscall(2): memfd_create, pipe2, close */
} TargetLibc;

/* syscall(NR, A0, A1) on B; the (long) result in *RET. */
static int remote_syscall(pid_t pid, Borrowed *b, uint64_t sp, const TargetLibc *libc, long nr, uint64_t a0,
                          uint64_t a1, int64_t *ret) {
        uint64_t args[3] = { (uint64_t) nr, a0, a1 }, r64 = 0;
        int r = remote_call(pid, b, sp, libc->syscall, args, 3, &r64);
        if (r == 0)
                *ret = (int64_t) r64;
        return r;
}

/* Closes FD in the target; a failure leaves an fd open there, nothing worse. */
static void remote_close(pid_t pid, Borrowed *b, uint64_t sp, const TargetLibc *libc, int fd) {
        int64_t ignored;
        (void) remote_syscall(pid, b, sp, libc, SYS_close, (uint64_t) fd, 0, &ignored);
}

/* Opens the target's fd FD through /proc (as a debugger may), checking it is what the
 * target was just made to create (a file of TYPE, named NAME when not NULL): its other
 * threads run meanwhile, and could have closed it and opened another. */
static int open_target_fd(pid_t pid, int fd, int flags, mode_t type, const char *name) {
        char path[64], link[128];
        snprintf(path, sizeof path, "/proc/%d/fd/%d", (int) pid, fd);
        if (name) {
                ssize_t n = readlink(path, link, sizeof link - 1);
                if (n <= 0)
                        return -EIO;
                link[n] = 0;
                if (strncmp(link, name, strlen(name)) != 0)
                        return -EIO;
        }
        int ours = open(path, flags | O_CLOEXEC);
        struct stat st;
        if (ours < 0)
                return -errno;
        if (fstat(ours, &st) < 0 || (st.st_mode & S_IFMT) != type) {
                close(ours);
                return -EIO;
        }
        return ours;
}

/* The dlerror() text of the target, after its dlopen failed: read from its memory,
 * bounded, anything unprintable replaced. "" when there is none. */
static void remote_dlerror(pid_t pid, Borrowed *b, uint64_t sp, const TargetLibc *libc, char *buf, size_t size) {
        uint64_t addr = 0;
        buf[0] = 0;
        if (!libc->dlerror || size < 2 || remote_call(pid, b, sp, libc->dlerror, NULL, 0, &addr) < 0 || addr == 0)
                return;
        struct iovec local = { .iov_base = buf, .iov_len = size - 1 };
        struct iovec remote = { .iov_base = (void *) (uintptr_t) addr, .iov_len = size - 1 };
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n <= 0) {
                buf[0] = 0;
                return;
        }
        buf[n] = 0;
        for (char *p = buf; *p; p++)
                if ((unsigned char) *p < 0x20 || (unsigned char) *p > 0x7e)
                        *p = '?';
}

/* The agent as a target in a container is made to load it, when its root does not show
 * our file: a copy in a memfd of its own, opened as /proc/self/fd/N.
 *
 * Why this way: nothing may be written into the container's filesystem, and the path
 * given to dlopen must be valid in the target's view. The target cannot reach our file
 * through /proc/CPROFD_PID/fd/N, as its /proc (mounted for its pid namespace) has no
 * cprofd in it; injecting our fd would need the target to receive it over a socket it
 * can reach. A memfd it creates itself (libc's syscall(), called like dlopen on the
 * borrowed thread) needs neither: cprofd fills it through /proc/PID/fd/N from outside,
 * and /proc/self is the one path every container runtime gives a process, whatever its
 * pid namespace. dlopen needs only libc (the agent links nothing else), which the target
 * has mapped already. */
#define AGENT_COPY_NAME "libcprofd-agent.so"
#define AGENT_COPY_MODULE "/memfd:" AGENT_COPY_NAME
#define AGENT_FILE_MAX (64u << 20)

/* Copies the file at PATH into the file open at TO. */
static int copy_file(const char *path, int to) {
        _cleanup_close_ int from = open(path, O_RDONLY | O_CLOEXEC);
        uint8_t buf[16384];
        size_t total = 0;
        if (from < 0)
                return -errno;
        for (;;) {
                ssize_t n = read(from, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return 0;
                total += (size_t) n;
                if (total > AGENT_FILE_MAX)
                        return -EFBIG;
                for (ssize_t done = 0; done < n;) {
                        ssize_t w = write(to, buf + done, (size_t) (n - done));
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0)
                                return w < 0 ? -errno : -EIO;
                        done += w;
                }
        }
}

/* On borrowed thread B: dlopen(agent, RTLD_NOW) — of the file, or of a memfd copy (COPY)
 * — then the address of the start symbol in the module it mapped. *SP: below what was
 * pushed. */
static int load_agent(pid_t pid, Borrowed *b, uint64_t *sp, const TargetLibc *libc, const InjectRequest *req,
                      bool copy, uint64_t *ret_start, char *err, size_t errlen) {
        char copy_path[64], why[256];
        const char *path = req->agent_path;
        uint64_t path_addr = 0, handle = 0;
        int64_t memfd = -1;
        Maps maps;
        int r = 0;

        if (copy) {
                uint64_t name_addr;
                if (!libc->syscall)
                        return fail(err, errlen, -ENOENT, "the C library of pid %d has no syscall()", (int) pid);
                r = push_data(pid, sp, AGENT_COPY_NAME, sizeof AGENT_COPY_NAME, &name_addr);
                /* MFD_EXEC: executable even where vm.memfd_noexec asks otherwise; kernels
                 * before 6.3 refuse the flag, and their memfds are executable anyway. */
                if (r == 0)
                        r = remote_syscall(pid, b, *sp, libc, SYS_memfd_create, name_addr, MFD_CLOEXEC | 0x10u,
                                           &memfd);
                if (r == 0 && memfd < 0)
                        r = remote_syscall(pid, b, *sp, libc, SYS_memfd_create, name_addr, MFD_CLOEXEC, &memfd);
                if (r < 0)
                        return fail(err, errlen, r == -ESRCH ? -ESRCH : -EIO, "calling memfd_create in pid %d "
                                    "failed: %s", (int) pid, strerror(-r));
                if (memfd < 0 || memfd > INT32_MAX)
                        return fail(err, errlen, -EIO, "memfd_create failed in pid %d (refused by a seccomp "
                                    "filter?)", (int) pid);
                int ours = open_target_fd(pid, (int) memfd, O_RDWR, S_IFREG, AGENT_COPY_MODULE);
                r = ours < 0 ? ours : copy_file(req->agent_path, ours);
                if (ours >= 0)
                        close(ours);
                if (r < 0) {
                        remote_close(pid, b, *sp, libc, (int) memfd);
                        return fail(err, errlen, -EIO, "cannot copy the agent into pid %d: %s", (int) pid,
                                    strerror(-r));
                }
                snprintf(copy_path, sizeof copy_path, "/proc/self/fd/%d", (int) memfd);
                path = copy_path;
        }
        r = push_data(pid, sp, path, strlen(path) + 1, &path_addr);
        if (r == 0) {
                uint64_t dl_args[2] = { path_addr, 2 /* RTLD_NOW */ };
                r = remote_call(pid, b, *sp, libc->dlopen, dl_args, 2, &handle);
        }
        why[0] = 0;
        if (r == 0 && handle == 0)
                remote_dlerror(pid, b, *sp, libc, why, sizeof why);
        if (copy)       /* the mapping keeps the copy; the target's fd table is as it was */
                remote_close(pid, b, *sp, libc, (int) memfd);
        if (r < 0)
                return fail(err, errlen, r == -ESRCH ? -ESRCH : -EIO, "calling dlopen in pid %d failed: %s",
                            (int) pid, strerror(-r));
        if (handle == 0) {
                const char *hint = strstr(why, "GLIBC_") ? " (the C library in its root is older than the one "
                                                            "the agent was built against)" :
                                   copy && strstr(why, "No such file") ? " (its root has no /proc mounted)" :
                                   why[0] ? "" : " (unreadable for its user, refused by a seccomp filter, or a "
                                                 "C library older than the agent's?)";
                return fail(err, errlen, -EIO, "dlopen(%s) failed in pid %d%s%s%s", path, (int) pid,
                            why[0] ? ": " : "", why, hint);
        }
        if ((r = procfs_read_maps(pid, &maps)) < 0)
                return fail(err, errlen, r, "cannot read the maps of pid %d: %s", (int) pid, strerror(-r));
        const MapEntry *agent = find_agent(&maps, copy ? AGENT_COPY_MODULE : req->agent_path, copy);
        if (!agent || target_symbol(pid, agent, req->start_symbol, ret_start) < 0)
                r = fail(err, errlen, -EIO, "the agent loaded in pid %d has no %s", (int) pid, req->start_symbol);
        maps_done(&maps);
        return r;
}

/* The pipe of req->hangup_pipe: created by B, its read end's number in *RET_READ_FD
 * (the target's), its write end moved to cprofd (*RET_OURS). */
static int make_hangup_pipe(pid_t pid, Borrowed *b, uint64_t *sp, const TargetLibc *libc, int *ret_read_fd,
                            int *ret_ours, char *err, size_t errlen) {
        int32_t fds[2] = { -1, -1 };
        uint64_t fds_addr;
        int64_t res = -1;
        if (!libc->syscall)
                return fail(err, errlen, -ENOENT, "the C library of pid %d has no syscall()", (int) pid);
        int r = push_data(pid, sp, fds, sizeof fds, &fds_addr);
        if (r == 0)
                r = remote_syscall(pid, b, *sp, libc, SYS_pipe2, fds_addr, O_CLOEXEC, &res);
        if (r < 0)
                return fail(err, errlen, r == -ESRCH ? -ESRCH : -EIO, "calling pipe2 in pid %d failed: %s",
                            (int) pid, strerror(-r));
        struct iovec local = { .iov_base = fds, .iov_len = sizeof fds };
        struct iovec remote = { .iov_base = (void *) (uintptr_t) fds_addr, .iov_len = sizeof fds };
        if (res != 0 || process_vm_readv(pid, &local, 1, &remote, 1, 0) != (ssize_t) sizeof fds || fds[0] < 0 ||
            fds[1] < 0)
                return fail(err, errlen, -EIO, "pipe2 failed in pid %d", (int) pid);
        int ours = open_target_fd(pid, fds[1], O_WRONLY | O_NONBLOCK, S_IFIFO, "pipe:");
        remote_close(pid, b, *sp, libc, fds[1]);
        if (ours < 0) {
                remote_close(pid, b, *sp, libc, fds[0]);
                return fail(err, errlen, -EIO, "cannot take the write end of the pipe made in pid %d", (int) pid);
        }
        *ret_read_fd = fds[0];
        *ret_ours = ours;
        return 0;
}

int inject_agent(pid_t pid, const InjectRequest *req, InjectResult *ret, char *err, size_t errlen) {
        Maps maps;
        TargetLibc libc_fns = {};
        int r;

        if (access(req->agent_path, R_OK) < 0)
                return fail(err, errlen, -ENOENT, "the heap agent %s is missing: %m", req->agent_path);
        /* A target in a container loads a copy (see load_agent), through its /proc. */
        bool copy = !target_sees_file(pid, req->agent_path);
        if (copy && !target_has_proc(pid))
                return fail(err, errlen, -ENOENT, "pid %d has another root directory (a container?) without "
                            "/proc mounted in it: it cannot load the agent without a file written into its "
                            "root (--heap-uprobes tracks it without an agent)", (int) pid);
        const char *module = copy ? AGENT_COPY_MODULE : req->agent_path;
        r = procfs_read_maps(pid, &maps);
        if (r < 0)
                return fail(err, errlen, r, "cannot read the maps of pid %d: %s", (int) pid, strerror(-r));
        const MapEntry *libc = maps_find_module(&maps, module_is_libc, NULL);
        if (libc) {
                r = target_symbol(pid, libc, "dlopen", &libc_fns.dlopen);
                if (r == -ENOENT)       /* glibc before 2.34 keeps it out of libc proper */
                        r = target_symbol(pid, libc, "__libc_dlopen_mode", &libc_fns.dlopen);
                if (target_symbol(pid, libc, "dlerror", &libc_fns.dlerror) < 0)
                        libc_fns.dlerror = 0;
                if (target_symbol(pid, libc, "syscall", &libc_fns.syscall) < 0)
                        libc_fns.syscall = 0;
        }
        /* An agent loaded before (a stop, a rescan, a restart) is called straight away: no
         * dlopen, no second read of the maps while the thread is held. */
        uint64_t start_addr = 0;
        const MapEntry *loaded = find_agent(&maps, module, copy);
        if (loaded && target_symbol(pid, loaded, req->start_symbol, &start_addr) < 0)
                start_addr = 0;
        maps_done(&maps);
        if (!libc || r < 0)
                return fail(err, errlen, -ENOENT, "pid %d has no dynamic loader entry cprofd can call "
                            "(not linked with glibc, or statically)", (int) pid);

        pid_t tids[16];
        size_t n = candidates(pid, tids, ARRAY_SIZE(tids));
        if (n == 0)
                return fail(err, errlen, -EAGAIN, "no thread of pid %d is blocked in a syscall where it can "
                            "load the agent safely; try again", (int) pid);

        sigset_t chld, saved;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        pthread_sigmask(SIG_BLOCK, &chld, &saved);

        _cleanup_free_ Borrowed *b = calloc(1, sizeof *b);
        if (!b) {
                pthread_sigmask(SIG_SETMASK, &saved, NULL);
                return fail(err, errlen, -ENOMEM, "out of memory");
        }
        r = -EAGAIN;
        for (size_t i = 0; i < n && r < 0; i++) {
                *b = (Borrowed) {};
                r = borrow(pid, tids[i], b);
                if (r == -EPERM) {
                        pthread_sigmask(SIG_SETMASK, &saved, NULL);
                        return fail(err, errlen, r, "pid %d is traced by another process", (int) pid);
                }
        }
        if (r < 0) {
                pthread_sigmask(SIG_SETMASK, &saved, NULL);
                return fail(err, errlen, r == -ESRCH ? -ESRCH : -EAGAIN,
                            "no thread of pid %d could be borrowed to load the agent; try again", (int) pid);
        }

        uint64_t sp = b->regs.rsp - STACK_SKIP, start_result = 0;
        uint64_t args[ARRAY_SIZE(req->args)];
        int hangup_fd = -1;
        memcpy(args, req->args, sizeof args);
        r = start_addr ? 0 : load_agent(pid, b, &sp, &libc_fns, req, copy, &start_addr, err, errlen);
        if (r == 0 && req->hangup_pipe) {
                int read_fd = -1;
                r = make_hangup_pipe(pid, b, &sp, &libc_fns, &read_fd, &hangup_fd, err, errlen);
                args[3] = (uint64_t) read_fd + 1;      /* 0 would mean none */
        }
        if (r == 0) {
                r = remote_call(pid, b, sp, start_addr, args, ARRAY_SIZE(args), &start_result);
                if (r < 0)
                        r = fail(err, errlen, r == -ESRCH ? -ESRCH : -EIO, "calling %s in pid %d failed: %s",
                                 req->start_symbol, (int) pid, strerror(-r));
        }
        give_back(b);
        uint64_t pause = now_monotonic_ns() - b->t0;
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0) {
                if (hangup_fd >= 0)
                        close(hangup_fd);
                return r;
        }
        *ret = (InjectResult) { .start_result = (int32_t) (uint32_t) start_result, .tid = b->tid, .pause_ns = pause,
                                .hangup_fd = hangup_fd };
        snprintf(ret->agent_module, sizeof ret->agent_module, "%s", module);
        return 0;
}
