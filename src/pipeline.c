#include "bt/pipeline.h"

#include "bt/util.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Headroom over the bandwidth-delay product, seconds of the rate (at most BT_PIPELINE_HEADROOM
 * blocks): covers the rate's growth between two samples. */
#define HEADROOM_SECONDS 0.25
/* The most a peer may have outstanding, seconds of its rate: a slow peer does not hoard. */
#define MAX_QUEUE_SECONDS 2.0
/* Silences shorter than this are left to the headroom: on loopback they are our own event
 * loop's (or a loaded machine's), and counting them grew the queue and the peak memory for
 * nothing. A peer that sends every half second is well above it. */
#define SILENCE_MIN_SECONDS 0.1
/*
 * The queue covers the usual silence this many times over. Covering it once is a fixed point at
 * any rate against a peer that answers in bursts (Transmission, every half second): what it
 * sends a burst is what we asked, and the target is that again. After a dip (a busy disk on its
 * side) the rate never came back; at twice, each burst asks for more than the last brought,
 * until the peer's own rate is reached.
 */
#define SILENCE_COVER 2.0
/* How soon after an answer a request may go out and still count as out during the silence
 * that follows (the refill made on that answer). */
#define REFILL_SLACK_SECONDS 0.02
/* A round trip this short needs no eager refill before the first sample. */
#define SHORT_TRIP_SECONDS 0.01
/* Slow-start goes on until SLOW_START_FLAT seconds in a row have not brought at least this
 * much more than the one before (one is not enough: a peer answering every half second makes
 * seconds of two bursts and of one). */
#define SLOW_START_RISE 1.1
#define SLOW_START_FLAT 2

void bt_pipeline_init(struct bt_pipeline *pl, double now)
{
	memset(pl, 0, sizeof *pl);
	pl->last_answer = now;
	pl->slow_start = true;
}

void bt_pipeline_deinit(struct bt_pipeline *pl)
{
	free(pl->reqs);
	free(pl->sent);
	pl->reqs = NULL;
	pl->sent = NULL;
	pl->count = pl->cap = 0;
}

void bt_pipeline_add(struct bt_pipeline *pl, const struct bt_block *b, double now)
{
	assert(pl->count < BT_PIPELINE_MAX);
	if (pl->count == 0)
		pl->last_answer = now;
	if (pl->count == pl->cap) {
		pl->cap = pl->cap ? pl->cap * 2 : 32;
		pl->reqs = bt_xreallocarray(pl->reqs, pl->cap, sizeof *pl->reqs);
		pl->sent = bt_xreallocarray(pl->sent, pl->cap, sizeof *pl->sent);
	}
	pl->sent[pl->count] = now;
	pl->reqs[pl->count++] = *b;
}

int bt_pipeline_find(const struct bt_pipeline *pl, const struct bt_block *b)
{
	for (size_t i = 0; i < pl->count; i++)
		if (bt_block_equal(&pl->reqs[i], b))
			return (int)i;
	return -ENOENT;
}

bool bt_pipeline_has(const struct bt_pipeline *pl, const struct bt_block *b)
{
	return bt_pipeline_find(pl, b) >= 0;
}

void bt_pipeline_remove_at(struct bt_pipeline *pl, size_t i)
{
	assert(i < pl->count);
	memmove(pl->reqs + i, pl->reqs + i + 1, (pl->count - i - 1) * sizeof *pl->reqs);
	memmove(pl->sent + i, pl->sent + i + 1, (pl->count - i - 1) * sizeof *pl->sent);
	pl->count--;
}

void bt_pipeline_answered_at(struct bt_pipeline *pl, size_t i, double now)
{
	assert(i < pl->count);
	double sent = pl->sent[i];
	bt_pipeline_remove_at(pl, i);
	double d = now - sent;
	if (pl->rtt == 0 || d < pl->rtt)
		pl->rtt = d > 1e-6 ? d : 1e-6;
	/* A silence counts only if this request was out by the time the previous answer came
	 * (or just after: a refill made on that answer): the peer sat on it, which the queue
	 * must cover. A request sent later (our pipe ran dry) says nothing of the peer. */
	if (pl->last_arrival > 0 && sent <= pl->last_arrival + REFILL_SLACK_SECONDS &&
	    now - pl->last_arrival >= SILENCE_MIN_SECONDS && now - pl->last_arrival > pl->gap_max)
		pl->gap_max = now - pl->last_arrival;
	pl->last_arrival = now;
}

size_t bt_pipeline_take(struct bt_pipeline *pl, struct bt_block **out)
{
	size_t n = pl->count;
	*out = pl->reqs;
	pl->reqs = NULL;
	free(pl->sent);
	pl->sent = NULL;
	pl->count = pl->cap = 0;
	return n;
}

void bt_pipeline_cancel_at(struct bt_pipeline *pl, size_t i)
{
	struct bt_block b = pl->reqs[i];
	bt_pipeline_remove_at(pl, i);
	pl->cancelled[pl->cancelled_next] = b;
	pl->cancelled_next = (pl->cancelled_next + 1) % BT_PIPELINE_CANCELLED;
	if (pl->cancelled_count < BT_PIPELINE_CANCELLED)
		pl->cancelled_count++;
}

bool bt_pipeline_cancel_answered(struct bt_pipeline *pl, const struct bt_block *b)
{
	/* The live entries are the cancelled_count slots before cancelled_next. */
	for (size_t k = 1; k <= pl->cancelled_count; k++) {
		size_t i = (pl->cancelled_next + BT_PIPELINE_CANCELLED - k) % BT_PIPELINE_CANCELLED;
		if (!bt_block_equal(&pl->cancelled[i], b))
			continue;
		/* Fill the hole with the oldest live entry, which then leaves the ring. */
		size_t oldest = (pl->cancelled_next + BT_PIPELINE_CANCELLED - pl->cancelled_count) %
				BT_PIPELINE_CANCELLED;
		pl->cancelled[i] = pl->cancelled[oldest];
		pl->cancelled_count--;
		return true;
	}
	return false;
}

size_t bt_pipeline_count(const struct bt_pipeline *pl)
{
	return pl->count;
}

double bt_pipeline_waited(const struct bt_pipeline *pl, double now)
{
	return now - pl->last_answer;
}

void bt_pipeline_received(struct bt_pipeline *pl, uint32_t bytes, double now)
{
	pl->downloaded += bytes;
	pl->window += bytes;
	pl->last_answer = now;
}

/*
 * The bandwidth-delay product, in blocks, before the clamps: the round trip's and twice the
 * usual silence's worth at `rate` bytes/s, or the headroom (at the smoothed rate) if that is
 * more. Silence and headroom are there so the pipe does not drain between answers; counting both
 * would double the queue on loopback, where the headroom already covers the event loop's gaps.
 */
static double product(const struct bt_pipeline *pl, double rate)
{
	double trip = rate / BT_BLOCK_SIZE * pl->rtt;
	/* The headroom's cap gives way to the round trip's blocks (down to half of it): on
	 * loopback a millisecond of "round trip" at thousands of blocks a second would otherwise
	 * add a dozen blocks to every peer's queue, and memory, for nothing. */
	double cap = BT_PIPELINE_HEADROOM - trip;
	if (cap < BT_PIPELINE_HEADROOM / 2)
		cap = BT_PIPELINE_HEADROOM / 2;
	double headroom = pl->rate / BT_BLOCK_SIZE * HEADROOM_SECONDS;
	if (headroom > cap)
		headroom = cap;
	/* At `rate`: in slow-start the silence too is covered at twice the last second's. */
	double silence = rate / BT_BLOCK_SIZE * pl->gap * SILENCE_COVER;
	return trip + (silence > headroom ? silence : headroom);
}

void bt_pipeline_sample(struct bt_pipeline *pl)
{
	/* An exponential average of one-second samples; the first one is taken as it is. */
	double sample = (double)pl->window;
	pl->window = 0;
	bool was_known = pl->rate_known;
	pl->rate = pl->rate_known ? 0.6 * pl->rate + 0.4 * sample : sample;
	pl->rate_known = pl->rate_known || pl->downloaded > 0;
	/* Slow-start lasts while the seconds bring more than the ones before; SLOW_START_FLAT
	 * in a row that do not (a peer at its capacity) end it for good. */
	if (pl->slow_start && was_known) {
		bool rose = sample > 0 && sample >= SLOW_START_RISE * pl->last_sample;
		pl->flat = rose ? 0 : pl->flat + 1;
		if (pl->flat >= SLOW_START_FLAT)
			pl->slow_start = false;
	}
	if (pl->rate_known)
		pl->last_sample = sample;
	/* A longer silence counts at once, a shorter one slowly: a peer found answering in
	 * bursts gets its queue within the second, not after several. */
	pl->gap = pl->gap_max > pl->gap ? pl->gap_max : 0.6 * pl->gap + 0.4 * pl->gap_max;
	pl->gap_max = 0;
}

size_t bt_pipeline_target(const struct bt_pipeline *pl)
{
	double q;
	if (!pl->rate_known) {
		q = BT_PIPELINE_START_TARGET;
	} else {
		q = product(pl, pl->rate);
		/* Slow-start: the round trip at twice the last second's rate, not at the average
		 * that lags behind a rising rate, so the next second can bring twice as much. */
		if (pl->slow_start) {
			double ss = product(pl, 2 * pl->last_sample);
			if (ss > q)
				q = ss;
		}
		double hoard = pl->rate / BT_BLOCK_SIZE * MAX_QUEUE_SECONDS;
		if (q > hoard)
			q = hoard;
		if (q < BT_PIPELINE_MIN_TARGET)
			q = BT_PIPELINE_MIN_TARGET;
		if (q > BT_PIPELINE_MAX_TARGET)
			q = BT_PIPELINE_MAX_TARGET;
	}
	/* One short of the peer's reqq: the list may hold one block more than the target (put
	 * back while they are taken), and Transmission 3.00 (reqq 512) silently drops a request
	 * past its queue, which then waits for the request timeout. */
	if (pl->limit && q > pl->limit - 1)
		q = pl->limit > 1 ? pl->limit - 1 : 1;
	return (size_t)q;
}

size_t bt_pipeline_refill_at(const struct bt_pipeline *pl)
{
	size_t target = bt_pipeline_target(pl);
	/* Before the first sample the round trip's blocks are not known and the start target may
	 * be all of them (3.5 MiB/s at 120 ms is 27 blocks of 32): top it up a few at a time,
	 * unless the round trip is already known to be short (loopback, a LAN: half, as after). */
	if (!pl->rate_known)
		return target > 4 && !(pl->rtt > 0 && pl->rtt < SHORT_TRIP_SECONDS) ? target - 4
										    : target / 2;
	double at = target / 2.0;
	double need = pl->rate / BT_BLOCK_SIZE * pl->rtt + target / 4.0;
	if (need > at)
		at = need;
	/* Batches of at least an eighth of the target: a loaded loopback's "round trip" of a few
	 * milliseconds at thousands of blocks a second must not turn into a send per block. */
	size_t batch = target / 8 ? target / 8 : 1;
	if (at > (double)(target - batch))
		at = target > batch ? (double)(target - batch) : 0;
	return (size_t)at;
}

void bt_pipeline_set_limit(struct bt_pipeline *pl, uint32_t reqq)
{
	pl->limit = reqq;
}

double bt_pipeline_delay(const struct bt_pipeline *pl)
{
	return pl->rtt > 0 ? pl->rtt + pl->gap : 0;
}

double bt_pipeline_rate(const struct bt_pipeline *pl)
{
	return pl->rate;
}

uint64_t bt_pipeline_downloaded(const struct bt_pipeline *pl)
{
	return pl->downloaded;
}
