#include "bt/addrbook.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static struct sockaddr_in v4(uint32_t ip, uint16_t port)
{
	struct sockaddr_in s;
	memset(&s, 0, sizeof s);
	s.sin_family = AF_INET;
	s.sin_addr.s_addr = htonl(ip);
	s.sin_port = htons(port);
	return s;
}

static int add4(struct bt_addrbook *ab, uint32_t ip, uint16_t port, unsigned src, double now)
{
	struct sockaddr_in s = v4(ip, port);
	return bt_addrbook_add(ab, (struct sockaddr *)&s, sizeof s, src, now);
}

static int find4(struct bt_addrbook *ab, uint32_t ip, uint16_t port)
{
	struct sockaddr_in s = v4(ip, port);
	return bt_addrbook_find(ab, (struct sockaddr *)&s, sizeof s);
}

static struct bt_addrbook_counts counts(const struct bt_addrbook *ab)
{
	struct bt_addrbook_counts c;
	bt_addrbook_counts(ab, &c);
	return c;
}

static void test_dedupe_and_sources(void **state)
{
	(void)state;
	struct bt_addrbook *ab = bt_addrbook_new(0, 1);
	int a = add4(ab, 0x7f000001, 6881, BT_ADDRBOOK_TRACKER, 0);
	int b = add4(ab, 0x7f000001, 6882, BT_ADDRBOOK_TRACKER, 0);
	assert_true(a >= 0 && b >= 0 && a != b);
	assert_int_equal(add4(ab, 0x7f000001, 6881, BT_ADDRBOOK_MANUAL, 0), a);
	assert_int_equal(add4(ab, 0x7f000001, 6881, BT_ADDRBOOK_PEX, 0), a);
	const struct bt_addrbook_entry *e = bt_addrbook_get(ab, a);
	assert_int_equal(e->sources, BT_ADDRBOOK_TRACKER | BT_ADDRBOOK_MANUAL | BT_ADDRBOOK_PEX);
	assert_string_equal(e->name, "127.0.0.1:6881");
	assert_int_equal(counts(ab).known, 2);
	assert_int_equal(find4(ab, 0x7f000001, 6882), b);
	assert_int_equal(find4(ab, 0x7f000001, 6883), -ENOENT);
	assert_null(bt_addrbook_get(ab, 99));
	assert_null(bt_addrbook_get(ab, -1));

	/* Bytes that are not an address are refused; a sockaddr's padding does not matter. */
	struct sockaddr_in s = v4(0x7f000001, 6881);
	assert_int_equal(bt_addrbook_add(ab, (struct sockaddr *)&s, 8, BT_ADDRBOOK_TRACKER, 0),
			 -EAFNOSUPPORT);
	memset(s.sin_zero, 0xff, sizeof s.sin_zero);
	assert_int_equal(bt_addrbook_find(ab, (struct sockaddr *)&s, sizeof s), a);
	struct sockaddr un = {.sa_family = AF_UNIX};
	assert_int_equal(bt_addrbook_add(ab, &un, sizeof un, BT_ADDRBOOK_TRACKER, 0),
			 -EAFNOSUPPORT);
	bt_addrbook_free(ab);
	bt_addrbook_free(NULL);
}

static void test_ipv6(void **state)
{
	(void)state;
	struct bt_addrbook *ab = bt_addrbook_new(0, 2);
	struct sockaddr_in6 s;
	memset(&s, 0, sizeof s);
	s.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::1", &s.sin6_addr);
	s.sin6_port = htons(51413);
	int a = bt_addrbook_add(ab, (struct sockaddr *)&s, sizeof s, BT_ADDRBOOK_TRACKER, 0);
	assert_true(a >= 0);
	/* The IPv4 address with the same first bytes is another entry. */
	int b = add4(ab, 0, 51413, BT_ADDRBOOK_TRACKER, 0);
	assert_true(b >= 0 && b != a);
	s.sin6_flowinfo = 7;
	assert_int_equal(bt_addrbook_find(ab, (struct sockaddr *)&s, sizeof s), a);
	const struct bt_addrbook_entry *e = bt_addrbook_get(ab, a);
	assert_string_equal(e->name, "[::1]:51413");
	assert_int_equal(e->len, sizeof s);
	assert_int_equal(((struct sockaddr *)&e->addr)->sa_family, AF_INET6);
	assert_int_equal(bt_addrbook_next_to_dial(ab, 0), a);
	bt_addrbook_free(ab);
}

static void test_dial_order_and_backoff(void **state)
{
	(void)state;
	struct bt_addrbook *ab = bt_addrbook_new(0, 3);
	int a = add4(ab, 0x0a000001, 1, BT_ADDRBOOK_TRACKER, 0);
	int b = add4(ab, 0x0a000002, 1, BT_ADDRBOOK_MANUAL, 0);
	int c = add4(ab, 0x0a000003, 1, BT_ADDRBOOK_TRACKER, 0);
	assert_int_equal(counts(ab).dialable, 3);
	/* First in, first out. */
	assert_int_equal(bt_addrbook_next_to_dial(ab, 0), a);
	assert_int_equal(bt_addrbook_next_to_dial(ab, 0), b);
	assert_int_equal(bt_addrbook_get(ab, a)->tries, 1);
	assert_true(bt_addrbook_get(ab, a)->connected);
	assert_int_equal(counts(ab).connected, 2);
	assert_int_equal(counts(ab).dialable, 1);

	/* a fails at once: it waits 2 s, behind c. */
	bt_addrbook_closed(ab, a, 1, "connection refused");
	assert_string_equal(bt_addrbook_get(ab, a)->last_error, "connection refused");
	assert_true(bt_addrbook_get(ab, a)->retry_at == 1 + BT_ADDRBOOK_BACKOFF_S);
	assert_int_equal(bt_addrbook_next_to_dial(ab, 1), c);
	assert_int_equal(bt_addrbook_next_to_dial(ab, 2), -ENOENT);
	double at;
	assert_true(bt_addrbook_next_due(ab, &at));
	assert_true(at == 3);
	assert_int_equal(bt_addrbook_next_to_dial(ab, 3), a);
	/* Second failure: 4 s; third: given up. */
	bt_addrbook_closed(ab, a, 3, NULL);
	assert_string_equal(bt_addrbook_get(ab, a)->last_error, "connection refused");
	assert_int_equal(bt_addrbook_next_to_dial(ab, 6.9), -ENOENT);
	assert_int_equal(bt_addrbook_next_to_dial(ab, 7), a);
	bt_addrbook_closed(ab, a, 7, "timed out");
	assert_int_equal(bt_addrbook_get(ab, a)->tries, BT_ADDRBOOK_MAX_TRIES);
	assert_int_equal(bt_addrbook_next_to_dial(ab, 1000), -ENOENT);

	/* b and c still connected: no address queued, yet hope while they last. */
	assert_false(bt_addrbook_next_due(ab, NULL));
	assert_int_equal(counts(ab).connected, 2);
	assert_int_equal(counts(ab).hopeful, 2);
	bt_addrbook_free(ab);
}

static void test_fresh_tries_after_long_connection(void **state)
{
	(void)state;
	struct bt_addrbook *ab = bt_addrbook_new(0, 4);
	int a = add4(ab, 0x0a000001, 1, BT_ADDRBOOK_TRACKER, 0);
	double now = 0;
	for (int i = 0; i < BT_ADDRBOOK_MAX_TRIES - 1; i++) {
		assert_int_equal(bt_addrbook_next_to_dial(ab, now), a);
		bt_addrbook_closed(ab, a, now + 1, "refused");
		now += 100;
	}
	/* The last try: it connects and serves for two minutes. */
	assert_int_equal(bt_addrbook_next_to_dial(ab, now), a);
	bt_addrbook_handshaken(ab, a);
	assert_int_equal(bt_addrbook_get(ab, a)->tries, BT_ADDRBOOK_MAX_TRIES);
	bt_addrbook_closed(ab, a, now + 120, "peer closed");
	assert_int_equal(bt_addrbook_get(ab, a)->tries, 1);
	assert_true(bt_addrbook_get(ab, a)->retry_at == now + 120 + BT_ADDRBOOK_BACKOFF_S);
	assert_int_equal(bt_addrbook_next_to_dial(ab, now + 121), -ENOENT);
	assert_int_equal(bt_addrbook_next_to_dial(ab, now + 122), a);
	bt_addrbook_free(ab);
}

static void test_incoming_ban_self(void **state)
{
	(void)state;
	struct bt_addrbook *ab = bt_addrbook_new(0, 5);
	int in = add4(ab, 0x0a000001, 40000, BT_ADDRBOOK_INCOMING, 0);
	int bad = add4(ab, 0x0a000002, 1, BT_ADDRBOOK_TRACKER, 0);
	int me = add4(ab, 0x0a000003, 1, BT_ADDRBOOK_TRACKER, 0);
	assert_true(bt_addrbook_get(ab, in)->incoming);
	assert_int_equal(bt_addrbook_connected(ab, in, 0), 0);
	assert_int_equal(bt_addrbook_connected(ab, in, 0), -EBUSY);
	assert_int_equal(counts(ab).hopeful, 3); /* connected to us: it counts while it lasts */
	assert_true(bt_addrbook_closed(ab, in, 1, "eof")); /* incoming, no data: released */
	assert_null(bt_addrbook_get(ab, in));
	assert_int_equal(find4(ab, 0x0a000001, 40000), -ENOENT);

	bt_addrbook_mark_self(ab, me);
	assert_int_equal(bt_addrbook_connected(ab, me, 0), -EPERM);

	assert_int_equal(bt_addrbook_next_to_dial(ab, 0), bad);
	bt_addrbook_add_bytes(ab, bad, 16384);
	assert_false(bt_addrbook_strike(ab, bad, 1, "sent bad data"));
	assert_true(bt_addrbook_strike(ab, bad, 1, "sent bad data"));
	assert_false(bt_addrbook_strike(ab, bad, 1, "sent bad data")); /* banned already */
	const struct bt_addrbook_entry *e = bt_addrbook_get(ab, bad);
	assert_true(e->banned);
	assert_int_equal(e->strikes, 3);
	assert_string_equal(e->last_error, "banned: sent bad data");
	assert_false(bt_addrbook_closed(ab, bad, 1, NULL));
	assert_string_equal(e->last_error, "banned: sent bad data");
	assert_int_equal(bt_addrbook_connected(ab, bad, 2), -EPERM);
	/* Reported again: still banned, and nothing is dialled ever. */
	assert_int_equal(add4(ab, 0x0a000002, 1, BT_ADDRBOOK_PEX, 5), bad);
	assert_int_equal(bt_addrbook_next_to_dial(ab, 1e9), -ENOENT);
	assert_false(bt_addrbook_next_due(ab, NULL));

	struct bt_addrbook_counts c;
	bt_addrbook_counts(ab, &c);
	assert_int_equal(c.known, 2);
	assert_int_equal(c.banned, 1);
	assert_int_equal(c.used, 1);
	assert_int_equal(c.connected, 0);
	assert_int_equal(c.hopeful, 0);

	/* An incoming address, reported by a tracker with the same port, becomes dialable. */
	int in2 = add4(ab, 0x0a000004, 40001, BT_ADDRBOOK_INCOMING, 5);
	assert_int_equal(bt_addrbook_connected(ab, in2, 5), 0);
	assert_int_equal(add4(ab, 0x0a000004, 40001, BT_ADDRBOOK_TRACKER, 5), in2);
	assert_false(bt_addrbook_closed(ab, in2, 5, "eof"));
	assert_int_equal(bt_addrbook_next_to_dial(ab, 100), in2);
	bt_addrbook_free(ab);
}

static void test_capacity_and_eviction(void **state)
{
	(void)state;
	struct bt_addrbook *ab = bt_addrbook_new(4, 6);
	int a = add4(ab, 1, 1, BT_ADDRBOOK_TRACKER, 0);
	int b = add4(ab, 2, 1, BT_ADDRBOOK_TRACKER, 0);
	int m = add4(ab, 3, 1, BT_ADDRBOOK_MANUAL, 0);
	int d = add4(ab, 4, 1, BT_ADDRBOOK_DHT, 0);
	assert_true(a >= 0 && b >= 0 && m >= 0 && d >= 0);
	/* Full: a tracker address is dropped while nothing is spent. */
	assert_int_equal(add4(ab, 5, 1, BT_ADDRBOOK_DHT, 0), -ENOSPC);
	assert_int_equal(add4(ab, 2, 1, BT_ADDRBOOK_PEX, 0), b); /* a known one is fine */

	/* b uses up its tries: it is spent, and the next tracker address takes its place. */
	double now = 0;
	for (int i = 0; i < BT_ADDRBOOK_MAX_TRIES; i++) {
		int h;
		while ((h = bt_addrbook_next_to_dial(ab, now)) != b) {
			if (h >= 0)
				bt_addrbook_handshaken(ab, h); /* a, m, d: connected, kept */
			now += 1;
		}
		bt_addrbook_closed(ab, b, now, "refused");
	}
	int e = add4(ab, 5, 1, BT_ADDRBOOK_TRACKER, now);
	assert_true(e >= 0);
	assert_int_equal(find4(ab, 2, 1), -ENOENT);
	assert_int_equal(e, b); /* the handle is reused */
	assert_string_equal(bt_addrbook_get(ab, e)->name, "0.0.0.5:1");
	assert_int_equal(counts(ab).known, 4);

	/* Everything connected or manual: an incoming address still fits, past the capacity. */
	assert_int_equal(bt_addrbook_next_to_dial(ab, now), e);
	int in = add4(ab, 6, 40000, BT_ADDRBOOK_INCOMING, now);
	assert_true(in >= 0);
	assert_int_equal(counts(ab).known, 5);
	assert_int_equal(bt_addrbook_connected(ab, in, now), 0);

	/* Idle entries make room for manual ones: spent first, then never handshaken, then
	 * handshaken. */
	assert_true(bt_addrbook_closed(ab, in, now, "eof")); /* incoming only: released */
	assert_int_equal(counts(ab).known, 4);
	bt_addrbook_closed(ab, a, now, "eof"); /* handshaken */
	bt_addrbook_closed(ab, e, now, "eof"); /* never handshaken, still dialable */
	int s = add4(ab, 6, 1, BT_ADDRBOOK_MANUAL, now);
	assert_true(s >= 0);
	assert_int_equal(find4(ab, 5, 1), -ENOENT); /* cold went first (nothing spent) */
	int m3 = add4(ab, 8, 1, BT_ADDRBOOK_MANUAL, now);
	assert_true(m3 >= 0);
	assert_int_equal(find4(ab, 1, 1), -ENOENT); /* then warm */
	int m4 = add4(ab, 9, 1, BT_ADDRBOOK_INCOMING, now);
	assert_true(m4 >= 0);
	assert_int_equal(counts(ab).known, 5); /* nothing idle left: it grows by one */
	assert_int_equal(find4(ab, 3, 1), m);  /* manual ones stay */
	assert_int_equal(find4(ab, 4, 1), d);  /* connected ones stay */
	/* Once the incoming one connects, a tracker address finds no room. */
	assert_int_equal(bt_addrbook_connected(ab, m4, now), 0);
	assert_int_equal(add4(ab, 10, 1, BT_ADDRBOOK_TRACKER, now), -ENOSPC);
	bt_addrbook_free(ab);
}

static void test_sent_data_never_evicted(void **state)
{
	(void)state;
	struct bt_addrbook *ab = bt_addrbook_new(1, 7);
	int a = add4(ab, 1, 1, BT_ADDRBOOK_TRACKER, 0);
	assert_int_equal(bt_addrbook_next_to_dial(ab, 0), a);
	bt_addrbook_handshaken(ab, a);
	bt_addrbook_add_bytes(ab, a, 100);
	bt_addrbook_closed(ab, a, 1, "eof");
	int m = add4(ab, 2, 1, BT_ADDRBOOK_MANUAL, 1);
	assert_true(m >= 0 && m != a);
	assert_int_equal(bt_addrbook_get(ab, a)->bytes, 100);

	/* Iteration visits both, in handle order. */
	int h = bt_addrbook_next(ab, -1);
	assert_int_equal(h, a);
	assert_int_equal(bt_addrbook_next(ab, h), m);
	assert_int_equal(bt_addrbook_next(ab, m), -ENOENT);
	bt_addrbook_free(ab);
}

/* One unsolicited source brings at most half the book; the others keep their share. */
static void test_per_source_bound(void **state)
{
	(void)state;
	struct bt_addrbook *ab = bt_addrbook_new(0, 9);
	uint32_t i;
	for (i = 0; i < BT_ADDRBOOK_DEFAULT_PER_SOURCE; i++)
		assert_true(add4(ab, 0x7f010000 + i, 9, BT_ADDRBOOK_TRACKER, 0) >= 0);
	assert_int_equal(add4(ab, 0x7f010000 + i, 9, BT_ADDRBOOK_TRACKER, 0), -ENOSPC);
	/* Known ones are still taken (another tracker's report), and other sources have room. */
	assert_int_equal(add4(ab, 0x7f010000, 9, BT_ADDRBOOK_TRACKER, 0), 0);
	assert_true(add4(ab, 0x0b000001, 9, BT_ADDRBOOK_PEX, 0) >= 0);
	assert_true(add4(ab, 0x0b000002, 9, BT_ADDRBOOK_DHT, 0) >= 0);
	assert_true(add4(ab, 0x0b000003, 9, BT_ADDRBOOK_MANUAL, 0) >= 0);
	assert_int_equal(counts(ab).known, BT_ADDRBOOK_DEFAULT_PER_SOURCE + 3);

	/* A tracker entry spent (out of tries) makes room for one more from the trackers. */
	double now = 0;
	int h0 = find4(ab, 0x7f010000, 9);
	for (int k = 0; k < BT_ADDRBOOK_MAX_TRIES; k++) {
		/* Dial everything due; close it at once, as refused. */
		int h;
		while ((h = bt_addrbook_next_to_dial(ab, now)) >= 0)
			bt_addrbook_closed(ab, h, now, "refused");
		now += 1000;
	}
	assert_true(bt_addrbook_get(ab, h0)->tries >= BT_ADDRBOOK_MAX_TRIES);
	assert_true(add4(ab, 0x7f020000, 9, BT_ADDRBOOK_TRACKER, now) >= 0);
	bt_addrbook_free(ab);
}

/* Incoming addresses have ephemeral ports: never dialled, and gone when they close with no
 * data; one that sent data (or was banned) stays, as the pieces it contributed refer to it. */
static void test_incoming_released_at_close(void **state)
{
	(void)state;
	struct bt_addrbook *ab = bt_addrbook_new(0, 10);
	for (uint32_t i = 0; i < 20000; i++) {
		int h = add4(ab, 0x7f000001 + i % 4, (uint16_t)(32768 + i % 28000),
			     BT_ADDRBOOK_INCOMING, i);
		assert_true(h >= 0);
		assert_int_equal(bt_addrbook_connected(ab, h, i), 0);
		assert_int_equal(bt_addrbook_next_to_dial(ab, 1e9), -ENOENT);
		if (i % 2)
			bt_addrbook_handshaken(ab, h);
		assert_true(bt_addrbook_closed(ab, h, i, "eof"));
	}
	struct bt_addrbook_counts c = counts(ab);
	assert_int_equal(c.known, 0);
	assert_int_equal(c.hopeful, 0);
	assert_int_equal(c.connected, 0);
	assert_int_equal(c.dialable, 0);

	int data = add4(ab, 0x7f000001, 40000, BT_ADDRBOOK_INCOMING, 0);
	assert_int_equal(bt_addrbook_connected(ab, data, 0), 0);
	bt_addrbook_handshaken(ab, data);
	bt_addrbook_add_bytes(ab, data, 16384);
	assert_false(bt_addrbook_closed(ab, data, 1, "eof"));
	int bad = add4(ab, 0x7f000002, 40000, BT_ADDRBOOK_INCOMING, 0);
	assert_int_equal(bt_addrbook_connected(ab, bad, 0), 0);
	bt_addrbook_ban(ab, bad, "lied");
	assert_false(bt_addrbook_closed(ab, bad, 1, "banned"));
	assert_int_equal(counts(ab).known, 2);
	assert_int_equal(bt_addrbook_next_to_dial(ab, 1e9), -ENOENT);
	assert_false(bt_addrbook_next_due(ab, NULL));
	/* Closing what is not connected changes nothing. */
	assert_false(bt_addrbook_closed(ab, data, 2, "eof"));
	bt_addrbook_free(ab);
}

/* A quadratic book (a scan per insert or per dial) would take minutes here, not milliseconds. */
static void test_many_inserts(void **state)
{
	(void)state;
	enum { N = 100000 };
	struct bt_addrbook *ab = bt_addrbook_new(2 * N, 8);
	for (uint32_t i = 0; i < N; i++)
		assert_int_equal(
			add4(ab, 0x0a000000 + i, (uint16_t)(6881 + i % 7), BT_ADDRBOOK_DHT, 0),
			(int)i);
	for (uint32_t i = 0; i < N; i += 997)
		assert_int_equal(find4(ab, 0x0a000000 + i, (uint16_t)(6881 + i % 7)), (int)i);
	assert_int_equal(counts(ab).known, N);
	for (int i = 0; i < N; i++) {
		int h = bt_addrbook_next_to_dial(ab, 1);
		assert_int_equal(h, i);
		bt_addrbook_closed(ab, h, 1, "refused");
	}
	assert_int_equal(bt_addrbook_next_to_dial(ab, 1), -ENOENT);
	assert_int_equal(counts(ab).dialable, N);
	bt_addrbook_free(ab);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dedupe_and_sources),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_dial_order_and_backoff),
		cmocka_unit_test(test_fresh_tries_after_long_connection),
		cmocka_unit_test(test_incoming_ban_self),
		cmocka_unit_test(test_capacity_and_eviction),
		cmocka_unit_test(test_sent_data_never_evicted),
		cmocka_unit_test(test_many_inserts),
		cmocka_unit_test(test_per_source_bound),
		cmocka_unit_test(test_incoming_released_at_close),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
