/*
 * jobview: how the `download`, `download_piece` and `seed` front doors show their jobs on
 * stderr. On a terminal, one line redrawn in place (with several torrents, a line for each and
 * one for their total, redrawn as a block), each line cut to the terminal's width (asked at every
 * redraw, so a resize shows at the next) so that it never wraps; on a pipe, a plain line per
 * torrent at most every 5 s (with -v, and a multi-file torrent, a line under it per file in
 * progress); with --progress=json, one object per torrent per second (with a "name" when there
 * are several), each carrying the files whose verified bytes changed since the job's last line
(at most BT_PROGRESS_JSON_FILES a line, going round). Web seeds' bytes are shown apart from the
peers'. Before the first byte the line says what the job waits for (checking, trackers,
 * peers: bt_torrent_phase). At the end a summary per torrent: what was received, what was
 * uploaded (a seed job says only that), and for a multi-file torrent each file's state. Log lines
 * (-v) go through bt_jobview_log_sink so they never land inside a redrawn line. Layer 4:
 * formatting comes from `progress`, numbers from the jobs; it decides nothing.
 */
#ifndef BT_JOBVIEW_H
#define BT_JOBVIEW_H

#include "bt/download.h"
#include "bt/log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bt_view_mode {
	BT_VIEW_AUTO, /* a redrawn line on a terminal, plain lines otherwise */
	BT_VIEW_JSON,
	BT_VIEW_NONE,
};

struct bt_jobview {
	enum bt_view_mode mode;
	bool tty, line_drawn;
	size_t block_lines;    /* lines of the block drawn last (several torrents on a terminal) */
	double started;	       /* the command's start, for elapsed times */
	double engine_started; /* when the jobs started, for first-byte times */
	double last_plain;
	double check_last; /* on a pipe: when the current recheck began or was last shown; 0: none
			    */
	bool check_shown;  /* on a pipe: a line of the current recheck is out */
	struct bt_download **jobs;
	bool *final_shown; /* per job: its last progress line is out */
	size_t n;
	struct bt_jobview_files *files; /* per job, made by the first JSON line: what it said */
};

/* Frees what the view made itself (not jobs or final_shown, which are the caller's). */
void bt_jobview_deinit(struct bt_jobview *v);

void bt_jobview_end_line(struct bt_jobview *v);
/* A bt_log sink; arg is the view. */
void bt_jobview_log_sink(void *arg, enum bt_log_level level, const char *subject, const char *msg);
/* The jobs that are downloading (final: and those just done), at most as often as the mode
 * wants unless final. */
void bt_jobview_progress(struct bt_jobview *v, bool final);
/* Job i has every piece: its last progress line (the run's average rate), once. */
void bt_jobview_job_done(struct bt_jobview *v, size_t i);
void bt_jobview_seeding(struct bt_jobview *v);
void bt_jobview_checking(struct bt_jobview *v, uint32_t done, uint32_t total);
void bt_jobview_summary(const struct bt_jobview *v, const struct bt_download *d);

#endif
