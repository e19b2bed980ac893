#include "bt/choker.h"

#include "bt/util.h"

#include <stdlib.h>

void bt_choker_init(struct bt_choker *c, uint64_t seed)
{
	c->round = 0;
	c->rng = seed | 1;
}

static uint64_t next_random(struct bt_choker *c)
{
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * 0x2545F4914F6CDD1DULL;
}

void bt_choker_run(struct bt_choker *c, struct bt_choker_peer *peers, size_t n, bool seeding)
{
	bool rotate = c->round++ % BT_CHOKER_OPTIMISTIC_ROUNDS == 0;
	size_t keep_optimistic = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		if (peers[i].optimistic && peers[i].interested && !rotate)
			keep_optimistic = i;
		peers[i].unchoke = false;
		peers[i].optimistic = false;
	}
	/* Regular slots: the best-ranked interested peers (a selection, n is small). */
	for (size_t slot = 0; slot < BT_CHOKER_SLOTS; slot++) {
		size_t best = SIZE_MAX;
		double best_rate = -1;
		for (size_t i = 0; i < n; i++) {
			if (!peers[i].interested || peers[i].unchoke || i == keep_optimistic)
				continue;
			double r = seeding ? peers[i].up_rate : peers[i].down_rate;
			if (r > best_rate) {
				best_rate = r;
				best = i;
			}
		}
		if (best == SIZE_MAX)
			break;
		peers[best].unchoke = true;
	}
	/* The optimistic slot: kept for its rounds, else a random interested peer left over. */
	if (keep_optimistic != SIZE_MAX) {
		peers[keep_optimistic].unchoke = peers[keep_optimistic].optimistic = true;
		return;
	}
	size_t candidates = 0;
	for (size_t i = 0; i < n; i++)
		candidates += peers[i].interested && !peers[i].unchoke;
	if (!candidates)
		return;
	size_t pick = (size_t)(next_random(c) % candidates);
	for (size_t i = 0; i < n; i++) {
		if (!peers[i].interested || peers[i].unchoke)
			continue;
		if (pick-- == 0) {
			peers[i].unchoke = peers[i].optimistic = true;
			return;
		}
	}
}
