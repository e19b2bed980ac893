#include "bt/picker.h"

#include "bt/wire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define KB 1024

/* A picker over count pieces of plen bytes, total bytes in all (the count is checked). */
static struct bt_picker *new_picker(uint32_t count, int64_t plen, int64_t total,
				    const struct bt_bitfield *have, const struct bt_bitfield *want,
				    uint64_t seed)
{
	struct bt_geometry g;
	assert_int_equal(bt_geometry_init(&g, plen, total), 0);
	assert_int_equal(g.piece_count, count);
	return bt_picker_new(&g, have, want, seed);
}

static struct bt_bitfield peer_with(uint32_t n, const char *pieces)
{
	struct bt_bitfield b;
	bt_bitfield_init(&b, n);
	for (const char *c = pieces; *c; c++)
		bt_bitfield_set(&b, (uint32_t)(*c - '0'));
	return b;
}

static struct bt_bitfield seeder(uint32_t n)
{
	struct bt_bitfield b;
	bt_bitfield_init(&b, n);
	bt_bitfield_set_all(&b);
	return b;
}

static void test_block_sizes(void **state)
{
	(void)state;
	/* 3 pieces of 40 KiB, the last 10 KiB + 1 byte: blocks 16,16,8 | 16,16,8 | 10.0009 */
	int64_t total = 2 * 40 * KB + 10 * KB + 1;
	struct bt_picker *p = new_picker(3, 40 * KB, total, NULL, NULL, 1);
	struct bt_bitfield s = seeder(3);
	bt_picker_add_peer(p, &s);
	struct bt_block out[16];
	size_t n = bt_picker_pick(p, &s, out, 16, NULL, NULL);
	assert_int_equal(n, 7);
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++) {
		sum += out[i].length;
		assert_true(out[i].length <= BT_BLOCK_SIZE);
		assert_int_equal(out[i].begin % BT_BLOCK_SIZE, 0);
		if (out[i].piece == 2)
			assert_int_equal(out[i].length, 10 * KB + 1);
		else if (out[i].begin == 32 * KB)
			assert_int_equal(out[i].length, 8 * KB);
	}
	assert_int_equal(sum, total);
	/* Endgame: each block once more (nothing says the peer has it already), then no more. */
	assert_int_equal(bt_picker_in_endgame(p), true);
	assert_int_equal(bt_picker_pick(p, &s, out, 16, NULL, NULL), 7);
	assert_int_equal(bt_picker_pick(p, &s, out, 16, NULL, NULL), 0);
	bt_bitfield_deinit(&s);
	bt_picker_free(p);
}

static void test_rarest_first(void **state)
{
	(void)state;
	struct bt_picker *p = new_picker(4, 16 * KB, 64 * KB, NULL, NULL, 7);
	struct bt_bitfield a = peer_with(4, "0123"), b = peer_with(4, "123"),
			   c = peer_with(4, "23");
	bt_picker_add_peer(p, &a);
	bt_picker_add_peer(p, &b);
	bt_picker_add_peer(p, &c);
	bt_picker_peer_have(p, 3); /* another peer's HAVE: piece 3 is now the most common */
	struct bt_block out[1];
	uint32_t order[4];
	for (int i = 0; i < 4; i++) {
		assert_int_equal(bt_picker_pick(p, &a, out, 1, NULL, NULL), 1);
		order[i] = out[0].piece;
	}
	assert_int_equal(order[0], 0);
	assert_int_equal(order[1], 1);
	assert_int_equal(order[2], 2);
	assert_int_equal(order[3], 3);
	/* A peer only gets pieces it has. */
	bt_picker_free(p);
	p = new_picker(4, 16 * KB, 64 * KB, NULL, NULL, 7);
	bt_picker_add_peer(p, &c);
	assert_int_equal(bt_picker_pick(p, &c, out, 1, NULL, NULL), 1);
	assert_true(out[0].piece == 2 || out[0].piece == 3);
	bt_picker_remove_peer(p, &c);
	bt_bitfield_deinit(&a);
	bt_bitfield_deinit(&b);
	bt_bitfield_deinit(&c);
	bt_picker_free(p);
}

static void test_random_tie_break(void **state)
{
	(void)state;
	struct bt_bitfield s = seeder(64);
	int seen[64] = {0}, distinct = 0;
	for (uint64_t seed = 1; seed <= 32; seed++) {
		struct bt_picker *p = new_picker(64, 16 * KB, 64 * 16 * KB, NULL, NULL, seed);
		bt_picker_add_peer(p, &s);
		struct bt_block out[1];
		bt_picker_pick(p, &s, out, 1, NULL, NULL);
		distinct += !seen[out[0].piece]++;
		bt_picker_free(p);
	}
	assert_true(distinct >= 8);
	bt_bitfield_deinit(&s);
}

static void test_partial_pieces_first(void **state)
{
	(void)state;
	struct bt_picker *p = new_picker(8, 64 * KB, 8 * 64 * KB, NULL, NULL, 3);
	struct bt_bitfield s = seeder(8);
	bt_picker_add_peer(p, &s);
	bt_picker_add_peer(p, &s);
	struct bt_block a[2], b[4];
	assert_int_equal(bt_picker_pick(p, &s, a, 2, NULL, NULL), 2);
	assert_int_equal(a[0].piece, a[1].piece);
	/* The second peer first gets the two blocks left of the started piece, then a new one. */
	assert_int_equal(bt_picker_pick(p, &s, b, 4, NULL, NULL), 4);
	assert_int_equal(b[0].piece, a[0].piece);
	assert_int_equal(b[1].piece, a[0].piece);
	assert_int_not_equal(b[2].piece, a[0].piece);
	assert_int_equal(bt_picker_partial_count(p), 2);
	bt_bitfield_deinit(&s);
	bt_picker_free(p);
}

static void test_returned_received_passed_failed(void **state)
{
	(void)state;
	struct bt_picker *p = new_picker(2, 32 * KB, 64 * KB, NULL, NULL, 5);
	struct bt_bitfield s = seeder(2);
	bt_picker_add_peer(p, &s);
	assert_true(bt_picker_interesting(p, &s));
	struct bt_block out[4], again[4];
	assert_int_equal(bt_picker_pick(p, &s, out, 2, NULL, NULL), 2);
	uint32_t first = out[0].piece;
	assert_true(bt_picker_is_pending(p, &out[1]));
	bt_picker_returned(p, &out[1]); /* e.g. the peer choked us */
	assert_false(bt_picker_is_pending(p, &out[1]));
	assert_int_equal(bt_picker_pick(p, &s, again, 1, NULL, NULL), 1);
	assert_memory_equal(&again[0], &out[1], sizeof again[0]);

	bool complete;
	assert_true(bt_picker_received(p, &out[0], &complete));
	assert_false(complete);
	assert_false(bt_picker_received(p, &out[0], &complete)); /* a duplicate */
	assert_true(bt_picker_received(p, &out[1], &complete));
	assert_true(complete);
	struct bt_block bogus = {.piece = first, .begin = 100, .length = 10};
	assert_false(bt_picker_received(p, &bogus, &complete));
	bogus = (struct bt_block){.piece = 9, .begin = 0, .length = 16 * KB};
	assert_false(bt_picker_received(p, &bogus, &complete));

	/* Verification failed: the piece is wanted again, both blocks. */
	bt_picker_piece_failed(p, first);
	assert_int_equal(bt_picker_pieces_left(p), 2);
	size_t n = bt_picker_pick(p, &s, out, 4, NULL, NULL);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++) {
		bt_picker_received(p, &out[i], &complete);
		if (complete)
			bt_picker_piece_passed(p, out[i].piece);
	}
	assert_true(bt_picker_done(p));
	assert_false(bt_picker_interesting(p, &s));
	bt_bitfield_deinit(&s);
	bt_picker_free(p);
}

struct requested {
	struct bt_block blocks[8];
	size_t n;
};

static bool already(void *ctx, const struct bt_block *b)
{
	struct requested *r = ctx;
	for (size_t i = 0; i < r->n; i++)
		if (!memcmp(&r->blocks[i], b, sizeof *b))
			return true;
	return false;
}

static void test_endgame(void **state)
{
	(void)state;
	struct bt_picker *p = new_picker(1, 32 * KB, 32 * KB, NULL, NULL, 9);
	struct bt_bitfield s = seeder(1);
	bt_picker_add_peer(p, &s);
	bt_picker_add_peer(p, &s);
	bt_picker_add_peer(p, &s);
	struct requested a = {0}, b = {0}, c = {0};
	a.n = bt_picker_pick(p, &s, a.blocks, 8, already, &a);
	assert_int_equal(a.n, 2);
	assert_true(bt_picker_in_endgame(p));
	/* Peer B gets the same two blocks again, never twice for itself. */
	b.n = bt_picker_pick(p, &s, b.blocks, 8, already, &b);
	assert_int_equal(b.n, 2);
	assert_int_equal(bt_picker_pick(p, &s, b.blocks + 2, 6, already, &b), 0);
	/* At most two requests per block: peer C gets nothing. */
	c.n = bt_picker_pick(p, &s, c.blocks, 8, already, &c);
	assert_int_equal(c.n, 0);
	/* A copy arrives: the block is done; a late duplicate is refused. */
	bool complete;
	assert_true(bt_picker_received(p, &b.blocks[0], &complete));
	assert_false(bt_picker_received(p, &a.blocks[0], &complete));
	bt_picker_returned(p, &a.blocks[0]); /* returning a received block changes nothing */
	assert_false(bt_picker_is_pending(p, &a.blocks[0]));
	bt_bitfield_deinit(&s);
	bt_picker_free(p);
}

static void test_want_and_have_sets(void **state)
{
	(void)state;
	struct bt_bitfield want, have, s = seeder(10);
	bt_bitfield_init(&want, 10);
	bt_bitfield_init(&have, 10);
	bt_bitfield_set(&want, 7);
	struct bt_picker *p = new_picker(10, 16 * KB, 160 * KB, NULL, &want, 1);
	bt_picker_add_peer(p, &s);
	struct bt_block out[8];
	assert_int_equal(bt_picker_pick(p, &s, out, 8, NULL, NULL), 1);
	assert_int_equal(out[0].piece, 7);
	assert_int_equal(bt_picker_pieces_left(p), 1);
	bt_picker_free(p);

	for (uint32_t i = 0; i < 10; i++)
		if (i != 4)
			bt_bitfield_set(&have, i);
	p = new_picker(10, 16 * KB, 160 * KB, &have, NULL, 1);
	bt_picker_add_peer(p, &s);
	struct bt_bitfield only_have = peer_with(10, "0123");
	assert_false(bt_picker_interesting(p, &only_have));
	assert_int_equal(bt_picker_pick(p, &s, out, 8, NULL, NULL), 1);
	assert_int_equal(out[0].piece, 4);
	bt_picker_free(p);
	bt_bitfield_deinit(&only_have);
	bt_bitfield_deinit(&want);
	bt_bitfield_deinit(&have);
	bt_bitfield_deinit(&s);
}

static void test_max_partial(void **state)
{
	(void)state;
	struct bt_bitfield s = seeder(8);
	struct bt_picker *p = new_picker(8, 32 * KB, 8 * 32 * KB, NULL, NULL, 4);
	bt_picker_add_peer(p, &s);
	bt_picker_set_max_partial(p, 2);
	struct bt_block out[16];
	/* Two pieces of two blocks each, then nothing until one completes. */
	assert_int_equal(bt_picker_pick(p, &s, out, 16, NULL, NULL), 4);
	assert_int_equal(bt_picker_partial_count(p), 2);
	assert_int_equal(bt_picker_pick(p, &s, out + 4, 12, NULL, NULL), 0);
	assert_false(bt_picker_in_endgame(p));
	bool complete;
	assert_true(bt_picker_received(p, &out[0], &complete));
	assert_true(bt_picker_received(p, &out[1], &complete));
	assert_true(complete);
	bt_picker_piece_passed(p, out[0].piece);
	assert_int_equal(bt_picker_pick(p, &s, out + 4, 12, NULL, NULL), 2);
	bt_bitfield_deinit(&s);
	bt_picker_free(p);
}

/* Picks one block at a time (16 KiB pieces: one block each) and returns its piece. */
static uint32_t pick_one(struct bt_picker *p, const struct bt_bitfield *has)
{
	struct bt_block b;
	assert_int_equal(bt_picker_pick(p, has, &b, 1, NULL, NULL), 1);
	return b.piece;
}

static void finish(struct bt_picker *p, uint32_t piece)
{
	struct bt_block b = {.piece = piece, .begin = 0, .length = 16 * KB};
	bool complete;
	assert_true(bt_picker_received(p, &b, &complete));
	assert_true(complete);
	bt_picker_piece_passed(p, piece);
}

static void test_sequential_window(void **state)
{
	(void)state;
	struct bt_bitfield s = seeder(10);
	struct bt_bitfield rare = peer_with(10, "3");
	struct bt_picker *p = new_picker(10, 16 * KB, 10 * 16 * KB, NULL, NULL, 5);
	bt_picker_add_peer(p, &s);
	bt_picker_add_peer(p, &s);
	bt_picker_add_peer(p, &rare);
	bt_picker_set_sequential(p, 3);
	/* In order inside the window [0, 3), the equally rare lowest first. */
	assert_int_equal(pick_one(p, &s), 0);
	assert_int_equal(pick_one(p, &s), 1);
	assert_int_equal(pick_one(p, &s), 2);
	/* Nothing past the window until its first piece is verified. */
	struct bt_block b;
	assert_int_equal(bt_picker_pick(p, &s, &b, 1, NULL, NULL), 0);
	finish(p, 1);
	assert_int_equal(bt_picker_pick(p, &s, &b, 1, NULL, NULL), 0);
	finish(p, 0);
	/* The window is now [2, 5): piece 3 is more common (three peers) than 4. */
	assert_int_equal(pick_one(p, &s), 4);
	assert_int_equal(pick_one(p, &s), 3);
	bt_bitfield_deinit(&s);
	bt_bitfield_deinit(&rare);
	bt_picker_free(p);
}

static void test_priority_first(void **state)
{
	(void)state;
	struct bt_bitfield s = seeder(10);
	struct bt_bitfield have = peer_with(10, "9");
	struct bt_picker *p = new_picker(10, 16 * KB, 10 * 16 * KB, &have, NULL, 6);
	bt_picker_add_peer(p, &s);
	bt_picker_add_priority(p, 7);
	bt_picker_add_priority(p, 9); /* had: ignored */
	bt_picker_add_priority(p, 2);
	bt_picker_set_sequential(p, 4);
	/* Priority pieces come first, in order, even past the sequential window. */
	assert_int_equal(pick_one(p, &s), 7);
	assert_int_equal(pick_one(p, &s), 2);
	assert_int_equal(pick_one(p, &s), 0);
	assert_int_equal(pick_one(p, &s), 1);
	bt_bitfield_deinit(&s);
	bt_bitfield_deinit(&have);
	bt_picker_free(p);
}

static void test_many_pieces_stay_fast(void **state)
{
	(void)state;
	/* 262144 pieces (4 GiB of 16 KiB pieces), one seeder: picking each is O(1). */
	uint32_t n = 1 << 18;
	struct bt_bitfield s = seeder(n);
	struct bt_picker *p = new_picker(n, 16 * KB, (int64_t)n * 16 * KB, NULL, NULL, 2);
	bt_picker_add_peer(p, &s);
	struct bt_block out[64];
	uint64_t picked = 0;
	for (;;) {
		size_t k = bt_picker_pick(p, &s, out, 64, NULL, NULL);
		if (!k)
			break;
		for (size_t i = 0; i < k; i++) {
			bool complete;
			assert_true(bt_picker_received(p, &out[i], &complete));
			assert_true(complete);
			bt_picker_piece_passed(p, out[i].piece);
		}
		picked += k;
	}
	assert_int_equal(picked, n);
	assert_true(bt_picker_done(p));
	bt_bitfield_deinit(&s);
	bt_picker_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_sizes),
		cmocka_unit_test(test_rarest_first),
		cmocka_unit_test(test_random_tie_break),
		cmocka_unit_test(test_partial_pieces_first),
		cmocka_unit_test(test_returned_received_passed_failed),
		cmocka_unit_test(test_endgame),
		cmocka_unit_test(test_want_and_have_sets),
		cmocka_unit_test(test_max_partial),
		cmocka_unit_test(test_sequential_window),
		cmocka_unit_test(test_priority_first),
		cmocka_unit_test(test_many_pieces_stay_fast),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
