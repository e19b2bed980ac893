/*
 * serveq: one peer's requests to us that wait to be served, oldest first. It owns a ring of
 * BT_SERVEQ_CAP blocks, allocated once with the queue: a request is queued once (a repeat of
 * one still waiting is ignored), a request beyond the capacity is ignored (the protocol lets us
 * drop requests, but a client that never hears of the drop waits for those blocks forever:
 * Transmission queues ~10 s of transfer, thousands of requests, unless the peer's BEP 10
 * handshake gives it a `reqq`, so the torrent advertises BT_SERVEQ_CAP as ours), a CANCEL takes
 * one out from anywhere keeping
 * the order of the others, and a choke clears the queue. The peer (its one caller) validates a
 * request against the geometry and what we have before queueing it, and pops the oldest only
 * when its output has room for the block, so a peer that asks for much and reads slowly costs
 * this queue, never the data. Pure: no I/O, no allocation after bt_serveq_init.
 *
 * Cost: queueing and cancelling scan the waiting requests (at most BT_SERVEQ_CAP); the oldest
 * is taken in O(1).
 */
#ifndef BT_SERVEQ_H
#define BT_SERVEQ_H

#include "bt/geometry.h"

#include <stdbool.h>
#include <stddef.h>

/* Requests from one peer we keep at most; a power of two. */
#define BT_SERVEQ_CAP 2048

struct bt_serveq {
	struct bt_block *ring; /* BT_SERVEQ_CAP blocks; the oldest at head */
	size_t head, count;
};

void bt_serveq_init(struct bt_serveq *q);
void bt_serveq_deinit(struct bt_serveq *q);

/* Queues b behind the others. Returns 0; -EEXIST if it is waiting already; -ENOBUFS if the
 * queue is full. Either way the request may be ignored: the protocol allows it. */
int bt_serveq_push(struct bt_serveq *q, const struct bt_block *b);
/* Takes b out wherever it waits (a CANCEL). Returns false if it was not waiting. */
bool bt_serveq_cancel(struct bt_serveq *q, const struct bt_block *b);
/* The oldest request, valid until the queue changes; NULL when the queue is empty. */
const struct bt_block *bt_serveq_front(const struct bt_serveq *q);
/* Drops the oldest request (after it was served); the queue must not be empty. */
void bt_serveq_pop(struct bt_serveq *q);
void bt_serveq_clear(struct bt_serveq *q);
size_t bt_serveq_count(const struct bt_serveq *q);

#endif
