#include "bt/ext.h"
#include "bt/pex.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int parse(struct bt_pex_msg *m, const char *s, size_t n, struct bt_err *err)
{
	return bt_pex_parse(m, (const uint8_t *)s, n, err);
}

#define PARSE(m, lit, err) parse(m, lit, sizeof lit - 1, err)

static struct bt_peer_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
	struct bt_peer_addr x;
	memset(&x, 0, sizeof x);
	x.family = 4;
	x.addr[0] = a;
	x.addr[1] = b;
	x.addr[2] = c;
	x.addr[3] = d;
	x.port = port;
	return x;
}

static struct bt_pex_peer pv4(uint8_t d, uint16_t port, uint8_t flags)
{
	return (struct bt_pex_peer){v4(127, 0, 0, d, port), flags};
}

static void test_parse_all_fields(void **state)
{
	(void)state;
	struct bt_pex_msg m;
	struct bt_err err = {""};
	assert_int_equal(PARSE(&m,
			       "d5:added12:\x7f\0\0\x01\x1a\xe1\x0a\0\0\x02\0\x50"
			       "7:added.f2:\x12\x02"
			       "6:added618:\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x1a\xe2"
			       "7:dropped6:\x0b\0\0\x03\0\x51"
			       "8:dropped618:\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\0\x01"
			       "1:xi5ee",
			       &err),
			 0);
	assert_int_equal(bt_pex_added_count(&m), 3);
	struct bt_pex_peer p;
	bt_pex_added(&m, 0, &p);
	struct bt_peer_addr want = v4(127, 0, 0, 1, 6881);
	assert_true(bt_peer_addr_equal(&p.addr, &want));
	assert_int_equal(p.flags, 0x12);
	bt_pex_added(&m, 1, &p);
	want = v4(10, 0, 0, 2, 80);
	assert_true(bt_peer_addr_equal(&p.addr, &want));
	assert_int_equal(p.flags, BT_PEX_F_SEED);
	/* added6 came without added6.f: flags 0. */
	bt_pex_added(&m, 2, &p);
	assert_int_equal(p.addr.family, 6);
	assert_int_equal(p.addr.addr[0], 0x20);
	assert_int_equal(p.addr.port, 6882);
	assert_int_equal(p.flags, 0);
	assert_int_equal(bt_pex_dropped_count(&m), 2);
	struct bt_peer_addr d;
	bt_pex_dropped(&m, 0, &d);
	want = v4(11, 0, 0, 3, 81);
	assert_true(bt_peer_addr_equal(&d, &want));
	bt_pex_dropped(&m, 1, &d);
	assert_int_equal(d.family, 6);
	assert_int_equal(d.addr[15], 1);
	assert_int_equal(d.port, 1);
}

static void test_parse_bad(void **state)
{
	(void)state;
	struct bt_pex_msg m;
	struct bt_err err = {""};
	assert_int_equal(PARSE(&m, "d5:added5:abcdee", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "`added`"));
	assert_int_equal(PARSE(&m, "d8:dropped67:abcdefge", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "`dropped6`"));
	assert_int_equal(PARSE(&m, "li1ee", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a dictionary"));
	assert_int_equal(PARSE(&m, "d5:added6:abc", &err), -EINVAL);
	assert_int_equal(bt_pex_added_count(&m), 0);
	/* A wrong type reads as absent. */
	assert_int_equal(PARSE(&m, "d5:addedi5ee", &err), 0);
	assert_int_equal(bt_pex_added_count(&m), 0);
}

static void test_parse_size_cap(void **state)
{
	(void)state;
	size_t n = BT_PEX_MAX_MESSAGE + 1;
	uint8_t *big = calloc(1, n);
	struct bt_pex_msg m;
	struct bt_err err = {""};
	assert_int_equal(bt_pex_parse(&m, big, n, &err), -EMSGSIZE);
	assert_non_null(strstr(err.msg, "limit"));
	free(big);
}

static void test_encode_round_trip(void **state)
{
	(void)state;
	struct bt_pex_peer added[3] = {pv4(1, 1000, BT_PEX_F_REACHABLE), pv4(2, 2000, 0)};
	added[2].addr.family = 6;
	added[2].addr.addr[15] = 1;
	added[2].addr.port = 3000;
	added[2].flags = BT_PEX_F_SEED;
	struct bt_peer_addr dropped[1] = {v4(127, 0, 0, 9, 9000)};
	struct bt_buf b;
	bt_buf_init(&b);
	bt_pex_encode(&b, added, 3, dropped, 1);
	/* Canonical: keys sorted, all six present. */
	assert_memory_equal(b.data, "d5:added12:", 11);
	struct bt_pex_msg m;
	assert_int_equal(bt_pex_parse(&m, b.data, b.len, NULL), 0);
	assert_int_equal(bt_pex_added_count(&m), 3);
	for (size_t i = 0; i < 3; i++) {
		struct bt_pex_peer p;
		bt_pex_added(&m, i, &p);
		assert_true(bt_peer_addr_equal(&p.addr, &added[i].addr));
		assert_int_equal(p.flags, added[i].flags);
	}
	assert_int_equal(bt_pex_dropped_count(&m), 1);
	struct bt_peer_addr d;
	bt_pex_dropped(&m, 0, &d);
	assert_true(bt_peer_addr_equal(&d, &dropped[0]));
	bt_buf_deinit(&b);
}

/* Parses what a poll produced. */
static void decode(const struct bt_buf *b, struct bt_pex_msg *m)
{
	assert_int_equal(bt_pex_parse(m, b->data, b->len, NULL), 0);
}

static bool has_added(const struct bt_pex_msg *m, const struct bt_peer_addr *a)
{
	for (size_t i = 0; i < bt_pex_added_count(m); i++) {
		struct bt_pex_peer p;
		bt_pex_added(m, i, &p);
		if (bt_peer_addr_equal(&p.addr, a))
			return true;
	}
	return false;
}

static bool has_dropped(const struct bt_pex_msg *m, const struct bt_peer_addr *a)
{
	for (size_t i = 0; i < bt_pex_dropped_count(m); i++) {
		struct bt_peer_addr d;
		bt_pex_dropped(m, i, &d);
		if (bt_peer_addr_equal(&d, a))
			return true;
	}
	return false;
}

static void test_sender_first_then_diffs(void **state)
{
	(void)state;
	struct bt_pex_sender s;
	bt_pex_sender_init(&s);
	struct bt_buf b;
	bt_buf_init(&b);
	struct bt_pex_msg m;
	struct bt_pex_peer cur[3] = {pv4(1, 1001, 0), pv4(2, 1002, BT_PEX_F_SEED), pv4(3, 1003, 0)};
	struct bt_peer_addr me = cur[0].addr;
	/* Only the recipient itself: nobody to tell about, nothing sent. */
	assert_false(bt_pex_sender_poll(&s, cur, 1, &me, 100.0, &b));
	assert_int_equal(b.len, 0);
	/* A second peer: the first message goes at once, without the recipient. */
	assert_true(bt_pex_sender_poll(&s, cur, 2, &me, 101.0, &b));
	decode(&b, &m);
	assert_int_equal(bt_pex_added_count(&m), 1);
	assert_true(has_added(&m, &cur[1].addr));
	struct bt_pex_peer p;
	bt_pex_added(&m, 0, &p);
	assert_int_equal(p.flags, BT_PEX_F_SEED);
	/* A third peer arrives and the second leaves: nothing before a minute has passed. */
	struct bt_pex_peer later[2] = {cur[0], cur[2]};
	b.len = 0;
	assert_false(bt_pex_sender_poll(&s, later, 2, &me, 101.0 + BT_PEX_INTERVAL_S - 1, &b));
	assert_int_equal(b.len, 0);
	assert_true(bt_pex_sender_poll(&s, later, 2, &me, 101.0 + BT_PEX_INTERVAL_S, &b));
	decode(&b, &m);
	assert_int_equal(bt_pex_added_count(&m), 1);
	assert_true(has_added(&m, &cur[2].addr));
	assert_int_equal(bt_pex_dropped_count(&m), 1);
	assert_true(has_dropped(&m, &cur[1].addr));
	/* Nothing changed: nothing sent, however long we wait. */
	b.len = 0;
	assert_false(bt_pex_sender_poll(&s, later, 2, &me, 1000.0, &b));
	/* Every peer we added is dropped when it goes, and a dropped one is not dropped twice. */
	assert_true(bt_pex_sender_poll(&s, later, 1, &me, 1000.0, &b));
	decode(&b, &m);
	assert_int_equal(bt_pex_added_count(&m), 0);
	assert_int_equal(bt_pex_dropped_count(&m), 1);
	assert_true(has_dropped(&m, &cur[2].addr));
	b.len = 0;
	assert_false(bt_pex_sender_poll(&s, later, 1, &me, 2000.0, &b));
	bt_buf_deinit(&b);
	bt_pex_sender_deinit(&s);
}

static void test_sender_caps(void **state)
{
	(void)state;
	enum { N = 120 };
	struct bt_pex_peer cur[N];
	for (int i = 0; i < N; i++)
		cur[i] = (struct bt_pex_peer){v4(10, 0, (uint8_t)(i / 200), (uint8_t)i, 2000), 0};
	/* Duplicates and port 0 are never told. */
	cur[5] = cur[4];
	cur[6].addr.port = 0;
	struct bt_pex_sender s;
	bt_pex_sender_init(&s);
	struct bt_buf b;
	bt_buf_init(&b);
	struct bt_pex_msg m;
	double now = 10.0;
	size_t told = 0;
	/* 118 distinct, dialable peers: 50, 50, then 18, a minute apart. */
	size_t want[] = {50, 50, 18};
	for (size_t k = 0; k < 3; k++) {
		b.len = 0;
		assert_true(bt_pex_sender_poll(&s, cur, N, NULL, now, &b));
		decode(&b, &m);
		assert_int_equal(bt_pex_added_count(&m), want[k]);
		assert_int_equal(bt_pex_dropped_count(&m), 0);
		told += bt_pex_added_count(&m);
		now += BT_PEX_INTERVAL_S;
	}
	assert_int_equal(told, N - 2);
	b.len = 0;
	assert_false(bt_pex_sender_poll(&s, cur, N, NULL, now, &b));
	/* All of them go: 50 dropped per message until none is left. */
	size_t dropped = 0;
	for (size_t k = 0; k < 3; k++) {
		b.len = 0;
		assert_true(bt_pex_sender_poll(&s, NULL, 0, NULL, now, &b));
		decode(&b, &m);
		assert_true(bt_pex_dropped_count(&m) <= BT_PEX_MAX_DROPPED);
		dropped += bt_pex_dropped_count(&m);
		now += BT_PEX_INTERVAL_S;
	}
	assert_int_equal(dropped, N - 2);
	assert_false(bt_pex_sender_poll(&s, NULL, 0, NULL, now, &b));
	bt_buf_deinit(&b);
	bt_pex_sender_deinit(&s);
}

static void test_receiver_rate(void **state)
{
	(void)state;
	struct bt_pex_receiver r = {0};
	assert_int_equal(bt_pex_receiver_on_message(&r, 5.0), 0);
	assert_int_equal(bt_pex_receiver_on_message(&r, 5.0 + BT_PEX_MIN_GAP_S), 0);
	assert_int_equal(bt_pex_receiver_on_message(&r, 5.0 + BT_PEX_MIN_GAP_S + 10), -EBUSY);
	/* The gap counts from the latest message, the offending one included. */
	assert_int_equal(bt_pex_receiver_on_message(&r, 5.0 + 2 * BT_PEX_MIN_GAP_S + 10), 0);
}

/* Our extended handshake offers ut_pex under its id, and upload_only, only when asked to. */
static void test_ext_handshake_offers_pex(void **state)
{
	(void)state;
	struct bt_buf b;
	bt_buf_init(&b);
	bt_ext_handshake_encode(&b, &(struct bt_ext_handshake_out){.ut_metadata = true,
								   .ut_pex = true,
								   .upload_only = true});
	struct bt_ext_handshake h;
	assert_int_equal(bt_ext_handshake_parse(&h, b.data, b.len, NULL), 0);
	assert_int_equal(h.ut_pex, BT_EXT_ID_UT_PEX);
	assert_int_equal(h.ut_metadata, BT_EXT_ID_UT_METADATA);
	assert_true(h.upload_only);
	b.len = 0;
	bt_ext_handshake_encode(&b, &(struct bt_ext_handshake_out){.ut_metadata = true});
	assert_int_equal(bt_ext_handshake_parse(&h, b.data, b.len, NULL), 0);
	assert_int_equal(h.ut_pex, 0);
	assert_false(h.upload_only);
	bt_buf_deinit(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_all_fields),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_size_cap),
		cmocka_unit_test(test_encode_round_trip),
		cmocka_unit_test(test_sender_first_then_diffs),
		cmocka_unit_test(test_sender_caps),
		cmocka_unit_test(test_receiver_rate),
		cmocka_unit_test(test_ext_handshake_offers_pex),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
