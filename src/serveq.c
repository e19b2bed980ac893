#include "bt/serveq.h"

#include "bt/util.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

_Static_assert((BT_SERVEQ_CAP & (BT_SERVEQ_CAP - 1)) == 0, "BT_SERVEQ_CAP is a power of two");

/* The ring slot of the request at position i (0: the oldest). */
static size_t slot(const struct bt_serveq *q, size_t i)
{
	return (q->head + i) & (BT_SERVEQ_CAP - 1);
}

/* The position of b among the waiting requests, or q->count. */
static size_t position(const struct bt_serveq *q, const struct bt_block *b)
{
	for (size_t i = 0; i < q->count; i++)
		if (bt_block_equal(&q->ring[slot(q, i)], b))
			return i;
	return q->count;
}

void bt_serveq_init(struct bt_serveq *q)
{
	q->ring = bt_xcalloc(BT_SERVEQ_CAP, sizeof *q->ring);
	q->head = q->count = 0;
}

void bt_serveq_deinit(struct bt_serveq *q)
{
	free(q->ring);
	q->ring = NULL;
	q->head = q->count = 0;
}

int bt_serveq_push(struct bt_serveq *q, const struct bt_block *b)
{
	if (q->count >= BT_SERVEQ_CAP)
		return -ENOBUFS;
	if (position(q, b) < q->count)
		return -EEXIST;
	q->ring[slot(q, q->count++)] = *b;
	return 0;
}

bool bt_serveq_cancel(struct bt_serveq *q, const struct bt_block *b)
{
	size_t i = position(q, b);
	if (i == q->count)
		return false;
	/* Close the gap by moving the newer requests one slot back. */
	for (size_t k = i; k + 1 < q->count; k++)
		q->ring[slot(q, k)] = q->ring[slot(q, k + 1)];
	q->count--;
	return true;
}

const struct bt_block *bt_serveq_front(const struct bt_serveq *q)
{
	return q->count ? &q->ring[q->head] : NULL;
}

void bt_serveq_pop(struct bt_serveq *q)
{
	assert(q->count > 0);
	q->head = slot(q, 1);
	q->count--;
}

void bt_serveq_clear(struct bt_serveq *q)
{
	q->count = 0;
}

size_t bt_serveq_count(const struct bt_serveq *q)
{
	return q->count;
}
