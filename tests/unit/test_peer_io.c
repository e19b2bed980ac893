/*
 * The transport alone, through a socket pair (or a loopback listener for connect): the test
 * plays the remote end and checks what peer_io reads, streams, writes and reports.
 */
#include "bt/peer_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
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

struct rec {
	int connected, readable, streamed, room, closed;
	char reason[256];
	bool stop_on_readable;
	struct bt_peer_io *io;
};

static void on_connected(void *arg)
{
	struct rec *r = arg;
	r->connected++;
}

static void on_readable(void *arg)
{
	struct rec *r = arg;
	r->readable++;
	if (r->stop_on_readable)
		bt_peer_io_stop(r->io);
}

static void on_streamed(void *arg)
{
	struct rec *r = arg;
	r->streamed++;
}

static void on_room(void *arg)
{
	struct rec *r = arg;
	r->room++;
}

static void on_closed(void *arg, const char *reason)
{
	struct rec *r = arg;
	r->closed++;
	snprintf(r->reason, sizeof r->reason, "%s", reason);
}

static const struct bt_peer_io_events events = {.connected = on_connected,
						.readable = on_readable,
						.streamed = on_streamed,
						.room = on_room,
						.closed = on_closed};

struct fx {
	struct event_base *base;
	int remote;
	struct bt_peer_io *io;
	struct rec r;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->remote = sv[1];
	fcntl(f->remote, F_SETFL, O_NONBLOCK);
	f->base = event_base_new();
	f->io = bt_peer_io_adopt(f->base, sv[0], NULL, &events, &f->r);
	f->r.io = f->io;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	bt_peer_io_free(f->io);
	close(f->remote);
	event_base_free(f->base);
	free(f);
	return 0;
}

static void spin(struct fx *f)
{
	for (int i = 0; i < 20; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
}

static void send_raw(struct fx *f, const void *p, size_t n)
{
	assert_int_equal(write(f->remote, p, n), (ssize_t)n);
}

static size_t read_raw(int fd, uint8_t *buf, size_t max)
{
	ssize_t n = read(fd, buf, max);
	return n > 0 ? (size_t)n : 0;
}

static void test_connect_failure_reported_from_loop(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct rec r = {0};
	struct sockaddr_in sin = {
		.sin_family = AF_INET, .sin_port = htons(1), .sin_addr.s_addr = htonl(0x7f000001)};
	struct bt_peer_io *io =
		bt_peer_io_connect(base, (struct sockaddr *)&sin, sizeof sin, NULL, &events, &r);
	assert_int_equal(r.closed, 0);
	assert_string_equal(bt_peer_io_name(io), "127.0.0.1:1");
	for (int i = 0; i < 50 && !r.closed; i++)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(r.closed, 1);
	assert_int_equal(r.connected, 0);
	assert_string_equal(r.reason, "connect: Connection refused");
	assert_true(bt_peer_io_stopped(io));
	bt_peer_io_free(io);

	/* A bind that cannot work (an address family the target does not match is skipped, so a
	 * port in use is the easy one): reported from the loop too. */
	int busy = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	assert_int_equal(bind(busy, (struct sockaddr *)&any, sizeof any), 0);
	assert_int_equal(listen(busy, 1), 0);
	socklen_t len = sizeof any;
	getsockname(busy, (struct sockaddr *)&any, &len);
	struct bt_peer_io_config cfg = {.bind_addr = (struct sockaddr *)&any, .bind_len = len};
	memset(&r, 0, sizeof r);
	io = bt_peer_io_connect(base, (struct sockaddr *)&any, len, &cfg, &events, &r);
	assert_int_equal(r.closed, 0);
	for (int i = 0; i < 50 && !r.closed; i++)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(r.closed, 1);
	assert_string_equal(r.reason, "connect: Address already in use");
	bt_peer_io_free(io);
	close(busy);
	event_base_free(base);
}

/* Output queued before the connection is up goes out once it is. */
static void test_connect_then_send(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(lfd, 1), 0);
	socklen_t len = sizeof sin;
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	struct rec r = {0};
	struct bt_peer_io *io =
		bt_peer_io_connect(base, (struct sockaddr *)&sin, len, NULL, &events, &r);
	evbuffer_add(bt_peer_io_output(io), "hello", 5);
	bt_peer_io_schedule_flush(io);
	for (int i = 0; i < 50 && !r.connected; i++)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(r.connected, 1);
	int fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	uint8_t buf[16];
	assert_int_equal(read_raw(fd, buf, sizeof buf), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(evbuffer_get_length(bt_peer_io_output(io)), 0);
	assert_int_equal(r.closed, 0);
	bt_peer_io_free(io);
	close(fd);
	close(lfd);
	event_base_free(base);
}

static void test_bytes_read_into_input(void **state)
{
	struct fx *f = *state;
	spin(f);
	assert_int_equal(f->r.readable, 0);
	send_raw(f, "abc", 3);
	spin(f);
	assert_int_equal(f->r.readable, 1);
	struct evbuffer *in = bt_peer_io_input(f->io);
	assert_int_equal(evbuffer_get_length(in), 3);
	send_raw(f, "defg", 4);
	spin(f);
	assert_int_equal(f->r.readable, 2);
	assert_int_equal(evbuffer_get_length(in), 7);
	uint8_t buf[8];
	evbuffer_remove(in, buf, 7);
	assert_memory_equal(buf, "abcdefg", 7);

	/* Much more than one read takes: it all arrives, over a few wake-ups. */
	static uint8_t big[600 * 1024];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 7);
	size_t sent = 0;
	static uint8_t got[sizeof big];
	size_t have = 0;
	while (have < sizeof big) {
		ssize_t n = write(f->remote, big + sent, sizeof big - sent);
		if (n > 0)
			sent += (size_t)n;
		spin(f);
		have += evbuffer_remove(in, got + have, sizeof got - have);
	}
	assert_memory_equal(got, big, sizeof big);
	assert_int_equal(f->r.closed, 0);
}

static void test_streaming_into_destination(void **state)
{
	struct fx *f = *state;
	static uint8_t data[5000 + 50];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 13 + 1);
	send_raw(f, data, 100);
	spin(f);
	static uint8_t dest[5000];
	bt_peer_io_stream(f->io, dest, sizeof dest);
	assert_true(bt_peer_io_streaming(f->io));
	assert_int_equal(evbuffer_get_length(bt_peer_io_input(f->io)), 0);
	for (size_t off = 100; off < 4100; off += 1000) {
		send_raw(f, data + off, 1000);
		spin(f);
		assert_int_equal(evbuffer_get_length(bt_peer_io_input(f->io)), 0);
	}
	assert_int_equal(f->r.streamed, 0);
	send_raw(f, data + 4100, sizeof data - 4100); /* the stream's end and what follows */
	spin(f);
	assert_int_equal(f->r.streamed, 1);
	assert_false(bt_peer_io_streaming(f->io));
	assert_memory_equal(dest, data, sizeof dest);
	assert_int_equal(evbuffer_get_length(bt_peer_io_input(f->io)), 50);
	uint8_t rest[50];
	evbuffer_remove(bt_peer_io_input(f->io), rest, 50);
	assert_memory_equal(rest, data + 5000, 50);

	/* Dropped midway: the destination is left alone, the bytes are consumed all the same. */
	send_raw(f, data, 10);
	spin(f);
	memset(dest, 0, sizeof dest);
	bt_peer_io_stream(f->io, dest, sizeof dest);
	send_raw(f, data + 10, 90);
	spin(f);
	bt_peer_io_stream_drop(f->io);
	send_raw(f, data + 100, sizeof data - 100);
	spin(f);
	assert_int_equal(f->r.streamed, 2);
	assert_memory_equal(dest, data, 100);
	for (size_t i = 100; i < sizeof dest; i++)
		assert_int_equal(dest[i], 0);
	assert_int_equal(evbuffer_get_length(bt_peer_io_input(f->io)), 50);
	assert_int_equal(f->r.closed, 0);
}

/* Everything queued in one pass goes out together, from the loop, not from the call. */
static void test_batched_flush(void **state)
{
	struct fx *f = *state;
	spin(f);
	struct evbuffer *out = bt_peer_io_output(f->io);
	for (int i = 0; i < 3; i++) {
		evbuffer_add(out, "xyz", 3);
		bt_peer_io_schedule_flush(f->io);
	}
	uint8_t buf[64];
	assert_int_equal(read_raw(f->remote, buf, sizeof buf), 0);
	int room = f->r.room;
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(read_raw(f->remote, buf, sizeof buf), 9);
	assert_memory_equal(buf, "xyzxyzxyz", 9);
	assert_true(f->r.room > room); /* offered room to add more while flushing */
	assert_true(bt_peer_io_has_room(f->io));

	/* A remote that does not read: the socket fills, the rest waits, then it all goes. */
	static uint8_t big[4 << 20];
	evbuffer_add(out, big, sizeof big);
	bt_peer_io_schedule_flush(f->io);
	spin(f);
	assert_true(evbuffer_get_length(out) > 0);
	assert_false(bt_peer_io_has_room(f->io));
	size_t got = 0;
	static uint8_t sink[1 << 16];
	for (int i = 0; i < 100000 && got < sizeof big; i++) {
		got += read_raw(f->remote, sink, sizeof sink);
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	}
	assert_int_equal(got, sizeof big);
	assert_int_equal(evbuffer_get_length(out), 0);
	assert_int_equal(f->r.closed, 0);
}

static void test_closed_on_eof(void **state)
{
	struct fx *f = *state;
	send_raw(f, "last", 4);
	shutdown(f->remote, SHUT_WR);
	spin(f);
	/* What came before the end is handed up first. */
	assert_int_equal(f->r.readable, 1);
	assert_int_equal(evbuffer_get_length(bt_peer_io_input(f->io)), 4);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "connection closed by the peer");
	assert_true(bt_peer_io_stopped(f->io));
	evbuffer_add(bt_peer_io_output(f->io), "late", 4);
	bt_peer_io_schedule_flush(f->io); /* stopped: nothing more happens */
	spin(f);
	assert_int_equal(f->r.closed, 1);
}

/* The user stops the io from inside a callback: nothing more is reported. */
static void test_stop_inside_callback(void **state)
{
	struct fx *f = *state;
	f->r.stop_on_readable = true;
	send_raw(f, "x", 1);
	shutdown(f->remote, SHUT_WR);
	spin(f);
	assert_int_equal(f->r.readable, 1);
	assert_int_equal(f->r.closed, 0);
	assert_true(bt_peer_io_stopped(f->io));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_failure_reported_from_loop),
		cmocka_unit_test(test_connect_then_send),
		cmocka_unit_test_setup_teardown(test_bytes_read_into_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streaming_into_destination, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batched_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closed_on_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_inside_callback, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
