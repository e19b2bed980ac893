/* The DHT core serving others: see dht.h. */
#include "dht_internal.h"

#include "bt/bencode.h"
#include "bt/hash.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

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

void bt_dht_expire_peers(struct bt_dht *d, double now)
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
bool bt_dht_rate_ok(struct bt_dht *d, const struct bt_peer_addr *from, double now)
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

void bt_dht_note_ip_vote(struct bt_dht *d, const struct bt_peer_addr *ip,
			 const struct bt_peer_addr *voter)
{
	if (ip->family != d->fam)
		return;
	struct vote *v = NULL, *weakest = &d->votes[0];
	for (size_t i = 0; i < VOTE_SLOTS; i++) {
		if (d->votes[i].nvoters > 0 && bt_dht_same_ip(&d->votes[i].ip, ip)) {
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
		if (bt_dht_same_ip(&v->voters[i], voter))
			return;
	if (v->nvoters < VOTERS_NEEDED)
		v->voters[v->nvoters++] = *voter;
}

/* Serving queries. */

void bt_dht_reply_error(struct bt_dht *d, const struct bt_krpc_msg *m,
			const struct bt_peer_addr *to, int code, const char *msg)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_error(&b, m->tid, m->tid_len, code, msg);
	bt_dht_queue_out(d, &b, to);
	bt_buf_deinit(&b);
}

static void fill_nodes(struct bt_dht *d, const uint8_t *target, struct bt_krpc_reply *r,
		       struct bt_krpc_node *buf)
{
	struct node *closest[BT_DHT_K];
	size_t n = bt_dht_table_closest(d, target, closest, BT_DHT_K);
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

void bt_dht_handle_query(struct bt_dht *d, const struct bt_krpc_msg *m,
			 const struct bt_peer_addr *from, double now)
{
	d->queries_in++;
	if (!bt_dht_is_router(d, from))
		bt_dht_table_heard(d, m->id, from, false, true, now);
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
			bt_dht_reply_error(d, m, from, BT_KRPC_ERR_METHOD, "method unknown");
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
			bt_dht_reply_error(d, m, from, BT_KRPC_ERR_PROTOCOL, "bad token");
			return;
		}
		struct bt_peer_addr peer = *from;
		if (!m->implied_port)
			peer.port = m->port;
		if (peer.port == 0) {
			bt_dht_reply_error(d, m, from, BT_KRPC_ERR_PROTOCOL, "port is 0");
			return;
		}
		store_peer(d, m->info_hash, &peer, now);
		break;
	}
	}
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_reply(&b, m->tid, m->tid_len, d->id, &r);
	bt_dht_queue_out(d, &b, from);
	bt_buf_deinit(&b);
}