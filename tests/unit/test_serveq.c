#include "bt/serveq.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static struct bt_block blk(uint32_t n)
{
	return (struct bt_block){n / 64, n % 64 * BT_BLOCK_SIZE, BT_BLOCK_SIZE};
}

static int push(struct bt_serveq *q, uint32_t n)
{
	struct bt_block b = blk(n);
	return bt_serveq_push(q, &b);
}

static bool cancel(struct bt_serveq *q, uint32_t n)
{
	struct bt_block b = blk(n);
	return bt_serveq_cancel(q, &b);
}

/* Pops the oldest request and checks it is block n. */
static void expect_pop(struct bt_serveq *q, uint32_t n)
{
	const struct bt_block *f = bt_serveq_front(q);
	assert_non_null(f);
	struct bt_block want = blk(n);
	assert_true(bt_block_equal(f, &want));
	bt_serveq_pop(q);
}

static void test_fifo(void **state)
{
	(void)state;
	struct bt_serveq q;
	bt_serveq_init(&q);
	assert_null(bt_serveq_front(&q));
	assert_int_equal(bt_serveq_count(&q), 0);
	/* Three times round the ring, never more than 1000 waiting. */
	uint32_t in = 0, out = 0;
	for (int round = 0; round < 7; round++) {
		for (int i = 0; i < 1000; i++)
			assert_int_equal(push(&q, in++), 0);
		assert_int_equal(bt_serveq_count(&q), 1000);
		for (int i = 0; i < 1000; i++)
			expect_pop(&q, out++);
	}
	assert_null(bt_serveq_front(&q));
	bt_serveq_deinit(&q);
}

static void test_duplicate_ignored(void **state)
{
	(void)state;
	struct bt_serveq q;
	bt_serveq_init(&q);
	assert_int_equal(push(&q, 1), 0);
	assert_int_equal(push(&q, 2), 0);
	assert_int_equal(push(&q, 1), -EEXIST);
	assert_int_equal(push(&q, 2), -EEXIST);
	/* Same piece and offset, another length: another request. */
	struct bt_block shorter = blk(2);
	shorter.length = 100;
	assert_int_equal(bt_serveq_push(&q, &shorter), 0);
	assert_int_equal(bt_serveq_count(&q), 3);
	expect_pop(&q, 1);
	/* Once served, the same block may be asked for again. */
	assert_int_equal(push(&q, 1), 0);
	expect_pop(&q, 2);
	assert_true(bt_block_equal(bt_serveq_front(&q), &shorter));
	bt_serveq_pop(&q);
	expect_pop(&q, 1);
	bt_serveq_deinit(&q);
}

static void test_capacity(void **state)
{
	(void)state;
	struct bt_serveq q;
	bt_serveq_init(&q);
	/* Start off the ring's beginning so that the full queue wraps. */
	for (uint32_t n = 0; n < 100; n++)
		push(&q, 50000 + n);
	for (uint32_t n = 0; n < 100; n++)
		expect_pop(&q, 50000 + n);
	for (uint32_t n = 0; n < BT_SERVEQ_CAP; n++)
		assert_int_equal(push(&q, n), 0);
	assert_int_equal(bt_serveq_count(&q), BT_SERVEQ_CAP);
	assert_int_equal(BT_SERVEQ_CAP, 2048);
	assert_int_equal(push(&q, BT_SERVEQ_CAP), -ENOBUFS);
	assert_int_equal(push(&q, 0), -ENOBUFS); /* full before it is a repeat */
	assert_int_equal(bt_serveq_count(&q), BT_SERVEQ_CAP);
	/* Room again after one is served: the newer request goes behind the others. */
	expect_pop(&q, 0);
	assert_int_equal(push(&q, 9999), 0);
	for (uint32_t n = 1; n < BT_SERVEQ_CAP; n++)
		expect_pop(&q, n);
	expect_pop(&q, 9999);
	assert_null(bt_serveq_front(&q));
	bt_serveq_deinit(&q);
}

static void test_cancel_keeps_order(void **state)
{
	(void)state;
	struct bt_serveq q;
	bt_serveq_init(&q);
	/* Across the end of the ring: positions 2040..2047 and 0..7. */
	for (uint32_t n = 0; n < 2040; n++)
		push(&q, 100000 + n);
	for (uint32_t n = 0; n < 2040; n++)
		bt_serveq_pop(&q);
	for (uint32_t n = 0; n < 16; n++)
		push(&q, n);
	assert_true(cancel(&q, 7)); /* the last slot of the ring */
	assert_true(cancel(&q, 3));
	assert_true(cancel(&q, 15)); /* the newest */
	assert_false(cancel(&q, 3)); /* gone already */
	assert_false(cancel(&q, 77));
	assert_int_equal(bt_serveq_count(&q), 13);
	assert_true(cancel(&q, 0)); /* the oldest */
	assert_int_equal(push(&q, 3), 0);
	static const uint32_t want[] = {1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 3};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		expect_pop(&q, want[i]);
	assert_null(bt_serveq_front(&q));
	bt_serveq_deinit(&q);
}

static void test_clear(void **state)
{
	(void)state;
	struct bt_serveq q;
	bt_serveq_init(&q);
	for (uint32_t n = 0; n < 300; n++)
		push(&q, n);
	bt_serveq_pop(&q);
	bt_serveq_clear(&q);
	assert_int_equal(bt_serveq_count(&q), 0);
	assert_null(bt_serveq_front(&q));
	assert_false(cancel(&q, 5));
	/* Nothing of what was cleared is a repeat, and it fills to capacity again. */
	for (uint32_t n = 0; n < BT_SERVEQ_CAP; n++)
		assert_int_equal(push(&q, n), 0);
	assert_int_equal(push(&q, BT_SERVEQ_CAP), -ENOBUFS);
	expect_pop(&q, 0);
	bt_serveq_deinit(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fifo),	 cmocka_unit_test(test_duplicate_ignored),
		cmocka_unit_test(test_capacity), cmocka_unit_test(test_cancel_keeps_order),
		cmocka_unit_test(test_clear),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
