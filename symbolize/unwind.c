/* symbolize/unwind.c -- unwind a thread from its captured registers and stack copy, with
 * libunwind in remote mode over accessors of our own, then symbolize every frame.
 *
 * Modelled on Linux perf's tools/perf/util/unwind-libunwind-local.c (offline unwinding of
 * a stack dump through a memory-read callback); the code is our own. Nothing here touches
 * the live process: memory reads are served from the stack copy, or from the mmapped
 * module file for addresses in its read-only file-backed mappings (that is how libunwind
 * reads .eh_frame_hdr, .eh_frame and the sigreturn trampoline's instructions); every other
 * address fails. A read that lands in the thread's stack mapping but past the end of the
 * copy means the copy was too short, and the stack ends as STACK_END_COPY.
 *
 * CFI comes from .eh_frame through the .eh_frame_hdr search table, handed to libunwind as
 * a UNW_INFO_FORMAT_REMOTE_TABLE and searched by its exported but undeclared
 * dwarf_search_unwind_table(). Debian's libunwind does not export dwarf_find_debug_frame,
 * so a pc covered only by .debug_frame is stepped here with libdw's CFI, and libunwind is
 * restarted from the recovered registers. libunwind's own frame-pointer guessing (what it
 * does when it finds no CFI) is never trusted. Where neither has CFI for a pc (JIT code,
 * hand-written assembler, files without .eh_frame) the frame-pointer chain is followed
 * instead, only while it stays in the stack copy, moves up and does not return into
 * mapped memory that holds no code, and DWARF takes over again at the first pc that has CFI; frames found so are
 * marked (StackFrame.frame_pointer). Without a usable chain the stack ends as
 * STACK_END_NO_INFO.
 *
 * Signal frames: glibc's __restore_rt is recognized by its instructions, and also by
 * libunwind 1.6's unw_is_signal_frame(), which answers for the frame just stepped from
 * (its CIE had the 'S' augmentation). The trampoline's pc and the interrupted pc after it
 * are exact (looked up as is): no call instruction precedes either.
 *
 * Known limit: after a .debug_frame step libunwind restarts as if the new frame were
 * interrupted, so its own FDE lookup uses the return address itself rather than
 * address - 1; for a call that is the very last instruction of a function (noreturn
 * callee) it may pick the next function's FDE. Our symbolization still uses pc - 1.
 *
 * Hot path: one libunwind address space per AddressSpace with the global register-state
 * cache, a binary search of the regions per memory read outside the stack (with a
 * one-entry cache), no allocation per frame, one per stack. */
#include <errno.h>
#include <dwarf.h>
#include <string.h>
#include <sys/user.h>

#include "internal.h"
#include "macro.h"

/* Exported by libunwind-x86_64.so, declared only in libunwind's private dwarf.h. */
#define dwarf_search_unwind_table UNW_OBJ(dwarf_search_unwind_table)
extern int dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip, unw_dyn_info_t *di,
                                     unw_proc_info_t *pi, int need_unwind_info, void *arg);

#define N_REGS 17               /* UNW_X86_64_RAX .. UNW_X86_64_RIP, = DWARF numbering */
#define UNWIND_CACHE_SIZE 4096  /* libunwind register-state cache entries per process */

typedef struct UnwindCtx {
        AddressSpace *as;
        const ThreadCapture *t;
        uint64_t regs[N_REGS];          /* what access_reg serves (capture, or restart) */
        uint64_t stack_end;             /* t->stack_start + t->stack_len */
        uint64_t stack_map_end;         /* end of the mapping holding the stack; 0 unknown */
        const Region *last;             /* last region a memory read hit */
        unw_cursor_t *cursor;

        /* Per step: */
        bool copy_short;                /* a read needed bytes past the copy */
        bool no_info;                   /* find_proc_info found no CFI */
        bool no_info_regs_valid;

        /* Slots below the captured stack pointer that the leaf's epilogue already popped
         * (see note_popped_slots), with the values their registers hold again. */
        size_t n_popped;
        uint64_t popped_addr[N_REGS], popped_value[N_REGS];
        uint64_t no_info_regs[N_REGS];  /* registers of the frame that had no CFI */
} UnwindCtx;

static void regs_from_user(const struct user_regs_struct *u, uint64_t r[N_REGS]) {
        r[UNW_X86_64_RAX] = u->rax;
        r[UNW_X86_64_RDX] = u->rdx;
        r[UNW_X86_64_RCX] = u->rcx;
        r[UNW_X86_64_RBX] = u->rbx;
        r[UNW_X86_64_RSI] = u->rsi;
        r[UNW_X86_64_RDI] = u->rdi;
        r[UNW_X86_64_RBP] = u->rbp;
        r[UNW_X86_64_RSP] = u->rsp;
        r[UNW_X86_64_R8] = u->r8;
        r[UNW_X86_64_R9] = u->r9;
        r[UNW_X86_64_R10] = u->r10;
        r[UNW_X86_64_R11] = u->r11;
        r[UNW_X86_64_R12] = u->r12;
        r[UNW_X86_64_R13] = u->r13;
        r[UNW_X86_64_R14] = u->r14;
        r[UNW_X86_64_R15] = u->r15;
        r[UNW_X86_64_RIP] = u->rip;
}

static const Region *ctx_region(UnwindCtx *ctx, uint64_t addr) {
        const Region *r = ctx->last;
        if (r && addr >= r->start && addr < r->end)
                return r;
        r = address_space_find_region(ctx->as, addr);
        if (r)
                ctx->last = r;
        return r;
}

/* Reads 8 bytes at ADDR the way the target would see them, from what we have. */
static bool ctx_read(UnwindCtx *ctx, uint64_t addr, uint64_t *ret) {
        const ThreadCapture *t = ctx->t;

        if (addr < t->stack_start)
                for (size_t i = 0; i < ctx->n_popped; i++)
                        if (ctx->popped_addr[i] == addr) {
                                *ret = ctx->popped_value[i];
                                return true;
                        }

        if (addr >= t->stack_start && addr < ctx->stack_end &&
            ctx->stack_end - addr >= sizeof *ret) {
                memcpy(ret, t->stack + (addr - t->stack_start), sizeof *ret);
                return true;
        }

        const Region *r = ctx_region(ctx, addr);
        if (r && r->readable && r->module->kind == MODULE_ELF && addr + sizeof *ret <= r->end) {
                /* Writable module data too: libunwind dereferences every CIE's
                 * DW_EH_PE_indirect personality pointer (C++: DW.ref.__gxx_personality_v0
                 * in .data) and fails the whole frame when it cannot. A stack walk never
                 * calls that routine and no CFA or register rule of real code reads module
                 * data, so the value does not matter: the file's bytes, or zero where
                 * ld.so rewrote them (RELRO). */
                if (module_read_file(r->module, addr - r->start + r->offset, addr - r->bias,
                                     ret, sizeof *ret))
                        return true;
                if (r->writable) {
                        *ret = 0;
                        return true;
                }
        }

        /* Past the end of the copy, in the stack mapping (or, when the maps do not tell,
         * within what a longer copy could have held): the copy was too short. */
        if (addr >= t->stack_start && addr + sizeof *ret > ctx->stack_end) {
                uint64_t limit = ctx->stack_map_end ? ctx->stack_map_end :
                        t->stack_truncated ? ctx->stack_end + SNAPSHOT_STACK_MAX_LIMIT : 0;
                if (addr < limit)
                        ctx->copy_short = true;
        }
        return false;
}

static int access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *valp, int write, void *arg) {
        UnwindCtx *ctx = arg;
        uint64_t v;

        if (write)
                return -UNW_EREADONLYREG;
        if (!ctx_read(ctx, addr, &v))
                return -UNW_EINVAL;
        *valp = v;
        return 0;
}

static int access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *valp, int write, void *arg) {
        UnwindCtx *ctx = arg;

        if (write)
                return -UNW_EREADONLYREG;
        if (reg < 0 || reg >= N_REGS)
                return -UNW_EBADREG;
        *valp = ctx->regs[reg];
        return 0;
}

static int access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *valp, int write, void *arg) {
        return -UNW_EINVAL;
}

static int resume(unw_addr_space_t as, unw_cursor_t *cursor, void *arg) {
        return -UNW_EINVAL;
}

static int get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf, size_t len,
                         unw_word_t *offp, void *arg) {
        return -UNW_ENOINFO;            /* we symbolize ourselves */
}

static int get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *dilap, void *arg) {
        return -UNW_ENOINFO;
}

/* libunwind frees what dwarf_search_unwind_table() allocated (pi->unwind_info, from its
 * own memory pool) itself, in its internal put_unwind_info(), for every non-dynamic
 * procedure; this accessor is only reached for dynamically registered (local) code. perf
 * leaves it empty for the same reason; freeing here would be a double free. */
static void put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg) {
}

/* A leaf caught in its epilogue, between `pop`s and `ret`: GCC's CFI still places the
 * popped registers at CFA-16, CFA-24... until the `ret`, i.e. below the stack pointer, in
 * a frame already torn down; the registers hold those values again. A perf sample's stack
 * copy starts at the stack pointer and lacks the slots, so libunwind could not restore
 * them for the caller. After the first step, every callee-saved register libunwind would
 * read from such a slot gets the value captured in the register. */
static void note_popped_slots(UnwindCtx *ctx) {
        static const int callee_saved[] = {
                UNW_X86_64_RBX, UNW_X86_64_RBP, UNW_X86_64_R12, UNW_X86_64_R13,
                UNW_X86_64_R14, UNW_X86_64_R15,
        };
        uint64_t captured[N_REGS], sp = ctx->t->regs.rsp;

        if (ctx->t->stack_start + SNAPSHOT_RED_ZONE <= sp)
                return;                 /* the copy holds the red zone (ptrace snapshots) */
        regs_from_user(&ctx->t->regs, captured);
        for (size_t i = 0; i < ARRAY_SIZE(callee_saved); i++) {
                unw_save_loc_t loc;
                int reg = callee_saved[i];
                if (unw_get_save_loc(ctx->cursor, reg, &loc) < 0 || loc.type != UNW_SLT_MEMORY ||
                    loc.u.addr >= sp || sp - loc.u.addr > SNAPSHOT_RED_ZONE ||
                    loc.u.addr >= ctx->t->stack_start)
                        continue;
                ctx->popped_addr[ctx->n_popped] = loc.u.addr;
                ctx->popped_value[ctx->n_popped++] = captured[reg];
        }
}

static void save_no_info_regs(UnwindCtx *ctx) {
        ctx->no_info_regs_valid = true;
        for (int i = 0; i < N_REGS; i++) {
                unw_word_t v;
                if (unw_get_reg(ctx->cursor, i, &v) < 0) {
                        ctx->no_info_regs_valid = false;
                        return;
                }
                ctx->no_info_regs[i] = v;
        }
}

static int no_info(UnwindCtx *ctx) {
        /* The cursor still describes the frame being stepped from: keep its registers
         * for the .debug_frame step. */
        if (!ctx->no_info)
                save_no_info_regs(ctx);
        ctx->no_info = true;
        return -UNW_ENOINFO;
}

static int find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
                          int need_unwind_info, void *arg) {
        UnwindCtx *ctx = arg;
        const Region *r = ctx_region(ctx, ip);
        int ret;

        if (!r || r->module->kind != MODULE_ELF || !r->module->has_eh_table)
                return no_info(ctx);

        const Module *m = r->module;
        unw_dyn_info_t di = {
                .format = UNW_INFO_FORMAT_REMOTE_TABLE,
                .start_ip = m->text_start + r->bias,
                .end_ip = m->text_end + r->bias,
                .u.rti = {
                        .segbase = m->eh_hdr_vaddr + r->bias,
                        .table_data = m->eh_table_vaddr + r->bias,
                        .table_len = m->eh_fde_count * 8 / sizeof(unw_word_t),
                },
        };
        /* libunwind asserts this. */
        if (ip < di.start_ip || ip >= di.end_ip)
                return no_info(ctx);

        ret = dwarf_search_unwind_table(as, ip, &di, pi, need_unwind_info, arg);
        if (ret == -UNW_ENOINFO)
                return no_info(ctx);
        return ret;
}

static unw_accessors_t accessors = {
        .find_proc_info = find_proc_info,
        .put_unwind_info = put_unwind_info,
        .get_dyn_info_list_addr = get_dyn_info_list_addr,
        .access_mem = access_mem,
        .access_reg = access_reg,
        .access_fpreg = access_fpreg,
        .resume = resume,
        .get_proc_name = get_proc_name,
};

int unwind_addr_space_new(unw_addr_space_t *ret) {
        unw_addr_space_t a = unw_create_addr_space(&accessors, 0);
        if (!a)
                return -ENOMEM;
        (void) unw_set_caching_policy(a, UNW_CACHE_GLOBAL);
        (void) unw_set_cache_size(a, UNWIND_CACHE_SIZE, 0);
        *ret = a;
        return 0;
}

/* ---- .debug_frame: one step with libdw's CFI ---- */

typedef struct ExprState {
        UnwindCtx *ctx;
        const uint64_t *regs;
        uint64_t cfa;
        bool have_cfa;
} ExprState;

/* Evaluates a DWARF CFI expression. *RET_IS_VALUE: the result is the value itself
 * (DW_OP_stack_value or a register name), else it is the address holding the value. */
static bool eval_ops(ExprState *st, const Dwarf_Op *ops, size_t n_ops, uint64_t *ret,
                     bool *ret_is_value) {
        uint64_t stack[16];
        size_t sp = 0;
        bool is_value = false;

#define PUSH(v) do { if (sp >= ARRAY_SIZE(stack)) return false; stack[sp++] = (v); } while (0)
#define POP(v) do { if (sp == 0) return false; (v) = stack[--sp]; } while (0)

        for (size_t i = 0; i < n_ops && i < 64; i++) {
                const Dwarf_Op *op = &ops[i];
                uint64_t a, b;
                uint8_t atom = op->atom;

                if (atom >= DW_OP_lit0 && atom <= DW_OP_lit31) {
                        PUSH(atom - DW_OP_lit0);
                        continue;
                }
                if (atom >= DW_OP_breg0 && atom <= DW_OP_breg31) {
                        unsigned reg = atom - DW_OP_breg0;
                        if (reg >= N_REGS)
                                return false;
                        PUSH(st->regs[reg] + op->number);
                        continue;
                }
                if (atom >= DW_OP_reg0 && atom <= DW_OP_reg31) {
                        unsigned reg = atom - DW_OP_reg0;
                        if (reg >= N_REGS || sp != 0)
                                return false;
                        *ret = st->regs[reg];
                        *ret_is_value = true;
                        return true;
                }
                switch (atom) {
                case DW_OP_const1u: case DW_OP_const1s: case DW_OP_const2u: case DW_OP_const2s:
                case DW_OP_const4u: case DW_OP_const4s: case DW_OP_const8u: case DW_OP_const8s:
                case DW_OP_constu: case DW_OP_consts:
                        PUSH(op->number);
                        break;
                case DW_OP_bregx:
                        if (op->number >= N_REGS)
                                return false;
                        PUSH(st->regs[op->number] + op->number2);
                        break;
                case DW_OP_regx:
                        if (op->number >= N_REGS || sp != 0)
                                return false;
                        *ret = st->regs[op->number];
                        *ret_is_value = true;
                        return true;
                case DW_OP_call_frame_cfa:
                        if (!st->have_cfa)
                                return false;
                        PUSH(st->cfa);
                        break;
                case DW_OP_plus_uconst:
                        POP(a);
                        PUSH(a + op->number);
                        break;
                case DW_OP_plus:
                        POP(b);
                        POP(a);
                        PUSH(a + b);
                        break;
                case DW_OP_minus:
                        POP(b);
                        POP(a);
                        PUSH(a - b);
                        break;
                case DW_OP_and:
                        POP(b);
                        POP(a);
                        PUSH(a & b);
                        break;
                case DW_OP_dup:
                        POP(a);
                        PUSH(a);
                        PUSH(a);
                        break;
                case DW_OP_drop:
                        POP(a);
                        break;
                case DW_OP_deref:
                        POP(a);
                        if (!ctx_read(st->ctx, a, &b))
                                return false;
                        PUSH(b);
                        break;
                case DW_OP_stack_value:
                        is_value = true;
                        break;
                case DW_OP_nop:
                        break;
                default:
                        return false;
                }
        }
#undef PUSH
#undef POP
        if (sp == 0)
                return false;
        *ret = stack[sp - 1];
        *ret_is_value = is_value;
        return true;
}

/* One step with .debug_frame from the registers of the current frame (IN, whose pc is
 * looked up as LOOKUP_PC) to its caller (OUT). 1 stepped, 0 outermost frame (return
 * address undefined), negative errno when there is no such CFI or it cannot be used. */
static int debug_frame_step(UnwindCtx *ctx, uint64_t lookup_pc, const uint64_t in[N_REGS],
                            uint64_t out[N_REGS]) {
        static const int callee_saved[] = {
                UNW_X86_64_RBX, UNW_X86_64_RBP, UNW_X86_64_R12, UNW_X86_64_R13,
                UNW_X86_64_R14, UNW_X86_64_R15,
        };
        const Region *r = ctx_region(ctx, lookup_pc);
        Dwarf_Frame *frame = NULL;
        Dwarf_Addr cfi_bias;
        Dwarf_Op ops_mem[3], *ops;
        size_t n_ops;
        bool is_value;
        int ret = -ENOENT;

        if (!r || r->module->kind != MODULE_ELF)
                return -ENOENT;
        Dwarf_CFI *cfi = module_debug_cfi(r->module, &cfi_bias);
        if (!cfi)
                return -ENOENT;
        if (dwarf_cfi_addrframe(cfi, lookup_pc - r->bias - cfi_bias, &frame) != 0)
                return -ENOENT;

        ExprState st = { .ctx = ctx, .regs = in };
        if (dwarf_frame_cfa(frame, &ops, &n_ops) != 0 || n_ops == 0 ||
            !eval_ops(&st, ops, n_ops, &st.cfa, &is_value))
                goto finish;
        st.have_cfa = true;

        memcpy(out, in, N_REGS * sizeof *out);
        out[UNW_X86_64_RSP] = st.cfa;   /* x86-64: the caller's SP is the CFA */

        int ra = dwarf_frame_info(frame, NULL, NULL, NULL);
        if (ra < 0 || ra >= N_REGS)
                goto finish;

        for (size_t i = 0; i <= ARRAY_SIZE(callee_saved); i++) {
                int reg = i < ARRAY_SIZE(callee_saved) ? callee_saved[i] : ra;
                uint64_t v;

                if (dwarf_frame_register(frame, reg, ops_mem, &ops, &n_ops) != 0)
                        goto finish;
                if (n_ops == 0) {
                        if (ops == ops_mem && reg == ra) {
                                ret = 0;        /* undefined return address: outermost */
                                goto finish;
                        }
                        continue;               /* same value, or undefined (unknowable) */
                }
                if (!eval_ops(&st, ops, n_ops, &v, &is_value))
                        goto finish;
                if (!is_value && !ctx_read(ctx, v, &v))
                        goto finish;
                out[reg == ra ? UNW_X86_64_RIP : reg] = v;
        }
        ret = 1;
finish:
        free(frame);
        return ret;
}

/* ---- frame pointers, where no CFI covers a pc ---- */

/* One step by the frame-pointer convention (push %rbp; mov %rsp,%rbp): the caller's pc is
 * at rbp + 8, its rbp at rbp, its sp is rbp + 16. Only the registers that convention
 * saves are recovered; callee-saved ones keep their values, as a function that keeps a
 * frame pointer but no CFI cannot tell us more. false when the chain leaves the stack
 * copy, does not move up, or returns into mapped memory that holds no code. */
static bool frame_pointer_step(UnwindCtx *ctx, const uint64_t in[N_REGS], uint64_t out[N_REGS]) {
        const ThreadCapture *t = ctx->t;
        uint64_t fp = in[UNW_X86_64_RBP], saved_fp, ret;

        if (fp % 8 != 0 || fp < in[UNW_X86_64_RSP] || fp < t->stack_start ||
            fp > ctx->stack_end || ctx->stack_end - fp < 16)
                return false;
        if (!ctx_read(ctx, fp, &saved_fp) || !ctx_read(ctx, fp + 8, &ret))
                return false;
        /* A return address in no known mapping may be code a JIT mapped after the maps were
         * read: accepted; one into known memory that holds no code is not. */
        const Region *r = ctx_region(ctx, ret);
        if ((r && !r->executable) || ret < 4096)
                return false;
        memcpy(out, in, N_REGS * sizeof *out);
        out[UNW_X86_64_RSP] = fp + 16;
        out[UNW_X86_64_RBP] = saved_fp;
        out[UNW_X86_64_RIP] = ret;
        return true;
}

/* ---- symbolization and tail calls ---- */

/* The tail-call frames between FRAMES[I] (the callee) and FRAMES[I + 1] (its caller, at
 * a return address), or NULL. See symbols_tail_chain(). */
static const TailChain *tail_chain_between(AddressSpace *as, const StackFrame *frames, size_t i,
                                           const Region **ret_callee, const Region **ret_caller) {
        const StackFrame *callee = &frames[i], *caller = &frames[i + 1];

        if (caller->exact || callee->signal_frame || caller->pc == 0 || callee->loc->n_frames == 0)
                return NULL;
        const Region *re = address_space_find_region(as, stack_frame_lookup_pc(callee));
        const Region *rc = address_space_find_region(as, caller->pc - 1);
        if (!re || !rc)
                return NULL;
        *ret_callee = re;
        *ret_caller = rc;
        return symbols_tail_chain(rc->module, caller->pc - rc->bias, re->module,
                                  callee->loc->frames[callee->loc->n_frames - 1].entry);
}

/* Symbolizes FRAMES[0..N) into *RET, with tail-call frames inserted where the DWARF call
 * sites show them (see symbols.c). */
static int stack_build(AddressSpace *as, StackFrame *frames, size_t n, StackEnd end, Stack *ret) {
        const Region *re, *rc;
        size_t total = n;

        for (size_t i = 0; i < n; i++)
                frames[i].loc = address_space_resolve(as, stack_frame_lookup_pc(&frames[i]));
        for (size_t i = 0; i + 1 < n; i++) {
                const TailChain *c = tail_chain_between(as, frames, i, &re, &rc);
                if (c)
                        total += c->n;
        }

        StackFrame *out = malloc(MAX(total, (size_t) 1) * sizeof *out);
        if (!out)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                out[k++] = frames[i];
                const TailChain *c = i + 1 < n ? tail_chain_between(as, frames, i, &re, &rc) : NULL;
                for (size_t j = 0; c && j < c->n && k < total; j++) {
                        const TailFrame *tf = &c->frames[j];
                        StackFrame *f = &out[k++];
                        /* Like gdb's tailcall frames: the pc is the return address of the
                         * tail call site (the jump), looked up as pc - 1. */
                        *f = (StackFrame) {
                                .pc = tf->ret_pc + (tf->module == re->module ? re->bias : rc->bias),
                                .tail_call = true,
                        };
                        f->loc = address_space_resolve(as, stack_frame_lookup_pc(f));
                }
        }
        *ret = (Stack) { .frames = out, .n = k, .end = end };
        return 0;
}

/* ---- the unwind loop ---- */

/* The rt_sigreturn trampoline the kernel returns a signal handler into: glibc's
 * __restore_rt is "mov $15, %rax; syscall" (48 c7 c0 0f 00 00 00 0f 05), musl's
 * "mov $15, %eax; syscall" (b8 0f 00 00 00 0f 05). Read from the module file. */
static bool is_sigreturn_trampoline(UnwindCtx *ctx, uint64_t pc) {
        uint64_t w0, w1;

        if (!ctx_read(ctx, pc, &w0))
                return false;
        if ((w0 & UINT64_C(0x00ffffffffffffff)) == UINT64_C(0x00050f0000000fb8))
                return true;
        return w0 == UINT64_C(0x0f0000000fc0c748) && ctx_read(ctx, pc + 8, &w1) &&
                (w1 & 0xff) == 0x05;
}

static bool seen_before(const StackFrame *frames, const uint64_t *sps, size_t n,
                        uint64_t pc, uint64_t sp) {
        for (size_t i = n; i-- > 0;)
                if (frames[i].pc == pc && sps[i] == sp)
                        return true;
        return false;
}

int address_space_unwind(AddressSpace *as, const ThreadCapture *t, Stack *ret) {
        StackFrame *frames = as->scratch;
        uint64_t *sps = as->scratch_sp;
        unw_cursor_t cursor;
        StackEnd end = STACK_END_ERROR;
        bool next_exact = true, next_frame_pointer = false;
        size_t n = 0;
        int r;

        if (!t || t->error != 0)
                return -EINVAL;

        UnwindCtx ctx = {
                .as = as,
                .t = t,
                .stack_end = t->stack_start + (t->stack ? t->stack_len : 0),
                .cursor = &cursor,
        };
        regs_from_user(&t->regs, ctx.regs);
        const Region *stack_region = address_space_find_region(as, t->regs.rsp);
        if (stack_region && stack_region->module->kind == MODULE_PSEUDO)
                ctx.stack_map_end = stack_region->end;

        r = unw_init_remote(&cursor, as->unw, &ctx);
        if (r < 0) {
                frames[n++] = (StackFrame) { .pc = t->regs.rip, .exact = true };
                sps[0] = t->regs.rsp;
                goto done;
        }

        for (;;) {
                unw_word_t pc, sp;

                if (unw_get_reg(&cursor, UNW_REG_IP, &pc) < 0 ||
                    unw_get_reg(&cursor, UNW_REG_SP, &sp) < 0) {
                        end = ctx.copy_short ? STACK_END_COPY : STACK_END_ERROR;
                        break;
                }
                if (n > 0 && pc == 0) {
                        end = STACK_END_ZERO_PC;
                        break;
                }
                if (seen_before(frames, sps, n, pc, sp)) {
                        end = STACK_END_LOOP;
                        break;
                }
                if (n >= UNWIND_MAX_DEPTH) {
                        end = STACK_END_DEPTH;
                        break;
                }

                /* The sigreturn trampoline's address was not pushed by a call: it is looked
                 * up as is, and so is the interrupted pc of the frame after it. */
                bool sig = is_sigreturn_trampoline(&ctx, pc);
                frames[n] = (StackFrame) { .pc = pc, .exact = next_exact || sig, .signal_frame = sig,
                                           .frame_pointer = next_frame_pointer };
                sps[n] = sp;
                n++;

                if (pc == 0) {
                        end = STACK_END_ZERO_PC;
                        break;
                }

                ctx.copy_short = ctx.no_info = ctx.no_info_regs_valid = false;
                r = unw_step(&cursor);
                if (n == 1 && r > 0)
                        note_popped_slots(&ctx);

                /* libunwind 1.6's unw_is_signal_frame() answers for the frame just stepped
                 * *from* (it reports the sigcontext format found while stepping through a
                 * CIE with the 'S' augmentation, reset at the next unw_step), so it is asked
                 * after the step; that also covers trampolines we do not know by their
                 * instructions. */
                if (r > 0 && !sig && unw_is_signal_frame(&cursor) > 0) {
                        sig = true;
                        frames[n - 1].signal_frame = true;
                        frames[n - 1].exact = true;
                }
                next_exact = sig;
                next_frame_pointer = false;

                if (ctx.no_info && !(sig && r > 0)) {
                        /* No .eh_frame for this pc: .debug_frame, else the frame pointer,
                         * else the end. libunwind's own frame-pointer guess in r is
                         * ignored: it accepts any chain. */
                        uint64_t regs[N_REGS];
                        if (!ctx.no_info_regs_valid) {
                                end = ctx.copy_short ? STACK_END_COPY : STACK_END_NO_INFO;
                                break;
                        }
                        ctx.copy_short = false;
                        r = debug_frame_step(&ctx, stack_frame_lookup_pc(&frames[n - 1]),
                                             ctx.no_info_regs, regs);
                        if (r < 0 && frame_pointer_step(&ctx, ctx.no_info_regs, regs)) {
                                r = 1;
                                next_frame_pointer = true;
                        }
                        if (r == 0) {
                                end = STACK_END_COMPLETE;
                                break;
                        }
                        if (r < 0) {
                                end = ctx.copy_short ? STACK_END_COPY : STACK_END_NO_INFO;
                                break;
                        }
                        memcpy(ctx.regs, regs, sizeof regs);
                        if (unw_init_remote(&cursor, as->unw, &ctx) < 0) {
                                end = STACK_END_ERROR;
                                break;
                        }
                        continue;
                }
                if (r > 0)
                        continue;
                if (r == 0) {
                        end = STACK_END_COMPLETE;
                        break;
                }
                end = ctx.copy_short ? STACK_END_COPY : STACK_END_ERROR;
                break;
        }

done:
        return stack_build(as, frames, n, end, ret);
}
