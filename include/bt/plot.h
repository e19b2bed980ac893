/*
 * plot: a run's throughput over time, kept as a time series and written out as a standalone SVG
 * picture or as JSON lines. Pure: the caller samples the engine (once a second, from
 * bt_torrent_peer_stats) and writes the bytes where it wants; this module only keeps numbers
 * and formats them.
 *
 * A sample holds, at time t (seconds since the run started), the bytes received in all and from
 * each peer so far. Values are cumulative, so a sample that is dropped loses no bytes: rates are
 * differences between neighbouring samples. Peers become columns in the order they first
 * appear; a peer missing from a later sample keeps its last count (it left, it did not give
 * bytes back). To bound memory on long runs, once BT_PLOT_MAX_SAMPLES are kept every other
 * sample is dropped, which halves the time resolution and nothing else.
 *
 * Called by the `download` front door (--plot, --stats) and by `bench`, which passes those
 * options on to its downloader.
 */
#ifndef BT_PLOT_H
#define BT_PLOT_H

#include "bt/util.h"

#include <stddef.h>
#include <stdint.h>

#define BT_PLOT_MAX_SAMPLES 2048

struct bt_plot_sample {
	double t;	   /* seconds since the run started */
	uint64_t received; /* bytes received in all */
	double rate;	   /* bytes/s in all since the sample before (0 for the first) */
	uint64_t *bytes;   /* per column, [0, ncols) where ncols is the count when sampled */
	size_t ncols;
};

struct bt_plot {
	char **names; /* column names: peer addresses as the engine names them */
	size_t ncols;
	struct bt_plot_sample *samples;
	size_t nsamples;
	struct bt_plot_sample cur; /* the sample being built between begin and end */
	bool *touched;		   /* per column: seen in the current sample */
	size_t touched_cap;
	bool open;
};

void bt_plot_init(struct bt_plot *p);
void bt_plot_deinit(struct bt_plot *p);

/*
 * One sample: begin, then the cumulative bytes of each peer (a peer named twice, say in two
 * torrents, is summed), then end with the run's total received bytes. t must not go back.
 */
void bt_plot_begin(struct bt_plot *p, double t);
void bt_plot_add_peer(struct bt_plot *p, const char *name, uint64_t bytes);
void bt_plot_end(struct bt_plot *p, uint64_t received);

/*
 * The latest sample as one JSON object and a newline:
 * {"t":1.00,"rate":123,"received":456,"peers":{"127.0.0.11:6881":456}}
 * rate is bytes/s since the sample before; peers holds each peer's cumulative bytes.
 */
void bt_plot_json_line(struct bt_buf *out, const struct bt_plot *p);

/*
 * The whole series as a standalone SVG document: throughput over time as stacked areas, one
 * per peer that sent bytes (a <path class="peer" data-peer="NAME">), the total as a line on
 * top, and each peer's share of the bytes as a bar (class="share"). title goes on top.
 */
void bt_plot_svg(struct bt_buf *out, const struct bt_plot *p, const char *title);

#endif
