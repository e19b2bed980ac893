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

static void test_speed_of(void **state)
{
	(void)state;
	double mib = 1024.0 * 1024.0;
	/* Nothing measured: fast. */
	assert_int_equal(bt_picker_speed_of(0, 0), BT_PICKER_FAST);
	assert_int_equal(bt_picker_speed_of(100, 0), BT_PICKER_FAST);
	/* Below a quarter of the mean and below the floor: slow. */
	assert_int_equal(bt_picker_speed_of(0.5 * mib, 2.25 * mib), BT_PICKER_SLOW);
	assert_int_equal(bt_picker_speed_of(0, 2.25 * mib), BT_PICKER_SLOW);
	/* A quarter of the mean or more: fast. */
	assert_int_equal(bt_picker_speed_of(0.6 * mib, 2.25 * mib), BT_PICKER_FAST);
	/* Far below the mean but above the floor (loopback): fast. */
	assert_int_equal(bt_picker_speed_of(2 * mib, 40 * mib), BT_PICKER_FAST);
}

/* A simulated peer: its requests out, oldest first, and how many blocks it delivers a round. */
struct sim_peer {
	enum bt_picker_speed speed;
	struct bt_block q[64];
	size_t n, target, per_round;
	size_t cancelled; /* its requests cancelled because another copy arrived */
};

static bool sim_already(void *ctx, const struct bt_block *b)
{
	struct sim_peer *sp = ctx;
	for (size_t i = 0; i < sp->n; i++)
		if (!memcmp(&sp->q[i], b, sizeof *b))
			return true;
	return false;
}

static void sim_remove(struct sim_peer *sp, size_t i)
{
	memmove(sp->q + i, sp->q + i + 1, (sp->n - i - 1) * sizeof *sp->q);
	sp->n--;
}

/* sp delivers its oldest blocks; a copy that arrives first cancels the other's request, as
 * the torrent does when the picker counts more than one request. */
static void sim_deliver(struct bt_picker *p, struct sim_peer *sp, struct sim_peer *other)
{
	for (size_t k = 0; k < sp->per_round && sp->n; k++) {
		struct bt_block b = sp->q[0];
		sim_remove(sp, 0);
		uint32_t reqs = bt_picker_requests(p, &b);
		bool complete;
		/* Every delivered block is wanted: a duplicate was cancelled before it came. */
		assert_true(bt_picker_received(p, &b, &complete));
		if (reqs > 1)
			for (size_t i = 0; i < other->n; i++)
				if (!memcmp(&other->q[i], &b, sizeof b)) {
					sim_remove(other, i);
					other->cancelled++;
					break;
				}
		if (complete)
			bt_picker_piece_passed(p, b.piece);
	}
}

/*
 * A fast peer (8 blocks a round) and a slow one (1 a round), both seeders, 32 pieces of 4
 * blocks. Until every piece has started, each piece is worked on by one class only: the slow
 * peer's blocks all come from pieces it started and the fast peer never takes (or waits on)
 * theirs. At the end the fast peer asks again for what the slow one holds, the slow peer's
 * requests are cancelled, and the download ends a round or so after the ideal 128 / 9.
 */
static void test_slow_peer_affinity(void **state)
{
	(void)state;
	uint32_t count = 32;
	struct bt_picker *p = new_picker(count, 64 * KB, (int64_t)count * 64 * KB, NULL, NULL, 11);
	struct bt_bitfield s = seeder(count);
	bt_picker_add_peer(p, &s);
	bt_picker_add_peer(p, &s);
	struct sim_peer fast = {.speed = BT_PICKER_FAST, .target = 8, .per_round = 8};
	struct sim_peer slow = {.speed = BT_PICKER_SLOW, .target = 3, .per_round = 1};
	int starter[32];
	for (uint32_t i = 0; i < count; i++)
		starter[i] = -1;
	uint32_t started = 0;
	size_t slow_blocks = 0, fast_dups_of_slow = 0;
	int rounds = 0;
	for (; !bt_picker_done(p) && rounds < 100; rounds++) {
		/* Who asks first alternates. */
		struct sim_peer *order[2] = {rounds % 2 ? &fast : &slow,
					     rounds % 2 ? &slow : &fast};
		for (int k = 0; k < 2; k++) {
			struct sim_peer *sp = order[k];
			bool all_started = started == count;
			struct bt_block got[64];
			size_t n = bt_picker_pick_as(p, &s, sp->speed, got, sp->target - sp->n,
						     sim_already, sp);
			for (size_t i = 0; i < n; i++) {
				uint32_t piece = got[i].piece;
				if (starter[piece] < 0) {
					starter[piece] = (int)sp->speed;
					started++;
				}
				if (sp == &slow) {
					slow_blocks++;
					if (!all_started)
						assert_int_equal(starter[piece], BT_PICKER_SLOW);
				} else if (!all_started) {
					assert_int_equal(starter[piece], BT_PICKER_FAST);
				} else if (sim_already(&slow, &got[i])) {
					fast_dups_of_slow++;
				}
				sp->q[sp->n++] = got[i];
			}
		}
		sim_deliver(p, &fast, &slow);
		sim_deliver(p, &slow, &fast);
	}
	assert_true(bt_picker_done(p));
	/* The slow peer did its share, and its last requests were taken over and cancelled. */
	assert_true(slow_blocks >= 8);
	assert_true(fast_dups_of_slow > 0);
	assert_true(slow.cancelled > 0);
	assert_true(rounds <= 16);
	bt_bitfield_deinit(&s);
	bt_picker_free(p);
}

/*
 * Endgame: the blocks a slow peer holds are asked of a fast peer before the blocks other fast
 * peers hold, a slow peer never makes a second request for them, and the picker counts the
 * requests (the torrent's cue to cancel).
 */
static void test_endgame_slow_first(void **state)
{
	(void)state;
	/* Two pieces of 4 blocks. */
	struct bt_picker *p = new_picker(2, 64 * KB, 128 * KB, NULL, NULL, 13);
	struct bt_bitfield s = seeder(2);
	for (int i = 0; i < 4; i++)
		bt_picker_add_peer(p, &s);
	struct sim_peer g = {.speed = BT_PICKER_FAST}, sl = {.speed = BT_PICKER_SLOW},
			sl2 = {.speed = BT_PICKER_SLOW}, f = {.speed = BT_PICKER_FAST};
	/* G (fast) starts a piece and takes all of it. */
	g.n = bt_picker_pick_as(p, &s, BT_PICKER_FAST, g.q, 4, sim_already, &g);
	assert_int_equal(g.n, 4);
	/* The slow peer starts the other piece, half of it. */
	sl.n = bt_picker_pick_as(p, &s, BT_PICKER_SLOW, sl.q, 2, sim_already, &sl);
	assert_int_equal(sl.n, 2);
	assert_int_not_equal(sl.q[0].piece, g.q[0].piece);
	assert_int_equal(sl.q[1].piece, sl.q[0].piece);
	/* Nothing left to start: G takes the slow piece's free blocks rather than idle. */
	size_t n = bt_picker_pick_as(p, &s, BT_PICKER_FAST, g.q + g.n, 2, sim_already, &g);
	assert_int_equal(n, 2);
	assert_int_equal(g.q[g.n].piece, sl.q[0].piece);
	g.n += n;
	assert_true(bt_picker_in_endgame(p));
	/* Another slow peer gets no second request for the first slow peer's blocks. */
	sl2.n = bt_picker_pick_as(p, &s, BT_PICKER_SLOW, sl2.q, 8, sim_already, &sl2);
	for (size_t i = 0; i < sl2.n; i++)
		assert_false(sim_already(&sl, &sl2.q[i]));
	/* F, with room for two, gets exactly what the slow peer holds, not what G holds. */
	f.n = bt_picker_pick_as(p, &s, BT_PICKER_FAST, f.q, 2, sim_already, &f);
	assert_int_equal(f.n, 2);
	assert_true(sim_already(&sl, &f.q[0]));
	assert_true(sim_already(&sl, &f.q[1]));
	assert_int_equal(bt_picker_requests(p, &sl.q[0]), 2);
	/* F's copy arrives: the slow peer's request is the one to cancel; then no request is out.
	 */
	bool complete;
	assert_true(bt_picker_received(p, &f.q[0], &complete));
	assert_int_equal(bt_picker_requests(p, &sl.q[0]), 0);
	assert_int_equal(bt_picker_requests(p, &g.q[0]),
			 sl2.n > 0 && sim_already(&sl2, &g.q[0]) ? 2 : 1);
	bt_bitfield_deinit(&s);
	bt_picker_free(p);
}

/* A piece whose slow peer left (its requests returned) is finished by the next peer of any
 * class: it takes that peer's class instead of waiting for the end. */
static void test_orphan_piece_adopted(void **state)
{
	(void)state;
	struct bt_picker *p = new_picker(4, 64 * KB, 4 * 64 * KB, NULL, NULL, 17);
	struct bt_bitfield s = seeder(4);
	bt_picker_add_peer(p, &s);
	struct bt_block sl[4], f[1];
	assert_int_equal(bt_picker_pick_as(p, &s, BT_PICKER_SLOW, sl, 2, NULL, NULL), 2);
	/* While the slow peer works on its piece, a fast peer starts its own. */
	assert_int_equal(bt_picker_pick_as(p, &s, BT_PICKER_FAST, f, 1, NULL, NULL), 1);
	assert_int_not_equal(f[0].piece, sl[0].piece);
	bool complete;
	assert_true(bt_picker_received(p, &sl[0], &complete));
	bt_picker_returned(p, &sl[1]); /* the slow peer is gone */
	/* The fast peer finishes its own piece and the abandoned one before it starts another. */
	struct bt_block more[6];
	assert_int_equal(bt_picker_pick_as(p, &s, BT_PICKER_FAST, more, 6, NULL, NULL), 6);
	int mine = 0, abandoned = 0;
	for (int i = 0; i < 6; i++) {
		mine += more[i].piece == f[0].piece;
		abandoned += more[i].piece == sl[0].piece;
	}
	assert_int_equal(mine, 3);
	assert_int_equal(abandoned, 3);
	assert_int_equal(bt_picker_partial_count(p), 2);
	bt_bitfield_deinit(&s);
	bt_picker_free(p);
}

/* Endgame copies come from the newest pieces first (asked for last, so at the back of the other
 * peers' queues), and the order survives pieces completing in between. */
static void test_endgame_newest_first(void **state)
{
	(void)state;
	/* Four pieces of 2 blocks. */
	struct bt_picker *p = new_picker(4, 32 * KB, 4 * 32 * KB, NULL, NULL, 19);
	struct bt_bitfield s = seeder(4);
	bt_picker_add_peer(p, &s);
	bt_picker_add_peer(p, &s);
	struct sim_peer g = {.speed = BT_PICKER_FAST}, f = {.speed = BT_PICKER_FAST};
	uint32_t order[4];
	for (int i = 0; i < 4; i++) {
		assert_int_equal(bt_picker_pick(p, &s, g.q + g.n, 2, sim_already, &g), 2);
		order[i] = g.q[g.n].piece;
		g.n += 2;
	}
	/* The oldest piece completes: the others keep their order. */
	bool complete;
	assert_true(bt_picker_received(p, &g.q[0], &complete));
	assert_true(bt_picker_received(p, &g.q[1], &complete));
	assert_true(complete);
	bt_picker_piece_passed(p, order[0]);
	f.n = bt_picker_pick(p, &s, f.q, 4, sim_already, &f);
	assert_int_equal(f.n, 4);
	assert_int_equal(f.q[0].piece, order[3]);
	assert_int_equal(f.q[1].piece, order[3]);
	assert_int_equal(f.q[2].piece, order[2]);
	assert_int_equal(f.q[3].piece, order[2]);
	bt_bitfield_deinit(&s);
	bt_picker_free(p);
}

/* A peer found slow after it was given blocks: they are marked, and a fast peer with room asks
 * again for them first; marking a block not requested (or received) changes nothing. */
static void test_mark_slow(void **state)
{
	(void)state;
	struct bt_picker *p = new_picker(1, 64 * KB, 64 * KB, NULL, NULL, 23);
	struct bt_bitfield s = seeder(1);
	for (int i = 0; i < 3; i++)
		bt_picker_add_peer(p, &s);
	struct sim_peer g = {.speed = BT_PICKER_FAST}, h = {.speed = BT_PICKER_FAST},
			f = {.speed = BT_PICKER_FAST};
	g.n = bt_picker_pick(p, &s, g.q, 2, sim_already, &g);
	h.n = bt_picker_pick(p, &s, h.q, 2, sim_already, &h);
	assert_int_equal(g.n + h.n, 4);
	/* H turns out slow. */
	for (size_t i = 0; i < h.n; i++)
		bt_picker_mark_slow(p, &h.q[i]);
	struct bt_block bogus = {.piece = 0, .begin = 100, .length = 10};
	bt_picker_mark_slow(p, &bogus);
	f.n = bt_picker_pick(p, &s, f.q, 2, sim_already, &f);
	assert_int_equal(f.n, 2);
	assert_true(sim_already(&h, &f.q[0]));
	assert_true(sim_already(&h, &f.q[1]));
	bt_bitfield_deinit(&s);
	bt_picker_free(p);
}

/*
 * Availability that drops after a search has read a chunk still makes the piece the rarest:
 * a chunk's remembered minimum must follow availability down, or a search that has found
 * pieces elsewhere would skip the chunk. Tried with the rare piece in every chunk, from
 * several random starting chunks.
 */
static void test_rarest_after_availability_drops(void **state)
{
	(void)state;
	uint32_t n = 300; /* five chunks of 64, the last one short */
	for (uint32_t rare = 0; rare < n; rare += 13) {
		struct bt_picker *p =
			new_picker(n, 16 * KB, (int64_t)n * 16 * KB, NULL, NULL, rare);
		struct bt_bitfield a = seeder(n), b = seeder(n), b2 = seeder(n), c, none;
		bt_bitfield_init(&c, n);
		bt_bitfield_init(&none, n);
		for (uint32_t i = rare / 64 * 64; i < rare / 64 * 64 + 64 && i < n; i++)
			bt_bitfield_set(&c, i);
		bt_bitfield_clear(&b2, rare);
		bt_picker_add_peer(p, &a);
		bt_picker_add_peer(p, &b);
		bt_picker_add_peer(p, &c); /* the rare piece's chunk at 3, the rest at 2 */
		struct bt_block out[1];
		/* A peer with nothing makes a search read every chunk: their minimums are exact. */
		assert_int_equal(bt_picker_pick(p, &none, out, 1, NULL, NULL), 0);
		bt_picker_remove_peer(p, &c);
		bt_picker_remove_peer(p, &b);
		bt_picker_add_peer(p, &b2); /* all at 2 but `rare`, at 1 */
		assert_int_equal(pick_one(p, &a), rare);
		/* It is started: the rest come next. */
		uint32_t other = pick_one(p, &a);
		assert_true(other != rare);
		bt_bitfield_deinit(&a);
		bt_bitfield_deinit(&b);
		bt_bitfield_deinit(&b2);
		bt_bitfield_deinit(&c);
		bt_bitfield_deinit(&none);
		bt_picker_free(p);
	}
}

/* The model: what the picker must agree with, kept by plain O(n) bookkeeping. */
struct model {
	uint32_t n;
	uint8_t *state; /* 0 skip, 1 want, 2 started, 3 have */
	int *avail;
	struct bt_block *out; /* requested, not yet received or returned (copies included) */
	size_t nout;
};

static uint64_t model_rng;
static uint32_t rnd(uint32_t below)
{
	model_rng ^= model_rng << 13;
	model_rng ^= model_rng >> 7;
	model_rng ^= model_rng << 17;
	return (uint32_t)(model_rng % below);
}

static void model_check(const struct bt_picker *p, const struct model *m,
			const struct bt_bitfield *peers, const bool *present, int npeers)
{
	uint32_t left = 0;
	size_t started = 0;
	for (uint32_t i = 0; i < m->n; i++) {
		left += m->state[i] == 1 || m->state[i] == 2;
		started += m->state[i] == 2;
	}
	assert_int_equal(bt_picker_pieces_left(p), left);
	assert_int_equal(bt_picker_partial_count(p), started);
	assert_int_equal(bt_picker_done(p), left == 0);
	for (int k = 0; k < npeers; k++) {
		if (!present[k])
			continue;
		bool want = false;
		for (uint32_t i = 0; i < m->n && !want; i++)
			want = (m->state[i] == 1 || m->state[i] == 2) &&
			       bt_bitfield_get(&peers[k], i);
		assert_int_equal(bt_picker_interesting(p, &peers[k]), want);
	}
}

/*
 * Random peers come and go, send haves, get blocks picked, received, returned, passed and
 * failed, against an O(n) reference: every piece a pick starts is, when it starts, at the
 * lowest availability among the wanted pieces the peer has; blocks are of pieces the peer has;
 * and the counters and interest agree throughout.
 */
static void test_model_random(void **state)
{
	(void)state;
	enum { PEERS = 6 };
	for (uint64_t seed = 1; seed <= 12; seed++) {
		model_rng = seed * 0x9E3779B97F4A7C15ULL | 1;
		uint32_t n = 150 + rnd(250);
		int64_t plen = 32 * KB, total = (int64_t)n * plen - rnd(20000) - 1;
		struct bt_bitfield want, have;
		bt_bitfield_init(&want, n);
		bt_bitfield_init(&have, n);
		struct model m = {.n = n};
		m.state = calloc(n, 1);
		m.avail = calloc(n, sizeof *m.avail);
		m.out = calloc(4096, sizeof *m.out);
		for (uint32_t i = 0; i < n; i++) {
			bool w = rnd(10) != 0, h = rnd(8) == 0;
			if (w)
				bt_bitfield_set(&want, i);
			if (h)
				bt_bitfield_set(&have, i);
			m.state[i] = !w ? 0 : h ? 3 : 1;
		}
		struct bt_picker *p = new_picker(n, plen, total, &have, &want, seed);
		struct bt_bitfield peers[PEERS];
		bool present[PEERS] = {false};
		for (int k = 0; k < PEERS; k++) {
			bt_bitfield_init(&peers[k], n);
			uint32_t density = k == 0 ? 1 : 2 + rnd(5); /* peer 0: a seeder */
			for (uint32_t i = 0; i < n; i++)
				if (rnd(density) == 0)
					bt_bitfield_set(&peers[k], i);
		}
		for (int op = 0; op < 4000; op++) {
			int k = (int)rnd(PEERS);
			uint32_t r = rnd(100);
			if (r < 8) {
				if (present[k]) {
					bt_picker_remove_peer(p, &peers[k]);
					for (uint32_t i = 0; i < n; i++)
						m.avail[i] -= bt_bitfield_get(&peers[k], i);
				} else {
					bt_picker_add_peer(p, &peers[k]);
					for (uint32_t i = 0; i < n; i++)
						m.avail[i] += bt_bitfield_get(&peers[k], i);
				}
				present[k] = !present[k];
			} else if (r < 14) {
				/* A HAVE from a peer we do not model: availability up by one. */
				uint32_t i = rnd(n);
				bt_picker_peer_have(p, i);
				m.avail[i]++;
			} else if (r < 50 && present[k]) {
				struct bt_block got[8];
				size_t max = 1 + rnd(8);
				size_t g = bt_picker_pick(p, &peers[k], got, max, NULL, NULL);
				for (size_t j = 0; j < g; j++) {
					uint32_t i = got[j].piece;
					assert_true(bt_bitfield_get(&peers[k], i));
					assert_true(m.state[i] == 1 || m.state[i] == 2);
					if (m.state[i] == 1) {
						int low = INT32_MAX;
						for (uint32_t x = 0; x < n; x++)
							if (m.state[x] == 1 && m.avail[x] > 0 &&
							    bt_bitfield_get(&peers[k], x) &&
							    m.avail[x] < low)
								low = m.avail[x];
						if (m.avail[i] != low)
							fail_msg(
								"seed %llu op %d: started piece %u "
								"at "
								"availability %d, the lowest is %d",
								(unsigned long long)seed, op, i,
								m.avail[i], low);
						m.state[i] = 2;
					}
					if (m.nout < 4096)
						m.out[m.nout++] = got[j];
					else
						bt_picker_returned(p, &got[j]);
				}
			} else if (r < 85 && m.nout) {
				size_t j = rnd((uint32_t)m.nout);
				struct bt_block b = m.out[j];
				bool complete;
				bool fresh = bt_picker_received(p, &b, &complete);
				/* Every other copy is cancelled: it will not arrive. */
				for (size_t x = 0; x < m.nout;)
					if (m.out[x].piece == b.piece && m.out[x].begin == b.begin)
						m.out[x] = m.out[--m.nout];
					else
						x++;
				assert_true(fresh);
				if (complete) {
					if (rnd(5)) {
						bt_picker_piece_passed(p, b.piece);
						m.state[b.piece] = 3;
					} else {
						bt_picker_piece_failed(p, b.piece);
						m.state[b.piece] = 1;
					}
				}
			} else if (m.nout) {
				size_t j = rnd((uint32_t)m.nout);
				bt_picker_returned(p, &m.out[j]);
				m.out[j] = m.out[--m.nout];
			}
			model_check(p, &m, peers, present, PEERS);
		}
		for (int k = 0; k < PEERS; k++)
			bt_bitfield_deinit(&peers[k]);
		bt_bitfield_deinit(&want);
		bt_bitfield_deinit(&have);
		free(m.state);
		free(m.avail);
		free(m.out);
		bt_picker_free(p);
	}
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
		cmocka_unit_test(test_speed_of),
		cmocka_unit_test(test_slow_peer_affinity),
		cmocka_unit_test(test_endgame_slow_first),
		cmocka_unit_test(test_orphan_piece_adopted),
		cmocka_unit_test(test_endgame_newest_first),
		cmocka_unit_test(test_mark_slow),
		cmocka_unit_test(test_rarest_after_availability_drops),
		cmocka_unit_test(test_model_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
