#include "bt/magnet.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define HEX  "ad42ce8109f54c99613ce38f9b4d87e70f24a165"
#define B32  "VVBM5AIJ6VGJSYJ44OHZWTMH44HSJILF"
#define XT   "xt=urn:btih:" HEX
#define BTMH "1220" HEX "0123456789abcdef01234567"
#define COURSE                                                                                     \
	"magnet:?xt=urn:btih:ad42ce8109f54c99613ce38f9b4d87e70f24a165&dn=magnet1.gif&tr=http%3A%"  \
	"2F%2Fbittorrent-test-tracker.codecrafters.io%2Fannounce"

static void hash_of(const char *hex, uint8_t *out, size_t n)
{
	assert_int_equal(bt_hex_decode(out, hex, n), 0);
}

static void expect_ok(struct bt_magnet *m, const char *uri)
{
	struct bt_err err = {{0}};
	int rc = bt_magnet_parse(m, uri, &err);
	if (rc)
		fail_msg("%s: %s", uri, err.msg);
}

/* Parses uri, expects rc and a message containing want, and that m was left zeroed. */
static void expect_err(const char *uri, int want_rc, const char *want)
{
	struct bt_magnet m;
	memset(&m, 0xa5, sizeof m);
	struct bt_err err = {{0}};
	int rc = bt_magnet_parse(&m, uri, &err);
	if (rc != want_rc || !strstr(err.msg, want))
		fail_msg("%.80s: rc %d (want %d), '%s' (want '%s')", uri, rc, want_rc, err.msg,
			 want);
	assert_null(strchr(err.msg, '\n'));
	struct bt_magnet zero;
	memset(&zero, 0, sizeof zero);
	assert_memory_equal(&m, &zero, sizeof m);
	bt_magnet_deinit(&m);
}

static void test_course_example(void **state)
{
	(void)state;
	struct bt_magnet m;
	expect_ok(&m, COURSE);
	uint8_t want[BT_HASH_LEN];
	hash_of(HEX, want, BT_HASH_LEN);
	assert_memory_equal(m.info_hash, want, BT_HASH_LEN);
	assert_false(m.has_v2);
	assert_string_equal(m.name, "magnet1.gif");
	assert_int_equal(m.tier_count, 1);
	assert_int_equal(m.tiers[0].count, 1);
	assert_string_equal(m.tiers[0].urls[0],
			    "http://bittorrent-test-tracker.codecrafters.io/announce");
	assert_int_equal(m.web_seed_count, 0);
	assert_int_equal(m.peer_count, 0);
	assert_int_equal(m.select_count, 0);
	bt_magnet_deinit(&m);
	bt_magnet_deinit(&m); /* a deinit leaves m zeroed, so a second one is harmless */
}

static void test_is(void **state)
{
	(void)state;
	assert_true(bt_magnet_is("magnet:?xt=x"));
	assert_true(bt_magnet_is("MAGNET:?"));
	assert_true(bt_magnet_is("Magnet:?dn=a"));
	assert_false(bt_magnet_is("magnet:"));
	assert_false(bt_magnet_is("magnet:xt=1"));
	assert_false(bt_magnet_is("file.torrent"));
	assert_false(bt_magnet_is(""));
	assert_false(bt_magnet_is(NULL));
	expect_err("http://example.org/a.torrent", -EINVAL, "magnet: not a magnet URI");
}

static void test_base32_hex_case(void **state)
{
	(void)state;
	static const char *const forms[] = {
		"magnet:?xt=urn:btih:" HEX,
		"magnet:?xt=urn:btih:AD42CE8109F54C99613CE38F9B4D87E70F24A165",
		"magnet:?xt=urn:btih:" B32,
		"magnet:?xt=urn:btih:vvbm5aij6vgjsyj44ohzwtmh44hsjilf",
		"MAGNET:?xt=URN:BTIH:" B32,
		"magnet:?xt=urn%3Abtih%3A" HEX,
		"magnet:?xt.1=urn:btih:" HEX,
		"magnet:?dn=x&xt=urn:sha1:whatever&xt=urn:btih:" HEX "&xt=urn:btih:" B32,
	};
	uint8_t want[BT_HASH_LEN];
	hash_of(HEX, want, BT_HASH_LEN);
	for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
		struct bt_magnet m;
		expect_ok(&m, forms[i]);
		assert_memory_equal(m.info_hash, want, BT_HASH_LEN);
		bt_magnet_deinit(&m);
	}
	/* Each base32 bit lands where it should: all-'A' is zero, all-'7' is all ones. */
	struct bt_magnet m;
	expect_ok(&m, "magnet:?xt=urn:btih:77777777777777777777777777777777");
	for (int i = 0; i < BT_HASH_LEN; i++)
		assert_int_equal(m.info_hash[i], 0xff);
	bt_magnet_deinit(&m);
	expect_ok(&m, "magnet:?xt=urn:btih:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB");
	for (int i = 0; i < BT_HASH_LEN - 1; i++)
		assert_int_equal(m.info_hash[i], 0);
	assert_int_equal(m.info_hash[BT_HASH_LEN - 1], 1);
	bt_magnet_deinit(&m);
}

static void test_trackers_in_order(void **state)
{
	(void)state;
	struct bt_magnet m;
	expect_ok(&m, "magnet:?tr=udp%3A%2F%2Ftracker.one%3A1337&" XT
		      "&tr.1=http://two/announce?a=1%26b=2&tr=udp://tracker.one:1337"
		      "&tr=https://three/a+b%2Bc&tr=wss://four/x&tr=");
	assert_int_equal(m.tier_count, 4);
	assert_string_equal(m.tiers[0].urls[0], "udp://tracker.one:1337");
	assert_string_equal(m.tiers[1].urls[0], "http://two/announce?a=1&b=2");
	assert_string_equal(m.tiers[2].urls[0], "https://three/a+b+c"); /* '+' is kept */
	assert_string_equal(m.tiers[3].urls[0], "wss://four/x");
	for (size_t i = 0; i < m.tier_count; i++)
		assert_int_equal(m.tiers[i].count, 1);
	bt_magnet_deinit(&m);
}

static void test_web_seeds(void **state)
{
	(void)state;
	struct bt_magnet m;
	expect_ok(&m, "magnet:?" XT "&ws=http%3A%2F%2F127.0.0.1%3A8080%2Ffiles%2F&ws.2=https://"
		      "mirror/x&ws=http://127.0.0.1:8080/files/&ws=");
	assert_int_equal(m.web_seed_count, 2);
	assert_string_equal(m.web_seeds[0], "http://127.0.0.1:8080/files/");
	assert_string_equal(m.web_seeds[1], "https://mirror/x");
	assert_int_equal(m.tier_count, 0);
	bt_magnet_deinit(&m);
	expect_err("magnet:?" XT "&ws=/relative/path", -EINVAL, "magnet: ws #1: not a URL");
	expect_err("magnet:?" XT "&ws=http://a/b&ws=http://x/%0Ay", -EINVAL,
		   "magnet: ws #2: a control character");
}

static void test_peers(void **state)
{
	(void)state;
	struct bt_magnet m;
	expect_ok(&m, "magnet:?" XT "&x.pe=127.0.0.1:6881&x.pe=[::1]:51413"
		      "&x.pe=%5B2001%3Adb8%3A%3A1%5D%3A65535&x.pe=127.0.0.1:6881"
		      "&x.pe=[::ffff:10.0.0.1]:1&x.pe=peer.example.org:6881&x.pe=");
	assert_int_equal(m.peer_count, 4);
	assert_int_equal(m.peers_skipped, 1);
	char s[BT_PEER_ADDR_STRLEN];
	bt_peer_addr_format(&m.peers[0], s);
	assert_string_equal(s, "127.0.0.1:6881");
	assert_int_equal(m.peers[0].family, 4);
	bt_peer_addr_format(&m.peers[1], s);
	assert_string_equal(s, "[::1]:51413");
	assert_int_equal(m.peers[1].family, 6);
	bt_peer_addr_format(&m.peers[2], s);
	assert_string_equal(s, "[2001:db8::1]:65535");
	bt_peer_addr_format(&m.peers[3], s); /* an IPv4-mapped address is IPv4, as elsewhere */
	assert_string_equal(s, "10.0.0.1:1");
	bt_magnet_deinit(&m);

	expect_err("magnet:?" XT "&x.pe=1.2.3.4:0", -EINVAL, "magnet: x.pe #1: port must be 1");
	expect_err("magnet:?" XT "&x.pe=1.2.3.4:5&x.pe=1.2.3.4:65536", -EINVAL,
		   "magnet: x.pe #2: port must be 1 to 65535");
	expect_err("magnet:?" XT "&x.pe=1.2.3.4:+5", -EINVAL, "x.pe #1: port");
	expect_err("magnet:?" XT "&x.pe=1.2.3.4:", -EINVAL, "x.pe #1: port");
	expect_err("magnet:?" XT "&x.pe=1.2.3.4", -EINVAL, "x.pe #1: not IPv4:PORT");
	expect_err("magnet:?" XT "&x.pe=::1:5", -EINVAL, "x.pe #1: not IPv4:PORT");
	expect_err("magnet:?" XT "&x.pe=[1.2.3.4]:5", -EINVAL, "x.pe #1: not IPv4:PORT");
	expect_err("magnet:?" XT "&x.pe=[::1]5", -EINVAL, "x.pe #1: not IPv4:PORT");
	expect_err("magnet:?" XT "&x.pe=[::1:5", -EINVAL, "x.pe #1: not IPv4:PORT");
	expect_err("magnet:?" XT "&x.pe=:5", -EINVAL, "x.pe #1: not IPv4:PORT");
	expect_err("magnet:?" XT "&x.pe=1.2.3.4.5:5", -EINVAL, "x.pe #1: not IPv4:PORT");
	expect_err("magnet:?" XT "&x.pe=a_b:5", -EINVAL, "x.pe #1: not IPv4:PORT");
}

static void test_select(void **state)
{
	(void)state;
	struct bt_magnet m;
	expect_ok(&m, "magnet:?" XT "&so=0,2,4-6&so=4294967295&so=");
	assert_int_equal(m.select_count, 4);
	static const struct bt_magnet_range want[] = {
		{0, 0}, {2, 2}, {4, 6}, {4294967295u, 4294967295u}};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(m.select[i].first, want[i].first);
		assert_int_equal(m.select[i].last, want[i].last);
	}
	bt_magnet_deinit(&m);

	expect_err("magnet:?" XT "&so=5-3", -EINVAL, "magnet: so: range 5-3 is backwards");
	expect_err("magnet:?" XT "&so=1,,2", -EINVAL, "magnet: so: expected file indexes");
	expect_err("magnet:?" XT "&so=1,", -EINVAL, "so: expected");
	expect_err("magnet:?" XT "&so=1-", -EINVAL, "so: expected");
	expect_err("magnet:?" XT "&so=-1", -EINVAL, "so: expected");
	expect_err("magnet:?" XT "&so=x", -EINVAL, "so: expected");
	expect_err("magnet:?" XT "&so=1%202", -EINVAL, "so: expected");
	expect_err("magnet:?" XT "&so=4294967296", -EINVAL, "so: expected");
	expect_err("magnet:?" XT "&so=99999999999999999999", -EINVAL, "so: expected");

	/* 1000 ranges are taken, the 1001st (over two so= parameters) is refused. */
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_adds(&b, "magnet:?" XT "&so=0");
	for (int i = 1; i < 1000; i++)
		bt_buf_printf(&b, ",%d", i);
	expect_ok(&m, (const char *)b.data);
	assert_int_equal(m.select_count, 1000);
	assert_int_equal(m.select[999].first, 999);
	bt_magnet_deinit(&m);
	bt_buf_adds(&b, "&so=5");
	expect_err((const char *)b.data, -EINVAL, "magnet: so: more than 1000 ranges");
	bt_buf_deinit(&b);
}

static void test_hybrid_and_v2(void **state)
{
	(void)state;
	struct bt_magnet m;
	uint8_t v1[BT_HASH_LEN], v2[BT_SHA256_LEN];
	hash_of(HEX, v1, BT_HASH_LEN);
	hash_of(BTMH + 4, v2, BT_SHA256_LEN);
	expect_ok(&m, "magnet:?xt=urn:btmh:" BTMH "&" XT "&dn=hybrid");
	assert_memory_equal(m.info_hash, v1, BT_HASH_LEN);
	assert_true(m.has_v2);
	assert_memory_equal(m.info_hash_v2, v2, BT_SHA256_LEN);
	bt_magnet_deinit(&m);
	expect_ok(&m, "magnet:?xt.1=urn:btih:" B32 "&xt.2=urn:btmh:" BTMH);
	assert_memory_equal(m.info_hash, v1, BT_HASH_LEN);
	assert_true(m.has_v2);
	bt_magnet_deinit(&m);

	expect_err("magnet:?xt=urn:btmh:" BTMH "&dn=v2&tr=udp://t:1", -ENOTSUP,
		   "magnet: v2-only (urn:btmh) magnets are not supported");
	/* A multihash of another function (0x11, SHA-1) or length is refused, not guessed at. */
	expect_err("magnet:?" XT "&xt=urn:btmh:1114" HEX, -EINVAL,
		   "magnet: xt: btmh is not a sha2-256 multihash");
	expect_err("magnet:?" XT "&xt=urn:btmh:1220" HEX, -EINVAL, "btmh is not a sha2-256");
	expect_err("magnet:?" XT "&xt=urn:btmh:", -EINVAL, "btmh is not a sha2-256");
	expect_err("magnet:?xt=urn:btih:" HEX "&xt.2=urn:btih:" B32 "&xt.3=urn:btih:"
		   "0000000000000000000000000000000000000000",
		   -EINVAL, "magnet: xt.3: a second, different btih info hash");
}

static void test_hostile(void **state)
{
	(void)state;
	expect_err("magnet:?dn=x&tr=udp://t:1", -EINVAL, "magnet: no xt=urn:btih: parameter");
	expect_err("magnet:?", -EINVAL, "no xt=urn:btih:");
	expect_err("magnet:?xt=", -EINVAL, "no xt=urn:btih:");
	expect_err("magnet:?xt=urn:sha1:abc", -EINVAL, "no xt=urn:btih:");
	expect_err("magnet:?xt=urn:btih:ad42ce8109f54c99613ce38f9b4d87e70f24a16g", -EINVAL,
		   "magnet: xt: bad hex digit 'g' at character 40 of the info hash");
	expect_err("magnet:?xt=urn:btih:ad42ce8109f54c99613ce38f9b4d87e70f24a1%0A5", -EINVAL,
		   "bad hex digit byte 0x0a at character 39");
	expect_err("magnet:?xt=urn:btih:VVBM5AIJ6VGJSYJ44OHZWTMH44HSJIL1", -EINVAL,
		   "magnet: xt: bad base32 character '1' at character 32 of the info hash");
	expect_err("magnet:?xt=urn:btih:VVBM5AIJ6VGJSYJ44OHZWTMH44HSJIL=", -EINVAL,
		   "bad base32 character '=' at character 32");
	expect_err("magnet:?xt=urn:btih:ad42ce8109f54c99613ce38f9b4d87e70f24a16", -EINVAL,
		   "magnet: xt: info hash has 39 hex digits");
	expect_err("magnet:?xt=urn:btih:ad42ce8109f54c99613ce38f9b4d87e70f24a1655", -EINVAL,
		   "magnet: xt: info hash has 41 hex digits");
	expect_err("magnet:?xt=urn:btih:" B32 "Q", -EINVAL,
		   "magnet: xt: info hash has 33 characters");
	expect_err("magnet:?xt.7=urn:btih:", -EINVAL, "magnet: xt.7: info hash has 0 hex digits");
	/* The offset is counted in the URI: "magnet:?" 8 + XT 52 + "&tr=abc" 7 = 67. */
	expect_err("magnet:?" XT "&tr=abc%4", -EINVAL,
		   "magnet: tr #1: bad percent-escape at offset 67");
	expect_err("magnet:?" XT "&tr=udp://a:1&tr=udp://b:1&tr=udp://c%4:1", -EINVAL,
		   "magnet: tr #3: bad percent-escape");
	expect_err("magnet:?" XT "&dn=%zz", -EINVAL, "magnet: dn: bad percent-escape at offset 64");
	expect_err("magnet:?" XT "&dn=%", -EINVAL, "magnet: dn: bad percent-escape");
	expect_err("magnet:?" XT "&dn=a%00b", -EINVAL, "magnet: dn: %00 (a NUL byte) at offset 65");
	expect_err("magnet:?" XT "&tr=udp://a%00:1", -EINVAL, "magnet: tr #1: %00");
	expect_err("magnet:?" XT "&ws=http://a/%00", -EINVAL, "magnet: ws #1: %00");
	expect_err("magnet:?xt=urn:btih:%G" HEX, -EINVAL, "magnet: xt: bad percent-escape");
	expect_err("magnet:?" XT "&tr=announce.php", -EINVAL,
		   "magnet: tr #1: not a URL with a scheme");
	expect_err("magnet:?" XT "&tr=http://", -EINVAL, "tr #1: not a URL with a scheme");
	expect_err("magnet:?" XT "&tr=://host/", -EINVAL, "tr #1: not a URL with a scheme");
	expect_err("magnet:?" XT "&tr=1http://host/", -EINVAL, "tr #1: not a URL");
	expect_err("magnet:?" XT "&tr=http://a/%20b", -EINVAL,
		   "tr #1: a control character or space");
	expect_err("magnet:?" XT "&xt", -EINVAL, "magnet: xt: no '=' and no value");
	expect_err("magnet:?" XT "&tr", -EINVAL, "magnet: tr #1: no '=' and no value");
	/* An error after good parameters still leaves nothing behind. */
	expect_err("magnet:?" XT "&dn=a&tr=udp://t:1&ws=http://w/&x.pe=1.2.3.4:5&so=1&so=x",
		   -EINVAL, "magnet: so: expected");

	/* Empty parameters, unknown ones (with or without '='), and empty values are let be. */
	struct bt_magnet m;
	expect_ok(&m, "magnet:?&&" XT "&&&dn=&dn=second&tr=&ws=&x.pe=&so=&foo&=bar&key=%zz"
		      "&xt.x=1&tr.=x&XT=urn:btih:0&x.pe.1=zz&");
	assert_string_equal(m.name, "second");
	assert_int_equal(m.tier_count + m.web_seed_count + m.peer_count + m.select_count, 0);
	bt_magnet_deinit(&m);
	/* The first dn wins; '+' is not a space. */
	expect_ok(&m, "magnet:?dn=a+b%2Bc%20d&" XT "&dn=other");
	assert_string_equal(m.name, "a+b+c d");
	bt_magnet_deinit(&m);
}

static void test_bounds(void **state)
{
	(void)state;
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_adds(&b, "magnet:?" XT);
	for (int i = 0; i < 10000; i++) /* empty ones count too: 10,000 fit in the length cap */
		bt_buf_adds(&b, i % 2 ? "&tr=" : "&tr.1=");
	expect_err((const char *)b.data, -EINVAL, "magnet: tr: more than 100 trackers");
	bt_buf_deinit(&b);

	/* 100 are fine; 200 copies of one tracker still count as 200 parameters. */
	struct bt_magnet m;
	bt_buf_init(&b);
	bt_buf_adds(&b, "magnet:?" XT);
	for (int i = 0; i < 100; i++)
		bt_buf_printf(&b, "&tr=udp://t%d:1", i);
	expect_ok(&m, (const char *)b.data);
	assert_int_equal(m.tier_count, 100);
	assert_string_equal(m.tiers[99].urls[0], "udp://t99:1");
	bt_magnet_deinit(&m);
	bt_buf_printf(&b, "&tr=udp://t0:1");
	expect_err((const char *)b.data, -EINVAL, "magnet: tr: more than 100 trackers");
	bt_buf_deinit(&b);

	bt_buf_init(&b);
	bt_buf_adds(&b, "magnet:?" XT);
	for (int i = 0; i < 101; i++)
		bt_buf_printf(&b, "&ws=http://w%d/", i);
	expect_err((const char *)b.data, -EINVAL, "magnet: ws: more than 100 web seeds");
	bt_buf_deinit(&b);

	bt_buf_init(&b);
	bt_buf_adds(&b, "magnet:?" XT);
	for (int i = 0; i < 200; i++)
		bt_buf_printf(&b, "&x.pe=127.0.%d.%d:6881", i / 256, i % 256);
	expect_ok(&m, (const char *)b.data);
	assert_int_equal(m.peer_count, 200);
	bt_magnet_deinit(&m);
	bt_buf_adds(&b, "&x.pe=127.1.0.0:1");
	expect_err((const char *)b.data, -EINVAL, "magnet: x.pe: more than 200 peers");
	bt_buf_deinit(&b);

	/* Exactly BT_MAGNET_MAX_LEN bytes are taken; one more is refused before anything else. */
	size_t max = BT_MAGNET_MAX_LEN;
	char *big = malloc(max + 2);
	assert_non_null(big);
	const char *head = "magnet:?" XT "&dn=";
	strcpy(big, head);
	memset(big + strlen(head), 'n', max - strlen(head));
	big[max] = '\0';
	expect_ok(&m, big);
	assert_int_equal(strlen(m.name), max - strlen(head));
	bt_magnet_deinit(&m);
	big[max] = 'n';
	big[max + 1] = '\0';
	expect_err(big, -EINVAL, "magnet: the URI is longer than 65536 bytes");
	free(big);
}

static void test_format_round_trip(void **state)
{
	(void)state;
	uint8_t h[BT_HASH_LEN];
	hash_of(HEX, h, BT_HASH_LEN);
	char *url = "http://bittorrent-test-tracker.codecrafters.io/announce";
	struct bt_meta_tier one = {.urls = &url, .count = 1};
	char *s = bt_magnet_format(h, "magnet1.gif", &one, 1);
	assert_string_equal(s, COURSE);
	free(s);
	s = bt_magnet_format(h, NULL, NULL, 0);
	assert_string_equal(s, "magnet:?xt=urn:btih:" HEX);
	free(s);

	/* Awkward names and URLs come back byte for byte; tiers flatten, duplicates go. */
	char *t0[] = {"udp://t:1/announce?x=1&y=2", "http://h/a+b"};
	char *t1[] = {"udp://t:1/announce?x=1&y=2", "not a url", "https://h/%41#frag"};
	struct bt_meta_tier tiers[] = {{t0, 2}, {t1, 3}};
	const char *name = "a b&c=d%e+f/\xc3\xa9\x01#?";
	s = bt_magnet_format(h, name, tiers, 2);
	struct bt_magnet m;
	expect_ok(&m, s);
	free(s);
	assert_memory_equal(m.info_hash, h, BT_HASH_LEN);
	assert_string_equal(m.name, name);
	assert_int_equal(m.tier_count, 3);
	assert_string_equal(m.tiers[0].urls[0], t0[0]);
	assert_string_equal(m.tiers[1].urls[0], t0[1]);
	assert_string_equal(m.tiers[2].urls[0], t1[2]);
	bt_magnet_deinit(&m);

	/* More trackers than a magnet may carry: the first 100 are kept, so it parses back. */
	char *many[150];
	char store[150][32];
	for (int i = 0; i < 150; i++) {
		snprintf(store[i], sizeof store[i], "udp://t%d:1", i);
		many[i] = store[i];
	}
	struct bt_meta_tier big = {many, 150};
	s = bt_magnet_format(h, "x", &big, 1);
	expect_ok(&m, s);
	free(s);
	assert_int_equal(m.tier_count, BT_MAGNET_MAX_TRACKERS);
	assert_string_equal(m.tiers[99].urls[0], "udp://t99:1");
	bt_magnet_deinit(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_course_example),
		cmocka_unit_test(test_is),
		cmocka_unit_test(test_base32_hex_case),
		cmocka_unit_test(test_trackers_in_order),
		cmocka_unit_test(test_web_seeds),
		cmocka_unit_test(test_peers),
		cmocka_unit_test(test_select),
		cmocka_unit_test(test_hybrid_and_v2),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_format_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
