/*
 * ratelimit: a token bucket for --max-down and --max-up. Pure: callers pass `now` (seconds).
 * Tokens accrue at `rate` bytes per second up to a burst of a tenth of a second's worth (at
 * least 32 KiB), so transfers are smooth rather than bursty. One bucket is shared by all
 * peers of a direction; a peer that finds it empty waits bt_rate_limit_wait seconds.
 */
#ifndef BT_RATELIMIT_H
#define BT_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>

struct bt_rate_limit {
	double rate; /* bytes per second; 0 means unlimited */
	double burst;
	double tokens;
	double last;
};

void bt_rate_limit_init(struct bt_rate_limit *rl, double rate, double now);
/* Takes up to `want` bytes' worth; returns how many may go now (all of them if unlimited). */
size_t bt_rate_limit_take(struct bt_rate_limit *rl, double now, size_t want);
/* Returns tokens taken but not used (a read that got less than it asked for). */
void bt_rate_limit_give_back(struct bt_rate_limit *rl, size_t n);
/* Takes exactly `n` if that many are there; returns whether it did. */
bool bt_rate_limit_take_all(struct bt_rate_limit *rl, double now, size_t n);
/* Seconds until `n` bytes' worth will be there. */
double bt_rate_limit_wait(const struct bt_rate_limit *rl, double now, size_t n);
/* Parses "500K", "2M", "1.5MiB/s", "800000" (bytes per second). Returns 0 or -1. */
int bt_rate_parse(const char *s, double *out);

#endif
