#include "dht_internal.h"

#include "bt/bencode.h"
#include "bt/hash.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: deterministic from the caller's seed, so simulations repeat. */
static uint64_t rnd64(struct bt_dht *d)
{
	uint64_t z = (d->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void bt_dht_rnd_bytes(struct bt_dht *d, uint8_t *p, size_t n)
{
	while (n) {
		uint64_t v = rnd64(d);
		size_t k = n < 8 ? n : 8;
		memcpy(p, &v, k);
		p += k;
		n -= k;
	}
}

int bt_dht_send_ping(struct bt_dht *d, const struct bt_peer_addr *to, const uint8_t *id,
		     double now);

/* Output and events. */

void bt_dht_queue_out(struct bt_dht *d, const struct bt_buf *b, const struct bt_peer_addr *to)
{
	if (d->out_n - d->out_head >= MAX_OUT || b->len > BT_DHT_MAX_REPLY)
		return;
	if (d->out_n == d->out_cap) {
		if (d->out_head > 0) {
			memmove(d->out, d->out + d->out_head,
				(d->out_n - d->out_head) * sizeof *d->out);
			d->out_n -= d->out_head;
			d->out_head = 0;
		} else {
			d->out_cap = d->out_cap ? d->out_cap * 2 : 64;
			d->out = bt_xreallocarray(d->out, d->out_cap, sizeof *d->out);
		}
	}
	struct datagram *g = &d->out[d->out_n++];
	g->data = bt_xmalloc(b->len);
	memcpy(g->data, b->data, b->len);
	g->len = b->len;
	g->to = *to;
}

void bt_dht_queue_event(struct bt_dht *d, enum bt_dht_event_kind kind, const uint8_t *hash,
			const struct bt_peer_addr *peers, size_t count)
{
	if (d->ev_n == d->ev_cap) {
		if (d->ev_head > 0) {
			memmove(d->ev, d->ev + d->ev_head, (d->ev_n - d->ev_head) * sizeof *d->ev);
			d->ev_n -= d->ev_head;
			d->ev_head = 0;
		} else {
			d->ev_cap = d->ev_cap ? d->ev_cap * 2 : 16;
			d->ev = bt_xreallocarray(d->ev, d->ev_cap, sizeof *d->ev);
		}
	}
	struct event *e = &d->ev[d->ev_n++];
	e->kind = kind;
	memcpy(e->hash, hash, BT_HASH_LEN);
	e->count = count;
	e->peers = NULL;
	if (count) {
		e->peers = bt_xreallocarray(NULL, count, sizeof *peers);
		memcpy(e->peers, peers, count * sizeof *peers);
	}
}

bool bt_dht_next_output(struct bt_dht *d, struct bt_dht_datagram *out)
{
	free(d->out_last);
	d->out_last = NULL;
	if (d->out_head == d->out_n) {
		d->out_head = d->out_n = 0;
		return false;
	}
	struct datagram *g = &d->out[d->out_head++];
	d->out_last = g->data;
	out->data = g->data;
	out->len = g->len;
	out->tolen = bt_peer_addr_to_sockaddr(&g->to, &out->to);
	return true;
}

bool bt_dht_next_event(struct bt_dht *d, struct bt_dht_event *out)
{
	free(d->ev_last);
	d->ev_last = NULL;
	if (d->ev_head == d->ev_n) {
		d->ev_head = d->ev_n = 0;
		return false;
	}
	struct event *e = &d->ev[d->ev_head++];
	d->ev_last = e->peers;
	out->kind = e->kind;
	memcpy(out->info_hash, e->hash, BT_HASH_LEN);
	out->peers = e->peers;
	out->count = e->count;
	return true;
}

/* Transactions. */

struct tx *bt_dht_tx_new(struct bt_dht *d, const struct bt_peer_addr *to, const uint8_t *id,
			 enum tx_kind kind, double now)
{
	if (d->ntx == MAX_TX)
		return NULL;
	if (d->ntx == d->cap_tx) {
		d->cap_tx = d->cap_tx ? d->cap_tx * 2 : 16;
		d->txs = bt_xreallocarray(d->txs, d->cap_tx, sizeof *d->txs);
	}
	struct tx *t = &d->txs[d->ntx];
	memset(t, 0, sizeof *t);
	for (bool clash = true; clash;) {
		bt_dht_rnd_bytes(d, t->tid, TID_LEN);
		clash = false;
		for (size_t i = 0; i < d->ntx; i++)
			if (memcmp(d->txs[i].tid, t->tid, TID_LEN) == 0)
				clash = true;
	}
	d->ntx++;
	t->to = *to;
	if (id) {
		t->has_id = true;
		memcpy(t->id, id, BT_HASH_LEN);
	}
	t->kind = kind;
	t->sent = now;
	t->search = -1;
	return t;
}

static void tx_remove(struct bt_dht *d, size_t i)
{
	d->txs[i] = d->txs[--d->ntx];
}

bool bt_dht_tx_to(const struct bt_dht *d, const struct bt_peer_addr *a)
{
	for (size_t i = 0; i < d->ntx; i++)
		if (bt_peer_addr_equal(&d->txs[i].to, a))
			return true;
	return false;
}

int bt_dht_send_ping(struct bt_dht *d, const struct bt_peer_addr *to, const uint8_t *id, double now)
{
	struct tx *t = bt_dht_tx_new(d, to, id, TX_PING, now);
	if (!t)
		return -ENOSPC;
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_ping(&b, t->tid, TID_LEN, d->id);
	bt_dht_queue_out(d, &b, to);
	bt_buf_deinit(&b);
	return 0;
}

static int send_find_node(struct bt_dht *d, const struct bt_peer_addr *to, const uint8_t *id,
			  const uint8_t *target, double now)
{
	struct tx *t = bt_dht_tx_new(d, to, id, TX_FIND_NODE, now);
	if (!t)
		return -ENOSPC;
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_find_node(&b, t->tid, TID_LEN, d->id, target, false, false);
	bt_dht_queue_out(d, &b, to);
	bt_buf_deinit(&b);
	return 0;
}

static void handle_response(struct bt_dht *d, const struct bt_krpc_msg *m,
			    const struct bt_peer_addr *from, double now)
{
	if (m->tid_len != TID_LEN)
		return;
	size_t i;
	for (i = 0; i < d->ntx; i++)
		if (memcmp(d->txs[i].tid, m->tid, TID_LEN) == 0 &&
		    bt_peer_addr_equal(&d->txs[i].to, from))
			break;
	if (i == d->ntx)
		return;
	struct tx t = d->txs[i];
	tx_remove(d, i);
	if (m->type == BT_KRPC_ERROR) {
		/* Alive but unhelpful: the search moves on; the table keeps it as it was. */
		if (t.kind == TX_SEARCH)
			bt_dht_search_reply(d, &t, NULL, now);
		return;
	}
	d->replies_in++;
	if (m->ip.family)
		bt_dht_note_ip_vote(d, &m->ip, from);
	if (!t.router && !bt_dht_is_router(d, from))
		bt_dht_table_heard(d, m->id, from, true, false, now);
	if (t.kind == TX_SEARCH)
		bt_dht_search_reply(d, &t, m, now);
	const struct bt_krpc_node *ns = d->fam == 4 ? m->nodes : m->nodes6;
	size_t nn = d->fam == 4 ? m->node_count : m->node6_count;
	if (nn)
		bt_dht_consider_nodes(d, ns, nn, now);
}

void bt_dht_input(struct bt_dht *d, const uint8_t *p, size_t len, const struct sockaddr *from,
		  socklen_t fromlen, double now)
{
	d->now = now;
	struct bt_peer_addr src;
	if (!bt_dht_addr_of(d, from, fromlen, &src))
		return;
	struct bt_krpc_msg *m = bt_xmalloc(sizeof *m);
	struct bt_err err = {{0}};
	int rc = bt_krpc_parse(m, p, len, &err);
	if (rc < 0) {
		/* A malformed query we can address gets 203, within the no-amplification rule. */
		if (m->tid_len > 0 && m->type == BT_KRPC_QUERY && len >= MIN_QUERY_LEN &&
		    bt_dht_rate_ok(d, &src, now))
			bt_dht_reply_error(d, m, &src, BT_KRPC_ERR_PROTOCOL, err.msg);
		goto out;
	}
	if (m->has_id && memcmp(m->id, d->id, BT_HASH_LEN) == 0)
		goto out; /* our own id: a reflection or a liar */
	if (m->type == BT_KRPC_QUERY) {
		if (len >= MIN_QUERY_LEN && bt_dht_rate_ok(d, &src, now))
			bt_dht_handle_query(d, m, &src, now);
	} else {
		handle_response(d, m, &src, now);
	}
out:
	free(m);
}

/* Timers. */

static void tx_expired(struct bt_dht *d, const struct tx *t, double now)
{
	if (t->has_id && !t->router)
		bt_dht_table_failed(d, t->id, &t->to);
	if (t->kind == TX_SEARCH)
		bt_dht_search_reply(d, t, NULL, now);
}

double bt_dht_tick(struct bt_dht *d, double now)
{
	d->now = now;
	double next = now + MAX_TICK_WAIT;
	if (now >= d->next_rotate) {
		memcpy(d->secret[1], d->secret[0], BT_HASH_LEN);
		bt_dht_rnd_bytes(d, d->secret[0], BT_HASH_LEN);
		d->next_rotate = now + SECRET_EVERY;
	}
	for (size_t i = 0; i < d->ntx;) {
		struct tx *t = &d->txs[i];
		if (now - t->sent >= HARD_TIMEOUT) {
			struct tx copy = *t;
			tx_remove(d, i);
			tx_expired(d, &copy, now);
			continue;
		}
		if (t->kind == TX_SEARCH && !t->slow && now - t->sent >= SOFT_TIMEOUT) {
			t->slow = true;
			struct search *s = bt_dht_search_at(d, t->search);
			int ci = s->active && s->serial == t->serial
					 ? bt_dht_cand_find_addr(s, &t->to)
					 : -1;
			if (ci >= 0)
				s->c[ci].slow = true;
		}
		i++;
	}
	for (int i = 0; i <= BT_DHT_MAX_SEARCHES; i++)
		bt_dht_search_step(d, i, now);

	struct bt_dht_stats st;
	bt_dht_get_stats(d, &st);
	if (st.good < BT_DHT_K && now >= d->next_bootstrap && !bt_dht_search_at(d, 0)->active) {
		d->next_bootstrap = now + BOOTSTRAP_EVERY;
		bt_dht_search_start(d, 0, d->id, true, false, 0, now);
	}
	for (size_t bi = 0; bi < d->nbuckets; bi++) {
		struct bucket *b = &d->buckets[bi];
		if (b->count == 0 || now - b->last_changed < REFRESH_TIME)
			continue;
		/* Ask the member we have heard from least lately: it gets checked as well. */
		struct node *q = &b->nodes[0];
		for (size_t j = 1; j < b->count; j++)
			if (b->nodes[j].last_reply < q->last_reply)
				q = &b->nodes[j];
		uint8_t target[BT_HASH_LEN];
		bt_dht_random_id_in_bucket(d, bi, target);
		if (send_find_node(d, &q->addr, q->id, target, now) == 0)
			q->pinged = true;
		b->last_changed = now;
	}
	if (now >= d->next_expire) {
		bt_dht_expire_peers(d, now);
		d->next_expire = now + EXPIRE_EVERY;
	}
	for (size_t i = 0; i < d->ntx; i++) {
		const struct tx *t = &d->txs[i];
		double due =
			t->sent + (t->kind == TX_SEARCH && !t->slow ? SOFT_TIMEOUT : HARD_TIMEOUT);
		if (due < next)
			next = due;
	}
	return next > now ? next : now;
}

/* Setup and state. */

struct bt_dht *bt_dht_new(const struct bt_dht_config *cfg, double now)
{
	if (cfg->family != AF_INET && cfg->family != AF_INET6)
		return NULL;
	struct bt_dht *d = bt_xcalloc(1, sizeof *d);
	memcpy(d->id, cfg->id, BT_HASH_LEN);
	d->fam = cfg->family == AF_INET ? 4 : 6;
	for (size_t i = 0; i < 16; i++)
		d->rng = d->rng * 131 + cfg->secret_seed[i];
	d->rng ^= (uint64_t)cfg->id[0] << 56 | (uint64_t)cfg->id[1] << 48 | cfg->id[2];
	bt_dht_rnd_bytes(d, d->secret[0], BT_HASH_LEN);
	bt_dht_rnd_bytes(d, d->secret[1], BT_HASH_LEN);
	d->next_rotate = now + SECRET_EVERY;
	d->next_expire = now + EXPIRE_EVERY;
	d->next_bootstrap = now;
	d->now = now;
	d->buckets = bt_xcalloc(1, sizeof *d->buckets);
	d->buckets[0].last_changed = now;
	d->nbuckets = 1;
	return d;
}

void bt_dht_free(struct bt_dht *d)
{
	if (!d)
		return;
	for (size_t i = d->out_head; i < d->out_n; i++)
		free(d->out[i].data);
	free(d->out_last);
	for (size_t i = d->ev_head; i < d->ev_n; i++)
		free(d->ev[i].peers);
	free(d->ev_last);
	free(d->out);
	free(d->ev);
	free(d->txs);
	for (int i = 0; i <= BT_DHT_MAX_SEARCHES; i++)
		free(d->searches[i]);
	free(d->buckets);
	free(d->stored);
	free(d);
}

void bt_dht_add_router(struct bt_dht *d, const struct sockaddr *sa, socklen_t len)
{
	struct bt_peer_addr a;
	if (!bt_dht_addr_of(d, sa, len, &a) || bt_dht_is_router(d, &a) ||
	    d->nrouters == MAX_ROUTERS)
		return;
	d->routers[d->nrouters++] = a;
}

void bt_dht_add_node(struct bt_dht *d, const uint8_t *id_or_null, const struct sockaddr *sa,
		     socklen_t len, double now)
{
	d->now = now;
	struct bt_peer_addr a;
	if (bt_dht_addr_of(d, sa, len, &a))
		bt_dht_add_known(d, id_or_null, &a, now);
}