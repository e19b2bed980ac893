#include "bt/http.h"

#include "bt/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef BT_VERSION
#define BT_VERSION "unknown"
#endif

struct bt_http {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct bt_http_req *reqs; /* in flight, doubly linked */
	size_t active;
};

struct bt_http_req {
	struct bt_http *http;
	CURL *easy;
	struct bt_http_req *prev, *next;
	struct bt_buf body;
	size_t max_body;
	bool too_large;
	long timeout_ms;
	bt_http_sink_fn sink;
	void *sink_arg;
	int sink_rc;	     /* what the sink last returned, if it stopped the transfer */
	int64_t range_start; /* from the last response's Content-Range, or -1 */
	long retry_after_s;  /* from the last response's Retry-After, or -1 */
	struct curl_slist *hdrs;
	bt_http_done_fn done;
	void *arg;
	char errbuf[CURL_ERROR_SIZE];
};

/* One per socket curl asks us to watch; freed when curl says CURL_POLL_REMOVE. */
struct sock_watch {
	struct bt_http *http;
	struct event *ev;
};

static void drain(struct bt_http *h);

static void on_socket_ready(evutil_socket_t fd, short what, void *arg)
{
	struct sock_watch *w = arg;
	struct bt_http *h = w->http;
	int flags =
		(what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running;
	curl_multi_socket_action(h->multi, fd, flags, &running);
	drain(h);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bt_http *h = arg;
	int running;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	drain(h);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	(void)easy;
	struct bt_http *h = userp;
	struct sock_watch *w = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (w) {
			event_free(w->ev);
			free(w);
			curl_multi_assign(h->multi, s, NULL);
		}
		return 0;
	}
	if (!w) {
		w = bt_xcalloc(1, sizeof *w);
		w->http = h;
		curl_multi_assign(h->multi, s, w);
	} else {
		event_free(w->ev);
	}
	short kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
		     (what & CURL_POLL_OUT ? EV_WRITE : 0);
	w->ev = event_new(h->base, s, kind, on_socket_ready, w);
	if (!w->ev)
		bt_oom();
	event_add(w->ev, NULL);
	return 0;
}

/* Only arms or clears the one timer: calling curl from here is not allowed. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct bt_http *h = userp;
	if (timeout_ms < 0) {
		evtimer_del(h->timer);
	} else {
		struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
		evtimer_add(h->timer, &tv);
	}
	return 0;
}

static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct bt_http_req *r = arg;
	size_t len = size * n;
	if (r->sink) {
		long status = 0;
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
		int rc = r->sink(r->sink_arg, status, r->range_start, (const uint8_t *)p, len);
		if (rc == 0)
			return len;
		r->sink_rc = rc;
		return 0; /* CURLE_WRITE_ERROR; finish reads sink_rc */
	}
	if (len > r->max_body - r->body.len) {
		r->too_large = true;
		return 0; /* makes curl stop with CURLE_WRITE_ERROR */
	}
	bt_buf_add(&r->body, p, len);
	return len;
}

/*
 * Headers of every response, redirects included: each status line starts a new response, so
 * what we keep is the last one's.
 */
static size_t header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct bt_http_req *r = arg;
	size_t len = size * n;
	char line[256];
	size_t k = len < sizeof line - 1 ? len : sizeof line - 1;
	memcpy(line, p, k);
	line[k] = 0;
	if (strncasecmp(line, "HTTP/", 5) == 0) {
		r->range_start = -1;
		r->retry_after_s = -1;
	} else if (strncasecmp(line, "Retry-After:", 12) == 0) {
		char *end;
		long v = strtol(line + 12, &end, 10);
		/* An HTTP-date instead of seconds: a minute is a fair guess. */
		r->retry_after_s = end != line + 12 && v >= 0 ? v : 60;
	} else if (strncasecmp(line, "Content-Range:", 14) == 0) {
		const char *q = line + 14;
		while (*q == ' ')
			q++;
		long long first;
		if (strncasecmp(q, "bytes ", 6) == 0 && sscanf(q + 6, "%lld-", &first) == 1 &&
		    first >= 0)
			r->range_start = first;
	}
	return len;
}

static void unlink_req(struct bt_http_req *r)
{
	struct bt_http *h = r->http;
	if (r->prev)
		r->prev->next = r->next;
	else
		h->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	h->active--;
	curl_multi_remove_handle(h->multi, r->easy);
	curl_easy_cleanup(r->easy);
}

static void free_req(struct bt_http_req *r)
{
	curl_slist_free_all(r->hdrs);
	bt_buf_deinit(&r->body);
	free(r);
}

static int error_code(CURLcode c)
{
	switch (c) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EPROTONOSUPPORT;
	case CURLE_TOO_MANY_REDIRECTS:
		return -ELOOP;
	default:
		return -EIO;
	}
}

static void finish(struct bt_http_req *r, CURLcode code)
{
	struct bt_http_response res = {0};
	char msg[CURL_ERROR_SIZE + 64];
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
	res.retry_after_s = r->retry_after_s;
	if (r->sink_rc == BT_HTTP_SINK_ENOUGH)
		code = CURLE_OK; /* the sink ended it, having what it wanted */
	if (r->sink_rc < 0) {
		res.error = r->sink_rc;
		snprintf(msg, sizeof msg, "the data was refused (%s)", strerror(-r->sink_rc));
	} else if (r->too_large) {
		res.error = -EFBIG;
		snprintf(msg, sizeof msg, "reply larger than %zu bytes", r->max_body);
	} else if (code == CURLE_OPERATION_TIMEDOUT) {
		res.error = -ETIMEDOUT;
		snprintf(msg, sizeof msg, "timed out after %ld ms", r->timeout_ms);
	} else if (code != CURLE_OK) {
		res.error = error_code(code);
		snprintf(msg, sizeof msg, "%s",
			 r->errbuf[0] ? r->errbuf : curl_easy_strerror(code));
	} else if (!res.error && (res.status < 200 || res.status > 299)) {
		res.error = -EPROTO;
		snprintf(msg, sizeof msg, "HTTP status %ld", res.status);
	}
	res.message = res.error ? msg : NULL;
	/* Copied: curl's string goes with the handle, which is cleaned up before the callback. */
	char local_ip[64] = "";
	char *ip = NULL;
	if (curl_easy_getinfo(r->easy, CURLINFO_LOCAL_IP, &ip) == CURLE_OK && ip)
		snprintf(local_ip, sizeof local_ip, "%s", ip);
	res.local_ip = local_ip;
	res.body = r->body.data ? r->body.data : (const uint8_t *)"";
	res.len = r->body.len;
	unlink_req(r);
	r->done(&res, r->arg);
	free_req(r);
}

static void drain(struct bt_http *h)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct bt_http_req *r;
		CURLcode code = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		finish(r, code);
	}
}

struct bt_http *bt_http_new(struct event_base *base)
{
	static bool curl_ready;
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return NULL;
		curl_ready = true;
	}
	struct bt_http *h = bt_xcalloc(1, sizeof *h);
	h->base = base;
	h->multi = curl_multi_init();
	h->timer = evtimer_new(base, on_timer, h);
	if (!h->multi || !h->timer)
		bt_oom();
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return h;
}

void bt_http_free(struct bt_http *h)
{
	if (!h)
		return;
	while (h->reqs)
		bt_http_cancel(h->reqs);
	curl_multi_cleanup(h->multi);
	event_free(h->timer);
	free(h);
}

static bool scheme_allowed(const char *url)
{
	return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

struct bt_http_req *bt_http_get(struct bt_http *h, const char *url, const struct bt_http_opts *opts,
				bt_http_done_fn done, void *arg)
{
	if (!scheme_allowed(url))
		return NULL;
	struct bt_http_req *r = bt_xcalloc(1, sizeof *r);
	r->http = h;
	r->done = done;
	r->arg = arg;
	r->max_body = opts && opts->max_body ? opts->max_body : (size_t)1 << 20;
	r->timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : 30000;
	long connect_ms = opts && opts->connect_timeout_ms ? opts->connect_timeout_ms : 10000;
	r->sink = opts ? opts->sink : NULL;
	r->sink_arg = opts ? opts->sink_arg : NULL;
	r->range_start = -1;
	r->retry_after_s = -1;
	bt_buf_init(&r->body);
	r->easy = curl_easy_init();
	if (!r->easy)
		bt_oom();
	CURL *e = r->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	if (opts && opts->range_len > 0) {
		char range[64];
		snprintf(range, sizeof range, "%lld-%lld", (long long)opts->range_first,
			 (long long)(opts->range_first + opts->range_len - 1));
		curl_easy_setopt(e, CURLOPT_RANGE, range);
	}
	/* A sink takes the bytes as stored: no decoding, so offsets are the file's. */
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	if (!r->sink)
		curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip, deflate");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "torrent-client/" BT_VERSION);
	if (opts && opts->recv_buffer)
		curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)opts->recv_buffer);
	if (opts && opts->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, opts->ca_file);
	if (opts && opts->source_ip) {
		char iface[80];
		snprintf(iface, sizeof iface, "host!%s", opts->source_ip);
		curl_easy_setopt(e, CURLOPT_INTERFACE, iface);
	}
	r->next = h->reqs;
	if (h->reqs)
		h->reqs->prev = r;
	h->reqs = r;
	h->active++;
	/* curl calls timer_cb at once with 0 ms: the transfer starts from the loop, not from here.
	 */
	curl_multi_add_handle(h->multi, e);
	return r;
}

void bt_http_cancel(struct bt_http_req *r)
{
	if (!r)
		return;
	unlink_req(r);
	free_req(r);
}

size_t bt_http_active(const struct bt_http *h)
{
	return h->active;
}
