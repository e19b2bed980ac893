/*
 * pipeline: our requests to one peer that it has not answered yet, and how fast it answers
 * them. It owns the outstanding blocks (oldest first), the time the peer last answered (the
 * request timer), the bytes received, the measured download rate and the request queue depth
 * that follows from that rate. Pure: the peer (its one caller) passes in `now` and the blocks
 * and byte counts it sends and receives; nothing here touches a socket or a clock.
 *
 * Bound: the owner keeps at most the target outstanding (bt_pipeline_target, never more than
 * BT_PIPELINE_MAX_TARGET), plus the one block it may put back while taking them all; a list is
 * never longer than BT_PIPELINE_MAX, so a lookup is a linear scan of at most that many blocks.
 *
 * With the Fast extension (BEP 6) a cancelled request is still answered, by its PIECE or a
 * REJECT, and an answer to anything else is a protocol error; so the peer moves a request it
 * cancels to a short list of cancelled ones (bt_pipeline_cancel_at), which an answer takes out
 * (bt_pipeline_cancel_answered). The list keeps the BT_PIPELINE_CANCELLED newest: a peer that
 * lets more than that many cancels go unanswered is told apart only by its later answers.
 *
 * Rate and target live in one place (bt_pipeline_sample, bt_pipeline_target): today the target
 * is the measured rate times QUEUE_SECONDS in blocks, clamped; a bandwidth × delay target will
 * replace it here.
 */
#ifndef BT_PIPELINE_H
#define BT_PIPELINE_H

#include "bt/geometry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The depth a peer gets before its rate is known, and the clamp of the measured target. */
#define BT_PIPELINE_START_TARGET 32
#define BT_PIPELINE_MIN_TARGET	 4
#define BT_PIPELINE_MAX_TARGET	 64
/* The longest list: asserted on every addition, the length of every scan. */
#define BT_PIPELINE_MAX (2 * BT_PIPELINE_MAX_TARGET)
/* Cancelled requests remembered until answered (Fast). */
#define BT_PIPELINE_CANCELLED BT_PIPELINE_MAX

struct bt_pipeline {
	struct bt_block *reqs; /* outstanding, oldest first; heap, grown on demand */
	size_t count, cap;
	double last_answer;  /* a block arrived, or requests went out after none */
	uint64_t downloaded; /* block bytes received, ever */
	uint64_t window;     /* block bytes received since the last sample */
	double rate;	     /* bytes/s, an exponential average of the samples */
	bool rate_known;     /* a sample was taken after the first bytes arrived */
	struct bt_block cancelled[BT_PIPELINE_CANCELLED]; /* a ring; the newest overwrite */
	size_t cancelled_next, cancelled_count;
};

void bt_pipeline_init(struct bt_pipeline *pl, double now);
void bt_pipeline_deinit(struct bt_pipeline *pl);

/* Remembers a request sent at `now`; the request timer starts if none were outstanding. */
void bt_pipeline_add(struct bt_pipeline *pl, const struct bt_block *b, double now);
/* The position of b among the outstanding requests, or -ENOENT. */
int bt_pipeline_find(const struct bt_pipeline *pl, const struct bt_block *b);
bool bt_pipeline_has(const struct bt_pipeline *pl, const struct bt_block *b);
/* Forgets request number i (from bt_pipeline_find); the others keep their order. */
void bt_pipeline_remove_at(struct bt_pipeline *pl, size_t i);
/*
 * Moves every outstanding request out, oldest first, into *out (the caller frees it; NULL when
 * there are none). Returns how many. The pipeline is empty afterwards; rate and totals stay.
 */
size_t bt_pipeline_take(struct bt_pipeline *pl, struct bt_block **out);
/* Forgets request number i as outstanding and remembers it as cancelled, awaiting an answer. */
void bt_pipeline_cancel_at(struct bt_pipeline *pl, size_t i);
/* An answer (PIECE or REJECT) came for b: true if b was a cancelled request, now forgotten. */
bool bt_pipeline_cancel_answered(struct bt_pipeline *pl, const struct bt_block *b);
size_t bt_pipeline_count(const struct bt_pipeline *pl);
/* Seconds since the peer last answered (or since requests went out after none). */
double bt_pipeline_waited(const struct bt_pipeline *pl, double now);

/* `bytes` of a block arrived (delivered or dropped) at `now`. */
void bt_pipeline_received(struct bt_pipeline *pl, uint32_t bytes, double now);
/* Called once a second: the bytes received since the last call are one sample of the rate. */
void bt_pipeline_sample(struct bt_pipeline *pl);
/* How many requests the peer should have outstanding. */
size_t bt_pipeline_target(const struct bt_pipeline *pl);
double bt_pipeline_rate(const struct bt_pipeline *pl); /* bytes/s, smoothed */
uint64_t bt_pipeline_downloaded(const struct bt_pipeline *pl);

#endif
