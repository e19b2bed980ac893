#include "bt/torrent.h"

#include "bt/choker.h"
#include "bt/hash.h"
#include "bt/log.h"
#include "bt/peer.h"
#include "bt/picker.h"
#include "bt/session.h"
#include "bt/tracker.h"
#include "bt/udp_tracker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A peer whose data failed verification this many times is banned. */
#define MAX_STRIKES 2
/*
 * Assembly buffers kept for reuse. Freeing and allocating a piece-sized buffer per piece costs
 * a page fault per 4 KiB (the allocator hands large blocks back to the kernel); keeping a few
 * costs no more memory than the peak already used.
 */
#define POOL_MAX 16
/*
 * Memory for pieces being assembled, at most: this bounds the pieces started at once (never
 * fewer than 1 nor more than 256), so memory stays flat whatever the torrent's size.
 */
#define ASSEMBLY_BUDGET ((int64_t)16 << 20)
/* Connection attempts per address before it is given up. */
#define MAX_TRIES 3

/* An address we know of, connected or not. */
struct candidate {
	struct sockaddr_storage addr;
	socklen_t len;
	char name[64];
	struct bt_peer *peer; /* when connected (or connecting) */
	int tries;
	double retry_at;
	bool banned;
	bool handshaken; /* ever got past the handshake */
	bool incoming;	 /* it dialled us: its port is not one to dial back */
	uint64_t bytes;	 /* block bytes received from it, all connections */
	uint32_t strikes;
	char last_error[128];
};

/* One connected peer, as the torrent sees it. */
struct conn {
	struct bt_torrent *t;
	struct bt_peer *peer;
	size_t cand;		    /* index into candidates */
	struct bt_bitfield counted; /* the availability it contributes to the picker */
	bool counted_in;
	bool reaping;
	bool optimistic; /* the choker's optimistic unchoke */
	double started;
};

/* The buffer a started piece's blocks are assembled in. */
struct assembly {
	uint8_t *data;
	size_t *contributors; /* candidate indices that sent blocks of it */
	size_t ncontrib, contrib_cap;
};

struct bt_torrent {
	struct bt_session *session;
	const struct bt_metainfo *m;
	struct bt_torrent_opts opts;
	struct bt_torrent_events ev;
	void *arg;
	struct bt_picker *picker;
	struct bt_bitfield have;
	uint64_t wanted_bytes, verified_bytes, received_bytes;
	uint32_t pieces_failed;

	struct candidate *cands;
	size_t ncands, cands_cap;
	struct conn **conns;
	size_t nconns, conns_cap;

	struct assembly *asm_of; /* per piece; data == NULL when not started */
	uint8_t *pool[POOL_MAX]; /* spare assembly buffers of piece_length bytes */
	size_t npool;
	size_t max_partial; /* pieces assembled at once; the pool never holds more */
	struct bt_tracker *tracker;
	struct event *tick, *reap;
	double started, last_data, first_byte;
	double rate;
	uint64_t rate_window;
	struct bt_choker choker;
	struct bt_rate_limit down_limit, up_limit;
	struct sockaddr_storage source; /* opts.source_ip as an address; family 0 if none */
	socklen_t source_len;
	unsigned ticks;
	uint64_t uploaded_closed; /* bytes sent to peers since gone */
	bool finished, failed, stopping, stopped;
	struct bt_block *pick_buf;
};

static void fail_torrent(struct bt_torrent *t, const char *fmt, ...) BT_PRINTF(2, 3);
static void fail_torrent(struct bt_torrent *t, const char *fmt, ...)
{
	if (t->failed || t->finished)
		return;
	t->failed = true;
	char reason[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	t->ev.failed(t->arg, reason);
}

/* "peer 1.2.3.4:5", the subject of a peer's log lines. */
static const char *peer_subject(const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "peer %s", name);
	return buf;
}

static struct conn *conn_of(struct bt_peer *p, void *arg)
{
	(void)p;
	return arg;
}

static void return_requests(struct bt_torrent *t, struct bt_peer *p)
{
	struct bt_block *reqs;
	size_t n = bt_peer_take_requests(p, &reqs);
	for (size_t i = 0; i < n; i++)
		bt_picker_returned(t->picker, &reqs[i]);
	free(reqs);
}

static uint8_t *take_buffer(struct bt_torrent *t)
{
	return t->npool ? t->pool[--t->npool] : bt_xmalloc((size_t)t->m->piece_length);
}

static bool already_requested(void *ctx, const struct bt_block *b)
{
	return bt_peer_has_requested(ctx, b);
}

/* Keeps the peer's request pipe at its target depth. */
static void fill(struct bt_torrent *t, struct conn *c)
{
	struct bt_peer *p = c->peer;
	if (c->reaping || t->finished || t->failed || bt_peer_phase(p) != BT_PEER_ACTIVE ||
	    bt_peer_choking_us(p) || !bt_peer_am_interested(p))
		return;
	/*
	 * Refill in batches, not one request per block received: on loopback every send also
	 * runs the receiver's network stack on our CPU, so fewer, larger sends cost much less.
	 */
	size_t target = bt_peer_queue_target(p), have = bt_peer_outstanding(p);
	size_t slack = target / 2 > 4 ? target / 2 : 4;
	if (have + slack > target && have > 0)
		return;
	size_t n = bt_picker_pick(t->picker, bt_peer_bitfield(p), t->pick_buf, target - have,
				  already_requested, p);
	for (size_t i = 0; i < n; i++) {
		struct assembly *a = &t->asm_of[t->pick_buf[i].piece];
		if (!a->data)
			a->data = take_buffer(t);
		bt_peer_request(p, &t->pick_buf[i]);
	}
}

static void update_interest(struct bt_torrent *t, struct conn *c)
{
	bool want = !t->finished && bt_picker_interesting(t->picker, bt_peer_bitfield(c->peer));
	bt_peer_set_interested(c->peer, want);
}

static void schedule_reap(struct bt_torrent *t, struct conn *c)
{
	if (c->reaping)
		return;
	c->reaping = true;
	event_active(t->reap, EV_TIMEOUT, 0);
}

static void on_handshake(void *arg, struct bt_peer *p, const struct bt_handshake *h)
{
	(void)h;
	struct conn *c = conn_of(p, arg);
	struct bt_torrent *t = c->t;
	t->cands[c->cand].handshaken = true;
	char subject[80];
	bt_log(BT_LOG_DEBUG, peer_subject(t->cands[c->cand].name, subject, sizeof subject),
	       "handshake done");
	bt_peer_send_bitfield(p, &t->have);
}

static void on_choked(void *arg, struct bt_peer *p, bool choked)
{
	struct conn *c = conn_of(p, arg);
	if (choked)
		return_requests(c->t, p);
	else
		fill(c->t, c);
}

static void on_has(void *arg, struct bt_peer *p, uint32_t piece)
{
	struct conn *c = conn_of(p, arg);
	struct bt_torrent *t = c->t;
	const struct bt_bitfield *bf = bt_peer_bitfield(p);
	if (piece == UINT32_MAX) {
		if (c->counted_in)
			bt_picker_remove_peer(t->picker, &c->counted);
		memcpy(c->counted.bits, bf->bits, bt_bitfield_bytes(bf->nbits));
		c->counted.count = bf->count;
		bt_picker_add_peer(t->picker, &c->counted);
		c->counted_in = true;
	} else {
		bt_bitfield_set(&c->counted, piece);
		bt_picker_peer_have(t->picker, piece);
		c->counted_in = true;
	}
	/* Two seeds have nothing to say to each other. */
	if (t->finished && bt_bitfield_full(bf)) {
		snprintf(t->cands[c->cand].last_error, sizeof t->cands[c->cand].last_error,
			 "a seed, as we are");
		bt_peer_close(p);
		schedule_reap(t, c);
		return;
	}
	update_interest(t, c);
	fill(t, c);
}

static uint8_t *on_block_dest(void *arg, struct bt_peer *p, const struct bt_block *b)
{
	struct conn *c = conn_of(p, arg);
	struct bt_torrent *t = c->t;
	if (!bt_picker_is_pending(t->picker, b) || !t->asm_of[b->piece].data)
		return NULL;
	return t->asm_of[b->piece].data + b->begin;
}

static void add_contributor(struct assembly *a, size_t cand)
{
	for (size_t i = 0; i < a->ncontrib; i++)
		if (a->contributors[i] == cand)
			return;
	if (a->ncontrib == a->contrib_cap) {
		a->contrib_cap = a->contrib_cap ? a->contrib_cap * 2 : 4;
		a->contributors =
			bt_xreallocarray(a->contributors, a->contrib_cap, sizeof *a->contributors);
	}
	a->contributors[a->ncontrib++] = cand;
}

static void release(struct bt_torrent *t, struct assembly *a)
{
	if (a->data && t->npool < POOL_MAX && t->npool < t->max_partial)
		t->pool[t->npool++] = a->data;
	else
		free(a->data);
	free(a->contributors);
	memset(a, 0, sizeof *a);
}

static struct conn *conn_for_cand(struct bt_torrent *t, size_t cand)
{
	for (size_t i = 0; i < t->nconns; i++)
		if (t->conns[i]->cand == cand && !t->conns[i]->reaping)
			return t->conns[i];
	return NULL;
}

static void piece_failed(struct bt_torrent *t, uint32_t piece)
{
	struct assembly *a = &t->asm_of[piece];
	t->pieces_failed++;
	for (size_t i = 0; i < a->ncontrib; i++) {
		struct candidate *cd = &t->cands[a->contributors[i]];
		/* A peer that alone sent a bad piece is certainly lying; a shared one may not be.
		 */
		cd->strikes += a->ncontrib == 1 ? MAX_STRIKES : 1;
		if (cd->strikes >= MAX_STRIKES && !cd->banned) {
			cd->banned = true;
			snprintf(cd->last_error, sizeof cd->last_error,
				 "banned: sent data that failed verification");
			struct conn *c = conn_for_cand(t, a->contributors[i]);
			if (c) {
				return_requests(t, c->peer);
				bt_peer_close(c->peer);
				schedule_reap(t, c);
			}
		}
	}
	release(t, a);
	bt_picker_piece_failed(t->picker, piece);
}

static void piece_complete(struct bt_torrent *t, uint32_t piece)
{
	struct assembly *a = &t->asm_of[piece];
	size_t size = (size_t)bt_meta_piece_size(t->m, piece);
	uint8_t digest[BT_SHA1_LEN];
	bt_sha1(a->data, size, digest);
	if (memcmp(digest, t->m->piece_hashes + (size_t)piece * BT_SHA1_LEN, BT_SHA1_LEN) != 0) {
		piece_failed(t, piece);
		return;
	}
	struct bt_err err;
	if (t->ev.piece_verified(t->arg, piece, a->data, &err)) {
		release(t, a);
		fail_torrent(t, "%s", err.msg);
		return;
	}
	release(t, a);
	bt_picker_piece_passed(t->picker, piece);
	bt_bitfield_set(&t->have, piece);
	t->verified_bytes += size;
	for (size_t i = 0; i < t->nconns; i++)
		if (!t->conns[i]->reaping && bt_peer_phase(t->conns[i]->peer) == BT_PEER_ACTIVE)
			bt_peer_send_have(t->conns[i]->peer, piece);
	if (bt_picker_done(t->picker)) {
		t->finished = true;
		for (size_t i = 0; i < t->nconns; i++)
			if (!t->conns[i]->reaping)
				bt_peer_set_interested(t->conns[i]->peer, false);
		if (t->tracker) {
			bt_tracker_update(t->tracker, (int64_t)t->uploaded_closed,
					  (int64_t)t->received_bytes, 0);
			bt_tracker_completed(t->tracker);
		}
		t->ev.complete(t->arg);
	}
}

static void on_block(void *arg, struct bt_peer *p, const struct bt_block *b)
{
	struct conn *c = conn_of(p, arg);
	struct bt_torrent *t = c->t;
	double now = bt_now();
	if (t->first_byte < 0)
		t->first_byte = now - t->started;
	t->last_data = now;
	t->received_bytes += b->length;
	t->rate_window += b->length;
	t->cands[c->cand].bytes += b->length;
	bool complete;
	if (!bt_picker_received(t->picker, b, &complete))
		return;
	add_contributor(&t->asm_of[b->piece], c->cand);
	/* Endgame: the same block asked of others is no longer needed. */
	if (bt_picker_in_endgame(t->picker) || complete)
		for (size_t i = 0; i < t->nconns; i++)
			if (t->conns[i] != c && !t->conns[i]->reaping)
				bt_peer_cancel(t->conns[i]->peer, b);
	if (complete)
		piece_complete(t, b->piece);
	if (!t->finished && !t->failed)
		fill(t, c);
}

static void rechoke(struct bt_torrent *t)
{
	struct bt_choker_peer *cp = bt_xcalloc(t->nconns ? t->nconns : 1, sizeof *cp);
	struct conn **who = bt_xcalloc(t->nconns ? t->nconns : 1, sizeof *who);
	size_t n = 0;
	for (size_t i = 0; i < t->nconns; i++) {
		struct conn *c = t->conns[i];
		if (c->reaping || bt_peer_phase(c->peer) != BT_PEER_ACTIVE)
			continue;
		cp[n] = (struct bt_choker_peer){.interested = bt_peer_interested_in_us(c->peer),
						.down_rate = bt_peer_rate(c->peer),
						.up_rate = bt_peer_up_rate(c->peer),
						.optimistic = c->optimistic};
		who[n++] = c;
	}
	bt_choker_run(&t->choker, cp, n, t->finished);
	for (size_t i = 0; i < n; i++) {
		who[i]->optimistic = cp[i].optimistic;
		bt_peer_set_choking(who[i]->peer, !cp[i].unchoke || !t->ev.read_block);
	}
	free(cp);
	free(who);
}

static void on_interest(void *arg, struct bt_peer *p, bool interested)
{
	struct conn *c = conn_of(p, arg);
	struct bt_torrent *t = c->t;
	if (!t->ev.read_block)
		return;
	/* A newcomer need not wait for the next round if a slot is free. */
	size_t unchoked = 0;
	for (size_t i = 0; i < t->nconns; i++)
		unchoked += !t->conns[i]->reaping && !bt_peer_am_choking(t->conns[i]->peer);
	if (interested && unchoked <= BT_CHOKER_SLOTS)
		bt_peer_set_choking(p, false);
	else if (!interested)
		bt_peer_set_choking(p, true);
}

static int on_read_block(void *arg, struct bt_peer *p, const struct bt_block *b, uint8_t *dest)
{
	struct conn *c = conn_of(p, arg);
	struct bt_torrent *t = c->t;
	return t->ev.read_block(t->arg, b->piece, b->begin, b->length, dest);
}

static void on_closed(void *arg, struct bt_peer *p, const char *reason)
{
	struct conn *c = conn_of(p, arg);
	struct bt_torrent *t = c->t;
	struct candidate *cd = &t->cands[c->cand];
	snprintf(cd->last_error, sizeof cd->last_error, "%s", reason);
	char subject[80];
	bt_log(BT_LOG_DEBUG, peer_subject(cd->name, subject, sizeof subject), "closed: %s", reason);
	return_requests(t, p);
	schedule_reap(t, c);
	/* Its blocks go to the others at once. */
	for (size_t i = 0; i < t->nconns; i++)
		if (t->conns[i] != c)
			fill(t, t->conns[i]);
}

static const struct bt_peer_events peer_events = {
	.handshake = on_handshake,
	.choked = on_choked,
	.has = on_has,
	.block_dest = on_block_dest,
	.block = on_block,
	.interest = on_interest,
	.read_block = on_read_block,
	.closed = on_closed,
};

static struct bt_peer_config peer_config(const struct bt_torrent *t)
{
	struct bt_peer_config cfg = {
		.geo = bt_meta_geometry(t->m),
		.ours = &t->have,
		.down_limit = (struct bt_rate_limit *)&t->down_limit,
		.up_limit = (struct bt_rate_limit *)&t->up_limit,
		.request_timeout_s = t->opts.request_timeout_s,
		.bind_addr = t->source_len ? (const struct sockaddr *)&t->source : NULL,
		.bind_len = t->source_len};
	memcpy(cfg.info_hash, t->m->info_hash, BT_HASH_LEN);
	memcpy(cfg.peer_id, bt_session_peer_id(t->session), BT_PEER_ID_LEN);
	memcpy(cfg.reserved, bt_wire_reserved_ext, 8);
	return cfg;
}

static struct conn *add_conn(struct bt_torrent *t, size_t cand)
{
	struct conn *c = bt_xcalloc(1, sizeof *c);
	c->t = t;
	c->cand = cand;
	c->started = bt_now();
	bt_bitfield_init(&c->counted, t->m->piece_count);
	if (t->nconns == t->conns_cap) {
		t->conns_cap = t->conns_cap ? t->conns_cap * 2 : 16;
		t->conns = bt_xreallocarray(t->conns, t->conns_cap, sizeof *t->conns);
	}
	t->conns[t->nconns++] = c;
	return c;
}

static void connect_cand(struct bt_torrent *t, size_t i)
{
	struct candidate *cd = &t->cands[i];
	struct bt_peer_config cfg = peer_config(t);
	struct conn *c = add_conn(t, i);
	cd->tries++;
	c->peer = bt_peer_connect(bt_session_base(t->session), (struct sockaddr *)&cd->addr,
				  cd->len, &cfg, &peer_events, c);
	cd->peer = c->peer;
}

static size_t live_conns(const struct bt_torrent *t)
{
	size_t n = 0;
	for (size_t i = 0; i < t->nconns; i++)
		n += !t->conns[i]->reaping;
	return n;
}

static void connect_more(struct bt_torrent *t)
{
	if ((t->finished && !t->opts.seed) || t->failed || t->stopping)
		return;
	double now = bt_now();
	size_t live = live_conns(t);
	for (size_t i = 0; i < t->ncands && live < t->opts.max_peers; i++) {
		struct candidate *cd = &t->cands[i];
		if (cd->peer || cd->banned || cd->incoming || cd->tries >= MAX_TRIES ||
		    now < cd->retry_at)
			continue;
		connect_cand(t, i);
		live++;
	}
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bt_torrent *t = arg;
	double now = bt_now();
	size_t kept = 0;
	for (size_t i = 0; i < t->nconns; i++) {
		struct conn *c = t->conns[i];
		if (!c->reaping) {
			t->conns[kept++] = c;
			continue;
		}
		struct candidate *cd = &t->cands[c->cand];
		cd->peer = NULL;
		/* A connection that served a good while earns a fresh set of tries; one that fails
		 * soon after its handshake counts as a failed try like a refused one. */
		if (now - c->started > 60)
			cd->tries = 1;
		cd->retry_at = now + 2.0 * cd->tries;
		t->uploaded_closed += bt_peer_uploaded(c->peer);
		if (c->counted_in)
			bt_picker_remove_peer(t->picker, &c->counted);
		bt_bitfield_deinit(&c->counted);
		bt_peer_free(c->peer);
		free(c);
	}
	t->nconns = kept;
	connect_more(t);
}

/* Says why no peer is left, for the error a user sees. */
static void describe_no_peers(const struct bt_torrent *t, char *out, size_t n)
{
	size_t len = (size_t)snprintf(out, n, "no peers left to download from");
	for (size_t i = 0; i < t->ncands && i < 3 && len < n; i++)
		len += (size_t)snprintf(
			out + len, n - len, "%s %s: %s", i ? ";" : ":", t->cands[i].name,
			t->cands[i].last_error[0] ? t->cands[i].last_error : "not tried");
	if (t->ncands > 3 && len < n)
		len += (size_t)snprintf(out + len, n - len, "; and %zu more", t->ncands - 3);
	if (t->tracker && len < n)
		snprintf(out + len, n - len, "; tracker %s", bt_tracker_status(t->tracker));
}

static bool any_hope(const struct bt_torrent *t)
{
	if (live_conns(t) > 0 || t->tracker)
		return true;
	for (size_t i = 0; i < t->ncands; i++)
		if (!t->cands[i].banned && t->cands[i].tries < MAX_TRIES)
			return true;
	return false;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bt_torrent *t = arg;
	double now = bt_now();
	/* The first second's sample stands alone: averaging it with zero would halve it. */
	t->rate =
		t->rate > 0 ? 0.6 * t->rate + 0.4 * (double)t->rate_window : (double)t->rate_window;
	t->rate_window = 0;
	if (t->failed || t->stopping)
		return;
	if (t->ev.read_block && t->ticks++ % BT_CHOKER_INTERVAL_S == 0)
		rechoke(t);
	if (t->finished) {
		connect_more(t);
		return;
	}
	for (size_t i = 0; i < t->nconns; i++) {
		struct conn *c = t->conns[i];
		if (c->reaping || bt_peer_phase(c->peer) != BT_PEER_ACTIVE)
			continue;
		update_interest(t, c);
		fill(t, c);
	}
	connect_more(t);
	if (t->tracker && live_conns(t) < t->opts.max_peers / 2)
		bt_tracker_need_peers(t->tracker);
	if (!any_hope(t)) {
		char why[768];
		describe_no_peers(t, why, sizeof why);
		fail_torrent(t, "%s", why);
		return;
	}
	if (now - t->last_data > t->opts.stall_timeout_s) {
		char why[768];
		struct bt_torrent_stats st;
		bt_torrent_get_stats(t, &st);
		if (st.peers_connected == 0)
			describe_no_peers(t, why, sizeof why);
		else
			snprintf(why, sizeof why, "%zu peers connected, %zu unchoking us",
				 st.peers_connected, st.peers_unchoking);
		fail_torrent(t, "no data for %.0f s (%s)", t->opts.stall_timeout_s, why);
	}
}

static void on_tracker_peers(void *arg, const struct bt_peer_addr *peers, size_t n)
{
	struct bt_torrent *t = arg;
	for (size_t i = 0; i < n; i++) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof ss);
		socklen_t len;
		if (peers[i].family == 4) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			s4->sin_family = AF_INET;
			memcpy(&s4->sin_addr, peers[i].addr, 4);
			s4->sin_port = htons(peers[i].port);
			len = sizeof *s4;
		} else {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			s6->sin6_family = AF_INET6;
			memcpy(&s6->sin6_addr, peers[i].addr, 16);
			s6->sin6_port = htons(peers[i].port);
			len = sizeof *s6;
		}
		bt_torrent_add_peer(t, (struct sockaddr *)&ss, len);
	}
	connect_more(t);
}

static void on_tracker_error(void *arg, const char *url, const char *message)
{
	(void)arg;
	char subject[600];
	snprintf(subject, sizeof subject, "tracker %s", url);
	bt_log(BT_LOG_WARN, subject, "%s", message);
}

static void on_tracker_stopped(void *arg)
{
	struct bt_torrent *t = arg;
	t->stopped = true;
	/* The owner runs the loop only to let this announce out: it may end now. */
	if (t->stopping)
		bt_session_stop(t->session);
}

struct bt_torrent *bt_torrent_new(struct bt_session *s, const struct bt_metainfo *m,
				  const struct bt_bitfield *have, const struct bt_bitfield *want,
				  const struct bt_torrent_opts *opts,
				  const struct bt_torrent_events *ev, void *arg)
{
	struct bt_torrent *t = bt_xcalloc(1, sizeof *t);
	t->session = s;
	t->m = m;
	if (opts)
		t->opts = *opts;
	if (!t->opts.max_peers)
		t->opts.max_peers = 50;
	if (!t->opts.port)
		t->opts.port = 6881;
	if (t->opts.stall_timeout_s <= 0)
		t->opts.stall_timeout_s = 60;
	t->ev = *ev;
	t->arg = arg;
	t->first_byte = -1;
	bt_bitfield_init(&t->have, m->piece_count);
	for (uint32_t i = 0; i < m->piece_count; i++) {
		bool wanted = !want || bt_bitfield_get(want, i);
		if (have && bt_bitfield_get(have, i))
			bt_bitfield_set(&t->have, i);
		if (wanted) {
			t->wanted_bytes += (uint64_t)bt_meta_piece_size(m, i);
			if (bt_bitfield_get(&t->have, i))
				t->verified_bytes += (uint64_t)bt_meta_piece_size(m, i);
		}
	}
	uint64_t seed;
	bt_random_bytes(&seed, sizeof seed);
	struct bt_geometry geo = bt_meta_geometry(m);
	t->picker = bt_picker_new(&geo, &t->have, want, seed);
	t->asm_of = bt_xcalloc(m->piece_count, sizeof *t->asm_of);
	int64_t max_partial = ASSEMBLY_BUDGET / m->piece_length;
	t->max_partial = max_partial < 1 ? 1 : max_partial > 256 ? 256 : (size_t)max_partial;
	bt_picker_set_max_partial(t->picker, t->max_partial);
	bt_choker_init(&t->choker, seed ^ 0x5bd1e995);
	if (t->opts.source_ip) {
		t->source_len = bt_sockaddr_from_ip(t->opts.source_ip, 0, &t->source);
		bt_udp_tracker_set_source(bt_session_udp(s), t->opts.source_ip);
	}
	bt_rate_limit_init(&t->down_limit, t->opts.max_down, bt_now());
	bt_rate_limit_init(&t->up_limit, t->opts.max_up, bt_now());
	t->pick_buf = bt_xcalloc(256, sizeof *t->pick_buf);
	struct event_base *base = bt_session_base(s);
	t->tick = event_new(base, -1, EV_PERSIST, on_tick, t);
	t->reap = event_new(base, -1, 0, on_reap, t);
	if (!t->tick || !t->reap)
		bt_oom();
	if (t->opts.use_trackers && m->tier_count) {
		struct bt_announce_req req = {.port = t->opts.port, .numwant = 200};
		memcpy(req.info_hash, m->info_hash, BT_HASH_LEN);
		memcpy(req.peer_id, bt_session_peer_id(s), BT_PEER_ID_LEN);
		bt_random_bytes(&req.key, sizeof req.key);
		req.left = (int64_t)(t->wanted_bytes - t->verified_bytes);
		struct bt_tracker_io io = {bt_session_http(s), bt_session_udp(s),
					   t->opts.source_ip};
		struct bt_tracker_events tev = {on_tracker_peers, on_tracker_error,
						on_tracker_stopped};
		t->tracker =
			bt_tracker_new(base, &io, m->tiers, m->tier_count, &req, NULL, &tev, t);
	}
	return t;
}

void bt_torrent_free(struct bt_torrent *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nconns; i++) {
		bt_bitfield_deinit(&t->conns[i]->counted);
		bt_peer_free(t->conns[i]->peer);
		free(t->conns[i]);
	}
	free(t->conns);
	for (uint32_t i = 0; i < t->m->piece_count; i++)
		release(t, &t->asm_of[i]);
	while (t->npool)
		free(t->pool[--t->npool]);
	free(t->asm_of);
	free(t->cands);
	free(t->pick_buf);
	bt_tracker_free(t->tracker);
	bt_picker_free(t->picker);
	bt_bitfield_deinit(&t->have);
	event_free(t->tick);
	event_free(t->reap);
	free(t);
}

void bt_torrent_add_peer(struct bt_torrent *t, const struct sockaddr *sa, socklen_t len)
{
	if (len > sizeof(struct sockaddr_storage))
		return;
	for (size_t i = 0; i < t->ncands; i++)
		if (t->cands[i].len == len && memcmp(&t->cands[i].addr, sa, len) == 0)
			return;
	if (t->ncands == t->cands_cap) {
		t->cands_cap = t->cands_cap ? t->cands_cap * 2 : 16;
		t->cands = bt_xreallocarray(t->cands, t->cands_cap, sizeof *t->cands);
	}
	struct candidate *cd = &t->cands[t->ncands++];
	memset(cd, 0, sizeof *cd);
	memcpy(&cd->addr, sa, len);
	cd->len = len;
	bt_sockaddr_format(sa, cd->name, sizeof cd->name);
}

void bt_torrent_start(struct bt_torrent *t)
{
	t->started = t->last_data = bt_now();
	struct timeval one = {1, 0};
	event_add(t->tick, &one);
	if (bt_picker_done(t->picker)) {
		t->finished = true;
		if (t->tracker && t->opts.seed)
			bt_tracker_start(t->tracker);
		t->ev.complete(t->arg);
		return;
	}
	if (t->tracker)
		bt_tracker_start(t->tracker);
	connect_more(t);
	if (!t->tracker && t->ncands == 0)
		fail_torrent(t, "no peers: the torrent has no trackers and no --peer was given");
}

void bt_torrent_stop(struct bt_torrent *t)
{
	t->stopping = true;
	for (size_t i = 0; i < t->nconns; i++)
		if (!t->conns[i]->reaping)
			bt_peer_close(t->conns[i]->peer);
	if (!t->tracker) {
		t->stopped = true;
		return;
	}
	bt_tracker_update(t->tracker, 0, (int64_t)t->received_bytes,
			  (int64_t)(t->wanted_bytes - t->verified_bytes));
	bt_tracker_stop(t->tracker);
}

bool bt_torrent_stopped(const struct bt_torrent *t)
{
	return t->stopped;
}

void bt_torrent_get_stats(const struct bt_torrent *t, struct bt_torrent_stats *out)
{
	memset(out, 0, sizeof *out);
	out->wanted_bytes = t->wanted_bytes;
	out->verified_bytes = t->verified_bytes;
	out->received_bytes = t->received_bytes;
	out->pieces_failed = t->pieces_failed;
	out->rate = t->rate;
	out->first_byte_s = t->first_byte;
	out->uploaded_bytes = t->uploaded_closed;
	for (size_t i = 0; i < t->nconns; i++)
		out->uploaded_bytes +=
			t->conns[i]->reaping ? 0 : bt_peer_uploaded(t->conns[i]->peer);
	for (size_t i = 0; i < t->nconns; i++) {
		const struct conn *c = t->conns[i];
		if (c->reaping || bt_peer_phase(c->peer) < BT_PEER_AWAIT_FIRST_MSG ||
		    bt_peer_phase(c->peer) == BT_PEER_CLOSING)
			continue;
		out->peers_connected++;
		out->peers_unchoking += !bt_peer_choking_us(c->peer);
		out->up_rate += bt_peer_up_rate(c->peer);
	}
	for (size_t i = 0; i < t->ncands; i++)
		out->peers_used += t->cands[i].bytes > 0;
}

size_t bt_torrent_peer_stats(const struct bt_torrent *t, struct bt_torrent_peer_stat **out)
{
	struct bt_torrent_peer_stat *v = bt_xcalloc(t->ncands ? t->ncands : 1, sizeof *v);
	size_t n = 0;
	for (size_t i = 0; i < t->ncands; i++) {
		if (!t->cands[i].handshaken)
			continue;
		snprintf(v[n].name, sizeof v[n].name, "%s", t->cands[i].name);
		v[n].bytes = t->cands[i].bytes;
		v[n].strikes = t->cands[i].strikes;
		v[n].banned = t->cands[i].banned;
		n++;
	}
	*out = v;
	return n;
}

void bt_torrent_accept(struct bt_torrent *t, int fd, const struct sockaddr *sa, socklen_t len)
{
	if (t->stopping || t->failed || live_conns(t) >= t->opts.max_peers) {
		close(fd);
		return;
	}
	size_t before = t->ncands;
	bt_torrent_add_peer(t, sa, len);
	size_t i;
	for (i = 0; i < t->ncands; i++)
		if (t->cands[i].len == len && memcmp(&t->cands[i].addr, sa, len) == 0)
			break;
	if (i == t->ncands || t->cands[i].banned || t->cands[i].peer) {
		close(fd);
		return;
	}
	if (i >= before)
		t->cands[i].incoming = true;
	struct bt_peer_config cfg = peer_config(t);
	struct conn *c = add_conn(t, i);
	c->peer = bt_peer_adopt(bt_session_base(t->session), fd, &cfg, NULL, &peer_events, c);
	t->cands[i].peer = c->peer;
}

void bt_torrent_set_port(struct bt_torrent *t, uint16_t port)
{
	t->opts.port = port;
	if (t->tracker)
		bt_tracker_set_port(t->tracker, port);
}
