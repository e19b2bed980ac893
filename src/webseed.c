#include "bt/webseed.h"

#include "bt/hash.h"
#include "bt/http.h"
#include "bt/log.h"
#include "bt/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A server that ignores Range is read from the start; past this much skipping we give up. */
#define MAX_SKIP	   ((int64_t)64 << 20)
#define REQUEST_TIMEOUT_MS 120000
/*
 * Bytes per read from the server's socket: curl's 16 KiB default costs a recv and a poll per
 * 16 KiB, a third of the system calls of a fast download (bench/webseed.sh).
 */
#define RECV_BUFFER (256 * 1024)

struct run {
	struct bt_webseed *ws;
	bool active;
	uint32_t first, count;
	uint32_t next_piece; /* the first piece not yet reported filled */
	int64_t pos, end;    /* torrent offsets: the next byte to fill, the run's end */
	int64_t seg_end;     /* where the current request's file ends (or the run, sooner) */
	int64_t file_offset; /* the current file's first byte in the torrent */
	int64_t skip;	     /* bytes of a 200's body before the ones we asked for */
	bool got_status;
	long status;
	struct bt_http_req *req;
};

struct bt_webseed {
	struct bt_http *http;
	char *url;
	const struct bt_metainfo *m;
	struct bt_webseed_server *server; /* NULL: alone on its server */
	struct bt_webseed_events ev;
	void *arg;
	struct run runs[BT_WEBSEED_MAX_CONNS];
	bool dropped;
	unsigned fails;
	double not_before;
};

struct bt_webseed *bt_webseed_new(struct bt_http *http, const char *url,
				  const struct bt_metainfo *m, struct bt_webseed_server *server,
				  const struct bt_webseed_events *ev, void *arg)
{
	struct bt_webseed *ws = bt_xcalloc(1, sizeof *ws);
	ws->http = http;
	ws->url = bt_xstrdup(url);
	ws->m = m;
	ws->server = server;
	ws->ev = *ev;
	ws->arg = arg;
	for (size_t i = 0; i < BT_WEBSEED_MAX_CONNS; i++)
		ws->runs[i].ws = ws;
	return ws;
}

void bt_webseed_free(struct bt_webseed *ws)
{
	if (!ws)
		return;
	for (size_t i = 0; i < BT_WEBSEED_MAX_CONNS; i++) {
		/* The server's other URLs may go on: give back its connections. */
		if (ws->runs[i].active && ws->server)
			ws->server->runs--;
		bt_http_cancel(ws->runs[i].req);
	}
	free(ws->url);
	free(ws);
}

const char *bt_webseed_url(const struct bt_webseed *ws)
{
	return ws->url;
}

bool bt_webseed_dropped(const struct bt_webseed *ws)
{
	return ws->dropped;
}

size_t bt_webseed_runs(const struct bt_webseed *ws)
{
	size_t n = 0;
	for (size_t i = 0; i < BT_WEBSEED_MAX_CONNS; i++)
		n += ws->runs[i].active;
	return n;
}

bool bt_webseed_ready(const struct bt_webseed *ws, double now)
{
	if (ws->dropped || now < ws->not_before || bt_webseed_runs(ws) >= BT_WEBSEED_MAX_CONNS)
		return false;
	return !ws->server || ws->server->runs < BT_WEBSEED_MAX_PER_SERVER;
}

static bool default_port(const char *scheme, size_t n, unsigned *port_out)
{
	if (n == 4 && strncasecmp(scheme, "http", 4) == 0)
		*port_out = 80;
	else if (n == 5 && strncasecmp(scheme, "https", 5) == 0)
		*port_out = 443;
	else
		return false;
	return true;
}

char *bt_webseed_server_key(const char *url)
{
	const char *sep = strstr(url, "://");
	unsigned port;
	char host[256], port_s[8];
	if (!sep || !default_port(url, (size_t)(sep - url), &port) ||
	    bt_url_host_port(url, host, sizeof host, port_s, sizeof port_s))
		return NULL;
	if (port_s[0])
		port = (unsigned)strtoul(port_s, NULL, 10);
	struct bt_buf b;
	bt_buf_init(&b);
	for (const char *p = url; p < sep; p++)
		bt_buf_addc(&b, (char)tolower((unsigned char)*p));
	bt_buf_adds(&b, "://");
	bool v6 = strchr(host, ':') != NULL;
	if (v6)
		bt_buf_addc(&b, '[');
	for (const char *p = host; *p; p++)
		bt_buf_addc(&b, (char)tolower((unsigned char)*p));
	bt_buf_printf(&b, "%s:%u", v6 ? "]" : "", port);
	bt_buf_addc(&b, 0);
	return (char *)b.data;
}

double bt_webseed_backoff(unsigned fails, double jitter)
{
	double d = 1;
	for (unsigned i = 1; i < fails && d < BT_WEBSEED_MAX_BACKOFF_S; i++)
		d *= 2;
	if (d > BT_WEBSEED_MAX_BACKOFF_S)
		d = BT_WEBSEED_MAX_BACKOFF_S;
	/* Jitter so that many clients failed by the same outage do not return together. */
	return d * (0.75 + 0.5 * jitter);
}

static void escape_into(struct bt_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			bt_buf_addc(b, (char)c);
		} else {
			bt_buf_addc(b, '%');
			bt_buf_addc(b, hex[c >> 4]);
			bt_buf_addc(b, hex[c & 15]);
		}
	}
}

char *bt_webseed_file_url(const char *base, const struct bt_metainfo *m, size_t file)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_adds(&b, base);
	size_t blen = strlen(base);
	bool slash = blen > 0 && base[blen - 1] == '/';
	/* The server has the names as the torrent spells them, not as we sanitised them. */
	const char *name = m->orig_name ? m->orig_name : m->name;
	if (!m->multi_file) {
		if (slash)
			escape_into(&b, name, strlen(name));
	} else {
		if (!slash)
			bt_buf_addc(&b, '/');
		escape_into(&b, name, strlen(name));
		const struct bt_meta_file *f = &m->files[file];
		const char *p = f->orig_path ? f->orig_path : f->path;
		while (*p) {
			const char *e = strchr(p, '/');
			size_t n = e ? (size_t)(e - p) : strlen(p);
			bt_buf_addc(&b, '/');
			escape_into(&b, p, n);
			p += n + (e ? 1 : 0);
		}
	}
	bt_buf_addc(&b, 0);
	return (char *)b.data;
}

static int64_t piece_offset(const struct bt_metainfo *m, uint32_t piece)
{
	return (int64_t)piece * m->piece_length;
}

/* The file holding torrent offset pos (skipping empty files). */
static size_t file_at(const struct bt_metainfo *m, int64_t pos)
{
	size_t lo = 0, hi = m->file_count;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (m->files[mid].offset <= pos)
			lo = mid;
		else
			hi = mid;
	}
	while (lo + 1 < m->file_count && m->files[lo].offset + m->files[lo].length <= pos)
		lo++;
	return lo;
}

/* Reports the pieces the fill position has passed. */
static void report_filled(struct run *r)
{
	struct bt_webseed *ws = r->ws;
	while (r->next_piece < r->first + r->count) {
		int64_t piece_end = piece_offset(ws->m, r->next_piece) + ws->m->piece_length;
		if (piece_end > ws->m->total_length)
			piece_end = ws->m->total_length;
		if (r->pos < piece_end)
			break;
		ws->ev.piece_filled(ws->arg, ws, r->next_piece++);
	}
}

/* Copies bytes at the fill position into the pieces' buffers (NULL: zeros). */
static void fill_bytes(struct run *r, const uint8_t *p, int64_t len)
{
	struct bt_webseed *ws = r->ws;
	while (len > 0) {
		uint32_t piece = (uint32_t)(r->pos / ws->m->piece_length);
		int64_t in = r->pos - piece_offset(ws->m, piece);
		int64_t n = ws->m->piece_length - in;
		if (n > len)
			n = len;
		uint8_t *dst = ws->ev.buffer(ws->arg, piece);
		if (dst) {
			if (p)
				memcpy(dst + in, p, (size_t)n);
			else
				memset(dst + in, 0, (size_t)n);
		}
		r->pos += n;
		len -= n;
		if (p)
			p += n;
		report_filled(r);
	}
}

static int sink(void *arg, long status, int64_t range_start, const uint8_t *p, size_t len)
{
	struct run *r = arg;
	struct bt_webseed *ws = r->ws;
	if (status < 200 || status > 299)
		return 0; /* an error page: done reports the status */
	if (ws->dropped)
		return -ECANCELED;
	ws->ev.bytes(ws->arg, ws, len);
	int64_t want = r->pos - r->file_offset;
	if (!r->got_status) {
		r->got_status = true;
		r->status = status;
		if (status == 206) {
			if (range_start != want)
				return -ERANGE;
			r->skip = 0;
		} else if (status == 200) {
			/* Not a range: the whole file, from its first byte. */
			if (want > MAX_SKIP)
				return -ERANGE;
			r->skip = want;
		} else {
			return -EPROTO;
		}
	}
	if (r->skip > 0) {
		size_t n = (int64_t)len < r->skip ? len : (size_t)r->skip;
		r->skip -= (int64_t)n;
		p += n;
		len -= n;
	}
	int64_t room = r->seg_end - r->pos;
	if ((int64_t)len > room) {
		if (r->status == 206)
			return -EPROTO; /* more than the range we asked for */
		len = (size_t)room;
	}
	fill_bytes(r, p, (int64_t)len);
	if (r->pos == r->seg_end && r->status == 200)
		return BT_HTTP_SINK_ENOUGH;
	return 0;
}

static void on_done(const struct bt_http_response *res, void *arg);

static void end_run(struct run *r, int error, const char *msg)
{
	struct bt_webseed *ws = r->ws;
	uint32_t left = r->first + r->count - r->next_piece;
	r->active = false;
	if (ws->server)
		ws->server->runs--;
	r->req = NULL;
	ws->ev.run_done(ws->arg, ws, r->next_piece, left, error, msg);
}

/* Starts the request for the next file of the run, zero-filling pad files on the way. */
static void next_request(struct run *r)
{
	struct bt_webseed *ws = r->ws;
	const struct bt_metainfo *m = ws->m;
	while (r->pos < r->end) {
		size_t f = file_at(m, r->pos);
		const struct bt_meta_file *file = &m->files[f];
		r->file_offset = file->offset;
		r->seg_end = file->offset + file->length;
		if (r->seg_end > r->end)
			r->seg_end = r->end;
		if (file->pad) {
			fill_bytes(r, NULL, r->seg_end - r->pos);
			continue;
		}
		char *url = bt_webseed_file_url(ws->url, m, f);
		struct bt_http_opts o = {
			.timeout_ms = REQUEST_TIMEOUT_MS,
			.range_first = r->pos - file->offset,
			.range_len = r->seg_end - r->pos,
			.sink = sink,
			.sink_arg = r,
			.recv_buffer = RECV_BUFFER,
		};
		r->got_status = false;
		r->skip = 0;
		r->req = bt_http_get(ws->http, url, &o, on_done, r);
		free(url);
		if (!r->req) {
			ws->dropped = true;
			end_run(r, -EPROTONOSUPPORT, "not an http(s) URL");
		}
		return;
	}
	ws->fails = 0;
	end_run(r, 0, NULL);
}

/* Whether an HTTP status means the URL will never serve us. */
static bool permanent(long status)
{
	return status >= 400 && status < 500 && status != 408 && status != 429;
}

static void on_done(const struct bt_http_response *res, void *arg)
{
	struct run *r = arg;
	struct bt_webseed *ws = r->ws;
	r->req = NULL;
	if (!res->error && r->pos == r->seg_end) {
		next_request(r);
		return;
	}
	char msg[320];
	int error = res->error ? res->error : -EIO;
	snprintf(msg, sizeof msg, "%s", res->error ? res->message : "the reply ended early");
	bool bad_status = res->status && (res->status < 200 || res->status > 299);
	if (!bad_status && error == -ERANGE)
		snprintf(msg, sizeof msg, "its reply did not start where we asked (Content-Range)");
	else if (!bad_status && error == -EPROTO)
		snprintf(msg, sizeof msg, "it sent more than the range we asked for");
	/*
	 * A status says whether to come back (503, 429, 5xx: later; 404: never); a 2xx whose
	 * data we refused (a range not where we asked) will not get better.
	 */
	bool drop = bad_status ? permanent(res->status)
			       : error == -ERANGE || error == -EPROTO || error == -ECANCELED;
	if (drop) {
		if (!ws->dropped)
			bt_log(BT_LOG_WARN, ws->url, "web seed dropped: %s", msg);
		ws->dropped = true;
	} else {
		double jitter;
		uint32_t rnd;
		bt_random_bytes(&rnd, sizeof rnd);
		jitter = rnd / 4294967296.0;
		ws->fails++;
		double wait = bt_webseed_backoff(ws->fails, jitter);
		if (res->retry_after_s >= 0)
			wait = res->retry_after_s > 3600 ? 3600 : (double)res->retry_after_s;
		double until = bt_now() + wait;
		if (until > ws->not_before)
			ws->not_before = until;
		bt_log(BT_LOG_INFO, ws->url, "web seed failed (%s); next try in %.0f s", msg, wait);
	}
	end_run(r, error, msg);
}

int bt_webseed_fetch(struct bt_webseed *ws, uint32_t first, uint32_t count, double now)
{
	if (!bt_webseed_ready(ws, now))
		return -EBUSY;
	if (count == 0 || first >= ws->m->piece_count || count > ws->m->piece_count - first)
		return -EINVAL;
	struct run *r = NULL;
	for (size_t i = 0; i < BT_WEBSEED_MAX_CONNS && !r; i++)
		if (!ws->runs[i].active)
			r = &ws->runs[i];
	r->active = true;
	if (ws->server)
		ws->server->runs++;
	r->first = r->next_piece = first;
	r->count = count;
	r->pos = piece_offset(ws->m, first);
	r->end = piece_offset(ws->m, first + count - 1) + ws->m->piece_length;
	if (r->end > ws->m->total_length)
		r->end = ws->m->total_length;
	next_request(r);
	return 0;
}

void bt_webseed_drop(struct bt_webseed *ws, const char *why)
{
	if (!ws->dropped && why)
		bt_log(BT_LOG_WARN, ws->url, "web seed dropped: %s", why);
	ws->dropped = true;
	for (size_t i = 0; i < BT_WEBSEED_MAX_CONNS; i++) {
		struct run *r = &ws->runs[i];
		if (!r->active)
			continue;
		bt_http_cancel(r->req);
		end_run(r, -ECANCELED, why ? why : "stopped");
	}
}
