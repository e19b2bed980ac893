#include "bt/json.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void expect_json(const char *in, size_t n, const char *want)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_json_put_bytes(&b, in, n);
	assert_string_equal((char *)b.data, want);
	bt_buf_deinit(&b);
}

#define EXPECT(lit, want) expect_json(lit, sizeof(lit) - 1, want)

static void test_plain_and_escapes(void **state)
{
	(void)state;
	EXPECT("hello", "\"hello\"");
	EXPECT("", "\"\"");
	EXPECT("a\"b\\c", "\"a\\\"b\\\\c\"");
	EXPECT("\n\r\t\x01\x1f\x7f", "\"\\n\\r\\t\\u0001\\u001f\\u007f\"");
	EXPECT("a\0b", "\"a\\u0000b\"");
	EXPECT("/", "\"/\"");
}

static void test_valid_utf8_is_kept(void **state)
{
	(void)state;
	EXPECT("caf\xc3\xa9", "\"caf\xc3\xa9\"");
	EXPECT("\xe2\x82\xac", "\"\xe2\x82\xac\"");	    /* U+20AC */
	EXPECT("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""); /* U+1F600 */
	EXPECT("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
}

static void test_invalid_bytes_are_surrogate_escaped(void **state)
{
	(void)state;
	EXPECT("\xff", "\"\\udcff\"");
	EXPECT("\x80", "\"\\udc80\"");
	EXPECT("a\xc3", "\"a\\udcc3\"");				/* truncated sequence */
	EXPECT("\xc0\xaf", "\"\\udcc0\\udcaf\"");			/* overlong '/' */
	EXPECT("\xe0\x80\xaf", "\"\\udce0\\udc80\\udcaf\"");		/* overlong */
	EXPECT("\xed\xa0\x80", "\"\\udced\\udca0\\udc80\"");		/* a surrogate */
	EXPECT("\xf4\x90\x80\x80", "\"\\udcf4\\udc90\\udc80\\udc80\""); /* past U+10FFFF */
	EXPECT("\xc3\xa9\xff\xc3\xa9", "\"\xc3\xa9\\udcff\xc3\xa9\"");
}

static void test_hex_and_keys(void **state)
{
	(void)state;
	struct bt_buf b;
	bt_buf_init(&b);
	int first = 1;
	bt_buf_addc(&b, '{');
	bt_json_key(&b, &first, "a");
	bt_json_put_hex(&b, (const uint8_t *)"\x01\xfe", 2);
	bt_json_key(&b, &first, "b");
	bt_json_put_str(&b, "x");
	bt_buf_addc(&b, '}');
	assert_string_equal((char *)b.data, "{\"a\":\"01fe\",\"b\":\"x\"}");
	bt_buf_deinit(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_and_escapes),
		cmocka_unit_test(test_valid_utf8_is_kept),
		cmocka_unit_test(test_invalid_bytes_are_surrogate_escaped),
		cmocka_unit_test(test_hex_and_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
