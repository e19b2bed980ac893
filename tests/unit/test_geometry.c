#include "bt/geometry.h"
#include "bt/util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <cmocka.h>

static void test_pieces(void **state)
{
	(void)state;
	struct bt_geometry g;
	/* 3 pieces of 40 KiB, the last one 10 KiB + 1 byte. */
	assert_int_equal(bt_geometry_init(&g, 40960, 2 * 40960 + 10241), 0);
	assert_int_equal(g.piece_count, 3);
	assert_int_equal(bt_geometry_piece_size(&g, 0), 40960);
	assert_int_equal(bt_geometry_piece_size(&g, 2), 10241);
	assert_int_equal(bt_geometry_piece_offset(&g, 2), 81920);
	assert_int_equal(bt_geometry_block_count(&g, 0), 3);
	assert_int_equal(bt_geometry_block_count(&g, 2), 1);
	struct bt_block b = bt_geometry_block(&g, 0, 2);
	assert_int_equal(b.begin, 32768);
	assert_int_equal(b.length, 8192);
	b = bt_geometry_block(&g, 2, 0);
	assert_int_equal(b.length, 10241);
	/* An exact multiple: the last piece is whole. */
	assert_int_equal(bt_geometry_init(&g, 16384, 4 * 16384), 0);
	assert_int_equal(g.piece_count, 4);
	assert_int_equal(bt_geometry_piece_size(&g, 3), 16384);
	/* Nonsense and overflow. */
	assert_int_equal(bt_geometry_init(&g, 0, 10), -EINVAL);
	assert_int_equal(bt_geometry_init(&g, 16384, 0), -EINVAL);
	assert_int_equal(bt_geometry_init(&g, 1, (int64_t)UINT32_MAX + 1), -EINVAL);
}

static void test_block_valid(void **state)
{
	(void)state;
	struct bt_geometry g;
	assert_int_equal(bt_geometry_init(&g, 32768, 32768 + 150), 0);
	struct bt_block ok = {0, 16384, 16384}, last = {1, 0, 150};
	assert_true(bt_geometry_block_valid(&g, &ok));
	assert_true(bt_geometry_block_valid(&g, &last));
	struct bt_block bad[] = {
		{2, 0, 1},		/* no such piece */
		{0, 0, 0},		/* empty */
		{0, 0, 16385},		/* longer than a block */
		{1, 100, 51},		/* past the end of the last piece */
		{0, UINT32_MAX, 16384}, /* begin + length overflows 32 bits */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_false(bt_geometry_block_valid(&g, &bad[i]));
	assert_true(bt_block_equal(&ok, &(struct bt_block){0, 16384, 16384}));
	assert_false(bt_block_equal(&ok, &last));
}

static void test_clock(void **state)
{
	(void)state;
	double a = bt_now(), b = bt_now();
	assert_true(a > 0 && b >= a);
	struct timeval tv;
	assert_ptr_equal(bt_timeval(&tv, 1.25), &tv);
	assert_int_equal(tv.tv_sec, 1);
	assert_int_equal(tv.tv_usec, 250000);
	bt_timeval(&tv, -3);
	assert_int_equal(tv.tv_sec, 0);
	assert_int_equal(tv.tv_usec, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pieces),
		cmocka_unit_test(test_block_valid),
		cmocka_unit_test(test_clock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
