#include "bt/geometry.h"

#include <errno.h>

int bt_geometry_init(struct bt_geometry *g, int64_t piece_length, int64_t total_length)
{
	if (piece_length <= 0 || total_length <= 0)
		return -EINVAL;
	uint64_t count = ((uint64_t)total_length - 1) / (uint64_t)piece_length + 1;
	if (count > UINT32_MAX)
		return -EINVAL;
	g->piece_count = (uint32_t)count;
	g->piece_length = piece_length;
	g->total_length = total_length;
	return 0;
}

uint32_t bt_geometry_piece_size(const struct bt_geometry *g, uint32_t i)
{
	if (i + 1 < g->piece_count)
		return (uint32_t)g->piece_length;
	return (uint32_t)(g->total_length - (int64_t)(g->piece_count - 1) * g->piece_length);
}

uint32_t bt_geometry_block_count(const struct bt_geometry *g, uint32_t i)
{
	return (bt_geometry_piece_size(g, i) + BT_BLOCK_SIZE - 1) / BT_BLOCK_SIZE;
}

struct bt_block bt_geometry_block(const struct bt_geometry *g, uint32_t i, uint32_t k)
{
	uint32_t size = bt_geometry_piece_size(g, i), begin = k * BT_BLOCK_SIZE;
	uint32_t len = size - begin < BT_BLOCK_SIZE ? size - begin : BT_BLOCK_SIZE;
	return (struct bt_block){.piece = i, .begin = begin, .length = len};
}

int64_t bt_geometry_piece_offset(const struct bt_geometry *g, uint32_t i)
{
	return (int64_t)i * g->piece_length;
}

bool bt_geometry_block_valid(const struct bt_geometry *g, const struct bt_block *b)
{
	return b->piece < g->piece_count && b->length > 0 && b->length <= BT_BLOCK_SIZE &&
	       (uint64_t)b->begin + b->length <= bt_geometry_piece_size(g, b->piece);
}
