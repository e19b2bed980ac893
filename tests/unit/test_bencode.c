#include "bt/bencode.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static enum bt_benc_result parse_str(struct bt_benc_doc *doc, const char *s, struct bt_err *err)
{
	return bt_benc_parse(doc, (const uint8_t *)s, strlen(s), NULL, NULL, err);
}

static void expect_json(const char *in, const char *want)
{
	struct bt_benc_doc doc;
	struct bt_err err = {""};
	assert_int_equal(parse_str(&doc, in, &err), BT_BENC_OK);
	struct bt_buf b;
	bt_buf_init(&b);
	bt_benc_to_json(&b, bt_benc_root(&doc));
	assert_string_equal((char *)b.data, want);
	bt_buf_deinit(&b);
	bt_benc_doc_deinit(&doc);
}

static void expect_error(const char *in, enum bt_benc_result want, const char *msg)
{
	struct bt_benc_doc doc;
	struct bt_err err = {""};
	assert_int_equal(parse_str(&doc, in, &err), want);
	assert_null(doc.nodes);
	assert_int_equal(doc.count, 0);
	if (strcmp(err.msg, msg) != 0)
		fail_msg("input '%s': got error '%s', want '%s'", in, err.msg, msg);
}

static void test_issue_examples(void **state)
{
	(void)state;
	expect_json("5:hello", "\"hello\"");
	expect_json("i52e", "52");
	expect_json("i-52e", "-52");
	expect_json("i4294967300e", "4294967300");
	expect_json("l5:helloi52ee", "[\"hello\",52]");
	expect_json("d3:foo3:bar5:helloi52ee", "{\"foo\":\"bar\",\"hello\":52}");
	expect_json("le", "[]");
	expect_json("de", "{}");
}

static void test_values(void **state)
{
	(void)state;
	expect_json("0:", "\"\"");
	expect_json("i0e", "0");
	expect_json("i123456789012345678901234567890e", "123456789012345678901234567890");
	expect_json("i-123456789012345678901234567890e", "-123456789012345678901234567890");
	expect_json("lli1eelee", "[[1],[]]");
	expect_json("d1:bi1e1:ai2ee", "{\"b\":1,\"a\":2}");
	expect_json("d1:ad1:bl0:eee", "{\"a\":{\"b\":[\"\"]}}");
	expect_json("4:\"\\\n\xff", "\"\\\"\\\\\\n\\udcff\"");
}

static void test_errors_name_problem_and_offset(void **state)
{
	(void)state;
	expect_error("", BT_BENC_NEED_MORE, "unexpected end of input at offset 0");
	expect_error("x", BT_BENC_BAD, "unexpected 'x' at offset 0");
	expect_error("i03e", BT_BENC_BAD, "leading zero in integer at offset 0");
	expect_error("i-03e", BT_BENC_BAD, "leading zero in integer at offset 0");
	expect_error("i00e", BT_BENC_BAD, "leading zero in integer at offset 0");
	expect_error("i-0e", BT_BENC_BAD, "negative zero at offset 0");
	expect_error("ie", BT_BENC_BAD, "integer without digits at offset 0");
	expect_error("i-e", BT_BENC_BAD, "integer without digits at offset 0");
	expect_error("i1x", BT_BENC_BAD, "unexpected 'x' at offset 2");
	expect_error("i--1e", BT_BENC_BAD, "unexpected '-' at offset 2");
	expect_error("i+1e", BT_BENC_BAD, "unexpected '+' at offset 1");
	expect_error("i12", BT_BENC_NEED_MORE, "unexpected end of input at offset 3");
	expect_error("01:a", BT_BENC_BAD, "leading zero in string length at offset 0");
	expect_error("-1:a", BT_BENC_BAD, "unexpected '-' at offset 0");
	expect_error(":a", BT_BENC_BAD, "unexpected ':' at offset 0");
	expect_error("5:ab", BT_BENC_NEED_MORE,
		     "string of length 5 at offset 0 runs past the end of input");
	expect_error("1x", BT_BENC_BAD, "unexpected 'x' at offset 1");
	expect_error("99999999999999999999999:a", BT_BENC_BAD,
		     "string length too large at offset 0");
	expect_error("l", BT_BENC_NEED_MORE, "unexpected end of input at offset 1");
	expect_error("li1e", BT_BENC_NEED_MORE, "unexpected end of input at offset 4");
	expect_error("d1:a", BT_BENC_NEED_MORE, "unexpected end of input at offset 4");
	expect_error("d1:ae", BT_BENC_BAD, "dictionary key without a value at offset 4");
	expect_error("di1ei2ee", BT_BENC_BAD,
		     "dictionary key is not a string: unexpected 'i' at offset 1");
	expect_error("d1:ai1eli1eee", BT_BENC_BAD,
		     "dictionary key is not a string: unexpected 'l' at offset 7");
	expect_error("i1ei2e", BT_BENC_BAD, "trailing data after the value at offset 3");
	expect_error("lee", BT_BENC_BAD, "trailing data after the value at offset 2");
	expect_error("e", BT_BENC_BAD, "unexpected 'e' at offset 0");
	expect_error("l\x01", BT_BENC_BAD, "unexpected 0x01 at offset 1");
	expect_error("'", BT_BENC_BAD, "unexpected 0x27 at offset 0");
	expect_error("d1:ai1e1:ai2ee", BT_BENC_BAD, "duplicate dictionary key 'a' at offset 7");
	expect_error("d1:bi1e1:ai2e1:bi3ee", BT_BENC_BAD,
		     "duplicate dictionary key 'b' at offset 13");
	expect_error("d0:i1e0:i2ee", BT_BENC_BAD, "duplicate dictionary key '' at offset 6");
}

static void test_structure_and_lookup(void **state)
{
	(void)state;
	const char *in = "d4:listli1e3:twoe3:numi-7e4:dictd1:xi9eee";
	struct bt_benc_doc doc;
	assert_int_equal(parse_str(&doc, in, NULL), BT_BENC_OK);
	const struct bt_benc_node *root = bt_benc_root(&doc);
	assert_int_equal(root->type, BT_BENC_DICT);
	assert_int_equal(root->count, 3);
	assert_int_equal(root->span, doc.count);
	assert_int_equal(root->raw_len, strlen(in));

	const struct bt_benc_node *list = bt_benc_dict_get(root, "list");
	assert_non_null(list);
	assert_int_equal(list->type, BT_BENC_LIST);
	assert_int_equal(list->count, 2);
	assert_memory_equal(list->raw, "li1e3:twoe", list->raw_len);
	assert_true(bt_benc_str_eq(bt_benc_list_at(list, 1), "two"));
	assert_null(bt_benc_list_at(list, 2));

	int64_t v;
	assert_int_equal(bt_benc_int(bt_benc_dict_get(root, "num"), &v), 0);
	assert_int_equal(v, -7);
	const struct bt_benc_node *dict = bt_benc_dict_get(root, "dict");
	assert_int_equal(bt_benc_int(bt_benc_dict_get(dict, "x"), &v), 0);
	assert_int_equal(v, 9);
	assert_null(bt_benc_dict_get(root, "nope"));
	assert_null(bt_benc_dict_get(root, "lis"));
	assert_null(bt_benc_dict_get(list, "list"));
	assert_int_equal(bt_benc_int(list, &v), -EINVAL);
	bt_benc_doc_deinit(&doc);
}

static void test_int_range(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int rc;
		int64_t v;
	} cases[] = {
		{"i9223372036854775807e", 0, INT64_MAX}, {"i-9223372036854775808e", 0, INT64_MIN},
		{"i9223372036854775808e", -ERANGE, 0},	 {"i-9223372036854775809e", -ERANGE, 0},
		{"i99999999999999999999e", -ERANGE, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct bt_benc_doc doc;
		assert_int_equal(parse_str(&doc, cases[i].in, NULL), BT_BENC_OK);
		int64_t v = 0;
		assert_int_equal(bt_benc_int(bt_benc_root(&doc), &v), cases[i].rc);
		if (cases[i].rc == 0)
			assert_true(v == cases[i].v);
		bt_benc_doc_deinit(&doc);
	}
}

static void test_consumed_allows_trailing_data(void **state)
{
	(void)state;
	const char *in = "d1:ai1ee<raw piece bytes>";
	struct bt_benc_doc doc;
	size_t used = 0;
	assert_int_equal(bt_benc_parse(&doc, (const uint8_t *)in, strlen(in), NULL, &used, NULL),
			 BT_BENC_OK);
	assert_int_equal(used, 8);
	bt_benc_doc_deinit(&doc);
}

static void test_limits(void **state)
{
	(void)state;
	size_t n = 1000000;
	char *deep = malloc(n + 1);
	memset(deep, 'l', n);
	deep[n] = '\0';
	struct bt_benc_doc doc;
	struct bt_err err;
	assert_int_equal(parse_str(&doc, deep, &err), BT_BENC_BAD);
	assert_string_equal(err.msg, "nesting deeper than 256 at offset 256");
	free(deep);

	struct bt_benc_limits lim = {.max_depth = 2, .max_nodes = 4};
	assert_int_equal(bt_benc_parse(&doc, (const uint8_t *)"llee", 4, &lim, NULL, NULL),
			 BT_BENC_OK);
	bt_benc_doc_deinit(&doc);
	assert_int_equal(bt_benc_parse(&doc, (const uint8_t *)"llleee", 6, &lim, NULL, &err),
			 BT_BENC_BAD);
	assert_string_equal(err.msg, "nesting deeper than 2 at offset 2");
	assert_int_equal(bt_benc_parse(&doc, (const uint8_t *)"li1ei2ei3ee", 11, &lim, NULL, NULL),
			 BT_BENC_OK);
	bt_benc_doc_deinit(&doc);
	assert_int_equal(
		bt_benc_parse(&doc, (const uint8_t *)"li1ei2ei3ei4ee", 14, &lim, NULL, &err),
		BT_BENC_BAD);
	assert_string_equal(err.msg, "more than 4 values at offset 10");
}

static void expect_canonical(const char *in, const char *want)
{
	struct bt_benc_doc doc;
	assert_int_equal(parse_str(&doc, in, NULL), BT_BENC_OK);
	struct bt_buf b;
	bt_buf_init(&b);
	bt_benc_encode(&b, bt_benc_root(&doc));
	assert_string_equal((char *)b.data, want);
	bt_buf_deinit(&b);
	bt_benc_doc_deinit(&doc);
}

static void test_canonical_encoder(void **state)
{
	(void)state;
	expect_canonical("d3:foo3:bar5:helloi52ee", "d3:foo3:bar5:helloi52ee");
	expect_canonical("d1:bi1e1:ai2ee", "d1:ai2e1:bi1ee");
	expect_canonical("d2:aai1e1:ai2e1:bd1:zi0e1:yi0eee", "d1:ai2e2:aai1e1:bd1:yi0e1:zi0eee");
	expect_canonical("l0:i-1ele0:e", "l0:i-1ele0:e");

	struct bt_buf b;
	bt_buf_init(&b);
	bt_benc_begin_dict(&b);
	bt_benc_put_cstr(&b, "a");
	bt_benc_put_int(&b, INT64_MIN);
	bt_benc_put_cstr(&b, "b");
	bt_benc_begin_list(&b);
	bt_benc_put_str(&b, "\0x", 2);
	bt_benc_end(&b);
	bt_benc_end(&b);
	assert_int_equal(b.len, 36);
	assert_memory_equal(b.data, "d1:ai-9223372036854775808e1:bl2:\0xee", 36);
	bt_buf_deinit(&b);
}

/* Builds a random value with the encoder; returns it canonical (keys sorted, unique). */
static void random_value(struct bt_buf *b, unsigned depth, unsigned *seed)
{
	unsigned kind = (unsigned)rand_r(seed) % (depth ? 4 : 2);
	if (kind == 0) {
		bt_benc_put_int(b, (int64_t)rand_r(seed) - RAND_MAX / 2);
	} else if (kind == 1) {
		uint8_t s[40];
		size_t n = (size_t)rand_r(seed) % sizeof s;
		for (size_t i = 0; i < n; i++)
			s[i] = (uint8_t)rand_r(seed);
		bt_benc_put_str(b, s, n);
	} else if (kind == 2) {
		bt_benc_begin_list(b);
		for (int i = rand_r(seed) % 5; i > 0; i--)
			random_value(b, depth - 1, seed);
		bt_benc_end(b);
	} else {
		bt_benc_begin_dict(b);
		int n = rand_r(seed) % 5;
		for (int i = 0; i < n; i++) {
			char key[8];
			snprintf(key, sizeof key, "k%02d", i * 7 + rand_r(seed) % 7);
			bt_benc_put_cstr(b, key);
			random_value(b, depth - 1, seed);
		}
		bt_benc_end(b);
	}
}

static void test_round_trip_random(void **state)
{
	(void)state;
	unsigned seed = 12345;
	for (int i = 0; i < 2000; i++) {
		struct bt_buf in, out;
		bt_buf_init(&in);
		bt_buf_init(&out);
		random_value(&in, 6, &seed);
		struct bt_benc_doc doc;
		size_t used = 0;
		assert_int_equal(bt_benc_parse(&doc, in.data, in.len, NULL, &used, NULL),
				 BT_BENC_OK);
		assert_int_equal(used, in.len);
		bt_benc_encode(&out, bt_benc_root(&doc));
		assert_int_equal(out.len, in.len);
		assert_memory_equal(out.data, in.data, in.len);
		/* Every proper prefix is incomplete, never accepted and never BAD. */
		for (size_t cut = 0; cut < in.len; cut++) {
			struct bt_benc_doc part;
			assert_int_equal(bt_benc_parse(&part, in.data, cut, NULL, NULL, NULL),
					 BT_BENC_NEED_MORE);
		}
		bt_benc_doc_deinit(&doc);
		bt_buf_deinit(&in);
		bt_buf_deinit(&out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issue_examples),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors_name_problem_and_offset),
		cmocka_unit_test(test_structure_and_lookup),
		cmocka_unit_test(test_int_range),
		cmocka_unit_test(test_consumed_allows_trailing_data),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_canonical_encoder),
		cmocka_unit_test(test_round_trip_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
