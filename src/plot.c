#include "bt/plot.h"

#include "bt/json.h"
#include "bt/progress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bt_plot_init(struct bt_plot *p)
{
	memset(p, 0, sizeof *p);
}

void bt_plot_deinit(struct bt_plot *p)
{
	for (size_t i = 0; i < p->ncols; i++)
		free(p->names[i]);
	free(p->names);
	for (size_t i = 0; i < p->nsamples; i++)
		free(p->samples[i].bytes);
	free(p->samples);
	free(p->cur.bytes);
	free(p->touched);
	memset(p, 0, sizeof *p);
}

static const struct bt_plot_sample *last_sample(const struct bt_plot *p)
{
	return p->nsamples ? &p->samples[p->nsamples - 1] : NULL;
}

void bt_plot_begin(struct bt_plot *p, double t)
{
	const struct bt_plot_sample *prev = last_sample(p);
	free(p->cur.bytes);
	/* Peers not named in this sample keep what they had: start from the last sample. */
	p->cur = (struct bt_plot_sample){
		.t = prev && t < prev->t ? prev->t : t,
		.ncols = p->ncols,
		.bytes = bt_xcalloc(p->ncols ? p->ncols : 1, sizeof(uint64_t))};
	if (prev)
		memcpy(p->cur.bytes, prev->bytes, prev->ncols * sizeof(uint64_t));
	if (p->touched)
		memset(p->touched, 0, p->touched_cap * sizeof *p->touched);
	p->open = true;
}

/* A linear search: the columns are the peers that got past the handshake, tens in practice. */
static size_t column_of(struct bt_plot *p, const char *name)
{
	for (size_t i = 0; i < p->ncols; i++)
		if (strcmp(p->names[i], name) == 0)
			return i;
	p->names = bt_xreallocarray(p->names, p->ncols + 1, sizeof *p->names);
	p->names[p->ncols] = bt_xstrdup(name);
	return p->ncols++;
}

void bt_plot_add_peer(struct bt_plot *p, const char *name, uint64_t bytes)
{
	if (!p->open)
		return;
	size_t c = column_of(p, name);
	if (c >= p->cur.ncols) {
		p->cur.bytes = bt_xreallocarray(p->cur.bytes, c + 1, sizeof(uint64_t));
		memset(p->cur.bytes + p->cur.ncols, 0, (c + 1 - p->cur.ncols) * sizeof(uint64_t));
		p->cur.ncols = c + 1;
	}
	if (c >= p->touched_cap) {
		size_t cap = 2 * (c + 1);
		p->touched = bt_xreallocarray(p->touched, cap, sizeof *p->touched);
		memset(p->touched + p->touched_cap, 0, (cap - p->touched_cap) * sizeof *p->touched);
		p->touched_cap = cap;
	}
	/* The first mention replaces the carried value; more mentions (other torrents) add. */
	if (!p->touched[c]) {
		p->touched[c] = true;
		p->cur.bytes[c] = 0;
	}
	p->cur.bytes[c] += bytes;
}

/* Keeps every other sample (the first and the newest always): half the resolution, all bytes. */
static void thin_out(struct bt_plot *p)
{
	size_t keep = 0;
	for (size_t i = 0; i < p->nsamples; i++) {
		if (i % 2 == 0 || i + 1 == p->nsamples)
			p->samples[keep++] = p->samples[i];
		else
			free(p->samples[i].bytes);
	}
	p->nsamples = keep;
}

void bt_plot_end(struct bt_plot *p, uint64_t received)
{
	if (!p->open)
		return;
	p->open = false;
	const struct bt_plot_sample *prev = last_sample(p);
	struct bt_plot_sample s = p->cur;
	p->cur = (struct bt_plot_sample){0};
	s.received = received;
	if (prev) {
		/* Counts only grow: a peer forgotten and found again starts from zero in the
		 * engine. */
		for (size_t c = 0; c < prev->ncols; c++)
			if (s.bytes[c] < prev->bytes[c])
				s.bytes[c] = prev->bytes[c];
		if (s.received < prev->received)
			s.received = prev->received;
		double dt = s.t - prev->t;
		s.rate = dt > 0 ? (double)(s.received - prev->received) / dt : 0;
	}
	if (p->nsamples == BT_PLOT_MAX_SAMPLES)
		thin_out(p);
	p->samples = bt_xreallocarray(p->samples, p->nsamples + 1, sizeof *p->samples);
	p->samples[p->nsamples++] = s;
}

void bt_plot_json_line(struct bt_buf *out, const struct bt_plot *p)
{
	const struct bt_plot_sample *s = last_sample(p);
	if (!s)
		return;
	bt_buf_printf(out, "{\"t\":%.2f,\"rate\":%.0f,\"received\":%llu,\"peers\":{", s->t, s->rate,
		      (unsigned long long)s->received);
	for (size_t c = 0; c < s->ncols; c++) {
		if (c)
			bt_buf_addc(out, ',');
		bt_json_put_str(out, p->names[c]);
		bt_buf_printf(out, ":%llu", (unsigned long long)s->bytes[c]);
	}
	bt_buf_adds(out, "}}\n");
}

/* The picture's geometry, in SVG user units (pixels when opened as a file). */
enum {
	WIDTH = 960,
	LEFT = 84,
	RIGHT = 24,
	TOP = 64,
	CHART_H = 300,
	ROW_H = 20,
	BAR_X = 260,
};

/*
 * Text inside the document. Names are addresses and the title a torrent's name, which may be
 * any bytes: everything outside printable ASCII becomes '?', so the document stays well-formed
 * XML whatever the input.
 */
static void put_xml_text(struct bt_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '&')
			bt_buf_adds(b, "&amp;");
		else if (c == '<')
			bt_buf_adds(b, "&lt;");
		else if (c == '>')
			bt_buf_adds(b, "&gt;");
		else if (c == '"')
			bt_buf_adds(b, "&quot;");
		else if (c < 0x20 || c >= 0x7f)
			bt_buf_addc(b, '?');
		else
			bt_buf_addc(b, (char)c);
	}
}

/* A step of 1, 2 or 5 times a power of ten that cuts range into about n parts. */
static double nice_step(double range, int n)
{
	double raw = range / n;
	if (!(raw > 0))
		return 1;
	double mag = pow(10, floor(log10(raw)));
	double norm = raw / mag;
	return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

/* Distinct colours for any number of series: hues a golden angle apart. */
static void color_of(size_t i, char out[8])
{
	double h = fmod((double)i * 137.508, 360.0) / 60.0, s = 0.62, l = 0.52;
	double c = (1 - fabs(2 * l - 1)) * s, x = c * (1 - fabs(fmod(h, 2) - 1)), m = l - c / 2;
	double r = 0, g = 0, bl = 0;
	if (h < 1)
		r = c, g = x;
	else if (h < 2)
		r = x, g = c;
	else if (h < 3)
		g = c, bl = x;
	else if (h < 4)
		g = x, bl = c;
	else if (h < 5)
		r = x, bl = c;
	else
		r = c, bl = x;
	snprintf(out, 8, "#%02x%02x%02x", (unsigned)lround((r + m) * 255),
		 (unsigned)lround((g + m) * 255), (unsigned)lround((bl + m) * 255));
}

static uint64_t bytes_at(const struct bt_plot_sample *s, size_t c)
{
	return c < s->ncols ? s->bytes[c] : 0;
}

static double peer_rate(const struct bt_plot *p, size_t i, size_t c)
{
	if (i == 0)
		return 0;
	const struct bt_plot_sample *a = &p->samples[i - 1], *b = &p->samples[i];
	double dt = b->t - a->t;
	return dt > 0 ? (double)(bytes_at(b, c) - bytes_at(a, c)) / dt : 0;
}

struct scale {
	double tmax, ymax; /* data ranges: seconds, bytes/s */
	double unit;	   /* bytes/s of one axis unit */
	const char *unit_name;
};

static double px_x(const struct scale *sc, double t)
{
	return LEFT + (WIDTH - LEFT - RIGHT) * (sc->tmax > 0 ? t / sc->tmax : 0);
}

static double px_y(const struct scale *sc, double rate)
{
	return TOP + CHART_H - CHART_H * (sc->ymax > 0 ? rate / sc->ymax : 0);
}

static void axes(struct bt_buf *b, struct scale *sc)
{
	static const char *const units[] = {"B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"};
	size_t u = 0;
	sc->unit = 1;
	while (sc->ymax / sc->unit >= 1024 && u + 1 < sizeof units / sizeof units[0])
		sc->unit *= 1024, u++;
	sc->unit_name = units[u];
	double ystep = nice_step(sc->ymax / sc->unit, 5);
	sc->ymax = ceil(sc->ymax / sc->unit / ystep) * ystep * sc->unit;
	double tstep = nice_step(sc->tmax, 8);
	sc->tmax = ceil(sc->tmax / tstep) * tstep;
	bt_buf_adds(b, "<g class=\"axes\" font-size=\"12\" fill=\"#444\">\n");
	for (double v = 0; v <= sc->ymax / sc->unit + ystep / 2; v += ystep) {
		double y = px_y(sc, v * sc->unit);
		bt_buf_printf(b,
			      "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
			      "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g %s</text>\n",
			      LEFT, y, WIDTH - RIGHT, y, LEFT - 6, y + 4, v, sc->unit_name);
	}
	for (double t = 0; t <= sc->tmax + tstep / 2; t += tstep) {
		double x = px_x(sc, t);
		bt_buf_printf(b,
			      "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>"
			      "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g s</text>\n",
			      x, TOP, x, TOP + CHART_H, x, TOP + CHART_H + 18, t);
	}
	bt_buf_printf(b,
		      "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
		      "stroke=\"#888\"/>\n"
		      "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">time since start</text>\n"
		      "</g>\n",
		      LEFT, TOP, WIDTH - LEFT - RIGHT, CHART_H, (LEFT + WIDTH - RIGHT) / 2,
		      TOP + CHART_H + 36);
}

/* Columns that sent bytes, largest first: the stacking order, the legend and the bars. */
static size_t rank_peers(const struct bt_plot *p, size_t *order)
{
	const struct bt_plot_sample *s = last_sample(p);
	size_t n = 0;
	for (size_t c = 0; s && c < s->ncols; c++)
		if (s->bytes[c] > 0)
			order[n++] = c;
	for (size_t i = 1; i < n; i++) /* insertion sort: tens of peers */
		for (size_t j = i; j > 0 && bytes_at(s, order[j]) > bytes_at(s, order[j - 1]);
		     j--) {
			size_t tmp = order[j];
			order[j] = order[j - 1];
			order[j - 1] = tmp;
		}
	return n;
}

static void areas(struct bt_buf *b, const struct bt_plot *p, const size_t *order, size_t n,
		  struct scale *sc)
{
	size_t ns = p->nsamples;
	double *acc = bt_xcalloc(ns, sizeof *acc);
	sc->tmax = p->samples[ns - 1].t;
	sc->ymax = 0;
	for (size_t i = 0; i < ns; i++) {
		double sum = 0;
		for (size_t k = 0; k < n; k++)
			sum += peer_rate(p, i, order[k]);
		sc->ymax = fmax(sc->ymax, fmax(sum, p->samples[i].rate));
	}
	if (sc->ymax <= 0)
		sc->ymax = 1024;
	axes(b, sc);
	bt_buf_adds(b, "<g class=\"areas\">\n");
	for (size_t k = 0; k < n; k++) {
		char color[8];
		color_of(k, color);
		bt_buf_printf(b,
			      "<path class=\"peer\" fill=\"%s\" fill-opacity=\"0.85\" data-peer=\"",
			      color);
		put_xml_text(b, p->names[order[k]]);
		bt_buf_adds(b, "\" d=\"");
		for (size_t i = 0; i < ns; i++)
			bt_buf_printf(b, "%c%.1f,%.1f ", i ? 'L' : 'M', px_x(sc, p->samples[i].t),
				      px_y(sc, acc[i] + peer_rate(p, i, order[k])));
		for (size_t i = ns; i-- > 0;)
			bt_buf_printf(b, "L%.1f,%.1f ", px_x(sc, p->samples[i].t),
				      px_y(sc, acc[i]));
		bt_buf_adds(b, "Z\"><title>");
		put_xml_text(b, p->names[order[k]]);
		bt_buf_adds(b, "</title></path>\n");
		for (size_t i = 0; i < ns; i++)
			acc[i] += peer_rate(p, i, order[k]);
	}
	bt_buf_adds(b, "</g>\n<polyline class=\"total\" fill=\"none\" stroke=\"#111\" "
		       "stroke-width=\"1.5\" points=\"");
	for (size_t i = 0; i < ns; i++)
		bt_buf_printf(b, "%.1f,%.1f ", px_x(sc, p->samples[i].t),
			      px_y(sc, p->samples[i].rate));
	bt_buf_adds(b, "\"><title>total</title></polyline>\n");
	free(acc);
}

static void shares(struct bt_buf *b, const struct bt_plot *p, const size_t *order, size_t n, int y0)
{
	const struct bt_plot_sample *s = last_sample(p);
	uint64_t sum = 0;
	for (size_t k = 0; k < n; k++)
		sum += bytes_at(s, order[k]);
	bt_buf_printf(b,
		      "<text x=\"24\" y=\"%d\" font-size=\"14\" font-weight=\"bold\">"
		      "Share of the bytes received, per peer</text>\n<g font-size=\"12\">\n",
		      y0);
	double wmax = WIDTH - RIGHT - BAR_X - 150;
	for (size_t k = 0; k < n; k++) {
		uint64_t v = bytes_at(s, order[k]);
		double share = sum ? (double)v / (double)sum : 0;
		int y = y0 + 10 + (int)k * ROW_H;
		char color[8], size[32];
		color_of(k, color);
		bt_format_bytes(size, sizeof size, (double)v);
		bt_buf_printf(b, "<text x=\"24\" y=\"%d\">", y + 13);
		put_xml_text(b, p->names[order[k]]);
		bt_buf_printf(b, "</text><rect class=\"share\" data-peer=\"");
		put_xml_text(b, p->names[order[k]]);
		bt_buf_printf(b,
			      "\" x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>"
			      "<text x=\"%.1f\" y=\"%d\">%.1f%%  %s</text>\n",
			      BAR_X, y + 2, wmax * share, ROW_H - 4, color,
			      BAR_X + wmax * share + 6, y + 13, 100 * share, size);
	}
	bt_buf_adds(b, "</g>\n");
}

void bt_plot_svg(struct bt_buf *out, const struct bt_plot *p, const char *title)
{
	size_t *order = bt_xcalloc(p->ncols ? p->ncols : 1, sizeof *order);
	size_t n = rank_peers(p, order);
	int shares_y = TOP + CHART_H + 72;
	int height = shares_y + 20 + (int)(n ? n : 1) * ROW_H + 16;
	const struct bt_plot_sample *s = last_sample(p);
	bt_buf_printf(out,
		      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		      "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
		      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
		      "<text x=\"24\" y=\"26\" font-size=\"16\" font-weight=\"bold\">",
		      WIDTH, height, WIDTH, height);
	put_xml_text(out, title ? title : "torrent");
	char got[32], avg[32];
	bt_format_bytes(got, sizeof got, s ? (double)s->received : 0);
	bt_format_rate(avg, sizeof avg, s && s->t > 0 ? (double)s->received / s->t : 0);
	bt_buf_printf(out,
		      "</text>\n<text x=\"24\" y=\"46\" font-size=\"12\" fill=\"#444\">"
		      "throughput over time, stacked by peer; the black line is the total. "
		      "%s received in %.1f s (%s average) from %zu peer%s</text>\n",
		      got, s ? s->t : 0.0, avg, n, n == 1 ? "" : "s");
	if (p->nsamples >= 2 && s->t > 0) {
		struct scale sc;
		areas(out, p, order, n, &sc);
	} else {
		bt_buf_printf(out,
			      "<text x=\"%d\" y=\"%d\" font-size=\"14\" fill=\"#888\">"
			      "no samples yet: the run ended within its first second</text>\n",
			      LEFT, TOP + CHART_H / 2);
	}
	shares(out, p, order, n, shares_y);
	bt_buf_adds(out, "</svg>\n");
	free(order);
}
