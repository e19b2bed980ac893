/* The DHT core's routing table, saved state and BEP 42 ids: see dht.h. */
#include "dht_internal.h"

#include "bt/bencode.h"
#include "bt/hash.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int bt_dht_xor_cmp(const uint8_t *target, const uint8_t *a, const uint8_t *b)
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

bool bt_dht_same_ip(const struct bt_peer_addr *a, const struct bt_peer_addr *b)
{
	return a->family == b->family && memcmp(a->addr, b->addr, a->family == 6 ? 16 : 4) == 0;
}

bool bt_dht_addr_of(const struct bt_dht *d, const struct sockaddr *sa, socklen_t len,
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

bool bt_dht_is_router(const struct bt_dht *d, const struct bt_peer_addr *a)
{
	for (size_t i = 0; i < d->nrouters; i++)
		if (bt_peer_addr_equal(&d->routers[i], a))
			return true;
	return false;
}

bool bt_dht_node_good(const struct node *n, double now)
{
	return n->fails < MAX_FAILS && n->last_reply > 0 &&
	       (now - n->last_reply < GOOD_TIME || now - n->last_query < GOOD_TIME);
}

bool bt_dht_node_bad(const struct node *n)
{
	return n->fails >= MAX_FAILS;
}

size_t bt_dht_bucket_index(const struct bt_dht *d, const uint8_t *id)
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

struct node *bt_dht_find_node(struct bt_dht *d, const uint8_t *id)
{
	struct bucket *b = &d->buckets[bt_dht_bucket_index(d, id)];
	return find_in(b->nodes, b->count, id);
}

/* The table entry (or cache entry) at this address, under any id. */
struct node *bt_dht_find_addr(struct bt_dht *d, const struct bt_peer_addr *a, bool *cached)
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
void bt_dht_split_last(struct bt_dht *d)
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

void bt_dht_cache_add(struct bucket *b, const struct node *n)
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

/*
 * We heard from (or of) a node. replied: it answered our query from this address; queried: it
 * sent us a query. An id held by another address, or an address held under another id, is left
 * alone unless the holder has gone bad: a liar cannot take over a live node's entry.
 */
void bt_dht_table_heard(struct bt_dht *d, const uint8_t *id, const struct bt_peer_addr *a,
			bool replied, bool queried, double now)
{
	if (memcmp(id, d->id, BT_HASH_LEN) == 0)
		return;
	size_t bi = bt_dht_bucket_index(d, id);
	struct bucket *b = &d->buckets[bi];
	struct node *n = find_in(b->nodes, b->count, id);
	bool in_cache = false;
	if (!n) {
		n = find_in(b->cache, b->cache_count, id);
		in_cache = n != NULL;
	}
	if (n && !bt_peer_addr_equal(&n->addr, a)) {
		if (!bt_dht_node_bad(n) && !(in_cache && replied))
			return;
		n->addr = *a; /* the old holder is dead: the id moved */
		n->last_reply = 0;
		n->fails = 0;
	}
	if (!n) {
		bool cached;
		struct node *other = bt_dht_find_addr(d, a, &cached);
		if (other) {
			if (!bt_dht_node_bad(other))
				return;
			/* A dead entry at this address: forget it, the new id takes its place. */
			struct bucket *ob = &d->buckets[bt_dht_bucket_index(d, other->id)];
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
		bt_dht_table_put(d, &fresh, now);
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
			if (bt_dht_node_bad(&b->nodes[i])) {
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
void bt_dht_table_failed(struct bt_dht *d, const uint8_t *id, const struct bt_peer_addr *a)
{
	struct bucket *b = &d->buckets[bt_dht_bucket_index(d, id)];
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
	if (!bt_dht_node_bad(n) || b->cache_count == 0)
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
size_t bt_dht_table_closest(struct bt_dht *d, const uint8_t *target, struct node **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < d->nbuckets; i++) {
		struct bucket *b = &d->buckets[i];
		for (size_t j = 0; j < b->count; j++) {
			struct node *x = &b->nodes[j];
			if (bt_dht_node_bad(x))
				continue;
			size_t pos = n;
			while (pos > 0 && bt_dht_xor_cmp(target, x->id, out[pos - 1]->id) < 0)
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

void bt_dht_random_id_in_bucket(struct bt_dht *d, size_t bi, uint8_t *out)
{
	bt_dht_rnd_bytes(d, out, BT_HASH_LEN);
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

void bt_dht_add_known(struct bt_dht *d, const uint8_t *id, const struct bt_peer_addr *a, double now)
{
	if (bt_dht_is_router(d, a))
		return;
	if (!id) {
		bool cached;
		if (!bt_dht_find_addr(d, a, &cached) && !bt_dht_tx_to(d, a))
			bt_dht_send_ping(d, a, NULL, now);
		return;
	}
	bt_dht_table_heard(d, id, a, false, false, now);
}

void bt_dht_get_stats(const struct bt_dht *d, struct bt_dht_stats *out)
{
	memset(out, 0, sizeof *out);
	double now = d->now;
	for (size_t i = 0; i < d->nbuckets; i++)
		for (size_t j = 0; j < d->buckets[i].count; j++) {
			out->nodes++;
			if (bt_dht_node_good(&d->buckets[i].nodes[j], now))
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
				bool good = bt_dht_node_good(n, now);
				if (saved == BT_DHT_SAVE_NODES || n->last_reply == 0 ||
				    bt_dht_node_bad(n) || good != (pass == 0))
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
				bt_dht_table_put(d, &old[i].nodes[j], now);
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
			bt_dht_add_known(d, e, &a, now);
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
/*
 * Puts a node into the table: into a free slot, a split of our bucket, a bad node's slot, or
 * else the replacement cache, pinging a questionable member so that a dead one makes room.
 * Returns true if it entered the bucket itself.
 */
bool bt_dht_table_put(struct bt_dht *d, const struct node *n, double now)
{
	for (;;) {
		size_t bi = bt_dht_bucket_index(d, n->id);
		struct bucket *b = &d->buckets[bi];
		if (b->count < BT_DHT_K) {
			b->nodes[b->count++] = *n;
			b->last_changed = now;
			return true;
		}
		if (bi == d->nbuckets - 1 && d->nbuckets < MAX_BUCKETS) {
			bt_dht_split_last(d);
			continue;
		}
		for (size_t i = 0; i < b->count; i++)
			if (bt_dht_node_bad(&b->nodes[i])) {
				b->nodes[i] = *n;
				b->last_changed = now;
				return true;
			}
		bt_dht_cache_add(b, n);
		struct node *q = NULL;
		for (size_t i = 0; i < b->count; i++)
			if (!bt_dht_node_good(&b->nodes[i], now) && !b->nodes[i].pinged)
				q = &b->nodes[i];
		if (q && bt_dht_send_ping(d, &q->addr, q->id, now) == 0)
			q->pinged = true;
		return false;
	}
}
