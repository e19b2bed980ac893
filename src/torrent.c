#include "torrent_internal.h"

#include "bt/addrbook.h"
#include "bt/dht_net.h"
#include "bt/assembly.h"
#include "bt/choker.h"
#include "bt/log.h"
#include "bt/metadata.h"
#include "bt/peer.h"
#include "bt/picker.h"
#include "bt/pipeline.h"
#include "bt/serveq.h"
#include "bt/session.h"
#include "bt/tracker.h"
#include "bt/verify.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void bt_torrent_fail(struct bt_torrent *t, const char *fmt, ...)
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

const char *bt_torrent_peer_subject(const struct bt_torrent *t, const struct conn *c, char *buf,
				    size_t n)
{
	snprintf(buf, n, "peer %s", bt_addrbook_get(t->book, c->addr)->name);
	return buf;
}

static void update_interest(struct bt_torrent *t, struct conn *c)
{
	if (!t->m)
		return;
	bool want = !t->finished && bt_picker_interesting(t->picker, bt_peer_bitfield(c->peer));
	bt_peer_set_interested(c->peer, want);
}

void bt_torrent_reap(struct bt_torrent *t, struct conn *c)
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
	bt_addrbook_handshaken(t->book, c->addr);
	size_t live = 0;
	for (size_t i = 0; i < t->nconns; i++)
		live += !t->conns[i]->reaping &&
			bt_peer_phase(t->conns[i]->peer) >= BT_PEER_AWAIT_FIRST_MSG &&
			bt_peer_phase(t->conns[i]->peer) != BT_PEER_CLOSING;
	if (live > t->peers_max)
		t->peers_max = live;
	char subject[80];
	bt_log(BT_LOG_DEBUG, bt_torrent_peer_subject(t, c, subject, sizeof subject),
	       "handshake done");
	bt_peer_send_bitfield(p, &t->have);
	bt_torrent_send_ext_handshake(t, c);
	/* Our DHT node's port, to a peer that set the DHT bit (BEP 5). */
	struct bt_dht_net *dht = bt_session_dht(t->session);
	if (dht)
		bt_peer_send_port(p, bt_dht_net_port(dht));
}

static void on_choked(void *arg, struct bt_peer *p, bool choked)
{
	struct conn *c = conn_of(p, arg);
	/* With Fast our requests stay out: each comes back as a PIECE or a REJECT. */
	if (choked && !(bt_peer_features(p) & BT_WIRE_FEAT_FAST))
		bt_torrent_return_requests(c->t, p);
	else
		bt_torrent_fill(c->t, c);
}

/* A new peer's first requests go out with its allowed-fast set, a round trip before its
 * UNCHOKE (libtorrent seeders send the set right after their bitfield). */
static void on_allowed_fast(void *arg, struct bt_peer *p, uint32_t piece)
{
	(void)piece;
	struct conn *c = conn_of(p, arg);
	if (bt_peer_choking_us(p))
		bt_torrent_fill(c->t, c);
}

/* Not refilled from here: a peer that rejects all we ask would make it a tight loop. */
static void on_rejected(void *arg, struct bt_peer *p, const struct bt_block *b)
{
	struct conn *c = conn_of(p, arg);
	if (c->t->picker)
		bt_picker_returned(c->t->picker, b);
}

static void on_has(void *arg, struct bt_peer *p, uint32_t piece)
{
	struct conn *c = conn_of(p, arg);
	struct bt_torrent *t = c->t;
	const struct bt_bitfield *bf = bt_peer_bitfield(p);
	if (!t->picker)
		return;
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
		bt_addrbook_set_error(t->book, c->addr, "a seed, as we are");
		bt_peer_close(p);
		bt_torrent_reap(t, c);
		return;
	}
	update_interest(t, c);
	bt_torrent_fill(t, c);
}

static uint8_t *on_block_dest(void *arg, struct bt_peer *p, const struct bt_block *b)
{
	struct conn *c = conn_of(p, arg);
	struct bt_torrent *t = c->t;
	if (!t->picker)
		return NULL;
	uint8_t *data = bt_assembly_get(&t->assembly, b->piece);
	if (!bt_picker_is_pending(t->picker, b) || !data)
		return NULL;
	return data + b->begin;
}

static struct conn *conn_for_addr(struct bt_torrent *t, int addr)
{
	for (size_t i = 0; i < t->nconns; i++)
		if (t->conns[i]->addr == addr && !t->conns[i]->reaping)
			return t->conns[i];
	return NULL;
}

static void piece_failed(struct bt_torrent *t, uint32_t piece)
{
	size_t n;
	const int *contributors = bt_assembly_contributors(&t->assembly, piece, &n);
	t->pieces_failed++;
	for (size_t i = 0; i < n; i++) {
		/* A peer that alone sent a bad piece is certainly lying; a shared one may not be.
		 */
		uint32_t strikes = n == 1 ? BT_ADDRBOOK_MAX_STRIKES : 1;
		if (!bt_addrbook_strike(t->book, contributors[i], strikes,
					"sent data that failed verification"))
			continue;
		struct conn *c = conn_for_addr(t, contributors[i]);
		if (c) {
			bt_torrent_return_requests(t, c->peer);
			bt_peer_close(c->peer);
			bt_torrent_reap(t, c);
		}
	}
	bt_assembly_release(&t->assembly, piece);
	bt_picker_piece_failed(t->picker, piece);
}

void bt_torrent_piece_complete(struct bt_torrent *t, uint32_t piece)
{
	const uint8_t *data = bt_assembly_get(&t->assembly, piece);
	size_t size = (size_t)bt_meta_piece_size(t->m, piece);
	int good = bt_verify_piece_rc(t->m, piece, data);
	if (good < 0) {
		/* Our own file failed, not the senders: they are not struck. */
		bt_assembly_release(&t->assembly, piece);
		bt_torrent_fail(t, "piece %" PRIu32 ": cannot read its hash: %s", piece,
				strerror(-good));
		return;
	}
	if (!good) {
		piece_failed(t, piece);
		return;
	}
	struct bt_err err;
	if (t->ev.piece_verified(t->arg, piece, data, &err)) {
		bt_assembly_release(&t->assembly, piece);
		bt_torrent_fail(t, "%s", err.msg);
		return;
	}
	bt_assembly_release(&t->assembly, piece);
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
		bt_torrent_pex_finished(t);
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
	if (!t->picker)
		return;
	double now = bt_now();
	if (t->first_byte < 0)
		t->first_byte = now - t->started;
	t->last_data = now;
	t->received_bytes += b->length;
	t->rate_window += b->length;
	bt_addrbook_add_bytes(t->book, c->addr, b->length);
	bool complete;
	uint32_t asked = bt_picker_requests(t->picker, b);
	if (!bt_picker_received(t->picker, b, &complete))
		return;
	bt_assembly_add_contributor(&t->assembly, b->piece, c->addr);
	/* Asked of others too (endgame, or a slow peer's block): their copies are not needed. */
	if (asked > 1 || bt_picker_in_endgame(t->picker) || complete)
		bt_torrent_cancel_copies(t, c, b);
	if (complete)
		bt_torrent_piece_complete(t, b->piece);
	if (!t->finished && !t->failed)
		bt_torrent_fill(t, c);
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
	bt_addrbook_set_error(t->book, c->addr, reason);
	/* We reached ourselves (our peer id came back): that address is never dialled again. */
	if (bt_peer_is_self(p))
		bt_addrbook_mark_self(t->book, c->addr);
	char subject[80];
	bt_log(BT_LOG_DEBUG, bt_torrent_peer_subject(t, c, subject, sizeof subject), "closed: %s",
	       reason);
	bt_torrent_return_requests(t, p);
	bt_torrent_reap(t, c);
	if (t->md && c->md_peer) {
		c->md_peer = false;
		bt_metadata_remove_peer(t->md, c->addr);
		bt_torrent_request_metadata(t);
	}
	/* Its blocks go to the others at once. */
	for (size_t i = 0; i < t->nconns; i++)
		if (t->conns[i] != c)
			bt_torrent_fill(t, t->conns[i]);
}

static const struct bt_peer_events peer_events = {
	.handshake = on_handshake,
	.choked = on_choked,
	.rejected = on_rejected,
	.allowed_fast = on_allowed_fast,
	.has = on_has,
	.block_dest = on_block_dest,
	.block = on_block,
	.interest = on_interest,
	.read_block = on_read_block,
	.closed = on_closed,
	.extended = bt_torrent_on_extended,
	.dht_port = bt_torrent_on_dht_port,
};

static struct bt_peer_config peer_config(const struct bt_torrent *t)
{
	struct bt_peer_config cfg = {
		.geo = t->m ? bt_meta_geometry(t->m) : (struct bt_geometry){0},
		.ours = &t->have,
		.down_limit = bt_session_down_limit(t->session),
		.up_limit = bt_session_up_limit(t->session),
		.request_timeout_s = t->opts.request_timeout_s,
	};
	cfg.bind_addr = bt_session_source(t->session, &cfg.bind_len);
	memcpy(cfg.info_hash, t->info_hash, BT_HASH_LEN);
	memcpy(cfg.peer_id, bt_session_peer_id(t->session), BT_PEER_ID_LEN);
	memcpy(cfg.reserved,
	       t->opts.course_handshake ? bt_wire_reserved_ext : bt_wire_reserved_fast, 8);
	/* The DHT bit (BEP 5) while our node runs; never in the course's exact bytes. */
	if (!t->opts.course_handshake && bt_session_dht(t->session))
		cfg.reserved[7] |= 0x01;
	return cfg;
}

static struct conn *add_conn(struct bt_torrent *t, int addr)
{
	struct conn *c = bt_xcalloc(1, sizeof *c);
	c->t = t;
	c->addr = addr;
	c->since = bt_now();
	bt_bitfield_init(&c->counted, t->m ? t->m->piece_count : 0);
	if (t->nconns == t->conns_cap) {
		t->conns_cap = t->conns_cap ? t->conns_cap * 2 : 16;
		t->conns = bt_xreallocarray(t->conns, t->conns_cap, sizeof *t->conns);
	}
	t->conns[t->nconns++] = c;
	return c;
}

static void connect_addr(struct bt_torrent *t, int addr)
{
	const struct bt_addrbook_entry *e = bt_addrbook_get(t->book, addr);
	struct bt_peer_config cfg = peer_config(t);
	struct conn *c = add_conn(t, addr);
	c->outgoing = true;
	c->peer = bt_peer_connect(bt_session_base(t->session), (const struct sockaddr *)&e->addr,
				  e->len, &cfg, &peer_events, c);
}

static size_t live_conns(const struct bt_torrent *t)
{
	size_t n = 0;
	for (size_t i = 0; i < t->nconns; i++)
		n += !t->conns[i]->reaping;
	return n;
}

void bt_torrent_connect_more(struct bt_torrent *t)
{
	if ((t->finished && !t->opts.seed) || t->failed || t->stopping)
		return;
	double now = bt_now();
	for (size_t live = live_conns(t); live < t->opts.max_peers; live++) {
		int addr = bt_addrbook_next_to_dial(t->book, now);
		if (addr < 0)
			break;
		connect_addr(t, addr);
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
		bt_addrbook_closed(t->book, c->addr, now, NULL);
		t->uploaded_closed += bt_peer_uploaded(c->peer);
		t->served_closed += bt_peer_uploaded(c->peer) > 0;
		if (c->counted_in)
			bt_picker_remove_peer(t->picker, &c->counted);
		bt_bitfield_deinit(&c->counted);
		bt_torrent_pex_conn_gone(c);
		bt_peer_free(c->peer);
		free(c);
	}
	t->nconns = kept;
	bt_torrent_connect_more(t);
}

static bool any_hope(const struct bt_torrent *t)
{
	if (live_conns(t) > 0 || t->tracker || bt_torrent_webseed_hopeful(t))
		return true;
	if (t->dht_subscribed && bt_dht_net_hopeful(bt_session_dht(t->session)))
		return true;
	struct bt_addrbook_counts counts;
	bt_addrbook_counts(t->book, &counts);
	return counts.hopeful > 0;
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
	bt_torrent_pex_tick(t);
	if (t->finished) {
		bt_torrent_connect_more(t);
		return;
	}
	if (t->md) {
		bt_metadata_tick(t->md, now);
		bt_torrent_request_metadata(t);
	}
	bt_torrent_classify_peers(t);
	for (size_t i = 0; i < t->nconns; i++) {
		struct conn *c = t->conns[i];
		if (c->reaping || bt_peer_phase(c->peer) != BT_PEER_ACTIVE)
			continue;
		update_interest(t, c);
		bt_torrent_fill(t, c);
	}
	bt_torrent_webseed_tick(t);
	bt_torrent_connect_more(t);
	if (t->tracker && live_conns(t) < t->opts.max_peers / 2)
		bt_tracker_need_peers(t->tracker);
	if (!any_hope(t)) {
		char why[768];
		bt_torrent_describe_peers(t, "no peers left to download from", why, sizeof why);
		bt_torrent_fail(t, "%s", why);
		return;
	}
	/* No give-up by default: while a tracker or a peer may still bring data, wait (as aria2
	 * and Transmission do); only an explicit stall timeout ends the wait. */
	if (t->opts.stall_timeout_s > 0 && now - t->last_data > t->opts.stall_timeout_s) {
		char why[768];
		struct bt_torrent_stats st;
		bt_torrent_get_stats(t, &st);
		if (t->md)
			bt_torrent_describe_peers(t, "peers", why, sizeof why);
		else if (st.peers_connected == 0)
			bt_torrent_describe_peers(t, "no peers left to download from", why,
						  sizeof why);
		else
			snprintf(why, sizeof why, "%zu peers connected, %zu unchoking us",
				 st.peers_connected, st.peers_unchoking);
		if (t->md)
			bt_torrent_fail(
				t,
				"no metadata (info dict) for %.0f s: %zu peers connected, %zu "
				"offering it (%s)",
				t->opts.stall_timeout_s, st.peers_connected, st.metadata_peers,
				why);
		else
			bt_torrent_fail(t, "no data for %.0f s (%s)", t->opts.stall_timeout_s, why);
	}
}

/* Read-ahead of --sequential: about 8 MiB of pieces, at least 4 and at most 32 of them. */
#define SEQ_WINDOW_BYTES ((int64_t)8 << 20)

/* The picker's optional orders from the options (picker.h). */
static void set_piece_order(struct bt_torrent *t)
{
	const struct bt_metainfo *m = t->m;
	if (t->opts.first_last) {
		/* The picker ignores pieces not wanted, so only the selected files' count. */
		for (size_t i = 0; i < m->file_count; i++) {
			const struct bt_meta_file *f = &m->files[i];
			if (f->pad || f->length == 0)
				continue;
			bt_picker_add_priority(t->picker, (uint32_t)(f->offset / m->piece_length));
			bt_picker_add_priority(t->picker, (uint32_t)((f->offset + f->length - 1) /
								     m->piece_length));
		}
	}
	if (t->opts.sequential) {
		int64_t w = SEQ_WINDOW_BYTES / m->piece_length;
		bt_picker_set_sequential(t->picker, (uint32_t)(w < 4 ? 4 : w > 32 ? 32 : w));
	}
}

/* The pieces: what we have and want, the picker and the assembly buffers. */
static void setup_pieces(struct bt_torrent *t, const struct bt_metainfo *m,
			 const struct bt_bitfield *have, const struct bt_bitfield *want)
{
	t->m = m;
	bt_bitfield_deinit(&t->have);
	bt_bitfield_init(&t->have, m->piece_count);
	t->wanted_bytes = t->verified_bytes = 0;
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
	bt_assembly_init(&t->assembly, &geo, BT_ASSEMBLY_DEFAULT_BUDGET);
	bt_picker_set_max_partial(t->picker, bt_assembly_max_partial(&t->assembly));
	set_piece_order(t);
}

/* Everything but the pieces and the trackers. */
static struct bt_torrent *torrent_alloc(struct bt_session *s, const uint8_t *info_hash,
					const struct bt_torrent_opts *opts,
					const struct bt_torrent_events *ev, void *arg)
{
	struct bt_torrent *t = bt_xcalloc(1, sizeof *t);
	t->session = s;
	memcpy(t->info_hash, info_hash, BT_HASH_LEN);
	if (opts)
		t->opts = *opts;
	if (!t->opts.max_peers)
		t->opts.max_peers = 50;
	if (!t->opts.port)
		t->opts.port = 6881;
	t->ev = *ev;
	t->arg = arg;
	t->first_byte = -1;
	bt_bitfield_init(&t->have, 0);
	uint64_t seed;
	bt_random_bytes(&seed, sizeof seed);
	t->book = bt_addrbook_new(BT_ADDRBOOK_DEFAULT_CAPACITY, seed);
	bt_choker_init(&t->choker, seed ^ 0x5bd1e995);
	t->pick_buf = bt_xcalloc(BT_PIPELINE_MAX_TARGET, sizeof *t->pick_buf);
	struct event_base *base = bt_session_base(s);
	t->tick = event_new(base, -1, EV_PERSIST, on_tick, t);
	t->reap = event_new(base, -1, 0, on_reap, t);
	t->meta_ready = event_new(base, -1, 0, bt_torrent_on_meta_ready, t);
	if (!t->tick || !t->reap || !t->meta_ready)
		bt_oom();
	return t;
}

struct bt_torrent *bt_torrent_new(struct bt_session *s, const struct bt_metainfo *m,
				  const struct bt_bitfield *have, const struct bt_bitfield *want,
				  const struct bt_torrent_opts *opts,
				  const struct bt_torrent_events *ev, void *arg)
{
	struct bt_torrent *t = torrent_alloc(s, m->info_hash, opts, ev, arg);
	setup_pieces(t, m, have, want);
	bt_torrent_make_tracker(t, m->tiers, m->tier_count);
	return t;
}

struct bt_torrent *bt_torrent_new_magnet(struct bt_session *s, const uint8_t info_hash[BT_HASH_LEN],
					 const struct bt_meta_tier *tiers, size_t tier_count,
					 const struct bt_torrent_opts *opts,
					 const struct bt_torrent_events *ev, void *arg)
{
	struct bt_torrent *t = torrent_alloc(s, info_hash, opts, ev, arg);
	t->md = bt_metadata_new(info_hash);
	bt_torrent_make_tracker(t, tiers, tier_count);
	return t;
}

void bt_torrent_set_metainfo(struct bt_torrent *t, const struct bt_metainfo *m,
			     const struct bt_bitfield *have, const struct bt_bitfield *want)
{
	if (t->m)
		return;
	setup_pieces(t, m, have, want);
	for (size_t i = 0; i < t->nconns; i++)
		t->conns[i]->md_peer = false;
	struct bt_geometry geo = bt_meta_geometry(m);
	/* Peers met meanwhile get the geometry; what they said they have is judged now. */
	for (size_t i = 0; i < t->nconns; i++) {
		struct conn *c = t->conns[i];
		bt_bitfield_deinit(&c->counted);
		bt_bitfield_init(&c->counted, m->piece_count);
		if (c->reaping || bt_peer_set_geometry(c->peer, &geo) != 0 || c->reaping)
			continue;
		if (bt_peer_phase(c->peer) == BT_PEER_ACTIVE)
			for (uint32_t k = 0; k < m->piece_count && t->have.count; k++)
				if (bt_bitfield_get(&t->have, k))
					bt_peer_send_have(c->peer, k);
	}
	if (t->tracker)
		bt_tracker_update(t->tracker, (int64_t)t->uploaded_closed,
				  (int64_t)t->received_bytes, bt_torrent_bytes_left(t));
	bt_torrent_dht_subscribe(t, true); /* off again if the torrent turned out private */
	if (bt_picker_done(t->picker) && !t->finished) {
		t->finished = true;
		bt_torrent_pex_finished(t);
		t->ev.complete(t->arg);
		return;
	}
	/* Now that the torrent is known not to be private, the peers may hear that we do PEX. */
	if (bt_torrent_pex_enabled(t))
		bt_torrent_resend_ext_handshake(t);
	for (size_t i = 0; i < t->nconns; i++)
		if (!t->conns[i]->reaping && bt_peer_phase(t->conns[i]->peer) == BT_PEER_ACTIVE) {
			update_interest(t, t->conns[i]);
			bt_torrent_fill(t, t->conns[i]);
		}
	bt_torrent_webseed_start(t);
	bt_torrent_connect_more(t);
}

void bt_torrent_free(struct bt_torrent *t)
{
	if (!t)
		return;
	if (t->registered)
		bt_session_unregister(t->session, t->info_hash);
	bt_torrent_dht_subscribe(t, false);
	bt_torrent_webseed_free(t);
	for (size_t i = 0; i < t->nconns; i++) {
		bt_bitfield_deinit(&t->conns[i]->counted);
		bt_torrent_pex_conn_gone(t->conns[i]);
		bt_peer_free(t->conns[i]->peer);
		free(t->conns[i]);
	}
	free(t->conns);
	if (t->m)
		bt_assembly_deinit(&t->assembly);
	bt_metadata_free(t->md);
	bt_addrbook_free(t->book);
	free(t->pick_buf);
	bt_tracker_free(t->tracker);
	bt_picker_free(t->picker);
	bt_bitfield_deinit(&t->have);
	event_free(t->tick);
	event_free(t->reap);
	event_free(t->meta_ready);
	free(t);
}

void bt_torrent_add_peer(struct bt_torrent *t, const struct sockaddr *sa, socklen_t len)
{
	bt_addrbook_add(t->book, sa, len, BT_ADDRBOOK_MANUAL, bt_now());
}

static void on_incoming(void *arg, int fd, const struct sockaddr *sa, socklen_t len,
			const struct bt_handshake *h)
{
	bt_torrent_accept(arg, fd, sa, len, h);
}

void bt_torrent_start(struct bt_torrent *t)
{
	t->registered = bt_session_register(t->session, t->info_hash, on_incoming, t) == 0;
	t->started = t->last_data = bt_now();
	struct timeval one = {1, 0};
	event_add(t->tick, &one);
	if (t->picker && bt_picker_done(t->picker)) {
		t->finished = true;
		if (t->opts.seed) {
			if (t->tracker)
				bt_tracker_start(t->tracker);
			bt_torrent_dht_subscribe(t, true);
		}
		t->ev.complete(t->arg);
		return;
	}
	if (t->tracker)
		bt_tracker_start(t->tracker);
	bt_torrent_dht_subscribe(t, true);
	bt_torrent_webseed_start(t);
	bt_torrent_connect_more(t);
	struct bt_addrbook_counts counts;
	bt_addrbook_counts(t->book, &counts);
	if (!t->tracker && !t->dht_subscribed && counts.known == 0 && !t->webseeds)
		bt_torrent_fail(t,
				"no peers: the torrent has no trackers and no --peer was given%s",
				bt_session_dht(t->session) ? "" : ", and the DHT is off");
}

void bt_torrent_stop(struct bt_torrent *t)
{
	t->stopping = true;
	bt_torrent_dht_subscribe(t, false);
	bt_torrent_webseed_stop(t);
	for (size_t i = 0; i < t->nconns; i++)
		if (!t->conns[i]->reaping)
			bt_peer_close(t->conns[i]->peer);
	if (!t->tracker) {
		t->stopped = true;
		return;
	}
	bt_tracker_update(t->tracker, 0, (int64_t)t->received_bytes, bt_torrent_bytes_left(t));
	bt_tracker_stop(t->tracker);
}

bool bt_torrent_stopped(const struct bt_torrent *t)
{
	return t->stopped;
}

void bt_torrent_accept(struct bt_torrent *t, int fd, const struct sockaddr *sa, socklen_t len,
		       const struct bt_handshake *h)
{
	if (t->stopping || t->failed || live_conns(t) >= t->opts.max_peers) {
		close(fd);
		return;
	}
	double now = bt_now();
	int addr = bt_addrbook_add(t->book, sa, len, BT_ADDRBOOK_INCOMING, now);
	if (addr < 0 || bt_addrbook_connected(t->book, addr, now) != 0) {
		close(fd);
		return;
	}
	struct bt_peer_config cfg = peer_config(t);
	struct conn *c = add_conn(t, addr);
	c->peer = bt_peer_adopt(bt_session_base(t->session), fd, &cfg, h, &peer_events, c);
}

void bt_torrent_set_port(struct bt_torrent *t, uint16_t port)
{
	t->opts.port = port;
	if (t->tracker)
		bt_tracker_set_port(t->tracker, port);
}
