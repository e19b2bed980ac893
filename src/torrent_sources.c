/* Where a torrent's peers come from: its trackers, the DHT (and PORT messages): see torrent.h. */
#include "torrent_internal.h"

#include "bt/dht_net.h"
#include "bt/log.h"
#include "bt/session.h"
#include "bt/tracker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/*
 * A tracker's or the DHT's peers. A reply may list hundreds of thousands: the book takes the
 * source's share (BT_ADDRBOOK_DEFAULT_PER_SOURCE) in O(1) each and refuses the rest, so the walk
 * stops at the first refusal; it starts at a random place, so the part taken is not the source's
 * choice.
 */
/* Returns how many were not ourselves. */
static size_t add_peers(struct bt_torrent *t, const struct bt_peer_addr *peers, size_t n,
			const struct bt_peer_addr *self, enum bt_addrbook_source source)
{
	size_t others = 0;
	uint64_t r = 0;
	if (n > 1)
		bt_random_bytes(&r, sizeof r);
	size_t start = n ? (size_t)(r % n) : 0;
	double now = bt_now();
	for (size_t k = 0; k < n; k++) {
		size_t i = start + k < n ? start + k : start + k - n;
		/* Our own entry (the address the announce left from, our port) is never dialled. */
		if (self && self->family && bt_peer_addr_equal(self, &peers[i]))
			continue;
		struct sockaddr_storage ss;
		socklen_t len = bt_peer_addr_to_sockaddr(&peers[i], &ss);
		if (!len || bt_session_is_self(t->session, (struct sockaddr *)&ss))
			continue;
		others++;
		if (bt_addrbook_add(t->book, (struct sockaddr *)&ss, len, source, now) == -ENOSPC)
			break;
	}
	bt_torrent_connect_more(t);
	return others;
}

static void on_tracker_peers(void *arg, const struct bt_peer_addr *peers, size_t n,
			     const struct bt_peer_addr *self)
{
	(void)add_peers(arg, peers, n, self, BT_ADDRBOOK_TRACKER);
}

static size_t on_dht_peers(void *arg, const struct bt_peer_addr *peers, size_t n)
{
	struct bt_torrent *t = arg;
	size_t others = add_peers(t, peers, n, NULL, BT_ADDRBOOK_DHT);
	t->dht_peers += others;
	return others;
}

/* The DHT searches for our info hash while we run, except for a private torrent (BEP 27). */
void bt_torrent_dht_subscribe(struct bt_torrent *t, bool on)
{
	struct bt_dht_net *dht = bt_session_dht(t->session);
	on = on && dht && !(t->m && t->m->is_private) && !t->stopping;
	if (on && !t->dht_subscribed) {
		t->dht_subscribed =
			bt_dht_net_subscribe(dht, t->info_hash, true, on_dht_peers, t) == 0;
		/* A trackerless torrent's own nodes help join (BEP 5). */
		for (size_t i = 0; t->m && i < t->m->dht_node_count; i++)
			bt_dht_net_add_node_name(dht, t->m->dht_nodes[i]);
	} else if (!on && t->dht_subscribed) {
		bt_dht_net_unsubscribe(dht, t->info_hash);
		t->dht_subscribed = false;
	}
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
	/* The owner may be running the loop only to let this announce out. */
	if (t->stopping && t->ev.stopped)
		t->ev.stopped(t->arg);
}

/* Until a magnet's size is known, `left` is a positive placeholder: a tracker may take 0 as
 * "already complete" and send no peers. */
int64_t bt_torrent_bytes_left(const struct bt_torrent *t)
{
	return t->m ? (int64_t)(t->wanted_bytes - t->verified_bytes) : BT_BLOCK_SIZE;
}

void bt_torrent_make_tracker(struct bt_torrent *t, const struct bt_meta_tier *tiers, size_t count)
{
	if (!t->opts.use_trackers || !count)
		return;
	struct bt_session *s = t->session;
	struct bt_announce_req req = {.port = t->opts.port, .numwant = 200};
	memcpy(req.info_hash, t->info_hash, BT_HASH_LEN);
	memcpy(req.peer_id, bt_session_peer_id(s), BT_PEER_ID_LEN);
	bt_random_bytes(&req.key, sizeof req.key);
	req.left = bt_torrent_bytes_left(t);
	struct bt_announce_io io = {bt_session_http(s), bt_session_udp(s), bt_session_source_ip(s)};
	struct bt_tracker_events tev = {on_tracker_peers, on_tracker_error, on_tracker_stopped};
	t->tracker = bt_tracker_new(bt_session_base(s), &io, tiers, count, &req, NULL, &tev, t);
}

void bt_torrent_on_dht_port(void *arg, struct bt_peer *p, uint16_t port)
{
	struct conn *c = conn_of(p, arg);
	struct bt_torrent *t = c->t;
	struct bt_dht_net *dht = bt_session_dht(t->session);
	const struct bt_addrbook_entry *e = bt_addrbook_get(t->book, c->addr);
	if (!dht || !e)
		return;
	struct sockaddr_storage ss = e->addr;
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
	else if (ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
	else
		return;
	bt_dht_net_add_node(dht, (struct sockaddr *)&ss, e->len);
}
