/*
 * The DHT core on byte arrays: datagrams in, datagrams and events out, a virtual clock.
 * Addresses are 10.0.0.x:6881 and never touch a socket.
 */
#include "bt/dht.h"
#include "bt/krpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define PORT 6881

static struct sockaddr_in addr(unsigned host, uint16_t port)
{
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(0x0a000000u | host);
	return sa;
}

static struct bt_peer_addr paddr(unsigned host, uint16_t port)
{
	struct sockaddr_in sa = addr(host, port);
	struct bt_peer_addr a;
	bt_peer_addr_from_sockaddr((struct sockaddr *)&sa, &a);
	return a;
}

/* Our id: 0x80 then zeros. Ids with a first bit of 0 are in the far half. */
static struct bt_dht *core(double now)
{
	struct bt_dht_config cfg = {.family = AF_INET};
	cfg.id[0] = 0x80;
	for (int i = 0; i < 16; i++)
		cfg.secret_seed[i] = (uint8_t)(i * 7 + 1);
	struct bt_dht *d = bt_dht_new(&cfg, now);
	assert_non_null(d);
	return d;
}

static void far_id(uint8_t *id, unsigned n)
{
	memset(id, 0, 20);
	id[0] = 0x01;
	id[19] = (uint8_t)n;
	id[18] = (uint8_t)(n >> 8);
}

static void feed(struct bt_dht *d, const void *p, size_t len, unsigned host, uint16_t port,
		 double now)
{
	struct sockaddr_in sa = addr(host, port);
	bt_dht_input(d, p, len, (struct sockaddr *)&sa, sizeof sa, now);
}

static void feed_buf(struct bt_dht *d, struct bt_buf *b, unsigned host, double now)
{
	feed(d, b->data, b->len, host, PORT, now);
	b->len = 0;
}

/* The next datagram, parsed; false if none. *host_out is its destination's last bytes. */
static bool next(struct bt_dht *d, struct bt_krpc_msg *m, unsigned *host_out)
{
	struct bt_dht_datagram g;
	if (!bt_dht_next_output(d, &g))
		return false;
	assert_true(g.len <= BT_DHT_MAX_REPLY);
	struct bt_err err = {{0}};
	if (bt_krpc_parse(m, g.data, g.len, &err) != 0)
		fail_msg("core sent unparsable %.*s: %s", (int)g.len, (const char *)g.data,
			 err.msg);
	struct sockaddr_in to;
	memcpy(&to, &g.to, sizeof to);
	if (host_out)
		*host_out = ntohl(to.sin_addr.s_addr) & 0xffffff;
	return true;
}

/* The next reply or error, skipping the core's own queries (pings of questionable nodes). */
static bool next_reply(struct bt_dht *d, struct bt_krpc_msg *m)
{
	while (next(d, m, NULL))
		if (m->type != BT_KRPC_QUERY)
			return true;
	return false;
}

static size_t drain(struct bt_dht *d)
{
	struct bt_krpc_msg m;
	size_t n = 0;
	while (next(d, &m, NULL))
		n++;
	return n;
}

static struct bt_dht_stats stats(struct bt_dht *d)
{
	struct bt_dht_stats st;
	bt_dht_get_stats(d, &st);
	return st;
}

static void ping_from(struct bt_dht *d, unsigned host, const uint8_t *id, double now)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_ping(&b, (const uint8_t *)"pq", 2, id);
	feed_buf(d, &b, host, now);
	bt_buf_deinit(&b);
}

static void test_ping_is_answered_and_adds_the_node(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	uint8_t id[20];
	far_id(id, 1);
	ping_from(d, 5, id, 1);
	struct bt_krpc_msg m;
	unsigned to;
	assert_true(next(d, &m, &to));
	assert_int_equal(to, 5);
	assert_int_equal(m.type, BT_KRPC_RESPONSE);
	assert_memory_equal(m.tid, "pq", 2);
	assert_memory_equal(m.id, bt_dht_id(d), 20);
	assert_true(bt_peer_addr_equal(&m.ip, &(struct bt_peer_addr){0}) == false);
	struct bt_peer_addr want = paddr(5, PORT);
	assert_true(bt_peer_addr_equal(&m.ip, &want));
	assert_false(next(d, &m, NULL));
	struct bt_dht_stats st = stats(d);
	assert_int_equal(st.queries_in, 1);
	assert_int_equal(st.nodes, 1);
	assert_int_equal(st.good, 0); /* queried us, but never replied */
	bt_dht_free(d);
}

static void test_own_id_and_short_or_huge_input_are_ignored(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	uint8_t ours[20];
	memcpy(ours, bt_dht_id(d), 20);
	ping_from(d, 5, ours, 1);
	assert_int_equal(drain(d), 0);
	assert_int_equal(stats(d).nodes, 0);
	/* 14 bytes: malformed (no method) but too small to be worth an answer */
	feed(d, "d1:t1:a1:y1:qe", 14, 6, PORT, 1);
	assert_int_equal(drain(d), 0);
	uint8_t *big = calloc(1, 65536);
	assert_non_null(big);
	big[0] = 'd';
	feed(d, big, 65536, 6, PORT, 1);
	free(big);
	feed(d, "", 0, 6, PORT, 1);
	assert_int_equal(drain(d), 0);
	bt_dht_free(d);
}

static void test_malformed_and_unknown_queries_get_errors(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	struct bt_krpc_msg m;
	/* find_node without a target: 203 */
	const char *bad = "d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:aa1:y1:qe";
	feed(d, bad, strlen(bad), 7, PORT, 1);
	assert_true(next(d, &m, NULL));
	assert_int_equal(m.type, BT_KRPC_ERROR);
	assert_int_equal(m.error_code, 203);
	assert_memory_equal(m.tid, "aa", 2);
	/* an unknown method without target: 204 */
	const char *unk = "d1:ad2:id20:abcdefghij0123456789e1:q5:vote!1:t2:bb1:y1:qe";
	feed(d, unk, strlen(unk), 7, PORT, 1);
	assert_true(next(d, &m, NULL));
	assert_int_equal(m.type, BT_KRPC_ERROR);
	assert_int_equal(m.error_code, 204);
	/* an unknown method with a target: answered like find_node */
	uint8_t id[20];
	far_id(id, 9);
	bt_dht_add_node(d, id, (struct sockaddr *)&(struct sockaddr_in){0}, 0, 1); /* refused */
	struct sockaddr_in sa = addr(9, PORT);
	bt_dht_add_node(d, id, (struct sockaddr *)&sa, sizeof sa, 1);
	const char *oth = "d1:ad2:id20:abcdefghij01234567896:target20:abcdefghij0123456789e"
			  "1:q11:sample_info1:t2:cc1:y1:qe";
	feed(d, oth, strlen(oth), 7, PORT, 1);
	assert_true(next(d, &m, NULL));
	assert_int_equal(m.type, BT_KRPC_RESPONSE);
	/* node 9, and the querier itself (it entered the table with its valid queries) */
	assert_int_equal(m.node_count, 2);
	assert_true(memcmp(m.nodes[0].id, id, 20) == 0 || memcmp(m.nodes[1].id, id, 20) == 0);
	bt_dht_free(d);
}

static void test_find_node_returns_the_closest_eight(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	/* 30 nodes spread over the id space: ids i << 3 in the first byte */
	for (unsigned i = 1; i <= 30; i++) {
		uint8_t id[20] = {0};
		id[0] = (uint8_t)(i << 3);
		id[1] = 1;
		struct sockaddr_in sa = addr(100 + i, PORT);
		bt_dht_add_node(d, id, (struct sockaddr *)&sa, sizeof sa, 1);
	}
	uint8_t target[20] = {0};
	target[0] = 0x20; /* 4 << 3: in the table (the far bucket keeps the first 8 it heard of) */
	drain(d);	  /* pings of questionable members of full buckets */
	struct bt_buf b;
	bt_buf_init(&b);
	uint8_t qid[20];
	far_id(qid, 77);
	bt_krpc_put_find_node(&b, (const uint8_t *)"fn", 2, qid, target, false, false);
	feed_buf(d, &b, 50, 2);
	bt_buf_deinit(&b);
	struct bt_krpc_msg m;
	assert_true(next_reply(d, &m));
	assert_int_equal(m.node_count, 8);
	assert_int_equal(m.nodes[0].id[0], 0x20);
	for (size_t i = 1; i < m.node_count; i++) {
		uint8_t a = m.nodes[i - 1].id[0] ^ 0x20, c = m.nodes[i].id[0] ^ 0x20;
		assert_true(a < c); /* closest first */
	}
	bt_dht_free(d);
}

/* Sends get_peers from host and returns the token. */
static size_t get_token(struct bt_dht *d, unsigned host, const uint8_t *hash, uint8_t *tok,
			struct bt_krpc_msg *m, double now)
{
	struct bt_buf b;
	bt_buf_init(&b);
	uint8_t qid[20];
	far_id(qid, host);
	bt_krpc_put_get_peers(&b, (const uint8_t *)"gp", 2, qid, hash, false, false);
	feed_buf(d, &b, host, now);
	bt_buf_deinit(&b);
	assert_true(next_reply(d, m));
	assert_int_equal(m->type, BT_KRPC_RESPONSE);
	assert_true(m->token_len > 0);
	memcpy(tok, m->token, m->token_len);
	return m->token_len;
}

static int announce(struct bt_dht *d, unsigned host, uint16_t src_port, const uint8_t *hash,
		    uint16_t port, bool implied, const uint8_t *tok, size_t tok_len, double now)
{
	struct bt_buf b;
	bt_buf_init(&b);
	uint8_t qid[20];
	far_id(qid, host);
	bt_krpc_put_announce_peer(&b, (const uint8_t *)"ap", 2, qid, hash, port, implied, tok,
				  tok_len);
	feed(d, b.data, b.len, host, src_port, now);
	bt_buf_deinit(&b);
	struct bt_krpc_msg m;
	assert_true(next_reply(d, &m));
	return m.type == BT_KRPC_ERROR ? -m.error_code : 0;
}

static void test_tokens_announce_and_get_peers(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	uint8_t hash[20], tok[BT_KRPC_MAX_TOKEN];
	memset(hash, 0xab, 20);
	struct bt_krpc_msg m;
	size_t n = get_token(d, 20, hash, tok, &m, 1);
	assert_int_equal(m.value_count, 0);
	/* wrong token, and a right token from another IP: refused with 203 */
	assert_int_equal(
		announce(d, 20, PORT, hash, 7000, false, (const uint8_t *)"xxxxxxxx", 8, 2), -203);
	assert_int_equal(announce(d, 21, PORT, hash, 7000, false, tok, n, 2), -203);
	assert_int_equal(stats(d).stored_peers, 0);
	assert_int_equal(announce(d, 20, PORT, hash, 7000, false, tok, n, 2), 0);
	/* implied_port: the source port counts */
	uint8_t tok2[BT_KRPC_MAX_TOKEN];
	size_t n2 = get_token(d, 22, hash, tok2, &m, 3);
	assert_int_equal(announce(d, 22, 5555, hash, 0, true, tok2, n2, 3), 0);
	assert_int_equal(stats(d).stored_peers, 2);

	get_token(d, 23, hash, tok2, &m, 4);
	assert_int_equal(m.value_count, 2);
	assert_int_equal(m.node_count, 0);
	struct bt_peer_addr p1 = paddr(20, 7000), p2 = paddr(22, 5555);
	assert_true(bt_peer_addr_equal(&m.values[0], &p1) || bt_peer_addr_equal(&m.values[1], &p1));
	assert_true(bt_peer_addr_equal(&m.values[0], &p2) || bt_peer_addr_equal(&m.values[1], &p2));

	/* the secret rotates every 5 minutes; one rotation is tolerated, two are not */
	n = get_token(d, 24, hash, tok, &m, 5);
	bt_dht_tick(d, 301);
	drain(d);
	assert_int_equal(announce(d, 24, PORT, hash, 7001, false, tok, n, 301), 0);
	bt_dht_tick(d, 602);
	drain(d);
	assert_int_equal(announce(d, 24, PORT, hash, 7001, false, tok, n, 602), -203);

	/* stored peers expire after 30 minutes */
	bt_dht_tick(d, 301 + 1801);
	drain(d);
	assert_int_equal(stats(d).stored_peers, 0);
	get_token(d, 25, hash, tok, &m, 2200);
	assert_int_equal(m.value_count, 0);
	bt_dht_free(d);
}

static void test_stored_peers_are_capped(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	uint8_t hash[20], tok[BT_KRPC_MAX_TOKEN];
	memset(hash, 0xcd, 20);
	struct bt_krpc_msg m;
	for (unsigned i = 0; i < 150; i++) {
		/* each from its own IP (rate limits are per IP) */
		size_t n = get_token(d, 1000 + i, hash, tok, &m, 1);
		assert_int_equal(announce(d, 1000 + i, PORT, hash, 7000, false, tok, n, 1), 0);
	}
	assert_int_equal(stats(d).stored_peers, 100);
	get_token(d, 5000, hash, tok, &m, 2);
	assert_int_equal(m.value_count, 100);
	bt_dht_free(d);
}

static void test_queries_are_rate_limited_per_ip(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	uint8_t id[20];
	far_id(id, 3);
	for (int i = 0; i < 100; i++)
		ping_from(d, 30, id, 10);
	assert_int_equal(drain(d), 40); /* the burst */
	ping_from(d, 31, id, 10);	/* another IP is not affected */
	assert_int_equal(drain(d), 1);
	for (int i = 0; i < 100; i++)
		ping_from(d, 30, id, 11); /* one second later: 20 more */
	assert_int_equal(drain(d), 20);
	bt_dht_free(d);
}

/* Answers the next query in the output (which must exist) from its destination with `id`. */
static void answer(struct bt_dht *d, const uint8_t *id, const struct bt_krpc_reply *r,
		   unsigned from_host, double now, struct bt_krpc_msg *q)
{
	unsigned to;
	assert_true(next(d, q, &to));
	assert_int_equal(q->type, BT_KRPC_QUERY);
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_reply(&b, q->tid, q->tid_len, id, r);
	feed(d, b.data, b.len, from_host ? from_host : to, PORT, now);
	bt_buf_deinit(&b);
}

static void test_replies_must_match_tid_and_address(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	struct sockaddr_in sa = addr(40, PORT);
	bt_dht_add_node(d, NULL, (struct sockaddr *)&sa, sizeof sa, 1);
	struct bt_krpc_msg q;
	uint8_t id[20];
	far_id(id, 40);
	/* from the wrong address: ignored */
	answer(d, id, NULL, 41, 1.1, &q);
	assert_int_equal(q.method, BT_KRPC_PING);
	assert_true(q.tid_len >= 2 && q.tid_len <= 4);
	assert_int_equal(stats(d).nodes, 0);
	assert_int_equal(stats(d).replies_in, 0);
	/* an unknown tid: ignored */
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_reply(&b, (const uint8_t *)"zzzz", 4, id, NULL);
	feed_buf(d, &b, 40, 1.2);
	assert_int_equal(stats(d).nodes, 0);
	/* the right tid from the right address */
	bt_krpc_put_reply(&b, q.tid, q.tid_len, id, NULL);
	feed_buf(d, &b, 40, 1.3);
	assert_int_equal(stats(d).nodes, 1);
	assert_int_equal(stats(d).good, 1);
	/* the same tid again: the transaction is over */
	bt_krpc_put_reply(&b, q.tid, q.tid_len, id, NULL);
	feed_buf(d, &b, 40, 1.4);
	assert_int_equal(stats(d).replies_in, 1);
	bt_buf_deinit(&b);
	/* good for 15 minutes, then questionable */
	bt_dht_tick(d, 1.3 + 899);
	assert_int_equal(stats(d).good, 1);
	bt_dht_tick(d, 1.3 + 901);
	assert_int_equal(stats(d).good, 0);
	bt_dht_free(d);
}

static void add_far(struct bt_dht *d, unsigned n, double now)
{
	uint8_t id[20];
	far_id(id, n);
	struct sockaddr_in sa = addr(n, PORT);
	bt_dht_add_node(d, id, (struct sockaddr *)&sa, sizeof sa, now);
}

static void test_full_bucket_pings_and_replaces_bad_nodes(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	for (unsigned i = 1; i <= 8; i++)
		add_far(d, i, 1);
	assert_int_equal(stats(d).nodes, 8);
	assert_int_equal(drain(d), 0);
	/* a ninth node of the far half (not our bucket: no split) waits in the cache, and one
	 * questionable member is pinged */
	add_far(d, 9, 2);
	assert_int_equal(stats(d).nodes, 8);
	struct bt_krpc_msg q;
	unsigned to;
	assert_true(next(d, &q, &to));
	assert_int_equal(q.method, BT_KRPC_PING);
	unsigned victim = to;
	assert_false(next(d, &q, NULL));
	(void)victim;
	/* the ping and the bootstrap's queries time out, twice: members go bad and the cached
	 * nodes take their places */
	for (double t = 7; t < 40; t += 3) {
		bt_dht_tick(d, t);
		drain(d);
	}
	add_far(d, 10, 41);
	drain(d);
	assert_int_equal(stats(d).nodes, 8);
	uint8_t target[20];
	far_id(target, victim);
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_find_node(&b, (const uint8_t *)"fn", 2, target, target, false, false);
	feed_buf(d, &b, 99, 14);
	bt_buf_deinit(&b);
	struct bt_krpc_msg r;
	assert_true(next_reply(d, &r));
	bool has_new = false;
	for (size_t i = 0; i < r.node_count; i++)
		has_new |= r.nodes[i].id[19] == 9 || r.nodes[i].id[19] == 10;
	assert_true(has_new);
	bt_dht_free(d);
}

static void test_our_bucket_splits(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	/* ids sharing 1..20 leading bits with ours (0x80 00 ...): each lands in its own bucket */
	for (unsigned i = 1; i <= 20; i++) {
		uint8_t id[20];
		memcpy(id, bt_dht_id(d), 20);
		id[i / 8] ^= (uint8_t)(0x80 >> (i % 8));
		id[19] ^= 1;
		struct sockaddr_in sa = addr(200 + i, PORT);
		bt_dht_add_node(d, id, (struct sockaddr *)&sa, sizeof sa, 1);
	}
	for (unsigned i = 1; i <= 20; i++)
		add_far(d, i, 1);
	/* 20 near nodes (the bucket holding our id keeps splitting) + 8 far ones */
	assert_int_equal(stats(d).nodes, 28);
	bt_dht_free(d);
}

static void host_id(uint8_t *id, unsigned host)
{
	far_id(id, host);
	if (host > 6)
		id[0] = 0xc0;
}

static void test_search_iterates_with_alpha_and_announces(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	/* 6 in the far half, 6 in the next bucket: 12 in the table */
	for (unsigned i = 1; i <= 12; i++) {
		uint8_t id[20];
		host_id(id, i);
		struct sockaddr_in sa = addr(i, PORT);
		bt_dht_add_node(d, id, (struct sockaddr *)&sa, sizeof sa, 1);
	}
	assert_int_equal(stats(d).nodes, 12);
	assert_int_equal(drain(d), 0);
	uint8_t hash[20];
	far_id(hash, 0);
	assert_int_equal(bt_dht_search(d, hash, true, 6000, 2), 0);
	assert_int_equal(stats(d).searches, 1);
	struct bt_krpc_msg q[16];
	unsigned to[16];
	size_t n = 0;
	while (n < 16 && next(d, &q[n], &to[n]))
		n++;
	assert_int_equal(n, BT_DHT_ALPHA);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(q[i].method, BT_KRPC_GET_PEERS);
		assert_memory_equal(q[i].info_hash, hash, 20);
	}
	/* 1 s later the slow queries free their slots: 5 more go out */
	bt_dht_tick(d, 3.1);
	size_t m = n;
	while (m < 16 && next(d, &q[m], &to[m]))
		if (q[m].method == BT_KRPC_GET_PEERS) /* (the bootstrap's find_node goes out too) */
			m++;
	assert_int_equal(m, 2 * BT_DHT_ALPHA);
	/* every one answers (late answers count), one with a peer */
	struct bt_peer_addr peer = paddr(77, 7777);
	for (size_t i = 0; i < m; i++) {
		uint8_t id[20];
		host_id(id, to[i]);
		struct bt_krpc_reply r = {.token = (const uint8_t *)"tk", .token_len = 2};
		if (i == 3) {
			r.values = &peer;
			r.value_count = 1;
		}
		struct bt_buf b;
		bt_buf_init(&b);
		bt_krpc_put_reply(&b, q[i].tid, q[i].tid_len, id, &r);
		feed_buf(d, &b, to[i], 3.2);
		bt_buf_deinit(&b);
	}
	/* the 8 closest have answered: the two farthest are never asked, and the announces go */
	struct bt_krpc_msg x;
	unsigned xto;
	size_t announces = 0, gets = 0;
	while (next(d, &x, &xto)) {
		if (x.method == BT_KRPC_ANNOUNCE_PEER) {
			announces++;
			assert_int_equal(x.port, 6000);
			assert_memory_equal(x.token, "tk", 2);
			continue;
		}
		if (x.method != BT_KRPC_GET_PEERS)
			continue;
		gets++;
		uint8_t id[20];
		host_id(id, xto);
		struct bt_krpc_reply r = {.token = (const uint8_t *)"tk", .token_len = 2};
		struct bt_buf b;
		bt_buf_init(&b);
		bt_krpc_put_reply(&b, x.tid, x.tid_len, id, &r);
		feed_buf(d, &b, xto, 3.3);
		bt_buf_deinit(&b);
	}
	assert_int_equal(gets, 0);
	assert_int_equal(announces, BT_DHT_K);
	struct bt_dht_event e;
	assert_true(bt_dht_next_event(d, &e));
	assert_int_equal(e.kind, BT_DHT_PEERS);
	assert_int_equal(e.count, 1);
	assert_true(bt_peer_addr_equal(&e.peers[0], &peer));
	assert_true(bt_dht_next_event(d, &e));
	assert_int_equal(e.kind, BT_DHT_SEARCH_DONE);
	assert_memory_equal(e.info_hash, hash, 20);
	assert_false(bt_dht_next_event(d, &e));
	assert_int_equal(stats(d).searches, 0);
	assert_int_equal(stats(d).good, 10); /* the two never asked are not */
	bt_dht_free(d);
}

static void test_search_times_out_and_limits(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	add_far(d, 1, 0);
	uint8_t hash[20] = {1};
	assert_int_equal(bt_dht_search(d, hash, false, 0, 1), 0);
	assert_int_equal(drain(d), 1);
	double t = bt_dht_tick(d, 1);
	assert_true(t <= 2.0 + 1e-9); /* the soft timeout */
	bt_dht_tick(d, 2.5);
	t = bt_dht_tick(d, 2.5);
	assert_true(t <= 5.0 + 1e-9); /* the hard timeout */
	bt_dht_tick(d, 5.1);
	struct bt_dht_event e;
	assert_true(bt_dht_next_event(d, &e));
	assert_int_equal(e.kind, BT_DHT_SEARCH_DONE);
	add_far(d, 2, 6); /* node 1 has gone bad: searches need someone to ask */
	for (int i = 0; i < BT_DHT_MAX_SEARCHES; i++) {
		hash[1] = (uint8_t)i;
		assert_int_equal(bt_dht_search(d, hash, false, 0, 6), 0);
	}
	hash[1] = 0xff;
	assert_int_equal(bt_dht_search(d, hash, false, 0, 6), -ENOSPC);
	hash[1] = 0; /* a restart of a running search is fine */
	assert_int_equal(bt_dht_search(d, hash, false, 0, 6), 0);
	bt_dht_free(d);
}

static void test_bootstrap_through_a_router_never_kept(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	struct sockaddr_in r = addr(250, PORT);
	bt_dht_add_router(d, (struct sockaddr *)&r, sizeof r);
	bt_dht_tick(d, 0);
	struct bt_krpc_msg q;
	unsigned to;
	assert_true(next(d, &q, &to));
	assert_int_equal(to, 250);
	assert_int_equal(q.method, BT_KRPC_FIND_NODE);
	assert_memory_equal(q.target, bt_dht_id(d), 20);
	/* the router answers with two nodes and no token */
	struct bt_krpc_node nodes[2];
	for (int i = 0; i < 2; i++) {
		far_id(nodes[i].id, 60 + (unsigned)i);
		nodes[i].addr = paddr(60 + (unsigned)i, PORT);
	}
	uint8_t rid[20];
	far_id(rid, 250);
	struct bt_krpc_reply rep = {.nodes = nodes, .node_count = 2};
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_reply(&b, q.tid, q.tid_len, rid, &rep);
	feed_buf(d, &b, 250, 0.1);
	bt_buf_deinit(&b);
	assert_int_equal(stats(d).nodes, 0); /* the router is not kept */
	/* both nodes are queried (the lookup) */
	size_t to60 = 0;
	while (next(d, &q, &to))
		to60 += to == 60 || to == 61;
	assert_true(to60 >= 2);
	bt_dht_free(d);
}

static void test_bucket_refresh(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	add_far(d, 1, 0);
	bt_dht_tick(d, 1);
	drain(d); /* the bootstrap's lookup */
	bt_dht_tick(d, 100);
	drain(d);
	bt_dht_tick(d, 905);
	struct bt_krpc_msg q;
	unsigned to;
	bool refreshed = false;
	while (next(d, &q, &to))
		if (q.method == BT_KRPC_FIND_NODE && to == 1)
			refreshed = q.target[0] < 0x80; /* a random id in the far bucket */
	assert_true(refreshed);
	bt_dht_free(d);
}

static void test_save_and_load(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	struct sockaddr_in sa = addr(40, PORT);
	bt_dht_add_node(d, NULL, (struct sockaddr *)&sa, sizeof sa, 1);
	uint8_t id[20];
	far_id(id, 40);
	struct bt_krpc_msg q;
	answer(d, id, NULL, 0, 1.1, &q);
	add_far(d, 41, 1.2); /* never answered: not saved */
	struct bt_buf b;
	bt_buf_init(&b);
	bt_dht_save(d, &b);

	struct bt_dht_config cfg = {.family = AF_INET};
	memset(cfg.id, 0x33, 20);
	struct bt_dht *e = bt_dht_new(&cfg, 0);
	uint8_t *bad = malloc(b.len);
	memcpy(bad, b.data, b.len);
	assert_int_equal(bt_dht_load(e, bad, b.len - 1, 0), -EINVAL); /* truncated */
	bad[4 + 20 + 10] = '5';					      /* wrong nodes length */
	assert_int_equal(bt_dht_load(e, (const uint8_t *)"d2:id3:abce", 11, 0), -EINVAL);
	assert_int_equal(bt_dht_load(e, (const uint8_t *)"le", 2, 0), -EINVAL);
	assert_memory_equal(bt_dht_id(e), cfg.id, 20);
	assert_int_equal(stats(e).nodes, 0);
	free(bad);

	assert_int_equal(bt_dht_load(e, b.data, b.len, 0), 0);
	assert_memory_equal(bt_dht_id(e), bt_dht_id(d), 20);
	assert_int_equal(stats(e).nodes, 1);
	/* it rejoins without routers: the bootstrap asks the loaded node */
	bt_dht_tick(e, 0);
	unsigned to;
	assert_true(next(e, &q, &to));
	assert_int_equal(to, 40);
	assert_int_equal(q.method, BT_KRPC_FIND_NODE);
	bt_buf_deinit(&b);
	bt_dht_free(e);
	bt_dht_free(d);
}

static void test_external_ip_needs_four_voters(void **state)
{
	(void)state;
	struct bt_dht *d = core(0);
	struct bt_peer_addr me = paddr(0x0101, 6881), out;
	for (unsigned i = 1; i <= 4; i++) {
		assert_false(bt_dht_external_ip(d, &out));
		struct sockaddr_in sa = addr(40 + i, PORT);
		bt_dht_add_node(d, NULL, (struct sockaddr *)&sa, sizeof sa, 1);
		uint8_t id[20];
		far_id(id, 40 + i);
		struct bt_krpc_reply r = {.requester_ip = &me};
		struct bt_krpc_msg q;
		answer(d, id, &r, 0, 1, &q);
		if (i == 1) /* the same voter twice counts once */
			assert_false(bt_dht_external_ip(d, &out));
	}
	assert_true(bt_dht_external_ip(d, &out));
	assert_true(bt_peer_addr_equal(&out, &me));
	bt_dht_free(d);
}

static void test_bep42_ids(void **state)
{
	(void)state;
	/* BEP 42's examples: IP, rand, and the first three bytes (only 21 bits fixed). */
	static const struct {
		const char *ip;
		uint8_t r;
		uint8_t prefix[3];
	} v[] = {
		{"124.31.75.21", 1, {0x5f, 0xbf, 0xbf}},  {"21.75.31.124", 86, {0x5a, 0x3c, 0xe9}},
		{"65.23.51.170", 22, {0xa5, 0xd4, 0x32}}, {"84.124.73.14", 65, {0x1b, 0x03, 0x21}},
		{"43.213.53.83", 90, {0xe5, 0x6f, 0x6c}},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		struct bt_peer_addr a = {.family = 4};
		assert_int_equal(inet_pton(AF_INET, v[i].ip, a.addr), 1);
		uint8_t rnd[20] = {0}, id[20];
		rnd[19] = v[i].r;
		bt_dht_bep42_id(&a, rnd, id);
		assert_int_equal(id[0], v[i].prefix[0]);
		assert_int_equal(id[1], v[i].prefix[1]);
		assert_int_equal(id[2] & 0xf8, v[i].prefix[2] & 0xf8);
		assert_int_equal(id[19], v[i].r);
	}
}

static void test_wrong_family_and_bad_config(void **state)
{
	(void)state;
	struct bt_dht_config cfg = {.family = AF_UNIX};
	assert_null(bt_dht_new(&cfg, 0));
	bt_dht_free(NULL);
	struct bt_dht *d = core(0);
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(PORT)};
	s6.sin6_addr.s6_addr[15] = 1;
	const char *ping = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
	bt_dht_input(d, (const uint8_t *)ping, strlen(ping), (struct sockaddr *)&s6, sizeof s6, 1);
	assert_int_equal(drain(d), 0); /* an IPv4 core ignores IPv6 senders */
	bt_dht_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ping_is_answered_and_adds_the_node),
		cmocka_unit_test(test_own_id_and_short_or_huge_input_are_ignored),
		cmocka_unit_test(test_malformed_and_unknown_queries_get_errors),
		cmocka_unit_test(test_find_node_returns_the_closest_eight),
		cmocka_unit_test(test_tokens_announce_and_get_peers),
		cmocka_unit_test(test_stored_peers_are_capped),
		cmocka_unit_test(test_queries_are_rate_limited_per_ip),
		cmocka_unit_test(test_replies_must_match_tid_and_address),
		cmocka_unit_test(test_full_bucket_pings_and_replaces_bad_nodes),
		cmocka_unit_test(test_our_bucket_splits),
		cmocka_unit_test(test_search_iterates_with_alpha_and_announces),
		cmocka_unit_test(test_search_times_out_and_limits),
		cmocka_unit_test(test_bootstrap_through_a_router_never_kept),
		cmocka_unit_test(test_bucket_refresh),
		cmocka_unit_test(test_save_and_load),
		cmocka_unit_test(test_external_ip_needs_four_voters),
		cmocka_unit_test(test_bep42_ids),
		cmocka_unit_test(test_wrong_family_and_bad_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
