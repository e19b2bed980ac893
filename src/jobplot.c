#include "bt/jobplot.h"

#include "bt/plot.h"
#include "bt/torrent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct bt_jobplot {
	struct bt_plot plot;
	const char *plot_path, *stats_path;
	FILE *plot_file, *stats_file;
	struct event *timer;
	struct bt_download **jobs;
	size_t n;
	double started;
	bool stats_failed;
	bool made_plot, made_stats; /* the files did not exist before: ours to remove */
};

static FILE *create(const char *path, const char *option, bool *made, struct bt_err *err)
{
	*made = access(path, F_OK) != 0;
	FILE *f = fopen(path, "we");
	if (!f)
		bt_err_set(err, -errno, "%s: cannot write '%s': %s", option, path, strerror(errno));
	return f;
}

struct bt_jobplot *bt_jobplot_new(const char *plot_path, const char *stats_path, struct bt_err *err)
{
	if (plot_path && stats_path && strcmp(plot_path, stats_path) == 0) {
		bt_err_set(err, -EINVAL, "--plot and --stats both name '%s'", plot_path);
		return NULL;
	}
	struct bt_jobplot *jp = bt_xcalloc(1, sizeof *jp);
	bt_plot_init(&jp->plot);
	jp->plot_path = plot_path;
	jp->stats_path = stats_path;
	if ((plot_path && !(jp->plot_file = create(plot_path, "--plot", &jp->made_plot, err))) ||
	    (stats_path &&
	     !(jp->stats_file = create(stats_path, "--stats", &jp->made_stats, err)))) {
		bt_jobplot_free(jp);
		return NULL;
	}
	return jp;
}

static void sample(struct bt_jobplot *jp)
{
	bt_plot_begin(&jp->plot, bt_now() - jp->started);
	uint64_t received = 0;
	for (size_t i = 0; i < jp->n; i++) {
		struct bt_torrent *t = bt_download_torrent(jp->jobs[i]);
		if (!t)
			continue;
		struct bt_torrent_stats s;
		bt_torrent_get_stats(t, &s);
		received += s.received_bytes;
		struct bt_torrent_peer_stat *ps = NULL;
		size_t np = bt_torrent_peer_stats(t, &ps);
		for (size_t k = 0; k < np; k++)
			bt_plot_add_peer(&jp->plot, ps[k].name, ps[k].bytes);
		free(ps);
	}
	bt_plot_end(&jp->plot, received);
	if (!jp->stats_file || jp->stats_failed)
		return;
	struct bt_buf line;
	bt_buf_init(&line);
	bt_plot_json_line(&line, &jp->plot);
	/* A line at a time, so that a reader following the file sees whole objects. */
	if (fwrite(line.data, 1, line.len, jp->stats_file) != line.len ||
	    fflush(jp->stats_file) != 0)
		jp->stats_failed = true;
	bt_buf_deinit(&line);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sample(arg);
}

void bt_jobplot_start(struct bt_jobplot *jp, struct event_base *base, struct bt_download **jobs,
		      size_t n, double started)
{
	jp->jobs = jobs;
	jp->n = n;
	jp->started = started;
	sample(jp);
	jp->timer = event_new(base, -1, EV_PERSIST, on_timer, jp);
	struct timeval tv;
	event_add(jp->timer, bt_timeval(&tv, 1));
}

static int close_file(FILE **f, const char *option, const char *path, int rc, struct bt_err *err)
{
	if (!*f)
		return rc;
	bool bad = ferror(*f) != 0;
	int e = errno;
	if (fclose(*f) != 0 && !bad)
		bad = true, e = errno;
	*f = NULL;
	if (bad && !rc)
		rc = bt_err_set(err, -e, "%s: cannot write '%s': %s", option, path, strerror(e));
	return rc;
}

int bt_jobplot_finish(struct bt_jobplot *jp, struct bt_err *err)
{
	if (jp->timer) {
		event_free(jp->timer);
		jp->timer = NULL;
		sample(jp);
	}
	int rc = 0;
	if (jp->stats_failed)
		rc = bt_err_set(err, -EIO, "--stats: cannot write '%s'", jp->stats_path);
	if (jp->plot_file) {
		struct bt_buf svg;
		bt_buf_init(&svg);
		char title[300];
		if (jp->n == 1)
			snprintf(title, sizeof title, "torrent download: %s",
				 bt_download_metainfo(jp->jobs[0])->name);
		else
			snprintf(title, sizeof title, "torrent download: %zu torrents", jp->n);
		bt_plot_svg(&svg, &jp->plot, title);
		if (fwrite(svg.data, 1, svg.len, jp->plot_file) != svg.len && !rc)
			rc = bt_err_set(err, -errno, "--plot: cannot write '%s': %s", jp->plot_path,
					strerror(errno));
		bt_buf_deinit(&svg);
	}
	rc = close_file(&jp->plot_file, "--plot", jp->plot_path, rc, err);
	return close_file(&jp->stats_file, "--stats", jp->stats_path, rc, err);
}

void bt_jobplot_free(struct bt_jobplot *jp)
{
	if (!jp)
		return;
	if (jp->timer)
		event_free(jp->timer);
	/* Never started: the files it made hold nothing, so they go (never one that was there
	 * before, which may be a device or a link). */
	if (jp->plot_file) {
		fclose(jp->plot_file);
		if (!jp->jobs && jp->made_plot)
			unlink(jp->plot_path);
	}
	if (jp->stats_file) {
		fclose(jp->stats_file);
		if (!jp->jobs && jp->made_stats)
			unlink(jp->stats_path);
	}
	bt_plot_deinit(&jp->plot);
	free(jp);
}
