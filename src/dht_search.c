/* The DHT core's iterative lookups and announces: see dht.h. */
#include "dht_internal.h"

#include "bt/bencode.h"
#include "bt/hash.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* Searches. */

static const struct search no_search;

/* A search slot, or an inactive stand-in when it was never used. */
struct search *bt_dht_search_at(struct bt_dht *d, int i)
{
	return d->searches[i] ? d->searches[i] : (struct search *)&no_search;
}

int bt_dht_cand_find_addr(const struct search *s, const struct bt_peer_addr *a)
{
	for (size_t i = 0; i < s->n; i++)
		if (bt_peer_addr_equal(&s->c[i].addr, a))
			return (int)i;
	return -1;
}

/*
 * Inserts in distance order; an address already listed is not listed twice. The same id at two
 * addresses is kept twice: which one is genuine shows only when each answers with its own id.
 */
static struct cand *cand_add(struct bt_dht *d, struct search *s, const uint8_t *id,
			     const struct bt_peer_addr *a)
{
	if (memcmp(id, d->id, BT_HASH_LEN) == 0 || a->family != d->fam || a->port == 0)
		return NULL;
	size_t pos = s->n;
	for (size_t i = 0; i < s->n; i++) {
		if (bt_peer_addr_equal(&s->c[i].addr, a))
			return NULL;
		if (pos == s->n && bt_dht_xor_cmp(s->target, id, s->c[i].id) < 0)
			pos = i;
	}
	if (pos >= MAX_CANDS)
		return NULL;
	size_t keep = s->n < MAX_CANDS ? s->n : MAX_CANDS - 1;
	memmove(&s->c[pos + 1], &s->c[pos], (keep - pos) * sizeof *s->c);
	if (s->n < MAX_CANDS)
		s->n++;
	struct cand *c = &s->c[pos];
	memset(c, 0, sizeof *c);
	memcpy(c->id, id, BT_HASH_LEN);
	c->addr = *a;
	return c;
}

static void search_send(struct bt_dht *d, struct search *s, int si, struct cand *c,
			const struct bt_peer_addr *router, double now)
{
	const struct bt_peer_addr *to = router ? router : &c->addr;
	struct tx *t = bt_dht_tx_new(d, to, router ? NULL : c->id, TX_SEARCH, now);
	if (!t) {
		if (c)
			c->state = C_FAILED;
		return;
	}
	t->search = si;
	t->serial = s->serial;
	t->router = router != NULL;
	struct bt_buf b;
	bt_buf_init(&b);
	if (s->internal)
		bt_krpc_put_find_node(&b, t->tid, TID_LEN, d->id, s->target, false, false);
	else
		bt_krpc_put_get_peers(&b, t->tid, TID_LEN, d->id, s->target, false, false);
	bt_dht_queue_out(d, &b, to);
	bt_buf_deinit(&b);
	if (c) {
		c->state = C_SENT;
		c->slow = false;
	} else {
		s->router_pending++;
	}
}

static void search_finish(struct bt_dht *d, struct search *s, double now)
{
	if (s->announce) {
		size_t sent = 0;
		for (size_t i = 0; i < s->n && sent < BT_DHT_K; i++) {
			struct cand *c = &s->c[i];
			if (c->state != C_REPLIED || c->token_len == 0)
				continue;
			struct tx *t = bt_dht_tx_new(d, &c->addr, c->id, TX_ANNOUNCE, now);
			if (!t)
				break;
			struct bt_buf b;
			bt_buf_init(&b);
			bt_krpc_put_announce_peer(&b, t->tid, TID_LEN, d->id, s->target, s->port,
						  s->port == 0, c->token, c->token_len);
			bt_dht_queue_out(d, &b, &c->addr);
			bt_buf_deinit(&b);
			sent++;
		}
	}
	if (!s->internal)
		bt_dht_queue_event(d, BT_DHT_SEARCH_DONE, s->target, NULL, 0);
	s->active = false;
}

/*
 * Keeps up to alpha queries in flight to the closest unqueried candidates, and ends the search
 * once the k closest candidates still standing have all answered. Slow queries (past the soft
 * timeout) do not hold a slot, so the window of candidates queried widens by one per slow query.
 */
void bt_dht_search_step(struct bt_dht *d, int si, double now)
{
	struct search *s = bt_dht_search_at(d, si);
	if (!s->active)
		return;
	size_t inflight = 0, slow = 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->c[i].state == C_SENT) {
			if (s->c[i].slow)
				slow++;
			else
				inflight++;
		}
	size_t window = BT_DHT_K + slow, seen = 0;
	bool pending = false;
	for (size_t i = 0; i < s->n && seen < window; i++) {
		struct cand *c = &s->c[i];
		if (c->state == C_FAILED)
			continue;
		if (seen < BT_DHT_K && c->state != C_REPLIED)
			pending = true;
		seen++;
		if (c->state == C_NEW && inflight < BT_DHT_ALPHA) {
			search_send(d, s, si, c, NULL, now);
			inflight++;
		}
	}
	/* Fewer than k candidates: router answers may still bring more. */
	size_t standing = 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->c[i].state != C_FAILED)
			standing++;
	if (standing < BT_DHT_K && s->router_pending > 0)
		pending = true;
	if (!pending || now - s->started >= SEARCH_MAX_TIME)
		search_finish(d, s, now);
}

int bt_dht_search_start(struct bt_dht *d, int si, const uint8_t *target, bool internal,
			bool announce, uint16_t port, double now)
{
	if (!d->searches[si])
		d->searches[si] = bt_xmalloc(sizeof *d->searches[si]);
	struct search *s = d->searches[si];
	memset(s, 0, sizeof *s);
	s->active = true;
	s->internal = internal;
	s->announce = announce;
	s->port = port;
	s->serial = ++d->next_serial;
	s->started = now;
	memcpy(s->target, target, BT_HASH_LEN);
	struct node *closest[MAX_CANDS];
	size_t n = bt_dht_table_closest(d, target, closest, MAX_CANDS);
	for (size_t i = 0; i < n; i++)
		cand_add(d, s, closest[i]->id, &closest[i]->addr);
	if (n < BT_DHT_K)
		for (size_t i = 0; i < d->nrouters; i++)
			search_send(d, s, si, NULL, &d->routers[i], now);
	bt_dht_search_step(d, si, now);
	return 0;
}

int bt_dht_search(struct bt_dht *d, const uint8_t info_hash[BT_HASH_LEN], bool announce,
		  uint16_t port, double now)
{
	d->now = now;
	int free_slot = -1;
	for (int i = 1; i <= BT_DHT_MAX_SEARCHES; i++) {
		struct search *s = bt_dht_search_at(d, i);
		if (s->active && memcmp(s->target, info_hash, BT_HASH_LEN) == 0)
			return bt_dht_search_start(d, i, info_hash, false, announce, port, now);
		if (!s->active && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		return -ENOSPC;
	return bt_dht_search_start(d, free_slot, info_hash, false, announce, port, now);
}

/* Learned of nodes in a reply: ping those whose bucket has room, so the table fills with nodes
 * that have answered from the id they claim. */
void bt_dht_consider_nodes(struct bt_dht *d, const struct bt_krpc_node *nodes, size_t count,
			   double now)
{
	size_t pings = 0;
	for (size_t i = 0; i < d->ntx; i++)
		if (d->txs[i].kind == TX_PING)
			pings++;
	for (size_t i = 0; i < count && pings < MAX_PINGS; i++) {
		const struct bt_krpc_node *kn = &nodes[i];
		if (kn->addr.family != d->fam || kn->addr.port == 0 ||
		    memcmp(kn->id, d->id, BT_HASH_LEN) == 0)
			continue;
		size_t bi = bt_dht_bucket_index(d, kn->id);
		struct bucket *b = &d->buckets[bi];
		bool room =
			b->count < BT_DHT_K || (bi == d->nbuckets - 1 && d->nbuckets < MAX_BUCKETS);
		if (!room || bt_dht_find_node(d, kn->id) || bt_dht_tx_to(d, &kn->addr))
			continue;
		bool cached;
		if (bt_dht_find_addr(d, &kn->addr, &cached))
			continue;
		if (bt_dht_send_ping(d, &kn->addr, kn->id, now) == 0)
			pings++;
	}
}

void bt_dht_search_reply(struct bt_dht *d, const struct tx *t, const struct bt_krpc_msg *m,
			 double now)
{
	struct search *s = bt_dht_search_at(d, t->search);
	if (!s->active || s->serial != t->serial)
		return;
	if (t->router) {
		s->router_pending--;
	} else if (m) {
		int ci = bt_dht_cand_find_addr(s, &t->to);
		struct cand *c = ci >= 0 ? &s->c[ci] : NULL;
		if (c && memcmp(c->id, m->id, BT_HASH_LEN) != 0) {
			/* Someone listed this address under another id: the address answered with
			 * its own, which is the one that counts. */
			memmove(c, c + 1, (s->n - (size_t)ci - 1) * sizeof *c);
			s->n--;
			c = cand_add(d, s, m->id, &t->to);
		}
		if (c) {
			c->state = C_REPLIED;
			c->token_len = m->token_len;
			memcpy(c->token, m->token, m->token_len);
		}
	} else {
		int ci = bt_dht_cand_find_addr(s, &t->to);
		if (ci >= 0)
			s->c[ci].state = C_FAILED;
	}
	if (m) {
		const struct bt_krpc_node *ns = d->fam == 4 ? m->nodes : m->nodes6;
		size_t nn = d->fam == 4 ? m->node_count : m->node6_count;
		for (size_t i = 0; i < nn; i++)
			cand_add(d, s, ns[i].id, &ns[i].addr);
		if (m->value_count && !s->internal)
			bt_dht_queue_event(d, BT_DHT_PEERS, s->target, m->values, m->value_count);
	}
	bt_dht_search_step(d, t->search, now);
}