/*
 * assembly: the buffers that pieces being downloaded are assembled in, and who contributed to
 * each. Pure memory bookkeeping: the torrent starts a piece's buffer when it first requests one
 * of its blocks, the peer layer writes received blocks straight into it, the torrent records the
 * address-book handle of every source that sent a block of it, and releases it once the piece
 * verified (or failed: then the contributors are the ones to strike).
 *
 * Memory is bounded by a budget: max_partial = budget / piece_length, clamped to [1, 256], is the
 * number of pieces the torrent lets the picker start at once (bt_picker_set_max_partial), so
 * memory stays flat whatever the torrent's size (the bookkeeping too: a small hash table of the
 * started pieces, not an entry per piece). Every buffer is piece_length bytes (the last,
 * shorter piece uses the first piece_size bytes of one). Released buffers are kept in a pool of
 * at most BT_ASSEMBLY_POOL_MAX (and never more than max_partial) for the next piece: freeing and
 * allocating a piece-sized buffer per piece costs a page fault per 4 KiB, since the allocator
 * hands large blocks back to the kernel, and the pool costs no more than the peak already used.
 *
 * Invariants: a piece has a buffer exactly while it is started (between buffer_for and release);
 * its contributors are distinct handles, in the order they first contributed.
 */
#ifndef BT_ASSEMBLY_H
#define BT_ASSEMBLY_H

#include "bt/geometry.h"

#include <stddef.h>
#include <stdint.h>

/* The memory for pieces being assembled when the caller does not say. */
#define BT_ASSEMBLY_DEFAULT_BUDGET ((int64_t)16 << 20)
#define BT_ASSEMBLY_MAX_PARTIAL	   256
#define BT_ASSEMBLY_POOL_MAX	   16

struct bt_assembly_piece;

/* Embedded in its owner; the fields are the module's own. */
struct bt_assembly {
	struct bt_geometry geo;
	size_t max_partial;
	size_t started;
	struct bt_assembly_piece *pieces; /* the started ones, hashed by piece index */
	size_t cap;			  /* slots of pieces: a power of two */
	uint8_t *pool[BT_ASSEMBLY_POOL_MAX];
	size_t npool;
};

/* budget: bytes of buffers at most (0: BT_ASSEMBLY_DEFAULT_BUDGET); g has at least one piece. */
void bt_assembly_init(struct bt_assembly *a, const struct bt_geometry *g, int64_t budget);
/* Frees every buffer, started or pooled. */
void bt_assembly_deinit(struct bt_assembly *a);

/* The pieces that may be started at once. */
size_t bt_assembly_max_partial(const struct bt_assembly *a);
/* Pieces started now. */
size_t bt_assembly_started(const struct bt_assembly *a);

/* The piece's buffer, started (from the pool, or allocated) if it was not. Never NULL. */
uint8_t *bt_assembly_buffer_for(struct bt_assembly *a, uint32_t piece);
/* The piece's buffer, or NULL if it is not started. */
uint8_t *bt_assembly_get(const struct bt_assembly *a, uint32_t piece);

/* Records that handle sent a block of the (started) piece; a handle is recorded once. */
void bt_assembly_add_contributor(struct bt_assembly *a, uint32_t piece, int handle);
/* The distinct handles that sent blocks of the piece since it started; *n_out of them. */
const int *bt_assembly_contributors(const struct bt_assembly *a, uint32_t piece, size_t *n_out);

/* Ends the piece: its buffer goes back to the pool (or is freed), its contributors are dropped. */
void bt_assembly_release(struct bt_assembly *a, uint32_t piece);

#endif
