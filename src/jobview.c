#include "bt/jobview.h"

#include "bt/json.h"
#include "bt/progress.h"
#include "bt/torrent.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Multi-file summaries list every file up to this many; beyond, the incomplete ones up to it. */
#define LIST_FILES 20

/* What a job's JSON lines said of its files, so that a line carries only what changed. */
struct bt_jobview_files {
	size_t count;	/* the torrent's files, pad files included; 0 until the metadata */
	uint64_t *said; /* per file: done as last reported, UINT64_MAX for never */
	size_t *number; /* per file: its number as `info` shows it (pad files: 0) */
	size_t cursor;	/* where the next line starts looking */
};

void bt_jobview_deinit(struct bt_jobview *v)
{
	if (!v->files)
		return;
	for (size_t i = 0; i < v->n; i++) {
		free(v->files[i].said);
		free(v->files[i].number);
	}
	free(v->files);
	v->files = NULL;
}

static const char *name_of(const struct bt_download *d)
{
	return bt_download_name(d);
}

/* With several torrents, a JSON object names its torrent: `"name":"...",` (else nothing). */
static void put_name_field(struct bt_buf *b, const struct bt_jobview *v,
			   const struct bt_download *d)
{
	if (v->n < 2)
		return;
	bt_buf_adds(b, "\"name\":");
	bt_json_put_str(b, name_of(d));
	bt_buf_adds(b, ",");
}

void bt_jobview_end_line(struct bt_jobview *v)
{
	if (v->line_drawn) {
		fputc('\n', stderr);
		v->line_drawn = false;
		v->block_lines = 0;
	}
}

/* Log lines (-v) must not land in the middle of a redrawn progress line. */
void bt_jobview_log_sink(void *arg, enum bt_log_level level, const char *subject, const char *msg)
{
	(void)level;
	bt_jobview_end_line(arg);
	fprintf(stderr, "torrent: %s: %s\n", subject, msg);
}

/*
 * Asked at every redraw rather than on SIGWINCH: a redraw is at most four times a second, and a
 * resize then shows at the next one. One column is left free: a line that fills the last column
 * leaves some terminals waiting to wrap, and the next character would start a new line.
 */
static size_t line_columns(void)
{
	struct winsize ws;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_col < 2)
		return 0;
	return (size_t)ws.ws_col - 1;
}

/* A line redrawn in place must never wrap: a wrapped line leaves its first part behind. */
static void fit(const struct bt_jobview *v, char *line)
{
	size_t cols = v->tty ? line_columns() : 0;
	if (cols)
		bt_progress_fit(line, cols);
}

static void put_line(struct bt_jobview *v, char *line, bool final)
{
	if (v->tty) {
		fit(v, line);
		fprintf(stderr, "\r%s\033[K", line);
		v->line_drawn = true;
		if (final)
			bt_jobview_end_line(v);
	} else {
		fprintf(stderr, "torrent: %s\n", line);
	}
}

/* phase: room for the torrent's phase text, which p->phase may point to. */
static void progress_of(const struct bt_jobview *v, const struct bt_download *d, bool final,
			struct bt_progress *p, char *phase, size_t phase_len)
{
	struct bt_torrent_stats s = {0};
	struct bt_torrent *t = bt_download_torrent(d);
	if (t)
		bt_torrent_get_stats(t, &s);
	*p = (struct bt_progress){.done = s.verified_bytes,
				  .total = s.wanted_bytes,
				  .rate = s.rate,
				  .elapsed = bt_now() - v->started,
				  .peers = s.peers_connected,
				  .unchoking = s.peers_unchoking,
				  .dht = s.dht,
				  .dht_nodes = s.dht_nodes,
				  .dht_peers = s.dht_peers,
				  .webseeds = s.webseeds,
				  .webseeds_active = s.webseeds_active,
				  .webseed_bytes = s.webseed_bytes};
	/* The last line shows the whole run's average rather than the last second's, and the
	 * most peers it had at once (seeds are let go when the download is done). */
	if (final && p->elapsed > 0)
		p->rate = (double)s.received_bytes / p->elapsed;
	if (final && s.peers_max > p->peers)
		p->peers = s.peers_max;
	if (v->n > 1)
		p->name = name_of(d);
	if (t && !final && bt_download_state(d) == BT_DOWNLOAD_RUNNING)
		p->phase = bt_torrent_phase(t, phase, phase_len);
}

/*
 * On a terminal with several torrents: a block of lines redrawn in place (the cursor goes back
 * up to the block's first line). A block of another size starts below the last one.
 */
static void draw_block(struct bt_jobview *v, char (*lines)[512], size_t count, bool final)
{
	if (v->line_drawn && v->block_lines != count)
		bt_jobview_end_line(v);
	if (v->line_drawn && count > 1)
		fprintf(stderr, "\r\033[%zuA", count - 1);
	for (size_t i = 0; i < count; i++) {
		fit(v, lines[i]);
		fprintf(stderr, "\r%s\033[K%s", lines[i], i + 1 < count ? "\n" : "");
	}
	v->line_drawn = count > 0;
	v->block_lines = count;
	if (final)
		bt_jobview_end_line(v);
}

/* Every torrent's line and their total, for a terminal. */
static void draw_all(struct bt_jobview *v, bool final)
{
	char(*lines)[512] = bt_xcalloc(v->n + 1, sizeof *lines);
	struct bt_progress total = {.elapsed = bt_now() - v->started, .name = "total"};
	for (size_t i = 0; i < v->n; i++) {
		struct bt_progress p;
		char phase[128];
		progress_of(v, v->jobs[i], final, &p, phase, sizeof phase);
		total.done += p.done, total.total += p.total, total.rate += p.rate;
		total.peers += p.peers, total.unchoking += p.unchoking;
		total.webseeds += p.webseeds, total.webseeds_active += p.webseeds_active;
		total.webseed_bytes += p.webseed_bytes;
		bt_progress_line(lines[i], sizeof lines[i], &p);
	}
	bt_progress_line(lines[v->n], sizeof lines[v->n], &total);
	draw_block(v, lines, v->n + 1, final);
	free(lines);
}

static bool verbose(void)
{
	/* --verbose is what sets the log to debug: per-file detail goes with it. */
	return bt_log_enabled(BT_LOG_DEBUG);
}

/*
 * Each file's verified bytes as the summaries, the JSON lines and -v report them: pad files and
 * files left out at 0 (a file left out is not created; its bytes in a shared piece are in the
 * side file); with prefix_out, the bytes from each file's start all verified. NULL before the
 * metadata or the torrent.
 */
static uint64_t *files_reported(const struct bt_download *d, uint64_t **prefix_out)
{
	const struct bt_metainfo *m = bt_download_metainfo(d);
	struct bt_torrent *t = bt_download_torrent(d);
	if (!m || !t || !m->file_count)
		return NULL;
	uint64_t *done = bt_xcalloc(m->file_count, sizeof *done);
	uint64_t *prefix = prefix_out ? bt_xcalloc(m->file_count, sizeof *prefix) : NULL;
	bt_progress_files(m, bt_torrent_have(t), done, prefix);
	for (size_t i = 0; i < m->file_count; i++)
		if (m->files[i].pad || !bt_download_file_selected(d, i)) {
			done[i] = 0;
			if (prefix)
				prefix[i] = 0;
		}
	if (prefix_out)
		*prefix_out = prefix;
	return done;
}

/* files_reported, or NULL for a single-file torrent (whose line already says it all). */
static uint64_t *files_done(const struct bt_download *d)
{
	const struct bt_metainfo *m = bt_download_metainfo(d);
	return m && m->multi_file ? files_reported(d, NULL) : NULL;
}

/* With -v on a pipe, under each progress line: the files partly there, as aria2 shows them. */
static void show_files_in_progress(const struct bt_jobview *v, const struct bt_download *d)
{
	uint64_t *done = verbose() ? files_done(d) : NULL;
	if (!done)
		return;
	const struct bt_metainfo *m = bt_download_metainfo(d);
	size_t shown = 0, more = 0;
	for (size_t i = 0; i < m->file_count; i++) {
		const struct bt_meta_file *f = &m->files[i];
		if (f->pad || done[i] == 0 || done[i] >= (uint64_t)f->length)
			continue;
		if (shown++ == LIST_FILES) {
			more++, shown--;
			continue;
		}
		char line[1024];
		bt_progress_file_line(line, sizeof line, f->path, done[i], (uint64_t)f->length,
				      true);
		fprintf(stderr, "torrent: %s%s  %s\n", v->n > 1 ? name_of(d) : "",
			v->n > 1 ? ":" : "", line);
	}
	if (more)
		fprintf(stderr, "torrent:   and %zu more file%s in progress\n", more,
			more == 1 ? "" : "s");
	free(done);
}

static struct bt_jobview_files *files_state(struct bt_jobview *v, size_t i,
					    const struct bt_metainfo *m)
{
	if (!v->files)
		v->files = bt_xcalloc(v->n, sizeof *v->files);
	struct bt_jobview_files *st = &v->files[i];
	if (st->count)
		return st;
	st->count = m->file_count;
	st->said = bt_xcalloc(m->file_count, sizeof *st->said);
	st->number = bt_xcalloc(m->file_count, sizeof *st->number);
	for (size_t k = 0, number = 0; k < m->file_count; k++) {
		/* A pad file is never reported: "said" already matches its 0. */
		st->said[k] = m->files[k].pad ? 0 : UINT64_MAX;
		st->number[k] = m->files[k].pad ? 0 : ++number;
	}
	return st;
}

/* Job i's JSON progress line: p plus the files that changed since its last line. */
static void show_json(struct bt_jobview *v, size_t i, struct bt_progress *p)
{
	const struct bt_download *d = v->jobs[i];
	const struct bt_metainfo *m = bt_download_metainfo(d);
	uint64_t *prefix = NULL;
	uint64_t *done = files_reported(d, &prefix);
	struct bt_progress_file *files = NULL;
	if (done) {
		struct bt_jobview_files *st = files_state(v, i, m);
		size_t picked[BT_PROGRESS_JSON_FILES];
		p->nfiles = bt_progress_files_changed(done, st->said, st->count, &st->cursor,
						      BT_PROGRESS_JSON_FILES, picked,
						      &p->files_pending);
		files = bt_xcalloc(p->nfiles ? p->nfiles : 1, sizeof *files);
		for (size_t k = 0; k < p->nfiles; k++) {
			const struct bt_meta_file *f = &m->files[picked[k]];
			files[k] = (struct bt_progress_file){
				.index = st->number[picked[k]],
				.path = f->path,
				.size = (uint64_t)f->length,
				.done = done[picked[k]],
				.prefix = prefix[picked[k]],
				.selected = bt_download_file_selected(d, picked[k])};
		}
		p->files_on = true;
		p->files = files;
	}
	struct bt_buf b;
	bt_buf_init(&b);
	bt_progress_json(&b, p);
	fprintf(stderr, "%s\n", (char *)b.data);
	bt_buf_deinit(&b);
	free(files);
	free(done);
	free(prefix);
}

static void show_one(struct bt_jobview *v, size_t i, bool final)
{
	struct bt_progress p;
	char phase[128];
	progress_of(v, v->jobs[i], final, &p, phase, sizeof phase);
	if (final)
		v->final_shown[i] = true;
	if (v->mode == BT_VIEW_JSON) {
		show_json(v, i, &p);
		return;
	}
	char line[512];
	bt_progress_line(line, sizeof line, &p);
	put_line(v, line, final);
	if (!v->tty && !final)
		show_files_in_progress(v, v->jobs[i]);
}

/* A magnet's job before its metadata: whom it asks and how far it got. */
static void show_metadata(struct bt_jobview *v, size_t i)
{
	const struct bt_download *d = v->jobs[i];
	struct bt_torrent_stats s = {0};
	if (bt_download_torrent(d))
		bt_torrent_get_stats(bt_download_torrent(d), &s);
	if (v->mode == BT_VIEW_JSON) {
		struct bt_buf b;
		bt_buf_init(&b);
		bt_buf_adds(&b, "{");
		put_name_field(&b, v, d);
		bt_buf_printf(&b,
			      "\"metadata\":false,\"peers\":%zu,\"metadata_peers\":%zu,"
			      "\"metadata_blocks\":%u,\"metadata_blocks_total\":%u,"
			      "\"elapsed\":%.2f}",
			      s.peers_connected, s.metadata_peers, s.metadata_blocks_done,
			      s.metadata_blocks_total, bt_now() - v->started);
		fprintf(stderr, "%s\n", (char *)b.data);
		bt_buf_deinit(&b);
		return;
	}
	char phase[256], line[512];
	const char *what = bt_download_torrent(d)
				   ? bt_torrent_phase(bt_download_torrent(d), phase, sizeof phase)
				   : NULL;
	snprintf(line, sizeof line, "%s%s%s, %zu peers connected", v->n > 1 ? name_of(d) : "",
		 v->n > 1 ? ": " : "", what ? what : "fetching metadata", s.peers_connected);
	put_line(v, line, false);
}

/* The progress of every torrent still downloading (final: and those done, once). */
void bt_jobview_progress(struct bt_jobview *v, bool final)
{
	if (v->mode == BT_VIEW_NONE)
		return;
	double now = bt_now();
	if (v->mode == BT_VIEW_AUTO && !v->tty && !final && now - v->last_plain < 5)
		return;
	v->last_plain = now;
	if (v->mode == BT_VIEW_AUTO && v->tty && v->n > 1) {
		draw_all(v, final);
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		enum bt_download_state st = bt_download_state(v->jobs[i]);
		if (st == BT_DOWNLOAD_METADATA && !final)
			show_metadata(v, i);
		else if (st == BT_DOWNLOAD_RUNNING ||
			 (final && st == BT_DOWNLOAD_DONE && !v->final_shown[i]))
			show_one(v, i, final);
	}
}

void bt_jobview_job_done(struct bt_jobview *v, size_t i)
{
	if (v->mode == BT_VIEW_NONE || v->final_shown[i])
		return;
	if (v->mode == BT_VIEW_AUTO && v->tty && v->n > 1)
		draw_all(v, false);
	else
		show_one(v, i, true);
}

void bt_jobview_seeding(struct bt_jobview *v)
{
	double now = bt_now();
	if (v->mode == BT_VIEW_NONE ||
	    (v->mode == BT_VIEW_AUTO && !v->tty && now - v->last_plain < 5))
		return;
	v->last_plain = now;
	char(*lines)[512] = bt_xcalloc(v->n, sizeof *lines);
	size_t count = 0;
	for (size_t i = 0; i < v->n; i++) {
		const struct bt_download *d = v->jobs[i];
		struct bt_torrent *t = bt_download_torrent(d);
		if (bt_download_state(d) != BT_DOWNLOAD_SEEDING || !t)
			continue;
		struct bt_torrent_stats s;
		bt_torrent_get_stats(t, &s);
		if (v->mode == BT_VIEW_JSON) {
			struct bt_buf b;
			bt_buf_init(&b);
			bt_buf_adds(&b, "{");
			put_name_field(&b, v, d);
			bt_buf_printf(&b,
				      "\"seeding\":true,\"uploaded\":%llu,\"up_rate\":%.0f,"
				      "\"peers\":%zu,\"elapsed\":%.2f}",
				      (unsigned long long)s.uploaded_bytes, s.up_rate,
				      s.peers_connected, bt_download_seeding_for(d));
			fprintf(stderr, "%s\n", (char *)b.data);
			bt_buf_deinit(&b);
			continue;
		}
		char up[32], rate[32];
		bt_format_bytes(up, sizeof up, (double)s.uploaded_bytes);
		bt_format_rate(rate, sizeof rate, s.up_rate);
		snprintf(lines[count], sizeof lines[count],
			 "%s%sseeding: %s uploaded  %s  peers %zu  ratio %.2f",
			 v->n > 1 ? name_of(d) : "", v->n > 1 ? ": " : "", up, rate,
			 s.peers_connected,
			 (double)s.uploaded_bytes / (double)bt_download_metainfo(d)->total_length);
		if (!v->tty)
			put_line(v, lines[count], false);
		count++;
	}
	if (v->tty && count)
		draw_block(v, lines, count, false);
	free(lines);
}

void bt_jobview_checking(struct bt_jobview *v, uint32_t done, uint32_t total)
{
	if (v->mode != BT_VIEW_AUTO)
		return;
	char line[128];
	bt_progress_checking_line(line, sizeof line, done, total);
	if (v->tty) {
		put_line(v, line, done == total);
		return;
	}
	/* On a pipe: a line every 5 s of a long check, and its end when any was shown. */
	double now = bt_now();
	if (v->check_last == 0)
		v->check_last = now;
	bool end = done == total;
	if (end ? v->check_shown : now - v->check_last >= 5) {
		put_line(v, line, end);
		v->check_last = now;
		v->check_shown = true;
	}
	if (end)
		v->check_last = 0, v->check_shown = false;
}

/* The multi-file part of the summary: a count, then each file's state. */
static void summary_files(const struct bt_jobview *v, const struct bt_download *d)
{
	uint64_t *done = files_done(d);
	if (!done)
		return;
	const struct bt_metainfo *m = bt_download_metainfo(d);
	size_t files = 0, complete = 0, skipped = 0;
	for (size_t i = 0; i < m->file_count; i++)
		if (!m->files[i].pad && !bt_download_file_selected(d, i))
			skipped++;
		else if (!m->files[i].pad) {
			files++;
			complete += done[i] >= (uint64_t)m->files[i].length;
		}
	const char *prefix = v->n > 1 ? name_of(d) : "", *colon = v->n > 1 ? ": " : "";
	char also[64] = "";
	if (skipped)
		snprintf(also, sizeof also, " (%zu not selected)", skipped);
	fprintf(stderr, "torrent: %s%s%zu of %zu files complete%s\n", prefix, colon, complete,
		files, also);
	uint64_t any = 0;
	for (size_t i = 0; i < m->file_count; i++)
		any += m->files[i].pad ? 0 : done[i];
	/* Nothing verified (a run that never got data): a list of zeros would say nothing more. */
	if (!any && !verbose()) {
		free(done);
		return;
	}
	/* Every file when asked (-v) or when few; else the incomplete ones, which matter. */
	bool all = verbose() || files <= LIST_FILES;
	size_t shown = 0;
	for (size_t i = 0; i < m->file_count; i++) {
		const struct bt_meta_file *f = &m->files[i];
		bool whole = done[i] >= (uint64_t)f->length;
		bool selected = bt_download_file_selected(d, i);
		if (f->pad || (!all && (whole || !selected)))
			continue;
		if (!all && shown == LIST_FILES)
			break;
		char line[1024];
		if (selected)
			bt_progress_file_line(line, sizeof line, f->path, done[i],
					      (uint64_t)f->length, verbose());
		else
			snprintf(line, sizeof line, "%-17s  %10s  %s", "skipped", "", f->path);
		fprintf(stderr, "torrent: %s%s  %s\n", prefix, v->n > 1 ? ":" : "", line);
		shown++;
	}
	if (!all && files - complete > shown)
		fprintf(stderr, "torrent:   and %zu more incomplete files\n",
			files - complete - shown);
	free(done);
}

static void summary_json(const struct bt_jobview *v, const struct bt_download *d,
			 const struct bt_torrent_stats *s, double elapsed)
{
	struct bt_torrent *t = bt_download_torrent(d);
	struct bt_torrent_peer_stat *ps = NULL;
	size_t n = t ? bt_torrent_peer_stats(t, &ps) : 0;
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_adds(&b, "{\"event\":\"summary\",");
	put_name_field(&b, v, d);
	bt_buf_printf(&b,
		      "\"received\":%llu,\"verified\":%llu,\"total\":%llu,\"seconds\":%.3f,"
		      "\"first_byte\":%.3f,\"pieces_failed\":%u,\"uploaded\":%llu,"
		      "\"peers_served\":%zu,\"peers_max\":%zu,\"peers\":[",
		      (unsigned long long)s->received_bytes, (unsigned long long)s->verified_bytes,
		      (unsigned long long)s->wanted_bytes, elapsed,
		      s->first_byte_s < 0 ? -1 : s->first_byte_s + (v->engine_started - v->started),
		      s->pieces_failed, (unsigned long long)s->uploaded_bytes,
		      t ? bt_torrent_peers_served(t) : 0, s->peers_max);
	for (size_t i = 0; i < n; i++) {
		bt_buf_printf(&b, "%s{\"address\":", i ? "," : "");
		bt_json_put_str(&b, ps[i].name);
		bt_buf_printf(&b, ",\"bytes\":%llu,\"banned\":%s}", (unsigned long long)ps[i].bytes,
			      ps[i].banned ? "true" : "false");
	}
	bt_buf_adds(&b, "]");
	uint64_t *done = files_done(d);
	if (done) {
		const struct bt_metainfo *m = bt_download_metainfo(d);
		bt_buf_adds(&b, ",\"files\":[");
		bool first = true;
		for (size_t i = 0; i < m->file_count; i++) {
			if (m->files[i].pad)
				continue;
			bt_buf_adds(&b, first ? "{\"path\":" : ",{\"path\":");
			bt_json_put_str(&b, m->files[i].path);
			bt_buf_printf(&b, ",\"length\":%lld,\"done\":%llu,\"selected\":%s}",
				      (long long)m->files[i].length, (unsigned long long)done[i],
				      bt_download_file_selected(d, i) ? "true" : "false");
			first = false;
		}
		bt_buf_adds(&b, "]");
		free(done);
	}
	fprintf(stderr, "%s}\n", (char *)b.data);
	free(ps);
	bt_buf_deinit(&b);
}

void bt_jobview_summary(const struct bt_jobview *v, const struct bt_download *d)
{
	struct bt_torrent *t = bt_download_torrent(d);
	/* A job that failed before it started (a disk error, say) has nothing to count, but a
	 * JSON reader still gets its summary. */
	if (v->mode == BT_VIEW_NONE || (!t && v->mode != BT_VIEW_JSON))
		return;
	struct bt_torrent_stats s = {.first_byte_s = -1};
	if (t)
		bt_torrent_get_stats(t, &s);
	else if (bt_download_metainfo(d))
		s.wanted_bytes = (uint64_t)bt_download_metainfo(d)->total_length;
	double elapsed = bt_now() - v->started;
	if (v->mode == BT_VIEW_JSON) {
		summary_json(v, d, &s, elapsed);
		return;
	}
	const char *prefix = v->n > 1 ? name_of(d) : "", *colon = v->n > 1 ? ": " : "";
	/* A seed job (the one without a temporary name) received nothing worth a line. */
	bool seed_job = bt_download_temp_path(d) == NULL;
	if (!seed_job) {
		char size[32], rate[32];
		bt_format_bytes(size, sizeof size, (double)s.received_bytes);
		bt_format_rate(rate, sizeof rate,
			       elapsed > 0 ? (double)s.received_bytes / elapsed : 0);
		fprintf(stderr,
			"torrent: %s%sreceived %s in %.1f s (%s average) from %zu peer%s; %u "
			"piece%s "
			"failed verification\n",
			prefix, colon, size, elapsed, rate, s.peers_used,
			s.peers_used == 1 ? "" : "s", s.pieces_failed,
			s.pieces_failed == 1 ? "" : "s");
		if (s.webseed_bytes > 0) {
			bt_format_bytes(size, sizeof size, (double)s.webseed_bytes);
			fprintf(stderr, "torrent: %s%s%s of it from web seeds (%zu URL%s)\n",
				prefix, colon, size, s.webseeds, s.webseeds == 1 ? "" : "s");
		}
	}
	double seeded = bt_download_seeding_for(d);
	if (seed_job || s.uploaded_bytes > 0 || seeded >= 0) {
		char line[256];
		bt_progress_upload_line(line, sizeof line, s.uploaded_bytes,
					bt_torrent_peers_served(t), seeded >= 0 ? seeded : elapsed,
					bt_download_metainfo(d)
						? (uint64_t)bt_download_metainfo(d)->total_length
						: 0);
		fprintf(stderr, "torrent: %s%s%s\n", prefix, colon, line);
	}
	if (!seed_job)
		summary_files(v, d);
}
