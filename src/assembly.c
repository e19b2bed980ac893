#include "bt/assembly.h"

#include "bt/util.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct bt_assembly_piece {
	uint8_t *data; /* NULL when not started */
	int *contributors;
	size_t ncontrib, contrib_cap;
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
	a->pieces = bt_xcalloc(g->piece_count, sizeof *a->pieces);
}

void bt_assembly_deinit(struct bt_assembly *a)
{
	if (!a->pieces)
		return;
	for (uint32_t i = 0; i < a->geo.piece_count; i++) {
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
	struct bt_assembly_piece *p = &a->pieces[piece];
	if (!p->data) {
		p->data = a->npool ? a->pool[--a->npool] : bt_xmalloc((size_t)a->geo.piece_length);
		a->started++;
	}
	return p->data;
}

uint8_t *bt_assembly_get(const struct bt_assembly *a, uint32_t piece)
{
	return piece < a->geo.piece_count ? a->pieces[piece].data : NULL;
}

void bt_assembly_add_contributor(struct bt_assembly *a, uint32_t piece, int handle)
{
	assert(piece < a->geo.piece_count && a->pieces[piece].data);
	struct bt_assembly_piece *p = &a->pieces[piece];
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
	*n_out = a->pieces[piece].ncontrib;
	return a->pieces[piece].contributors;
}

void bt_assembly_release(struct bt_assembly *a, uint32_t piece)
{
	assert(piece < a->geo.piece_count);
	struct bt_assembly_piece *p = &a->pieces[piece];
	if (p->data) {
		a->started--;
		if (a->npool < BT_ASSEMBLY_POOL_MAX && a->npool < a->max_partial)
			a->pool[a->npool++] = p->data;
		else
			free(p->data);
	}
	free(p->contributors);
	memset(p, 0, sizeof *p);
}
