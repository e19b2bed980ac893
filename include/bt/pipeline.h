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
 * Rate, delay and target live in one place (bt_pipeline_sample, bt_pipeline_target). The target is
 * the bandwidth-delay product: the measured rate times the round trip (the shortest time from a
 * request to its answer on this connection: the first requests meet an empty queue at the peer,
 * later ones wait behind ours, so only the minimum says what the path costs), plus twice the
 * usual silence or the headroom, whichever is more. The usual silence: each second's longest
 * wait of 0.1 s or more between two answers while a request was out (sent before the previous
 * answer, or with it: the refill made on it), taken at once when longer than before and
 * averaged down when shorter. Twice, because a peer that answers in bursts every half second
 * sends a burst what we asked: covering the silence once is a fixed point at any rate, and
 * twice makes each burst ask for more until the peer's own rate is reached. The headroom: a
 * quarter second of the rate, at most BT_PIPELINE_HEADROOM blocks less the round trip's, at
 * least half of that. While the rate keeps rising (slow-start) the product is taken at twice
 * the last second's rate (not at the average, which lags behind a rising rate), so each second
 * may bring twice the one before; two seconds in a row that bring no more end it. Never more
 * than BT_PIPELINE_MAX_TARGET, nor two seconds of the rate (a slow peer does not hoard blocks
 * the others could fetch), nor one less than the peer's own `reqq` (BEP 10) when it gave one.
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
#define BT_PIPELINE_MAX_TARGET	 500
/* The most headroom blocks: on loopback the product is nothing and this is the whole queue. */
#define BT_PIPELINE_HEADROOM 64
/* The longest list: asserted on every addition, the length of every scan. */
#define BT_PIPELINE_MAX (2 * BT_PIPELINE_MAX_TARGET)
/* Cancelled requests remembered until answered (Fast). */
#define BT_PIPELINE_CANCELLED 128

struct bt_pipeline {
	struct bt_block *reqs; /* outstanding, oldest first; heap, grown on demand */
	double *sent;	       /* parallel to reqs: when each went out */
	size_t count, cap;
	double last_answer;  /* a block arrived, or requests went out after none */
	uint64_t downloaded; /* block bytes received, ever */
	uint64_t window;     /* block bytes received since the last sample */
	double rate;	     /* bytes/s, an exponential average of the samples */
	bool rate_known;     /* a sample was taken after the first bytes arrived */
	double last_sample;  /* bytes of the previous one-second sample */
	double rtt;	     /* the shortest request-to-answer time, seconds; 0: none yet */
	double last_arrival; /* when the last answer began */
	double gap_max;	     /* the longest silence with a request overdue, this second */
	double gap;	     /* its average over the seconds */
	bool slow_start;     /* the rate has kept rising so far */
	unsigned flat;	     /* seconds in a row it has not */
	uint32_t limit;	     /* the peer's reqq, or 0 */
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
/* Request number i is being answered at `now`: forgets it, and takes a sample of the delay. */
void bt_pipeline_answered_at(struct bt_pipeline *pl, size_t i, double now);
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
/*
 * Refill when no more than this many are outstanding: half the target (fewer, larger sends: on
 * loopback each one also costs the receiver's network stack our CPU), but never fewer than the
 * round trip's blocks plus a quarter of the target, so the pipe of a distant peer does not run
 * dry while the refill travels (512 KiB/s at 250 ms: a target of 16, 8 of them the round trip).
 * Before the rate is known, the start target less 4 (it may be no more than the round trip),
 * or half of it once the round trip is known to be under 10 ms. Batches are at least an eighth
 * of the target.
 * Less than the target once it is 2 or more.
 */
size_t bt_pipeline_refill_at(const struct bt_pipeline *pl);
/* The peer queues at most `reqq` requests (its extended handshake); 0: it did not say. */
void bt_pipeline_set_limit(struct bt_pipeline *pl, uint32_t reqq);
/* The delay the queue covers (round trip plus usual silence), seconds; 0 before a sample. */
double bt_pipeline_delay(const struct bt_pipeline *pl);
double bt_pipeline_rate(const struct bt_pipeline *pl); /* bytes/s, smoothed */
uint64_t bt_pipeline_downloaded(const struct bt_pipeline *pl);

#endif
