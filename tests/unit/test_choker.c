#include "bt/choker.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static size_t count_unchoked(const struct bt_choker_peer *p, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += p[i].unchoke;
	return k;
}

static void test_reciprocation_and_optimistic(void **state)
{
	(void)state;
	struct bt_choker c;
	bt_choker_init(&c, 42);
	struct bt_choker_peer p[8];
	memset(p, 0, sizeof p);
	for (size_t i = 0; i < 8; i++) {
		p[i].interested = i != 7;	  /* peer 7 is not interested */
		p[i].down_rate = (double)i * 100; /* peers 6,5,4,3 give us the most */
		p[i].up_rate = (double)(8 - i) * 100;
	}
	bt_choker_run(&c, p, 8, false);
	assert_true(p[6].unchoke && p[5].unchoke && p[4].unchoke && p[3].unchoke);
	assert_false(p[7].unchoke);
	assert_int_equal(count_unchoked(p, 8), BT_CHOKER_SLOTS + 1);
	size_t opt = 8;
	for (size_t i = 0; i < 8; i++)
		if (p[i].optimistic)
			opt = i;
	assert_true(opt < 3); /* one of the peers left over */

	/* Kept for the next rounds even though it gives us nothing... */
	for (int r = 1; r < BT_CHOKER_OPTIMISTIC_ROUNDS; r++) {
		bt_choker_run(&c, p, 8, false);
		assert_true(p[opt].optimistic && p[opt].unchoke);
	}
	/* ...then it rotates among the others over time. */
	int changed = 0;
	for (int r = 0; r < 20; r++) {
		size_t before = opt;
		bt_choker_run(&c, p, 8, false);
		for (size_t i = 0; i < 8; i++)
			if (p[i].optimistic)
				opt = i;
		changed += opt != before;
	}
	assert_true(changed > 0);

	/* Seeding ranks by our upload rate to them. */
	bt_choker_run(&c, p, 8, true);
	assert_true(p[0].unchoke && p[1].unchoke && p[2].unchoke && p[3].unchoke);
}

static void test_few_peers_all_unchoked(void **state)
{
	(void)state;
	struct bt_choker c;
	bt_choker_init(&c, 1);
	struct bt_choker_peer p[3];
	memset(p, 0, sizeof p);
	p[0].interested = p[1].interested = true;
	bt_choker_run(&c, p, 3, true);
	assert_true(p[0].unchoke && p[1].unchoke);
	assert_false(p[2].unchoke);
	bt_choker_run(&c, p, 0, true); /* no peers: nothing to do */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reciprocation_and_optimistic),
		cmocka_unit_test(test_few_peers_all_unchoked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
