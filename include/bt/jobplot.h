/*
 * jobplot: `download --plot FILE.svg --stats FILE`. Samples the run's jobs once a second on the
 * session's loop (each peer's bytes from bt_torrent_peer_stats, the received total from
 * bt_torrent_get_stats), appends each sample to the stats file as a JSON line as it is taken,
 * and draws the whole series as an SVG when the run ends. The numbers and their formats belong
 * to `plot`; this module owns the timer and the files. Belongs to the executable, like jobview.
 *
 * Both files are created by bt_jobplot_new, before anything starts, so that a path that cannot
 * be written is refused at once rather than after an hour's download; a run that ends before
 * bt_jobplot_start removes them again.
 */
#ifndef BT_JOBPLOT_H
#define BT_JOBPLOT_H

#include "bt/download.h"
#include "bt/util.h"

#include <event2/event.h>

struct bt_jobplot;

/* Either path may be NULL (not both). NULL with err set when a file cannot be created. */
struct bt_jobplot *bt_jobplot_new(const char *plot_path, const char *stats_path,
				  struct bt_err *err);
/* Takes the first sample (t = 0 at started, a bt_now() time) and one every second after. The
 * jobs array must outlive the plot's timer, which bt_jobplot_finish stops. */
void bt_jobplot_start(struct bt_jobplot *jp, struct event_base *base, struct bt_download **jobs,
		      size_t n, double started);
/* The last sample, then the picture; closes both files. 0 or a negative errno with err set. */
int bt_jobplot_finish(struct bt_jobplot *jp, struct bt_err *err);
void bt_jobplot_free(struct bt_jobplot *jp);

#endif
