#include "bt/verify.h"

#include "bt/hash.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum { PIECE = 1024, COUNT = 7, LAST = 300, TOTAL = (COUNT - 1) * PIECE + LAST };

/* A torrent of TOTAL bytes and the data as the reader has it (tests spoil parts of it). */
struct fixture {
	uint8_t data[TOTAL];
	uint8_t hashes[COUNT * BT_SHA1_LEN];
	struct bt_metainfo m;
	bool unreadable[COUNT];
	uint32_t reads;
};

static void setup(struct fixture *f)
{
	memset(f, 0, sizeof *f);
	for (size_t i = 0; i < TOTAL; i++)
		f->data[i] = (uint8_t)((i * 2654435761u) >> 13);
	for (uint32_t i = 0; i < COUNT; i++)
		bt_sha1(f->data + (size_t)i * PIECE, i == COUNT - 1 ? LAST : PIECE,
			f->hashes + (size_t)i * BT_SHA1_LEN);
	f->m.piece_length = PIECE;
	f->m.piece_count = COUNT;
	f->m.total_length = TOTAL;
	f->m.piece_hashes = f->hashes;
}

static int fake_read(void *arg, uint32_t piece, uint8_t *buf, uint32_t len)
{
	struct fixture *f = arg;
	f->reads++;
	assert_int_equal(len, piece == COUNT - 1 ? LAST : PIECE);
	if (f->unreadable[piece])
		return -EIO;
	memcpy(buf, f->data + (size_t)piece * PIECE, len);
	return 0;
}

static void test_verify_piece(void **state)
{
	(void)state;
	struct fixture *f = malloc(sizeof *f);
	setup(f);
	assert_true(bt_verify_piece(&f->m, 0, f->data));
	assert_true(bt_verify_piece(&f->m, COUNT - 1, f->data + (COUNT - 1) * PIECE));
	assert_false(bt_verify_piece(&f->m, 1, f->data)); /* piece 0's bytes */
	f->data[PIECE + 5] ^= 1;
	assert_false(bt_verify_piece(&f->m, 1, f->data + PIECE));
	assert_int_equal(bt_verify_piece_rc(&f->m, 1, f->data + PIECE), 0);
	assert_int_equal(bt_verify_piece_rc(&f->m, 0, f->data), 1);
	free(f);
}

static void run(struct fixture *f, struct bt_bitfield *have, uint32_t step)
{
	struct bt_recheck rc;
	bt_recheck_init(&rc, &f->m, have);
	assert_int_equal(rc.total, COUNT);
	assert_false(bt_recheck_done(&rc));
	uint32_t prev = 0;
	while (!bt_recheck_done(&rc)) {
		uint32_t n = bt_recheck_step(&rc, fake_read, f, step);
		assert_true(n > 0 && (step == 0 || n <= step));
		assert_int_equal(rc.checked, prev + n);
		prev = rc.checked;
	}
	assert_int_equal(bt_recheck_step(&rc, fake_read, f, step), 0);
	assert_int_equal(rc.good, have->count);
	bt_recheck_deinit(&rc);
}

static void test_recheck_all_good(void **state)
{
	(void)state;
	struct fixture *f = malloc(sizeof *f);
	setup(f);
	struct bt_bitfield have;
	bt_bitfield_init(&have, COUNT);
	run(f, &have, 0);
	assert_true(bt_bitfield_full(&have));
	assert_int_equal(f->reads, COUNT);
	bt_bitfield_deinit(&have);
	free(f);
}

static void test_recheck_bad_and_unreadable(void **state)
{
	(void)state;
	struct fixture *f = malloc(sizeof *f);
	setup(f);
	f->data[2 * PIECE] ^= 0x80;		   /* piece 2 corrupt */
	f->data[(COUNT - 1) * PIECE + LAST - 1]++; /* the short last piece corrupt */
	f->unreadable[4] = true;
	struct bt_bitfield have;
	bt_bitfield_init(&have, COUNT);
	bt_bitfield_set_all(&have); /* stale claims are corrected */
	run(f, &have, 0);
	assert_int_equal(have.count, COUNT - 3);
	assert_false(bt_bitfield_get(&have, 2));
	assert_false(bt_bitfield_get(&have, 4));
	assert_false(bt_bitfield_get(&have, COUNT - 1));
	assert_true(bt_bitfield_get(&have, 0) && bt_bitfield_get(&have, 5));
	bt_bitfield_deinit(&have);
	free(f);
}

static void test_recheck_any_step(void **state)
{
	(void)state;
	struct fixture *f = malloc(sizeof *f);
	setup(f);
	f->data[3 * PIECE + 1] ^= 1;
	for (uint32_t step = 1; step <= COUNT + 1; step++) {
		struct bt_bitfield have;
		bt_bitfield_init(&have, COUNT);
		f->reads = 0;
		run(f, &have, step);
		assert_int_equal(f->reads, COUNT);
		assert_int_equal(have.count, COUNT - 1);
		assert_false(bt_bitfield_get(&have, 3));
		bt_bitfield_deinit(&have);
	}
	free(f);
}

static void test_recheck_deinit_unstarted(void **state)
{
	(void)state;
	struct fixture *f = malloc(sizeof *f);
	setup(f);
	struct bt_bitfield have;
	bt_bitfield_init(&have, COUNT);
	struct bt_recheck rc;
	bt_recheck_init(&rc, &f->m, &have);
	bt_recheck_deinit(&rc);
	assert_int_equal(f->reads, 0);
	bt_bitfield_deinit(&have);
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_piece),
		cmocka_unit_test(test_recheck_all_good),
		cmocka_unit_test(test_recheck_bad_and_unreadable),
		cmocka_unit_test(test_recheck_any_step),
		cmocka_unit_test(test_recheck_deinit_unstarted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
