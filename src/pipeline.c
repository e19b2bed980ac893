#include "bt/pipeline.h"

#include "bt/util.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Seconds of transfer to keep requested: the "delay" in bandwidth × delay. */
#define QUEUE_SECONDS 0.5

void bt_pipeline_init(struct bt_pipeline *pl, double now)
{
	memset(pl, 0, sizeof *pl);
	pl->last_answer = now;
}

void bt_pipeline_deinit(struct bt_pipeline *pl)
{
	free(pl->reqs);
	pl->reqs = NULL;
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
	}
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
	pl->count--;
}

size_t bt_pipeline_take(struct bt_pipeline *pl, struct bt_block **out)
{
	size_t n = pl->count;
	*out = pl->reqs;
	pl->reqs = NULL;
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

void bt_pipeline_sample(struct bt_pipeline *pl)
{
	/* An exponential average of one-second samples; the first one is taken as it is. */
	double sample = (double)pl->window;
	pl->window = 0;
	pl->rate = pl->rate_known ? 0.6 * pl->rate + 0.4 * sample : sample;
	pl->rate_known = pl->rate_known || pl->downloaded > 0;
}

size_t bt_pipeline_target(const struct bt_pipeline *pl)
{
	if (!pl->rate_known)
		return BT_PIPELINE_START_TARGET;
	double q = pl->rate * QUEUE_SECONDS / BT_BLOCK_SIZE;
	if (q < BT_PIPELINE_MIN_TARGET)
		return BT_PIPELINE_MIN_TARGET;
	return q > BT_PIPELINE_MAX_TARGET ? BT_PIPELINE_MAX_TARGET : (size_t)q;
}

double bt_pipeline_rate(const struct bt_pipeline *pl)
{
	return pl->rate;
}

uint64_t bt_pipeline_downloaded(const struct bt_pipeline *pl)
{
	return pl->downloaded;
}
