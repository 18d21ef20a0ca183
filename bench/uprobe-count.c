/* bench/uprobe-count.c -- counting uprobes on a process's malloc and free, for
 * bench/heap-overhead: what the cheapest tracing a kernel offers costs every call.
 *
 *   uprobe-count PID
 *
 * Finds the libc that PID has mapped (/proc/PID/maps), the file offsets of its `malloc`
 * and `free` (.dynsym through libelf, each address turned into a file offset by the
 * PT_LOAD segment that holds it), and opens one perf event per function on PID with the
 * `uprobe` PMU (perf_event_open(2), type from /sys/bus/event_source/devices/uprobe/type,
 * config1 = path, config2 = offset): counting mode, no samples, so each call costs just
 * the breakpoint trap and the count. Prints `attached LIBC malloc@0xOFF free@0xOFF`, holds
 * the probes until SIGINT or SIGTERM, then prints `malloc N free N` (hits) and exits.
 * Needs root or CAP_PERFMON with CAP_SYS_ADMIN for uprobes. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

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

/* The first file mapped by PID whose name is libc.so.6 or libc-*.so. */
static char *find_libc(const char *pid) {
        char path[64], line[4096];
        FILE *f;

        snprintf(path, sizeof path, "/proc/%s/maps", pid);
        if (!(f = fopen(path, "r")))
                die("cannot open %s", path);
        while (fgets(line, sizeof line, f)) {
                char *name = strchr(line, '/'), *base;
                if (!name)
                        continue;
                name[strcspn(name, "\n")] = '\0';
                base = strrchr(name, '/') + 1;
                if (strcmp(base, "libc.so.6") == 0 ||
                    (strncmp(base, "libc-", 5) == 0 && strstr(base, ".so"))) {
                        fclose(f);
                        return strdup(name);
                }
        }
        fclose(f);
        die("no libc mapped in process %s", pid);
}

/* The file offsets of NAMES[0..n) in the .dynsym of PATH. */
static void symbol_offsets(const char *path, const char *const *names, uint64_t *offsets, int n) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        Elf_Scn *scn = NULL;
        size_t nphdr;
        Elf *elf;

        if (fd < 0)
                die("cannot open %s", path);
        elf_version(EV_CURRENT);
        if (!(elf = elf_begin(fd, ELF_C_READ, NULL)) || elf_getphdrnum(elf, &nphdr) != 0)
                die("%s is not an ELF file", path);
        for (int i = 0; i < n; i++)
                offsets[i] = 0;
        while ((scn = elf_nextscn(elf, scn))) {
                GElf_Shdr shdr;
                Elf_Data *data;

                if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_DYNSYM ||
                    !(data = elf_getdata(scn, NULL)) || shdr.sh_entsize == 0)
                        continue;
                for (size_t k = 0; k < shdr.sh_size / shdr.sh_entsize; k++) {
                        GElf_Sym sym;
                        const char *name;

                        if (!gelf_getsym(data, (int) k, &sym) || sym.st_shndx == SHN_UNDEF ||
                            GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
                            !(name = elf_strptr(elf, shdr.sh_link, sym.st_name)))
                                continue;
                        for (int i = 0; i < n; i++) {
                                if (offsets[i] || strcmp(name, names[i]) != 0)
                                        continue;
                                for (size_t p = 0; p < nphdr; p++) {
                                        GElf_Phdr ph;
                                        if (gelf_getphdr(elf, (int) p, &ph) && ph.p_type == PT_LOAD &&
                                            sym.st_value >= ph.p_vaddr &&
                                            sym.st_value < ph.p_vaddr + ph.p_memsz)
                                                offsets[i] = sym.st_value - ph.p_vaddr + ph.p_offset;
                                }
                        }
                }
        }
        for (int i = 0; i < n; i++)
                if (!offsets[i])
                        die("no function %s in libc's .dynsym", names[i]);
        elf_end(elf);
        close(fd);
}

static int uprobe_type(void) {
        FILE *f = fopen("/sys/bus/event_source/devices/uprobe/type", "r");
        int type = -1;

        if (!f || fscanf(f, "%d", &type) != 1)
                die("this kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe/type)");
        fclose(f);
        return type;
}

static int open_uprobe(int type, const char *path, uint64_t offset, pid_t pid) {
        struct perf_event_attr attr;
        int fd;

        memset(&attr, 0, sizeof attr);
        attr.size = sizeof attr;
        attr.type = (uint32_t) type;
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
        int fds[2], type, sig;
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

        libc = find_libc(argv[1]);
        symbol_offsets(libc, names, offsets, 2);
        type = uprobe_type();
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
