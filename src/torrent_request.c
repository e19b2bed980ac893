/*
 * The torrent's request path (part of the torrent module, see torrent_internal.h): which blocks
 * each peer is asked for, at the depth its pipeline wants, with the speed class of the peer
 * (bt/picker.h) worked out each second from the measured rates, and what happens to requests
 * that come back.
 */
#include "torrent_internal.h"

#include "bt/assembly.h"
#include "bt/peer.h"
#include "bt/picker.h"

#include <stdlib.h>

void bt_torrent_return_requests(struct bt_torrent *t, struct bt_peer *p)
{
	struct bt_block *reqs;
	size_t n = bt_peer_take_requests(p, &reqs);
	for (size_t i = 0; i < n; i++)
		bt_picker_returned(t->picker, &reqs[i]);
	free(reqs);
}

static bool already_requested(void *ctx, const struct bt_block *b)
{
	return bt_peer_has_requested(ctx, b);
}

void bt_torrent_fill(struct bt_torrent *t, struct conn *c)
{
	struct bt_peer *p = c->peer;
	if (!t->m || c->reaping || t->finished || t->failed || bt_peer_phase(p) != BT_PEER_ACTIVE ||
	    !bt_peer_am_interested(p))
		return;
	/* A Fast peer that chokes us still serves the pieces of its allowed-fast set. */
	const struct bt_bitfield *has = bt_peer_bitfield(p);
	if (bt_peer_choking_us(p) && (!(bt_peer_features(p) & BT_WIRE_FEAT_FAST) ||
				      !(has = bt_peer_allowed_pieces(p))->count))
		return;
	/* Refill in batches, not one request per block received (bt_pipeline_refill_at). */
	size_t target = bt_peer_queue_target(p), have = bt_peer_outstanding(p);
	if (have > bt_peer_queue_refill_at(p) || have >= target)
		return;
	size_t n = bt_picker_pick_as(t->picker, has, c->slow ? BT_PICKER_SLOW : BT_PICKER_FAST,
				     t->pick_buf, target - have, already_requested, p);
	for (size_t i = 0; i < n; i++) {
		bt_assembly_buffer_for(&t->assembly, t->pick_buf[i].piece);
		bt_peer_request(p, &t->pick_buf[i]);
	}
}

/* Peers we are downloading from now: active and not choking us. */
static bool downloading_from(const struct conn *c)
{
	return !c->reaping && bt_peer_phase(c->peer) == BT_PEER_ACTIVE &&
	       !bt_peer_choking_us(c->peer);
}

void bt_torrent_classify_peers(struct bt_torrent *t)
{
	/* The mean over the peers that have a measured rate: one not measured yet is no sign. */
	double sum = 0;
	size_t n = 0;
	for (size_t i = 0; i < t->nconns; i++) {
		struct conn *c = t->conns[i];
		double rate = bt_peer_rate(c->peer);
		if (downloading_from(c) && rate > 0) {
			sum += rate;
			n++;
		}
	}
	double mean = n ? sum / (double)n : 0;
	for (size_t i = 0; i < t->nconns; i++) {
		struct conn *c = t->conns[i];
		double rate = bt_peer_rate(c->peer);
		bool was = c->slow;
		c->slow = downloading_from(c) && rate > 0 &&
			  bt_picker_speed_of(rate, mean) == BT_PICKER_SLOW;
		if (!c->slow || was || !t->picker)
			continue;
		/* What it was asked for before it was found slow waits on it too. */
		size_t nreqs;
		const struct bt_block *reqs = bt_peer_requests(c->peer, &nreqs);
		for (size_t k = 0; k < nreqs; k++)
			bt_picker_mark_slow(t->picker, &reqs[k]);
	}
}

void bt_torrent_cancel_copies(struct bt_torrent *t, struct conn *from, const struct bt_block *b)
{
	for (size_t i = 0; i < t->nconns; i++)
		if (t->conns[i] != from && !t->conns[i]->reaping)
			bt_peer_cancel(t->conns[i]->peer, b);
}
