/*
 * The allowed-fast set against BEP 6's own test vectors, and its limits.
 */
#include "bt/fastset.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static const uint8_t hash_aa[BT_HASH_LEN] = {
	0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
	0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
};
static const uint8_t ip[4] = {80, 4, 4, 200};

static void test_bep6_vectors(void **state)
{
	(void)state;
	uint32_t got[9];
	const uint32_t want7[] = {1059, 431, 808, 1217, 287, 376, 1188};
	assert_int_equal(bt_fastset_generate(hash_aa, ip, 1313, 7, got), 7);
	assert_memory_equal(got, want7, sizeof want7);
	const uint32_t want9[] = {1059, 431, 808, 1217, 287, 376, 1188, 353, 508};
	assert_int_equal(bt_fastset_generate(hash_aa, ip, 1313, 9, got), 9);
	assert_memory_equal(got, want9, sizeof want9);
}

static void test_same_slash24_same_set(void **state)
{
	(void)state;
	/* Only the /24 counts: a neighbour's address yields the same set, another /24 not. */
	uint32_t a[BT_FASTSET_K], b[BT_FASTSET_K];
	const uint8_t neighbour[4] = {80, 4, 4, 7}, other[4] = {80, 4, 5, 200};
	bt_fastset_generate(hash_aa, ip, 1313, BT_FASTSET_K, a);
	bt_fastset_generate(hash_aa, neighbour, 1313, BT_FASTSET_K, b);
	assert_memory_equal(a, b, sizeof a);
	bt_fastset_generate(hash_aa, other, 1313, BT_FASTSET_K, b);
	assert_memory_not_equal(a, b, sizeof a);
}

static void test_small_torrents(void **state)
{
	(void)state;
	uint32_t got[BT_FASTSET_K];
	assert_int_equal(bt_fastset_generate(hash_aa, ip, 0, BT_FASTSET_K, got), 0);
	/* Fewer pieces than k: every piece once, no repeats, nothing out of range. */
	assert_int_equal(bt_fastset_generate(hash_aa, ip, 3, BT_FASTSET_K, got), 3);
	bool seen[3] = {false};
	for (size_t i = 0; i < 3; i++) {
		assert_true(got[i] < 3);
		assert_false(seen[got[i]]);
		seen[got[i]] = true;
	}
	assert_int_equal(bt_fastset_generate(hash_aa, ip, 1, BT_FASTSET_K, got), 1);
	assert_int_equal(got[0], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bep6_vectors),
		cmocka_unit_test(test_same_slash24_same_set),
		cmocka_unit_test(test_small_torrents),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
