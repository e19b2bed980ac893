#include "bt/tracker_proto.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static struct bt_announce_req sample_req(void)
{
	struct bt_announce_req r = {
		.port = 6881,
		.uploaded = 1,
		.downloaded = 2,
		.left = 1234567890123,
		.event = BT_TRACKER_EVENT_STARTED,
		.numwant = 50,
		.key = 0xdeadbeef,
	};
	for (int i = 0; i < 20; i++) {
		r.info_hash[i] = (uint8_t)(i * 13);
		r.peer_id[i] = (uint8_t)('A' + i);
	}
	return r;
}

#define QUERY                                                                                      \
	"info_hash=%00%0D%1A%274AN%5Bhu%82%8F%9C%A9%B6%C3%D0%DD%EA%F7"                             \
	"&peer_id=ABCDEFGHIJKLMNOPQRST&port=6881&uploaded=1&downloaded=2&left=1234567890123"       \
	"&compact=1&event=started&numwant=50&key=deadbeef"

static void expect_url(const char *announce, const char *want)
{
	struct bt_announce_req r = sample_req();
	char *url = bt_tracker_http_url(announce, &r);
	assert_string_equal(url, want);
	free(url);
}

static void test_http_url(void **state)
{
	(void)state;
	expect_url("http://t.example/announce", "http://t.example/announce?" QUERY);
	expect_url("http://t.example/a?passkey=x%20y", "http://t.example/a?passkey=x%20y&" QUERY);
	expect_url("http://t.example/a?", "http://t.example/a?" QUERY);
	expect_url("http://t.example/a?k=v&", "http://t.example/a?k=v&" QUERY);
	expect_url("https://t.example:8443/a#frag", "https://t.example:8443/a?" QUERY);

	struct bt_announce_req r = sample_req();
	r.event = BT_TRACKER_EVENT_NONE;
	r.numwant = -1;
	char *url = bt_tracker_http_url("http://t/a", &r);
	assert_null(strstr(url, "event="));
	assert_null(strstr(url, "numwant="));
	free(url);
	r.event = BT_TRACKER_EVENT_STOPPED;
	url = bt_tracker_http_url("http://t/a", &r);
	assert_non_null(strstr(url, "&event=stopped&"));
	free(url);
}

static int parse(const char *body, struct bt_announce_reply *r, struct bt_err *err)
{
	return bt_tracker_parse_http((const uint8_t *)body, strlen(body), r, err);
}

static void expect_peer(const struct bt_peer_addr *a, const char *want)
{
	char s[BT_PEER_ADDR_STRLEN];
	bt_peer_addr_format(a, s);
	assert_string_equal(s, want);
}

static void test_http_compact_reply(void **state)
{
	(void)state;
	static const char body[] =
		"d8:completei3e10:incompletei1e8:intervali1800e12:min intervali60e"
		"5:peers18:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x50"
		"\x01\x02\x03\x04\x00\x00"
		"6:peers618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
		"\x00\x00\x01\x1f\x90"
		"15:warning message4:slowe\n";
	struct bt_announce_reply r;
	struct bt_err err;
	assert_int_equal(bt_tracker_parse_http((const uint8_t *)body, sizeof body - 1, &r, &err),
			 0);
	assert_null(r.failure);
	assert_string_equal(r.warning, "slow");
	assert_int_equal(r.interval, 1800);
	assert_int_equal(r.min_interval, 60);
	assert_int_equal(r.complete, 3);
	assert_int_equal(r.incomplete, 1);
	assert_int_equal(r.peer_count, 3);
	expect_peer(&r.peers[0], "127.0.0.1:6881");
	expect_peer(&r.peers[1], "10.0.0.2:80");
	expect_peer(&r.peers[2], "[::1]:8080");
	assert_int_equal(r.bad_peers, 1); /* port 0 */
	bt_announce_reply_deinit(&r);
}

static void test_http_dict_peers_skip_bad_entries(void **state)
{
	(void)state;
	const char *body = "d8:intervali900e5:peersl"
			   "d2:ip9:127.0.0.27:peer id20:AAAAAAAAAAAAAAAAAAAA4:porti6881ee"
			   "d2:ip3:::14:porti51413ee"
			   "d2:ip11:example.com4:porti1ee"  /* names are not resolved */
			   "d2:ip9:127.0.0.34:porti0ee"	    /* port 0 */
			   "d2:ip9:127.0.0.34:porti65536ee" /* port too large */
			   "d4:porti1ee"		    /* no ip */
			   "i5e"			    /* not a dict */
			   "d2:ip9:127.0.0.44:porti1ee"
			   "ee";
	struct bt_announce_reply r;
	assert_int_equal(parse(body, &r, NULL), 0);
	assert_int_equal(r.peer_count, 3);
	expect_peer(&r.peers[0], "127.0.0.2:6881");
	expect_peer(&r.peers[1], "[::1]:51413");
	expect_peer(&r.peers[2], "127.0.0.4:1");
	assert_int_equal(r.bad_peers, 5);
	bt_announce_reply_deinit(&r);
}

static void test_http_odd_compact_length(void **state)
{
	(void)state;
	static const char body[] = "d5:peers8:\x7f\x00\x00\x01\x1a\xe1\xffxe";
	struct bt_announce_reply r;
	assert_int_equal(bt_tracker_parse_http((const uint8_t *)body, sizeof body - 1, &r, NULL),
			 0);
	assert_int_equal(r.peer_count, 1);
	assert_int_equal(r.bad_peers, 1);
	assert_int_equal(r.interval, -1);
	bt_announce_reply_deinit(&r);
}

static void test_http_failure_and_bad_bodies(void **state)
{
	(void)state;
	struct bt_announce_reply r;
	struct bt_err err;
	assert_int_equal(parse("d14:failure reason12:unregisterede", &r, &err), 0);
	assert_string_equal(r.failure, "unregistered");
	assert_int_equal(r.peer_count, 0);
	bt_announce_reply_deinit(&r);

	assert_int_equal(parse("<html>404</html>", &r, &err), -EINVAL);
	assert_string_equal(err.msg, "reply is not bencoded: unexpected '<' at offset 0");
	assert_null(r.peers);
	assert_int_equal(parse("d8:intervali1", &r, &err), -EINVAL);
	assert_string_equal(err.msg, "reply is not bencoded: unexpected end of input at offset 13");
	assert_int_equal(parse("", &r, &err), -EINVAL);
	assert_int_equal(parse("li1ee", &r, &err), -EINVAL);
	assert_string_equal(err.msg, "reply is not a bencoded dictionary");
	assert_int_equal(parse("d8:intervali1ee", &r, &err), -EINVAL);
	assert_string_equal(err.msg, "reply has neither 'failure reason' nor 'peers'");
	assert_int_equal(parse("d5:peersi1ee", &r, &err), -EINVAL);
	assert_string_equal(err.msg, "'peers' is neither a string nor a list");
}

static void test_udp_requests(void **state)
{
	(void)state;
	uint8_t c[BT_UDP_CONNECT_LEN];
	bt_udp_connect_request(c, 0x01020304);
	assert_memory_equal(c, "\x00\x00\x04\x17\x27\x10\x19\x80\x00\x00\x00\x00\x01\x02\x03\x04",
			    16);

	struct bt_announce_req req = sample_req();
	uint8_t a[BT_UDP_ANNOUNCE_LEN];
	bt_udp_announce_request(a, 0x1122334455667788ULL, 7, &req);
	assert_true(bt_load_be64(a) == 0x1122334455667788ULL);
	assert_int_equal(bt_load_be32(a + 8), 1);
	assert_int_equal(bt_load_be32(a + 12), 7);
	assert_memory_equal(a + 16, req.info_hash, 20);
	assert_memory_equal(a + 36, req.peer_id, 20);
	assert_true(bt_load_be64(a + 56) == 2);
	assert_true(bt_load_be64(a + 64) == 1234567890123ULL);
	assert_true(bt_load_be64(a + 72) == 1);
	assert_int_equal(bt_load_be32(a + 80), 2);
	assert_int_equal(bt_load_be32(a + 84), 0);
	assert_int_equal(bt_load_be32(a + 88), 0xdeadbeef);
	assert_int_equal(bt_load_be32(a + 92), 50);
	assert_int_equal(bt_load_be16(a + 96), 6881);
}

static void test_udp_replies(void **state)
{
	(void)state;
	uint64_t cid = 0;
	struct bt_announce_reply r;
	const uint8_t conn[] = {0, 0, 0, 0, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8};
	assert_int_equal(bt_udp_parse_reply(conn, 16, 9, BT_UDP_CONNECT, false, &cid, NULL),
			 BT_UDP_OK);
	assert_true(cid == 0x0102030405060708ULL);
	/* Wrong transaction id, short datagram, wrong action: all ignored. */
	assert_int_equal(bt_udp_parse_reply(conn, 16, 8, BT_UDP_CONNECT, false, &cid, NULL),
			 BT_UDP_IGNORE);
	assert_int_equal(bt_udp_parse_reply(conn, 15, 9, BT_UDP_CONNECT, false, &cid, NULL),
			 BT_UDP_IGNORE);
	assert_int_equal(bt_udp_parse_reply(conn, 7, 9, BT_UDP_CONNECT, false, &cid, NULL),
			 BT_UDP_IGNORE);
	assert_int_equal(bt_udp_parse_reply(conn, 16, 9, BT_UDP_ANNOUNCE, false, &cid, &r),
			 BT_UDP_IGNORE);

	const uint8_t ann[] = {0, 0, 0, 1,   0, 0, 0, 5,    0,	  0,   7, 8, 0, 0,    0,    2, 0,
			       0, 0, 3, 127, 0, 0, 1, 0x1a, 0xe1, 127, 0, 0, 2, 0x1a, 0xe2, 9};
	assert_int_equal(bt_udp_parse_reply(ann, sizeof ann, 5, BT_UDP_ANNOUNCE, false, NULL, &r),
			 BT_UDP_OK);
	assert_int_equal(r.interval, 0x708);
	assert_int_equal(r.incomplete, 2);
	assert_int_equal(r.complete, 3);
	assert_int_equal(r.peer_count, 2);
	expect_peer(&r.peers[1], "127.0.0.2:6882");
	assert_int_equal(r.bad_peers, 1);
	bt_announce_reply_deinit(&r);
	assert_int_equal(bt_udp_parse_reply(ann, 19, 5, BT_UDP_ANNOUNCE, false, NULL, &r),
			 BT_UDP_IGNORE);

	const uint8_t ann6[] = {0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 60, 0, 0, 0, 0, 0, 0,	  0,
				1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 1, 0x1a, 0xe1};
	assert_int_equal(bt_udp_parse_reply(ann6, sizeof ann6, 5, BT_UDP_ANNOUNCE, true, NULL, &r),
			 BT_UDP_OK);
	assert_int_equal(r.peer_count, 1);
	expect_peer(&r.peers[0], "[::1]:6881");
	bt_announce_reply_deinit(&r);

	const uint8_t error[] = {0, 0, 0, 3, 0, 0, 0, 5, 'n', 'o', 'p', 'e'};
	assert_int_equal(
		bt_udp_parse_reply(error, sizeof error, 5, BT_UDP_ANNOUNCE, false, NULL, &r),
		BT_UDP_FAILED);
	assert_string_equal(r.failure, "nope");
	bt_announce_reply_deinit(&r);
	assert_int_equal(
		bt_udp_parse_reply(error, sizeof error, 6, BT_UDP_ANNOUNCE, false, NULL, &r),
		BT_UDP_IGNORE);
}

static void test_peer_addr_equal(void **state)
{
	(void)state;
	struct bt_peer_addr a = {.family = 4, .addr = {127, 0, 0, 1}, .port = 1};
	struct bt_peer_addr b = a;
	assert_true(bt_peer_addr_equal(&a, &b));
	b.port = 2;
	assert_false(bt_peer_addr_equal(&a, &b));
	b = a;
	b.family = 6;
	assert_false(bt_peer_addr_equal(&a, &b));
}

static void test_peer_addr_sockaddr_round_trip(void **state)
{
	(void)state;
	struct bt_peer_addr v4 = {.family = 4, .addr = {127, 1, 2, 3}, .port = 6881};
	struct bt_peer_addr v6 = {.family = 6, .addr = {[15] = 1}, .port = 51413};
	struct bt_peer_addr bad = {.family = 5};
	struct sockaddr_storage ss;
	struct bt_peer_addr back;
	assert_int_equal(bt_peer_addr_to_sockaddr(&v4, &ss), sizeof(struct sockaddr_in));
	char name[64];
	bt_sockaddr_format((struct sockaddr *)&ss, name, sizeof name);
	assert_string_equal(name, "127.1.2.3:6881");
	assert_true(bt_peer_addr_from_sockaddr((struct sockaddr *)&ss, &back));
	assert_true(bt_peer_addr_equal(&back, &v4));
	assert_int_equal(bt_peer_addr_to_sockaddr(&v6, &ss), sizeof(struct sockaddr_in6));
	bt_sockaddr_format((struct sockaddr *)&ss, name, sizeof name);
	assert_string_equal(name, "[::1]:51413");
	assert_true(bt_peer_addr_from_sockaddr((struct sockaddr *)&ss, &back));
	assert_true(bt_peer_addr_equal(&back, &v6));
	assert_int_equal(bt_peer_addr_to_sockaddr(&bad, &ss), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_url),
		cmocka_unit_test(test_http_compact_reply),
		cmocka_unit_test(test_http_dict_peers_skip_bad_entries),
		cmocka_unit_test(test_http_odd_compact_length),
		cmocka_unit_test(test_http_failure_and_bad_bodies),
		cmocka_unit_test(test_udp_requests),
		cmocka_unit_test(test_udp_replies),
		cmocka_unit_test(test_peer_addr_equal),
		cmocka_unit_test(test_peer_addr_sockaddr_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
