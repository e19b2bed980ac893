/* The torrent's extension protocol (BEP 10) and metadata exchange (BEP 9): see torrent.h. */
#include "torrent_internal.h"

#include "bt/ext.h"
#include "bt/log.h"
#include "bt/serveq.h"
#include "bt/session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/*
 * Our BEP 10 handshake, after the bitfield (rtorrent and aria2 want BITFIELD first): ut_metadata
 * (with the dict's size once we know it), ut_pex once we know the torrent is not private,
 * upload_only (BEP 21) once every wanted piece is done, our listen port, `reqq` (how many requests
 * we queue, so a client that pipelines thousands, Transmission, does not wait forever for the ones
 * we would drop), our version and the address we see the peer at. Nothing is sent to a peer without
 * the extension bit.
 */
void bt_torrent_send_ext_handshake(struct bt_torrent *t, struct conn *c)
{
	const struct bt_addrbook_entry *e = bt_addrbook_get(t->book, c->addr);
	struct bt_ext_handshake_out ours = {
		.ut_metadata = true,
		.ut_pex = bt_torrent_pex_enabled(t),
		.upload_only = t->finished,
		.metadata_size = t->m ? (int64_t)t->m->info_len : 0,
		.port = bt_session_listen_port(t->session),
		.reqq = BT_SERVEQ_CAP,
		.version = "torrent " BT_VERSION,
		.yourip = (const struct sockaddr *)&e->addr,
	};
	struct bt_buf b;
	bt_buf_init(&b);
	bt_ext_handshake_encode(&b, &ours);
	(void)bt_peer_send_extended(c->peer, 0, b.data, b.len);
	bt_buf_deinit(&b);
}

void bt_torrent_resend_ext_handshake(struct bt_torrent *t)
{
	for (size_t i = 0; i < t->nconns; i++) {
		struct conn *c = t->conns[i];
		if (!c->reaping && bt_peer_phase(c->peer) == BT_PEER_ACTIVE)
			bt_torrent_send_ext_handshake(t, c);
	}
}

static void send_md(struct conn *c, int type, uint32_t piece, int64_t total, const uint8_t *data,
		    size_t len)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_ext_md_encode(&b, type, piece, total, data, len);
	(void)bt_peer_send_extended(c->peer, c->ut_metadata, b.data, b.len);
	bt_buf_deinit(&b);
}

/* Asks the peer for as many metadata blocks as the fetcher gives it. */
static void request_metadata(struct bt_torrent *t, struct conn *c)
{
	if (!t->md || !c->md_peer || c->reaping || bt_peer_phase(c->peer) != BT_PEER_ACTIVE)
		return;
	double now = bt_now();
	for (int i; (i = bt_metadata_next_request(t->md, c->addr, now)) >= 0;)
		send_md(c, BT_EXT_MD_REQUEST, (uint32_t)i, 0, NULL, 0);
}

void bt_torrent_request_metadata(struct bt_torrent *t)
{
	for (size_t i = 0; i < t->nconns; i++)
		request_metadata(t, t->conns[i]);
}

/* Answers a ut_metadata request: a block of the dict we have, or a reject. */
static void serve_metadata(struct bt_torrent *t, struct conn *c, uint32_t piece)
{
	if (!c->ut_metadata)
		return;
	const struct bt_metainfo *m = t->m;
	size_t off = (size_t)piece * BT_METADATA_BLOCK;
	if (!m || piece >= (m->info_len + BT_METADATA_BLOCK - 1) / BT_METADATA_BLOCK) {
		send_md(c, BT_EXT_MD_REJECT, piece, 0, NULL, 0);
		return;
	}
	size_t len = m->info_len - off < BT_METADATA_BLOCK ? m->info_len - off : BT_METADATA_BLOCK;
	const uint8_t *blk = bt_meta_info_at(m, off, len); /* NULL: the spill file failed */
	send_md(c, blk ? BT_EXT_MD_DATA : BT_EXT_MD_REJECT, piece, blk ? (int64_t)m->info_len : 0,
		blk, blk ? len : 0);
}

/* A fetch whose temporary file failed cannot go on: the torrent fails with its reason. */
static bool metadata_broken(struct bt_torrent *t)
{
	const char *why = bt_metadata_error(t->md);
	if (why && !t->failed)
		bt_torrent_fail(t, "%s", why);
	return why != NULL;
}

static void close_conn(struct bt_torrent *t, struct conn *c, const char *why)
{
	bt_addrbook_set_error(t->book, c->addr, why);
	bt_peer_close(c->peer);
	bt_torrent_reap(t, c);
}

static void on_ext_handshake(struct bt_torrent *t, struct conn *c, const uint8_t *payload,
			     size_t len)
{
	struct bt_ext_handshake h;
	struct bt_err err;
	char subject[80];
	if (bt_ext_handshake_parse(&h, payload, len, &err)) {
		bt_log(BT_LOG_DEBUG, bt_torrent_peer_subject(t, c, subject, sizeof subject), "%s",
		       err.msg);
		close_conn(t, c, err.msg);
		return;
	}
	c->ut_metadata = h.ut_metadata;
	c->ut_pex = h.ut_pex;
	c->listen_port = h.port;
	c->upload_only = h.upload_only;
	c->ext_seen = true;
	/* More requests than its queue holds would be dropped, or the connection closed. */
	bt_peer_set_reqq(c->peer, h.reqq);
	/* Done and upload-only both: neither side wants anything from the other (BEP 21). */
	if (t->finished && h.upload_only) {
		close_conn(t, c, "upload-only, and we have every piece we want");
		return;
	}
	if (t->ev.peer_extended)
		t->ev.peer_extended(t->arg, bt_peer_id(c->peer), &h);
	if (t->md && h.ut_metadata && h.metadata_size > 0 && !c->md_peer && !c->reaping &&
	    bt_metadata_add_peer(t->md, c->addr, h.metadata_size) == 0) {
		c->md_peer = true;
		if (!metadata_broken(t))
			request_metadata(t, c);
	}
}

/* Bans the peers the fetcher found lying (their dict did not hash). */
static void drop_metadata_liars(struct bt_torrent *t)
{
	for (size_t i = 0; i < t->nconns; i++) {
		struct conn *c = t->conns[i];
		if (c->reaping || !c->md_peer || !bt_metadata_banned(t->md, c->addr))
			continue;
		bt_addrbook_strike(t->book, c->addr, BT_ADDRBOOK_MAX_STRIKES,
				   "sent metadata that does not match the info hash");
		bt_metadata_remove_peer(t->md, c->addr);
		c->md_peer = false;
		bt_peer_close(c->peer);
		bt_torrent_reap(t, c);
	}
}

static void on_md_message(struct bt_torrent *t, struct conn *c, const uint8_t *payload, size_t len)
{
	struct bt_ext_md_msg msg;
	struct bt_err err;
	char subject[80];
	if (bt_ext_md_parse(&msg, payload, len, &err)) {
		bt_log(BT_LOG_DEBUG, bt_torrent_peer_subject(t, c, subject, sizeof subject), "%s",
		       err.msg);
		close_conn(t, c, err.msg);
		return;
	}
	if (msg.type == BT_EXT_MD_REQUEST) {
		serve_metadata(t, c, msg.piece);
		return;
	}
	if (!t->md || !c->md_peer)
		return;
	double now = bt_now();
	if (msg.type == BT_EXT_MD_REJECT) {
		bt_addrbook_set_error(t->book, c->addr, "rejected our metadata requests");
		bt_metadata_on_reject(t->md, c->addr, msg.piece, now);
		bt_torrent_request_metadata(t);
		return;
	}
	if (msg.type != BT_EXT_MD_DATA)
		return;
	t->last_data = now;
	switch (bt_metadata_on_data(t->md, c->addr, msg.piece, msg.total_size, msg.data,
				    msg.data_len, now, &err)) {
	case BT_METADATA_COMPLETE:
		event_active(t->meta_ready, EV_TIMEOUT, 0);
		return;
	case BT_METADATA_FAILED:
		bt_log(BT_LOG_WARN, "metadata",
		       "the assembled info dict does not match the info "
		       "hash; fetching it again");
		drop_metadata_liars(t);
		if (!metadata_broken(t))
			bt_torrent_request_metadata(t);
		return;
	case BT_METADATA_ERROR:
		metadata_broken(t);
		return;
	default:
		request_metadata(t, c);
		return;
	}
}

void bt_torrent_on_extended(void *arg, struct bt_peer *p, uint8_t ext_id, const uint8_t *payload,
			    size_t len)
{
	struct conn *c = conn_of(p, arg);
	struct bt_torrent *t = c->t;
	if (c->reaping)
		return;
	if (ext_id == 0)
		on_ext_handshake(t, c, payload, len);
	else if (ext_id == BT_EXT_ID_UT_METADATA)
		on_md_message(t, c, payload, len);
	else if (ext_id == BT_EXT_ID_UT_PEX)
		bt_torrent_pex_on_message(t, c, payload, len);
	/* Other ids are extensions we did not announce: ignored. */
}

/* The fetched dict, handed to the owner from the loop (not from inside a peer's callback). */
void bt_torrent_on_meta_ready(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bt_torrent *t = arg;
	if (!t->md || t->failed || t->stopping)
		return;
	struct bt_err err;
	bt_log(BT_LOG_DEBUG, "metadata", "received the info dict (%" PRId64 " bytes%s)",
	       bt_metadata_size(t->md), bt_metadata_in_file(t->md) ? ", in a temporary file" : "");
	int rc = t->ev.metadata ? t->ev.metadata(t->arg, t->md, &err) : 0;
	if (rc) {
		bt_torrent_fail(t, "%s", err.msg);
		return;
	}
	if (t->m) {
		bt_metadata_free(t->md);
		t->md = NULL;
	}
}
