/*
 * The handshake router on plain arrays: every prefix of a good handshake waits for more, the
 * first wrong byte of the protocol string rejects, a complete handshake is routed to the entry
 * registered for its info hash or rejected naming the hash, and the registry keeps its entries
 * straight through duplicates, removals and growth.
 */
#include "bt/router.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void fake_incoming(void *arg, int fd, const struct sockaddr *sa, socklen_t len,
			  const struct bt_handshake *h)
{
	(void)arg, (void)fd, (void)sa, (void)len, (void)h;
}

static void other_incoming(void *arg, int fd, const struct sockaddr *sa, socklen_t len,
			   const struct bt_handshake *h)
{
	(void)arg, (void)fd, (void)sa, (void)len, (void)h;
}

/* A distinct info hash for each k. */
static void hash_of(uint32_t k, uint8_t out[BT_HASH_LEN])
{
	for (size_t i = 0; i < BT_HASH_LEN; i++)
		out[i] = (uint8_t)(k * 7919u + i * 31u + (k >> 8));
	out[0] = (uint8_t)k;
	out[1] = (uint8_t)(k >> 8);
}

static void handshake_for(const uint8_t info_hash[BT_HASH_LEN], uint8_t out[BT_HANDSHAKE_LEN])
{
	struct bt_handshake h;
	memset(&h, 0, sizeof h);
	memcpy(h.reserved, bt_wire_reserved_ext, 8);
	memcpy(h.info_hash, info_hash, BT_HASH_LEN);
	for (size_t i = 0; i < BT_PEER_ID_LEN; i++)
		h.peer_id[i] = (uint8_t)('a' + i);
	bt_wire_handshake(out, &h);
}

static void test_every_prefix_needs_more(void **state)
{
	(void)state;
	struct bt_router r;
	bt_router_init(&r);
	uint8_t ih[BT_HASH_LEN], hs[BT_HANDSHAKE_LEN];
	hash_of(1, ih);
	int arg = 0;
	assert_int_equal(bt_router_add(&r, ih, fake_incoming, &arg), 0);
	handshake_for(ih, hs);
	for (size_t n = 0; n < BT_HANDSHAKE_LEN; n++) {
		struct bt_handshake h;
		const struct bt_router_entry *e = NULL;
		struct bt_err err = {{0}};
		assert_int_equal(bt_router_route(&r, hs, n, &h, &e, &err), BT_ROUTE_NEED_MORE);
	}
	struct bt_handshake h;
	const struct bt_router_entry *e = NULL;
	struct bt_err err;
	assert_int_equal(bt_router_route(&r, hs, BT_HANDSHAKE_LEN, &h, &e, &err), BT_ROUTE_OK);
	assert_non_null(e);
	assert_memory_equal(e->info_hash, ih, BT_HASH_LEN);
	assert_ptr_equal(e->fn, fake_incoming);
	assert_ptr_equal(e->arg, &arg);
	assert_memory_equal(h.info_hash, ih, BT_HASH_LEN);
	assert_memory_equal(h.reserved, bt_wire_reserved_ext, 8);
	assert_memory_equal(h.peer_id, "abcdefghijklmnopqrst", BT_PEER_ID_LEN);
	bt_router_deinit(&r);
}

/* Each byte of the 20-byte protocol prefix, changed, rejects as soon as it arrives. */
static void test_first_wrong_byte_rejects(void **state)
{
	(void)state;
	struct bt_router r;
	bt_router_init(&r);
	uint8_t ih[BT_HASH_LEN], hs[BT_HANDSHAKE_LEN];
	hash_of(2, ih);
	assert_int_equal(bt_router_add(&r, ih, fake_incoming, NULL), 0);
	handshake_for(ih, hs);
	for (size_t bad = 0; bad < 20; bad++) {
		uint8_t copy[BT_HANDSHAKE_LEN];
		memcpy(copy, hs, sizeof copy);
		copy[bad] ^= 0x20;
		/* Up to the byte before the wrong one, it can still be a handshake. */
		for (size_t n = 0; n <= bad; n++) {
			struct bt_handshake h;
			const struct bt_router_entry *e = NULL;
			struct bt_err err = {{0}};
			enum bt_route got = bt_router_route(&r, copy, n, &h, &e, &err);
			assert_int_equal(got, BT_ROUTE_NEED_MORE);
		}
		struct bt_handshake h;
		const struct bt_router_entry *e = NULL;
		struct bt_err err = {{0}};
		assert_int_equal(bt_router_route(&r, copy, bad + 1, &h, &e, &err), BT_ROUTE_REJECT);
		assert_true(strlen(err.msg) > 0);
		assert_int_equal(bt_router_route(&r, copy, BT_HANDSHAKE_LEN, &h, &e, &err),
				 BT_ROUTE_REJECT);
	}

	/* An HTTP request: its very first byte is not 19. */
	static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	struct bt_handshake h;
	const struct bt_router_entry *e = NULL;
	struct bt_err err = {{0}};
	assert_int_equal(bt_router_route(&r, (const uint8_t *)http, 1, &h, &e, &err),
			 BT_ROUTE_REJECT);
	assert_int_equal(bt_router_route(&r, (const uint8_t *)http, strlen(http), &h, &e, &err),
			 BT_ROUTE_REJECT);
	assert_non_null(strstr(err.msg, "not a BitTorrent handshake"));

	/* The right length byte, then a wrong protocol name: rejected at its first wrong byte. */
	static const uint8_t near[] = "\x13"
				      "BitTorrent protocoX";
	assert_int_equal(bt_router_route(&r, near, 19, &h, &e, &err), BT_ROUTE_NEED_MORE);
	assert_int_equal(bt_router_route(&r, near, 20, &h, &e, &err), BT_ROUTE_REJECT);
	bt_router_deinit(&r);
}

static void test_unknown_hash_rejected_with_hex(void **state)
{
	(void)state;
	struct bt_router r;
	bt_router_init(&r);
	uint8_t known[BT_HASH_LEN], unknown[BT_HASH_LEN], hs[BT_HANDSHAKE_LEN];
	hash_of(3, known);
	hash_of(4, unknown);
	assert_int_equal(bt_router_add(&r, known, fake_incoming, NULL), 0);
	handshake_for(unknown, hs);
	struct bt_handshake h;
	const struct bt_router_entry *e = NULL;
	struct bt_err err = {{0}};
	assert_int_equal(bt_router_route(&r, hs, BT_HANDSHAKE_LEN - 1, &h, &e, &err),
			 BT_ROUTE_NEED_MORE);
	assert_int_equal(bt_router_route(&r, hs, BT_HANDSHAKE_LEN, &h, &e, &err), BT_ROUTE_REJECT);
	char hex[2 * BT_HASH_LEN + 1], want[80];
	bt_hex_encode(hex, unknown, BT_HASH_LEN);
	snprintf(want, sizeof want, "unknown info hash %s", hex);
	assert_string_equal(err.msg, want);

	/* An empty registry rejects every complete handshake too. */
	struct bt_router empty;
	bt_router_init(&empty);
	assert_int_equal(bt_router_route(&empty, hs, BT_HANDSHAKE_LEN, &h, &e, &err),
			 BT_ROUTE_REJECT);
	assert_string_equal(err.msg, want);
	bt_router_deinit(&empty);
	bt_router_deinit(&r);
}

static void test_several_entries_each_routed(void **state)
{
	(void)state;
	struct bt_router r;
	bt_router_init(&r);
	int args[5];
	uint8_t ih[5][BT_HASH_LEN];
	for (uint32_t k = 0; k < 5; k++) {
		hash_of(10 + k, ih[k]);
		assert_int_equal(
			bt_router_add(&r, ih[k], k % 2 ? other_incoming : fake_incoming, &args[k]),
			0);
	}
	for (uint32_t k = 0; k < 5; k++) {
		uint8_t hs[BT_HANDSHAKE_LEN];
		handshake_for(ih[k], hs);
		struct bt_handshake h;
		const struct bt_router_entry *e = NULL;
		struct bt_err err;
		assert_int_equal(bt_router_route(&r, hs, sizeof hs, &h, &e, &err), BT_ROUTE_OK);
		assert_ptr_equal(e->arg, &args[k]);
		assert_ptr_equal(e->fn, k % 2 ? other_incoming : fake_incoming);
		assert_memory_equal(e->info_hash, ih[k], BT_HASH_LEN);
		assert_ptr_equal(bt_router_find(&r, ih[k]), e);
	}
	bt_router_deinit(&r);
}

static void test_duplicate_and_remove(void **state)
{
	(void)state;
	struct bt_router r;
	bt_router_init(&r);
	uint8_t a[BT_HASH_LEN], b[BT_HASH_LEN], c[BT_HASH_LEN];
	hash_of(20, a);
	hash_of(21, b);
	hash_of(22, c);
	int arg_a = 0, arg_b = 0, arg_dup = 0;
	assert_int_equal(bt_router_add(&r, a, fake_incoming, &arg_a), 0);
	assert_int_equal(bt_router_add(&r, b, fake_incoming, &arg_b), 0);
	/* A duplicate is refused and leaves the first registration in place. */
	assert_int_equal(bt_router_add(&r, a, other_incoming, &arg_dup), -EEXIST);
	assert_int_equal(r.n, 2);
	assert_ptr_equal(bt_router_find(&r, a)->arg, &arg_a);
	assert_ptr_equal(bt_router_find(&r, a)->fn, fake_incoming);

	/* Removing an unknown hash changes nothing. */
	bt_router_remove(&r, c);
	assert_int_equal(r.n, 2);
	assert_non_null(bt_router_find(&r, a));
	assert_non_null(bt_router_find(&r, b));

	/* Removed: its handshake is now rejected, the other entry still routed. */
	bt_router_remove(&r, a);
	assert_int_equal(r.n, 1);
	assert_null(bt_router_find(&r, a));
	uint8_t hs[BT_HANDSHAKE_LEN];
	handshake_for(a, hs);
	struct bt_handshake h;
	const struct bt_router_entry *e = NULL;
	struct bt_err err;
	assert_int_equal(bt_router_route(&r, hs, sizeof hs, &h, &e, &err), BT_ROUTE_REJECT);
	assert_non_null(strstr(err.msg, "unknown info hash"));
	handshake_for(b, hs);
	assert_int_equal(bt_router_route(&r, hs, sizeof hs, &h, &e, &err), BT_ROUTE_OK);
	assert_ptr_equal(e->arg, &arg_b);

	/* Removing twice is a no-op; adding again works. */
	bt_router_remove(&r, a);
	assert_int_equal(r.n, 1);
	assert_int_equal(bt_router_add(&r, a, other_incoming, &arg_dup), 0);
	assert_ptr_equal(bt_router_find(&r, a)->arg, &arg_dup);
	bt_router_deinit(&r);

	/* deinit leaves an empty registry; deinit of a never-used one is fine. */
	assert_int_equal(r.n, 0);
	assert_null(r.entries);
	struct bt_router unused;
	bt_router_init(&unused);
	bt_router_remove(&unused, a);
	assert_null(bt_router_find(&unused, a));
	bt_router_deinit(&unused);
}

static void test_many_entries(void **state)
{
	(void)state;
	enum { N = 200 };
	struct bt_router r;
	bt_router_init(&r);
	static int args[N];
	for (uint32_t k = 0; k < N; k++) {
		uint8_t ih[BT_HASH_LEN];
		hash_of(1000 + k, ih);
		assert_int_equal(bt_router_add(&r, ih, fake_incoming, &args[k]), 0);
	}
	assert_int_equal(r.n, N);
	for (uint32_t k = 0; k < N; k++) {
		uint8_t ih[BT_HASH_LEN], hs[BT_HANDSHAKE_LEN];
		hash_of(1000 + k, ih);
		handshake_for(ih, hs);
		struct bt_handshake h;
		const struct bt_router_entry *e = NULL;
		struct bt_err err;
		assert_int_equal(bt_router_route(&r, hs, sizeof hs, &h, &e, &err), BT_ROUTE_OK);
		assert_ptr_equal(e->arg, &args[k]);
	}
	/* Remove every other one (entries move around inside): the rest are still found. */
	for (uint32_t k = 0; k < N; k += 2) {
		uint8_t ih[BT_HASH_LEN];
		hash_of(1000 + k, ih);
		bt_router_remove(&r, ih);
	}
	assert_int_equal(r.n, N / 2);
	for (uint32_t k = 0; k < N; k++) {
		uint8_t ih[BT_HASH_LEN];
		hash_of(1000 + k, ih);
		const struct bt_router_entry *e = bt_router_find(&r, ih);
		if (k % 2 == 0) {
			assert_null(e);
		} else {
			assert_non_null(e);
			assert_ptr_equal(e->arg, &args[k]);
		}
	}
	bt_router_deinit(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_prefix_needs_more),
		cmocka_unit_test(test_first_wrong_byte_rejects),
		cmocka_unit_test(test_unknown_hash_rejected_with_hex),
		cmocka_unit_test(test_several_entries_each_routed),
		cmocka_unit_test(test_duplicate_and_remove),
		cmocka_unit_test(test_many_entries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
