/* common/frame.h -- the vocabulary shared by the symbolizer (which produces it) and the
 * profile encoders (which print it): symbolized locations and unwound stacks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* One function at one pc. A physical pc yields one Frame per inline level. */
typedef struct Frame {
        const char *function;           /* demangled; NULL when unknown */
        const char *system_name;        /* mangled/linkage name when it differs, else NULL */
        const char *file;               /* NULL when unknown */
        uint32_t line;                  /* 0 when unknown */
        uint64_t entry;                 /* module-relative entry of the *physical* function
                                           (inlined frames share it, as Go prints them) */
        bool inlined;                   /* exists only in DWARF's inline tree */
} Frame;

/* A resolved physical pc: immutable once made; owned by the symbolizer's caches and alive
 * as long as the symbolizer. Lookups are keyed by (module, module_offset), so one SymLoc
 * serves every process that maps the same module. */
typedef struct SymLoc {
        const char *module;             /* path as the target maps it, "[vdso]", or NULL when
                                           the pc is in no mapping */
        const char *build_id;           /* lowercase hex of NT_GNU_BUILD_ID, or NULL */
        uint64_t module_offset;         /* lookup pc as a module-relative (ELF virtual)
                                           address: what `addr2line -e module` takes */
        size_t n_frames;                /* 0 when nothing is known: shown as module+0xoff */
        Frame frames[];                 /* innermost first; the last is the physical function */
} SymLoc;

#define STACK_FRAME_HAS_TAIL_CALL 1

typedef struct StackFrame {
        uint64_t pc;                    /* as unwound: the interrupted pc for the leaf and for
                                           a frame interrupted by a signal, else a return
                                           address */
        bool exact;                     /* pc is an interrupted pc, not a return address */
        bool signal_frame;              /* this frame is a signal trampoline (__restore_rt) */
        bool tail_call;                 /* rebuilt from DWARF call sites: a function that
                                           tail-called its callee and left no frame (gdb's
                                           "tailcall frames"); pc is the call site's */
        bool frame_pointer;             /* found through the frame-pointer chain: the frame
                                           below it had no CFI (JIT code, assembler) */
        const SymLoc *loc;              /* never NULL after symbolization */
} StackFrame;

/* Why an unwind stopped. Only STACK_END_COMPLETE is a whole stack; every other end is
 * shown as a final "[truncated]" frame. */
typedef enum StackEnd {
        STACK_END_COMPLETE,             /* outermost frame reached (CFI says no caller) */
        STACK_END_ZERO_PC,              /* a zero return address: conventional end */
        STACK_END_COPY,                 /* needed memory beyond the stack copy */
        STACK_END_DEPTH,                /* hit the depth cap */
        STACK_END_LOOP,                 /* repeated (pc, sp) */
        STACK_END_NO_INFO,              /* no unwind info for a pc */
        STACK_END_ERROR,                /* the unwinder failed otherwise */
} StackEnd;

typedef struct Stack {
        StackFrame *frames;             /* leaf first; malloc'ed */
        size_t n;
        StackEnd end;
} Stack;

/* Drops the K leaf-most frames (a profiler's own, an allocator's entry), keeping at least
 * the outermost one. */
static inline void stack_drop_leaf_frames(Stack *s, size_t k) {
        if (k == 0 || k >= s->n)
                return;
        memmove(s->frames, s->frames + k, (s->n - k) * sizeof *s->frames);
        s->n -= k;
}

static inline bool stack_is_truncated(const Stack *s) {
        return s->end != STACK_END_COMPLETE && s->end != STACK_END_ZERO_PC;
}

/* The pc used for lookups: return addresses point past the call, so pc − 1. */
static inline uint64_t stack_frame_lookup_pc(const StackFrame *f) {
        return f->exact || f->pc == 0 ? f->pc : f->pc - 1;
}

const char *stack_end_to_string(StackEnd e);
