/* attach/agent-ring.c -- see agent-ring.h. */
#include <errno.h>
#include <string.h>

#include "agent-ring.h"

int agent_ring_read(const uint8_t *ring, uint64_t ring_size, uint64_t head, uint64_t *tail, uint8_t *buf,
                    size_t buf_size, AgentRecordFn fn, void *userdata) {
        int n = 0;

        if (ring_size < sizeof(AgentRecordHeader) || ring_size % 8 || head < *tail || head - *tail > ring_size ||
            *tail % 8 || head % 8) {
                *tail = head;
                return -EBADMSG;
        }
        while (*tail < head) {
                uint64_t off = *tail % ring_size;
                AgentRecordHeader h;
                memcpy(&h, ring + off, sizeof h);
                if (h.size < sizeof h || h.size % 8 || h.size > ring_size - off || h.size > head - *tail) {
                        *tail = head;
                        return -EBADMSG;
                }
                *tail += h.size;
                if (h.type == AGENT_RECORD_PAD)
                        continue;
                if (h.size > buf_size)
                        continue;       /* no agent writes one this long */
                memcpy(buf, ring + off, h.size);
                n++;
                if (fn(h.type, buf, h.size, userdata) < 0)
                        break;
        }
        return n;
}

int agent_alloc_parse(const uint8_t *record, size_t size, AgentAlloc *ret_alloc, ThreadCapture *ret) {
        AgentAlloc a;
        if (size < sizeof a)
                return -EBADMSG;
        memcpy(&a, record, sizeof a);
        if (a.stack_len > size - sizeof a)
                return -EBADMSG;
        ThreadCapture c = {
                .tid = (pid_t) a.tid,
                .stack = (uint8_t *) record + sizeof a,
                .stack_start = a.stack_start,
                .stack_len = a.stack_len,
        };
        c.regs.rip = a.regs.rip;
        c.regs.rsp = a.regs.rsp;
        c.regs.rbp = a.regs.rbp;
        c.regs.rbx = a.regs.rbx;
        c.regs.r12 = a.regs.r12;
        c.regs.r13 = a.regs.r13;
        c.regs.r14 = a.regs.r14;
        c.regs.r15 = a.regs.r15;
        *ret_alloc = a;
        *ret = c;
        return 0;
}
