/* fuzz/fuzz-unwind-frames.c -- functions that fuzz-unwind's "debug-frame" seed is captured
 * through, built without unwind tables (-fno-asynchronous-unwind-tables, see
 * fuzz/meson.build): their CFI is in .debug_frame only, so unwinding through them takes
 * the unwinder's libdw path (debug_frame_step() and its DWARF expression evaluator) over
 * real code, with the registers and stack words of the input. Not a fuzzer itself. */
/* Calls FN from DEPTH + 1 nested frames of this function. Declared in fuzz-unwind.c too. */
void fuzz_unwind_debug_frame_call(int depth, void (*fn)(void));

__attribute__((noinline)) void fuzz_unwind_debug_frame_call(int depth, void (*fn)(void)) {
        volatile char pad[48];

        pad[0] = (char) depth;
        if (depth > 0)
                fuzz_unwind_debug_frame_call(depth - 1, fn);
        else
                fn();
        __asm__ volatile("" ::: "memory");      /* no tail call: a frame per level */
        (void) pad[0];
}
