/*
 * webseed: URLs of files, the backoff, and runs fetched from an in-process evhttp server on
 * loopback that honours Range (or, by mode, ignores it, or answers a range from the wrong
 * place, or 503): bytes land in the right piece buffers, pad files are zeros and never asked
 * for, a run crossing files is one request per file; the URLs of one server share its cap.
 */
#include "bt/webseed.h"

#include "bt/http.h"
#include "bt/util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

static void test_file_url_single(void **state)
{
	(void)state;
	struct bt_meta_file f = {.path = "a b.bin", .length = 10};
	struct bt_metainfo m = {.name = "a b.bin", .files = &f, .file_count = 1};
	char *u = bt_webseed_file_url("http://h/x/a%20b.bin", &m, 0);
	assert_string_equal(u, "http://h/x/a%20b.bin");
	free(u);
	u = bt_webseed_file_url("http://h/x/", &m, 0);
	assert_string_equal(u, "http://h/x/a%20b.bin");
	free(u);
}

static void test_file_url_multi(void **state)
{
	(void)state;
	struct bt_meta_file f[2] = {
		{.path = "d #1/\xc3\xa9 100%.bin", .length = 1},
		{.path = "safe_name", .orig_path = "orig/na~me.-x", .length = 1}};
	struct bt_metainfo m = {.name = "tree",
				.orig_name = "t r",
				.multi_file = true,
				.files = f,
				.file_count = 2};
	char *u = bt_webseed_file_url("http://h/ws", &m, 0);
	assert_string_equal(u, "http://h/ws/t%20r/d%20%231/%C3%A9%20100%25.bin");
	free(u);
	u = bt_webseed_file_url("http://h/ws/", &m, 1);
	assert_string_equal(u, "http://h/ws/t%20r/orig/na~me.-x");
	free(u);
}

static void test_backoff(void **state)
{
	(void)state;
	assert_true(bt_webseed_backoff(1, 0.5) == 1);
	assert_true(bt_webseed_backoff(4, 0.5) == 8);
	assert_true(bt_webseed_backoff(100, 0.5) == BT_WEBSEED_MAX_BACKOFF_S);
	assert_true(bt_webseed_backoff(3, 0) == 3); /* 4 s, less a quarter */
	assert_true(bt_webseed_backoff(3, 0.999) < 5 && bt_webseed_backoff(3, 0.999) > 4.9);
}

static void assert_key(const char *url, const char *want)
{
	char *k = bt_webseed_server_key(url);
	if (!want) {
		assert_null(k);
		return;
	}
	assert_non_null(k);
	assert_string_equal(k, want);
	free(k);
}

static void test_server_key(void **state)
{
	(void)state;
	assert_key("http://127.0.0.1:8080/a/", "http://127.0.0.1:8080");
	assert_key("http://127.0.0.1:8080/b/file.bin?x=1", "http://127.0.0.1:8080");
	assert_key("HTTP://Mirror.Example.ORG/pub#frag", "http://mirror.example.org:80");
	assert_key("https://u:p@w@h.example/x", "https://h.example:443");
	assert_key("http://h.example:/x", "http://h.example:80");
	assert_key("http://[::1]:6881/ws", "http://[::1]:6881");
	assert_key("https://[2001:DB8::1]", "https://[2001:db8::1]:443");
	assert_key("http://h?q", "http://h:80");
	/* Not a web seed we can reach, or not one server. */
	assert_key("ftp://h/x", NULL);
	assert_key("h/x", NULL);
	assert_key("http:///x", NULL);
	assert_key("http://h:0/", NULL);
	assert_key("http://h:65536/", NULL);
	assert_key("http://h:8x/", NULL);
	assert_key("http://[::1/", NULL);
	assert_key("http://[::1]x/", NULL);
	assert_key("http://[]/", NULL);
}

enum mode { HONOUR, IGNORE_RANGE, WRONG_START, BUSY };

#define PLEN	1000
#define NPIECES 5

struct fixture {
	struct event_base *base;
	struct evhttp *server;
	struct bt_http *http;
	int port;
	enum mode mode;
	/* files: a.bin 1500, pad 500 (zeros), b.bin 2000, c.bin 600: 4600 bytes, 5 pieces */
	struct bt_meta_file files[4];
	struct bt_metainfo m;
	uint8_t data[4600];
	uint8_t bufs[NPIECES][PLEN];
	bool filled[NPIECES];
	int requests;
	char paths[8][128];
	bool done;
	uint32_t left_first, left_count;
	int error;
	size_t bytes;
	struct bt_webseed_server srv;
};

static void handle(struct evhttp_request *req, void *arg)
{
	struct fixture *f = arg;
	const char *uri = evhttp_request_get_uri(req);
	if (f->requests < 8)
		snprintf(f->paths[f->requests], sizeof f->paths[0], "%s", uri);
	f->requests++;
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	if (f->mode == BUSY) {
		evhttp_add_header(out, "Retry-After", "7");
		evhttp_send_reply(req, 503, "Busy", NULL);
		return;
	}
	const struct bt_meta_file *file = NULL;
	for (size_t i = 0; i < 4; i++) {
		char want[128];
		snprintf(want, sizeof want, "/ws/t/%s", f->files[i].path);
		if (strcmp(uri, want) == 0)
			file = &f->files[i];
	}
	if (!file || file->pad) {
		evhttp_send_reply(req, 404, "Not Found", NULL);
		return;
	}
	const uint8_t *body = f->data + file->offset;
	long long a = 0, b = file->length - 1;
	const char *range = evhttp_find_header(evhttp_request_get_input_headers(req), "Range");
	struct evbuffer *buf = evbuffer_new();
	if (range && f->mode != IGNORE_RANGE && sscanf(range, "bytes=%lld-%lld", &a, &b) == 2) {
		char cr[64];
		long long from = f->mode == WRONG_START ? a + 1 : a;
		snprintf(cr, sizeof cr, "bytes %lld-%lld/%lld", from, b, (long long)file->length);
		evhttp_add_header(out, "Content-Range", cr);
		evbuffer_add(buf, body + from, (size_t)(b - from + 1));
		evhttp_send_reply(req, 206, "Partial Content", buf);
	} else {
		evbuffer_add(buf, body, (size_t)file->length);
		evhttp_send_reply(req, 200, "OK", buf);
	}
	evbuffer_free(buf);
}

static int setup(void **state)
{
	struct fixture *f = bt_xcalloc(1, sizeof *f);
	f->base = event_base_new();
	f->server = evhttp_new(f->base);
	struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(f->server, "127.0.0.1", 0);
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sin, &len);
	f->port = ntohs(sin.sin_port);
	evhttp_set_gencb(f->server, handle, f);
	f->http = bt_http_new(f->base);
	f->files[0] = (struct bt_meta_file){.path = "a.bin", .length = 1500, .offset = 0};
	f->files[1] = (struct bt_meta_file){
		.path = ".pad/500", .length = 500, .offset = 1500, .pad = true};
	f->files[2] = (struct bt_meta_file){.path = "b.bin", .length = 2000, .offset = 2000};
	f->files[3] = (struct bt_meta_file){.path = "c.bin", .length = 600, .offset = 4000};
	f->m = (struct bt_metainfo){.name = "t",
				    .multi_file = true,
				    .files = f->files,
				    .file_count = 4,
				    .piece_length = PLEN,
				    .piece_count = NPIECES,
				    .total_length = 4600};
	for (size_t i = 0; i < sizeof f->data; i++)
		f->data[i] = i >= 1500 && i < 2000 ? 0 : (uint8_t)(i * 7 + 3);
	memset(f->bufs, 0xAA, sizeof f->bufs);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	bt_http_free(f->http);
	evhttp_free(f->server);
	event_base_free(f->base);
	free(f);
	return 0;
}

static uint8_t *ev_buffer(void *arg, uint32_t piece)
{
	struct fixture *f = arg;
	return f->bufs[piece];
}

static void ev_filled(void *arg, struct bt_webseed *ws, uint32_t piece)
{
	(void)ws;
	struct fixture *f = arg;
	assert_false(f->filled[piece]);
	f->filled[piece] = true;
}

static void ev_bytes(void *arg, struct bt_webseed *ws, size_t n)
{
	(void)ws;
	struct fixture *f = arg;
	f->bytes += n;
}

static void ev_run_done(void *arg, struct bt_webseed *ws, uint32_t first, uint32_t count, int error,
			const char *msg)
{
	(void)ws;
	(void)msg;
	struct fixture *f = arg;
	f->done = true;
	f->left_first = first;
	f->left_count = count;
	f->error = error;
}

static const struct bt_webseed_events events = {ev_buffer, ev_filled, ev_bytes, ev_run_done};

static void on_safety(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Fetches pieces [first, first + count) and runs the loop until the run ends (5 s at most). */
static struct bt_webseed *fetch(struct fixture *f, uint32_t first, uint32_t count)
{
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/ws", f->port);
	struct bt_webseed *ws = bt_webseed_new(f->http, url, &f->m, &f->srv, &events, f);
	assert_int_equal(bt_webseed_fetch(ws, first, count, bt_now()), 0);
	struct event *safety = evtimer_new(f->base, on_safety, f->base);
	struct timeval tv = {5, 0};
	evtimer_add(safety, &tv);
	while (!f->done && evtimer_pending(safety, NULL))
		event_base_loop(f->base, EVLOOP_ONCE);
	event_free(safety);
	assert_true(f->done);
	return ws;
}

static void assert_pieces(struct fixture *f, uint32_t first, uint32_t count)
{
	for (uint32_t i = first; i < first + count; i++) {
		size_t n = i == NPIECES - 1 ? 4600 - (size_t)i * PLEN : PLEN;
		assert_true(f->filled[i]);
		assert_memory_equal(f->bufs[i], f->data + (size_t)i * PLEN, n);
	}
}

static void test_run_across_files_and_pad(void **state)
{
	struct fixture *f = *state;
	struct bt_webseed *ws = fetch(f, 0, NPIECES);
	assert_int_equal(f->error, 0);
	assert_int_equal(f->left_count, 0);
	assert_pieces(f, 0, NPIECES);
	/* a.bin, b.bin, c.bin: the pad file is never asked for. */
	assert_int_equal(f->requests, 3);
	assert_string_equal(f->paths[0], "/ws/t/a.bin");
	assert_string_equal(f->paths[1], "/ws/t/b.bin");
	assert_string_equal(f->paths[2], "/ws/t/c.bin");
	assert_int_equal(f->bytes, 4100);
	assert_false(bt_webseed_dropped(ws));
	assert_true(bt_webseed_ready(ws, bt_now()));
	bt_webseed_free(ws);
}

static void test_run_in_the_middle(void **state)
{
	struct fixture *f = *state;
	struct bt_webseed *ws = fetch(f, 2, 2); /* bytes 2000..3999: b.bin alone */
	assert_int_equal(f->error, 0);
	assert_pieces(f, 2, 2);
	assert_false(f->filled[0] || f->filled[1] || f->filled[4]);
	assert_int_equal(f->requests, 1);
	bt_webseed_free(ws);
}

static void test_server_ignoring_range(void **state)
{
	struct fixture *f = *state;
	f->mode = IGNORE_RANGE;
	struct bt_webseed *ws = fetch(f, 1, 4); /* starts 1000 bytes into a.bin */
	assert_int_equal(f->error, 0);
	assert_pieces(f, 1, 4);
	assert_false(f->filled[0]);
	bt_webseed_free(ws);
}

static void test_range_from_the_wrong_place_drops(void **state)
{
	struct fixture *f = *state;
	f->mode = WRONG_START;
	struct bt_webseed *ws = fetch(f, 0, 2);
	assert_int_equal(f->error, -ERANGE);
	assert_int_equal(f->left_first, 0);
	assert_int_equal(f->left_count, 2);
	assert_true(bt_webseed_dropped(ws));
	assert_false(bt_webseed_ready(ws, bt_now() + 1e6));
	assert_int_equal(bt_webseed_fetch(ws, 0, 1, bt_now()), -EBUSY);
	bt_webseed_free(ws);
}

static void test_busy_backs_off(void **state)
{
	struct fixture *f = *state;
	f->mode = BUSY;
	struct bt_webseed *ws = fetch(f, 0, 1);
	assert_int_equal(f->error, -EPROTO);
	assert_int_equal(f->left_count, 1);
	assert_false(bt_webseed_dropped(ws));
	/* Retry-After: 7 */
	assert_false(bt_webseed_ready(ws, bt_now() + 6));
	assert_true(bt_webseed_ready(ws, bt_now() + 7.5));
	bt_webseed_free(ws);
}

static void test_fetch_bounds(void **state)
{
	struct fixture *f = *state;
	struct bt_webseed *ws =
		bt_webseed_new(f->http, "http://127.0.0.1:1/", &f->m, NULL, &events, f);
	assert_int_equal(bt_webseed_fetch(ws, 0, 0, bt_now()), -EINVAL);
	assert_int_equal(bt_webseed_fetch(ws, 4, 2, bt_now()), -EINVAL);
	assert_int_equal(bt_webseed_fetch(ws, NPIECES, 1, bt_now()), -EINVAL);
	assert_int_equal(bt_webseed_runs(ws), 0);
	/* Two connections at most. */
	assert_int_equal(bt_webseed_fetch(ws, 0, 1, bt_now()), 0);
	assert_int_equal(bt_webseed_fetch(ws, 1, 1, bt_now()), 0);
	assert_int_equal(bt_webseed_fetch(ws, 2, 1, bt_now()), -EBUSY);
	assert_int_equal(bt_webseed_runs(ws), 2);
	bt_webseed_free(ws); /* cancels both; run_done not called */
	assert_false(f->done);
}

/* Two URLs of one server: two runs in flight over both, not two each. */
static void test_server_cap(void **state)
{
	struct fixture *f = *state;
	struct bt_webseed_server other = {0};
	struct bt_webseed *a =
		bt_webseed_new(f->http, "http://127.0.0.1:1/a/", &f->m, &f->srv, &events, f);
	struct bt_webseed *b =
		bt_webseed_new(f->http, "http://127.0.0.1:1/b/", &f->m, &f->srv, &events, f);
	struct bt_webseed *c =
		bt_webseed_new(f->http, "http://127.0.0.2:1/", &f->m, &other, &events, f);
	double now = bt_now();
	assert_int_equal(bt_webseed_fetch(a, 0, 1, now), 0);
	assert_true(bt_webseed_ready(b, now));
	assert_int_equal(bt_webseed_fetch(b, 1, 1, now), 0);
	assert_int_equal(f->srv.runs, 2);
	/* Each URL has a connection free, the server none. */
	assert_int_equal(bt_webseed_runs(a), 1);
	assert_false(bt_webseed_ready(a, now));
	assert_false(bt_webseed_ready(b, now));
	assert_int_equal(bt_webseed_fetch(a, 2, 1, now), -EBUSY);
	assert_int_equal(bt_webseed_fetch(b, 2, 1, now), -EBUSY);
	/* Another server is not held back. */
	assert_true(bt_webseed_ready(c, now));
	assert_int_equal(bt_webseed_fetch(c, 2, 1, now), 0);
	assert_int_equal(other.runs, 1);
	/* A run that ends (here, dropped) gives its connection back to the server. */
	bt_webseed_drop(a, NULL);
	assert_true(f->done);
	assert_int_equal(f->srv.runs, 1);
	assert_true(bt_webseed_ready(b, now));
	/* So does a web seed freed with a run in flight. */
	bt_webseed_free(b);
	assert_int_equal(f->srv.runs, 0);
	bt_webseed_free(a);
	bt_webseed_free(c);
	assert_int_equal(other.runs, 0);
}

/* A run that completes gives its connection back. */
static void test_server_count_after_run(void **state)
{
	struct fixture *f = *state;
	struct bt_webseed *ws = fetch(f, 0, NPIECES);
	assert_int_equal(f->error, 0);
	assert_int_equal(f->srv.runs, 0);
	bt_webseed_free(ws);
	assert_int_equal(f->srv.runs, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_url_single),
		cmocka_unit_test(test_file_url_multi),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_server_key),
		cmocka_unit_test_setup_teardown(test_run_across_files_and_pad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_in_the_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_ignoring_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_from_the_wrong_place_drops, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_busy_backs_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetch_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_count_after_run, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
