/*
 * The http module against an in-process libevent HTTP server on 127.0.0.1, both on one loop:
 * concurrent requests, size caps (plain and gzip-encoded), redirects (allowed and to a forbidden
 * scheme), HTTP errors, timeouts, and cancellation of a request in flight.
 */
#include "bt/http.h"

#include "bt/util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
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

#include <openssl/ssl.h>

#include <cmocka.h>

struct fixture {
	struct event_base *base;
	struct evhttp *server;
	struct bt_http *http;
	char url[64];
	struct bt_buf bomb;
	struct bt_buf small_gz;
};

struct result {
	int calls;
	int error;
	long status;
	char body[64];
	size_t len;
	char message[256];
	char local_ip[64];
};

static void load(struct bt_buf *b, const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", TEST_DATA_DIR, name);
	uint8_t *p;
	size_t n;
	struct bt_err err;
	if (bt_read_file(path, (size_t)1 << 20, &p, &n, &err))
		fail_msg("%s", err.msg);
	bt_buf_init(b);
	bt_buf_add(b, p, n);
	free(p);
}

static void reply(struct evhttp_request *req, int code, const char *body, size_t n)
{
	struct evbuffer *out = evbuffer_new();
	evbuffer_add(out, body, n);
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Other", out);
	evbuffer_free(out);
}

static void handle(struct evhttp_request *req, void *arg)
{
	struct fixture *f = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	if (strcmp(uri, "/ok") == 0) {
		reply(req, 200, "hello", 5);
	} else if (strcmp(uri, "/big") == 0) {
		char *big = calloc(1, 2 << 20);
		reply(req, 200, big, 2 << 20);
		free(big);
	} else if (strcmp(uri, "/bomb") == 0) {
		evhttp_add_header(headers, "Content-Encoding", "gzip");
		reply(req, 200, (const char *)f->bomb.data, f->bomb.len);
	} else if (strcmp(uri, "/gzip") == 0) {
		evhttp_add_header(headers, "Content-Encoding", "gzip");
		reply(req, 200, (const char *)f->small_gz.data, f->small_gz.len);
	} else if (strcmp(uri, "/redirect") == 0) {
		evhttp_add_header(headers, "Location", "/ok");
		reply(req, 302, "", 0);
	} else if (strcmp(uri, "/loop") == 0) {
		evhttp_add_header(headers, "Location", "/loop");
		reply(req, 302, "", 0);
	} else if (strcmp(uri, "/to-file") == 0) {
		evhttp_add_header(headers, "Location", "file:///etc/passwd");
		reply(req, 302, "", 0);
	} else if (strcmp(uri, "/silent") == 0) {
		/* Never answered: the client's timeout or cancel must end it. */
	} else {
		reply(req, 404, "missing", 7);
	}
}

static int setup(void **state)
{
	struct fixture *f = bt_xcalloc(1, sizeof *f);
	f->base = event_base_new();
	f->server = evhttp_new(f->base);
	struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(f->server, "127.0.0.1", 0);
	assert_non_null(s);
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sin, &len);
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u", ntohs(sin.sin_port));
	load(&f->bomb, "bomb.gz");
	load(&f->small_gz, "small.gz");
	evhttp_set_gencb(f->server, handle, f);
	f->http = bt_http_new(f->base);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	bt_http_free(f->http);
	evhttp_free(f->server);
	event_base_free(f->base);
	bt_buf_deinit(&f->bomb);
	bt_buf_deinit(&f->small_gz);
	free(f);
	return 0;
}

static void on_done(const struct bt_http_response *res, void *arg)
{
	struct result *r = arg;
	r->calls++;
	r->error = res->error;
	r->status = res->status;
	r->len = res->len;
	snprintf(r->body, sizeof r->body, "%.*s", (int)(res->len < 63 ? res->len : 63),
		 (const char *)res->body);
	snprintf(r->message, sizeof r->message, "%s", res->message ? res->message : "");
	snprintf(r->local_ip, sizeof r->local_ip, "%s", res->local_ip);
}

static void on_safety(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Runs the loop until no transfer is left (or 10 s pass, which fails the test). */
static void run(struct fixture *f)
{
	struct event *safety = evtimer_new(f->base, on_safety, f->base);
	struct timeval tv = {10, 0};
	evtimer_add(safety, &tv);
	while (bt_http_active(f->http) > 0 && !event_base_got_break(f->base))
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_false(event_base_got_break(f->base));
	event_free(safety);
}

static struct bt_http_req *get(struct fixture *f, const char *path, const struct bt_http_opts *opts,
			       struct result *r)
{
	char url[128];
	snprintf(url, sizeof url, "%s%s", f->url, path);
	return bt_http_get(f->http, url, opts, on_done, r);
}

static void test_get_ok(void **state)
{
	struct fixture *f = *state;
	struct result r = {0};
	assert_non_null(get(f, "/ok", NULL, &r));
	assert_int_equal(r.calls, 0); /* never called from inside bt_http_get */
	run(f);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.error, 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "hello");
	assert_string_equal(r.local_ip, "127.0.0.1");

	/* From a chosen source address, the response says so. */
	struct result from = {0};
	struct bt_http_opts opts = {.source_ip = "127.0.0.2"};
	assert_non_null(get(f, "/ok", &opts, &from));
	run(f);
	assert_int_equal(from.status, 200);
	assert_string_equal(from.local_ip, "127.0.0.2");
}

static void test_many_concurrent(void **state)
{
	struct fixture *f = *state;
	enum { N = 64 };
	struct result r[N];
	memset(r, 0, sizeof r);
	for (int i = 0; i < N; i++)
		assert_non_null(get(f, i % 2 ? "/ok" : "/gzip", NULL, &r[i]));
	assert_int_equal(bt_http_active(f->http), N);
	run(f);
	for (int i = 0; i < N; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].error, 0);
		assert_string_equal(r[i].body, i % 2 ? "hello" : "d8:intervali60e5:peers0:e");
	}
}

static void test_size_caps(void **state)
{
	struct fixture *f = *state;
	struct bt_http_opts opts = {.max_body = 1 << 20};
	struct result big = {0}, bomb = {0};
	get(f, "/big", &opts, &big);
	get(f, "/bomb", &opts, &bomb);
	run(f);
	assert_int_equal(big.error, -EFBIG);
	assert_string_equal(big.message, "reply larger than 1048576 bytes");
	/* 16 KiB on the wire, 16 MiB decoded: stopped at the cap on decoded bytes. */
	assert_int_equal(bomb.error, -EFBIG);
	assert_true(bomb.len <= 1 << 20);
}

static void test_redirects(void **state)
{
	struct fixture *f = *state;
	struct result ok = {0}, loop = {0}, file = {0};
	get(f, "/redirect", NULL, &ok);
	get(f, "/loop", NULL, &loop);
	get(f, "/to-file", NULL, &file);
	run(f);
	assert_int_equal(ok.error, 0);
	assert_string_equal(ok.body, "hello");
	assert_int_equal(loop.error, -ELOOP);
	assert_int_not_equal(file.error, 0);
	assert_int_equal(file.error, -EPROTONOSUPPORT);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	struct result missing = {0}, refused = {0};
	get(f, "/nothing-here", NULL, &missing);
	/* Port 1 on loopback: nothing listens there. */
	bt_http_get(f->http, "http://127.0.0.1:1/announce", NULL, on_done, &refused);
	run(f);
	assert_int_equal(missing.error, -EPROTO);
	assert_int_equal(missing.status, 404);
	assert_string_equal(missing.message, "HTTP status 404");
	assert_string_equal(missing.body, "missing");
	assert_int_equal(refused.error, -ECONNREFUSED);
	assert_null(bt_http_get(f->http, "file:///etc/passwd", NULL, on_done, &refused));
	assert_null(bt_http_get(f->http, "udp://127.0.0.1:1", NULL, on_done, &refused));
	assert_int_equal(bt_http_active(f->http), 0);
}

static void test_timeout(void **state)
{
	struct fixture *f = *state;
	struct bt_http_opts opts = {.timeout_ms = 300};
	struct result r = {0};
	get(f, "/silent", &opts, &r);
	run(f);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.error, -ETIMEDOUT);
	assert_string_equal(r.message, "timed out after 300 ms");
}

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	return bufferevent_openssl_socket_new(base, -1, SSL_new(arg), BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

/* HTTPS through OpenSSL: a TLS server with a certificate for 127.0.0.1 that the test trusts. */
static void test_https(void **state)
{
	struct fixture *f = *state;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	assert_int_equal(
		SSL_CTX_use_certificate_file(ctx, TEST_DATA_DIR "/tls-cert.pem", SSL_FILETYPE_PEM),
		1);
	assert_int_equal(
		SSL_CTX_use_PrivateKey_file(ctx, TEST_DATA_DIR "/tls-key.pem", SSL_FILETYPE_PEM),
		1);
	struct evhttp *tls = evhttp_new(f->base);
	evhttp_set_bevcb(tls, tls_bev, ctx);
	evhttp_set_gencb(tls, handle, f);
	struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(tls, "127.0.0.1", 0);
	assert_non_null(s);
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sin, &len);
	char url[96];
	snprintf(url, sizeof url, "https://127.0.0.1:%u/ok", ntohs(sin.sin_port));

	struct bt_http_opts trust = {.ca_file = TEST_DATA_DIR "/tls-cert.pem"};
	struct result ok = {0}, untrusted = {0};
	bt_http_get(f->http, url, &trust, on_done, &ok);
	bt_http_get(f->http, url, NULL, on_done, &untrusted);
	run(f);
	assert_int_equal(ok.error, 0);
	assert_int_equal(ok.status, 200);
	assert_string_equal(ok.body, "hello");
	/* Without the test's certificate trusted, verification fails: no body is taken. */
	assert_int_not_equal(untrusted.error, 0);
	assert_int_equal(untrusted.len, 0);
	evhttp_free(tls);
	SSL_CTX_free(ctx);
}

static void on_cancel_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	bt_http_cancel(arg);
}

static void test_cancel_in_flight(void **state)
{
	struct fixture *f = *state;
	struct result silent = {0}, ok = {0};
	struct bt_http_req *req = get(f, "/silent", NULL, &silent);
	get(f, "/ok", NULL, &ok);
	struct event *t = evtimer_new(f->base, on_cancel_timer, req);
	struct timeval tv = {0, 200000};
	evtimer_add(t, &tv);
	run(f);
	event_free(t);
	assert_int_equal(silent.calls, 0);
	assert_int_equal(ok.calls, 1);
	/* A request cancelled before the loop ever ran. */
	bt_http_cancel(get(f, "/ok", NULL, &ok));
	assert_int_equal(bt_http_active(f->http), 0);
	run(f);
	assert_int_equal(ok.calls, 1);
	/* Freeing the module with a transfer in flight cancels it. */
	get(f, "/silent", NULL, &silent);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redirects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_https, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_in_flight, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
