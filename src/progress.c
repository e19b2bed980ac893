#include "bt/progress.h"

#include "bt/json.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>

void bt_format_bytes(char *out, size_t n, double bytes)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	size_t u = 0;
	while (bytes >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
		bytes /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, n, "%.0f B", bytes);
	else
		snprintf(out, n, "%.1f %s", bytes, units[u]);
}

void bt_format_rate(char *out, size_t n, double bytes_per_s)
{
	char b[32];
	bt_format_bytes(b, sizeof b, bytes_per_s > 0 ? bytes_per_s : 0);
	snprintf(out, n, "%s/s", b);
}

void bt_format_eta(char *out, size_t n, double seconds)
{
	if (!isfinite(seconds) || seconds < 0 || seconds > 99 * 3600.0) {
		snprintf(out, n, "--");
		return;
	}
	long s = lround(seconds);
	if (s < 60)
		snprintf(out, n, "%lds", s);
	else if (s < 3600)
		snprintf(out, n, "%ldm%02lds", s / 60, s % 60);
	else
		snprintf(out, n, "%ldh%02ldm", s / 3600, s / 60 % 60);
}

static double percent(const struct bt_progress *p)
{
	return p->total ? 100.0 * (double)p->done / (double)p->total : 100.0;
}

static double eta(const struct bt_progress *p)
{
	if (p->done >= p->total)
		return 0;
	return p->rate > 0 ? (double)(p->total - p->done) / p->rate : -1;
}

void bt_progress_line(char *out, size_t n, const struct bt_progress *p)
{
	char done[32], total[32], rate[32], left[16];
	bt_format_bytes(done, sizeof done, (double)p->done);
	bt_format_bytes(total, sizeof total, (double)p->total);
	bt_format_rate(rate, sizeof rate, p->rate);
	bt_format_eta(left, sizeof left, eta(p));
	char dht[64] = "", ws[96] = "";
	if (p->webseeds) {
		/* Apart from the peers: a swarm of none still downloads, and the user sees from
		 * what. */
		char got[32];
		bt_format_bytes(got, sizeof got, (double)p->webseed_bytes);
		snprintf(ws, sizeof ws, " + web seed%s %zu (%zu active, %s)",
			 p->webseeds == 1 ? "" : "s", p->webseeds, p->webseeds_active, got);
	}
	if (p->dht)
		snprintf(dht, sizeof dht, "  DHT %zu nodes, %llu peers", p->dht_nodes,
			 (unsigned long long)p->dht_peers);
	int used = p->name ? snprintf(out, n, "%s: ", p->name) : 0;
	if (used < 0 || (size_t)used >= n)
		return;
	out += used;
	n -= (size_t)used;
	/* The phase leads: on a narrow terminal the end of the line is what gets cut. */
	if (p->phase)
		snprintf(out, n, "%s  %.1f%%  %s of %s", p->phase, percent(p), done, total);
	else
		snprintf(out, n, "%5.1f%%  %s of %s  %s  ETA %s  peers %zu (%zu unchoking)%s%s",
			 percent(p), done, total, rate, left, p->peers, p->unchoking, ws, dht);
}

void bt_progress_json(struct bt_buf *out, const struct bt_progress *p)
{
	double e = eta(p);
	bt_buf_adds(out, "{");
	if (p->name) {
		bt_buf_adds(out, "\"name\":");
		bt_json_put_str(out, p->name);
		bt_buf_adds(out, ",");
	}
	bt_buf_printf(out, "\"done\":%llu,\"total\":%llu,\"percent\":%.2f,\"rate\":%.0f,\"eta\":",
		      (unsigned long long)p->done, (unsigned long long)p->total, percent(p),
		      p->rate > 0 ? p->rate : 0);
	if (e < 0)
		bt_buf_adds(out, "null");
	else
		bt_buf_printf(out, "%.1f", e);
	bt_buf_printf(out, ",\"peers\":%zu,\"unchoking\":%zu,\"elapsed\":%.2f", p->peers,
		      p->unchoking, p->elapsed);
	if (p->phase) {
		bt_buf_adds(out, ",\"phase\":");
		bt_json_put_str(out, p->phase);
	}
	if (p->dht)
		bt_buf_printf(out, ",\"dht_nodes\":%zu,\"dht_peers\":%llu", p->dht_nodes,
			      (unsigned long long)p->dht_peers);
	if (p->webseeds)
		bt_buf_printf(
			out, ",\"webseeds\":%zu,\"webseeds_active\":%zu,\"webseed_bytes\":%llu",
			p->webseeds, p->webseeds_active, (unsigned long long)p->webseed_bytes);
	if (p->files_on) {
		bt_buf_adds(out, ",\"files\":[");
		for (size_t i = 0; i < p->nfiles; i++) {
			const struct bt_progress_file *f = &p->files[i];
			bt_buf_printf(out, "%s{\"index\":%zu,\"path\":", i ? "," : "", f->index);
			bt_json_put_str(out, f->path);
			bt_buf_printf(
				out,
				",\"size\":%llu,\"done\":%llu,\"prefix\":%llu,\"selected\":%s}",
				(unsigned long long)f->size, (unsigned long long)f->done,
				(unsigned long long)f->prefix, f->selected ? "true" : "false");
		}
		bt_buf_adds(out, "]");
		if (p->files_pending)
			bt_buf_printf(out, ",\"files_pending\":%zu", p->files_pending);
	}
	bt_buf_adds(out, "}");
}

void bt_progress_checking_line(char *out, size_t n, uint32_t done, uint32_t total)
{
	/* Whole percents, rounded down: 100% only once the last piece is checked. */
	unsigned pct = total ? (unsigned)((uint64_t)done * 100 / total) : 100;
	snprintf(out, n, "checking %u%% (%u of %u pieces)", pct, done, total);
}

void bt_progress_files(const struct bt_metainfo *m, const struct bt_bitfield *have,
		       uint64_t *done_out, uint64_t *prefix_out)
{
	int64_t plen = m->piece_length;
	for (size_t i = 0; i < m->file_count; i++) {
		const struct bt_meta_file *f = &m->files[i];
		done_out[i] = f->pad ? (uint64_t)f->length : 0;
		uint64_t prefix = (uint64_t)f->length;
		int64_t end = f->offset + f->length;
		/* Only the pieces that overlap the file: the walk is O(pieces + files) overall. */
		for (int64_t k = f->offset / plen;
		     !f->pad && f->length && k * plen < end && k < m->piece_count; k++) {
			int64_t lo = k * plen > f->offset ? k * plen : f->offset;
			if (!bt_bitfield_get(have, (uint32_t)k)) {
				if (prefix == (uint64_t)f->length)
					prefix = (uint64_t)(lo - f->offset); /* the first gap */
				continue;
			}
			int64_t hi = (k + 1) * plen < end ? (k + 1) * plen : end;
			done_out[i] += (uint64_t)(hi - lo);
		}
		if (prefix_out)
			prefix_out[i] = prefix;
	}
}

size_t bt_progress_files_changed(const uint64_t *done_now, uint64_t *said, size_t count,
				 size_t *cursor, size_t max, size_t *picked_out,
				 size_t *pending_out)
{
	size_t picked = 0, pending = 0;
	size_t start = count ? *cursor % count : 0, next = start;
	for (size_t k = 0; k < count; k++) {
		size_t i = (start + k) % count;
		if (done_now[i] == said[i])
			continue;
		if (picked == max) {
			pending++;
			continue;
		}
		said[i] = done_now[i];
		picked_out[picked++] = i;
		next = i + 1;
	}
	/* The next line starts after the last file picked: those left out come first then. */
	*cursor = count ? next % count : 0;
	*pending_out = pending;
	return picked;
}

void bt_progress_file_line(char *out, size_t n, const char *path, uint64_t done, uint64_t length,
			   bool verbose)
{
	char size[32], got[32], state[32];
	bt_format_bytes(size, sizeof size, (double)length);
	bt_format_bytes(got, sizeof got, (double)done);
	/* "complete" only when every byte is verified, never by rounding up to 100.0%. */
	if (done >= length) {
		snprintf(state, sizeof state, "complete");
	} else {
		double pct = 100.0 * (double)done / (double)length;
		snprintf(state, sizeof state, "incomplete %5.1f%%", pct > 99.9 ? 99.9 : pct);
	}
	if (verbose)
		snprintf(out, n, "%-17s  %10s of %10s  %s", state, got, size, path);
	else
		snprintf(out, n, "%-17s  %10s  %s", state, size, path);
}

void bt_progress_upload_line(char *out, size_t n, uint64_t uploaded, size_t peers, double seconds,
			     uint64_t size)
{
	char up[32];
	bt_format_bytes(up, sizeof up, (double)uploaded);
	snprintf(out, n, "uploaded %s to %zu peer%s in %.0f s, ratio %.2f", up, peers,
		 peers == 1 ? "" : "s", seconds > 0 ? seconds : 0,
		 size ? (double)uploaded / (double)size : 0.0);
}

/* Wide (two-column) code points: the East Asian Wide and Fullwidth blocks and the emoji. */
static bool is_wide(uint32_t c)
{
	return (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf && c != 0x303f) ||
	       (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
	       (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
	       (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1f64f) ||
	       (c >= 0x1f900 && c <= 0x1f9ff) || (c >= 0x20000 && c <= 0x3fffd);
}

/* The length in bytes of the character at s and its columns; an invalid byte is one column,
 * as the terminal shows a replacement for it. */
static size_t next_char(const unsigned char *s, size_t *cols_out)
{
	size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 1;
	uint32_t c = len == 1 ? s[0] : s[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			*cols_out = 1;
			return 1;
		}
		c = c << 6 | (s[i] & 0x3f);
	}
	*cols_out = is_wide(c) ? 2 : 1;
	return len;
}

size_t bt_progress_columns(const char *line)
{
	const unsigned char *s = (const unsigned char *)line;
	size_t cols = 0;
	while (*s) {
		size_t w;
		s += next_char(s, &w);
		cols += w;
	}
	return cols;
}

void bt_progress_fit(char *line, size_t cols)
{
	unsigned char *s = (unsigned char *)line;
	size_t used = 0;
	while (*s) {
		size_t w, len = next_char(s, &w);
		if (used + w > cols)
			break;
		used += w;
		s += len;
	}
	*s = '\0';
}
