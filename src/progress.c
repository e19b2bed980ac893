#include "bt/progress.h"

#include "bt/json.h"

#include <math.h>
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
	int used = p->name ? snprintf(out, n, "%s: ", p->name) : 0;
	if (used < 0 || (size_t)used >= n)
		return;
	out += used;
	n -= (size_t)used;
	snprintf(out, n, "%5.1f%%  %s of %s  %s  ETA %s  peers %zu (%zu unchoking)", percent(p),
		 done, total, rate, left, p->peers, p->unchoking);
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
	bt_buf_printf(out, ",\"peers\":%zu,\"unchoking\":%zu,\"elapsed\":%.2f}", p->peers,
		      p->unchoking, p->elapsed);
}
