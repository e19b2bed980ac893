/*
 * udp_tracker against a scripted BEP 15 tracker on 127.0.0.1, on the same event loop: the
 * connect/announce exchange (with our own entry reported), connection ids reused from the cache,
 * replies with a wrong transaction id ignored, an error action reported, retransmission until it
 * gives up, and requests leaving from the port the shared sockets are bound to.
 */
#include "bt/udp_tracker.h"

#include "bt/udp.h"

#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

enum mode { NORMAL, WRONG_TID_FIRST, ERROR_ACTION, SILENT };

struct fake {
	int fd;
	struct event *ev;
	enum mode mode;
	int connects, announces;
	uint64_t cid;
	char url[64];
	uint16_t last_from_port;
};

static void on_packet(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct fake *f = arg;
	uint8_t in[200], out[64];
	struct sockaddr_in from;
	socklen_t flen = sizeof from;
	ssize_t n = recvfrom(fd, in, sizeof in, 0, (struct sockaddr *)&from, &flen);
	if (n < 16)
		return;
	f->last_from_port = ntohs(from.sin_port);
	uint32_t action = bt_load_be32(in + 8), tid = bt_load_be32(in + 12);
	size_t len = 0;
	if (n == 16 && bt_load_be64(in) == BT_UDP_PROTOCOL_ID && action == 0) {
		f->connects++;
		if (f->mode == SILENT)
			return;
		bt_store_be32(out, 0);
		bt_store_be32(out + 4, tid);
		bt_store_be64(out + 8, f->cid);
		len = 16;
	} else if (n == 98 && action == 1) {
		f->announces++;
		assert_true(bt_load_be64(in) == f->cid);
		if (f->mode == ERROR_ACTION) {
			bt_store_be32(out, 3);
			bt_store_be32(out + 4, tid);
			memcpy(out + 8, "torrent not registered", 22);
			len = 30;
		} else {
			if (f->mode == WRONG_TID_FIRST && f->announces == 1) {
				/* A stale reply first; the client must wait for the right one. */
				uint8_t stale[26] = {0, 0, 0, 1};
				bt_store_be32(stale + 4, tid + 1);
				sendto(fd, stale, sizeof stale, 0, (struct sockaddr *)&from, flen);
				sendto(fd, stale, 5, 0, (struct sockaddr *)&from, flen);
			}
			bt_store_be32(out, 1);
			bt_store_be32(out + 4, tid);
			bt_store_be32(out + 8, 900);
			bt_store_be32(out + 12, 2);
			bt_store_be32(out + 16, 7);
			memcpy(out + 20, "\x7f\x00\x00\x09\x1a\xe1", 6);
			len = 26;
		}
	}
	if (len)
		sendto(fd, out, len, 0, (struct sockaddr *)&from, flen);
}

static void fake_start(struct fake *f, struct event_base *base, enum mode mode)
{
	memset(f, 0, sizeof *f);
	f->mode = mode;
	f->cid = 0x1122334455667788ULL;
	f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	assert_int_equal(bind(f->fd, (struct sockaddr *)&sin, sizeof sin), 0);
	socklen_t len = sizeof sin;
	getsockname(f->fd, (struct sockaddr *)&sin, &len);
	snprintf(f->url, sizeof f->url, "udp://127.0.0.1:%u/announce", ntohs(sin.sin_port));
	f->ev = event_new(base, f->fd, EV_READ | EV_PERSIST, on_packet, f);
	event_add(f->ev, NULL);
}

static void fake_stop(struct fake *f)
{
	event_free(f->ev);
	close(f->fd);
}

struct outcome {
	struct event_base *base;
	int calls, error, peers, seeders;
	char message[128];
	char failure[64];
	struct bt_peer_addr self;
	int want;
};

static void on_done(const struct bt_announce_reply *reply, int error, const char *message,
		    void *arg)
{
	struct outcome *o = arg;
	o->calls++;
	o->error = error;
	snprintf(o->message, sizeof o->message, "%s", message ? message : "");
	if (reply) {
		o->peers = (int)reply->peer_count;
		o->seeders = (int)reply->complete;
		snprintf(o->failure, sizeof o->failure, "%s", reply->failure ? reply->failure : "");
		o->self = reply->self;
	}
	if (o->calls == o->want)
		event_base_loopbreak(o->base);
}

static void on_safety(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

struct env {
	struct event_base *base;
	struct evdns_base *dns;
	struct bt_udp *udp;
	struct bt_udp_tracker *u;
	struct fake fake;
};

static void env_up(struct env *e, enum mode mode)
{
	e->base = event_base_new();
	e->dns = evdns_base_new(e->base, 0);
	e->udp = bt_udp_new(e->base);
	e->u = bt_udp_tracker_new(e->base, e->dns, e->udp);
	fake_start(&e->fake, e->base, mode);
}

static void env_down(struct env *e)
{
	bt_udp_tracker_free(e->u);
	bt_udp_free(e->udp);
	fake_stop(&e->fake);
	evdns_base_free(e->dns, 0);
	event_base_free(e->base);
}

static void run(struct env *e)
{
	struct event *safety = evtimer_new(e->base, on_safety, e->base);
	struct timeval tv = {10, 0};
	evtimer_add(safety, &tv);
	event_base_dispatch(e->base);
	event_free(safety);
}

static const struct bt_announce_req req = {.port = 6881, .left = 1, .numwant = -1};

static void test_announce_and_cached_connection_id(void **state)
{
	(void)state;
	struct env e;
	env_up(&e, NORMAL);
	struct outcome o = {.base = e.base, .want = 1};
	assert_non_null(bt_udp_announce(e.u, e.fake.url, &req, on_done, &o, NULL));
	assert_int_equal(o.calls, 0);
	run(&e);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.error, 0);
	assert_int_equal(o.peers, 1);
	assert_int_equal(o.seeders, 7);
	/* Our own entry: the announce left from 127.0.0.1, and we announced port 6881. */
	struct bt_peer_addr self = {.family = 4, .addr = {127, 0, 0, 1}, .port = 6881};
	assert_true(bt_peer_addr_equal(&o.self, &self));
	/* A second announce within the minute reuses the connection id: no new connect. */
	o.want = 2;
	bt_udp_announce(e.u, e.fake.url, &req, on_done, &o, NULL);
	run(&e);
	assert_int_equal(o.calls, 2);
	assert_int_equal(e.fake.connects, 1);
	assert_int_equal(e.fake.announces, 2);
	env_down(&e);
}

static void test_wrong_transaction_id_ignored(void **state)
{
	(void)state;
	struct env e;
	env_up(&e, WRONG_TID_FIRST);
	struct outcome o = {.base = e.base, .want = 1};
	bt_udp_announce(e.u, e.fake.url, &req, on_done, &o, NULL);
	run(&e);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.error, 0);
	assert_int_equal(o.peers, 1);
	env_down(&e);
}

static void test_error_action(void **state)
{
	(void)state;
	struct env e;
	env_up(&e, ERROR_ACTION);
	struct outcome o = {.base = e.base, .want = 1};
	bt_udp_announce(e.u, e.fake.url, &req, on_done, &o, NULL);
	run(&e);
	assert_int_equal(o.error, -EPROTO);
	assert_string_equal(o.failure, "torrent not registered");
	assert_string_equal(o.message, "tracker error: torrent not registered");
	env_down(&e);
}

static void test_retransmit_then_give_up(void **state)
{
	(void)state;
	struct env e;
	env_up(&e, SILENT);
	bt_udp_tracker_set_retry_base(e.u, 5); /* 5 ms·2ⁿ instead of 15 s·2ⁿ: 2.6 s in all */
	struct outcome o = {.base = e.base, .want = 1};
	bt_udp_announce(e.u, e.fake.url, &req, on_done, &o, NULL);
	run(&e);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.error, -ETIMEDOUT);
	assert_string_equal(o.message, "no reply after 9 tries");
	assert_int_equal(e.fake.connects, 9);
	env_down(&e);
}

static void test_cancel_and_bad_urls(void **state)
{
	(void)state;
	struct env e;
	env_up(&e, SILENT);
	struct outcome o = {.base = e.base, .want = 1};
	struct bt_udp_req *r = bt_udp_announce(e.u, e.fake.url, &req, on_done, &o, NULL);
	bt_udp_cancel(r);
	struct event *t = evtimer_new(e.base, on_safety, e.base);
	struct timeval tv = {0, 100000};
	evtimer_add(t, &tv);
	event_base_dispatch(e.base);
	event_free(t);
	assert_int_equal(o.calls, 0);
	assert_int_equal(e.fake.connects, 0);

	struct bt_err err;
	assert_null(bt_udp_announce(e.u, "udp://127.0.0.1/announce", &req, on_done, &o, &err));
	assert_null(bt_udp_announce(e.u, "udp://127.0.0.1:0", &req, on_done, &o, &err));
	assert_null(bt_udp_announce(e.u, "udp://127.0.0.1:99999", &req, on_done, &o, &err));
	assert_null(bt_udp_announce(e.u, "udp://:80", &req, on_done, &o, &err));
	assert_null(bt_udp_announce(e.u, "udp://[::1:80", &req, on_done, &o, &err));
	assert_string_equal(err.msg, "not a udp://host:port URL");
	env_down(&e);
}

static void test_requests_leave_from_the_bound_port(void **state)
{
	(void)state;
	struct env e;
	env_up(&e, NORMAL);
	assert_int_equal(bt_udp_bind(e.udp, "127.0.0.1", 0, NULL), 0);
	struct sockaddr_storage ss;
	socklen_t len;
	assert_int_equal(bt_udp_local_addr(e.udp, AF_INET, &ss, &len), 0);
	uint16_t port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	assert_true(port != 0);
	struct outcome o = {.base = e.base, .want = 1};
	bt_udp_announce(e.u, e.fake.url, &req, on_done, &o, NULL);
	run(&e);
	assert_int_equal(o.error, 0);
	assert_int_equal(o.peers, 1);
	assert_int_equal(e.fake.last_from_port, port);
	assert_int_equal(o.self.family, 4);
	assert_int_equal(o.self.port, 6881); /* the announced port, not the socket's */
	env_down(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_announce_and_cached_connection_id),
		cmocka_unit_test(test_wrong_transaction_id_ignored),
		cmocka_unit_test(test_error_action),
		cmocka_unit_test(test_retransmit_then_give_up),
		cmocka_unit_test(test_cancel_and_bad_urls),
		cmocka_unit_test(test_requests_leave_from_the_bound_port),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
