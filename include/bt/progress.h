/*
 * progress: pure formatting of what long commands show while they work and when they end:
 * byte counts and rates in binary units, an ETA, the one-line progress display and its JSON
 * form. No I/O: the command decides where and how often to print.
 */
#ifndef BT_PROGRESS_H
#define BT_PROGRESS_H

#include "bt/util.h"

#include <stddef.h>
#include <stdint.h>

struct bt_progress {
	uint64_t done, total; /* bytes */
	double rate;	      /* bytes/s */
	double elapsed;	      /* seconds */
	size_t peers, unchoking;
	const char *name; /* the torrent's, when several are shown; NULL otherwise */
};

/* "1.5 MiB", "512 B", "3.2 GiB" */
void bt_format_bytes(char *out, size_t n, double bytes);
/* "12.3 MiB/s" */
void bt_format_rate(char *out, size_t n, double bytes_per_s);
/* "42s", "3m05s", "2h01m", or "--" when unknown */
void bt_format_eta(char *out, size_t n, double seconds);

/* " 42.0%  420.0 MiB of 1.0 GiB  312.5 MiB/s  ETA 2s  peers 8 (8 unchoking)" */
void bt_progress_line(char *out, size_t n, const struct bt_progress *p);
/* {"done":..,"total":..,"percent":..,"rate":..,"eta":..,"peers":..,"unchoking":..,"elapsed":..} */
void bt_progress_json(struct bt_buf *out, const struct bt_progress *p);

#endif
