/*
 * `download`, `download_piece` and `seed`: front doors onto the download job (download.h). They
 * turn argv into jobs on one session, render progress and summaries, and map the outcome to an
 * exit status; everything about files, pieces and peers happens in the engine.
 */
#include "bt/cli.h"
#include "bt/download.h"
#include "bt/jobargs.h"
#include "bt/jobplot.h"
#include "bt/jobview.h"
#include "bt/log.h"
#include "bt/ratelimit.h"
#include "bt/session.h"
#include "bt/source.h"

#include <errno.h>
#include <event2/event.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One torrent of the run: its source (file, URL or magnet) and its job. */
struct item {
	struct bt_source src;
	const char *path;
	struct bt_download *d;
	struct sockaddr_storage *peers; /* --peer and a magnet's x.pe */
	socklen_t *peer_lens;
	char *so_select; /* a magnet's so= as a --select list (numbered from 1) */
	bool announced;	 /* its "Downloaded ..." line is out */
};

/* BEP 53's so= counts files from 0; --select (and `info`) from 1. */
static char *so_to_select(const struct bt_magnet *mg)
{
	if (!mg->select_count)
		return NULL;
	struct bt_buf b;
	bt_buf_init(&b);
	for (size_t k = 0; k < mg->select_count; k++) {
		char item[48];
		int n = snprintf(item, sizeof item, "%s%lu-%lu", k ? "," : "",
				 (unsigned long)mg->select[k].first + 1,
				 (unsigned long)mg->select[k].last + 1);
		bt_buf_add(&b, item, (size_t)n);
	}
	return (char *)bt_buf_steal(&b, NULL);
}

struct run {
	const struct bt_job_args *o;
	struct bt_session *session;
	struct item *items;
	size_t n;
	struct event *progress_ev;
	struct bt_jobview view;
	struct bt_jobplot *plot; /* --plot, --stats */
	uint32_t piece;		 /* download_piece: the index, parsed */
	bool save_failed;
};

static void on_progress(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct run *r = arg;
	bt_jobview_progress(&r->view, false);
	bt_jobview_seeding(&r->view);
}

static void announce_result(const struct run *r, struct item *it)
{
	if (it->announced)
		return;
	it->announced = true;
	if (r->o->mode == BT_JOB_PIECE)
		printf("Piece %u downloaded to %s.\n", r->piece, bt_download_final_path(it->d));
	else if (r->o->mode == BT_JOB_DOWNLOAD)
		printf("Downloaded %s to %s.\n", it->path, bt_download_final_path(it->d));
	fflush(stdout);
}

static bool all_ended(const struct run *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (!bt_download_ended(r->items[i].d))
			return false;
	return true;
}

/* A magnet's metainfo is known: save it if asked, and say so. */
static void on_metadata(void *arg, struct bt_download *d)
{
	struct run *r = arg;
	const struct bt_metainfo *m = bt_download_metainfo(d);
	bt_log(BT_LOG_INFO, r->o->command, "metadata received: '%s', %u pieces", m->name,
	       m->piece_count);
	if (r->o->save_torrent && bt_source_save_torrent(r->o->command, m, r->o->save_torrent) != 0)
		r->save_failed = true;
}

static void on_changed(void *arg, struct bt_download *d)
{
	struct run *r = arg;
	size_t i = 0;
	while (r->items[i].d != d)
		i++;
	enum bt_download_state st = bt_download_state(d);
	if (st == BT_DOWNLOAD_FINISHING)
		bt_jobview_job_done(&r->view, i);
	if (st == BT_DOWNLOAD_SEEDING && r->o->mode == BT_JOB_DOWNLOAD &&
	    !bt_download_was_complete(d)) {
		bt_jobview_end_line(&r->view);
		announce_result(r, &r->items[i]);
	}
	if (all_ended(r))
		bt_session_stop(r->session);
}

static void on_checking(void *arg, struct bt_download *d, uint32_t done, uint32_t total)
{
	(void)d;
	struct run *r = arg;
	bt_jobview_checking(&r->view, done, total);
}

static void on_stopped(void *arg, struct bt_download *d)
{
	(void)d;
	struct run *r = arg;
	for (size_t i = 0; i < r->n; i++)
		if (!bt_download_stopped(r->items[i].d))
			return;
	bt_session_stop(r->session);
}

/* Loads every torrent (file, URL or magnet) and makes its job; returns 0 or an exit code. */
static int load_items(struct run *r, struct bt_download_opts *dopts)
{
	const struct bt_job_args *o = r->o;
	r->items = bt_xcalloc(o->ntorrents, sizeof *r->items);
	r->view.jobs = bt_xcalloc(o->ntorrents, sizeof *r->view.jobs);
	r->view.final_shown = bt_xcalloc(o->ntorrents, sizeof *r->view.final_shown);
	static const struct bt_download_events ev = {on_checking, on_changed, on_stopped,
						     on_metadata};
	for (size_t i = 0; i < o->ntorrents; i++) {
		struct item *it = &r->items[i];
		int rc = bt_source_load(o->command, o->torrents[i], r->session, &it->src);
		r->n++;
		if (rc)
			return rc;
		const struct bt_metainfo *m = it->src.has_meta ? &it->src.m : NULL;
		if (m)
			bt_cli_warn_renamed(o->command, m);
		it->path = o->torrents[i];
		for (size_t k = 0; k < i; k++)
			if (!memcmp(bt_source_info_hash(&r->items[k].src),
				    bt_source_info_hash(&it->src), BT_HASH_LEN))
				return bt_cli_usage_error(o->command,
							  "'%s' and '%s' are the same torrent",
							  r->items[k].path, it->path);
		if (o->mode == BT_JOB_PIECE) {
			/* A magnet's piece count is known only with its metadata: checked then. */
			unsigned long v;
			unsigned long max = m ? m->piece_count - 1 : UINT32_MAX - 1;
			if (bt_cli_parse_uint(o->piece_arg, 0, max, &v))
				return bt_cli_usage_error(o->command,
							  "piece index must be 0 to %lu, not '%s'",
							  max, o->piece_arg);
			dopts->piece = r->piece = (uint32_t)v;
		}
		struct bt_download_opts iopts = *dopts;
		size_t np = dopts->npeers;
		it->peers = bt_xcalloc(np ? np : 1, sizeof *it->peers);
		it->peer_lens = bt_xcalloc(np ? np : 1, sizeof *it->peer_lens);
		memcpy(it->peers, dopts->peers, np * sizeof *it->peers);
		memcpy(it->peer_lens, dopts->peer_lens, np * sizeof *it->peer_lens);
		bt_source_add_magnet_peers(&it->src, &it->peers, &it->peer_lens, &np);
		iopts.peers = it->peers;
		iopts.peer_lens = it->peer_lens;
		iopts.npeers = np;
		if (!iopts.select && it->src.is_magnet && o->mode == BT_JOB_DOWNLOAD)
			iopts.select = it->so_select = so_to_select(&it->src.mg);
		if (m) {
			it->d = bt_download_new(r->session, m, &iopts, &ev, r);
		} else {
			struct bt_download_magnet mg = bt_source_job_magnet(&it->src);
			it->d = bt_download_new_magnet(r->session, &mg, &iopts, &ev, r);
		}
		r->view.jobs[i] = it->d;
		r->view.n++;
		for (size_t k = 0; m && k < i; k++)
			if (bt_download_final_path(r->items[k].d) &&
			    strcmp(bt_download_final_path(r->items[k].d),
				   bt_download_final_path(it->d)) == 0)
				return bt_cli_usage_error(
					o->command, "'%s' and '%s' would both write '%s'",
					r->items[k].path, it->path, bt_download_final_path(it->d));
		if (m && o->save_torrent &&
		    (rc = bt_source_save_torrent(o->command, m, o->save_torrent)))
			return rc;
	}
	return 0;
}

static int finish(struct run *r, enum bt_session_end end)
{
	int rc = r->save_failed ? BT_EXIT_FAILURE : BT_EXIT_OK;
	for (size_t i = 0; i < r->n; i++) {
		struct item *it = &r->items[i];
		struct bt_download *d = it->d;
		enum bt_download_state st = bt_download_state(d);
		const char *prefix = r->n > 1 ? it->path : NULL;
		if (st == BT_DOWNLOAD_FAILED) {
			/* What it got before it failed, then why (the last line). */
			bt_jobview_summary(&r->view, d);
			bt_cli_error(r->o->command, "%s%s%s", prefix ? prefix : "",
				     prefix ? ": " : "", bt_download_reason(d));
			rc = BT_EXIT_FAILURE;
			continue;
		}
		bt_jobview_summary(&r->view, d);
		if (st == BT_DOWNLOAD_DONE || st == BT_DOWNLOAD_SEEDING)
			announce_result(r, it);
		else if (end == BT_SESSION_INTERRUPTED && r->o->mode != BT_JOB_SEED) {
			if (bt_download_keeps_part(d))
				bt_cli_error(
					r->o->command,
					"interrupted; verified pieces are kept in '%s': run the "
					"same command again to resume",
					bt_download_temp_path(d));
			else
				bt_cli_error(r->o->command,
					     "interrupted before any piece was verified; nothing "
					     "was kept");
			rc = BT_EXIT_FAILURE;
		} else if (st == BT_DOWNLOAD_RUNNING && r->o->mode != BT_JOB_SEED) {
			rc = BT_EXIT_FAILURE;
		}
	}
	return rc;
}

static int run_jobs(struct bt_job_args *o)
{
	const char *cmd = o->command;
	struct bt_err err;
	struct run r = {.o = o};
	r.view = (struct bt_jobview){
		.mode = o->progress, .tty = isatty(STDERR_FILENO) == 1, .started = bt_now()};
	size_t np = o->npeers ? o->npeers : 1;
	struct sockaddr_storage *peers = bt_xcalloc(np, sizeof *peers);
	socklen_t *lens = bt_xcalloc(np, sizeof *lens);
	struct bt_download_opts dopts = {
		.kind = o->mode == BT_JOB_PIECE	 ? BT_DOWNLOAD_PIECE
			: o->mode == BT_JOB_SEED ? BT_DOWNLOAD_SEED
						 : BT_DOWNLOAD_TORRENT,
		.dir = o->dir,
		.output = o->output,
		.data_path = o->data_path,
		.force = o->force,
		.seed = o->seed,
		.assume_valid = o->assume_valid,
		.seed_ratio = o->seed_ratio,
		.seed_time = o->seed_time,
		.select = o->select,
		.exclude = o->exclude,
		.peers = peers,
		.peer_lens = lens,
		.npeers = o->npeers,
		.torrent = {.max_peers = o->max_peers,
			    .use_trackers = !o->no_tracker,
			    .stall_timeout_s = o->stall_timeout,
			    .sequential = o->sequential,
			    .first_last = o->first_last,
			    /* The course's magnet commands: its
			     * exact reserved bytes. */
			    .course_handshake = !strncmp(cmd, "magnet_", 7)}};
	int rc = 0;
	for (size_t i = 0; i < o->npeers && !rc; i++)
		rc = bt_cli_resolve_peer(cmd, o->peers[i], &peers[i], &lens[i]);
	if (rc)
		goto done;
	if ((o->plot_path || o->stats_path) &&
	    !(r.plot = bt_jobplot_new(o->plot_path, o->stats_path, &err))) {
		bt_cli_error(cmd, "%s", err.msg);
		rc = BT_EXIT_FAILURE;
		goto done;
	}
	if (o->verbose)
		bt_log_set_level(BT_LOG_DEBUG);
	bt_log_set_sink(bt_jobview_log_sink, &r.view);
	if (!(r.session = bt_session_new(&err)) ||
	    (o->listen_ip && bt_session_set_source(r.session, o->listen_ip, &err))) {
		bt_cli_error(cmd, "%s", err.msg);
		rc = BT_EXIT_FAILURE;
		goto done;
	}
	bt_session_set_limits(r.session, o->max_down, o->max_up);
	if ((rc = load_items(&r, &dopts)))
		goto done;
	for (size_t i = 0; i < r.n; i++) {
		if (bt_download_prepare(r.items[i].d, &err)) {
			bt_jobview_summary(&r.view, r.items[i].d);
			bt_cli_error(cmd, "%s", err.msg);
			rc = BT_EXIT_FAILURE;
			goto done;
		}
		int64_t kept = bt_download_resumed(r.items[i].d);
		if (kept >= 0 && o->progress != BT_VIEW_NONE)
			fprintf(stderr,
				"torrent: resuming '%s': %lld of %u pieces already verified\n",
				bt_download_temp_path(r.items[i].d), (long long)kept,
				bt_download_metainfo(r.items[i].d)->piece_count);
		if (bt_download_was_complete(r.items[i].d) && o->seed)
			announce_result(&r, &r.items[i]);
	}
	if (o->mode != BT_JOB_PIECE && !all_ended(&r)) {
		if (bt_session_listen(r.session, o->listen_ip, (uint16_t)o->port, &err) == 0) {
			if (o->mode == BT_JOB_SEED && o->progress != BT_VIEW_NONE)
				fprintf(stderr, "torrent: seeding on port %u\n",
					bt_session_listen_port(r.session));
		} else if (o->seed) {
			bt_cli_error(cmd, "%s", err.msg);
			rc = BT_EXIT_FAILURE;
			goto done;
		} else if (o->progress != BT_VIEW_NONE) {
			/* Downloading works without it: we only cannot be dialled. */
			bt_cli_error(cmd, "warning: %s; downloading without accepting peers",
				     err.msg);
		}
	}
	if (!o->no_dht)
		bt_cli_start_dht(cmd, r.session, o->dht_routers, o->ndht_routers,
				 (uint16_t)o->dht_port);
	r.progress_ev = event_new(bt_session_base(r.session), -1, EV_PERSIST, on_progress, &r);
	struct timeval tv;
	event_add(r.progress_ev,
		  bt_timeval(&tv, r.view.tty && o->progress == BT_VIEW_AUTO ? 0.25 : 1));
	r.view.engine_started = bt_now();
	for (size_t i = 0; i < r.n; i++)
		bt_download_start(r.items[i].d);
	if (r.plot)
		bt_jobplot_start(r.plot, bt_session_base(r.session), r.view.jobs, r.n,
				 r.view.engine_started);
	enum bt_session_end end = BT_SESSION_STOPPED;
	if (!all_ended(&r))
		end = bt_session_run(r.session, 0);
	event_del(r.progress_ev);
	if (end != BT_SESSION_INTERRUPTED)
		bt_jobview_progress(&r.view, true);
	bt_jobview_end_line(&r.view);
	int plot_rc = r.plot ? bt_jobplot_finish(r.plot, &err) : 0;
	if (plot_rc)
		bt_cli_error(cmd, "%s", err.msg);
	/* Tell the trackers we are leaving, bounded, and close every peer. */
	bool all_stopped = true;
	for (size_t i = 0; i < r.n; i++) {
		bt_download_stop(r.items[i].d);
		all_stopped = all_stopped && bt_download_stopped(r.items[i].d);
	}
	if (!all_stopped && end != BT_SESSION_INTERRUPTED)
		bt_session_run(r.session, 3);
	rc = finish(&r, end);
	if (plot_rc && !rc)
		rc = BT_EXIT_FAILURE;
done:
	bt_log_set_sink(NULL, NULL);
	bt_jobplot_free(r.plot);
	if (r.progress_ev)
		event_free(r.progress_ev);
	for (size_t i = 0; i < r.n; i++) {
		bt_download_free(r.items[i].d);
		bt_source_deinit(&r.items[i].src);
		free(r.items[i].so_select);
		free(r.items[i].peers);
		free(r.items[i].peer_lens);
	}
	free(r.items);
	free(r.view.jobs);
	free(r.view.final_shown);
	bt_jobview_deinit(&r.view);
	bt_session_free(r.session);
	free(peers);
	free(lens);
	return rc;
}

static int run_mode(int argc, char **argv, const char *name, enum bt_job_mode mode)
{
	struct bt_job_args o = {.command = name, .mode = mode};
	int rc = bt_job_args_parse(argc, argv, &o);
	if (rc == 0)
		rc = run_jobs(&o);
	free(o.peers);
	free(o.dht_routers);
	return rc < 0 ? BT_EXIT_OK : rc;
}

static int run_download(int argc, char **argv)
{
	return run_mode(argc, argv, "download", BT_JOB_DOWNLOAD);
}

static int run_download_piece(int argc, char **argv)
{
	return run_mode(argc, argv, "download_piece", BT_JOB_PIECE);
}

static int run_seed(int argc, char **argv)
{
	return run_mode(argc, argv, "seed", BT_JOB_SEED);
}

static int run_magnet_download(int argc, char **argv)
{
	return run_mode(argc, argv, "magnet_download", BT_JOB_DOWNLOAD);
}

static int run_magnet_download_piece(int argc, char **argv)
{
	return run_mode(argc, argv, "magnet_download_piece", BT_JOB_PIECE);
}

/* The course's names: a magnet is accepted by download and download_piece themselves. */
const struct bt_cli_command bt_cmd_magnet_download = {
	.name = "magnet_download",
	.summary = "download a magnet link's torrent (as 'download')",
	.help = bt_job_download_help,
	.run = run_magnet_download,
};

const struct bt_cli_command bt_cmd_magnet_download_piece = {
	.name = "magnet_download_piece",
	.summary = "download one piece of a magnet link's torrent (as 'download_piece')",
	.help = bt_job_piece_help,
	.run = run_magnet_download_piece,
};

const struct bt_cli_command bt_cmd_seed = {
	.name = "seed",
	.summary = "serve torrents' data to other peers",
	.help = bt_job_seed_help,
	.run = run_seed,
};

const struct bt_cli_command bt_cmd_download = {
	.name = "download",
	.summary = "download whole torrents",
	.help = bt_job_download_help,
	.run = run_download,
};

const struct bt_cli_command bt_cmd_download_piece = {
	.name = "download_piece",
	.summary = "download one piece of a torrent",
	.help = bt_job_piece_help,
	.run = run_download_piece,
};
