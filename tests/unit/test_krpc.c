#include "bt/krpc.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The ids BEP 5's examples use. */
#define ID_A  "abcdefghij0123456789"
#define ID_M  "mnopqrstuvwxyz123456"
#define IDS_A "20:" ID_A
#define IDS_M "20:" ID_M

static const uint8_t *u8(const char *s)
{
	return (const uint8_t *)s;
}

static int parse(const char *s, struct bt_krpc_msg *m, struct bt_err *err)
{
	return bt_krpc_parse(m, u8(s), strlen(s), err);
}

static void parse_ok(const char *s, struct bt_krpc_msg *m)
{
	struct bt_err err = {{0}};
	int rc = parse(s, m, &err);
	if (rc != 0)
		fail_msg("%s: %s", s, err.msg);
}

/* The message must be refused with an error mentioning `want`. */
static void expect_bad(const char *s, const char *want)
{
	struct bt_krpc_msg m;
	struct bt_err err = {{0}};
	int rc = parse(s, &m, &err);
	if (rc != -EINVAL || !strstr(err.msg, want))
		fail_msg("%s: rc %d, err \"%s\", wanted \"%s\"", s, rc, err.msg, want);
	assert_int_equal(m.node_count + m.node6_count + m.value_count, 0);
}

static void expect_bytes(const struct bt_buf *b, const char *want)
{
	if (b->len != strlen(want) || memcmp(b->data, want, b->len) != 0)
		fail_msg("got  %.*s\nwant %s", (int)b->len, (const char *)b->data, want);
}

static struct bt_peer_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
	struct bt_peer_addr x = {.family = 4, .addr = {a, b, c, d}, .port = port};
	return x;
}

static struct bt_peer_addr v6(uint8_t last, uint16_t port)
{
	struct bt_peer_addr x = {.family = 6, .addr = {0x20, 0x01, 0x0d, 0xb8}, .port = port};
	x.addr[15] = last;
	return x;
}

/* BEP 5's example messages, parsed (they carry no `v`). */
static void test_bep5_examples_parse(void **state)
{
	(void)state;
	struct bt_krpc_msg m;

	parse_ok("d1:ad2:id" IDS_A "e1:q4:ping1:t2:aa1:y1:qe", &m);
	assert_int_equal(m.type, BT_KRPC_QUERY);
	assert_int_equal(m.method, BT_KRPC_PING);
	assert_int_equal(m.tid_len, 2);
	assert_memory_equal(m.tid, "aa", 2);
	assert_true(m.has_id);
	assert_memory_equal(m.id, ID_A, 20);

	parse_ok("d1:rd2:id" IDS_M "e1:t2:aa1:y1:re", &m);
	assert_int_equal(m.type, BT_KRPC_RESPONSE);
	assert_int_equal(m.method, BT_KRPC_OTHER);
	assert_memory_equal(m.id, ID_M, 20);
	assert_int_equal(m.node_count + m.value_count + m.token_len, 0);

	parse_ok("d1:ad2:id" IDS_A "6:target" IDS_M "e1:q9:find_node1:t2:aa1:y1:qe", &m);
	assert_int_equal(m.method, BT_KRPC_FIND_NODE);
	assert_true(m.has_target);
	assert_memory_equal(m.target, ID_M, 20);
	assert_false(m.want_n4 || m.want_n6);

	parse_ok("d1:ad2:id" IDS_A "9:info_hash" IDS_M "e1:q9:get_peers1:t2:aa1:y1:qe", &m);
	assert_int_equal(m.method, BT_KRPC_GET_PEERS);
	assert_true(m.has_info_hash);
	assert_memory_equal(m.info_hash, ID_M, 20);

	parse_ok("d1:rd2:id" IDS_A "5:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
		 &m);
	assert_int_equal(m.token_len, 8);
	assert_memory_equal(m.token, "aoeusnth", 8);
	assert_int_equal(m.value_count, 2);
	struct bt_peer_addr want = v4('a', 'x', 'j', 'e', ('.' << 8) | 'u');
	assert_true(bt_peer_addr_equal(&m.values[0], &want));
	want = v4('i', 'd', 'h', 't', ('n' << 8) | 'm');
	assert_true(bt_peer_addr_equal(&m.values[1], &want));

	parse_ok("d1:ad2:id" IDS_A "12:implied_porti1e9:info_hash" IDS_M
		 "4:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
		 &m);
	assert_int_equal(m.method, BT_KRPC_ANNOUNCE_PEER);
	assert_true(m.implied_port);
	assert_int_equal(m.port, 6881);
	assert_memory_equal(m.info_hash, ID_M, 20);
	assert_int_equal(m.token_len, 8);

	parse_ok("d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee", &m);
	assert_int_equal(m.type, BT_KRPC_ERROR);
	assert_int_equal(m.error_code, 201);
	assert_string_equal(m.error_msg, "A Generic Error Ocurred");
}

/*
 * Our encoders against BEP 5's examples byte for byte: the same bytes, plus the `v` key every
 * message of ours carries (between `t` and `y` in sorted order).
 */
#define V "1:v4:TC01"

static void test_bep5_examples_encode(void **state)
{
	(void)state;
	const uint8_t *aa = u8("aa");
	struct bt_buf b;
	bt_buf_init(&b);

	bt_krpc_put_ping(&b, aa, 2, u8(ID_A));
	expect_bytes(&b, "d1:ad2:id" IDS_A "e1:q4:ping1:t2:aa" V "1:y1:qe");

	b.len = 0;
	bt_krpc_put_reply(&b, aa, 2, u8(ID_M), NULL);
	expect_bytes(&b, "d1:rd2:id" IDS_M "e1:t2:aa" V "1:y1:re");

	b.len = 0;
	bt_krpc_put_find_node(&b, aa, 2, u8(ID_A), u8(ID_M), false, false);
	expect_bytes(&b, "d1:ad2:id" IDS_A "6:target" IDS_M "e1:q9:find_node1:t2:aa" V "1:y1:qe");

	b.len = 0;
	bt_krpc_put_get_peers(&b, aa, 2, u8(ID_A), u8(ID_M), false, false);
	expect_bytes(&b,
		     "d1:ad2:id" IDS_A "9:info_hash" IDS_M "e1:q9:get_peers1:t2:aa" V "1:y1:qe");

	b.len = 0;
	struct bt_peer_addr values[] = {v4('a', 'x', 'j', 'e', ('.' << 8) | 'u'),
					v4('i', 'd', 'h', 't', ('n' << 8) | 'm')};
	struct bt_krpc_reply r = {
		.values = values, .value_count = 2, .token = u8("aoeusnth"), .token_len = 8};
	bt_krpc_put_reply(&b, aa, 2, u8(ID_A), &r);
	expect_bytes(&b, "d1:rd2:id" IDS_A "5:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa" V
			 "1:y1:re");

	b.len = 0;
	bt_krpc_put_announce_peer(&b, aa, 2, u8(ID_A), u8(ID_M), 6881, true, u8("aoeusnth"), 8);
	expect_bytes(&b, "d1:ad2:id" IDS_A "12:implied_porti1e9:info_hash" IDS_M
			 "4:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa" V "1:y1:qe");

	b.len = 0;
	bt_krpc_put_error(&b, aa, 2, 201, "A Generic Error Ocurred");
	expect_bytes(&b, "d1:eli201e23:A Generic Error Ocurrede1:t2:aa" V "1:y1:ee");

	/* BEP 5's find_node reply, with one real compact node in place of "def456...". */
	b.len = 0;
	struct bt_krpc_node node = {.addr = v4(127, 0, 0, 1, 0x4142)};
	memcpy(node.id, ID_M, 20);
	r = (struct bt_krpc_reply){.nodes = &node, .node_count = 1};
	bt_krpc_put_reply(&b, aa, 2, u8("0123456789abcdefghij"), &r);
	const char want[] = "d1:rd2:id20:0123456789abcdefghij5:nodes26:" ID_M "\x7f\x00\x00\x01"
			    "AB"
			    "e1:t2:aa" V "1:y1:re";
	assert_int_equal(b.len, sizeof want - 1);
	assert_memory_equal(b.data, want, b.len);
	bt_buf_deinit(&b);
}

static void test_roundtrip_queries(void **state)
{
	(void)state;
	/* Transaction ids are binary: a NUL and a 0xff must survive. */
	const uint8_t tid[4] = {0, 0xff, 'x', 0};
	uint8_t id[20], target[20], token[BT_KRPC_MAX_TOKEN];
	for (int i = 0; i < 20; i++) {
		id[i] = (uint8_t)(i * 7);
		target[i] = (uint8_t)(255 - i);
	}
	for (int i = 0; i < BT_KRPC_MAX_TOKEN; i++)
		token[i] = (uint8_t)(i * 3);
	struct bt_buf b;
	struct bt_krpc_msg m;
	struct bt_err err = {{0}};
	bt_buf_init(&b);

	for (int want = 0; want < 4; want++) {
		b.len = 0;
		bt_krpc_put_find_node(&b, tid, 4, id, target, want & 1, want & 2);
		assert_int_equal(bt_krpc_parse(&m, b.data, b.len, &err), 0);
		assert_int_equal(m.method, BT_KRPC_FIND_NODE);
		assert_int_equal(m.tid_len, 4);
		assert_memory_equal(m.tid, tid, 4);
		assert_memory_equal(m.id, id, 20);
		assert_memory_equal(m.target, target, 20);
		assert_int_equal(m.want_n4, (want & 1) != 0);
		assert_int_equal(m.want_n6, (want & 2) != 0);

		b.len = 0;
		bt_krpc_put_get_peers(&b, tid, 1, id, target, want & 1, want & 2);
		assert_int_equal(bt_krpc_parse(&m, b.data, b.len, &err), 0);
		assert_int_equal(m.method, BT_KRPC_GET_PEERS);
		assert_int_equal(m.tid_len, 1);
		assert_false(m.has_target);
		assert_memory_equal(m.info_hash, target, 20);
		assert_int_equal(m.want_n4, (want & 1) != 0);
		assert_int_equal(m.want_n6, (want & 2) != 0);
	}

	b.len = 0;
	bt_krpc_put_ping(&b, tid, 4, id);
	assert_int_equal(bt_krpc_parse(&m, b.data, b.len, &err), 0);
	assert_int_equal(m.method, BT_KRPC_PING);
	assert_memory_equal(m.id, id, 20);

	for (int implied = 0; implied < 2; implied++) {
		b.len = 0;
		bt_krpc_put_announce_peer(&b, tid, 2, id, target, 51413, implied, token,
					  sizeof token);
		assert_int_equal(bt_krpc_parse(&m, b.data, b.len, &err), 0);
		assert_int_equal(m.method, BT_KRPC_ANNOUNCE_PEER);
		assert_int_equal(m.port, 51413);
		assert_int_equal(m.implied_port, implied);
		assert_memory_equal(m.info_hash, target, 20);
		assert_int_equal(m.token_len, sizeof token);
		assert_memory_equal(m.token, token, sizeof token);
	}

	b.len = 0;
	bt_krpc_put_error(&b, tid, 3, BT_KRPC_ERR_METHOD, "Method Unknown");
	assert_int_equal(bt_krpc_parse(&m, b.data, b.len, &err), 0);
	assert_int_equal(m.type, BT_KRPC_ERROR);
	assert_int_equal(m.error_code, 204);
	assert_string_equal(m.error_msg, "Method Unknown");
	assert_memory_equal(m.tid, tid, 3);
	bt_buf_deinit(&b);
}

static void fill_nodes(struct bt_krpc_node *n, size_t count, int family)
{
	for (size_t i = 0; i < count; i++) {
		memset(n[i].id, (int)(0x10 + i), 20);
		n[i].addr = family == 6 ? v6((uint8_t)i, (uint16_t)(7000 + i))
					: v4(10, 0, (uint8_t)(i >> 8), (uint8_t)i,
					     (uint16_t)(6000 + i));
	}
}

static void expect_nodes(const struct bt_krpc_node *got, const struct bt_krpc_node *want, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		assert_memory_equal(got[i].id, want[i].id, 20);
		assert_true(bt_peer_addr_equal(&got[i].addr, &want[i].addr));
	}
}

/* The largest reply the DHT core sends with nodes must fit a 1024-byte UDP payload. */
static void test_roundtrip_reply_within_1024(void **state)
{
	(void)state;
	struct bt_krpc_node nodes[8], nodes6[8];
	fill_nodes(nodes, 8, 4);
	fill_nodes(nodes6, 8, 6);
	uint8_t tid[BT_KRPC_MAX_TID], id[20], token[BT_KRPC_MAX_TOKEN];
	memset(tid, 't', sizeof tid);
	memset(id, 0xee, sizeof id);
	memset(token, 'k', sizeof token);
	struct bt_peer_addr ip = v6(0x99, 443);
	struct bt_krpc_reply r = {
		.nodes = nodes,
		.node_count = 8,
		.nodes6 = nodes6,
		.node6_count = 8,
		.token = token,
		.token_len = sizeof token,
		.requester_ip = &ip,
	};
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_reply(&b, tid, sizeof tid, id, &r);
	assert_true(b.len <= 1024);

	struct bt_krpc_msg m;
	struct bt_err err = {{0}};
	assert_int_equal(bt_krpc_parse(&m, b.data, b.len, &err), 0);
	assert_int_equal(m.type, BT_KRPC_RESPONSE);
	assert_int_equal(m.tid_len, sizeof tid);
	assert_memory_equal(m.id, id, 20);
	assert_int_equal(m.node_count, 8);
	assert_int_equal(m.node6_count, 8);
	expect_nodes(m.nodes, nodes, 8);
	expect_nodes(m.nodes6, nodes6, 8);
	assert_int_equal(m.token_len, sizeof token);
	assert_true(bt_peer_addr_equal(&m.ip, &ip));

	/* An IPv4 `ip`, and values of both families. */
	struct bt_peer_addr ip4 = v4(203, 0, 113, 7, 6881);
	struct bt_peer_addr values[3] = {v4(1, 2, 3, 4, 5), v6(1, 6), v4(9, 8, 7, 6, 65535)};
	r = (struct bt_krpc_reply){.values = values,
				   .value_count = 3,
				   .token = token,
				   .token_len = 4,
				   .requester_ip = &ip4};
	b.len = 0;
	bt_krpc_put_reply(&b, tid, 2, id, &r);
	assert_int_equal(bt_krpc_parse(&m, b.data, b.len, &err), 0);
	assert_int_equal(m.value_count, 3);
	for (int i = 0; i < 3; i++)
		assert_true(bt_peer_addr_equal(&m.values[i], &values[i]));
	assert_true(bt_peer_addr_equal(&m.ip, &ip4));
	assert_int_equal(m.node_count + m.node6_count, 0);
	bt_buf_deinit(&b);
}

/* Entries of the wrong family are left out by the encoder rather than written malformed. */
static void test_reply_wrong_family_left_out(void **state)
{
	(void)state;
	struct bt_krpc_node mixed[3];
	fill_nodes(mixed, 3, 4);
	mixed[1].addr = v6(1, 1);
	struct bt_peer_addr values[2] = {{.family = 0}, v4(1, 1, 1, 1, 1)};
	struct bt_krpc_reply r = {.nodes = mixed,
				  .node_count = 3,
				  .nodes6 = mixed,
				  .node6_count = 3,
				  .values = values,
				  .value_count = 2};
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_reply(&b, u8("a"), 1, mixed[0].id, &r);
	struct bt_krpc_msg m;
	struct bt_err err = {{0}};
	assert_int_equal(bt_krpc_parse(&m, b.data, b.len, &err), 0);
	assert_int_equal(m.node_count, 2);
	assert_true(bt_peer_addr_equal(&m.nodes[1].addr, &mixed[2].addr));
	assert_int_equal(m.node6_count, 1);
	assert_true(bt_peer_addr_equal(&m.nodes6[0].addr, &mixed[1].addr));
	assert_int_equal(m.value_count, 1);
	bt_buf_deinit(&b);
}

/* More nodes or values than we keep: the rest is dropped, not an error. */
static void test_reply_caps(void **state)
{
	(void)state;
	enum { N = BT_KRPC_MAX_NODES + 4, NV = BT_KRPC_MAX_VALUES + 20 };
	struct bt_krpc_node nodes[N];
	fill_nodes(nodes, N, 4);
	struct bt_peer_addr values[NV];
	for (int i = 0; i < NV; i++)
		values[i] = v4(10, 1, 0, (uint8_t)i, 1000);
	struct bt_krpc_reply r = {
		.nodes = nodes, .node_count = N, .values = values, .value_count = NV};
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_reply(&b, u8("xy"), 2, nodes[0].id, &r);
	struct bt_krpc_msg m;
	struct bt_err err = {{0}};
	assert_int_equal(bt_krpc_parse(&m, b.data, b.len, &err), 0);
	assert_int_equal(m.node_count, BT_KRPC_MAX_NODES);
	expect_nodes(m.nodes, nodes, BT_KRPC_MAX_NODES);
	assert_int_equal(m.value_count, BT_KRPC_MAX_VALUES);
	assert_true(bt_peer_addr_equal(&m.values[BT_KRPC_MAX_VALUES - 1],
				       &values[BT_KRPC_MAX_VALUES - 1]));
	bt_buf_deinit(&b);
}

/* Malformed entries inside a usable value are skipped; the rest of the message stands. */
static void test_reply_skips_bad_entries(void **state)
{
	(void)state;
	struct bt_krpc_msg m;
	/* values: 5 bytes, an int, a list, port 0, 7 bytes, then one good IPv4 and IPv6 peer. */
	const char msg[] = "d2:ip3:abc1:rd2:id" IDS_A "6:valuesl5:abcdei7el6:abcdefe"
			   "6:abcd\0\0"
			   "7:abcdefg6:abcdUV18:0123456789abcdefWXee1:t2:aa1:y1:re";
	struct bt_err err = {{0}};
	assert_int_equal(bt_krpc_parse(&m, u8(msg), sizeof msg - 1, &err), 0);
	assert_int_equal(m.value_count, 2);
	struct bt_peer_addr want = v4('a', 'b', 'c', 'd', ('U' << 8) | 'V');
	assert_true(bt_peer_addr_equal(&m.values[0], &want));
	assert_int_equal(m.values[1].family, 6);
	assert_int_equal(m.values[1].port, ('W' << 8) | 'X');
	assert_int_equal(m.ip.family, 0); /* 3 bytes: neither IPv4 nor IPv6 */

	/* A node at port 0 cannot be contacted: skipped. */
	const char nodes[] = "d1:rd2:id" IDS_A "5:nodes52:" ID_M "abcd\0\0" ID_A "abcdQR"
			     "e1:t2:aa1:y1:re";
	assert_int_equal(bt_krpc_parse(&m, u8(nodes), sizeof nodes - 1, &err), 0);
	assert_int_equal(m.node_count, 1);
	assert_memory_equal(m.nodes[0].id, ID_A, 20);
	assert_int_equal(m.nodes[0].addr.port, ('Q' << 8) | 'R');
}

static void test_unknown_method_and_keys(void **state)
{
	(void)state;
	struct bt_krpc_msg m;
	/* BEP 44's get carries a target: answered like find_node by the core. */
	parse_ok("d1:ad2:id" IDS_A "3:seqi4e6:target" IDS_M "e1:q3:get1:t2:aa1:y1:qe", &m);
	assert_int_equal(m.type, BT_KRPC_QUERY);
	assert_int_equal(m.method, BT_KRPC_OTHER);
	assert_true(m.has_target);
	assert_memory_equal(m.target, ID_M, 20);
	assert_false(m.has_info_hash);

	parse_ok("d1:ad2:id" IDS_A "9:info_hash" IDS_M "e1:q7:scrape!1:t2:aa1:y1:qe", &m);
	assert_int_equal(m.method, BT_KRPC_OTHER);
	assert_true(m.has_info_hash);
	assert_false(m.has_target);

	/* An unknown method's malformed target is not ours to judge: not taken, no error. */
	parse_ok("d1:ad2:id" IDS_A "6:target3:abce1:q3:foo1:t2:aa1:y1:qe", &m);
	assert_int_equal(m.method, BT_KRPC_OTHER);
	assert_false(m.has_target);

	/* Unknown keys anywhere, of any type, are ignored. */
	parse_ok("d1:ad2:id" IDS_A "5:extrald1:xi1eee6:target" IDS_M
		 "e1:q9:find_node1:t2:aa1:v4:UT011:y1:q3:zzzi-5ee",
		 &m);
	assert_int_equal(m.method, BT_KRPC_FIND_NODE);
	assert_memory_equal(m.target, ID_M, 20);
}

static void test_bep32_42_43_keys(void **state)
{
	(void)state;
	struct bt_krpc_msg m;
	/* want: "n4", "n6"; anything else in the list ignored. */
	parse_ok("d1:ad2:id" IDS_A "6:target" IDS_M
		 "4:wantl2:n62:n7i4eee1:q9:find_node1:t2:aa1:y1:qe",
		 &m);
	assert_false(m.want_n4);
	assert_true(m.want_n6);

	parse_ok("d1:ad2:id" IDS_A "e1:q4:ping2:roi1e1:t2:aa1:y1:qe", &m);
	assert_true(m.read_only);
	parse_ok("d1:ad2:id" IDS_A "e1:q4:ping2:roi0e1:t2:aa1:y1:qe", &m);
	assert_false(m.read_only);

	const char ip6[] = "d2:ip18:\x20\x01\x0d\xb8"
			   "\0\0\0\0\0\0\0\0\0\0\0\x05\x1a\xe1"
			   "1:rd2:id" IDS_A "e1:t2:aa1:y1:re";
	struct bt_err err = {{0}};
	assert_int_equal(bt_krpc_parse(&m, u8(ip6), sizeof ip6 - 1, &err), 0);
	struct bt_peer_addr want = v6(5, 6881);
	assert_true(bt_peer_addr_equal(&m.ip, &want));
}

static void test_announce_ports(void **state)
{
	(void)state;
	struct bt_krpc_msg m;
#define ANN(args) "d1:ad2:id" IDS_A "9:info_hash" IDS_M args "e1:q13:announce_peer1:t2:aa1:y1:qe"
	/* With implied_port the source port counts: `port` may be absent or 0. */
	parse_ok(ANN("12:implied_porti1e5:token1:x"), &m);
	assert_true(m.implied_port);
	assert_int_equal(m.port, 0);
	parse_ok(ANN("12:implied_porti1e4:porti0e5:token1:x"), &m);
	assert_true(m.implied_port);
	parse_ok(ANN("12:implied_porti0e4:porti65535e5:token0:"), &m);
	assert_false(m.implied_port);
	assert_int_equal(m.port, 65535);
	assert_int_equal(m.token_len, 0);

	expect_bad(ANN("4:porti0e5:token1:x"), "a.port is 0");
	expect_bad(ANN("12:implied_porti0e4:porti0e5:token1:x"), "a.port is 0");
	expect_bad(ANN("5:token1:x"), "missing a.port");
	expect_bad(ANN("4:porti65536e5:token1:x"), "a.port 65536 is out of range");
	expect_bad(ANN("4:porti-1e5:token1:x"), "a.port -1 is out of range");
	expect_bad(ANN("4:porti99999999999999999999e5:token1:x"), "out of range");
	expect_bad(ANN("4:port4:68815:token1:x"), "a.port is not an integer");
	expect_bad(ANN("12:implied_port1:14:porti1e5:token1:x"),
		   "a.implied_port is not an integer");
	expect_bad(ANN("4:porti1e"), "missing a.token");
	expect_bad(ANN("4:porti1e5:tokeni1e"), "a.token is not a string");
	expect_bad(ANN("4:porti1e5:token65:"
		       "0123456789012345678901234567890123456789012345678901234567890123"
		       "4"),
		   "a.token is 65 bytes (limit 64)");
#undef ANN
	expect_bad("d1:ad2:id" IDS_A "4:porti1e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
		   "missing a.info_hash");
}

/* Every field of the wrong type, the wrong length, or missing. */
static void test_hostile_fields(void **state)
{
	(void)state;
	expect_bad("", "not a bencoded dictionary");
	expect_bad("i1e", "not a bencoded dictionary");
	expect_bad("l1:ye", "not a bencoded dictionary");
	expect_bad("de", "missing y");
	expect_bad("d1:t2:aa1:yi1ee", "y is not a string");
	expect_bad("d1:t2:aa1:y1:xe", "y is not q, r or e");
	expect_bad("d1:t2:aa1:y2:qqe", "y is not q, r or e");
	expect_bad("d1:y1:qe", "missing t");
	expect_bad("d1:tli1ee1:y1:qe", "t is not a string");
	expect_bad("d1:t17:0123456789abcdefg1:y1:qe", "t is 17 bytes (limit 16)");

	/* queries */
	expect_bad("d1:ad2:id" IDS_A "e1:t2:aa1:y1:qe", "missing q");
	expect_bad("d1:ad2:id" IDS_A "e1:qi1e1:t2:aa1:y1:qe", "q is not a string");
	expect_bad("d1:q4:ping1:t2:aa1:y1:qe", "missing a");
	expect_bad("d1:al2:ide1:q4:ping1:t2:aa1:y1:qe", "a is not a dictionary");
	expect_bad("d1:ade1:q4:ping1:t2:aa1:y1:qe", "missing a.id");
	expect_bad("d1:ad2:idi5ee1:q4:ping1:t2:aa1:y1:qe", "a.id is not a string");
	expect_bad("d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe", "a.id is 19 bytes");
	expect_bad("d1:ad2:id21:abcdefghij0123456789Xe1:q4:ping1:t2:aa1:y1:qe", "a.id is 21 bytes");
	expect_bad("d1:ad2:id" IDS_A "e1:q9:find_node1:t2:aa1:y1:qe", "missing a.target");
	expect_bad("d1:ad2:id" IDS_A "6:targetd" IDS_A IDS_A "ee1:q9:find_node1:t2:aa1:y1:qe",
		   "a.target is not a string");
	expect_bad("d1:ad2:id" IDS_A "6:target0:e1:q9:find_node1:t2:aa1:y1:qe",
		   "a.target is 0 bytes");
	expect_bad("d1:ad2:id" IDS_A "e1:q9:get_peers1:t2:aa1:y1:qe", "missing a.info_hash");
	expect_bad("d1:ad2:id" IDS_A "9:info_hashi0ee1:q9:get_peers1:t2:aa1:y1:qe",
		   "a.info_hash is not a string");
	expect_bad("d1:ad2:id" IDS_A "4:want2:n4e1:q4:ping1:t2:aa1:y1:qe", "a.want is not a list");

	/* responses */
	expect_bad("d1:t2:aa1:y1:re", "missing r");
	expect_bad("d1:r2:id1:t2:aa1:y1:re", "r is not a dictionary");
	expect_bad("d1:rde1:t2:aa1:y1:re", "missing r.id");
	expect_bad("d1:rd2:id3:abce1:t2:aa1:y1:re", "r.id is 3 bytes");
	expect_bad("d1:rd2:id" IDS_A "5:nodes27:" ID_A "0123456e1:t2:aa1:y1:re",
		   "r.nodes is 27 bytes, not a multiple of 26");
	expect_bad("d1:rd2:id" IDS_A "5:nodes25:" ID_A "01234e1:t2:aa1:y1:re",
		   "r.nodes is 25 bytes, not a multiple of 26");
	expect_bad("d1:rd2:id" IDS_A "5:nodesl26:" ID_A "012345ee1:t2:aa1:y1:re",
		   "r.nodes is not a string");
	expect_bad("d1:rd2:id" IDS_A "6:nodes626:" ID_A "012345e1:t2:aa1:y1:re",
		   "r.nodes6 is 26 bytes, not a multiple of 38");
	expect_bad("d1:rd2:id" IDS_A "6:valuesd1:x6:abcdefee1:t2:aa1:y1:re",
		   "r.values is not a list");
	expect_bad("d1:rd2:id" IDS_A "5:tokenlee1:t2:aa1:y1:re", "r.token is not a string");
	expect_bad("d1:rd2:id" IDS_A "5:token65:"
		   "0123456789012345678901234567890123456789012345678901234567890123"
		   "4e1:t2:aa1:y1:re",
		   "r.token is 65 bytes (limit 64)");

	/* errors */
	expect_bad("d1:t2:aa1:y1:ee", "missing e");
	expect_bad("d1:e5:oops!1:t2:aa1:y1:ee", "e is not a list");
	expect_bad("d1:ele1:t2:aa1:y1:ee", "e is not [code, message]");
	expect_bad("d1:eli201ee1:t2:aa1:y1:ee", "e is not [code, message]");
	expect_bad("d1:el4:oopsi201ee1:t2:aa1:y1:ee", "e is not [code, message]");
	expect_bad("d1:eli9999999999e4:oopse1:t2:aa1:y1:ee", "e code 9999999999 is out of range");

	/* keys any message may carry */
	expect_bad("d2:ipi1e1:rd2:id" IDS_A "e1:t2:aa1:y1:re", "ip is not a string");
	expect_bad("d1:rd2:id" IDS_A "e2:ro1:11:t2:aa1:y1:re", "ro is not an integer");

	/* not bencode, or not only bencode */
	expect_bad("d1:rd2:id" IDS_A "e1:t2:aa1:y1:rexx", "bad bencode");
	expect_bad("d1:t2:aa1:t2:bb1:y1:re", "bad bencode");
	expect_bad("d1:t02:aa1:y1:re", "bad bencode");
}

/* Every proper prefix of a valid message is refused cleanly. */
static void test_truncated(void **state)
{
	(void)state;
	struct bt_buf b;
	bt_buf_init(&b);
	uint8_t id[20] = {1}, token[8] = {2};
	bt_krpc_put_announce_peer(&b, u8("ab"), 2, id, id, 6881, false, token, sizeof token);
	struct bt_krpc_msg m;
	for (size_t n = 0; n < b.len; n++) {
		struct bt_err err = {{0}};
		assert_int_equal(bt_krpc_parse(&m, b.data, n, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "krpc: "));
		assert_int_equal(m.tid_len, 0);
	}
	struct bt_err err = {{0}};
	assert_int_equal(bt_krpc_parse(&m, b.data, b.len, &err), 0);
	bt_buf_deinit(&b);
}

/* Huge and deeply nested datagrams are refused by size or by the parser's limits. */
static void test_huge_and_deep(void **state)
{
	(void)state;
	struct bt_krpc_msg m;
	struct bt_err err = {{0}};
	static uint8_t p[65536];
	size_t big = sizeof p;
	/* A valid-looking start; the size alone refuses it. */
	memset(p, 'e', big);
	memcpy(p, "d1:y1:q", 7);
	assert_int_equal(bt_krpc_parse(&m, p, big, &err), -EINVAL);
	assert_string_equal(err.msg, "krpc: datagram of 65536 bytes (limit 8192)");
	assert_int_equal(bt_krpc_parse(&m, p, BT_KRPC_MAX_DATAGRAM + 1, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "datagram of 8193 bytes"));

	/* 4,000 nested lists inside an unknown key: refused by the depth limit. */
	size_t depth = 4000, n = 0;
	n += (size_t)sprintf((char *)p, "d1:t2:aa1:y1:q1:z");
	memset(p + n, 'l', depth);
	n += depth;
	memset(p + n, 'e', depth);
	n += depth;
	p[n++] = 'e';
	assert_int_equal(bt_krpc_parse(&m, p, n, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "bad bencode"));

	/* 4,000 empty strings in an unknown list: refused by the node budget. */
	n = (size_t)sprintf((char *)p, "d1:t2:aa1:y1:q1:zl");
	for (int i = 0; i < 4000; i++) {
		p[n++] = '0';
		p[n++] = ':';
	}
	p[n++] = 'e';
	p[n++] = 'e';
	assert_int_equal(bt_krpc_parse(&m, p, n, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "bad bencode"));
}

/* A malformed query keeps its transaction id, so the core can answer it with error 203. */
static void test_tid_kept_on_error(void **state)
{
	(void)state;
	struct bt_krpc_msg m;
	struct bt_err err = {{0}};
	assert_int_equal(parse("d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe", &m, &err), -EINVAL);
	assert_int_equal(m.type, BT_KRPC_QUERY);
	assert_int_equal(m.tid_len, 2);
	assert_memory_equal(m.tid, "xy", 2);
	assert_false(m.has_id);

	/* Without a readable `y` the message is nothing to answer: no tid. */
	assert_int_equal(parse("d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:Qe", &m, &err), -EINVAL);
	assert_int_equal(m.tid_len, 0);
}

static void test_error_message_sanitized(void **state)
{
	(void)state;
	struct bt_krpc_msg m;
	const char ctl[] = "d1:eli202e6:a\nb\0c\x7f"
			   "e1:t2:aa1:y1:ee";
	struct bt_err err = {{0}};
	assert_int_equal(bt_krpc_parse(&m, u8(ctl), sizeof ctl - 1, &err), 0);
	assert_int_equal(m.error_code, 202);
	assert_string_equal(m.error_msg, "a?b?c?");

	char big[400];
	int n = snprintf(big, sizeof big, "d1:eli203e200:");
	memset(big + n, 'x', 200);
	strcpy(big + n + 200, "e1:t2:aa1:y1:ee");
	parse_ok(big, &m);
	assert_int_equal(strlen(m.error_msg), sizeof m.error_msg - 1);
}

static void test_is(void **state)
{
	(void)state;
	assert_true(bt_krpc_is(u8("d1:y1:qe"), 8));
	assert_false(bt_krpc_is(u8(""), 0));
	/* A BEP 15 reply starts with a 32-bit action (0..3); uTP with 0x01 | type << 4. */
	const uint8_t udp_tracker[] = {0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef};
	assert_false(bt_krpc_is(udp_tracker, sizeof udp_tracker));
	for (int type = 0; type < 5; type++) {
		uint8_t utp = (uint8_t)(0x01 | type << 4);
		assert_false(bt_krpc_is(&utp, 1));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bep5_examples_parse),
		cmocka_unit_test(test_bep5_examples_encode),
		cmocka_unit_test(test_roundtrip_queries),
		cmocka_unit_test(test_roundtrip_reply_within_1024),
		cmocka_unit_test(test_reply_wrong_family_left_out),
		cmocka_unit_test(test_reply_caps),
		cmocka_unit_test(test_reply_skips_bad_entries),
		cmocka_unit_test(test_unknown_method_and_keys),
		cmocka_unit_test(test_bep32_42_43_keys),
		cmocka_unit_test(test_announce_ports),
		cmocka_unit_test(test_hostile_fields),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_huge_and_deep),
		cmocka_unit_test(test_tid_kept_on_error),
		cmocka_unit_test(test_error_message_sanitized),
		cmocka_unit_test(test_is),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
