#include "bt/metadata.h"

#include "bt/hash.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* An "info dict" of n bytes (any bytes do: the fetcher judges only the hash) and its hash. */
struct fixture {
	uint8_t *info;
	size_t len;
	uint8_t hash[BT_HASH_LEN];
};

static struct fixture make_info(size_t n)
{
	struct fixture f = {.info = malloc(n), .len = n};
	for (size_t i = 0; i < n; i++)
		f.info[i] = (uint8_t)(i * 7 + i / 251);
	bt_sha1(f.info, n, f.hash);
	return f;
}

static size_t blen(const struct fixture *f, uint32_t b)
{
	size_t off = (size_t)b * BT_METADATA_BLOCK;
	return f->len - off < BT_METADATA_BLOCK ? f->len - off : BT_METADATA_BLOCK;
}

static enum bt_metadata_result serve(struct bt_metadata *md, const struct fixture *f, int peer,
				     uint32_t b, double now, bool lie)
{
	uint8_t blk[BT_METADATA_BLOCK];
	memcpy(blk, f->info + (size_t)b * BT_METADATA_BLOCK, blen(f, b));
	if (lie)
		blk[0] ^= 0xff;
	struct bt_err err = {""};
	enum bt_metadata_result r =
		bt_metadata_on_data(md, peer, b, (int64_t)f->len, blk, blen(f, b), now, &err);
	if (r == BT_METADATA_IGNORED)
		fail_msg("block %u from %d ignored: %s", b, peer, err.msg);
	return r;
}

static void test_add_peer(void **state)
{
	(void)state;
	struct fixture f = make_info(100);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	assert_int_equal(bt_metadata_add_peer(md, 1, -1), -EINVAL);
	assert_int_equal(bt_metadata_add_peer(md, 1, 0), -EINVAL);
	assert_int_equal(bt_metadata_add_peer(md, 1, (int64_t)1 << 40), -EINVAL);
	assert_int_equal(bt_metadata_add_peer(md, 1, BT_METADATA_MAX_SIZE + 1), -EINVAL);
	assert_int_equal(bt_metadata_size(md), 0);
	assert_int_equal(bt_metadata_next_request(md, 1, 0), -1); /* unknown peer */
	assert_int_equal(bt_metadata_add_peer(md, 1, 100), 0);
	assert_int_equal(bt_metadata_add_peer(md, 1, 100), -EEXIST);
	assert_int_equal(bt_metadata_size(md), 100);
	struct bt_metadata_progress p;
	bt_metadata_progress(md, &p);
	assert_int_equal(p.peers, 1);
	assert_int_equal(p.blocks_total, 1);
	assert_int_equal(p.blocks_have, 0);
	assert_null(bt_metadata_info(md, NULL));
	bt_metadata_remove_peer(md, 42); /* unknown: ignored */
	bt_metadata_free(md);
	bt_metadata_free(NULL);
	free(f.info);
}

static void test_single_peer_fetch(void **state)
{
	(void)state;
	struct fixture f = make_info(2 * BT_METADATA_BLOCK + 7232);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	assert_int_equal(bt_metadata_add_peer(md, 5, (int64_t)f.len), 0);
	assert_int_equal(bt_metadata_next_request(md, 5, 0), 0);
	assert_int_equal(bt_metadata_next_request(md, 5, 0), 1);
	assert_int_equal(bt_metadata_next_request(md, 5, 0), 2);
	/* Every block is asked of it once; endgame does not ask the same peer twice. */
	assert_int_equal(bt_metadata_next_request(md, 5, 0), -1);
	assert_int_equal(serve(md, &f, 5, 2, 1, false), BT_METADATA_OK);
	assert_int_equal(serve(md, &f, 5, 0, 1, false), BT_METADATA_OK);
	struct bt_metadata_progress p;
	bt_metadata_progress(md, &p);
	assert_int_equal(p.blocks_have, 2);
	assert_int_equal(p.blocks_total, 3);
	assert_int_equal(serve(md, &f, 5, 1, 1, false), BT_METADATA_COMPLETE);
	assert_true(bt_metadata_complete(md));
	size_t len;
	const uint8_t *info = bt_metadata_info(md, &len);
	assert_int_equal(len, f.len);
	assert_memory_equal(info, f.info, f.len);
	assert_int_equal(bt_metadata_next_request(md, 5, 2), -1);
	assert_false(bt_metadata_banned(md, 5));
	bt_metadata_free(md);
	free(f.info);
}

static enum bt_metadata_result data(struct bt_metadata *md, int peer, uint32_t piece, int64_t total,
				    size_t len, struct bt_err *err)
{
	static uint8_t zeros[BT_METADATA_BLOCK + 1];
	return bt_metadata_on_data(md, peer, piece, total, zeros, len, 0, err);
}

static void expect_ignored(struct bt_metadata *md, int peer, uint32_t piece, int64_t total,
			   size_t len, const char *why)
{
	struct bt_err err = {""};
	if (data(md, peer, piece, total, len, &err) != BT_METADATA_IGNORED || !strstr(err.msg, why))
		fail_msg("block %u len %zu total %lld: '%s', want '...%s...'", piece, len,
			 (long long)total, err.msg, why);
}

/* Every block is 16 KiB except the last, which holds the rest; nothing else is taken. */
static void test_ignored_data(void **state)
{
	(void)state;
	struct fixture f = make_info(BT_METADATA_BLOCK + 100);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	int64_t n = (int64_t)f.len;
	assert_int_equal(bt_metadata_add_peer(md, 1, n), 0);
	expect_ignored(md, 1, 0, n, BT_METADATA_BLOCK, "not requested");
	assert_int_equal(bt_metadata_next_request(md, 1, 0), 0);
	assert_int_equal(bt_metadata_next_request(md, 1, 0), 1);
	expect_ignored(md, 2, 0, n, BT_METADATA_BLOCK, "unknown peer");
	expect_ignored(md, 1, 0, n + 1, BT_METADATA_BLOCK, "total_size differs");
	expect_ignored(md, 1, 0, 2 * BT_METADATA_BLOCK, BT_METADATA_BLOCK, "total_size differs");
	expect_ignored(md, 1, 2, n, 100, "past the end");
	expect_ignored(md, 1, 0, n, 100, "wrong block length");
	expect_ignored(md, 1, 0, n, BT_METADATA_BLOCK - 1, "wrong block length");
	expect_ignored(md, 1, 1, n, BT_METADATA_BLOCK, "wrong block length");
	expect_ignored(md, 1, 1, n, 99, "wrong block length");
	expect_ignored(md, 1, 1, n, 101, "wrong block length");
	struct bt_err err;
	assert_int_equal(data(md, 1, 1, n, 100, &err), BT_METADATA_OK);
	/* The same block again: no longer requested. */
	expect_ignored(md, 1, 1, n, 100, "not requested");
	bt_metadata_free(md);
	free(f.info);
}

/* At most BT_METADATA_PER_PEER in flight per peer; a second copy only in endgame. */
static void test_spread_and_endgame(void **state)
{
	(void)state;
	struct fixture f = make_info(10 * BT_METADATA_BLOCK);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	for (int p = 1; p <= 3; p++)
		assert_int_equal(bt_metadata_add_peer(md, p, (int64_t)f.len), 0);
	int got[3][5];
	for (int p = 0; p < 3; p++)
		for (int k = 0; k < 5; k++)
			got[p][k] = bt_metadata_next_request(md, p + 1, 0);
	for (int k = 0; k < 4; k++) {
		assert_int_equal(got[0][k], k);
		assert_int_equal(got[1][k], 4 + k);
	}
	assert_int_equal(got[0][4], -1);
	assert_int_equal(got[1][4], -1);
	assert_int_equal(got[2][0], 8);
	assert_int_equal(got[2][1], 9);
	/* Nothing unasked is left: peer 3 now asks for blocks already asked of others. */
	assert_int_equal(got[2][2], 0);
	assert_int_equal(got[2][3], 1);
	assert_int_equal(got[2][4], -1);
	/* Peer 3 answers block 0 first; peer 1's copy then arrives as unrequested. */
	assert_int_equal(serve(md, &f, 3, 0, 1, false), BT_METADATA_OK);
	expect_ignored(md, 1, 0, (int64_t)f.len, BT_METADATA_BLOCK, "not requested");
	/* Peer 1's slot for block 0 came free: still endgame, the first block not asked of it. */
	assert_int_equal(bt_metadata_next_request(md, 1, 1), 4);
	assert_int_equal(bt_metadata_next_request(md, 1, 1), -1);
	bt_metadata_free(md);
	free(f.info);
}

/*
 * A swarm simulation: each round every peer is asked for what it may take, then every request
 * is answered in turn (`liar` flips a byte of every block it sends). Returns the round it
 * completed in, or -1.
 */
static int simulate(struct bt_metadata *md, const struct fixture *f, const int *peers, int n,
		    int liar, int *failures)
{
	for (int round = 0; round < 100; round++) {
		int asked[16][BT_METADATA_PER_PEER + 1];
		int count[16] = {0};
		assert_true(n <= 16);
		for (int i = 0; i < n; i++)
			while (count[i] <= BT_METADATA_PER_PEER &&
			       (asked[i][count[i]] =
					bt_metadata_next_request(md, peers[i], round)) >= 0)
				count[i]++;
		for (int i = 0; i < n; i++)
			assert_true(count[i] <= BT_METADATA_PER_PEER);
		/* Answers interleave between peers, as they would on the network. */
		for (int k = 0; k < BT_METADATA_PER_PEER; k++) {
			for (int i = 0; i < n; i++) {
				if (k >= count[i])
					continue;
				uint32_t b = (uint32_t)asked[i][k];
				struct bt_err err;
				const uint8_t *blk = f->info + (size_t)b * BT_METADATA_BLOCK;
				uint8_t bad[BT_METADATA_BLOCK];
				if (peers[i] == liar) {
					memcpy(bad, blk, blen(f, b));
					bad[0] ^= 0xff;
					blk = bad;
				}
				/* Requests reset by a failure come back as ignored: that is fine.
				 */
				enum bt_metadata_result r =
					bt_metadata_on_data(md, peers[i], b, (int64_t)f->len, blk,
							    blen(f, b), round, &err);
				if (r == BT_METADATA_FAILED)
					(*failures)++;
				if (r == BT_METADATA_COMPLETE)
					return round;
			}
		}
	}
	return -1;
}

static void liar_among_three(int liar)
{
	struct fixture f = make_info(37 * BT_METADATA_BLOCK + 1000);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	int peers[3] = {10, 11, 12};
	for (int i = 0; i < 3; i++)
		assert_int_equal(bt_metadata_add_peer(md, peers[i], (int64_t)f.len), 0);
	int failures = 0;
	assert_true(simulate(md, &f, peers, 3, liar, &failures) >= 0);
	assert_true(failures >= 1);
	size_t len;
	const uint8_t *info = bt_metadata_info(md, &len);
	assert_non_null(info);
	assert_int_equal(len, f.len);
	assert_memory_equal(info, f.info, f.len);
	for (int i = 0; i < 3; i++)
		assert_int_equal(bt_metadata_banned(md, peers[i]), peers[i] == liar);
	bt_metadata_free(md);
	free(f.info);
}

static void test_liar_among_three(void **state)
{
	(void)state;
	liar_among_three(10); /* asked first: becomes the first single source, and fails */
	liar_among_three(11);
	liar_among_three(12); /* never a single source: named by its remembered blocks */
}

static void test_sole_liar_banned(void **state)
{
	(void)state;
	struct fixture f = make_info(3 * BT_METADATA_BLOCK);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	assert_int_equal(bt_metadata_add_peer(md, 1, (int64_t)f.len), 0);
	assert_int_equal(bt_metadata_next_request(md, 1, 0), 0);
	assert_int_equal(bt_metadata_next_request(md, 1, 0), 1);
	assert_int_equal(bt_metadata_next_request(md, 1, 0), 2);
	assert_int_equal(serve(md, &f, 1, 0, 0, false), BT_METADATA_OK);
	assert_int_equal(serve(md, &f, 1, 1, 0, true), BT_METADATA_OK);
	assert_int_equal(serve(md, &f, 1, 2, 0, false), BT_METADATA_FAILED);
	assert_true(bt_metadata_banned(md, 1));
	assert_null(bt_metadata_info(md, NULL));
	assert_int_equal(bt_metadata_next_request(md, 1, 1), -1);
	struct bt_metadata_progress p;
	bt_metadata_progress(md, &p);
	assert_int_equal(p.blocks_have, 0);
	assert_int_equal(p.peers, 0);
	/* An honest peer arriving later fetches it all again. */
	assert_int_equal(bt_metadata_add_peer(md, 2, (int64_t)f.len), 0);
	int failures = 0, peers[1] = {2};
	assert_true(simulate(md, &f, peers, 1, -1, &failures) >= 0);
	assert_int_equal(failures, 0);
	assert_true(bt_metadata_complete(md));
	bt_metadata_free(md);
	free(f.info);
}

/* The first plausible size is followed; another is used once the first one's peers are gone. */
static void test_size_disagreement(void **state)
{
	(void)state;
	struct fixture f = make_info(2 * BT_METADATA_BLOCK + 5);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	assert_int_equal(bt_metadata_add_peer(md, 1, 100), 0);
	assert_int_equal(bt_metadata_add_peer(md, 2, (int64_t)f.len), 0);
	assert_int_equal(bt_metadata_size(md), 100);
	assert_int_equal(bt_metadata_next_request(md, 2, 0), -1);
	assert_int_equal(bt_metadata_next_request(md, 1, 0), 0);
	uint8_t junk[100] = {0};
	assert_int_equal(bt_metadata_on_data(md, 1, 0, 100, junk, 100, 0, NULL),
			 BT_METADATA_FAILED);
	assert_true(bt_metadata_banned(md, 1));
	assert_int_equal(bt_metadata_size(md), (int64_t)f.len);
	int failures = 0, peers[1] = {2};
	assert_true(simulate(md, &f, peers, 1, -1, &failures) >= 0);
	assert_true(bt_metadata_complete(md));
	assert_false(bt_metadata_banned(md, 2));

	/* A peer of the followed size that leaves hands the fetch to the other size. */
	struct bt_metadata *md2 = bt_metadata_new(f.hash);
	assert_int_equal(bt_metadata_add_peer(md2, 1, 100), 0);
	assert_int_equal(bt_metadata_add_peer(md2, 2, (int64_t)f.len), 0);
	bt_metadata_remove_peer(md2, 1);
	assert_int_equal(bt_metadata_size(md2), (int64_t)f.len);
	assert_int_equal(bt_metadata_next_request(md2, 2, 0), 0);
	bt_metadata_free(md2);
	bt_metadata_free(md);
	free(f.info);
}

static void test_timeouts(void **state)
{
	(void)state;
	struct fixture f = make_info(BT_METADATA_BLOCK);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	assert_int_equal(bt_metadata_add_peer(md, 1, (int64_t)f.len), 0);
	assert_int_equal(bt_metadata_add_peer(md, 2, (int64_t)f.len), 0);
	assert_int_equal(bt_metadata_next_request(md, 1, 100), 0);
	assert_int_equal(bt_metadata_next_request(md, 2, 100), 0); /* endgame copy */
	assert_int_equal(bt_metadata_next_request(md, 2, 100), -1);
	assert_int_equal(bt_metadata_next_request(md, 1, 100), -1);
	assert_true(bt_metadata_tick(md, 105) == 110);
	/* Before the timeout nothing is freed. */
	assert_int_equal(bt_metadata_next_request(md, 1, 109.9), -1);
	assert_true(bt_metadata_tick(md, 109.9) == 110);
	double next = bt_metadata_tick(md, 110);
	assert_true(next == 110 + BT_METADATA_TIMEOUT);
	/* Both requests timed out: a late answer is ignored, a new request is made. */
	struct bt_err err = {""};
	uint8_t blk[BT_METADATA_BLOCK];
	memcpy(blk, f.info, f.len);
	assert_int_equal(bt_metadata_on_data(md, 1, 0, (int64_t)f.len, blk, f.len, 111, &err),
			 BT_METADATA_IGNORED);
	assert_non_null(strstr(err.msg, "not requested"));
	assert_int_equal(bt_metadata_next_request(md, 2, 111), 0);
	assert_int_equal(serve(md, &f, 2, 0, 112, false), BT_METADATA_COMPLETE);
	bt_metadata_free(md);
	free(f.info);
}

static void test_reject(void **state)
{
	(void)state;
	struct fixture f = make_info(2 * BT_METADATA_BLOCK);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	assert_int_equal(bt_metadata_add_peer(md, 1, (int64_t)f.len), 0);
	assert_int_equal(bt_metadata_add_peer(md, 2, (int64_t)f.len), 0);
	assert_int_equal(bt_metadata_next_request(md, 1, 0), 0);
	assert_int_equal(bt_metadata_next_request(md, 1, 0), 1);
	bt_metadata_on_reject(md, 1, 0, 0);
	/* Block 0 is free again and goes to peer 2; peer 1 rests. */
	assert_int_equal(bt_metadata_next_request(md, 2, 1), 0);
	assert_int_equal(bt_metadata_next_request(md, 1, 1), -1);
	/* The earliest deadline: peer 1's request for block 1, made at 0. */
	assert_true(bt_metadata_tick(md, 1) == BT_METADATA_TIMEOUT);
	assert_int_equal(serve(md, &f, 2, 0, 2, false), BT_METADATA_OK);
	/* Its other request still stands, and is answered. */
	assert_int_equal(serve(md, &f, 1, 1, 3, false), BT_METADATA_COMPLETE);

	struct bt_metadata *md2 = bt_metadata_new(f.hash);
	assert_int_equal(bt_metadata_add_peer(md2, 1, (int64_t)f.len), 0);
	assert_int_equal(bt_metadata_next_request(md2, 1, 0), 0);
	bt_metadata_on_reject(md2, 1, 0, 0);
	assert_true(bt_metadata_tick(md2, 1) == BT_METADATA_REJECT_WAIT);
	assert_int_equal(bt_metadata_next_request(md2, 1, 29.9), -1);
	assert_int_equal(bt_metadata_next_request(md2, 1, BT_METADATA_REJECT_WAIT), 0);
	bt_metadata_free(md2);
	bt_metadata_free(md);
	free(f.info);
}

static void test_remove_peer_returns_blocks(void **state)
{
	(void)state;
	struct fixture f = make_info(6 * BT_METADATA_BLOCK);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	assert_int_equal(bt_metadata_add_peer(md, 1, (int64_t)f.len), 0);
	assert_int_equal(bt_metadata_add_peer(md, 2, (int64_t)f.len), 0);
	for (int k = 0; k < 4; k++)
		assert_int_equal(bt_metadata_next_request(md, 1, 0), k);
	assert_int_equal(serve(md, &f, 1, 2, 0, false), BT_METADATA_OK);
	bt_metadata_remove_peer(md, 1);
	assert_int_equal(bt_metadata_next_request(md, 2, 0), 0);
	assert_int_equal(bt_metadata_next_request(md, 2, 0), 1);
	assert_int_equal(bt_metadata_next_request(md, 2, 0), 3);
	assert_int_equal(bt_metadata_next_request(md, 2, 0), 4);
	assert_int_equal(bt_metadata_next_request(md, 2, 0), -1);
	struct bt_metadata_progress p;
	bt_metadata_progress(md, &p);
	assert_int_equal(p.peers, 1);
	assert_int_equal(p.blocks_have, 1); /* the block it sent stays */
	assert_int_equal(p.blocks_total, 6);
	bt_metadata_free(md);
	free(f.info);
}

/*
 * After a mixed assembly fails, each assembly comes from one peer; a source that stalls or
 * rejects hands over to another, and the liar is named once the true bytes are known.
 */
static void single_source_handover(bool by_reject)
{
	struct fixture f = make_info(2 * BT_METADATA_BLOCK);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	assert_int_equal(bt_metadata_add_peer(md, 1, (int64_t)f.len), 0);
	assert_int_equal(bt_metadata_add_peer(md, 2, (int64_t)f.len), 0);
	assert_int_equal(bt_metadata_next_request(md, 1, 0), 0);
	assert_int_equal(bt_metadata_next_request(md, 1, 0), 1);
	assert_int_equal(bt_metadata_next_request(md, 2, 0), 0);
	assert_int_equal(bt_metadata_next_request(md, 2, 0), 1);
	assert_int_equal(serve(md, &f, 1, 0, 0, false), BT_METADATA_OK);
	assert_int_equal(serve(md, &f, 2, 1, 0, true), BT_METADATA_FAILED);
	/* Two contributors: neither is banned yet. */
	assert_false(bt_metadata_banned(md, 1));
	assert_false(bt_metadata_banned(md, 2));
	/* Peer 2 asks first and becomes the single source; peer 1 waits. */
	assert_int_equal(bt_metadata_next_request(md, 2, 1), 0);
	assert_int_equal(bt_metadata_next_request(md, 2, 1), 1);
	assert_int_equal(bt_metadata_next_request(md, 1, 1), -1);
	assert_int_equal(serve(md, &f, 2, 0, 2, false), BT_METADATA_OK);
	double t;
	if (by_reject) {
		bt_metadata_on_reject(md, 2, 1, 3);
		t = 3;
	} else {
		t = bt_metadata_tick(md, 5);
		assert_true(t == 1 + BT_METADATA_TIMEOUT);
		bt_metadata_tick(md, t);
	}
	/* Its assembly is dropped with it: peer 1 starts a whole one. */
	struct bt_metadata_progress p;
	bt_metadata_progress(md, &p);
	assert_int_equal(p.blocks_have, 0);
	assert_int_equal(bt_metadata_next_request(md, 2, t), -1); /* resting */
	assert_int_equal(bt_metadata_next_request(md, 1, t), 0);
	assert_int_equal(bt_metadata_next_request(md, 1, t), 1);
	assert_int_equal(serve(md, &f, 1, 1, t, false), BT_METADATA_OK);
	assert_int_equal(serve(md, &f, 1, 0, t, false), BT_METADATA_COMPLETE);
	assert_true(bt_metadata_banned(md, 2));
	assert_false(bt_metadata_banned(md, 1));
	bt_metadata_free(md);
	free(f.info);
}

static void test_single_source_handover(void **state)
{
	(void)state;
	single_source_handover(false);
	single_source_handover(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_peer),
		cmocka_unit_test(test_single_peer_fetch),
		cmocka_unit_test(test_ignored_data),
		cmocka_unit_test(test_spread_and_endgame),
		cmocka_unit_test(test_liar_among_three),
		cmocka_unit_test(test_sole_liar_banned),
		cmocka_unit_test(test_size_disagreement),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_reject),
		cmocka_unit_test(test_remove_peer_returns_blocks),
		cmocka_unit_test(test_single_source_handover),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
