#include "bt/pipeline.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

static struct bt_block blk(uint32_t piece, uint32_t k)
{
	return (struct bt_block){piece, k * BT_BLOCK_SIZE, BT_BLOCK_SIZE};
}

static void add(struct bt_pipeline *pl, uint32_t piece, uint32_t k, double now)
{
	struct bt_block b = blk(piece, k);
	bt_pipeline_add(pl, &b, now);
}

static int find(const struct bt_pipeline *pl, uint32_t piece, uint32_t k)
{
	struct bt_block b = blk(piece, k);
	return bt_pipeline_find(pl, &b);
}

static void test_order_find_remove_take(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 100);
	for (uint32_t k = 0; k < 40; k++) /* past the first allocation */
		add(&pl, k % 3, k, 100);
	assert_int_equal(bt_pipeline_count(&pl), 40);
	for (uint32_t k = 0; k < 40; k++)
		assert_int_equal(find(&pl, k % 3, k), k);
	/* Same piece and offset, another length: not the same request. */
	struct bt_block shorter = {1, BT_BLOCK_SIZE, 100};
	assert_int_equal(bt_pipeline_find(&pl, &shorter), -ENOENT);

	bt_pipeline_remove_at(&pl, 0);
	bt_pipeline_remove_at(&pl, 10); /* block 11 */
	bt_pipeline_remove_at(&pl, 37); /* the newest, block 39 */
	assert_int_equal(bt_pipeline_count(&pl), 37);
	assert_int_equal(find(&pl, 0, 0), -ENOENT);
	assert_int_equal(find(&pl, 2, 11), -ENOENT);
	assert_int_equal(find(&pl, 1, 1), 0);
	assert_int_equal(find(&pl, 0, 12), 10);

	struct bt_block *out;
	assert_int_equal(bt_pipeline_take(&pl, &out), 37);
	uint32_t want = 1;
	for (size_t i = 0; i < 37; i++, want++) {
		if (want == 11)
			want++;
		assert_int_equal(out[i].piece, want % 3);
		assert_int_equal(out[i].begin, want * BT_BLOCK_SIZE);
	}
	free(out);
	assert_int_equal(bt_pipeline_count(&pl), 0);
	assert_int_equal(bt_pipeline_take(&pl, &out), 0);
	assert_null(out);

	/* It fills again after a take. */
	add(&pl, 5, 0, 200);
	assert_int_equal(find(&pl, 5, 0), 0);
	bt_pipeline_deinit(&pl);
}

/* Fast: a cancelled request awaits one answer; anything else is not one of ours. */
static void test_cancelled_await_one_answer(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 0);
	for (uint32_t k = 0; k < 3; k++)
		add(&pl, 7, k, 0);
	bt_pipeline_cancel_at(&pl, (size_t)find(&pl, 7, 1));
	assert_int_equal(bt_pipeline_count(&pl), 2);
	assert_int_equal(find(&pl, 7, 1), -ENOENT);
	struct bt_block b1 = blk(7, 1), b0 = blk(7, 0);
	assert_false(bt_pipeline_cancel_answered(&pl, &b0)); /* outstanding, not cancelled */
	assert_true(bt_pipeline_cancel_answered(&pl, &b1));
	assert_false(bt_pipeline_cancel_answered(&pl, &b1)); /* answered once only */

	/* The ring keeps the newest BT_PIPELINE_CANCELLED; an answer may come in any order. */
	for (uint32_t k = 0; k < BT_PIPELINE_CANCELLED + 5; k++) {
		add(&pl, 9, k, 0);
		bt_pipeline_cancel_at(&pl, (size_t)find(&pl, 9, k));
	}
	struct bt_block oldest = blk(9, 4), kept = blk(9, 5), newest = blk(9, 131);
	assert_false(bt_pipeline_cancel_answered(&pl, &oldest));
	assert_true(bt_pipeline_cancel_answered(&pl, &newest));
	assert_true(bt_pipeline_cancel_answered(&pl, &kept));
	size_t answered = 2;
	for (uint32_t k = 0; k < BT_PIPELINE_CANCELLED + 5; k++) {
		struct bt_block b = blk(9, k);
		answered += bt_pipeline_cancel_answered(&pl, &b);
	}
	assert_int_equal(answered, BT_PIPELINE_CANCELLED);
	assert_int_equal(bt_pipeline_count(&pl), 2);
	bt_pipeline_deinit(&pl);
}

static void test_has_requested(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 0);
	struct bt_block a = blk(7, 2), b = blk(7, 3);
	assert_false(bt_pipeline_has(&pl, &a));
	bt_pipeline_add(&pl, &a, 0);
	assert_true(bt_pipeline_has(&pl, &a));
	assert_false(bt_pipeline_has(&pl, &b));
	bt_pipeline_remove_at(&pl, (size_t)bt_pipeline_find(&pl, &a));
	assert_false(bt_pipeline_has(&pl, &a));
	bt_pipeline_deinit(&pl);
}

/* The timer starts with the first request after none were out and restarts with each block. */
static void test_request_timer(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 10);
	assert_true(bt_pipeline_waited(&pl, 15) == 5);
	add(&pl, 0, 0, 50);
	add(&pl, 0, 1, 60); /* not a restart */
	assert_true(bt_pipeline_waited(&pl, 70) == 20);
	bt_pipeline_remove_at(&pl, 0);
	bt_pipeline_received(&pl, BT_BLOCK_SIZE, 72);
	assert_true(bt_pipeline_waited(&pl, 75) == 3);
	bt_pipeline_remove_at(&pl, 0);
	add(&pl, 0, 2, 90); /* none were out: restart */
	assert_true(bt_pipeline_waited(&pl, 91) == 1);
	bt_pipeline_deinit(&pl);
}

static void test_target_before_rate(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 0);
	assert_int_equal(bt_pipeline_target(&pl), BT_PIPELINE_START_TARGET);
	/* Seconds without a byte do not make the rate known. */
	for (int i = 0; i < 5; i++)
		bt_pipeline_sample(&pl);
	assert_int_equal(bt_pipeline_target(&pl), BT_PIPELINE_START_TARGET);
	assert_true(bt_pipeline_rate(&pl) == 0);
	/* Bytes, but no sample yet. */
	bt_pipeline_received(&pl, 100, 1);
	assert_int_equal(bt_pipeline_target(&pl), BT_PIPELINE_START_TARGET);
	assert_int_equal(bt_pipeline_downloaded(&pl), 100);
	bt_pipeline_sample(&pl);
	assert_int_equal(bt_pipeline_target(&pl), BT_PIPELINE_MIN_TARGET);
	bt_pipeline_deinit(&pl);
}

/* The target is half a second of the measured rate, in blocks, within the clamp. */
static void test_target_from_rate(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 0);
	for (int i = 0; i < 20; i++)
		bt_pipeline_received(&pl, BT_BLOCK_SIZE, 0.5);
	bt_pipeline_sample(&pl); /* the first sample is taken as it is: 20 blocks/s */
	assert_true(bt_pipeline_rate(&pl) == 20.0 * BT_BLOCK_SIZE);
	assert_int_equal(bt_pipeline_target(&pl), 10);
	assert_int_equal(bt_pipeline_downloaded(&pl), 20 * BT_BLOCK_SIZE);

	struct bt_pipeline fast;
	bt_pipeline_init(&fast, 0);
	bt_pipeline_received(&fast, 1000 * BT_BLOCK_SIZE, 0.5);
	bt_pipeline_sample(&fast);
	assert_int_equal(bt_pipeline_target(&fast), BT_PIPELINE_MAX_TARGET);
	bt_pipeline_deinit(&fast);

	struct bt_pipeline slow;
	bt_pipeline_init(&slow, 0);
	bt_pipeline_received(&slow, BT_BLOCK_SIZE, 0.5);
	bt_pipeline_sample(&slow);
	assert_int_equal(bt_pipeline_target(&slow), BT_PIPELINE_MIN_TARGET);
	bt_pipeline_deinit(&slow);
	bt_pipeline_deinit(&pl);
}

/* Later samples are averaged: 0.6 of the history, 0.4 of the new second. */
static void test_smoothing(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 0);
	bt_pipeline_received(&pl, 100 * BT_BLOCK_SIZE, 0.5);
	bt_pipeline_sample(&pl);
	assert_int_equal(bt_pipeline_target(&pl), 50);
	bt_pipeline_sample(&pl); /* a second with nothing: 60 blocks/s */
	assert_true(bt_pipeline_rate(&pl) == 0.6 * 100 * BT_BLOCK_SIZE);
	assert_int_equal(bt_pipeline_target(&pl), 30);
	bt_pipeline_received(&pl, 40 * BT_BLOCK_SIZE, 1.5);
	bt_pipeline_received(&pl, 60 * BT_BLOCK_SIZE, 1.7);
	bt_pipeline_sample(&pl); /* 0.6 × 60 + 0.4 × 100 = 76 blocks/s */
	assert_int_equal(bt_pipeline_target(&pl), 38);
	/* The average decays towards an idle peer but stays above the floor for a while. */
	for (int i = 0; i < 3; i++)
		bt_pipeline_sample(&pl);
	assert_int_equal(bt_pipeline_target(&pl), 8); /* 76 × 0.216 = 16.4 blocks/s */
	for (int i = 0; i < 10; i++)
		bt_pipeline_sample(&pl);
	assert_int_equal(bt_pipeline_target(&pl), BT_PIPELINE_MIN_TARGET);
	assert_int_equal(bt_pipeline_downloaded(&pl), 200 * BT_BLOCK_SIZE);
	bt_pipeline_deinit(&pl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_find_remove_take),
		cmocka_unit_test(test_has_requested),
		cmocka_unit_test(test_cancelled_await_one_answer),
		cmocka_unit_test(test_request_timer),
		cmocka_unit_test(test_target_before_rate),
		cmocka_unit_test(test_target_from_rate),
		cmocka_unit_test(test_smoothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
