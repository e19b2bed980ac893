#include "bt/jobview.h"

#include "bt/json.h"
#include "bt/progress.h"
#include "bt/torrent.h"

#include <stdio.h>
#include <stdlib.h>

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

static void put_line(struct bt_jobview *v, const char *line, bool final)
{
	if (v->tty) {
		fprintf(stderr, "\r%s\033[K", line);
		v->line_drawn = true;
		if (final)
			bt_jobview_end_line(v);
	} else {
		fprintf(stderr, "torrent: %s\n", line);
	}
}

static void progress_of(const struct bt_jobview *v, const struct bt_download *d, bool final,
			struct bt_progress *p)
{
	struct bt_torrent_stats s = {0};
	if (bt_download_torrent(d))
		bt_torrent_get_stats(bt_download_torrent(d), &s);
	*p = (struct bt_progress){.done = s.verified_bytes,
				  .total = s.wanted_bytes,
				  .rate = s.rate,
				  .elapsed = bt_now() - v->started,
				  .peers = s.peers_connected,
				  .unchoking = s.peers_unchoking};
	/* The last line shows the whole run's average rather than the last second's. */
	if (final && p->elapsed > 0)
		p->rate = (double)s.received_bytes / p->elapsed;
	if (v->n > 1)
		p->name = name_of(d);
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
	for (size_t i = 0; i < count; i++)
		fprintf(stderr, "\r%s\033[K%s", lines[i], i + 1 < count ? "\n" : "");
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
		progress_of(v, v->jobs[i], final, &p);
		total.done += p.done, total.total += p.total, total.rate += p.rate;
		total.peers += p.peers, total.unchoking += p.unchoking;
		bt_progress_line(lines[i], sizeof lines[i], &p);
	}
	bt_progress_line(lines[v->n], sizeof lines[v->n], &total);
	draw_block(v, lines, v->n + 1, final);
	free(lines);
}

static void show_one(struct bt_jobview *v, size_t i, bool final)
{
	struct bt_progress p;
	progress_of(v, v->jobs[i], final, &p);
	if (final)
		v->final_shown[i] = true;
	if (v->mode == BT_VIEW_JSON) {
		struct bt_buf b;
		bt_buf_init(&b);
		bt_progress_json(&b, &p);
		fprintf(stderr, "%s\n", (char *)b.data);
		bt_buf_deinit(&b);
		return;
	}
	char line[512];
	bt_progress_line(line, sizeof line, &p);
	put_line(v, line, final);
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
	char line[512];
	snprintf(line, sizeof line,
		 "%s%sfetching metadata: %zu peers connected, %zu offering it, %u of %u blocks",
		 v->n > 1 ? name_of(d) : "", v->n > 1 ? ": " : "", s.peers_connected,
		 s.metadata_peers, s.metadata_blocks_done, s.metadata_blocks_total);
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
	if (v->mode != BT_VIEW_AUTO || !v->tty)
		return;
	fprintf(stderr, "\rchecking %u of %u pieces\033[K", done, total);
	v->line_drawn = true;
	if (done == total)
		bt_jobview_end_line(v);
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
		struct bt_torrent_peer_stat *ps = NULL;
		size_t n = t ? bt_torrent_peer_stats(t, &ps) : 0;
		struct bt_buf name;
		bt_buf_init(&name);
		put_name_field(&name, v, d);
		fprintf(stderr,
			"{\"event\":\"summary\",%s\"received\":%llu,\"verified\":%llu,"
			"\"total\":%llu,\"seconds\":%.3f,\"first_byte\":%.3f,\"pieces_failed\":%u,"
			"\"peers\":[",
			name.len ? (char *)name.data : "", (unsigned long long)s.received_bytes,
			(unsigned long long)s.verified_bytes, (unsigned long long)s.wanted_bytes,
			elapsed,
			s.first_byte_s < 0 ? -1 : s.first_byte_s + (v->engine_started - v->started),
			s.pieces_failed);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, "%s{\"address\":\"%s\",\"bytes\":%llu,\"banned\":%s}",
				i ? "," : "", ps[i].name, (unsigned long long)ps[i].bytes,
				ps[i].banned ? "true" : "false");
		fprintf(stderr, "]}\n");
		free(ps);
		bt_buf_deinit(&name);
		return;
	}
	char size[32], rate[32];
	bt_format_bytes(size, sizeof size, (double)s.received_bytes);
	bt_format_rate(rate, sizeof rate, elapsed > 0 ? (double)s.received_bytes / elapsed : 0);
	fprintf(stderr,
		"torrent: %s%sreceived %s in %.1f s (%s average) from %zu peer%s; %u piece%s "
		"failed verification\n",
		v->n > 1 ? name_of(d) : "", v->n > 1 ? ": " : "", size, elapsed, rate, s.peers_used,
		s.peers_used == 1 ? "" : "s", s.pieces_failed, s.pieces_failed == 1 ? "" : "s");
}
