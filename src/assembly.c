#include "bt/assembly.h"

#include "bt/util.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A started piece: a slot of the open-addressed table (data NULL: the slot is free). */
struct bt_assembly_piece {
	uint8_t *data;
	int *contributors;
	uint32_t piece;
	uint32_t ncontrib, contrib_cap;
};

void bt_assembly_init(struct bt_assembly *a, const struct bt_geometry *g, int64_t budget)
{
	assert(g->piece_count > 0 && g->piece_length > 0);
	memset(a, 0, sizeof *a);
	a->geo = *g;
	if (budget <= 0)
		budget = BT_ASSEMBLY_DEFAULT_BUDGET;
	int64_t max = budget / g->piece_length;
	a->max_partial = max < 1			 ? 1
			 : max > BT_ASSEMBLY_MAX_PARTIAL ? BT_ASSEMBLY_MAX_PARTIAL
							 : (size_t)max;
	/* At most half full at max_partial; it grows should more be started (endgame, web seeds).
	 */
	a->cap = 16;
	while (a->cap < 2 * a->max_partial)
		a->cap *= 2;
	a->pieces = bt_xcalloc(a->cap, sizeof *a->pieces);
}

static size_t home(const struct bt_assembly *a, uint32_t piece)
{
	return (size_t)(piece * 2654435761u) & (a->cap - 1); /* Knuth's multiplicative hash */
}

/* The piece's slot, or the free slot where it would go. */
static struct bt_assembly_piece *find(const struct bt_assembly *a, uint32_t piece)
{
	for (size_t i = home(a, piece);; i = (i + 1) & (a->cap - 1))
		if (!a->pieces[i].data || a->pieces[i].piece == piece)
			return &a->pieces[i];
}

static void grow(struct bt_assembly *a)
{
	struct bt_assembly_piece *old = a->pieces;
	size_t n = a->cap;
	a->cap *= 2;
	a->pieces = bt_xcalloc(a->cap, sizeof *a->pieces);
	for (size_t i = 0; i < n; i++)
		if (old[i].data)
			*find(a, old[i].piece) = old[i];
	free(old);
}

void bt_assembly_deinit(struct bt_assembly *a)
{
	if (!a->pieces)
		return;
	for (size_t i = 0; i < a->cap; i++) {
		free(a->pieces[i].data);
		free(a->pieces[i].contributors);
	}
	free(a->pieces);
	while (a->npool)
		free(a->pool[--a->npool]);
	memset(a, 0, sizeof *a);
}

size_t bt_assembly_max_partial(const struct bt_assembly *a)
{
	return a->max_partial;
}

size_t bt_assembly_started(const struct bt_assembly *a)
{
	return a->started;
}

uint8_t *bt_assembly_buffer_for(struct bt_assembly *a, uint32_t piece)
{
	assert(piece < a->geo.piece_count);
	struct bt_assembly_piece *p = find(a, piece);
	if (p->data)
		return p->data;
	if (2 * (a->started + 1) > a->cap) {
		grow(a);
		p = find(a, piece);
	}
	p->data = a->npool ? a->pool[--a->npool] : bt_xmalloc((size_t)a->geo.piece_length);
	p->piece = piece;
	a->started++;
	return p->data;
}

uint8_t *bt_assembly_get(const struct bt_assembly *a, uint32_t piece)
{
	return piece < a->geo.piece_count ? find(a, piece)->data : NULL;
}

void bt_assembly_add_contributor(struct bt_assembly *a, uint32_t piece, int handle)
{
	struct bt_assembly_piece *p = find(a, piece);
	assert(piece < a->geo.piece_count && p->data);
	for (size_t i = 0; i < p->ncontrib; i++)
		if (p->contributors[i] == handle)
			return;
	if (p->ncontrib == p->contrib_cap) {
		p->contrib_cap = p->contrib_cap ? p->contrib_cap * 2 : 4;
		p->contributors =
			bt_xreallocarray(p->contributors, p->contrib_cap, sizeof *p->contributors);
	}
	p->contributors[p->ncontrib++] = handle;
}

const int *bt_assembly_contributors(const struct bt_assembly *a, uint32_t piece, size_t *n_out)
{
	assert(piece < a->geo.piece_count);
	const struct bt_assembly_piece *p = find(a, piece);
	*n_out = p->ncontrib;
	return p->contributors;
}

void bt_assembly_release(struct bt_assembly *a, uint32_t piece)
{
	assert(piece < a->geo.piece_count);
	struct bt_assembly_piece *p = find(a, piece);
	if (!p->data)
		return;
	a->started--;
	if (a->npool < BT_ASSEMBLY_POOL_MAX && a->npool < a->max_partial)
		a->pool[a->npool++] = p->data;
	else
		free(p->data);
	free(p->contributors);
	memset(p, 0, sizeof *p);
	/* Linear probing without tombstones: move later entries of the run back into the hole. */
	size_t hole = (size_t)(p - a->pieces);
	for (size_t i = (hole + 1) & (a->cap - 1); a->pieces[i].data; i = (i + 1) & (a->cap - 1)) {
		size_t h = home(a, a->pieces[i].piece);
		/* The entry may move to the hole if its home is not in (hole, i] cyclically. */
		bool stays = hole <= i ? (h > hole && h <= i) : (h > hole || h <= i);
		if (stays)
			continue;
		a->pieces[hole] = a->pieces[i];
		memset(&a->pieces[i], 0, sizeof a->pieces[i]);
		hole = i;
	}
}
