/*
 * tracker_policy: the pure decisions behind announcing during a long download, kept apart from
 * the I/O so they can be tested with plain numbers.
 *
 * Tiers (BEP 12): each tier's URLs are shuffled once; announces go to the first URL of the first
 * tier; on failure the next URL of the same tier is tried, then the next tier; a URL that answers
 * moves to the front of its tier and the next announce starts again from the first tier. When
 * every URL has failed, the next round waits a backoff that doubles with each failed round
 * (with jitter, so many clients do not retry in step). Intervals come from the tracker, bounded
 * below by its `min interval` and by our own floor.
 */
#ifndef BT_TRACKER_POLICY_H
#define BT_TRACKER_POLICY_H

#include "bt/metainfo.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bt_tier_list {
	struct bt_meta_tier *tiers; /* owned copies */
	size_t count;
	size_t tier, index;	/* the URL to try next */
	unsigned failed_rounds; /* rounds in a row in which every URL failed */
};

/* Copies the tiers and shuffles each with rand_fn (which returns uniform 32-bit values). */
void bt_tiers_init(struct bt_tier_list *l, const struct bt_meta_tier *tiers, size_t count,
		   uint32_t (*rand_fn)(void *), void *rand_arg);
void bt_tiers_deinit(struct bt_tier_list *l);
/* The URL to announce to next, or NULL if there are no trackers. */
const char *bt_tiers_current(const struct bt_tier_list *l);
/* Moves on after the current URL failed; returns true when that ended a round of failures. */
bool bt_tiers_failed(struct bt_tier_list *l);
/* Promotes the current URL within its tier and starts the next round from the first tier. */
void bt_tiers_succeeded(struct bt_tier_list *l);

/* Seconds to wait after `failed_rounds` failed rounds: 15·2ⁿ⁻¹ capped at 30 min, ×[0.75,1.25). */
double bt_tracker_backoff(unsigned failed_rounds, double jitter01);
/*
 * Seconds until the next regular announce: the tracker's interval (or 30 min if it sent none),
 * at least its min interval and at least floor_s.
 */
double bt_tracker_interval(int64_t interval, int64_t min_interval, double floor_s);

#endif
