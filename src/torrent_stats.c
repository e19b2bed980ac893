/* The torrent's statistics and what it is waiting for: see torrent.h. */
#include "torrent_internal.h"

#include "bt/dht_net.h"
#include "bt/session.h"
#include "bt/tracker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bt_torrent_get_stats(const struct bt_torrent *t, struct bt_torrent_stats *out)
{
	memset(out, 0, sizeof *out);
	out->wanted_bytes = t->wanted_bytes;
	out->verified_bytes = t->verified_bytes;
	out->received_bytes = t->received_bytes;
	out->webseed_bytes = t->webseed_bytes;
	out->webseeds = bt_torrent_webseed_count(t, &out->webseeds_active);
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
	struct bt_addrbook_counts counts;
	bt_addrbook_counts(t->book, &counts);
	out->peers_used = counts.used;
	out->has_metadata = t->m != NULL;
	out->peers_max = t->peers_max;
	struct bt_dht_net *dht = bt_session_dht(t->session);
	if (dht) {
		struct bt_dht_net_stats ds;
		bt_dht_net_get_stats(dht, &ds);
		out->dht = true;
		out->dht_nodes = ds.nodes;
		out->dht_peers = t->dht_peers;
	}
	if (t->md) {
		struct bt_metadata_progress mp;
		bt_metadata_progress(t->md, &mp);
		out->metadata_peers = mp.peers;
		out->metadata_blocks_done = mp.blocks_have;
		out->metadata_blocks_total = mp.blocks_total;
	}
}

size_t bt_torrent_peer_stats(const struct bt_torrent *t, struct bt_torrent_peer_stat **out)
{
	struct bt_addrbook_counts counts;
	bt_addrbook_counts(t->book, &counts);
	struct bt_torrent_peer_stat *v = bt_xcalloc(counts.known ? counts.known : 1, sizeof *v);
	size_t n = 0;
	for (int h = -1; (h = bt_addrbook_next(t->book, h)) >= 0;) {
		const struct bt_addrbook_entry *e = bt_addrbook_get(t->book, h);
		if (!e->handshaken)
			continue;
		snprintf(v[n].name, sizeof v[n].name, "%s", e->name);
		v[n].bytes = e->bytes;
		v[n].strikes = e->strikes;
		v[n].banned = e->banned;
		n++;
	}
	*out = v;
	return n;
}

const struct bt_bitfield *bt_torrent_have(const struct bt_torrent *t)
{
	return &t->have;
}

size_t bt_torrent_peers_served(const struct bt_torrent *t)
{
	size_t n = t->served_closed;
	for (size_t i = 0; i < t->nconns; i++)
		n += !t->conns[i]->reaping && bt_peer_uploaded(t->conns[i]->peer) > 0;
	return n;
}

const char *bt_torrent_phase(const struct bt_torrent *t, char *buf, size_t n)
{
	if (t->first_byte >= 0 || t->finished || t->failed || t->stopping)
		return NULL;
	if (t->md) {
		struct bt_metadata_progress mp;
		bt_metadata_progress(t->md, &mp);
		snprintf(buf, n, "fetching metadata: %zu peer%s offering it, %u of %u blocks",
			 mp.peers, mp.peers == 1 ? "" : "s", mp.blocks_have, mp.blocks_total);
		return buf;
	}
	size_t dialling = 0, connected = 0;
	for (size_t i = 0; i < t->nconns; i++) {
		const struct conn *c = t->conns[i];
		enum bt_peer_phase ph = c->reaping ? BT_PEER_CLOSING : bt_peer_phase(c->peer);
		dialling += ph < BT_PEER_AWAIT_FIRST_MSG;
		connected += ph == BT_PEER_AWAIT_FIRST_MSG || ph == BT_PEER_ACTIVE;
	}
	if (connected)
		snprintf(buf, n, "waiting for data from %zu peer%s", connected,
			 connected == 1 ? "" : "s");
	else if (dialling)
		snprintf(buf, n, "connecting to %zu peer%s", dialling, dialling == 1 ? "" : "s");
	else
		snprintf(buf, n, "%s",
			 t->tracker && !bt_tracker_working_url(t->tracker) ? "waiting for trackers"
									   : "waiting for peers");
	return buf;
}

/* Says what became of the peers (the first few), for the error a user sees. */
void bt_torrent_describe_peers(const struct bt_torrent *t, const char *lead, char *out, size_t n)
{
	size_t len = (size_t)snprintf(out, n, "%s", lead);
	struct bt_addrbook_counts counts;
	bt_addrbook_counts(t->book, &counts);
	int h = -1;
	for (size_t i = 0; i < 3 && (h = bt_addrbook_next(t->book, h)) >= 0 && len < n; i++) {
		const struct bt_addrbook_entry *e = bt_addrbook_get(t->book, h);
		len += (size_t)snprintf(out + len, n - len, "%s %s: %s", i ? ";" : ":", e->name,
					e->last_error[0] ? e->last_error : "not tried");
	}
	if (counts.known > 3 && len < n)
		len += (size_t)snprintf(out + len, n - len, "; and %zu more", counts.known - 3);
	if (t->tracker && len < n)
		snprintf(out + len, n - len, "; tracker %s", bt_tracker_status(t->tracker));
}
