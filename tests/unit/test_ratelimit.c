#include "bt/ratelimit.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static void test_bucket(void **state)
{
	(void)state;
	struct bt_rate_limit rl;
	bt_rate_limit_init(&rl, 1 << 20, 100.0); /* 1 MiB/s: burst 104857.6 bytes */
	assert_int_equal(bt_rate_limit_take(&rl, 100.0, 1 << 20), 104857);
	assert_int_equal(bt_rate_limit_take(&rl, 100.0, 100), 0);
	assert_false(bt_rate_limit_take_all(&rl, 100.0, 16384));
	double w = bt_rate_limit_wait(&rl, 100.0, 16384);
	assert_true(w > 0.0155 && w < 0.0157);
	/* Half a second later: refilled, but never past the burst. */
	size_t got = bt_rate_limit_take(&rl, 100.5, 1 << 20);
	assert_true(got >= 104857 && got <= 104858); /* the burst, give or take rounding */
	assert_true(bt_rate_limit_take_all(&rl, 100.6, 16384));
	bt_rate_limit_give_back(&rl, 1000);
	assert_true(bt_rate_limit_take_all(&rl, 100.6, 1000));
	/* Over ten seconds the rate holds: about 10 MiB plus one burst. */
	size_t total = 0;
	for (int i = 0; i <= 1000; i++)
		total += bt_rate_limit_take(&rl, 101.0 + i * 0.01, 1 << 20);
	assert_true(total > 10 * 1048576 - 200000 && total < 10 * 1048576 + 200000);
}

static void test_unlimited(void **state)
{
	(void)state;
	struct bt_rate_limit rl;
	bt_rate_limit_init(&rl, 0, 5.0);
	assert_int_equal(bt_rate_limit_take(&rl, 5.0, 123456789), 123456789);
	assert_true(bt_rate_limit_take_all(&rl, 5.0, 1 << 30));
	assert_true(bt_rate_limit_wait(&rl, 5.0, 1 << 30) == 0);
	assert_int_equal(bt_rate_limit_take(NULL, 5.0, 7), 7);
}

static void test_parse(void **state)
{
	(void)state;
	double v;
	assert_int_equal(bt_rate_parse("500K", &v), 0);
	assert_true(v == 512000);
	assert_int_equal(bt_rate_parse("2M", &v), 0);
	assert_true(v == 2097152);
	assert_int_equal(bt_rate_parse("1.5MiB/s", &v), 0);
	assert_true(v == 1572864);
	assert_int_equal(bt_rate_parse("800000", &v), 0);
	assert_true(v == 800000);
	assert_int_equal(bt_rate_parse("1G", &v), 0);
	assert_int_equal(bt_rate_parse("-1M", &v), -1);
	assert_int_equal(bt_rate_parse("10", &v), -1); /* below 1 KiB/s */
	assert_int_equal(bt_rate_parse("fast", &v), -1);
	assert_int_equal(bt_rate_parse("2X", &v), -1);
	assert_int_equal(bt_rate_parse("", &v), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket),
		cmocka_unit_test(test_unlimited),
		cmocka_unit_test(test_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
