#include "bt/ext.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

static int parse_hs(struct bt_ext_handshake *h, const char *s, size_t n, struct bt_err *err)
{
	return bt_ext_handshake_parse(h, (const uint8_t *)s, n, err);
}

#define PARSE_HS(h, lit, err) parse_hs(h, lit, sizeof lit - 1, err)

static void test_handshake_full(void **state)
{
	(void)state;
	struct bt_ext_handshake h;
	struct bt_err err = {""};
	assert_int_equal(PARSE_HS(&h,
				  "d1:md11:ut_metadatai3e6:ut_pexi7e5:lt_dhi9ee"
				  "13:metadata_sizei31235e1:pi6881e4:reqqi500e"
				  "11:upload_onlyi1e1:v13:qBittorrent/4"
				  "6:yourip4:\x7f\x00\x00\x01"
				  "3:zzzli1eee",
				  &err),
			 0);
	assert_int_equal(h.ut_metadata, 3);
	assert_int_equal(h.ut_pex, 7);
	assert_int_equal(h.metadata_size, 31235);
	assert_int_equal(h.port, 6881);
	assert_int_equal(h.reqq, 500);
	assert_true(h.upload_only);
	assert_string_equal(h.version, "qBittorrent/4");
	assert_int_equal(h.yourip.family, 4);
	assert_memory_equal(h.yourip.addr, "\x7f\x00\x00\x01", 4);
}

static void test_handshake_ipv6_and_disabled(void **state)
{
	(void)state;
	struct bt_ext_handshake h;
	/* ut_metadata 0 means the peer turned it off (BEP 10). */
	assert_int_equal(PARSE_HS(&h,
				  "d1:md11:ut_metadatai0ee6:yourip16:"
				  "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
				  "e",
				  NULL),
			 0);
	assert_int_equal(h.ut_metadata, 0);
	assert_int_equal(h.yourip.family, 6);
	assert_int_equal(h.yourip.addr[0], 0x20);
	assert_int_equal(h.yourip.addr[15], 1);
	assert_false(h.upload_only);
	assert_string_equal(h.version, "");
}

/* Wrong types and values out of range read as absent, as libtorrent treats them. */
static void test_handshake_wrong_types_ignored(void **state)
{
	(void)state;
	struct bt_ext_handshake h;
	assert_int_equal(PARSE_HS(&h,
				  "d1:md11:ut_metadatai256e6:ut_pex2:xxe"
				  "13:metadata_sizei-1e1:pi70000e4:reqq3:abc"
				  "11:upload_only1:x1:vi5e6:yourip3:abce",
				  NULL),
			 0);
	assert_int_equal(h.ut_metadata, 0);
	assert_int_equal(h.ut_pex, 0);
	assert_int_equal(h.metadata_size, 0);
	assert_int_equal(h.port, 0);
	assert_int_equal(h.reqq, 0);
	assert_false(h.upload_only);
	assert_string_equal(h.version, "");
	assert_int_equal(h.yourip.family, 0);

	/* m not a dict; metadata_size 2^40 (absurd); negative m entry. */
	assert_int_equal(PARSE_HS(&h, "d1:mli1ee13:metadata_sizei1099511627776ee", NULL), 0);
	assert_int_equal(h.metadata_size, 0);
	assert_int_equal(PARSE_HS(&h, "d1:md11:ut_metadatai-1eee", NULL), 0);
	assert_int_equal(h.ut_metadata, 0);
	/* The largest size accepted, and one past it. */
	assert_int_equal(PARSE_HS(&h, "d13:metadata_sizei67108864ee", NULL), 0);
	assert_int_equal(h.metadata_size, BT_METADATA_MAX_SIZE);
	assert_int_equal(PARSE_HS(&h, "d13:metadata_sizei67108865ee", NULL), 0);
	assert_int_equal(h.metadata_size, 0);
}

static void test_handshake_version_sanitised(void **state)
{
	(void)state;
	struct bt_ext_handshake h;
	assert_int_equal(PARSE_HS(&h,
				  "d1:v10:a\x1b[31mb\xc2\xb5\x07"
				  "e",
				  NULL),
			 0);
	assert_string_equal(h.version, "a?[31mb???");
	/* A long version is cut to fit. */
	char s[300];
	int n = snprintf(s, sizeof s, "d1:v200:");
	memset(s + n, 'x', 200);
	memcpy(s + n + 200, "e", 2);
	assert_int_equal(parse_hs(&h, s, strlen(s), NULL), 0);
	assert_int_equal(strlen(h.version), 63);
}

static void test_handshake_hostile(void **state)
{
	(void)state;
	struct bt_ext_handshake h;
	struct bt_err err = {""};
	/* 1 MiB: refused by its size before it is parsed. */
	size_t big = 1 << 20;
	char *p = malloc(big);
	memset(p, '0', big);
	memcpy(p, "d1:v1048560:", 12);
	p[big - 1] = 'e';
	assert_int_equal(parse_hs(&h, p, big, &err), -EMSGSIZE);
	assert_non_null(strstr(err.msg, "1048576 bytes"));
	free(p);

	/* Nested deeper than the limit. */
	size_t depth = 5000;
	p = malloc(2 * depth + 8);
	p[0] = 'd';
	memcpy(p + 1, "1:x", 3);
	size_t k = 4;
	for (size_t i = 0; i < depth; i++)
		p[k++] = 'l';
	for (size_t i = 0; i < depth; i++)
		p[k++] = 'e';
	p[k++] = 'e';
	err.msg[0] = '\0';
	assert_int_equal(parse_hs(&h, p, k, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "extension handshake"));
	free(p);

	assert_int_equal(PARSE_HS(&h, "li1ee", &err), -EINVAL);
	assert_string_equal(err.msg, "extension handshake: not a dictionary");
	assert_int_equal(PARSE_HS(&h, "d1:mde", &err), -EINVAL); /* truncated */
	assert_non_null(strstr(err.msg, "truncated"));
	assert_int_equal(PARSE_HS(&h, "d1:mdeeX", &err), -EINVAL); /* trailing byte */
	assert_int_equal(PARSE_HS(&h, "", &err), -EINVAL);
	assert_int_equal(PARSE_HS(&h, "d1:md1:xi1e1:xi2eee", &err), -EINVAL); /* duplicate key */
}

static void test_handshake_encode(void **state)
{
	(void)state;
	struct bt_buf b;
	bt_buf_init(&b);
	bt_ext_handshake_encode(&b, &(struct bt_ext_handshake_out){0});
	assert_string_equal((char *)b.data, "d1:mdee");

	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(1)};
	inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
	b.len = 0;
	bt_ext_handshake_encode(&b, &(struct bt_ext_handshake_out){
					    .ut_metadata = true,
					    .metadata_size = 4321,
					    .port = 6881,
					    .reqq = 2048,
					    .version = "torrent 0.1",
					    .yourip = (struct sockaddr *)&sin,
					    .upload_only = true,
				    });
	const char want[] = "d1:md11:ut_metadatai1ee13:metadata_sizei4321e1:pi6881e4:reqqi2048e"
			    "11:upload_onlyi1e1:v11:torrent 0.16:yourip4:\x0a\x01\x02\x03"
			    "e";
	assert_int_equal(b.len, sizeof want - 1);
	assert_memory_equal(b.data, want, sizeof want - 1);

	/* What we encode, we parse back. */
	struct bt_ext_handshake h;
	assert_int_equal(bt_ext_handshake_parse(&h, b.data, b.len, NULL), 0);
	assert_int_equal(h.ut_metadata, BT_EXT_ID_UT_METADATA);
	assert_int_equal(h.ut_pex, 0); /* PEX is not advertised yet */
	assert_int_equal(h.metadata_size, 4321);
	assert_int_equal(h.reqq, 2048);
	assert_int_equal(h.yourip.family, 4);

	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "::1", &sin6.sin6_addr);
	b.len = 0;
	bt_ext_handshake_encode(&b,
				&(struct bt_ext_handshake_out){.yourip = (struct sockaddr *)&sin6});
	assert_int_equal(bt_ext_handshake_parse(&h, b.data, b.len, NULL), 0);
	assert_int_equal(h.yourip.family, 6);
	assert_int_equal(h.yourip.addr[15], 1);
	bt_buf_deinit(&b);
}

static int parse_md(struct bt_ext_md_msg *m, const char *s, size_t n, struct bt_err *err)
{
	return bt_ext_md_parse(m, (const uint8_t *)s, n, err);
}

#define PARSE_MD(m, lit, err) parse_md(m, lit, sizeof lit - 1, err)

static void test_md_parse(void **state)
{
	(void)state;
	struct bt_ext_md_msg m;
	struct bt_err err = {""};
	assert_int_equal(PARSE_MD(&m, "d8:msg_typei0e5:piecei7ee", &err), 0);
	assert_int_equal(m.type, BT_EXT_MD_REQUEST);
	assert_int_equal(m.piece, 7);
	assert_null(m.data);

	assert_int_equal(PARSE_MD(&m, "d8:msg_typei2e5:piecei1ee", &err), 0);
	assert_int_equal(m.type, BT_EXT_MD_REJECT);

	static const char data[] = "d8:msg_typei1e5:piecei0e10:total_sizei5eehello";
	assert_int_equal(parse_md(&m, data, sizeof data - 1, &err), 0);
	assert_int_equal(m.type, BT_EXT_MD_DATA);
	assert_int_equal(m.total_size, 5);
	assert_int_equal(m.data_len, 5);
	assert_ptr_equal(m.data, (const uint8_t *)data + sizeof data - 6);
	assert_memory_equal(m.data, "hello", 5);
}

static void expect_md_bad(const char *s, size_t n, const char *part)
{
	struct bt_ext_md_msg m;
	struct bt_err err = {""};
	int rc = parse_md(&m, s, n, &err);
	if (rc != -EINVAL || !strstr(err.msg, part))
		fail_msg("%.*s: got %d '%s', want '...%s...'", (int)n, s, rc, err.msg, part);
}

#define MD_BAD(lit, part) expect_md_bad(lit, sizeof lit - 1, part)

static void test_md_hostile(void **state)
{
	(void)state;
	MD_BAD("d8:msg_typei3e5:piecei0ee", "msg_type");
	MD_BAD("d5:piecei0ee", "msg_type");
	MD_BAD("d8:msg_typei0e5:piecei-1ee", "piece");
	MD_BAD("d8:msg_typei0e5:piecei4096ee", "piece"); /* past 64 MiB */
	MD_BAD("d8:msg_typei0e5:piece1:0e", "piece");
	MD_BAD("d8:msg_typei1e5:piecei0eexx", "total_size");
	MD_BAD("d8:msg_typei1e5:piecei0e10:total_sizei0eexx", "total_size");
	MD_BAD("d8:msg_typei1e5:piecei0e10:total_sizei1099511627776eexx", "total_size");
	MD_BAD("d8:msg_typei1e5:piecei0e10:total_sizei5ee", "data block of 0 bytes");
	MD_BAD("d8:msg_typei0e5:piecei0eeXX", "2 bytes after a request");
	MD_BAD("d8:msg_typei2e5:piecei0eeX", "after a reject");
	MD_BAD("li0ee", "not a dictionary");
	MD_BAD("d8:msg_typei0e", "truncated");
	MD_BAD("", "ut_metadata");

	/* A block longer than 16 KiB. */
	struct bt_buf b;
	bt_buf_init(&b);
	uint8_t *blk = calloc(1, BT_METADATA_BLOCK + 1);
	bt_ext_md_encode(&b, BT_EXT_MD_DATA, 0, 100000, blk, BT_METADATA_BLOCK + 1);
	expect_md_bad((char *)b.data, b.len, "data block of 16385 bytes");
	free(blk);
	bt_buf_deinit(&b);
}

static void test_md_encode(void **state)
{
	(void)state;
	struct bt_buf b;
	bt_buf_init(&b);
	bt_ext_md_encode(&b, BT_EXT_MD_REQUEST, 3, 0, NULL, 0);
	assert_string_equal((char *)b.data, "d8:msg_typei0e5:piecei3ee");
	b.len = 0;
	bt_ext_md_encode(&b, BT_EXT_MD_REJECT, 3, 99, NULL, 0);
	assert_string_equal((char *)b.data, "d8:msg_typei2e5:piecei3ee");
	b.len = 0;
	bt_ext_md_encode(&b, BT_EXT_MD_DATA, 2, 32772, (const uint8_t *)"abcd", 4);
	assert_string_equal((char *)b.data, "d8:msg_typei1e5:piecei2e10:total_sizei32772eeabcd");
	struct bt_ext_md_msg m;
	assert_int_equal(bt_ext_md_parse(&m, b.data, b.len, NULL), 0);
	assert_int_equal(m.piece, 2);
	assert_int_equal(m.total_size, 32772);
	assert_int_equal(m.data_len, 4);
	bt_buf_deinit(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_full),
		cmocka_unit_test(test_handshake_ipv6_and_disabled),
		cmocka_unit_test(test_handshake_wrong_types_ignored),
		cmocka_unit_test(test_handshake_version_sanitised),
		cmocka_unit_test(test_handshake_hostile),
		cmocka_unit_test(test_handshake_encode),
		cmocka_unit_test(test_md_parse),
		cmocka_unit_test(test_md_hostile),
		cmocka_unit_test(test_md_encode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
