#include "bt/dht.h"

#include "bt/bencode.h"
#include "bt/hash.h"
#include "bt/krpc.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define GOOD_TIME	900.0 /* BEP 5: 15 minutes */
#define REFRESH_TIME	900.0
#define SOFT_TIMEOUT	1.0
#define HARD_TIMEOUT	4.0
#define SEARCH_MAX_TIME 60.0
#define BOOTSTRAP_EVERY 30.0
#define SECRET_EVERY	300.0
#define PEER_TTL	1800.0
#define MAX_FAILS	2
#define MAX_BUCKETS	160
#define MAX_CANDS	64
#define MAX_TX		512
#define MAX_PINGS	32 /* pings of heard-of nodes outstanding at once */
#define MAX_OUT		4096
#define MAX_ROUTERS	16
#define PEERS_PER_HASH	100
#define MAX_HASHES	2000
#define TOKEN_LEN	8
#define TID_LEN		4
#define MIN_QUERY_LEN	20
#define RL_SLOTS	256
#define RL_RATE		20.0
#define RL_BURST	40.0
#define VOTE_SLOTS	8
#define VOTERS_NEEDED	4
#define MAX_TICK_WAIT	5.0
#define EXPIRE_EVERY	60.0

struct node {
	uint8_t id[BT_HASH_LEN];
	struct bt_peer_addr addr;
	double last_reply; /* 0: never replied */
	double last_query; /* last time it queried us */
	double last_seen;
	int fails;
	bool pinged; /* a query to it is outstanding */
};

struct bucket {
	struct node nodes[BT_DHT_K];
	size_t count;
	struct node cache[BT_DHT_K]; /* replacements, newest last */
	size_t cache_count;
	double last_changed;
};

enum tx_kind { TX_PING, TX_FIND_NODE, TX_SEARCH, TX_ANNOUNCE };

struct tx {
	uint8_t tid[TID_LEN];
	struct bt_peer_addr to;
	uint8_t id[BT_HASH_LEN];
	bool has_id;
	bool router;
	bool slow; /* past the soft timeout: no longer holds a search slot */
	double sent;
	enum tx_kind kind;
	int search;
	unsigned serial;
};

enum cand_state { C_NEW, C_SENT, C_REPLIED, C_FAILED };

struct cand {
	uint8_t id[BT_HASH_LEN];
	struct bt_peer_addr addr;
	enum cand_state state;
	bool slow;
	uint8_t token[BT_KRPC_MAX_TOKEN];
	size_t token_len;
};

struct search {
	bool active;
	bool internal; /* the bootstrap: find_node of our id, no events */
	bool announce;
	uint16_t port;
	uint8_t target[BT_HASH_LEN];
	unsigned serial;
	double started;
	int router_pending;
	struct cand c[MAX_CANDS];
	size_t n;
};

struct stored_peer {
	struct bt_peer_addr addr;
	double expires;
};

struct stored {
	uint8_t hash[BT_HASH_LEN];
	struct stored_peer peers[PEERS_PER_HASH];
	size_t count;
};

struct rl_slot {
	struct bt_peer_addr ip; /* port 0 */
	double tokens, last;
	bool used;
};

struct vote {
	struct bt_peer_addr ip;
	struct bt_peer_addr voters[VOTERS_NEEDED];
	size_t nvoters;
};

struct datagram {
	uint8_t *data;
	size_t len;
	struct bt_peer_addr to;
};

struct event {
	enum bt_dht_event_kind kind;
	uint8_t hash[BT_HASH_LEN];
	struct bt_peer_addr *peers;
	size_t count;
};

struct bt_dht {
	uint8_t id[BT_HASH_LEN];
	uint8_t fam; /* 4 or 6 */
	uint64_t rng;

	struct bucket *buckets;
	size_t nbuckets;

	struct tx *txs;
	size_t ntx, cap_tx;

	/* slot 0 is the bootstrap; allocated when first used (a search is ~8 KiB) */
	struct search *searches[BT_DHT_MAX_SEARCHES + 1];
	unsigned next_serial;

	struct bt_peer_addr routers[MAX_ROUTERS];
	size_t nrouters;

	uint8_t secret[2][BT_HASH_LEN]; /* current, previous */
	double next_rotate;

	struct stored *stored;
	size_t nstored;
	double next_expire;

	struct rl_slot rl[RL_SLOTS];
	struct vote votes[VOTE_SLOTS];

	struct datagram *out;
	size_t out_head, out_n, out_cap;
	uint8_t *out_last; /* the datagram last returned, freed on the next call */

	struct event *ev;
	size_t ev_head, ev_n, ev_cap;
	struct bt_peer_addr *ev_last;

	double next_bootstrap;
	double now; /* the latest time given to us */
	size_t queries_in, replies_in;
};

/* splitmix64: deterministic from the caller's seed, so simulations repeat. */
static uint64_t rnd64(struct bt_dht *d)
{
	uint64_t z = (d->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rnd_bytes(struct bt_dht *d, uint8_t *p, size_t n)
{
	while (n) {
		uint64_t v = rnd64(d);
		size_t k = n < 8 ? n : 8;
		memcpy(p, &v, k);
		p += k;
		n -= k;
	}
}

static int xor_cmp(const uint8_t *target, const uint8_t *a, const uint8_t *b)
{
	for (size_t i = 0; i < BT_HASH_LEN; i++) {
		uint8_t x = a[i] ^ target[i], y = b[i] ^ target[i];
		if (x != y)
			return x < y ? -1 : 1;
	}
	return 0;
}

static unsigned prefix_len(const uint8_t *a, const uint8_t *b)
{
	for (unsigned i = 0; i < BT_HASH_LEN; i++) {
		uint8_t x = a[i] ^ b[i];
		if (x) {
			unsigned n = i * 8;
			while (!(x & 0x80)) {
				x <<= 1;
				n++;
			}
			return n;
		}
	}
	return 160;
}

static bool same_ip(const struct bt_peer_addr *a, const struct bt_peer_addr *b)
{
	return a->family == b->family && memcmp(a->addr, b->addr, a->family == 6 ? 16 : 4) == 0;
}

static bool addr_of(const struct bt_dht *d, const struct sockaddr *sa, socklen_t len,
		    struct bt_peer_addr *out)
{
	if (!sa || len < (socklen_t)sizeof(sa->sa_family))
		return false;
	if (sa->sa_family == AF_INET && len < (socklen_t)sizeof(struct sockaddr_in))
		return false;
	if (sa->sa_family == AF_INET6 && len < (socklen_t)sizeof(struct sockaddr_in6))
		return false;
	return bt_peer_addr_from_sockaddr(sa, out) && out->family == d->fam && out->port != 0;
}

/* Routing table. */

static bool is_router(const struct bt_dht *d, const struct bt_peer_addr *a)
{
	for (size_t i = 0; i < d->nrouters; i++)
		if (bt_peer_addr_equal(&d->routers[i], a))
			return true;
	return false;
}

static bool node_good(const struct node *n, double now)
{
	return n->fails < MAX_FAILS && n->last_reply > 0 &&
	       (now - n->last_reply < GOOD_TIME || now - n->last_query < GOOD_TIME);
}

static bool node_bad(const struct node *n)
{
	return n->fails >= MAX_FAILS;
}

static size_t bucket_index(const struct bt_dht *d, const uint8_t *id)
{
	size_t cpl = prefix_len(d->id, id);
	return cpl < d->nbuckets - 1 ? cpl : d->nbuckets - 1;
}

static struct node *find_in(struct node *arr, size_t n, const uint8_t *id)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(arr[i].id, id, BT_HASH_LEN) == 0)
			return &arr[i];
	return NULL;
}

static struct node *find_node(struct bt_dht *d, const uint8_t *id)
{
	struct bucket *b = &d->buckets[bucket_index(d, id)];
	return find_in(b->nodes, b->count, id);
}

/* The table entry (or cache entry) at this address, under any id. */
static struct node *find_addr(struct bt_dht *d, const struct bt_peer_addr *a, bool *cached)
{
	for (size_t i = 0; i < d->nbuckets; i++) {
		struct bucket *b = &d->buckets[i];
		for (size_t j = 0; j < b->count; j++)
			if (bt_peer_addr_equal(&b->nodes[j].addr, a)) {
				*cached = false;
				return &b->nodes[j];
			}
		for (size_t j = 0; j < b->cache_count; j++)
			if (bt_peer_addr_equal(&b->cache[j].addr, a)) {
				*cached = true;
				return &b->cache[j];
			}
	}
	return NULL;
}

static void remove_at(struct node *arr, size_t *n, size_t i)
{
	memmove(&arr[i], &arr[i + 1], (*n - i - 1) * sizeof *arr);
	(*n)--;
}

/* Splits the last bucket (the one holding our id): the nodes sharing exactly nbuckets-1 bits
 * stay, the closer ones move to the new last bucket. */
static void split_last(struct bt_dht *d)
{
	d->buckets = bt_xreallocarray(d->buckets, d->nbuckets + 1, sizeof *d->buckets);
	struct bucket *old = &d->buckets[d->nbuckets - 1], *nb = &d->buckets[d->nbuckets];
	memset(nb, 0, sizeof *nb);
	nb->last_changed = old->last_changed;
	size_t depth = d->nbuckets - 1;
	d->nbuckets++;
	for (size_t i = 0; i < old->count;) {
		if (prefix_len(d->id, old->nodes[i].id) > depth) {
			nb->nodes[nb->count++] = old->nodes[i];
			remove_at(old->nodes, &old->count, i);
		} else {
			i++;
		}
	}
	for (size_t i = 0; i < old->cache_count;) {
		if (prefix_len(d->id, old->cache[i].id) > depth) {
			nb->cache[nb->cache_count++] = old->cache[i];
			remove_at(old->cache, &old->cache_count, i);
		} else {
			i++;
		}
	}
}

static void cache_add(struct bucket *b, const struct node *n)
{
	struct node *c = find_in(b->cache, b->cache_count, n->id);
	if (c) {
		remove_at(b->cache, &b->cache_count, (size_t)(c - b->cache));
	} else if (b->cache_count == BT_DHT_K) {
		/* Drop the oldest that never replied, else the oldest. */
		size_t victim = 0;
		for (size_t i = 0; i < b->cache_count; i++)
			if (b->cache[i].last_reply == 0) {
				victim = i;
				break;
			}
		remove_at(b->cache, &b->cache_count, victim);
	}
	b->cache[b->cache_count++] = *n;
}

static int send_ping(struct bt_dht *d, const struct bt_peer_addr *to, const uint8_t *id,
		     double now);

/*
 * Puts a node into the table: into a free slot, a split of our bucket, a bad node's slot, or
 * else the replacement cache, pinging a questionable member so that a dead one makes room.
 * Returns true if it entered the bucket itself.
 */
static bool table_put(struct bt_dht *d, const struct node *n, double now)
{
	for (;;) {
		size_t bi = bucket_index(d, n->id);
		struct bucket *b = &d->buckets[bi];
		if (b->count < BT_DHT_K) {
			b->nodes[b->count++] = *n;
			b->last_changed = now;
			return true;
		}
		if (bi == d->nbuckets - 1 && d->nbuckets < MAX_BUCKETS) {
			split_last(d);
			continue;
		}
		for (size_t i = 0; i < b->count; i++)
			if (node_bad(&b->nodes[i])) {
				b->nodes[i] = *n;
				b->last_changed = now;
				return true;
			}
		cache_add(b, n);
		struct node *q = NULL;
		for (size_t i = 0; i < b->count; i++)
			if (!node_good(&b->nodes[i], now) && !b->nodes[i].pinged)
				q = &b->nodes[i];
		if (q && send_ping(d, &q->addr, q->id, now) == 0)
			q->pinged = true;
		return false;
	}
}

/*
 * We heard from (or of) a node. replied: it answered our query from this address; queried: it
 * sent us a query. An id held by another address, or an address held under another id, is left
 * alone unless the holder has gone bad: a liar cannot take over a live node's entry.
 */
static void table_heard(struct bt_dht *d, const uint8_t *id, const struct bt_peer_addr *a,
			bool replied, bool queried, double now)
{
	if (memcmp(id, d->id, BT_HASH_LEN) == 0)
		return;
	size_t bi = bucket_index(d, id);
	struct bucket *b = &d->buckets[bi];
	struct node *n = find_in(b->nodes, b->count, id);
	bool in_cache = false;
	if (!n) {
		n = find_in(b->cache, b->cache_count, id);
		in_cache = n != NULL;
	}
	if (n && !bt_peer_addr_equal(&n->addr, a)) {
		if (!node_bad(n) && !(in_cache && replied))
			return;
		n->addr = *a; /* the old holder is dead: the id moved */
		n->last_reply = 0;
		n->fails = 0;
	}
	if (!n) {
		bool cached;
		struct node *other = find_addr(d, a, &cached);
		if (other) {
			if (!node_bad(other))
				return;
			/* A dead entry at this address: forget it, the new id takes its place. */
			struct bucket *ob = &d->buckets[bucket_index(d, other->id)];
			if (cached)
				remove_at(ob->cache, &ob->cache_count, (size_t)(other - ob->cache));
			else
				remove_at(ob->nodes, &ob->count, (size_t)(other - ob->nodes));
		}
		struct node fresh = {.addr = *a, .last_seen = now};
		memcpy(fresh.id, id, BT_HASH_LEN);
		if (replied)
			fresh.last_reply = now;
		if (queried)
			fresh.last_query = now;
		table_put(d, &fresh, now);
		return;
	}
	n->last_seen = now;
	if (replied) {
		n->last_reply = now;
		n->fails = 0;
		n->pinged = false;
	}
	if (queried)
		n->last_query = now;
	if (replied && in_cache) {
		/* A replacement proved alive: promote it if a bad node holds a slot. */
		struct node copy = *n;
		for (size_t i = 0; i < b->count; i++)
			if (node_bad(&b->nodes[i])) {
				remove_at(b->cache, &b->cache_count, (size_t)(n - b->cache));
				b->nodes[i] = copy;
				b->last_changed = now;
				return;
			}
	} else if (replied) {
		b->last_changed = now;
	}
}

/* A query to this node failed. A node going bad is replaced by the best of its cache. */
static void table_failed(struct bt_dht *d, const uint8_t *id, const struct bt_peer_addr *a)
{
	struct bucket *b = &d->buckets[bucket_index(d, id)];
	struct node *n = find_in(b->nodes, b->count, id);
	if (!n) {
		n = find_in(b->cache, b->cache_count, id);
		if (n && bt_peer_addr_equal(&n->addr, a))
			remove_at(b->cache, &b->cache_count, (size_t)(n - b->cache));
		return;
	}
	if (!bt_peer_addr_equal(&n->addr, a))
		return;
	n->fails++;
	n->pinged = false;
	if (!node_bad(n) || b->cache_count == 0)
		return;
	size_t best = b->cache_count - 1;
	for (size_t i = b->cache_count; i-- > 0;)
		if (b->cache[i].last_reply > 0) {
			best = i;
			break;
		}
	*n = b->cache[best];
	remove_at(b->cache, &b->cache_count, best);
}

/* The (up to) max closest non-bad nodes to target, closest first. */
static size_t table_closest(struct bt_dht *d, const uint8_t *target, struct node **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < d->nbuckets; i++) {
		struct bucket *b = &d->buckets[i];
		for (size_t j = 0; j < b->count; j++) {
			struct node *x = &b->nodes[j];
			if (node_bad(x))
				continue;
			size_t pos = n;
			while (pos > 0 && xor_cmp(target, x->id, out[pos - 1]->id) < 0)
				pos--;
			if (pos >= max)
				continue;
			size_t last = n < max ? n : max - 1;
			memmove(&out[pos + 1], &out[pos], (last - pos) * sizeof *out);
			out[pos] = x;
			if (n < max)
				n++;
		}
	}
	return n;
}

/* Output and events. */

static void queue_out(struct bt_dht *d, const struct bt_buf *b, const struct bt_peer_addr *to)
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

static void queue_event(struct bt_dht *d, enum bt_dht_event_kind kind, const uint8_t *hash,
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

static struct tx *tx_new(struct bt_dht *d, const struct bt_peer_addr *to, const uint8_t *id,
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
		rnd_bytes(d, t->tid, TID_LEN);
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

static bool tx_to(const struct bt_dht *d, const struct bt_peer_addr *a)
{
	for (size_t i = 0; i < d->ntx; i++)
		if (bt_peer_addr_equal(&d->txs[i].to, a))
			return true;
	return false;
}

static int send_ping(struct bt_dht *d, const struct bt_peer_addr *to, const uint8_t *id, double now)
{
	struct tx *t = tx_new(d, to, id, TX_PING, now);
	if (!t)
		return -ENOSPC;
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_ping(&b, t->tid, TID_LEN, d->id);
	queue_out(d, &b, to);
	bt_buf_deinit(&b);
	return 0;
}

static int send_find_node(struct bt_dht *d, const struct bt_peer_addr *to, const uint8_t *id,
			  const uint8_t *target, double now)
{
	struct tx *t = tx_new(d, to, id, TX_FIND_NODE, now);
	if (!t)
		return -ENOSPC;
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_find_node(&b, t->tid, TID_LEN, d->id, target, false, false);
	queue_out(d, &b, to);
	bt_buf_deinit(&b);
	return 0;
}

/* Searches. */

static const struct search no_search;

/* A search slot, or an inactive stand-in when it was never used. */
static struct search *search_at(struct bt_dht *d, int i)
{
	return d->searches[i] ? d->searches[i] : (struct search *)&no_search;
}

static int cand_find_addr(const struct search *s, const struct bt_peer_addr *a)
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
		if (pos == s->n && xor_cmp(s->target, id, s->c[i].id) < 0)
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
	struct tx *t = tx_new(d, to, router ? NULL : c->id, TX_SEARCH, now);
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
	queue_out(d, &b, to);
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
			struct tx *t = tx_new(d, &c->addr, c->id, TX_ANNOUNCE, now);
			if (!t)
				break;
			struct bt_buf b;
			bt_buf_init(&b);
			bt_krpc_put_announce_peer(&b, t->tid, TID_LEN, d->id, s->target, s->port,
						  s->port == 0, c->token, c->token_len);
			queue_out(d, &b, &c->addr);
			bt_buf_deinit(&b);
			sent++;
		}
	}
	if (!s->internal)
		queue_event(d, BT_DHT_SEARCH_DONE, s->target, NULL, 0);
	s->active = false;
}

/*
 * Keeps up to alpha queries in flight to the closest unqueried candidates, and ends the search
 * once the k closest candidates still standing have all answered. Slow queries (past the soft
 * timeout) do not hold a slot, so the window of candidates queried widens by one per slow query.
 */
static void search_step(struct bt_dht *d, int si, double now)
{
	struct search *s = search_at(d, si);
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

static int search_start(struct bt_dht *d, int si, const uint8_t *target, bool internal,
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
	size_t n = table_closest(d, target, closest, MAX_CANDS);
	for (size_t i = 0; i < n; i++)
		cand_add(d, s, closest[i]->id, &closest[i]->addr);
	if (n < BT_DHT_K)
		for (size_t i = 0; i < d->nrouters; i++)
			search_send(d, s, si, NULL, &d->routers[i], now);
	search_step(d, si, now);
	return 0;
}

int bt_dht_search(struct bt_dht *d, const uint8_t info_hash[BT_HASH_LEN], bool announce,
		  uint16_t port, double now)
{
	d->now = now;
	int free_slot = -1;
	for (int i = 1; i <= BT_DHT_MAX_SEARCHES; i++) {
		struct search *s = search_at(d, i);
		if (s->active && memcmp(s->target, info_hash, BT_HASH_LEN) == 0)
			return search_start(d, i, info_hash, false, announce, port, now);
		if (!s->active && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		return -ENOSPC;
	return search_start(d, free_slot, info_hash, false, announce, port, now);
}

/* Learned of nodes in a reply: ping those whose bucket has room, so the table fills with nodes
 * that have answered from the id they claim. */
static void consider_nodes(struct bt_dht *d, const struct bt_krpc_node *nodes, size_t count,
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
		size_t bi = bucket_index(d, kn->id);
		struct bucket *b = &d->buckets[bi];
		bool room =
			b->count < BT_DHT_K || (bi == d->nbuckets - 1 && d->nbuckets < MAX_BUCKETS);
		if (!room || find_node(d, kn->id) || tx_to(d, &kn->addr))
			continue;
		bool cached;
		if (find_addr(d, &kn->addr, &cached))
			continue;
		if (send_ping(d, &kn->addr, kn->id, now) == 0)
			pings++;
	}
}

/* Tokens. */

static void make_token(const uint8_t *secret, const struct bt_peer_addr *ip, uint8_t *out)
{
	uint8_t buf[BT_HASH_LEN + 17], h[BT_SHA1_LEN];
	memcpy(buf, secret, BT_HASH_LEN);
	buf[BT_HASH_LEN] = ip->family;
	size_t n = ip->family == 6 ? 16 : 4;
	memcpy(buf + BT_HASH_LEN + 1, ip->addr, n);
	bt_sha1(buf, BT_HASH_LEN + 1 + n, h);
	memcpy(out, h, TOKEN_LEN);
}

static bool token_ok(const struct bt_dht *d, const struct bt_peer_addr *ip, const uint8_t *tok,
		     size_t len)
{
	if (len != TOKEN_LEN)
		return false;
	for (int i = 0; i < 2; i++) {
		uint8_t t[TOKEN_LEN];
		make_token(d->secret[i], ip, t);
		if (memcmp(t, tok, TOKEN_LEN) == 0)
			return true;
	}
	return false;
}

/* Stored peers. */

static struct stored *stored_find(struct bt_dht *d, const uint8_t *hash)
{
	for (size_t i = 0; i < d->nstored; i++)
		if (memcmp(d->stored[i].hash, hash, BT_HASH_LEN) == 0)
			return &d->stored[i];
	return NULL;
}

static void store_peer(struct bt_dht *d, const uint8_t *hash, const struct bt_peer_addr *a,
		       double now)
{
	struct stored *st = stored_find(d, hash);
	if (!st) {
		if (d->nstored == MAX_HASHES)
			return;
		d->stored = bt_xreallocarray(d->stored, d->nstored + 1, sizeof *d->stored);
		st = &d->stored[d->nstored++];
		memcpy(st->hash, hash, BT_HASH_LEN);
		st->count = 0;
	}
	size_t slot = st->count;
	for (size_t i = 0; i < st->count; i++)
		if (bt_peer_addr_equal(&st->peers[i].addr, a))
			slot = i;
	if (slot == PEERS_PER_HASH) {
		/* Full: the peer that expires first makes room. */
		slot = 0;
		for (size_t i = 1; i < st->count; i++)
			if (st->peers[i].expires < st->peers[slot].expires)
				slot = i;
	} else if (slot == st->count) {
		st->count++;
	}
	st->peers[slot].addr = *a;
	st->peers[slot].expires = now + PEER_TTL;
}

static void expire_peers(struct bt_dht *d, double now)
{
	for (size_t i = 0; i < d->nstored;) {
		struct stored *st = &d->stored[i];
		for (size_t j = 0; j < st->count;) {
			if (st->peers[j].expires <= now)
				st->peers[j] = st->peers[--st->count];
			else
				j++;
		}
		if (st->count == 0)
			d->stored[i] = d->stored[--d->nstored];
		else
			i++;
	}
}

/* Rate limit: a token bucket per source IP, in a small table where the stalest entry yields. */
static bool rate_ok(struct bt_dht *d, const struct bt_peer_addr *from, double now)
{
	struct bt_peer_addr ip = *from;
	ip.port = 0;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < 16; i++)
		h = (h ^ ip.addr[i]) * 16777619u;
	struct rl_slot *slot = NULL, *victim = NULL;
	for (size_t k = 0; k < 4; k++) {
		struct rl_slot *r = &d->rl[(h + k) % RL_SLOTS];
		if (r->used && bt_peer_addr_equal(&r->ip, &ip)) {
			slot = r;
			break;
		}
		if (!victim || !r->used || (victim->used && r->last < victim->last))
			victim = r;
	}
	if (!slot) {
		slot = victim;
		slot->used = true;
		slot->ip = ip;
		slot->tokens = RL_BURST;
		slot->last = now;
	}
	slot->tokens += (now - slot->last) * RL_RATE;
	if (slot->tokens > RL_BURST)
		slot->tokens = RL_BURST;
	slot->last = now;
	if (slot->tokens < 1.0)
		return false;
	slot->tokens -= 1.0;
	return true;
}

static void note_ip_vote(struct bt_dht *d, const struct bt_peer_addr *ip,
			 const struct bt_peer_addr *voter)
{
	if (ip->family != d->fam)
		return;
	struct vote *v = NULL, *weakest = &d->votes[0];
	for (size_t i = 0; i < VOTE_SLOTS; i++) {
		if (d->votes[i].nvoters > 0 && same_ip(&d->votes[i].ip, ip)) {
			v = &d->votes[i];
			break;
		}
		if (d->votes[i].nvoters < weakest->nvoters)
			weakest = &d->votes[i];
	}
	if (!v) {
		if (weakest->nvoters >= VOTERS_NEEDED)
			return;
		v = weakest;
		memset(v, 0, sizeof *v);
	}
	v->ip = *ip;
	for (size_t i = 0; i < v->nvoters; i++)
		if (same_ip(&v->voters[i], voter))
			return;
	if (v->nvoters < VOTERS_NEEDED)
		v->voters[v->nvoters++] = *voter;
}

/* Serving queries. */

static void reply_error(struct bt_dht *d, const struct bt_krpc_msg *m,
			const struct bt_peer_addr *to, int code, const char *msg)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_error(&b, m->tid, m->tid_len, code, msg);
	queue_out(d, &b, to);
	bt_buf_deinit(&b);
}

static void fill_nodes(struct bt_dht *d, const uint8_t *target, struct bt_krpc_reply *r,
		       struct bt_krpc_node *buf)
{
	struct node *closest[BT_DHT_K];
	size_t n = table_closest(d, target, closest, BT_DHT_K);
	for (size_t i = 0; i < n; i++) {
		memcpy(buf[i].id, closest[i]->id, BT_HASH_LEN);
		buf[i].addr = closest[i]->addr;
	}
	if (d->fam == 4) {
		r->nodes = buf;
		r->node_count = n;
	} else {
		r->nodes6 = buf;
		r->node6_count = n;
	}
}

static void handle_query(struct bt_dht *d, const struct bt_krpc_msg *m,
			 const struct bt_peer_addr *from, double now)
{
	d->queries_in++;
	if (!is_router(d, from))
		table_heard(d, m->id, from, false, true, now);
	struct bt_krpc_reply r = {.requester_ip = from};
	struct bt_krpc_node nodes[BT_DHT_K];
	struct bt_peer_addr values[PEERS_PER_HASH];
	uint8_t token[TOKEN_LEN];
	switch (m->method) {
	case BT_KRPC_PING:
		break;
	case BT_KRPC_FIND_NODE:
		fill_nodes(d, m->target, &r, nodes);
		break;
	case BT_KRPC_OTHER:
		if (m->has_target)
			fill_nodes(d, m->target, &r, nodes);
		else if (m->has_info_hash)
			fill_nodes(d, m->info_hash, &r, nodes);
		else {
			reply_error(d, m, from, BT_KRPC_ERR_METHOD, "method unknown");
			return;
		}
		break;
	case BT_KRPC_GET_PEERS: {
		make_token(d->secret[0], from, token);
		r.token = token;
		r.token_len = TOKEN_LEN;
		struct stored *st = stored_find(d, m->info_hash);
		/* Values cost 8 (IPv4) or 20 (IPv6) bytes each: cap them inside 1024 bytes. */
		size_t cap = d->fam == 4 ? PEERS_PER_HASH : 40, n = 0;
		if (st)
			for (size_t i = 0; i < st->count && n < cap; i++)
				if (st->peers[i].expires > now)
					values[n++] = st->peers[i].addr;
		if (n) {
			r.values = values;
			r.value_count = n;
		} else {
			fill_nodes(d, m->info_hash, &r, nodes);
		}
		break;
	}
	case BT_KRPC_ANNOUNCE_PEER: {
		if (!token_ok(d, from, m->token, m->token_len)) {
			reply_error(d, m, from, BT_KRPC_ERR_PROTOCOL, "bad token");
			return;
		}
		struct bt_peer_addr peer = *from;
		if (!m->implied_port)
			peer.port = m->port;
		if (peer.port == 0) {
			reply_error(d, m, from, BT_KRPC_ERR_PROTOCOL, "port is 0");
			return;
		}
		store_peer(d, m->info_hash, &peer, now);
		break;
	}
	}
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_reply(&b, m->tid, m->tid_len, d->id, &r);
	queue_out(d, &b, from);
	bt_buf_deinit(&b);
}

static void search_reply(struct bt_dht *d, const struct tx *t, const struct bt_krpc_msg *m,
			 double now)
{
	struct search *s = search_at(d, t->search);
	if (!s->active || s->serial != t->serial)
		return;
	if (t->router) {
		s->router_pending--;
	} else if (m) {
		int ci = cand_find_addr(s, &t->to);
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
		int ci = cand_find_addr(s, &t->to);
		if (ci >= 0)
			s->c[ci].state = C_FAILED;
	}
	if (m) {
		const struct bt_krpc_node *ns = d->fam == 4 ? m->nodes : m->nodes6;
		size_t nn = d->fam == 4 ? m->node_count : m->node6_count;
		for (size_t i = 0; i < nn; i++)
			cand_add(d, s, ns[i].id, &ns[i].addr);
		if (m->value_count && !s->internal)
			queue_event(d, BT_DHT_PEERS, s->target, m->values, m->value_count);
	}
	search_step(d, t->search, now);
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
			search_reply(d, &t, NULL, now);
		return;
	}
	d->replies_in++;
	if (m->ip.family)
		note_ip_vote(d, &m->ip, from);
	if (!t.router && !is_router(d, from))
		table_heard(d, m->id, from, true, false, now);
	if (t.kind == TX_SEARCH)
		search_reply(d, &t, m, now);
	const struct bt_krpc_node *ns = d->fam == 4 ? m->nodes : m->nodes6;
	size_t nn = d->fam == 4 ? m->node_count : m->node6_count;
	if (nn)
		consider_nodes(d, ns, nn, now);
}

void bt_dht_input(struct bt_dht *d, const uint8_t *p, size_t len, const struct sockaddr *from,
		  socklen_t fromlen, double now)
{
	d->now = now;
	struct bt_peer_addr src;
	if (!addr_of(d, from, fromlen, &src))
		return;
	struct bt_krpc_msg *m = bt_xmalloc(sizeof *m);
	struct bt_err err = {{0}};
	int rc = bt_krpc_parse(m, p, len, &err);
	if (rc < 0) {
		/* A malformed query we can address gets 203, within the no-amplification rule. */
		if (m->tid_len > 0 && m->type == BT_KRPC_QUERY && len >= MIN_QUERY_LEN &&
		    rate_ok(d, &src, now))
			reply_error(d, m, &src, BT_KRPC_ERR_PROTOCOL, err.msg);
		goto out;
	}
	if (m->has_id && memcmp(m->id, d->id, BT_HASH_LEN) == 0)
		goto out; /* our own id: a reflection or a liar */
	if (m->type == BT_KRPC_QUERY) {
		if (len >= MIN_QUERY_LEN && rate_ok(d, &src, now))
			handle_query(d, m, &src, now);
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
		table_failed(d, t->id, &t->to);
	if (t->kind == TX_SEARCH)
		search_reply(d, t, NULL, now);
}

static void random_id_in_bucket(struct bt_dht *d, size_t bi, uint8_t *out)
{
	rnd_bytes(d, out, BT_HASH_LEN);
	/* Share bi bits with our id and differ at bit bi (except the last bucket, which holds
	 * every longer prefix too). */
	for (size_t bit = 0; bit <= bi && bit < 160; bit++) {
		uint8_t mask = (uint8_t)(0x80 >> (bit % 8));
		uint8_t ours = d->id[bit / 8] & mask;
		if (bit == bi && bi != d->nbuckets - 1)
			ours ^= mask;
		else if (bit == bi)
			break;
		out[bit / 8] = (uint8_t)((out[bit / 8] & ~mask) | ours);
	}
}

double bt_dht_tick(struct bt_dht *d, double now)
{
	d->now = now;
	double next = now + MAX_TICK_WAIT;
	if (now >= d->next_rotate) {
		memcpy(d->secret[1], d->secret[0], BT_HASH_LEN);
		rnd_bytes(d, d->secret[0], BT_HASH_LEN);
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
			struct search *s = search_at(d, t->search);
			int ci = s->active && s->serial == t->serial ? cand_find_addr(s, &t->to)
								     : -1;
			if (ci >= 0)
				s->c[ci].slow = true;
		}
		i++;
	}
	for (int i = 0; i <= BT_DHT_MAX_SEARCHES; i++)
		search_step(d, i, now);

	struct bt_dht_stats st;
	bt_dht_get_stats(d, &st);
	if (st.good < BT_DHT_K && now >= d->next_bootstrap && !search_at(d, 0)->active) {
		d->next_bootstrap = now + BOOTSTRAP_EVERY;
		search_start(d, 0, d->id, true, false, 0, now);
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
		random_id_in_bucket(d, bi, target);
		if (send_find_node(d, &q->addr, q->id, target, now) == 0)
			q->pinged = true;
		b->last_changed = now;
	}
	if (now >= d->next_expire) {
		expire_peers(d, now);
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
	rnd_bytes(d, d->secret[0], BT_HASH_LEN);
	rnd_bytes(d, d->secret[1], BT_HASH_LEN);
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
	if (!addr_of(d, sa, len, &a) || is_router(d, &a) || d->nrouters == MAX_ROUTERS)
		return;
	d->routers[d->nrouters++] = a;
}

static void add_known(struct bt_dht *d, const uint8_t *id, const struct bt_peer_addr *a, double now)
{
	if (is_router(d, a))
		return;
	if (!id) {
		bool cached;
		if (!find_addr(d, a, &cached) && !tx_to(d, a))
			send_ping(d, a, NULL, now);
		return;
	}
	table_heard(d, id, a, false, false, now);
}

void bt_dht_add_node(struct bt_dht *d, const uint8_t *id_or_null, const struct sockaddr *sa,
		     socklen_t len, double now)
{
	d->now = now;
	struct bt_peer_addr a;
	if (addr_of(d, sa, len, &a))
		add_known(d, id_or_null, &a, now);
}

void bt_dht_get_stats(const struct bt_dht *d, struct bt_dht_stats *out)
{
	memset(out, 0, sizeof *out);
	double now = d->now;
	for (size_t i = 0; i < d->nbuckets; i++)
		for (size_t j = 0; j < d->buckets[i].count; j++) {
			out->nodes++;
			if (node_good(&d->buckets[i].nodes[j], now))
				out->good++;
		}
	for (int i = 1; i <= BT_DHT_MAX_SEARCHES; i++)
		if (d->searches[i] && d->searches[i]->active)
			out->searches++;
	for (size_t i = 0; i < d->nstored; i++)
		out->stored_peers += d->stored[i].count;
	out->queries_in = d->queries_in;
	out->replies_in = d->replies_in;
}

const uint8_t *bt_dht_id(const struct bt_dht *d)
{
	return d->id;
}

static void put_compact_node(struct bt_buf *b, const struct node *n)
{
	bt_buf_add(b, n->id, BT_HASH_LEN);
	bt_buf_add(b, n->addr.addr, n->addr.family == 6 ? 16 : 4);
	uint8_t port[2];
	bt_store_be16(port, n->addr.port);
	bt_buf_add(b, port, 2);
}

void bt_dht_save(const struct bt_dht *d, struct bt_buf *out)
{
	struct bt_buf nodes;
	bt_buf_init(&nodes);
	size_t saved = 0;
	double now = d->now;
	/* Two passes: good nodes first, then the others that have answered once. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < d->nbuckets; i++)
			for (size_t j = 0; j < d->buckets[i].count; j++) {
				const struct node *n = &d->buckets[i].nodes[j];
				bool good = node_good(n, now);
				if (saved == BT_DHT_SAVE_NODES || n->last_reply == 0 ||
				    node_bad(n) || good != (pass == 0))
					continue;
				put_compact_node(&nodes, n);
				saved++;
			}
	bt_benc_begin_dict(out);
	bt_benc_put_cstr(out, "id");
	bt_benc_put_str(out, d->id, BT_HASH_LEN);
	bt_benc_put_cstr(out, d->fam == 4 ? "nodes" : "nodes6");
	bt_benc_put_str(out, nodes.data, nodes.len);
	bt_benc_end(out);
	bt_buf_deinit(&nodes);
}

void bt_dht_set_id(struct bt_dht *d, const uint8_t id[BT_HASH_LEN], double now)
{
	if (memcmp(id, d->id, BT_HASH_LEN) == 0)
		return;
	/* A new id moves every bucket boundary: rebuild the table around it. */
	struct bucket *old = d->buckets;
	size_t nold = d->nbuckets;
	memcpy(d->id, id, BT_HASH_LEN);
	d->buckets = bt_xcalloc(1, sizeof *d->buckets);
	d->buckets[0].last_changed = now;
	d->nbuckets = 1;
	for (size_t i = 0; i < nold; i++)
		for (size_t j = 0; j < old[i].count; j++)
			if (memcmp(old[i].nodes[j].id, d->id, BT_HASH_LEN) != 0)
				table_put(d, &old[i].nodes[j], now);
	free(old);
}

int bt_dht_load(struct bt_dht *d, const uint8_t *p, size_t len, double now)
{
	d->now = now;
	struct bt_benc_doc doc;
	struct bt_benc_limits lim = {.max_depth = 4, .max_nodes = 64};
	if (bt_benc_parse(&doc, p, len, &lim, NULL, NULL) != BT_BENC_OK)
		return -EINVAL;
	const struct bt_benc_node *root = bt_benc_root(&doc);
	const struct bt_benc_node *id = bt_benc_dict_get(root, "id");
	const struct bt_benc_node *nodes = bt_benc_dict_get(root, d->fam == 4 ? "nodes" : "nodes6");
	size_t each = d->fam == 4 ? BT_KRPC_NODE4_LEN : BT_KRPC_NODE6_LEN;
	if (root->type != BT_BENC_DICT || !id || id->type != BT_BENC_STR ||
	    id->str_len != BT_HASH_LEN ||
	    (nodes && (nodes->type != BT_BENC_STR || nodes->str_len % each != 0))) {
		bt_benc_doc_deinit(&doc);
		return -EINVAL;
	}
	bt_dht_set_id(d, id->str, now);
	size_t count = nodes ? nodes->str_len / each : 0;
	for (size_t i = 0; i < count && i < BT_DHT_SAVE_NODES; i++) {
		const uint8_t *e = nodes->str + i * each;
		struct bt_peer_addr a = {.family = d->fam};
		memcpy(a.addr, e + BT_HASH_LEN, each - BT_HASH_LEN - 2);
		a.port = bt_load_be16(e + each - 2);
		if (a.port != 0)
			add_known(d, e, &a, now);
	}
	bt_benc_doc_deinit(&doc);
	return 0;
}

bool bt_dht_external_ip(const struct bt_dht *d, struct bt_peer_addr *out)
{
	const struct vote *best = NULL;
	for (size_t i = 0; i < VOTE_SLOTS; i++)
		if (d->votes[i].nvoters >= VOTERS_NEEDED &&
		    (!best || d->votes[i].nvoters > best->nvoters))
			best = &d->votes[i];
	if (!best)
		return false;
	*out = best->ip;
	return true;
}

/* CRC32-C (Castagnoli, reflected polynomial 0x82f63b78), bit by bit: it runs once per id. */
static uint32_t crc32c(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
	}
	return ~crc;
}

void bt_dht_bep42_id(const struct bt_peer_addr *ip, const uint8_t rnd[BT_HASH_LEN],
		     uint8_t id_out[BT_HASH_LEN])
{
	static const uint8_t mask4[4] = {0x03, 0x0f, 0x3f, 0xff};
	static const uint8_t mask6[8] = {0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff};
	uint8_t buf[8];
	size_t n = ip->family == 6 ? 8 : 4;
	const uint8_t *mask = ip->family == 6 ? mask6 : mask4;
	for (size_t i = 0; i < n; i++)
		buf[i] = ip->addr[i] & mask[i];
	uint8_t r = rnd[19] & 7;
	buf[0] |= (uint8_t)(r << 5);
	uint32_t crc = crc32c(buf, n);
	memcpy(id_out, rnd, BT_HASH_LEN);
	id_out[0] = (uint8_t)(crc >> 24);
	id_out[1] = (uint8_t)(crc >> 16);
	id_out[2] = (uint8_t)(((crc >> 8) & 0xf8) | (rnd[2] & 7));
	id_out[19] = rnd[19];
}
