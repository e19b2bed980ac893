#include "bt/metainfo.h"

#include "bt/bencode.h"

#include "bt/hash.h"
#include "bt/verify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define HASHES20 "AAAAAAAAAAAAAAAAAAAA"

static int parse(struct bt_metainfo *m, const char *s, struct bt_err *err)
{
	return bt_meta_parse(m, (const uint8_t *)s, strlen(s), err);
}

static void hex_of(const uint8_t *p, size_t n, char *out)
{
	bt_hex_encode(out, p, n);
}

/* A torrent around an info dictionary given as bencode text. */
static char *torrent_with_info(const char *info)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_printf(&b, "d8:announce20:http://t.example/ann4:info%se", info);
	return (char *)bt_buf_steal(&b, NULL);
}

static void expect_invalid(const char *info, int code, const char *msg_part)
{
	char *t = torrent_with_info(info);
	struct bt_metainfo m;
	struct bt_err err = {""};
	int rc = parse(&m, t, &err);
	if (rc != code || !strstr(err.msg, msg_part))
		fail_msg("info %s: got %d '%s', want %d '...%s...'", info, rc, err.msg, code,
			 msg_part);
	assert_null(m.name);
	assert_null(m.files);
	free(t);
}

static void test_single_file(void **state)
{
	(void)state;
	const char *t =
		"d8:announce20:http://t.example/ann7:comment2:hi10:created by4:test"
		"13:creation datei1700000000e"
		"4:infod6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces20:" HASHES20 "ee";
	struct bt_metainfo m;
	struct bt_err err = {""};
	assert_int_equal(parse(&m, t, &err), 0);
	char hex[41];
	hex_of(m.info_hash, 20, hex);
	/* SHA-1 of the info bytes, computed independently with Python's hashlib. */
	assert_string_equal(hex, "96a0c2b54d79fdf0f3a567ccae8edb15960951b0");
	assert_string_equal(m.name, "a");
	assert_int_equal(m.total_length, 1);
	assert_int_equal(m.piece_length, 16384);
	assert_int_equal(m.piece_count, 1);
	assert_memory_equal(m.piece_hashes, HASHES20, 20);
	assert_false(m.multi_file);
	assert_int_equal(m.file_count, 1);
	assert_string_equal(m.files[0].path, "a");
	assert_string_equal(bt_meta_tracker(&m), "http://t.example/ann");
	assert_int_equal(m.tier_count, 1);
	assert_string_equal(m.comment, "hi");
	assert_string_equal(m.created_by, "test");
	assert_true(m.has_creation_date);
	assert_int_equal(m.creation_date, 1700000000);
	assert_false(m.is_private);
	assert_false(m.hybrid);
	assert_int_equal(
		m.info_len,
		strlen("d6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces20:" HASHES20 "e"));
	assert_int_equal(bt_meta_piece_size(&m, 0), 1);
	bt_meta_deinit(&m);
	assert_null(m.name);
}

static void test_unsorted_keys_hash_raw_bytes(void **state)
{
	(void)state;
	const char *t =
		"d4:infod4:name1:a6:lengthi1e6:pieces20:" HASHES20 "12:piece lengthi16384eee";
	struct bt_metainfo m;
	assert_int_equal(parse(&m, t, NULL), 0);
	char hex[65];
	hex_of(m.info_hash, 20, hex);
	assert_string_equal(hex, "d5358396f0745dc4055bff7a19d949664c050c04");
	assert_null(bt_meta_tracker(&m));
	assert_int_equal(m.tier_count, 0);
	bt_meta_deinit(&m);
}

static void test_multi_file_offsets_and_pads(void **state)
{
	(void)state;
	/* 3 + 16381 (pad) + 16384 + 5 = 32773 bytes: 3 pieces of 16 KiB. */
	const char *info =
		"d5:filesl"
		"d6:lengthi3e4:pathl3:dir5:a.txtee"
		"d4:attr1:p6:lengthi16381e4:pathl4:.pad5:16381ee"
		"d6:lengthi16384e4:pathl1:bee"
		"d4:attr2:xh6:lengthi5e4:pathl1:c1:d1:eee"
		"e4:name4:root12:piece lengthi16384e6:pieces60:" HASHES20 HASHES20 HASHES20
		"7:privatei1ee";
	char *t = torrent_with_info(info);
	struct bt_metainfo m;
	struct bt_err err = {""};
	assert_int_equal(parse(&m, t, &err), 0);
	assert_true(m.multi_file);
	assert_true(m.is_private);
	assert_int_equal(m.file_count, 4);
	assert_string_equal(m.files[0].path, "dir/a.txt");
	assert_int_equal(m.files[0].offset, 0);
	assert_false(m.files[0].pad);
	assert_string_equal(m.files[1].path, ".pad/16381");
	assert_true(m.files[1].pad);
	assert_int_equal(m.files[2].offset, 16384);
	assert_false(m.files[3].pad);
	assert_string_equal(m.files[3].path, "c/d/e");
	assert_int_equal(m.files[3].offset, 32768);
	assert_int_equal(m.total_length, 32773);
	assert_int_equal(m.piece_count, 3);
	assert_int_equal(bt_meta_piece_size(&m, 1), 16384);
	assert_int_equal(bt_meta_piece_size(&m, 2), 5);
	bt_meta_deinit(&m);
	free(t);
}

static void test_trackers_and_web_seeds(void **state)
{
	(void)state;
	const char *t = "d13:announce-listll9:http://a1el9:http://b19:http://b2eleli42eel0:ee"
			"4:infod6:lengthi1e4:name1:a12:piece lengthi1e6:pieces20:" HASHES20 "e"
			"8:url-listl9:http://w10:e"
			"e";
	struct bt_metainfo m;
	struct bt_err err = {""};
	assert_int_equal(parse(&m, t, &err), 0);
	assert_null(m.announce);
	assert_string_equal(bt_meta_tracker(&m), "http://a1");
	assert_int_equal(m.tier_count, 2); /* empty and malformed tiers are skipped */
	assert_int_equal(m.tiers[1].count, 2);
	assert_string_equal(m.tiers[1].urls[1], "http://b2");
	assert_int_equal(m.web_seed_count, 1);
	assert_string_equal(m.web_seeds[0], "http://w1");
	bt_meta_deinit(&m);

	t = "d8:announce8:http://x8:url-list8:http://w4:infod6:lengthi1e4:name1:a"
	    "12:piece lengthi1e6:pieces20:" HASHES20 "ee";
	assert_int_equal(parse(&m, t, &err), 0);
	assert_int_equal(m.tier_count, 1);
	assert_string_equal(m.tiers[0].urls[0], "http://x");
	assert_int_equal(m.web_seed_count, 1);
	assert_string_equal(m.web_seeds[0], "http://w");
	bt_meta_deinit(&m);
}

/* BEP 5's `nodes`: [host, port] pairs kept as "host:port"; malformed entries skipped. */
static void test_dht_nodes(void **state)
{
	(void)state;
	const char *t = "d4:infod6:lengthi1e4:name1:a12:piece lengthi1e6:pieces20:" HASHES20 "e"
			"5:nodesll9:127.0.0.1i6881eel3:::1i7000eel3:badi0eei5el1:xel0:i1eee"
			"e";
	struct bt_metainfo m;
	struct bt_err err = {""};
	assert_int_equal(parse(&m, t, &err), 0);
	assert_int_equal(m.tier_count, 0);
	assert_int_equal(m.dht_node_count, 2);
	assert_string_equal(m.dht_nodes[0], "127.0.0.1:6881");
	assert_string_equal(m.dht_nodes[1], "[::1]:7000");
	bt_meta_deinit(&m);
}

static void test_hybrid_and_v2(void **state)
{
	(void)state;
	char *t =
		torrent_with_info("d9:file treed1:ad0:d6:lengthi1eeee6:lengthi1e12:meta versioni2e"
				  "4:name1:a12:piece lengthi16384e6:pieces20:" HASHES20 "e");
	struct bt_metainfo m;
	struct bt_err err = {""};
	assert_int_equal(parse(&m, t, &err), 0);
	assert_true(m.hybrid);
	uint8_t zero[32] = {0};
	assert_memory_not_equal(m.info_hash_v2, zero, 32);
	bt_meta_deinit(&m);
	free(t);

	expect_invalid("d9:file treede12:meta versioni2e4:name1:a12:piece lengthi16384ee", -ENOTSUP,
		       "v2-only torrents (BEP 52) are not supported yet");
	expect_invalid(
		"d6:lengthi1e12:meta versioni3e4:name1:a12:piece lengthi16384e6:pieces20:" HASHES20
		"e",
		-ENOTSUP, "meta version 3 is not supported");
}

static void test_invalid_torrents(void **state)
{
	(void)state;
	struct bt_metainfo m;
	struct bt_err err;
	assert_int_equal(parse(&m, "li1ee", &err), -EINVAL);
	assert_string_equal(err.msg, "the top level is not a dictionary");
	assert_int_equal(parse(&m, "d8:announce1:xe", &err), -EINVAL);
	assert_string_equal(err.msg, "missing 'info' dictionary");
	assert_int_equal(parse(&m, "d4:infoi1ee", &err), -EINVAL);
	assert_string_equal(err.msg, "'info' is not a dictionary");
	assert_int_equal(parse(&m, "d4:infodee", &err), -EINVAL);
	assert_string_equal(err.msg, "info: missing 'name'");
	assert_int_equal(parse(&m, "d4:infod", &err), -EINVAL);
	assert_string_equal(err.msg, "bencode: unexpected end of input at offset 8");

#define P1 "12:piece lengthi16384e6:pieces20:" HASHES20
	expect_invalid("d6:lengthi1e4:name1:a12:piece lengthi0e6:pieces20:" HASHES20 "e", -EINVAL,
		       "info.piece length: 0 is out of range");
	expect_invalid("d6:lengthi1e4:name1:a12:piece lengthi-16e6:pieces20:" HASHES20 "e", -EINVAL,
		       "info.piece length: -16 is out of range");
	expect_invalid(
		"d6:lengthi1e4:name1:a12:piece lengthi99999999999999999999e6:pieces20:" HASHES20
		"e",
		-EINVAL, "info.piece length: 99999999999999999999 is out");
	expect_invalid("d6:lengthi1e4:name1:a12:piece lengthi536870912e6:pieces20:" HASHES20 "e",
		       -EINVAL, "out of range (1 to 268435456)");
	expect_invalid("d6:lengthi1e4:name1:a12:piece length1:x6:pieces20:" HASHES20 "e", -EINVAL,
		       "info.piece length: not an integer");
	expect_invalid("d6:lengthi1e4:name1:ae", -EINVAL, "info: missing 'piece length'");
	expect_invalid("d6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces19:AAAAAAAAAAAAAAAAAAAe",
		       -EINVAL, "info.pieces: length 19 is not a multiple of 20");
	expect_invalid("d6:lengthi16385e4:name1:a" P1 "e", -EINVAL,
		       "info.pieces: holds 1 hashes, but 16385 bytes in pieces of 16384 need 2");
	expect_invalid("d6:lengthi1e4:name1:a12:piece lengthi16384ee", -EINVAL,
		       "info: missing 'pieces'");
	expect_invalid("d6:lengthi1e4:name1:a12:piece lengthi16384e6:piecesi1ee", -EINVAL,
		       "info.pieces: not a string");
	expect_invalid("d6:lengthi-1e4:name1:a" P1 "e", -EINVAL, "info.length: -1 is out of range");
	expect_invalid("d6:length1:x4:name1:a" P1 "e", -EINVAL, "info.length: not an integer");
	expect_invalid("d6:lengthi0e4:name1:a" P1 "e", -EINVAL, "the torrent holds no data");
	expect_invalid("d4:name1:a" P1 "e", -EINVAL, "info: has neither 'length' nor 'files'");
	expect_invalid("d5:filesld6:lengthi1e4:pathl1:beee6:lengthi1e4:name1:a" P1 "e", -EINVAL,
		       "info: has both 'length' and 'files'");
	expect_invalid("d5:filesle4:name1:a" P1 "e", -EINVAL, "info.files: empty list");
	expect_invalid("d5:filesi1e4:name1:a" P1 "e", -EINVAL, "info.files: not a list");
	expect_invalid("d5:filesli1ee4:name1:a" P1 "e", -EINVAL, "info.files[0]: not a dictionary");
	expect_invalid("d5:filesld4:pathl1:beee4:name1:a" P1 "e", -EINVAL,
		       "info.files[0]: missing 'length'");
	expect_invalid("d5:filesld6:lengthi1e4:pathl1:beed6:lengthi-5e4:pathl1:ceee4:name1:a" P1
		       "e",
		       -EINVAL, "info.files[1].length: -5 is out of range");
	expect_invalid("d5:filesld6:lengthi9223372036854775807e4:pathl1:beed6:lengthi1e"
		       "4:pathl1:ceee4:name1:a" P1 "e",
		       -EINVAL, "info: total length overflows");
	expect_invalid("d5:filesld6:lengthi1eee4:name1:a" P1 "e", -EINVAL,
		       "info.files[0].path: missing");
	expect_invalid("d5:filesld6:lengthi1e4:pathleee4:name1:a" P1 "e", -EINVAL,
		       "info.files[0].path: not a non-empty list");

	/* Paths that could escape the output directory. */
	expect_invalid("d5:filesld6:lengthi1e4:pathl2:..1:beee4:name1:a" P1 "e", -EINVAL,
		       "info.files[0].path[0]: '..' is not allowed in a path");
	expect_invalid("d5:filesld6:lengthi1e4:pathl1:b1:.eee4:name1:a" P1 "e", -EINVAL,
		       "info.files[0].path[1]: '.' is not allowed in a path");
	expect_invalid("d5:filesld6:lengthi1e4:pathl0:1:beee4:name1:a" P1 "e", -EINVAL,
		       "info.files[0].path[0]: empty path component is not allowed");
	expect_invalid("d5:filesld6:lengthi1e4:pathl4:/etceee4:name1:a" P1 "e", -EINVAL,
		       "info.files[0].path[0]: '/' in path component is not allowed");
	expect_invalid("d5:filesld6:lengthi1e4:pathl3:a/beee4:name1:a" P1 "e", -EINVAL,
		       "'/' in path component is not allowed");
	expect_invalid("d5:filesld6:lengthi1e4:pathli1eeee4:name1:a" P1 "e", -EINVAL,
		       "info.files[0].path[0]: path component is not a string");
	expect_invalid("d5:filesld6:lengthi1e4:pathl1:xeed6:lengthi1e4:pathl1:xeee4:name1:a" P1 "e",
		       -EINVAL, "info.files: two files at 'x'");
	expect_invalid(
		"d5:filesld6:lengthi1e4:pathl1:xeed6:lengthi1e4:pathl1:x1:y1:zeee4:name1:a" P1 "e",
		-EINVAL, "info.files: 'x' is both a file and a directory");
	expect_invalid("d5:filesld6:lengthi1e4:pathl1:a1:beed6:lengthi1e4:pathl1:a1:b1:ceee"
		       "4:name1:a" P1 "e",
		       -EINVAL, "info.files: 'a/b' is both a file and a directory");
	expect_invalid("d6:lengthi1e4:name2:.." P1 "e", -EINVAL,
		       "info.name: '..' is not allowed in a path");
	expect_invalid("d6:lengthi1e4:name4:/etc" P1 "e", -EINVAL,
		       "info.name: '/' in path component is not allowed");
	expect_invalid("d6:lengthi1e4:name0:" P1 "e", -EINVAL,
		       "info.name: empty path component is not allowed");
	expect_invalid("d6:lengthi1e4:namei1e" P1 "e", -EINVAL, "info.name: not a string");
}

static void test_nul_in_component(void **state)
{
	(void)state;
	/* strlen() would stop at the NUL, so build this one with an explicit length. */
	static const char t[] = "d4:infod5:filesld6:lengthi1e4:pathl3:a\0beee4:name1:a" P1 "ee";
	struct bt_metainfo m;
	struct bt_err err;
	assert_int_equal(bt_meta_parse(&m, (const uint8_t *)t, sizeof t - 1, &err), -EINVAL);
	assert_string_equal(err.msg,
			    "info.files[0].path[0]: NUL byte in path component is not allowed");
}

static void test_every_truncation_fails_cleanly(void **state)
{
	(void)state;
	const char *info =
		"d5:filesld6:lengthi3e4:pathl3:dir5:a.txteed6:lengthi16384e"
		"4:pathl1:beee4:name4:root12:piece lengthi16384e6:pieces40:" HASHES20 HASHES20 "e";
	char *t = torrent_with_info(info);
	size_t n = strlen(t);
	struct bt_metainfo m;
	assert_int_equal(bt_meta_parse(&m, (const uint8_t *)t, n, NULL), 0);
	bt_meta_deinit(&m);
	for (size_t cut = 0; cut < n; cut++) {
		struct bt_err err = {""};
		assert_int_equal(bt_meta_parse(&m, (const uint8_t *)t, cut, &err), -EINVAL);
		assert_true(strncmp(err.msg, "bencode: ", 9) == 0);
		assert_null(m.name);
	}
	free(t);
}

static char *sanitized(const char *in, bool escape, size_t *changed_out)
{
	struct bt_buf b;
	bt_buf_init(&b);
	*changed_out = bt_meta_sanitize(&b, (const uint8_t *)in, strlen(in), escape);
	bt_buf_addc(&b, '\0');
	return (char *)bt_buf_steal(&b, NULL);
}

static void test_sanitize(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
		size_t changed;
	} cases[] = {
		{"plain.txt", "plain.txt", 0},
		{"caf\xc3\xa9 \xe6\x97\xa5\xf0\x9f\x98\x80",
		 "caf\xc3\xa9 \xe6\x97\xa5\xf0\x9f\x98\x80", 0},
		{"a\x01"
		 "b\x1b[2J\n",
		 "a_b_[2J_", 3},
		{"\x7f\xc2\x85", "__", 2}, /* DEL, C1 NEL */
		{"txt\xe2\x80\xae"
		 "exe",
		 "txt_exe", 1}, /* U+202E */
		{"\xe2\x80\xaa\xe2\x81\xa6\xe2\x81\xa9\xe2\x80\x8f", "____",
		 4},				     /* 202A 2066 2069 200F */
		{"\xe2\x80\xa9", "\xe2\x80\xa9", 0}, /* U+2029 is no override */
		{"\xff\xfe", "__", 2},
		{"\xe2\x82z", "__z", 2},	 /* cut short: each byte */
		{"\xc0\xaf", "__", 2},		 /* overlong '/' */
		{"\xed\xa0\x80", "___", 3},	 /* a surrogate */
		{"\xf4\x90\x80\x80", "____", 4}, /* past U+10FFFF */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t changed;
		char *got = sanitized(cases[i].in, false, &changed);
		if (strcmp(got, cases[i].out) != 0 || changed != cases[i].changed)
			fail_msg("case %zu: got '%s' (%zu), want '%s' (%zu)", i, got, changed,
				 cases[i].out, cases[i].changed);
		free(got);
	}
	size_t changed;
	char *shown = sanitized("a\x01"
				"b\xe2\x80\xae\xff",
				true, &changed);
	assert_string_equal(shown, "a\\x01b\\xe2\\x80\\xae\\xff");
	assert_int_equal(changed, 3);
	free(shown);
}

/* Names go to disk sanitised, the originals kept for display, the info hash unchanged. */
static void test_names_sanitized_for_disk(void **state)
{
	(void)state;
	const char *name = "n\x1b[31m", *d = "d\xe2\x80\xae", *f = "f\xff";
	struct bt_buf info;
	bt_buf_init(&info);
	bt_buf_printf(&info,
		      "d5:filesld6:lengthi5e4:pathl%zu:%s%zu:%seed6:lengthi3e4:pathl2:okeee"
		      "4:name%zu:%s12:piece lengthi16384e6:pieces20:" HASHES20 "e",
		      strlen(d), d, strlen(f), f, strlen(name), name);
	char *t = torrent_with_info((const char *)info.data);
	struct bt_metainfo m;
	struct bt_err err = {""};
	assert_int_equal(parse(&m, t, &err), 0);
	assert_string_equal(m.name, "n_[31m");
	assert_string_equal(m.orig_name, name);
	assert_string_equal(m.files[0].path, "d_/f_");
	assert_string_equal(m.files[0].orig_path, "d\xe2\x80\xae/f\xff");
	assert_string_equal(m.files[1].path, "ok");
	assert_null(m.files[1].orig_path);
	assert_int_equal(m.renamed, 2);
	uint8_t want[BT_SHA1_LEN];
	bt_sha1(info.data, info.len, want);
	assert_memory_equal(m.info_hash, want, BT_SHA1_LEN);
	bt_meta_deinit(&m);
	free(t);
	bt_buf_deinit(&info);

	/* Single file: its path is the sanitised name. */
	t = torrent_with_info("d6:lengthi1e4:name3:a\x01"
			      "b12:piece lengthi16384e6:pieces20:" HASHES20 "e");
	assert_int_equal(parse(&m, t, &err), 0);
	assert_string_equal(m.name, "a_b");
	assert_string_equal(m.files[0].path, "a_b");
	assert_string_equal(m.files[0].orig_path, "a\x01"
						  "b");
	assert_int_equal(m.renamed, 1);
	bt_meta_deinit(&m);
	free(t);

	/* Two names that become one on disk cannot both be written. */
	expect_invalid("d5:filesld6:lengthi1e4:pathl2:a\x01"
		       "eed6:lengthi1e4:pathl2:a\x02"
		       "eee"
		       "4:name1:x12:piece lengthi16384e6:pieces20:" HASHES20 "e",
		       -EINVAL, "two files at 'a_'");
}

/* More pieces than BT_META_MAX_PIECES are refused, by count, before the hashes are looked at. */
static void test_piece_count_cap(void **state)
{
	(void)state;
	expect_invalid("d6:lengthi3000000e4:name1:a12:piece lengthi1e6:pieces0:e", -EINVAL,
		       "make 3000000 pieces, more than the limit of 2097152");
	expect_invalid("d6:lengthi2097153e4:name1:a12:piece lengthi1e6:pieces0:e", -EINVAL,
		       "2097153 pieces");
	/* At the cap, only the hashes are missing. */
	expect_invalid("d6:lengthi2097152e4:name1:a12:piece lengthi1e6:pieces0:e", -EINVAL,
		       "holds 0 hashes");
}

static void test_component_check(void **state)
{
	(void)state;
	assert_true(bt_meta_component_ok((const uint8_t *)"a", 1));
	assert_true(bt_meta_component_ok((const uint8_t *)"...", 3));
	assert_true(bt_meta_component_ok((const uint8_t *)".hidden", 7));
	assert_false(bt_meta_component_ok((const uint8_t *)"", 0));
	assert_false(bt_meta_component_ok((const uint8_t *)".", 1));
	assert_false(bt_meta_component_ok((const uint8_t *)"..", 2));
	assert_false(bt_meta_component_ok((const uint8_t *)"a/b", 3));
	assert_false(bt_meta_component_ok((const uint8_t *)"a\0b", 3));
}

/* A bare info dict (as BEP 9 fetches it) with a magnet's trackers. */
static void test_parse_info(void **state)
{
	(void)state;
	const char info[] = "d4:name1:a6:lengthi1e6:pieces20:" HASHES20 "12:piece lengthi16384ee";
	char *t1[] = {"udp://t1:1", ""}, *t2[] = {""}, *t3[] = {"http://t3/ann"};
	const struct bt_meta_tier tiers[] = {{t1, 2}, {t2, 1}, {t3, 1}};
	struct bt_metainfo m;
	struct bt_err err = {""};
	assert_int_equal(
		bt_meta_parse_info(&m, (const uint8_t *)info, sizeof info - 1, tiers, 3, &err), 0);
	char hex[41];
	hex_of(m.info_hash, 20, hex);
	/* The same bytes as test_unsorted_keys_hash_raw_bytes: the same hash, unsorted keys kept.
	 */
	assert_string_equal(hex, "d5358396f0745dc4055bff7a19d949664c050c04");
	assert_int_equal(m.info_len, sizeof info - 1);
	assert_memory_equal(m.info_raw, info, sizeof info - 1);
	assert_string_equal(m.name, "a");
	assert_int_equal(m.total_length, 1);
	assert_null(m.announce);
	assert_int_equal(m.tier_count, 2); /* empty URLs and the empty tier skipped */
	assert_int_equal(m.tiers[0].count, 1);
	assert_string_equal(bt_meta_tracker(&m), "udp://t1:1");
	assert_string_equal(m.tiers[1].urls[0], "http://t3/ann");
	assert_ptr_not_equal(m.tiers[1].urls[0], t3[0]); /* copied */
	bt_meta_deinit(&m);

	assert_int_equal(
		bt_meta_parse_info(&m, (const uint8_t *)info, sizeof info - 1, NULL, 0, &err), 0);
	assert_null(bt_meta_tracker(&m));
	bt_meta_deinit(&m);
}

static void expect_info_invalid(const char *info, size_t len, int code, const char *part)
{
	struct bt_metainfo m;
	struct bt_err err = {""};
	int rc = bt_meta_parse_info(&m, (const uint8_t *)info, len, NULL, 0, &err);
	if (rc != code || !strstr(err.msg, part))
		fail_msg("info %.*s: got %d '%s', want %d '...%s...'", (int)len, info, rc, err.msg,
			 code, part);
	assert_null(m.name);
	assert_null(m.info_raw);
	assert_int_equal(m.tier_count, 0);
}

#define INFO_INVALID(lit, code, part) expect_info_invalid(lit, sizeof lit - 1, code, part)

/* The checks of bt_meta_parse apply to a bare info dict too. */
static void test_parse_info_invalid(void **state)
{
	(void)state;
	INFO_INVALID("li1ee", -EINVAL, "'info' is not a dictionary");
	INFO_INVALID("d4:name", -EINVAL, "info: bencode");
	INFO_INVALID("d6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces20:" HASHES20 "eX",
		     -EINVAL, "info: bencode");
	INFO_INVALID("d6:lengthi1e4:name1:a12:piece lengthi16384ee", -EINVAL,
		     "info: missing 'pieces'");
	INFO_INVALID("d6:lengthi1e4:name2:..12:piece lengthi16384e6:pieces20:" HASHES20 "e",
		     -EINVAL, "info.name");
	INFO_INVALID("d6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces19:AAAAAAAAAAAAAAAAAAAe",
		     -EINVAL, "info.pieces");
	INFO_INVALID("d9:file treed1:ad0:d6:lengthi1eeee12:meta versioni2e4:name1:a"
		     "12:piece lengthi16384ee",
		     -ENOTSUP, "v2-only");
	struct bt_metainfo m;
	struct bt_err err = {""};
	static const uint8_t one[1] = {'d'};
	assert_int_equal(bt_meta_parse_info(&m, one, BT_META_MAX_FILE_SIZE + 1, NULL, 0, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "more than the limit"));
}

/* A .torrent written from a metainfo parses back to the same hash, trackers and seeds. */
static void test_write_torrent(void **state)
{
	(void)state;
	const char *t = "d13:announce-listll9:http://a1el9:http://b19:http://b2ee"
			"7:comment2:hi10:created by4:test13:creation datei1700000000e"
			"4:infod4:name1:a6:lengthi1e6:pieces20:" HASHES20 "12:piece lengthi1ee"
			"8:url-listl9:http://w19:http://w2ee";
	struct bt_metainfo m, back;
	struct bt_err err = {""};
	assert_int_equal(parse(&m, t, &err), 0);
	struct bt_buf b;
	bt_buf_init(&b);
	assert_int_equal(bt_meta_write_torrent(&m, &b), 0);
	assert_string_equal((char *)b.data,
			    "d8:announce9:http://a113:announce-listll9:http://a1el9:http://b1"
			    "9:http://b2ee7:comment2:hi10:created by4:test13:creation date"
			    "i1700000000e4:infod4:name1:a6:lengthi1e6:pieces20:" HASHES20
			    "12:piece lengthi1ee8:url-listl9:http://w19:http://w2ee");
	assert_int_equal(bt_meta_parse(&back, b.data, b.len, &err), 0);
	assert_memory_equal(back.info_hash, m.info_hash, 20);
	assert_int_equal(back.tier_count, 2);
	assert_string_equal(back.tiers[1].urls[1], "http://b2");
	assert_int_equal(back.web_seed_count, 2);
	assert_string_equal(back.comment, "hi");
	bt_meta_deinit(&back);
	bt_meta_deinit(&m);

	/* Nothing but the info dict. */
	const char info[] = "d6:lengthi1e4:name1:a12:piece lengthi1e6:pieces20:" HASHES20 "e";
	assert_int_equal(
		bt_meta_parse_info(&m, (const uint8_t *)info, sizeof info - 1, NULL, 0, &err), 0);
	b.len = 0;
	assert_int_equal(bt_meta_write_torrent(&m, &b), 0);
	assert_string_equal((char *)b.data, "d4:info"
					    "d6:lengthi1e4:name1:a12:piece lengthi1e"
					    "6:pieces20:" HASHES20 "ee");
	bt_meta_deinit(&m);

	struct bt_metainfo empty = {0};
	assert_int_equal(bt_meta_write_torrent(&empty, &b), -EINVAL);
	bt_buf_deinit(&b);
}

/* A buffer handed over is parsed exactly as a copy is, and the info dict ends up alone in it. */
static void test_parse_owned(void **state)
{
	(void)state;
	uint8_t *file;
	size_t len;
	struct bt_metainfo copy, owned;
	struct bt_err err = {""};
	assert_int_equal(bt_read_file(TEST_DATA_DIR "/example.torrent", BT_META_MAX_FILE_SIZE,
				      &file, &len, &err),
			 0);
	assert_int_equal(bt_meta_parse(&copy, file, len, &err), 0);
	assert_int_equal(bt_meta_parse_owned(&owned, file, len, &err), 0);
	assert_memory_equal(owned.info_hash, copy.info_hash, 20);
	assert_int_equal(owned.info_len, copy.info_len);
	assert_memory_equal(owned.info_raw, copy.info_raw, copy.info_len);
	assert_int_equal(owned.piece_count, copy.piece_count);
	assert_memory_equal(owned.piece_hashes, copy.piece_hashes,
			    (size_t)copy.piece_count * BT_SHA1_LEN);
	assert_true(owned.piece_hashes > owned.info_raw &&
		    owned.piece_hashes < owned.info_raw + owned.info_len);
	assert_string_equal(bt_meta_tracker(&owned), bt_meta_tracker(&copy));
	assert_string_equal(owned.name, copy.name);
	bt_meta_deinit(&owned);
	bt_meta_deinit(&copy);

	/* Refused: the buffer is freed all the same (the sanitizer build checks for a leak). */
	static const char bad[] = "d4:infod4:name1:xee";
	uint8_t *b = bt_xmalloc(sizeof bad - 1);
	memcpy(b, bad, sizeof bad - 1);
	assert_int_equal(bt_meta_parse_owned(&owned, b, sizeof bad - 1, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "info"));
}

/*
 * libtorrent loads what we write with the same info hash: the info dict of a real torrent
 * (example.torrent) taken as BEP 9 would fetch it, plus a magnet's tracker. Skipped where
 * /usr/bin/python3 has no libtorrent.
 */
static void test_write_torrent_libtorrent(void **state)
{
	(void)state;
	if (system("/usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1") != 0)
		skip();
	uint8_t *file;
	size_t len;
	struct bt_metainfo orig, m;
	struct bt_err err = {""};
	assert_int_equal(bt_read_file(TEST_DATA_DIR "/example.torrent", BT_META_MAX_FILE_SIZE,
				      &file, &len, &err),
			 0);
	assert_int_equal(bt_meta_parse(&orig, file, len, &err), 0);
	char *urls[] = {"udp://127.0.0.1:6969/announce"};
	struct bt_meta_tier tier = {urls, 1};
	assert_int_equal(bt_meta_parse_info(&m, orig.info_raw, orig.info_len, &tier, 1, &err), 0);
	assert_memory_equal(m.info_hash, orig.info_hash, 20);
	struct bt_buf b;
	bt_buf_init(&b);
	assert_int_equal(bt_meta_write_torrent(&m, &b), 0);
	char path[] = "/tmp/test_metainfo_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
	close(fd);
	char cmd[256];
	snprintf(cmd, sizeof cmd,
		 "timeout 30 /usr/bin/python3 -c 'import libtorrent as lt, sys; "
		 "ti = lt.torrent_info(sys.argv[1]); "
		 "print(ti.info_hash(), list(ti.trackers())[0].url)' %s",
		 path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	char line[256] = "";
	char *got = fgets(line, sizeof line, p);
	int status = pclose(p);
	unlink(path);
	assert_non_null(got);
	assert_int_equal(status, 0);
	char want[128];
	char hex[41];
	hex_of(orig.info_hash, 20, hex);
	snprintf(want, sizeof want, "%s udp://127.0.0.1:6969/announce\n", hex);
	assert_string_equal(line, want);
	bt_buf_deinit(&b);
	bt_meta_deinit(&m);
	bt_meta_deinit(&orig);
	free(file);
}

/*
 * The heap in use, mapped chunks included (glibc serves large blocks with mmap). Under
 * AddressSanitizer, whose allocator mallinfo2 does not see, 0: the checks that use it pass
 * trivially there and bite in the plain build.
 */
static size_t heap_in_use(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return 0;
#else
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
#endif
}

/* Past the spill threshold: 60,000 pieces of 16 KiB hold 1.2 MB of hashes. */
#define BIG_PIECES 60000u

/* A single-file torrent of BIG_PIECES pieces with distinct hashes; *info_off/len locate its dict.
 */
static uint8_t *big_torrent(size_t *len_out, size_t *info_off, size_t *info_len)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_printf(&b, "d7:comment3:big4:info");
	*info_off = b.len;
	bt_buf_printf(&b, "d6:lengthi%llde4:name3:big12:piece lengthi16384e6:pieces%u:",
		      (unsigned long long)BIG_PIECES * 16384, BIG_PIECES * BT_SHA1_LEN);
	for (uint32_t i = 0; i < BIG_PIECES; i++) {
		uint8_t h[BT_SHA1_LEN];
		bt_sha1(&i, sizeof i, h);
		bt_buf_add(&b, h, sizeof h);
	}
	bt_buf_addc(&b, 'e');
	*info_len = b.len - *info_off;
	bt_buf_addc(&b, 'e');
	return bt_buf_steal(&b, len_out);
}

/* m, a spilled torrent, gives back exactly the hashes and info dict of big_torrent's file. */
static void expect_spilled(const struct bt_metainfo *m, const uint8_t *file, size_t info_off,
			   size_t info_len)
{
	assert_non_null(m->spill);
	assert_null(m->info_raw);
	assert_null(m->piece_hashes);
	assert_int_equal(m->piece_count, BIG_PIECES);
	assert_int_equal(m->info_len, info_len);
	uint8_t want[BT_SHA1_LEN], got[BT_SHA1_LEN];
	bt_sha1(file + info_off, info_len, want);
	assert_memory_equal(m->info_hash, want, BT_SHA1_LEN);
	/* In order, backwards and at random: the cache must not mix up its blocks. */
	for (uint32_t i = 0; i < BIG_PIECES; i++) {
		bt_sha1(&i, sizeof i, want);
		assert_int_equal(bt_meta_piece_hash(m, i, got), 0);
		assert_memory_equal(got, want, BT_SHA1_LEN);
	}
	uint64_t x = 88172645463325252ULL;
	for (int k = 0; k < 5000; k++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint32_t i = k < 1000 ? BIG_PIECES - 1 - (uint32_t)k : (uint32_t)(x % BIG_PIECES);
		bt_sha1(&i, sizeof i, want);
		assert_int_equal(bt_meta_piece_hash(m, i, got), 0);
		assert_memory_equal(got, want, BT_SHA1_LEN);
	}
	assert_int_equal(bt_meta_piece_hash(m, BIG_PIECES, got), -EINVAL);
	uint8_t *info = bt_xmalloc(info_len);
	assert_int_equal(bt_meta_info_read(m, 0, info, info_len), 0);
	assert_memory_equal(info, file + info_off, info_len);
	free(info);
	assert_int_equal(bt_meta_info_read(m, 1, got, info_len), -EINVAL);
	for (size_t off = 0; off < info_len; off += 16384) {
		size_t n = info_len - off < 16384 ? info_len - off : 16384;
		const uint8_t *blk = bt_meta_info_at(m, off, n);
		assert_non_null(blk);
		assert_memory_equal(blk, file + info_off + off, n);
	}
	assert_null(bt_meta_info_at(m, info_len - 10, 11));
}

/*
 * A torrent with more than BT_META_SPILL_HASHES of hashes keeps neither them nor its info dict
 * in memory, whichever way it is loaded, and gives back the same bytes; a small one is held as
 * before.
 */
static void test_spilled_hashes(void **state)
{
	(void)state;
	size_t len, info_off, info_len;
	uint8_t *file = big_torrent(&len, &info_off, &info_len);
	struct bt_metainfo m;
	struct bt_err err = {""};

	size_t before = heap_in_use();
	assert_int_equal(bt_meta_parse(&m, file, len, &err), 0);
	size_t held = heap_in_use() - before;
	/* 1.2 MB of hashes would show; the struct, its strings and the cache are a few KiB. */
	assert_true(held < 64 * 1024);
	expect_spilled(&m, file, info_off, info_len);

	/* Written back as a .torrent: the same info dict, so the same info hash. */
	struct bt_buf b;
	bt_buf_init(&b);
	assert_int_equal(bt_meta_write_torrent(&m, &b), 0);
	struct bt_metainfo again;
	assert_int_equal(bt_meta_parse(&again, b.data, b.len, &err), 0);
	assert_memory_equal(again.info_hash, m.info_hash, BT_SHA1_LEN);
	bt_meta_deinit(&again);
	bt_buf_deinit(&b);

	/* A magnet's info dict, from the spilled one: spilled in turn. */
	struct bt_metainfo mg;
	assert_int_equal(bt_meta_parse_info_of(&mg, &m, NULL, 0, &err), 0);
	expect_spilled(&mg, file, info_off, info_len);
	bt_meta_deinit(&mg);
	bt_meta_deinit(&m);

	/* Handed over: the buffer is freed once spilled. */
	uint8_t *copy = bt_xmalloc(len);
	memcpy(copy, file, len);
	before = heap_in_use();
	assert_int_equal(bt_meta_parse_owned(&m, copy, len, &err), 0);
	assert_true(heap_in_use() <= before);
	expect_spilled(&m, file, info_off, info_len);
	bt_meta_deinit(&m);

	/* From a file: mapped, never read into the heap. */
	char path[] = "/tmp/test_metainfo_big_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, file, len), (ssize_t)len);
	close(fd);
	before = heap_in_use();
	assert_int_equal(bt_meta_load_file(&m, path, &err), 0);
	assert_true(heap_in_use() - before < 64 * 1024);
	expect_spilled(&m, file, info_off, info_len);
	bt_meta_deinit(&m);
	unlink(path);

	/* A large file with few hashes (a long comment): mapped, but the info dict kept. */
	struct bt_buf lb;
	bt_buf_init(&lb);
	bt_buf_printf(&lb, "d7:comment%zu:", (size_t)2 << 20);
	size_t comment_at = lb.len;
	bt_buf_reserve(&lb, (size_t)2 << 20);
	memset(lb.data + lb.len, 'c', (size_t)2 << 20);
	lb.len += (size_t)2 << 20;
	bt_buf_printf(&lb, "4:infod6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces20:%see",
		      HASHES20);
	strcpy(path, "/tmp/test_metainfo_big_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, lb.data, lb.len), (ssize_t)lb.len);
	close(fd);
	struct bt_metainfo parsed;
	assert_int_equal(bt_meta_parse(&parsed, lb.data, lb.len, &err), 0);
	assert_int_equal(bt_meta_load_file(&m, path, &err), 0);
	unlink(path);
	assert_null(m.spill);
	assert_non_null(m.info_raw);
	assert_int_equal(m.info_len, parsed.info_len);
	assert_memory_equal(m.info_raw, parsed.info_raw, parsed.info_len);
	assert_memory_equal(m.piece_hashes, HASHES20, 20);
	assert_memory_equal(m.info_hash, parsed.info_hash, BT_SHA1_LEN);
	assert_int_equal(strlen(m.comment), (size_t)2 << 20);
	assert_int_equal(m.comment[0], lb.data[comment_at]);
	bt_meta_deinit(&parsed);
	bt_meta_deinit(&m);
	bt_buf_deinit(&lb);

	/* Small torrents keep the in-memory path. */
	assert_int_equal(bt_meta_load_file(&m, TEST_DATA_DIR "/example.torrent", &err), 0);
	assert_null(m.spill);
	assert_non_null(m.info_raw);
	assert_non_null(m.piece_hashes);
	uint8_t h[BT_SHA1_LEN];
	assert_int_equal(bt_meta_piece_hash(&m, 0, h), 0);
	assert_memory_equal(h, m.piece_hashes, BT_SHA1_LEN);
	assert_ptr_equal(bt_meta_info_at(&m, 3, 5), m.info_raw + 3);
	bt_meta_deinit(&m);

	/* Bad paths name themselves. */
	assert_true(bt_meta_load_file(&m, "/nonexistent/x.torrent", &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent/x.torrent"));
	free(file);
}

/* The one unlinked file under dir that this process holds open, or -1. */
static int spill_fd_in(const char *dir)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int found = -1;
	for (struct dirent *e; (e = readdir(d));) {
		char link[300], target[512];
		snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strncmp(target, dir, strlen(dir)) == 0 && strstr(target, "(deleted)"))
			found = atoi(e->d_name);
	}
	closedir(d);
	return found;
}

/*
 * The spill file goes in $TMPDIR; when it cannot be made the torrent is refused with a clear
 * error, and when it cannot be read back the readers fail cleanly: no crash, no piece judged
 * good.
 */
static void test_spill_errors(void **state)
{
	(void)state;
	size_t len, info_off, info_len;
	uint8_t *file = big_torrent(&len, &info_off, &info_len);
	struct bt_metainfo m;
	struct bt_err err = {""};
	const char *old = getenv("TMPDIR");
	char *saved = old ? bt_xstrdup(old) : NULL;

	setenv("TMPDIR", "/nonexistent-dir-of-test-metainfo", 1);
	assert_true(bt_meta_parse(&m, file, len, &err) < 0);
	assert_non_null(strstr(err.msg, "temporary file"));
	assert_non_null(strstr(err.msg, "/nonexistent-dir-of-test-metainfo"));
	assert_null(m.name);

	char dir[] = "/tmp/test_metainfo_spill_XXXXXX";
	assert_non_null(mkdtemp(dir));
	setenv("TMPDIR", dir, 1);
	assert_int_equal(bt_meta_parse(&m, file, len, &err), 0);
	if (saved)
		setenv("TMPDIR", saved, 1);
	else
		unsetenv("TMPDIR");
	free(saved);
	int fd = spill_fd_in(dir);
	assert_true(fd >= 0);
	/* Nothing is left in the directory: the file is ours alone. */
	assert_int_equal(rmdir(dir), 0);

	assert_int_equal(ftruncate(fd, 0), 0);
	uint8_t h[BT_SHA1_LEN], zero[BT_SHA1_LEN] = {0};
	assert_int_equal(bt_meta_piece_hash(&m, 7, h), -EIO);
	assert_memory_equal(h, zero, BT_SHA1_LEN);
	uint8_t *piece = bt_xcalloc(16384, 1);
	assert_false(bt_verify_piece(&m, 7, piece));
	/* Told apart from bad data: the torrent then fails instead of striking the senders. */
	assert_int_equal(bt_verify_piece_rc(&m, 7, piece), -EIO);
	free(piece);
	assert_int_equal(bt_meta_info_read(&m, 0, h, sizeof h), -EIO);
	assert_null(bt_meta_info_at(&m, 0, 100));
	struct bt_buf b;
	bt_buf_init(&b);
	assert_int_equal(bt_meta_write_torrent(&m, &b), -EIO);
	bt_buf_deinit(&b);
	struct bt_metainfo mg;
	assert_int_equal(bt_meta_parse_info_of(&mg, &m, NULL, 0, &err), -EIO);
	assert_non_null(strstr(err.msg, "temporary file"));
	bt_meta_deinit(&m);
	free(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_file),
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_names_sanitized_for_disk),
		cmocka_unit_test(test_piece_count_cap),
		cmocka_unit_test(test_unsorted_keys_hash_raw_bytes),
		cmocka_unit_test(test_multi_file_offsets_and_pads),
		cmocka_unit_test(test_trackers_and_web_seeds),
		cmocka_unit_test(test_dht_nodes),
		cmocka_unit_test(test_hybrid_and_v2),
		cmocka_unit_test(test_invalid_torrents),
		cmocka_unit_test(test_nul_in_component),
		cmocka_unit_test(test_every_truncation_fails_cleanly),
		cmocka_unit_test(test_component_check),
		cmocka_unit_test(test_parse_info),
		cmocka_unit_test(test_parse_info_invalid),
		cmocka_unit_test(test_write_torrent),
		cmocka_unit_test(test_write_torrent_libtorrent),
		cmocka_unit_test(test_parse_owned),
		cmocka_unit_test(test_spilled_hashes),
		cmocka_unit_test(test_spill_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
