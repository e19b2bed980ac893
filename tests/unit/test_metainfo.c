#include "bt/metainfo.h"

#include "bt/bencode.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		cmocka_unit_test(test_hybrid_and_v2),
		cmocka_unit_test(test_invalid_torrents),
		cmocka_unit_test(test_nul_in_component),
		cmocka_unit_test(test_every_truncation_fails_cleanly),
		cmocka_unit_test(test_component_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
