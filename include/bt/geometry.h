/*
 * geometry: how a torrent's bytes are cut into pieces and blocks. A torrent is one long byte
 * range of total_length bytes cut into pieces of piece_length bytes (the last one shorter), and
 * each piece into blocks of BT_BLOCK_SIZE (the last one of a piece shorter): the unit peers
 * request. Pure and tiny; every module that sizes a piece or a block asks here, so the rule
 * lives in one place. A torrent opened from a magnet has no geometry until its metadata arrives.
 */
#ifndef BT_GEOMETRY_H
#define BT_GEOMETRY_H

#include <stdbool.h>
#include <stdint.h>

/* The block size every client requests (BEP 3 practice); larger requests are refused. */
#define BT_BLOCK_SIZE 16384

/* A byte range inside one piece: a request, a block received, a block to send. */
struct bt_block {
	uint32_t piece;
	uint32_t begin;
	uint32_t length;
};

struct bt_geometry {
	uint32_t piece_count;
	int64_t piece_length;
	int64_t total_length;
};

/* Fills g from the two lengths (both > 0). Returns 0, or -EINVAL if the count overflows. */
int bt_geometry_init(struct bt_geometry *g, int64_t piece_length, int64_t total_length);

/* The size of piece i (i < piece_count): piece_length, or less for the last one. */
uint32_t bt_geometry_piece_size(const struct bt_geometry *g, uint32_t i);
/* The number of blocks in piece i. */
uint32_t bt_geometry_block_count(const struct bt_geometry *g, uint32_t i);
/* Block number k of piece i. */
struct bt_block bt_geometry_block(const struct bt_geometry *g, uint32_t i, uint32_t k);
/* The byte offset of piece i in the torrent. */
int64_t bt_geometry_piece_offset(const struct bt_geometry *g, uint32_t i);
/* True when b is a non-empty range of at most BT_BLOCK_SIZE bytes inside an existing piece. */
bool bt_geometry_block_valid(const struct bt_geometry *g, const struct bt_block *b);

static inline bool bt_block_equal(const struct bt_block *a, const struct bt_block *b)
{
	return a->piece == b->piece && a->begin == b->begin && a->length == b->length;
}

#endif
