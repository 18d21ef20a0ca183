/* common/frame.c -- see frame.h. */
#include "frame.h"

const char *stack_end_to_string(StackEnd e) {
        switch (e) {
        case STACK_END_COMPLETE: return "complete";
        case STACK_END_ZERO_PC: return "zero return address";
        case STACK_END_COPY: return "end of stack copy";
        case STACK_END_DEPTH: return "depth limit";
        case STACK_END_LOOP: return "repeated frame";
        case STACK_END_NO_INFO: return "no unwind info";
        case STACK_END_ERROR: return "unwind error";
        }
        return "unknown";
}
