#include "bt/assembly.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static struct bt_geometry geo(int64_t piece_length, int64_t total)
{
	struct bt_geometry g;
	assert_int_equal(bt_geometry_init(&g, piece_length, total), 0);
	return g;
}

static void test_budget_clamps(void **state)
{
	(void)state;
	struct bt_assembly a;
	struct bt_geometry g = geo(256 << 10, (int64_t)1 << 30);
	bt_assembly_init(&a, &g, 0); /* 16 MiB / 256 KiB */
	assert_int_equal(bt_assembly_max_partial(&a), 64);
	bt_assembly_deinit(&a);
	bt_assembly_init(&a, &g, 1 << 20);
	assert_int_equal(bt_assembly_max_partial(&a), 4);
	bt_assembly_deinit(&a);
	bt_assembly_init(&a, &g, 1000); /* less than one piece: still one */
	assert_int_equal(bt_assembly_max_partial(&a), 1);
	bt_assembly_deinit(&a);
	g = geo(16384, 100 << 20); /* tiny pieces: capped */
	bt_assembly_init(&a, &g, 0);
	assert_int_equal(bt_assembly_max_partial(&a), BT_ASSEMBLY_MAX_PARTIAL);
	bt_assembly_deinit(&a);
	bt_assembly_deinit(&a); /* twice is harmless */
}

static void test_buffers_and_pool(void **state)
{
	(void)state;
	struct bt_assembly a;
	struct bt_geometry g = geo(32768, 5 * 32768 + 100); /* the last piece is short */
	bt_assembly_init(&a, &g, 0);
	assert_null(bt_assembly_get(&a, 0));
	assert_null(bt_assembly_get(&a, 99));
	uint8_t *p0 = bt_assembly_buffer_for(&a, 0);
	assert_non_null(p0);
	assert_ptr_equal(bt_assembly_buffer_for(&a, 0), p0); /* gets, does not restart */
	assert_ptr_equal(bt_assembly_get(&a, 0), p0);
	memset(p0, 1, 32768); /* a whole piece fits */
	uint8_t *p5 = bt_assembly_buffer_for(&a, 5);
	memset(p5, 2, 100);
	assert_int_equal(bt_assembly_started(&a), 2);

	/* Released buffers come back for the next piece. */
	bt_assembly_release(&a, 0);
	assert_null(bt_assembly_get(&a, 0));
	assert_int_equal(bt_assembly_started(&a), 1);
	assert_ptr_equal(bt_assembly_buffer_for(&a, 3), p0);
	bt_assembly_release(&a, 3);
	bt_assembly_release(&a, 3); /* releasing a piece not started is harmless */
	assert_int_equal(bt_assembly_started(&a), 1);
	bt_assembly_deinit(&a);
}

static void test_pool_bounded_by_max_partial(void **state)
{
	(void)state;
	struct bt_assembly a;
	struct bt_geometry g = geo(1 << 20, 64 << 20);
	bt_assembly_init(&a, &g, 2 << 20); /* two pieces at once */
	assert_int_equal(bt_assembly_max_partial(&a), 2);
	/* More started than the budget (the picker would not do this): all are freed. */
	for (uint32_t i = 0; i < 4; i++)
		bt_assembly_buffer_for(&a, i);
	for (uint32_t i = 0; i < 4; i++)
		bt_assembly_release(&a, i);
	assert_int_equal(a.npool, 2);
	bt_assembly_deinit(&a);
}

static void test_contributors(void **state)
{
	(void)state;
	struct bt_assembly a;
	struct bt_geometry g = geo(16384, 10 * 16384);
	bt_assembly_init(&a, &g, 0);
	size_t n;
	bt_assembly_contributors(&a, 2, &n);
	assert_int_equal(n, 0);
	bt_assembly_buffer_for(&a, 2);
	int order[] = {7, 3, 7, 9, 3, 3, 0, 11, 12, 13};
	for (size_t i = 0; i < sizeof order / sizeof *order; i++)
		bt_assembly_add_contributor(&a, 2, order[i]);
	const int *c = bt_assembly_contributors(&a, 2, &n);
	int want[] = {7, 3, 9, 0, 11, 12, 13};
	assert_int_equal(n, sizeof want / sizeof *want);
	assert_memory_equal(c, want, sizeof want);
	/* A new start of the piece has nobody yet. */
	bt_assembly_release(&a, 2);
	bt_assembly_buffer_for(&a, 2);
	bt_assembly_contributors(&a, 2, &n);
	assert_int_equal(n, 0);
	bt_assembly_deinit(&a);
}

/* Many start/release cycles with contributors: the sanitizer build finds any leak. */
static void test_cycles(void **state)
{
	(void)state;
	struct bt_assembly a;
	struct bt_geometry g = geo(65536, 1000 * 65536);
	bt_assembly_init(&a, &g, 8 * 65536);
	for (uint32_t round = 0; round < 200; round++) {
		for (uint32_t k = 0; k < 8; k++) {
			uint32_t piece = (round * 8 + k) % 1000;
			bt_assembly_buffer_for(&a, piece)[65535] = (uint8_t)k;
			bt_assembly_add_contributor(&a, piece, (int)k);
			bt_assembly_add_contributor(&a, piece, (int)(k + 1));
		}
		for (uint32_t k = 0; k < 8; k++)
			bt_assembly_release(&a, (round * 8 + k) % 1000);
		assert_int_equal(bt_assembly_started(&a), 0);
	}
	/* Some left started at the end: deinit frees them too. */
	bt_assembly_buffer_for(&a, 1);
	bt_assembly_add_contributor(&a, 1, 5);
	bt_assembly_deinit(&a);
}

/*
 * A million pieces, started and released in a random order far past max_partial (the table
 * grows) and with many collisions: every started piece keeps its own buffer and contributors,
 * every released one is gone, checked against a plain per-piece model.
 */
static void test_many_pieces_against_a_model(void **state)
{
	(void)state;
	struct bt_assembly a;
	struct bt_geometry g = geo(16384, (int64_t)16384 << 20);
	bt_assembly_init(&a, &g, 8 * 16384);
	enum { N = 1 << 20, LIVE = 300 };
	uint32_t live[LIVE];
	size_t nlive = 0;
	uint8_t *model = calloc(N, 1);
	assert_non_null(model);
	uint64_t x = 88172645463325252ull;
	for (int step = 0; step < 200000; step++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		bool start = nlive < LIVE && (nlive == 0 || (x >> 40) % 3 != 0);
		if (start) {
			/* Pieces a multiple of the table size apart collide: pick from a few such.
			 */
			uint32_t piece = (uint32_t)((x >> 8) % 64) * 4096u + (uint32_t)(x % 97);
			if (model[piece])
				continue;
			uint8_t *buf = bt_assembly_buffer_for(&a, piece);
			buf[0] = (uint8_t)piece;
			bt_assembly_add_contributor(&a, piece, (int)piece);
			model[piece] = 1;
			live[nlive++] = piece;
		} else {
			size_t k = (size_t)(x >> 20) % nlive;
			bt_assembly_release(&a, live[k]);
			model[live[k]] = 0;
			live[k] = live[--nlive];
		}
		assert_int_equal(bt_assembly_started(&a), nlive);
		if (step % 97 == 0) {
			for (size_t k = 0; k < nlive; k++) {
				uint8_t *buf = bt_assembly_get(&a, live[k]);
				assert_non_null(buf);
				assert_int_equal(buf[0], (uint8_t)live[k]);
				size_t n;
				const int *c = bt_assembly_contributors(&a, live[k], &n);
				assert_int_equal(n, 1);
				assert_int_equal(c[0], (int)live[k]);
			}
			for (uint32_t p = 0; p < 64 * 4096u + 97; p += 7)
				if (!model[p])
					assert_null(bt_assembly_get(&a, p));
		}
	}
	free(model);
	bt_assembly_deinit(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_budget_clamps),
		cmocka_unit_test(test_buffers_and_pool),
		cmocka_unit_test(test_pool_bounded_by_max_partial),
		cmocka_unit_test(test_contributors),
		cmocka_unit_test(test_cycles),
		cmocka_unit_test(test_many_pieces_against_a_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
