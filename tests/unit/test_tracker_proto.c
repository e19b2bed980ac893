#include "bt/tracker_proto.h"

#include <arpa/inet.h>
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

/* BEP 7: ipv6= carries our global address, percent-encoded, and only when there is one. */
static void test_http_url_ipv6(void **state)
{
	(void)state;
	struct bt_announce_req r = sample_req();
	char *url = bt_tracker_http_url("http://t/a", &r);
	assert_null(strstr(url, "ipv6="));
	free(url);
	r.has_ipv6 = true;
	assert_int_equal(inet_pton(AF_INET6, "2001:470::1:2", r.ipv6), 1);
	url = bt_tracker_http_url("http://t/a", &r);
	assert_non_null(strstr(url, "&key=deadbeef&ipv6=2001%3A470%3A%3A1%3A2"));
	assert_null(strchr(strstr(url, "ipv6="), '&'));
	free(url);
}

static bool global(const char *ip)
{
	uint8_t a[16];
	assert_int_equal(inet_pton(AF_INET6, ip, a), 1);
	return bt_ipv6_is_global(a);
}

static void test_ipv6_is_global(void **state)
{
	(void)state;
	assert_true(global("2001:470::1"));
	assert_true(global("2a00:1450:4001::200e"));
	assert_true(global("3fff:ffff::1"));
	assert_false(global("::1"));
	assert_false(global("::"));
	assert_false(global("fe80::1"));
	assert_false(global("fd00::2")); /* unique-local, as this machine's eth0 has */
	assert_false(global("fc00::1"));
	assert_false(global("::ffff:8.8.8.8"));
	assert_false(global("2001:db8::1")); /* documentation */
	assert_false(global("ff02::1"));     /* multicast */
	assert_false(global("4000::1"));
}

static void expect_scrape_url(const char *announce, const char *want)
{
	uint8_t ih[BT_HASH_LEN];
	for (int i = 0; i < BT_HASH_LEN; i++)
		ih[i] = (uint8_t)('a' + i);
	char *url = bt_tracker_scrape_url(announce, ih);
	if (!want) {
		assert_null(url);
		return;
	}
	assert_non_null(url);
	assert_string_equal(url, want);
	free(url);
}

#define IH "info_hash=abcdefghijklmnopqrst"

/* BEP 48's rule, with its own examples and the edges around them. */
static void test_scrape_url(void **state)
{
	(void)state;
	expect_scrape_url("http://example.com/announce", "http://example.com/scrape?" IH);
	expect_scrape_url("http://example.com/x/announce", "http://example.com/x/scrape?" IH);
	expect_scrape_url("http://example.com/announce.php", "http://example.com/scrape.php?" IH);
	expect_scrape_url("http://example.com/announce?x2%0644",
			  "http://example.com/scrape?x2%0644&" IH);
	expect_scrape_url("http://example.com/announce?x=2/4",
			  "http://example.com/scrape?x=2/4&" IH);
	expect_scrape_url("https://t:8443/p/announce?k=v&", "https://t:8443/p/scrape?k=v&" IH);
	expect_scrape_url("http://t/announce#frag", "http://t/scrape?" IH);
	expect_scrape_url("http://t/announce?#frag", "http://t/scrape?" IH);
	expect_scrape_url("http://127.0.0.1:6969/announce", "http://127.0.0.1:6969/scrape?" IH);
	expect_scrape_url("http://[::1]:6969/announce", "http://[::1]:6969/scrape?" IH);
	/* No scrape: the last component does not start with "announce". */
	expect_scrape_url("http://example.com/a", NULL);
	expect_scrape_url("http://example.com/x%064announce", NULL);
	expect_scrape_url("http://example.com/announce/", NULL);
	expect_scrape_url("http://example.com/announc", NULL);
	expect_scrape_url("http://example.com/Announce", NULL);
	expect_scrape_url("http://example.com/a?x=/announce", NULL);
	expect_scrape_url("http://example.com", NULL);
	expect_scrape_url("http://example.com?announce", NULL);
	expect_scrape_url("announce", NULL);
}

static const uint8_t scrape_ih[BT_HASH_LEN] = {0,  1,  2,  'e', 0,  'd', 6,  7,	 8,  9,
					       10, 11, 12, 13,	14, 15,	 16, 17, 18, 19};

/* "d5:filesd20:<hash><entry>ee" with raw_hash, or the body as given when raw_hash is NULL. */
static int parse_scrape(const uint8_t *raw_hash, const char *entry, const char *body,
			struct bt_scrape_reply *r, struct bt_err *err)
{
	uint8_t buf[512];
	size_t n = 0;
	if (raw_hash) {
		memcpy(buf, "d5:filesd20:", 12);
		n = 12;
		memcpy(buf + n, raw_hash, BT_HASH_LEN);
		n += BT_HASH_LEN;
		memcpy(buf + n, entry, strlen(entry));
		n += strlen(entry);
		memcpy(buf + n, "ee", 2);
		n += 2;
	} else {
		n = strlen(body);
		memcpy(buf, body, n);
	}
	return bt_tracker_parse_scrape(buf, n, scrape_ih, r, err);
}

static void expect_scrape_error(const uint8_t *raw_hash, const char *entry, const char *body,
				const char *want)
{
	struct bt_scrape_reply r;
	struct bt_err err;
	assert_int_equal(parse_scrape(raw_hash, entry, body, &r, &err), -EINVAL);
	if (!strstr(err.msg, want))
		fail_msg("error '%s' does not say '%s'", err.msg, want);
	/* Nothing is left half-filled or allocated on failure. */
	assert_null(r.failure);
	assert_true(r.complete == -1 && r.incomplete == -1 && r.downloaded == -1);
}

static void test_scrape_reply(void **state)
{
	(void)state;
	struct bt_scrape_reply r;
	struct bt_err err;
	assert_int_equal(parse_scrape(scrape_ih,
				      "d8:completei5e10:downloadedi50e10:incompletei10ee", NULL, &r,
				      &err),
			 0);
	assert_null(r.failure);
	assert_true(r.complete == 5 && r.incomplete == 10 && r.downloaded == 50);
	bt_scrape_reply_deinit(&r);

	/* Other torrents in the reply, and extra keys (BEP 48's "name"), are ignored. */
	uint8_t other[BT_HASH_LEN];
	memcpy(other, scrape_ih, BT_HASH_LEN);
	other[19] ^= 1;
	uint8_t body[300];
	size_t n = 0;
	memcpy(body, "d5:filesd20:", 12);
	n = 12;
	memcpy(body + n, other, BT_HASH_LEN);
	n += BT_HASH_LEN;
	const char *e1 = "d8:completei1e10:downloadedi1e10:incompletei1ee20:";
	memcpy(body + n, e1, strlen(e1));
	n += strlen(e1);
	memcpy(body + n, scrape_ih, BT_HASH_LEN);
	n += BT_HASH_LEN;
	const char *e2 = "d8:completei0e10:downloadedi0e10:incompletei7e4:name1:xeee\n";
	memcpy(body + n, e2, strlen(e2));
	n += strlen(e2);
	assert_int_equal(bt_tracker_parse_scrape(body, n, scrape_ih, &r, &err), 0);
	assert_true(r.complete == 0 && r.incomplete == 7 && r.downloaded == 0);
	bt_scrape_reply_deinit(&r);

	/* A tracker's refusal is a reply, not a parse error. */
	assert_int_equal(parse_scrape(NULL, NULL, "d14:failure reason6:nope!!e", &r, &err), 0);
	assert_string_equal(r.failure, "nope!!");
	bt_scrape_reply_deinit(&r);
	assert_null(r.failure);
}

/* Hostile and broken scrape replies: each refused with a reason, nothing leaked. */
static void test_scrape_reply_hostile(void **state)
{
	(void)state;
	expect_scrape_error(NULL, NULL, "", "not bencoded");
	expect_scrape_error(NULL, NULL, "<html>", "not bencoded");
	expect_scrape_error(NULL, NULL, "d5:files", "not bencoded");
	expect_scrape_error(NULL, NULL, "i42e", "not a bencoded dictionary");
	expect_scrape_error(NULL, NULL, "le", "not a bencoded dictionary");
	expect_scrape_error(NULL, NULL, "de", "no 'files'");
	expect_scrape_error(NULL, NULL, "d5:fileslee", "no 'files'");
	expect_scrape_error(NULL, NULL, "d5:files3:abce", "no 'files'");
	expect_scrape_error(NULL, NULL, "d5:filesdee", "does not list this torrent");
	/* Our hash as a prefix of a longer key, or cut short, is not our torrent. */
	expect_scrape_error(NULL, NULL, "d5:filesd3:abcd8:completei1eeee",
			    "does not list this torrent");
	uint8_t other[BT_HASH_LEN];
	memcpy(other, scrape_ih, BT_HASH_LEN);
	other[0] = 0xff;
	expect_scrape_error(other, "d8:completei1e10:downloadedi1e10:incompletei1ee", NULL,
			    "does not list this torrent");
	expect_scrape_error(scrape_ih, "i5e", NULL, "not a dictionary");
	expect_scrape_error(scrape_ih, "d10:downloadedi1e10:incompletei1ee", NULL, "'complete'");
	expect_scrape_error(scrape_ih, "d8:completei1e10:incompletei1ee", NULL, "'downloaded'");
	expect_scrape_error(scrape_ih, "d8:completei-1e10:downloadedi1e10:incompletei1ee", NULL,
			    "'complete' is not a non-negative integer");
	expect_scrape_error(scrape_ih, "d8:complete1:510:downloadedi1e10:incompletei1ee", NULL,
			    "'complete' is not a non-negative integer");
	expect_scrape_error(scrape_ih,
			    "d8:completei99999999999999999999e10:downloadedi1e10:incompletei1ee",
			    NULL, "'complete' is not a non-negative integer");
	/* Deep nesting is bounded by the parser's limits, not the stack. */
	char deep[200];
	memset(deep, 'l', sizeof deep - 1);
	deep[sizeof deep - 1] = '\0';
	expect_scrape_error(NULL, NULL, deep, "not bencoded");
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

static void test_udp_scrape(void **state)
{
	(void)state;
	uint8_t pkt[BT_UDP_SCRAPE_LEN];
	bt_udp_scrape_request(pkt, 0x0102030405060708ULL, 0xa1b2c3d4, scrape_ih);
	static const uint8_t head[16] = {1, 2, 3, 4, 5,	   6,	 7,    8,
					 0, 0, 0, 2, 0xa1, 0xb2, 0xc3, 0xd4};
	assert_memory_equal(pkt, head, 16);
	assert_memory_equal(pkt + 16, scrape_ih, BT_HASH_LEN);

	/* Seeders, completed, leechers, in that order. */
	uint8_t reply[20] = {0, 0, 0, 2, 0xa1, 0xb2, 0xc3, 0xd4, 0, 0,
			     0, 3, 0, 0, 1,    0,    0,	   0,	 0, 9};
	struct bt_scrape_reply r;
	assert_int_equal(bt_udp_parse_scrape(reply, sizeof reply, 0xa1b2c3d4, &r), BT_UDP_OK);
	assert_true(r.complete == 3 && r.downloaded == 256 && r.incomplete == 9);
	assert_null(r.failure);
	/* Short, another transaction, another action: not the answer. */
	assert_int_equal(bt_udp_parse_scrape(reply, 19, 0xa1b2c3d4, &r), BT_UDP_IGNORE);
	assert_int_equal(bt_udp_parse_scrape(reply, 4, 0xa1b2c3d4, &r), BT_UDP_IGNORE);
	assert_int_equal(bt_udp_parse_scrape(reply, sizeof reply, 0xa1b2c3d5, &r), BT_UDP_IGNORE);
	reply[3] = 1;
	assert_int_equal(bt_udp_parse_scrape(reply, sizeof reply, 0xa1b2c3d4, &r), BT_UDP_IGNORE);
	/* An error action carries the tracker's message. */
	uint8_t err[12] = {0, 0, 0, 3, 0xa1, 0xb2, 0xc3, 0xd4, 'n', 'o', 'p', 'e'};
	assert_int_equal(bt_udp_parse_scrape(err, sizeof err, 0xa1b2c3d4, &r), BT_UDP_FAILED);
	assert_string_equal(r.failure, "nope");
	bt_scrape_reply_deinit(&r);
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
		cmocka_unit_test(test_http_url_ipv6),
		cmocka_unit_test(test_ipv6_is_global),
		cmocka_unit_test(test_scrape_url),
		cmocka_unit_test(test_scrape_reply),
		cmocka_unit_test(test_scrape_reply_hostile),
		cmocka_unit_test(test_udp_scrape),
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
