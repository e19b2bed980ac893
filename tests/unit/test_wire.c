#include "bt/bitfield.h"
#include "bt/wire.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_bitfield(void **state)
{
	(void)state;
	struct bt_bitfield b;
	bt_bitfield_init(&b, 10);
	assert_int_equal(bt_bitfield_bytes(10), 2);
	bt_bitfield_set(&b, 0);
	bt_bitfield_set(&b, 9);
	bt_bitfield_set(&b, 9);
	assert_int_equal(b.count, 2);
	assert_int_equal(b.bits[0], 0x80);
	assert_int_equal(b.bits[1], 0x40);
	assert_true(bt_bitfield_get(&b, 9));
	assert_false(bt_bitfield_get(&b, 8));
	assert_false(bt_bitfield_get(&b, 10)); /* out of range reads as unset */
	bt_bitfield_clear(&b, 0);
	bt_bitfield_clear(&b, 0);
	assert_int_equal(b.count, 1);
	bt_bitfield_set_all(&b);
	assert_true(bt_bitfield_full(&b));
	assert_int_equal(b.bits[1], 0xc0);

	assert_int_equal(bt_bitfield_import(&b, (const uint8_t *)"\xff\xc0", 2), 0);
	assert_int_equal(b.count, 10);
	assert_int_equal(bt_bitfield_import(&b, (const uint8_t *)"\x01\x00", 2), 0);
	assert_int_equal(b.count, 1);
	assert_true(bt_bitfield_get(&b, 7));
	/* Spare bits set, or the wrong size: refused, contents unchanged. */
	assert_int_equal(bt_bitfield_import(&b, (const uint8_t *)"\xff\xe0", 2), -EINVAL);
	assert_int_equal(bt_bitfield_import(&b, (const uint8_t *)"\xff", 1), -EINVAL);
	assert_int_equal(bt_bitfield_import(&b, (const uint8_t *)"\xff\xc0\x00", 3), -EINVAL);
	assert_int_equal(b.count, 1);
	bt_bitfield_deinit(&b);

	bt_bitfield_init(&b, 16);
	assert_int_equal(bt_bitfield_import(&b, (const uint8_t *)"\xff\xff", 2), 0);
	assert_true(bt_bitfield_full(&b));
	bt_bitfield_deinit(&b);
}

static void test_handshake(void **state)
{
	(void)state;
	struct bt_handshake h;
	memcpy(h.reserved, bt_wire_reserved_ext, 8);
	memset(h.info_hash, 0xab, 20);
	memcpy(h.peer_id, "-TC0001-abcdefghijkl", 20);
	uint8_t buf[BT_HANDSHAKE_LEN];
	bt_wire_handshake(buf, &h);
	assert_memory_equal(buf,
			    "\x13"
			    "BitTorrent protocol\0\0\0\0\0\x10\0\0",
			    28);

	struct bt_handshake got;
	struct bt_err err;
	for (size_t n = 0; n < BT_HANDSHAKE_LEN; n++)
		assert_int_equal(bt_wire_parse_handshake(buf, n, &got, &err), BT_WIRE_NEED_MORE);
	assert_int_equal(bt_wire_parse_handshake(buf, BT_HANDSHAKE_LEN, &got, &err), BT_WIRE_OK);
	assert_memory_equal(got.peer_id, h.peer_id, 20);
	assert_memory_equal(got.info_hash, h.info_hash, 20);
	assert_memory_equal(got.reserved, bt_wire_reserved_ext, 8);

	buf[5] = 'X';
	assert_int_equal(bt_wire_parse_handshake(buf, 6, &got, &err), BT_WIRE_BAD);
	assert_string_equal(err.msg, "not a BitTorrent handshake");
	assert_int_equal(bt_wire_parse_handshake((const uint8_t *)"GET / HTTP/1.1", 14, &got, &err),
			 BT_WIRE_BAD);
}

/* Decodes `msg` fed one byte at a time, as a socket might deliver it. */
static void decode_split(const uint8_t *msg, size_t n, size_t bf_bytes, struct bt_wire_msg *out)
{
	size_t used = 0;
	for (size_t have = 0; have < n; have++)
		assert_int_equal(bt_wire_decode(msg, have, bf_bytes, out, &used, NULL),
				 BT_WIRE_NEED_MORE);
	assert_int_equal(bt_wire_decode(msg, n, bf_bytes, out, &used, NULL), BT_WIRE_OK);
	assert_int_equal(used, n);
}

static void test_every_message(void **state)
{
	(void)state;
	uint8_t buf[64];
	struct bt_wire_msg m;

	decode_split(buf, bt_wire_put_keepalive(buf), 2, &m);
	assert_int_equal(m.id, BT_WIRE_KEEPALIVE);
	for (int id = BT_WIRE_CHOKE; id <= BT_WIRE_NOT_INTERESTED; id++) {
		decode_split(buf, bt_wire_put_simple(buf, id), 2, &m);
		assert_int_equal(m.id, id);
	}
	decode_split(buf, bt_wire_put_have(buf, 0xdeadbeef), 2, &m);
	assert_int_equal(m.id, BT_WIRE_HAVE);
	assert_int_equal(m.index, 0xdeadbeef);

	size_t n = bt_wire_put_bitfield_header(buf, 2);
	buf[n++] = 0xff;
	buf[n++] = 0x80;
	decode_split(buf, n, 2, &m);
	assert_int_equal(m.id, BT_WIRE_BITFIELD);
	assert_int_equal(m.payload_len, 2);
	assert_memory_equal(m.payload, "\xff\x80", 2);

	decode_split(buf, bt_wire_put_request(buf, BT_WIRE_REQUEST, 3, 16384, 16384), 2, &m);
	assert_int_equal(m.id, BT_WIRE_REQUEST);
	assert_int_equal(m.index, 3);
	assert_int_equal(m.begin, 16384);
	assert_int_equal(m.length, 16384);
	decode_split(buf, bt_wire_put_request(buf, BT_WIRE_CANCEL, 4, 0, 100), 2, &m);
	assert_int_equal(m.id, BT_WIRE_CANCEL);
	assert_int_equal(m.length, 100);

	n = bt_wire_put_piece_header(buf, 7, 32768, 5);
	memcpy(buf + n, "hello", 5);
	decode_split(buf, n + 5, 2, &m);
	assert_int_equal(m.id, BT_WIRE_PIECE);
	assert_int_equal(m.index, 7);
	assert_int_equal(m.begin, 32768);
	assert_int_equal(m.length, 5);
	assert_memory_equal(m.payload, "hello", 5);

	const uint8_t port[] = {0, 0, 0, 3, 9, 0x1a, 0xe1};
	decode_split(port, sizeof port, 2, &m);
	assert_int_equal(m.id, BT_WIRE_PORT);
	assert_int_equal(m.port, 6881);

	n = bt_wire_put_extended_header(buf, 0, 4);
	memcpy(buf + n, "d1:ae", 4);
	decode_split(buf, n + 4, 2, &m);
	assert_int_equal(m.id, BT_WIRE_EXTENDED);
	assert_int_equal(m.ext_id, 0);
	assert_int_equal(m.payload_len, 4);

	/* An unknown id is framed and handed up to be ignored. */
	const uint8_t unknown[] = {0, 0, 0, 3, 42, 'x', 'y'};
	decode_split(unknown, sizeof unknown, 2, &m);
	assert_int_equal(m.id, 42);
	assert_int_equal(m.payload_len, 2);

	/* Two messages back to back: the first is decoded, consumed says where the next starts. */
	n = bt_wire_put_simple(buf, BT_WIRE_UNCHOKE);
	n += bt_wire_put_have(buf + n, 1);
	size_t used;
	assert_int_equal(bt_wire_decode(buf, n, 2, &m, &used, NULL), BT_WIRE_OK);
	assert_int_equal(used, 5);
	assert_int_equal(bt_wire_decode(buf + used, n - used, 2, &m, &used, NULL), BT_WIRE_OK);
	assert_int_equal(m.id, BT_WIRE_HAVE);
}

static void expect_bad_header(uint32_t len, uint8_t id, const char *msg)
{
	uint8_t h[5];
	bt_store_be32(h, len);
	h[4] = id;
	size_t total;
	struct bt_err err;
	assert_int_equal(bt_wire_check(h, 5, 2, &total, &err), BT_WIRE_BAD);
	assert_string_equal(err.msg, msg);
}

static void test_lengths_checked_from_the_header(void **state)
{
	(void)state;
	expect_bad_header(2, BT_WIRE_CHOKE, "choke message (id 0) with bad length 2");
	expect_bad_header(4, BT_WIRE_HAVE, "have message (id 4) with bad length 4");
	expect_bad_header(4, BT_WIRE_BITFIELD, "bitfield message (id 5) with bad length 4");
	expect_bad_header(2, BT_WIRE_BITFIELD, "bitfield message (id 5) with bad length 2");
	expect_bad_header(14, BT_WIRE_REQUEST, "request message (id 6) with bad length 14");
	expect_bad_header(9, BT_WIRE_PIECE, "piece message (id 7) with bad length 9");
	expect_bad_header(9 + 16385, BT_WIRE_PIECE, "piece message (id 7) with bad length 16394");
	expect_bad_header(0x7fffffff, BT_WIRE_PIECE,
			  "piece message (id 7) with bad length 2147483647");
	expect_bad_header(1, BT_WIRE_EXTENDED, "extended message (id 20) with bad length 1");
	expect_bad_header(1 << 20, 99, "unknown message (id 99) with bad length 1048576");
	expect_bad_header(4, BT_WIRE_PORT, "port message (id 9) with bad length 4");

	/* Good headers are judged before the body arrives. */
	uint8_t h[5];
	size_t total;
	bt_store_be32(h, 9 + 16384);
	h[4] = BT_WIRE_PIECE;
	assert_int_equal(bt_wire_check(h, 3, 2, &total, NULL), BT_WIRE_NEED_MORE);
	assert_int_equal(bt_wire_check(h, 4, 2, &total, NULL), BT_WIRE_NEED_MORE);
	assert_int_equal(bt_wire_check(h, 5, 2, &total, NULL), BT_WIRE_OK);
	assert_int_equal(total, 4 + 9 + 16384);
}

static void test_fast_messages_and_features(void **state)
{
	(void)state;
	uint8_t buf[32];
	struct bt_wire_msg m;
	decode_split(buf, bt_wire_put_simple(buf, BT_WIRE_HAVE_ALL), 2, &m);
	assert_int_equal(m.id, BT_WIRE_HAVE_ALL);
	decode_split(buf, bt_wire_put_simple(buf, BT_WIRE_HAVE_NONE), 2, &m);
	assert_int_equal(m.id, BT_WIRE_HAVE_NONE);
	const uint8_t suggest[] = {0, 0, 0, 5, 13, 0, 0, 1, 2};
	decode_split(suggest, sizeof suggest, 2, &m);
	assert_int_equal(m.id, BT_WIRE_SUGGEST);
	assert_int_equal(m.index, 258);
	const uint8_t allowed[] = {0, 0, 0, 5, 17, 0, 0, 0, 7};
	decode_split(allowed, sizeof allowed, 2, &m);
	assert_int_equal(m.id, BT_WIRE_ALLOWED_FAST);
	assert_int_equal(m.index, 7);
	/* Our encoder writes the same bytes the decoder took above. */
	assert_int_equal(bt_wire_put_index(buf, BT_WIRE_ALLOWED_FAST, 7), sizeof allowed);
	assert_memory_equal(buf, allowed, sizeof allowed);
	assert_int_equal(bt_wire_put_index(buf, BT_WIRE_SUGGEST, 258), sizeof suggest);
	assert_memory_equal(buf, suggest, sizeof suggest);
	decode_split(buf, bt_wire_put_request(buf, BT_WIRE_REJECT, 5, 16384, 100), 2, &m);
	assert_int_equal(m.id, BT_WIRE_REJECT);
	assert_int_equal(m.index, 5);
	assert_int_equal(m.begin, 16384);
	assert_int_equal(m.length, 100);

	expect_bad_header(2, BT_WIRE_HAVE_ALL, "have all message (id 14) with bad length 2");
	expect_bad_header(5, BT_WIRE_HAVE_NONE, "have none message (id 15) with bad length 5");
	expect_bad_header(1, BT_WIRE_SUGGEST, "suggest piece message (id 13) with bad length 1");
	expect_bad_header(5, BT_WIRE_REJECT, "reject request message (id 16) with bad length 5");
	expect_bad_header(13, BT_WIRE_ALLOWED_FAST,
			  "allowed fast message (id 17) with bad length 13");

	/* Before the torrent's size is known, a bitfield of up to 1 MiB is framed. */
	uint8_t h[5];
	size_t total;
	struct bt_err err;
	bt_store_be32(h, 1 + 1000);
	h[4] = BT_WIRE_BITFIELD;
	assert_int_equal(bt_wire_check(h, 5, BT_WIRE_BITFIELD_UNKNOWN, &total, NULL), BT_WIRE_OK);
	assert_int_equal(total, 4 + 1 + 1000);
	bt_store_be32(h, 1 + BT_WIRE_MAX_BITFIELD);
	assert_int_equal(bt_wire_check(h, 5, BT_WIRE_BITFIELD_UNKNOWN, &total, NULL), BT_WIRE_OK);
	bt_store_be32(h, 2 + BT_WIRE_MAX_BITFIELD);
	assert_int_equal(bt_wire_check(h, 5, BT_WIRE_BITFIELD_UNKNOWN, &total, &err), BT_WIRE_BAD);
	assert_string_equal(err.msg, "bitfield message (id 5) with bad length 1048578");

	const uint8_t none[8] = {0}, all[8] = {0, 0, 0, 0, 0, 0x10, 0, 0x05};
	assert_int_equal(bt_wire_features(none), 0);
	assert_int_equal(bt_wire_features(bt_wire_reserved_ext), BT_WIRE_FEAT_EXT);
	assert_memory_equal(bt_wire_reserved_ext, "\0\0\0\0\0\x10\0\0", 8);
	assert_memory_equal(bt_wire_reserved_fast, "\0\0\0\0\0\x10\0\x04", 8);
	assert_int_equal(bt_wire_features(bt_wire_reserved_fast),
			 BT_WIRE_FEAT_EXT | BT_WIRE_FEAT_FAST);
	assert_int_equal(bt_wire_features(all),
			 BT_WIRE_FEAT_EXT | BT_WIRE_FEAT_FAST | BT_WIRE_FEAT_DHT);
	const uint8_t fast[8] = {0, 0, 0, 0, 0, 0, 0, 0x04}, dht[8] = {0, 0, 0, 0, 0, 0, 0, 0x01};
	assert_int_equal(bt_wire_features(fast), BT_WIRE_FEAT_FAST);
	assert_int_equal(bt_wire_features(dht), BT_WIRE_FEAT_DHT);
	assert_string_equal(bt_wire_id_name(BT_WIRE_KEEPALIVE), "keep-alive");
	assert_string_equal(bt_wire_id_name(12), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bitfield),
		cmocka_unit_test(test_handshake),
		cmocka_unit_test(test_every_message),
		cmocka_unit_test(test_lengths_checked_from_the_header),
		cmocka_unit_test(test_fast_messages_and_features),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
