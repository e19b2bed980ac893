/*
 * The torrent's peer exchange (BEP 11) and partial seeds (BEP 21): see torrent.h. The codec and
 * the per-connection sender and receiver state are bt/pex.h; this file feeds them the torrent's
 * connections and puts what peers tell us into the address book.
 */
#include "torrent_internal.h"

#include "bt/bitfield.h"
#include "bt/log.h"
#include "bt/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Never before the metadata is known (a magnet's torrent may turn out to be private), and never
 * on a private torrent, where peers may come only from its tracker (BEP 27).
 */
bool bt_torrent_pex_enabled(const struct bt_torrent *t)
{
	return t->m && !t->m->is_private;
}

static void close_conn(struct bt_torrent *t, struct conn *c, const char *why)
{
	char subject[80];
	bt_log(BT_LOG_DEBUG, bt_torrent_peer_subject(t, c, subject, sizeof subject), "%s", why);
	bt_addrbook_set_error(t->book, c->addr, why);
	bt_peer_close(c->peer);
	bt_torrent_reap(t, c);
}

/* A seed by its bitfield, or upload-only by its word: nothing left that it wants from anyone. */
static bool done_peer(const struct conn *c)
{
	const struct bt_bitfield *bf = bt_peer_bitfield(c->peer);
	return c->upload_only || (bf->nbits > 0 && bt_bitfield_full(bf));
}

/*
 * The address others can dial the connection's peer at: the one we dialled, or for a peer that
 * dialled us, its address with the listen port from its extended handshake (its source port is
 * ephemeral). False when we know no such address.
 */
static bool listen_addr(const struct bt_torrent *t, const struct conn *c, struct bt_pex_peer *out)
{
	if (c->reaping || bt_peer_phase(c->peer) != BT_PEER_ACTIVE)
		return false;
	const struct bt_addrbook_entry *e = bt_addrbook_get(t->book, c->addr);
	if (!e || !bt_peer_addr_from_sockaddr((const struct sockaddr *)&e->addr, &out->addr))
		return false;
	if (!c->outgoing) {
		if (!c->listen_port)
			return false;
		out->addr.port = c->listen_port;
	}
	out->flags = (uint8_t)((c->outgoing ? BT_PEX_F_REACHABLE : 0) |
			       (done_peer(c) ? BT_PEX_F_SEED : 0));
	return true;
}

void bt_torrent_pex_tick(struct bt_torrent *t)
{
	if (!bt_torrent_pex_enabled(t) || t->nconns < 2)
		return;
	struct bt_pex_peer *current = bt_xcalloc(t->nconns, sizeof *current);
	struct conn **at = bt_xcalloc(t->nconns, sizeof *at);
	size_t n = 0;
	for (size_t i = 0; i < t->nconns; i++)
		if (listen_addr(t, t->conns[i], &current[n]))
			at[n++] = t->conns[i];
	double now = bt_now();
	struct bt_buf b;
	bt_buf_init(&b);
	struct bt_pex_peer *told = bt_xcalloc(n ? n : 1, sizeof *told);
	for (size_t i = 0; i < t->nconns; i++) {
		struct conn *c = t->conns[i];
		if (c->reaping || !c->ut_pex || bt_peer_phase(c->peer) != BT_PEER_ACTIVE)
			continue;
		/*
		 * A newcomer hears of the peers met before it; they hear of it only once it is a
		 * minute old. Told of each other at the same moment, two peers dial each other at
		 * once, and libtorrent then drops both connections as duplicates of each other.
		 * The recipient is left out of its own list, by the address it is listed at.
		 */
		const struct bt_peer_addr *self = NULL;
		size_t nt = 0;
		for (size_t k = 0; k < n; k++)
			if (at[k] == c)
				self = &current[k].addr;
			else if (at[k]->since < c->since || now - at[k]->since >= BT_PEX_INTERVAL_S)
				told[nt++] = current[k];
		b.len = 0;
		if (bt_pex_sender_poll(&c->pex_out, told, nt, self, now, &b)) {
			char subject[80];
			bt_log(BT_LOG_DEBUG, bt_torrent_peer_subject(t, c, subject, sizeof subject),
			       "PEX sent (%zu bytes)", b.len);
			(void)bt_peer_send_extended(c->peer, c->ut_pex, b.data, b.len);
		}
	}
	bt_buf_deinit(&b);
	free(told);
	free(at);
	free(current);
}

/* Whether the address is connected now, or ours: not worth a new entry. */
static bool known_here(const struct bt_torrent *t, const struct sockaddr *sa, socklen_t len)
{
	if (bt_session_is_self(t->session, sa))
		return true;
	int h = bt_addrbook_find(t->book, sa, len);
	const struct bt_addrbook_entry *e = h >= 0 ? bt_addrbook_get(t->book, h) : NULL;
	return e && (e->connected || e->self || e->banned);
}

void bt_torrent_pex_on_message(struct bt_torrent *t, struct conn *c, const uint8_t *payload,
			       size_t len)
{
	char subject[80];
	/* We did not offer ut_pex here (a private torrent, or metadata not known yet). */
	if (!bt_torrent_pex_enabled(t))
		return;
	double now = bt_now();
	if (bt_pex_receiver_on_message(&c->pex_in, now) == -EBUSY) {
		close_conn(t, c, "sent PEX more than once a minute");
		return;
	}
	struct bt_pex_msg m;
	struct bt_err err;
	if (bt_pex_parse(&m, payload, len, &err)) {
		bt_log(BT_LOG_DEBUG, bt_torrent_peer_subject(t, c, subject, sizeof subject),
		       "%s: ignored", err.msg);
		return;
	}
	size_t kept = 0, total = bt_pex_added_count(&m);
	for (size_t i = 0; i < total && kept < BT_PEX_MAX_ADDED; i++) {
		struct bt_pex_peer p;
		bt_pex_added(&m, i, &p);
		struct sockaddr_storage ss;
		socklen_t sl = p.addr.port ? bt_peer_addr_to_sockaddr(&p.addr, &ss) : 0;
		if (!sl || known_here(t, (struct sockaddr *)&ss, sl))
			continue;
		bool is_new = bt_addrbook_find(t->book, (struct sockaddr *)&ss, sl) < 0;
		int h = bt_addrbook_add(t->book, (struct sockaddr *)&ss, sl, BT_ADDRBOOK_PEX, now);
		if (h == -ENOSPC)
			break;
		if (h < 0)
			continue;
		bt_addrbook_set_pex_flags(t->book, h, p.flags);
		kept += is_new;
	}
	bt_log(BT_LOG_DEBUG, bt_torrent_peer_subject(t, c, subject, sizeof subject),
	       "PEX: %zu added (%zu new), %zu dropped", total, kept, bt_pex_dropped_count(&m));
}

void bt_torrent_pex_conn_gone(struct conn *c)
{
	bt_pex_sender_deinit(&c->pex_out);
}

void bt_torrent_pex_finished(struct bt_torrent *t)
{
	bt_torrent_resend_ext_handshake(t);
	for (size_t i = 0; i < t->nconns; i++) {
		struct conn *c = t->conns[i];
		if (c->reaping || bt_peer_phase(c->peer) != BT_PEER_ACTIVE || !done_peer(c))
			continue;
		close_conn(t, c,
			   c->upload_only ? "upload-only, and we have every piece we want"
					  : "a seed, as we are");
	}
}
