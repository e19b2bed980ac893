#include "bt/tracker_policy.h"

#include <stdlib.h>
#include <string.h>

void bt_tiers_init(struct bt_tier_list *l, const struct bt_meta_tier *tiers, size_t count,
		   uint32_t (*rand_fn)(void *), void *rand_arg)
{
	memset(l, 0, sizeof *l);
	l->tiers = bt_xcalloc(count, sizeof *l->tiers);
	for (size_t t = 0; t < count; t++) {
		size_t n = tiers[t].count;
		char **urls = bt_xcalloc(n, sizeof *urls);
		for (size_t i = 0; i < n; i++)
			urls[i] = bt_xstrdup(tiers[t].urls[i]);
		for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
			size_t j = rand_fn(rand_arg) % i;
			char *tmp = urls[i - 1];
			urls[i - 1] = urls[j];
			urls[j] = tmp;
		}
		if (n)
			l->tiers[l->count++] = (struct bt_meta_tier){.urls = urls, .count = n};
		else
			free(urls);
	}
}

void bt_tiers_deinit(struct bt_tier_list *l)
{
	for (size_t t = 0; t < l->count; t++) {
		for (size_t i = 0; i < l->tiers[t].count; i++)
			free(l->tiers[t].urls[i]);
		free(l->tiers[t].urls);
	}
	free(l->tiers);
	memset(l, 0, sizeof *l);
}

const char *bt_tiers_current(const struct bt_tier_list *l)
{
	return l->count ? l->tiers[l->tier].urls[l->index] : NULL;
}

bool bt_tiers_failed(struct bt_tier_list *l)
{
	if (!l->count)
		return true;
	if (++l->index < l->tiers[l->tier].count)
		return false;
	l->index = 0;
	if (++l->tier < l->count)
		return false;
	l->tier = 0;
	l->failed_rounds++;
	return true;
}

void bt_tiers_succeeded(struct bt_tier_list *l)
{
	if (!l->count)
		return;
	char **urls = l->tiers[l->tier].urls;
	char *winner = urls[l->index];
	memmove(urls + 1, urls, l->index * sizeof *urls);
	urls[0] = winner;
	l->tier = l->index = 0;
	l->failed_rounds = 0;
}

double bt_tracker_backoff(unsigned failed_rounds, double jitter01)
{
	double s = 15;
	for (unsigned i = 1; i < failed_rounds && s < 1800; i++)
		s *= 2;
	if (s > 1800)
		s = 1800;
	return s * (0.75 + 0.5 * jitter01);
}

double bt_tracker_interval(int64_t interval, int64_t min_interval, double floor_s)
{
	double s = interval > 0 ? (double)interval : 1800;
	if (min_interval > 0 && s < (double)min_interval)
		s = (double)min_interval;
	return s < floor_s ? floor_s : s;
}
