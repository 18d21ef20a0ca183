/* fuzz/fuzz-agent-ring.c -- libFuzzer target: reading the heap agent's ring, which lives in
 * memory the target can write (attach/agent-ring.c: agent_ring_read, agent_alloc_parse).
 *
 * Input: u64 tail, u64 head offset, then the ring's bytes (its size: the rest, rounded
 * down to a multiple of 8, at least one header). head = tail + the offset (so heads behind
 * the tail, or more than a ring ahead, happen too). Every record handed out must be a
 * private copy of the bytes at its place in the ring, 8-aligned in size and inside the
 * ring, the tail must end at the head or have been reset to it, and an ALLOC record that
 * parses must have its stack inside the record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent-ring.h"
#include "macro.h"

typedef struct Context {
        const uint8_t *ring;
        uint64_t ring_size;
        uint64_t tail;                  /* where the next record should be */
} Context;

static int on_record(uint32_t type, const uint8_t *record, size_t size, void *userdata) {
        Context *ctx = userdata;
        if (size < sizeof(AgentRecordHeader) || size % 8)
                abort();
        AgentAlloc a;
        ThreadCapture c;
        if (type == AGENT_RECORD_ALLOC && agent_alloc_parse(record, size, &a, &c) == 0) {
                const uint8_t *end = record + size;
                if (c.stack < record + sizeof a || c.stack + c.stack_len > end || c.regs.rsp != a.regs.rsp)
                        abort();
                volatile uint8_t sink = 0;
                for (size_t i = 0; i < c.stack_len; i++)
                        sink ^= c.stack[i];
                (void) sink;
        }
        return type == 0xdead ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint64_t tail, offset;
        if (size < 16 + sizeof(AgentRecordHeader))
                return 0;
        memcpy(&tail, data, 8);
        memcpy(&offset, data + 8, 8);
        size_t ring_size = (size - 16) & ~(size_t) 7;
        uint8_t *ring = malloc(ring_size);
        static uint8_t buf[sizeof(AgentAlloc) + AGENT_STACK_COPY_MAX];
        if (!ring)
                return 0;
        memcpy(ring, data + 16, ring_size);
        uint64_t head = tail + offset;
        Context ctx = { .ring = ring, .ring_size = ring_size, .tail = tail };
        int n = agent_ring_read(ring, ring_size, head, &tail, buf, sizeof buf, on_record, &ctx);
        if (n >= 0 && tail > head)
                abort();
        if (n < 0 && tail != head)
                abort();
        free(ring);
        return 0;
}
