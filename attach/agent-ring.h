/* attach/agent-ring.h -- reading the heap agent's ring (agent/agent-protocol.h) from the
 * daemon's side. The ring lives in memory the target can write at any moment: every
 * record is copied out before it is looked at, and every size is checked against the ring,
 * the head and the copy. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "agent-protocol.h"
#include "snapshot.h"

/* Called per record with a private copy of it (SIZE bytes, 8-aligned, ≥ a header). A
 * negative return stops the reading (the record counts as consumed). */
typedef int (*AgentRecordFn)(uint32_t type, const uint8_t *record, size_t size, void *userdata);

/* Hands the records of RING (RING_SIZE bytes) between *TAIL and HEAD to FN, copying each
 * into BUF (BUF_SIZE bytes; a longer record is skipped as malformed), and advances *TAIL.
 * Returns the records handed out, or -EBADMSG when the head or a record did not add up:
 * then *TAIL is set to HEAD, so the next read starts afresh. */
int agent_ring_read(const uint8_t *ring, uint64_t ring_size, uint64_t head, uint64_t *tail, uint8_t *buf,
                    size_t buf_size, AgentRecordFn fn, void *userdata);

/* An ALLOC record as a capture for the unwinder: RET->stack points into RECORD. 0, or
 * -EBADMSG when its sizes do not add up. */
int agent_alloc_parse(const uint8_t *record, size_t size, AgentAlloc *ret_alloc, ThreadCapture *ret);
