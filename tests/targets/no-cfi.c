/* tests/targets/no-cfi.c -- code without CFI that keeps frame pointers, as JIT compilers
 * and hand-written assembler leave it: the unwinder must cross it by the frame-pointer
 * chain and return to DWARF at the next function that has CFI.
 *
 *   t-asm: asm_thread_main -> nocfi_call (assembler in .text, no FDE) -> asm_blocker -> read
 *   t-jit: jit_thread_main -> code copied into an anonymous executable mapping (a JIT's
 *          shape: no file, no CFI) -> jit_blocker -> read
 *
 * Both trampolines are `push %rbp; mov %rsp,%rbp; call *%rdi; pop %rbp; ret`. The C code is
 * built without frame pointers like the other targets. `ready PID` is printed once both
 * threads sleep in read(); with --perf-map the JIT code is also named in /tmp/perf-PID.map,
 * as V8's --perf-basic-prof does. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "target-args.h"
#include "target-task.h"

#define _noinline_ __attribute__((noinline, noipa))

/* No .cfi_* directives: no FDE covers it. */
__asm__(".text\n"
        ".globl nocfi_call\n"
        ".type nocfi_call, @function\n"
        "nocfi_call:\n"
        "        push %rbp\n"
        "        mov %rsp, %rbp\n"
        "        call *%rdi\n"
        "        pop %rbp\n"
        "        ret\n"
        ".size nocfi_call, .-nocfi_call\n");
void nocfi_call(void (*fn)(void));

static const unsigned char trampoline_code[] = {
        0x55,                   /* push %rbp */
        0x48, 0x89, 0xe5,       /* mov %rsp, %rbp */
        0xff, 0xd7,             /* call *%rdi */
        0x5d,                   /* pop %rbp */
        0xc3,                   /* ret */
};

static volatile int side_effect;
static int never_written[2];
static atomic_int n_blocked;
static atomic_int a_tid, j_tid;

static _noinline_ void block_in_read(void) {
        char c;
        atomic_fetch_add(&n_blocked, 1);
        side_effect += (int) read(never_written[0], &c, 1);
}

static _noinline_ void asm_blocker(void) {
        block_in_read();
        side_effect++;
}

static _noinline_ void jit_blocker(void) {
        block_in_read();
        side_effect++;
}

static _noinline_ void *asm_thread_main(void *arg) {
        atomic_store(&a_tid, gettid());
        nocfi_call(asm_blocker);
        side_effect++;
        return NULL;
}

static _noinline_ void *jit_thread_main(void *jit) {
        atomic_store(&j_tid, gettid());
        ((void (*)(void (*)(void))) jit)(jit_blocker);
        side_effect++;
        return NULL;
}

int main(int argc, char *argv[]) {
        bool perf_map = argc > 1 && strcmp(argv[1], "--perf-map") == 0;
        long exit_after_ms;
        int r = target_parse_args(argc - perf_map, argv + perf_map, "cprofd-test-no-cfi", &exit_after_ms);
        if (r >= 0)
                return r;
        if (pipe(never_written) < 0)
                return 1;

        void *jit = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (jit == MAP_FAILED)
                return 1;
        memcpy(jit, trampoline_code, sizeof trampoline_code);
        if (mprotect(jit, 4096, PROT_READ | PROT_EXEC) < 0)
                return 1;
        if (perf_map) {
                char path[64];
                snprintf(path, sizeof path, "/tmp/perf-%d.map", (int) getpid());
                FILE *f = fopen(path, "we");
                if (!f)
                        return 1;
                fprintf(f, "%lx %zx JS:*jitTrampoline hot.js:1:1\n", (unsigned long) jit,
                        sizeof trampoline_code);
                fclose(f);
        }

        pthread_t a, j;
        if (pthread_create(&a, NULL, asm_thread_main, NULL) != 0 ||
            pthread_create(&j, NULL, jit_thread_main, jit) != 0)
                return 1;
        pthread_setname_np(a, "t-asm");
        pthread_setname_np(j, "t-jit");

        /* Both blocked: their counts are in and /proc shows both asleep. */
        while (atomic_load(&n_blocked) < 2 || target_thread_state(a_tid) != 'S' ||
               target_thread_state(j_tid) != 'S')
                usleep(2000);
        printf("ready %d\n", (int) getpid());
        fflush(stdout);
        if (exit_after_ms > 0) {
                usleep((useconds_t) exit_after_ms * 1000);
                return 0;
        }
        for (;;)
                pause();
}
