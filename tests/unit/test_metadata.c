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

/* The assembled bytes, read back through bt_metadata_read, are exactly the fixture's. */
static void expect_bytes(const struct bt_metadata *md, const struct fixture *f)
{
	uint8_t *got = malloc(f->len);
	assert_int_equal(bt_metadata_read(md, 0, got, f->len), 0);
	assert_memory_equal(got, f->info, f->len);
	assert_int_equal(bt_metadata_read(md, 1, got, f->len), -EINVAL);
	free(got);
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
	uint8_t none[1];
	/* Nothing complete yet: nothing to read. */
	assert_int_equal(bt_metadata_read(md, 0, none, 1), -EINVAL);
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
	assert_int_equal(bt_metadata_size(md), (int64_t)f.len);
	expect_bytes(md, &f);
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

static void liar_among_three_of(int liar, size_t size)
{
	struct fixture f = make_info(size);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	int peers[3] = {10, 11, 12};
	for (int i = 0; i < 3; i++)
		assert_int_equal(bt_metadata_add_peer(md, peers[i], (int64_t)f.len), 0);
	int failures = 0;
	assert_true(simulate(md, &f, peers, 3, liar, &failures) >= 0);
	assert_true(failures >= 1);
	assert_int_equal(bt_metadata_in_file(md), size > BT_METADATA_IN_MEMORY);
	expect_bytes(md, &f);
	for (int i = 0; i < 3; i++)
		assert_int_equal(bt_metadata_banned(md, peers[i]), peers[i] == liar);
	bt_metadata_free(md);
	free(f.info);
}

static void liar_among_three(int liar)
{
	liar_among_three_of(liar, 37 * BT_METADATA_BLOCK + 1000);
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
	uint8_t none[1];
	assert_int_equal(bt_metadata_read(md, 0, none, 1), -EINVAL); /* nothing complete */
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

/* Just over the limit: 65 blocks, the last of 4 KiB, assembled in a temporary file. */
#define FILE_SIZE ((size_t)BT_METADATA_IN_MEMORY + 4096)

/* A large dict: blocks answered in reverse order of asking, bad ones ignored as in memory. */
static void test_file_out_of_order(void **state)
{
	(void)state;
	struct fixture f = make_info(FILE_SIZE);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	assert_int_equal(bt_metadata_add_peer(md, 7, (int64_t)f.len), 0);
	assert_true(bt_metadata_in_file(md));
	assert_null(bt_metadata_error(md));
	struct bt_metadata_progress p;
	bt_metadata_progress(md, &p);
	assert_int_equal(p.blocks_total, 65);
	/* The same checks as in memory, with the same messages. */
	expect_ignored(md, 7, 65, (int64_t)f.len, BT_METADATA_BLOCK, "past the end");
	expect_ignored(md, 7, 0, (int64_t)f.len - 1, BT_METADATA_BLOCK, "total_size differs");
	expect_ignored(md, 7, 64, (int64_t)f.len, BT_METADATA_BLOCK, "wrong block length");
	expect_ignored(md, 7, 3, (int64_t)f.len, BT_METADATA_BLOCK, "not requested");
	enum bt_metadata_result r = BT_METADATA_OK;
	uint8_t buf[1];
	assert_int_equal(bt_metadata_read(md, 0, buf, 1), -EINVAL); /* not complete */
	while (r == BT_METADATA_OK) {
		int asked[BT_METADATA_PER_PEER], n = 0;
		while (n < BT_METADATA_PER_PEER &&
		       (asked[n] = bt_metadata_next_request(md, 7, 0)) >= 0)
			n++;
		assert_true(n > 0);
		while (n-- > 0 && r == BT_METADATA_OK)
			r = serve(md, &f, 7, (uint32_t)asked[n], 0, false);
	}
	assert_int_equal(r, BT_METADATA_COMPLETE);
	assert_true(bt_metadata_complete(md));
	assert_true(bt_metadata_in_file(md));
	expect_bytes(md, &f);
	assert_int_equal(bt_metadata_read(md, FILE_SIZE - 10, buf, 1), 0);
	assert_int_equal(buf[0], f.info[FILE_SIZE - 10]);
	bt_metadata_free(md);
	free(f.info);
}

/* One bad block makes the hash (read back from the file) fail; the liar and its blocks go. */
static void test_file_bad_block(void **state)
{
	(void)state;
	struct fixture f = make_info(FILE_SIZE);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	assert_int_equal(bt_metadata_add_peer(md, 1, (int64_t)f.len), 0);
	enum bt_metadata_result r = BT_METADATA_OK;
	while (r == BT_METADATA_OK) {
		int b = bt_metadata_next_request(md, 1, 0);
		assert_true(b >= 0);
		r = serve(md, &f, 1, (uint32_t)b, 0, b == 40);
	}
	assert_int_equal(r, BT_METADATA_FAILED);
	assert_true(bt_metadata_banned(md, 1));
	assert_false(bt_metadata_complete(md));
	assert_null(bt_metadata_error(md));
	struct bt_metadata_progress p;
	bt_metadata_progress(md, &p);
	assert_int_equal(p.blocks_have, 0);
	/* An honest peer fetches it all again into the same file, over the bad block. */
	assert_int_equal(bt_metadata_add_peer(md, 2, (int64_t)f.len), 0);
	int failures = 0, peers[1] = {2};
	assert_true(simulate(md, &f, peers, 1, -1, &failures) >= 0);
	assert_int_equal(failures, 0);
	expect_bytes(md, &f);
	bt_metadata_free(md);
	free(f.info);
}

/* Several peers, one lying: named by the hashes of its blocks, read back from the file. */
static void test_file_liar_among_three(void **state)
{
	(void)state;
	liar_among_three_of(11, FILE_SIZE);
	liar_among_three_of(12, FILE_SIZE);
}

/* A temporary directory that cannot hold the file: one line naming it; nothing is asked. */
static void test_file_tmpdir_fails(void **state)
{
	(void)state;
	const char *old = getenv("TMPDIR");
	char *saved = old ? strdup(old) : NULL;
	setenv("TMPDIR", "/nonexistent/magnetmem-dir", 1);
	struct fixture f = make_info(FILE_SIZE);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	assert_int_equal(bt_metadata_add_peer(md, 1, (int64_t)f.len), 0);
	const char *why = bt_metadata_error(md);
	assert_non_null(why);
	assert_non_null(
		strstr(why, "cannot make a temporary file in '/nonexistent/magnetmem-dir'"));
	assert_null(strchr(why, '\n'));
	assert_int_equal(bt_metadata_next_request(md, 1, 0), -1);
	expect_ignored(md, 1, 0, (int64_t)f.len, BT_METADATA_BLOCK, "the fetch has failed");
	bt_metadata_free(md);
	/* A small dict needs no file and is fetched as ever. */
	struct fixture small = make_info(1000);
	md = bt_metadata_new(small.hash);
	assert_int_equal(bt_metadata_add_peer(md, 1, (int64_t)small.len), 0);
	assert_null(bt_metadata_error(md));
	assert_int_equal(bt_metadata_next_request(md, 1, 0), 0);
	assert_int_equal(serve(md, &small, 1, 0, 0, false), BT_METADATA_COMPLETE);
	bt_metadata_free(md);
	if (saved)
		setenv("TMPDIR", saved, 1);
	else
		unsetenv("TMPDIR");
	free(saved);
	free(f.info);
	free(small.info);
}

/*
 * A real info dict of 60,000 pieces (1.2 MB of hashes), fetched and parsed from the file: the
 * metainfo spills, keeps that file, and serves its hashes and blocks from it.
 */
static void test_file_parse(void **state)
{
	(void)state;
	const uint32_t pieces = 60000;
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_printf(&b, "d6:lengthi%llue4:name4:big012:piece lengthi16384e6:pieces%u:",
		      (unsigned long long)pieces * 16384, pieces * BT_SHA1_LEN);
	for (uint32_t i = 0; i < pieces; i++) {
		uint8_t h[BT_SHA1_LEN];
		bt_sha1(&i, sizeof i, h);
		bt_buf_add(&b, h, sizeof h);
	}
	bt_buf_addc(&b, 'e');
	struct fixture f = {.info = b.data, .len = b.len};
	bt_sha1(f.info, f.len, f.hash);
	struct bt_metadata *md = bt_metadata_new(f.hash);
	assert_int_equal(bt_metadata_add_peer(md, 3, (int64_t)f.len), 0);
	assert_true(bt_metadata_in_file(md));
	int failures = 0, peers[1] = {3};
	assert_true(simulate(md, &f, peers, 1, -1, &failures) >= 0);
	struct bt_meta_tier tier = {.urls = (char *[]){"http://127.0.0.1:1/announce"}, .count = 1};
	struct bt_metainfo m;
	struct bt_err err = {""};
	assert_int_equal(bt_metadata_parse(md, &m, &tier, 1, &err), 0);
	bt_metadata_free(md); /* the metainfo keeps its own descriptor of the file */
	assert_null(m.info_raw);
	assert_non_null(m.spill);
	assert_int_equal(m.info_len, f.len);
	assert_memory_equal(m.info_hash, f.hash, BT_HASH_LEN);
	assert_int_equal(m.piece_count, pieces);
	assert_string_equal(m.name, "big0");
	assert_string_equal(bt_meta_tracker(&m), "http://127.0.0.1:1/announce");
	for (uint32_t i = 0; i < pieces; i += 7919) {
		uint8_t want[BT_SHA1_LEN], got[BT_SHA1_LEN];
		bt_sha1(&i, sizeof i, want);
		assert_int_equal(bt_meta_piece_hash(&m, i, got), 0);
		assert_memory_equal(got, want, BT_SHA1_LEN);
	}
	/* Serving it to other peers: BEP 9 blocks straight from the file. */
	size_t last = (f.len - 1) / BT_METADATA_BLOCK * BT_METADATA_BLOCK;
	const uint8_t *blk = bt_meta_info_at(&m, last, f.len - last);
	assert_non_null(blk);
	assert_memory_equal(blk, f.info + last, f.len - last);
	bt_meta_deinit(&m);
	bt_buf_deinit(&b);
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
		cmocka_unit_test(test_file_out_of_order),
		cmocka_unit_test(test_file_bad_block),
		cmocka_unit_test(test_file_liar_among_three),
		cmocka_unit_test(test_file_tmpdir_fails),
		cmocka_unit_test(test_file_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
