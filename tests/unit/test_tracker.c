/*
 * The tier policy as plain numbers, then bt_tracker against in-process evhttp trackers on
 * 127.0.0.1: a dead first tier, the started / regular / completed / stopped sequence, promotion
 * of the URL that answered, and backoff when every URL fails.
 */
#include "bt/tracker.h"

#include "bt/http.h"
#include "bt/udp.h"
#include "bt/udp_tracker.h"

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

static uint32_t counter_rand(void *arg)
{
	return (*(uint32_t *)arg)++;
}

static struct bt_meta_tier tier(char **urls, size_t n)
{
	return (struct bt_meta_tier){.urls = urls, .count = n};
}

static void test_tiers_policy(void **state)
{
	(void)state;
	char *t1[] = {"a1", "a2", "a3"}, *t2[] = {"b1"};
	struct bt_meta_tier tiers[] = {tier(t1, 3), tier(NULL, 0), tier(t2, 1)};
	uint32_t seed = 0;
	struct bt_tier_list l;
	bt_tiers_init(&l, tiers, 3, counter_rand, &seed);
	assert_int_equal(l.count, 2); /* the empty tier is dropped */
	/* Shuffled: every URL of tier 1 still there exactly once. */
	int seen[3] = {0};
	for (size_t i = 0; i < 3; i++)
		seen[l.tiers[0].urls[i][1] - '1']++;
	assert_true(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);

	const char *first = bt_tiers_current(&l);
	assert_false(bt_tiers_failed(&l));
	assert_false(bt_tiers_failed(&l));
	const char *third = bt_tiers_current(&l);
	assert_false(bt_tiers_failed(&l)); /* moves to tier 2 */
	assert_string_equal(bt_tiers_current(&l), "b1");
	assert_true(bt_tiers_failed(&l)); /* a whole round failed */
	assert_int_equal(l.failed_rounds, 1);
	assert_ptr_equal(bt_tiers_current(&l), first);

	/* The third URL of tier 1 answers: it moves to the front, order otherwise kept. */
	bt_tiers_failed(&l);
	bt_tiers_failed(&l);
	assert_ptr_equal(bt_tiers_current(&l), third);
	bt_tiers_succeeded(&l);
	assert_int_equal(l.failed_rounds, 0);
	assert_ptr_equal(l.tiers[0].urls[0], third);
	assert_ptr_equal(l.tiers[0].urls[1], first);
	assert_ptr_equal(bt_tiers_current(&l), third);
	bt_tiers_deinit(&l);

	struct bt_tier_list empty;
	bt_tiers_init(&empty, NULL, 0, counter_rand, &seed);
	assert_null(bt_tiers_current(&empty));
	assert_true(bt_tiers_failed(&empty));
	bt_tiers_deinit(&empty);
}

static void test_backoff_and_interval(void **state)
{
	(void)state;
	assert_true(bt_tracker_backoff(1, 0.5) == 15);
	assert_true(bt_tracker_backoff(2, 0.5) == 30);
	assert_true(bt_tracker_backoff(3, 0.0) == 45);
	assert_true(bt_tracker_backoff(20, 0.5) == 1800);
	assert_true(bt_tracker_backoff(20, 0.999) < 2250);
	assert_true(bt_tracker_interval(900, 60, 60) == 900);
	assert_true(bt_tracker_interval(10, 60, 30) == 60);
	assert_true(bt_tracker_interval(10, -1, 30) == 30);
	assert_true(bt_tracker_interval(-1, -1, 30) == 1800);
}

/* A fake HTTP tracker that records the events it was sent and answers with one peer. */
struct fake {
	struct evhttp *http;
	char url[96];
	char events[16][16];
	int count;
	int interval;
};

static void on_request(struct evhttp_request *req, void *arg)
{
	struct fake *f = arg;
	const char *uri = evhttp_request_get_uri(req);
	const char *e = strstr(uri, "event=");
	if (f->count < 16)
		snprintf(f->events[f->count++], 16, "%.*s", e ? (int)strcspn(e + 6, "&") : 4,
			 e ? e + 6 : "none");
	struct evbuffer *out = evbuffer_new();
	evbuffer_add_printf(out, "d8:intervali%de5:peers6:", f->interval);
	evbuffer_add(out, "\x7f\x00\x00\x05\x1a\xe1", 6);
	evbuffer_add(out, "e", 1);
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static void fake_start(struct fake *f, struct event_base *base)
{
	memset(f, 0, sizeof *f);
	f->http = evhttp_new(base);
	struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
	assert_non_null(s);
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sin, &len);
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u/announce", ntohs(sin.sin_port));
	f->interval = 1800;
	evhttp_set_gencb(f->http, on_request, f);
}

struct observed {
	struct event_base *base;
	int peers_calls;
	size_t last_peer_count;
	int errors;
	int stopped;
	int break_after_peers;
	struct bt_peer_addr self;
};

static void on_peers(void *arg, const struct bt_peer_addr *peers, size_t n,
		     const struct bt_peer_addr *self)
{
	struct observed *o = arg;
	(void)peers;
	o->self = *self;
	o->peers_calls++;
	o->last_peer_count = n;
	if (o->peers_calls >= o->break_after_peers)
		event_base_loopbreak(o->base);
}

static void on_error(void *arg, const char *url, const char *message)
{
	(void)url;
	(void)message;
	((struct observed *)arg)->errors++;
}

static void on_stopped(void *arg)
{
	struct observed *o = arg;
	o->stopped++;
	event_base_loopbreak(o->base);
}

static void on_safety(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

static void run_loop(struct event_base *base, double max_s)
{
	struct event *safety = evtimer_new(base, on_safety, base);
	struct timeval tv = {(time_t)max_s, 0};
	evtimer_add(safety, &tv);
	event_base_dispatch(base);
	event_free(safety);
}

static void test_tracker_lifecycle(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct evdns_base *dns = evdns_base_new(base, 0);
	struct bt_udp *udp = bt_udp_new(base);
	struct bt_announce_io io = {.http = bt_http_new(base),
				    .udp = bt_udp_tracker_new(base, dns, udp)};
	struct fake live;
	fake_start(&live, base);
	live.interval = 1;
	char *dead_urls[] = {"http://127.0.0.1:1/announce", "ftp://127.0.0.1/x"};
	char *live_urls[] = {live.url};
	struct bt_meta_tier tiers[] = {tier(dead_urls, 2), tier(live_urls, 1)};
	struct bt_announce_req req = {.port = 6881, .left = 100, .numwant = 50};
	struct bt_tracker_opts opts = {.min_interval_s = 0.3, .attempt_timeout_ms = 2000};
	struct observed o = {.base = base, .break_after_peers = 1};
	struct bt_tracker_events ev = {on_peers, on_error, on_stopped};
	struct bt_tracker *t = bt_tracker_new(base, &io, tiers, 2, &req, &opts, &ev, &o);

	bt_tracker_start(t);
	run_loop(base, 5);
	assert_int_equal(o.peers_calls, 1);
	assert_int_equal(o.last_peer_count, 1);
	assert_int_equal(o.errors, 2); /* both URLs of the dead first tier */
	assert_string_equal(bt_tracker_working_url(t), live.url);
	assert_int_equal(live.count, 1);
	assert_string_equal(live.events[0], "started");
	/* Our own entry: the HTTP announce left from 127.0.0.1, and it announced port 6881. */
	struct bt_peer_addr self = {.family = 4, .addr = {127, 0, 0, 1}, .port = 6881};
	assert_true(bt_peer_addr_equal(&o.self, &self));
	/* interval=1 from the tracker: the next regular announce is about a second away. */
	assert_true(bt_tracker_next_in(t) > 0.5 && bt_tracker_next_in(t) <= 1.0);

	o.break_after_peers = 2;
	run_loop(base, 5);
	assert_int_equal(live.count, 2);
	assert_string_equal(live.events[1], "none");

	bt_tracker_update(t, 0, 100, 0);
	bt_tracker_completed(t);
	o.break_after_peers = 3;
	run_loop(base, 5);
	assert_int_equal(live.count, 3);
	assert_string_equal(live.events[2], "completed");

	bt_tracker_stop(t);
	run_loop(base, 5);
	assert_int_equal(o.stopped, 1);
	assert_int_equal(live.count, 4);
	assert_string_equal(live.events[3], "stopped");
	assert_true(bt_tracker_next_in(t) < 0);

	bt_tracker_free(t);
	evhttp_free(live.http);
	bt_udp_tracker_free(io.udp);
	bt_udp_free(udp);
	bt_http_free(io.http);
	evdns_base_free(dns, 0);
	event_base_free(base);
}

static void on_errors_break(void *arg, const char *url, const char *message)
{
	(void)url;
	(void)message;
	struct observed *o = arg;
	if (++o->errors == 2)
		event_base_loopbreak(o->base);
}

static void test_tracker_backoff_when_all_fail(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct evdns_base *dns = evdns_base_new(base, 0);
	struct bt_udp *udp = bt_udp_new(base);
	struct bt_announce_io io = {.http = bt_http_new(base),
				    .udp = bt_udp_tracker_new(base, dns, udp)};
	char *dead_urls[] = {"http://127.0.0.1:1/a", "http://127.0.0.1:1/b"};
	struct bt_meta_tier tiers[] = {tier(dead_urls, 2)};
	struct bt_announce_req req = {.port = 6881};
	struct observed o = {.base = base};
	struct bt_tracker_events ev = {on_peers, on_errors_break, on_stopped};
	struct bt_tracker *t = bt_tracker_new(base, &io, tiers, 1, &req, NULL, &ev, &o);
	bt_tracker_start(t);
	run_loop(base, 5);
	assert_int_equal(o.errors, 2);
	/* The second failure ended a round: backoff 15 s with ±25 % jitter. */
	struct event *none = evtimer_new(base, on_safety, base);
	struct timeval zero = {0, 1000};
	evtimer_add(none, &zero);
	event_base_dispatch(base);
	event_free(none);
	double next = bt_tracker_next_in(t);
	assert_true(next > 11 && next <= 18.75);
	assert_int_equal(o.peers_calls, 0);
	/* Stopping a tracker no one answered sends nothing and reports stopped at once. */
	bt_tracker_stop(t);
	assert_int_equal(o.stopped, 1);
	bt_tracker_free(t);
	bt_udp_tracker_free(io.udp);
	bt_udp_free(udp);
	bt_http_free(io.http);
	evdns_base_free(dns, 0);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tiers_policy),
		cmocka_unit_test(test_backoff_and_interval),
		cmocka_unit_test(test_tracker_lifecycle),
		cmocka_unit_test(test_tracker_backoff_when_all_fail),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
