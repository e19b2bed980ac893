/*
 * The session's listener and handshake router over real sockets on 127.0.0.1: the test plays
 * the remote peers with plain client sockets and drives the session's loop in short
 * non-blocking passes. A registered info hash hands the socket over with its handshake and
 * nothing sent; anything else is closed before a byte goes out; silent connections are bounded
 * in number and in time. Out of descriptors (a real EMFILE from accept, under a lowered
 * RLIMIT_NOFILE), waiting peers are shed, the loop does not spin, one warning is logged, and
 * accepting resumes once descriptors are free again. Also bt_session_is_self, the rate buckets
 * and the source address.
 */
#include "bt/session.h"

#include "bt/log.h"
#include "bt/ratelimit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* What the registered torrent's callback saw. */
struct incoming {
	int calls;
	int fd;
	struct sockaddr_storage addr;
	socklen_t len;
	struct bt_handshake h;
};

static void on_incoming(void *arg, int fd, const struct sockaddr *sa, socklen_t len,
			const struct bt_handshake *h)
{
	struct incoming *in = arg;
	in->calls++;
	if (in->fd >= 0)
		close(in->fd);
	in->fd = fd;
	memcpy(&in->addr, sa, len);
	in->len = len;
	in->h = *h;
}

static void incoming_init(struct incoming *in)
{
	memset(in, 0, sizeof *in);
	in->fd = -1;
}

static void incoming_deinit(struct incoming *in)
{
	if (in->fd >= 0)
		close(in->fd);
	in->fd = -1;
}

/* A test's remote end: everything it has received, and whether the session hung up. */
struct client {
	int fd;
	size_t got;
	bool eof;
	int error; /* errno of a failed read (a reset), 0 if none */
};

static void hash_of(uint8_t k, uint8_t out[BT_HASH_LEN])
{
	for (size_t i = 0; i < BT_HASH_LEN; i++)
		out[i] = (uint8_t)(k * 13 + i);
}

static void handshake_for(const uint8_t info_hash[BT_HASH_LEN], uint8_t out[BT_HANDSHAKE_LEN])
{
	struct bt_handshake h;
	memset(&h, 0, sizeof h);
	memcpy(h.reserved, bt_wire_reserved_ext, 8);
	memcpy(h.info_hash, info_hash, BT_HASH_LEN);
	memcpy(h.peer_id, "-XX0001-abcdefghijkl", BT_PEER_ID_LEN);
	bt_wire_handshake(out, &h);
}

static struct bt_session *listening_session(const char *ip)
{
	struct bt_err err;
	struct bt_session *s = bt_session_new(&err);
	assert_non_null(s);
	assert_int_equal(bt_session_listen(s, ip, 0, &err), 0);
	assert_true(bt_session_listen_port(s) != 0);
	return s;
}

static void loopback(uint16_t port, struct sockaddr_in *sin)
{
	memset(sin, 0, sizeof *sin);
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static void client_connect(struct client *c, uint16_t port, bool blocking)
{
	memset(c, 0, sizeof *c);
	c->fd = socket(AF_INET, SOCK_STREAM | (blocking ? 0 : SOCK_NONBLOCK), 0);
	assert_true(c->fd >= 0);
	struct sockaddr_in sin;
	loopback(port, &sin);
	int rc = connect(c->fd, (struct sockaddr *)&sin, sizeof sin);
	assert_true(rc == 0 || (!blocking && errno == EINPROGRESS));
}

static void client_send(struct client *c, const void *p, size_t n)
{
	assert_int_equal(send(c->fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads whatever has arrived without waiting. */
static void client_poll(struct client *c)
{
	while (!c->eof) {
		uint8_t buf[256];
		ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n > 0) {
			c->got += (size_t)n;
			continue;
		}
		if (n == 0) {
			c->eof = true;
		} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			c->eof = true;
			c->error = errno;
		}
		break;
	}
}

static void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* One pass of the session's loop without blocking, then a short sleep. */
static void pump(struct bt_session *s)
{
	event_base_loop(bt_session_base(s), EVLOOP_NONBLOCK);
	usleep(2000);
}

static void pump_for(struct bt_session *s, double seconds)
{
	double end = bt_now() + seconds;
	while (bt_now() < end)
		pump(s);
}

/* Pumps until the callback has been called or the client hung up; false on timeout. */
static bool pump_until_incoming(struct bt_session *s, struct incoming *in, double timeout)
{
	double end = bt_now() + timeout;
	while (in->calls == 0) {
		if (bt_now() > end)
			return false;
		pump(s);
	}
	return true;
}

static bool pump_until_eof(struct bt_session *s, struct client *c, double timeout)
{
	double end = bt_now() + timeout;
	for (client_poll(c); !c->eof; client_poll(c)) {
		if (bt_now() > end)
			return false;
		pump(s);
	}
	return true;
}

/* The session closed it in silence: an orderly EOF with not one byte before it. */
static void assert_closed_silently(const struct client *c)
{
	assert_true(c->eof);
	assert_int_equal(c->error, 0);
	assert_int_equal(c->got, 0);
}

static void test_registered_hash_is_routed(void **state)
{
	(void)state;
	struct bt_session *s = listening_session("127.0.0.1");
	uint8_t ih[BT_HASH_LEN], hs[BT_HANDSHAKE_LEN];
	hash_of(1, ih);
	struct incoming in;
	incoming_init(&in);
	assert_int_equal(bt_session_register(s, ih, on_incoming, &in), 0);

	struct client c;
	client_connect(&c, bt_session_listen_port(s), true);
	/* The handshake and, in the same segment, the first message after it. */
	uint8_t msg[BT_HANDSHAKE_LEN + 5];
	handshake_for(ih, hs);
	memcpy(msg, hs, sizeof hs);
	memcpy(msg + sizeof hs, "\x00\x00\x00\x01\x02", 5); /* interested */
	client_send(&c, msg, sizeof msg);
	assert_true(pump_until_incoming(s, &in, 3));
	assert_int_equal(in.calls, 1);

	/* The exact handshake, the client's own address, and not a byte sent to the client. */
	uint8_t again[BT_HANDSHAKE_LEN];
	bt_wire_handshake(again, &in.h);
	assert_memory_equal(again, hs, sizeof hs);
	struct sockaddr_in local;
	socklen_t llen = sizeof local;
	assert_int_equal(getsockname(c.fd, (struct sockaddr *)&local, &llen), 0);
	assert_int_equal(in.len, sizeof(struct sockaddr_in));
	const struct sockaddr_in *seen = (const struct sockaddr_in *)&in.addr;
	assert_int_equal(seen->sin_family, AF_INET);
	assert_int_equal(seen->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	assert_int_equal(seen->sin_port, local.sin_port);
	uint8_t b;
	assert_int_equal(recv(c.fd, &b, 1, MSG_DONTWAIT), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);

	/* Only the 68 bytes were read: the message after them is still in the socket. */
	uint8_t rest[16];
	ssize_t n = recv(in.fd, rest, sizeof rest, MSG_DONTWAIT);
	assert_int_equal(n, 5);
	assert_memory_equal(rest, "\x00\x00\x00\x01\x02", 5);

	/* The fd is the callee's: the session does not close it or read it again. */
	pump_for(s, 0.05);
	client_poll(&c);
	assert_false(c.eof);
	assert_int_equal(bt_session_rejected(s), 0);
	assert_int_equal(send(in.fd, "x", 1, MSG_NOSIGNAL), 1);
	pump_for(s, 0.02);
	client_poll(&c);
	assert_int_equal(c.got, 1);

	client_close(&c);
	incoming_deinit(&in);
	bt_session_free(s);
}

static void test_unknown_hash_closed_silently(void **state)
{
	(void)state;
	struct bt_session *s = listening_session("127.0.0.1");
	uint8_t ih[BT_HASH_LEN], other[BT_HASH_LEN], hs[BT_HANDSHAKE_LEN];
	hash_of(1, ih);
	hash_of(2, other);
	struct incoming in;
	incoming_init(&in);
	assert_int_equal(bt_session_register(s, ih, on_incoming, &in), 0);

	struct client c;
	client_connect(&c, bt_session_listen_port(s), true);
	handshake_for(other, hs);
	client_send(&c, hs, sizeof hs);
	assert_true(pump_until_eof(s, &c, 3));
	assert_closed_silently(&c);
	assert_int_equal(in.calls, 0);
	assert_int_equal(bt_session_rejected(s), 1);
	client_close(&c);
	bt_session_free(s);
}

static void test_garbage_closed_silently(void **state)
{
	(void)state;
	struct bt_session *s = listening_session("127.0.0.1");
	uint8_t ih[BT_HASH_LEN];
	hash_of(1, ih);
	struct incoming in;
	incoming_init(&in);
	assert_int_equal(bt_session_register(s, ih, on_incoming, &in), 0);

	/* Shorter than a handshake, so the session reads all of it (no reset for unread data). */
	static const char http[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	struct client c;
	client_connect(&c, bt_session_listen_port(s), true);
	client_send(&c, http, strlen(http));
	assert_true(pump_until_eof(s, &c, 3));
	assert_closed_silently(&c);

	/* The right length byte and a wrong protocol name. */
	struct client c2;
	client_connect(&c2, bt_session_listen_port(s), true);
	client_send(&c2,
		    "\x13"
		    "BitTorrent protocoX",
		    20);
	assert_true(pump_until_eof(s, &c2, 3));
	assert_closed_silently(&c2);

	assert_int_equal(in.calls, 0);
	assert_int_equal(bt_session_rejected(s), 2);
	client_close(&c);
	client_close(&c2);
	bt_session_free(s);
}

static void test_split_handshake_is_routed(void **state)
{
	(void)state;
	struct bt_session *s = listening_session("127.0.0.1");
	uint8_t ih[BT_HASH_LEN], hs[BT_HANDSHAKE_LEN];
	hash_of(3, ih);
	struct incoming in;
	incoming_init(&in);
	assert_int_equal(bt_session_register(s, ih, on_incoming, &in), 0);
	handshake_for(ih, hs);

	struct client c;
	client_connect(&c, bt_session_listen_port(s), true);
	/* Cut inside the protocol string, the reserved bytes, the hash and the peer id. */
	static const size_t cuts[] = {0, 1, 7, 20, 25, 33, 48, 60, 67, BT_HANDSHAKE_LEN};
	for (size_t i = 0; i + 1 < sizeof cuts / sizeof cuts[0]; i++) {
		client_send(&c, hs + cuts[i], cuts[i + 1] - cuts[i]);
		pump_for(s, 0.01);
		if (cuts[i + 1] < BT_HANDSHAKE_LEN)
			assert_int_equal(in.calls, 0);
	}
	assert_true(pump_until_incoming(s, &in, 3));
	assert_int_equal(in.calls, 1);
	uint8_t again[BT_HANDSHAKE_LEN];
	bt_wire_handshake(again, &in.h);
	assert_memory_equal(again, hs, sizeof hs);
	client_poll(&c);
	assert_false(c.eof);
	assert_int_equal(c.got, 0);
	assert_int_equal(bt_session_rejected(s), 0);
	client_close(&c);
	incoming_deinit(&in);
	bt_session_free(s);
}

/* A client that trickles a byte now and then is still closed 10 s after its accept. */
static const bool check_trickle = true;

/*
 * A connection that sends part of a handshake and then nothing is closed 10 s after it was
 * accepted; so should be one that trickles a byte in the meantime (see above). The only slow
 * test here (about 10 s).
 */
static void test_pending_timeout(void **state)
{
	(void)state;
	struct bt_session *s = listening_session("127.0.0.1");
	uint8_t ih[BT_HASH_LEN], hs[BT_HANDSHAKE_LEN];
	hash_of(4, ih);
	struct incoming in;
	incoming_init(&in);
	assert_int_equal(bt_session_register(s, ih, on_incoming, &in), 0);
	handshake_for(ih, hs);

	struct client quiet, trickle;
	double t0 = bt_now();
	client_connect(&quiet, bt_session_listen_port(s), true);
	client_connect(&trickle, bt_session_listen_port(s), true);
	client_send(&quiet, hs, 34);
	client_send(&trickle, hs, 30);
	double quiet_end = 0, trickle_end = 0;
	bool trickled = false;
	while (bt_now() - t0 < 16 && (!quiet.eof || (check_trickle && !trickle.eof))) {
		pump(s);
		if (!trickled && bt_now() - t0 > 5) {
			client_send(&trickle, hs + 30, 1);
			trickled = true;
		}
		client_poll(&quiet);
		client_poll(&trickle);
		if (quiet.eof && !quiet_end)
			quiet_end = bt_now() - t0;
		if (trickle.eof && !trickle_end)
			trickle_end = bt_now() - t0;
		/* Between 1 s and 9 s both are kept. */
		if (bt_now() - t0 > 1 && bt_now() - t0 < 9)
			assert_false(quiet.eof || trickle.eof);
	}
	print_message("pending timeout: silent one closed at %.2f s\n", quiet_end);
	assert_true(quiet.eof);
	assert_closed_silently(&quiet);
	assert_true(quiet_end >= 9.5 && quiet_end <= 11.5);
	assert_true(bt_session_rejected(s) >= 1);
	if (check_trickle) {
		print_message("pending timeout: trickling one closed at %.2f s\n", trickle_end);
		assert_true(trickle.eof);
		assert_closed_silently(&trickle);
		assert_true(trickle_end >= 9.5 && trickle_end <= 11.5);
		assert_int_equal(bt_session_rejected(s), 2);
	}
	assert_int_equal(in.calls, 0);
	client_close(&quiet);
	client_close(&trickle);
	bt_session_free(s);
}

/* 70 silent connections: 64 are kept waiting for their handshake, the other 6 closed at once. */
static void test_at_most_64_pending(void **state)
{
	(void)state;
	enum { N = 70, MAX = 64 };
	struct bt_session *s = listening_session("127.0.0.1");
	uint8_t ih[BT_HASH_LEN], hs[BT_HANDSHAKE_LEN];
	hash_of(5, ih);
	struct incoming in;
	incoming_init(&in);
	assert_int_equal(bt_session_register(s, ih, on_incoming, &in), 0);

	static struct client c[N];
	for (int i = 0; i < N; i++) {
		client_connect(&c[i], bt_session_listen_port(s), false);
		if (i % 8 == 7)
			pump_for(s, 0.01); /* keep the listen backlog from filling */
	}
	double end = bt_now() + 3;
	size_t closed = 0;
	while (bt_now() < end) {
		pump(s);
		closed = 0;
		for (int i = 0; i < N; i++) {
			client_poll(&c[i]);
			closed += c[i].eof;
		}
		if (closed >= N - MAX && bt_session_rejected(s) >= N - MAX)
			break;
	}
	/* A little longer, to see that no more are closed. */
	pump_for(s, 0.2);
	closed = 0;
	size_t closed_silently = 0;
	for (int i = 0; i < N; i++) {
		client_poll(&c[i]);
		closed += c[i].eof;
		closed_silently += c[i].eof && !c[i].error && !c[i].got;
	}
	assert_int_equal(closed, N - MAX);
	assert_int_equal(closed_silently, N - MAX);
	assert_int_equal(bt_session_rejected(s), N - MAX);

	/* Room again: ten waiting clients give up, and a new client's handshake is routed. */
	int gave_up = 0;
	for (int i = 0; i < N && gave_up < 10; i++) {
		if (!c[i].eof) {
			client_close(&c[i]);
			gave_up++;
		}
	}
	end = bt_now() + 3;
	while (bt_session_rejected(s) < N - MAX + 10 && bt_now() < end)
		pump(s);
	assert_int_equal(bt_session_rejected(s), N - MAX + 10);
	struct client late;
	client_connect(&late, bt_session_listen_port(s), true);
	handshake_for(ih, hs);
	client_send(&late, hs, sizeof hs);
	assert_true(pump_until_incoming(s, &in, 3));
	client_poll(&late);
	assert_false(late.eof);

	client_close(&late);
	for (int i = 0; i < N; i++)
		client_close(&c[i]);
	incoming_deinit(&in);
	bt_session_free(s);
}

static void test_register_unregister(void **state)
{
	(void)state;
	struct bt_session *s = listening_session("127.0.0.1");
	uint8_t a[BT_HASH_LEN], b[BT_HASH_LEN], hs[BT_HANDSHAKE_LEN];
	hash_of(6, a);
	hash_of(7, b);
	struct incoming in_a, in_b, dup;
	incoming_init(&in_a);
	incoming_init(&in_b);
	incoming_init(&dup);
	assert_int_equal(bt_session_register(s, a, on_incoming, &in_a), 0);
	assert_int_equal(bt_session_register(s, b, on_incoming, &in_b), 0);
	assert_int_equal(bt_session_register(s, a, on_incoming, &dup), -EEXIST);

	/* Each hash goes to its own registration, not to the refused duplicate. */
	struct client ca, cb;
	client_connect(&ca, bt_session_listen_port(s), true);
	handshake_for(a, hs);
	client_send(&ca, hs, sizeof hs);
	client_connect(&cb, bt_session_listen_port(s), true);
	handshake_for(b, hs);
	client_send(&cb, hs, sizeof hs);
	double end = bt_now() + 3;
	while ((in_a.calls == 0 || in_b.calls == 0) && bt_now() < end)
		pump(s);
	assert_int_equal(in_a.calls, 1);
	assert_int_equal(in_b.calls, 1);
	assert_int_equal(dup.calls, 0);
	assert_memory_equal(in_a.h.info_hash, a, BT_HASH_LEN);
	assert_memory_equal(in_b.h.info_hash, b, BT_HASH_LEN);

	/* Unregistered: the next connection for it is closed without a word; b still works. */
	bt_session_unregister(s, a);
	bt_session_unregister(s, a); /* unknown now: a no-op */
	struct client again;
	client_connect(&again, bt_session_listen_port(s), true);
	handshake_for(a, hs);
	client_send(&again, hs, sizeof hs);
	assert_true(pump_until_eof(s, &again, 3));
	assert_closed_silently(&again);
	assert_int_equal(in_a.calls, 1);
	assert_int_equal(bt_session_rejected(s), 1);

	struct client cb2;
	client_connect(&cb2, bt_session_listen_port(s), true);
	handshake_for(b, hs);
	client_send(&cb2, hs, sizeof hs);
	end = bt_now() + 3;
	while (in_b.calls < 2 && bt_now() < end)
		pump(s);
	assert_int_equal(in_b.calls, 2);

	/* Registered again after removal: routed again. */
	assert_int_equal(bt_session_register(s, a, on_incoming, &dup), 0);
	struct client ca2;
	client_connect(&ca2, bt_session_listen_port(s), true);
	handshake_for(a, hs);
	client_send(&ca2, hs, sizeof hs);
	assert_true(pump_until_incoming(s, &dup, 3));

	client_close(&ca);
	client_close(&cb);
	client_close(&again);
	client_close(&cb2);
	client_close(&ca2);
	incoming_deinit(&in_a);
	incoming_deinit(&in_b);
	incoming_deinit(&dup);
	bt_session_free(s);
}

/* The session's log lines during a test: its warnings, and its notes that it accepts again. */
struct log_capture {
	int warn;
	int resumed; /* "accepting peers again" (DEBUG) */
	char last_warn[512];
};

static void capture_log(void *arg, enum bt_log_level level, const char *subject,
			const char *message)
{
	struct log_capture *lc = arg;
	if (level == BT_LOG_WARN && strcmp(subject, "session") == 0) {
		lc->warn++;
		snprintf(lc->last_warn, sizeof lc->last_warn, "%s", message);
	} else if (level == BT_LOG_DEBUG && strcmp(subject, "session") == 0 &&
		   strcmp(message, "accepting peers again") == 0) {
		lc->resumed++;
	}
}

static double cpu_seconds(void)
{
	struct timespec ts = {0, 0};
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* no assertion: called with the table full */
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The highest descriptor open in this process (below 4096), or -1. */
static int highest_fd(void)
{
	int high = -1;
	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			high = fd;
	return high;
}

/*
 * Every descriptor of the process taken: the soft RLIMIT_NOFILE lowered to a few above the
 * highest one open, and /dev/null opened until EMFILE. A limit relative to what is open works
 * with or without the sanitizers (which hold no descriptors of their own here).
 */
struct fd_table {
	struct rlimit saved;
	int limit;
	int fillers[4096];
	int n;
	int filled;	 /* how many were taken */
	int fill_errno;	 /* why the last open failed: EMFILE */
	int probe;	 /* a socket made with the table full: -1 */
	int probe_errno; /* EMFILE */
};

static void fill_fd_table(struct fd_table *t)
{
	memset(t, 0, sizeof *t);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &t->saved), 0);
	int high = highest_fd();
	assert_true(high >= 0 && high < 4000);
	struct rlimit low = t->saved;
	low.rlim_cur = (rlim_t)high + 1 + 8;
	assert_true(t->saved.rlim_cur == RLIM_INFINITY || low.rlim_cur <= t->saved.rlim_cur);
	t->limit = (int)low.rlim_cur;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	/* No assertion from here to restore_fd_table. */
	while (t->n < (int)(sizeof t->fillers / sizeof t->fillers[0])) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			t->fill_errno = errno;
			break;
		}
		t->fillers[t->n++] = fd;
	}
	t->filled = t->n;
	t->probe = socket(AF_INET, SOCK_STREAM, 0);
	t->probe_errno = errno;
}

static void restore_fd_table(struct fd_table *t)
{
	for (int i = 0; i < t->n; i++)
		close(t->fillers[i]);
	t->n = 0;
	if (t->probe >= 0)
		close(t->probe);
	t->probe = -1;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &t->saved), 0);
}

static void assert_fd_table_was_full(const struct fd_table *t)
{
	assert_true(t->filled > 0);
	assert_int_equal(t->fill_errno, EMFILE);
	assert_int_equal(t->probe_errno, EMFILE);
}

/*
 * What happens while the descriptor table is full, recorded by timers on the session's own loop:
 * nothing here may open a descriptor, and nothing here asserts (an assertion would leave the
 * table full and the limit lowered for the tests after this one).
 */
enum { EMFILE_WAVE1 = 5, EMFILE_WAVE2 = 3, EMFILE_WAVE3 = 2 };
enum { EMFILE_CLIENTS = EMFILE_WAVE1 + EMFILE_WAVE2 + EMFILE_WAVE3 };

struct emfile_run {
	struct client c[EMFILE_CLIENTS];
	struct sockaddr_in to;
	int connect_errors;	 /* connect() calls that failed other than EINPROGRESS */
	int wave1_closed_early;	 /* wave 1 closed by 0.4 s: shed at once, not left waiting */
	int wave2_closed_early;	 /* wave 2 (connected at 0.5 s, in the pause) closed by 0.85 s */
	uint64_t rejected_early; /* bt_session_rejected at 0.4 s */
	struct bt_session *s;
};

static void emfile_connect(struct emfile_run *r, int from, int to)
{
	for (int i = from; i < to; i++) {
		int rc = connect(r->c[i].fd, (struct sockaddr *)&r->to, sizeof r->to);
		if (rc != 0 && errno != EINPROGRESS)
			r->connect_errors++;
	}
}

static void emfile_check_wave1(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct emfile_run *r = arg;
	for (int i = 0; i < EMFILE_WAVE1; i++) {
		client_poll(&r->c[i]);
		r->wave1_closed_early += r->c[i].eof;
	}
	r->rejected_early = bt_session_rejected(r->s);
}

static void emfile_wave2(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct emfile_run *r = arg;
	emfile_connect(r, EMFILE_WAVE1, EMFILE_WAVE1 + EMFILE_WAVE2);
}

static void emfile_wave3(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct emfile_run *r = arg;
	emfile_connect(r, EMFILE_WAVE1 + EMFILE_WAVE2, EMFILE_CLIENTS);
}

static void emfile_check_wave2(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct emfile_run *r = arg;
	for (int i = EMFILE_WAVE1; i < EMFILE_WAVE1 + EMFILE_WAVE2; i++) {
		client_poll(&r->c[i]);
		r->wave2_closed_early += r->c[i].eof;
	}
}

/*
 * accept() fails with EMFILE for real: the soft RLIMIT_NOFILE is lowered after the session
 * listens and every descriptor under it is taken. Five peers connect at once, three more at
 * 0.5 s (while accepting is paused) and two at 2.2 s (after the second pause). The session gives
 * up its spare descriptor to accept and close each of them (an orderly EOF: the first five at
 * once, the next three only when the 1 s pause ends), logs one warning for all three episodes,
 * and sleeps in between: over 2.5 s of the loop it uses well under 0.5 s of CPU. With
 * descriptors back, a new peer's handshake is routed when the last pause ends (within 1.5 s).
 */
static void test_emfile_sheds_and_recovers(void **state)
{
	(void)state;
	struct bt_session *s = listening_session("127.0.0.1");
	uint8_t ih[BT_HASH_LEN], hs[BT_HANDSHAKE_LEN];
	hash_of(8, ih);
	handshake_for(ih, hs);
	struct incoming in;
	incoming_init(&in);
	assert_int_equal(bt_session_register(s, ih, on_incoming, &in), 0);
	static struct log_capture lc;
	memset(&lc, 0, sizeof lc);
	bt_log_set_sink(capture_log, &lc);
	bt_log_set_level(BT_LOG_DEBUG);

	/* Everything the full table will need is made now: the clients' sockets and the timers. */
	static struct emfile_run r;
	memset(&r, 0, sizeof r);
	r.s = s;
	loopback(bt_session_listen_port(s), &r.to);
	for (int i = 0; i < EMFILE_CLIENTS; i++) {
		r.c[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		assert_true(r.c[i].fd >= 0);
	}
	struct event_base *base = bt_session_base(s);
	struct event *check1 = evtimer_new(base, emfile_check_wave1, &r);
	struct event *wave2 = evtimer_new(base, emfile_wave2, &r);
	struct event *check2 = evtimer_new(base, emfile_check_wave2, &r);
	struct event *wave3 = evtimer_new(base, emfile_wave3, &r);
	assert_non_null(check1);
	assert_non_null(wave2);
	assert_non_null(check2);
	assert_non_null(wave3);
	struct timeval tv;
	evtimer_add(check1, bt_timeval(&tv, 0.4));
	evtimer_add(wave2, bt_timeval(&tv, 0.5));
	evtimer_add(check2, bt_timeval(&tv, 0.85));
	evtimer_add(wave3, bt_timeval(&tv, 2.2));

	static struct fd_table table;
	fill_fd_table(&table);

	emfile_connect(&r, 0, EMFILE_WAVE1);
	double cpu0 = cpu_seconds(), t0 = bt_now();
	enum bt_session_end end = bt_session_run(s, 2.5);
	double cpu = cpu_seconds() - cpu0, wall = bt_now() - t0;
	for (int i = 0; i < EMFILE_CLIENTS; i++)
		client_poll(&r.c[i]);
	uint64_t rejected = bt_session_rejected(s);
	int warned = lc.warn;

	/* Descriptors back: the fillers closed, the limit as it was. */
	restore_fd_table(&table);
	event_free(check1);
	event_free(wave2);
	event_free(check2);
	event_free(wave3);

	print_message(
		"emfile: limit %d, %d fillers, loop %.2f s using %.3f s of CPU, warning: %s\n",
		table.limit, table.filled, wall, cpu, lc.last_warn);
	assert_fd_table_was_full(&table);
	assert_int_equal(r.connect_errors, 0);
	assert_int_equal(end, BT_SESSION_DEADLINE);
	/* Paused, not spinning on the waiting connection. */
	assert_true(cpu < 0.5);
	/* Every peer was accepted and closed without a byte, none routed. */
	for (int i = 0; i < EMFILE_CLIENTS; i++)
		assert_closed_silently(&r.c[i]);
	assert_int_equal(rejected, EMFILE_CLIENTS);
	assert_int_equal(in.calls, 0);
	/* The first wave at once; the second waited out the pause. */
	assert_int_equal(r.wave1_closed_early, EMFILE_WAVE1);
	assert_int_equal(r.rejected_early, EMFILE_WAVE1);
	assert_int_equal(r.wave2_closed_early, 0);
	/* One warning for all three episodes, naming the error. */
	assert_int_equal(warned, 1);
	assert_non_null(strstr(lc.last_warn, "cannot accept connections"));
	assert_non_null(strstr(lc.last_warn, strerror(EMFILE)));
	assert_int_equal(lc.resumed, 0);

	/*
	 * A new peer is accepted again and routed: not at once, for the pause that began with the
	 * third wave (at 2.2 s) still runs, but when it ends, about 0.7 s after the restore.
	 */
	struct client late;
	client_connect(&late, bt_session_listen_port(s), true);
	client_send(&late, hs, sizeof hs);
	t0 = bt_now();
	assert_true(pump_until_incoming(s, &in, 1.5));
	double again = bt_now() - t0;
	print_message("emfile: routed again %.2f s after descriptors were freed\n", again);
	assert_true(again > 0.3);
	assert_int_equal(in.calls, 1);
	assert_memory_equal(in.h.info_hash, ih, BT_HASH_LEN);
	assert_int_equal(bt_session_rejected(s), EMFILE_CLIENTS);
	assert_int_equal(lc.warn, 1);
	assert_int_equal(lc.resumed, 1);
	client_poll(&late);
	assert_false(late.eof);

	/*
	 * Out of descriptors again, after that accept, within the minute: the peer waiting is shed
	 * at once again, and not warned about again.
	 */
	struct client again_c;
	memset(&again_c, 0, sizeof again_c);
	again_c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(again_c.fd >= 0);
	fill_fd_table(&table);
	int again_rc = connect(again_c.fd, (struct sockaddr *)&r.to, sizeof r.to);
	int again_errno = errno;
	double end_again = bt_now() + 0.3;
	for (client_poll(&again_c); !again_c.eof && bt_now() < end_again; client_poll(&again_c))
		pump(s);
	restore_fd_table(&table);
	assert_fd_table_was_full(&table);
	assert_true(again_rc == 0 || again_errno == EINPROGRESS);
	assert_closed_silently(&again_c);
	assert_int_equal(bt_session_rejected(s), EMFILE_CLIENTS + 1);
	assert_int_equal(lc.warn, 1);
	client_close(&again_c);

	bt_log_set_sink(NULL, NULL);
	bt_log_set_level(BT_LOG_INFO);
	client_close(&late);
	for (int i = 0; i < EMFILE_CLIENTS; i++)
		client_close(&r.c[i]);
	incoming_deinit(&in);
	bt_session_free(s);
}

static bool is_self(struct bt_session *s, const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	assert_true(bt_sockaddr_from_ip(ip, port, &ss) != 0);
	return bt_session_is_self(s, (struct sockaddr *)&ss);
}

static void test_is_self(void **state)
{
	(void)state;
	struct bt_err err;
	struct bt_session *s = bt_session_new(&err);
	assert_non_null(s);
	/* Not listening: nothing is us. */
	assert_int_equal(bt_session_listen_port(s), 0);
	assert_false(is_self(s, "127.0.0.1", 6881));
	assert_int_equal(bt_session_listen(s, "127.0.0.1", 0, &err), 0);
	uint16_t port = bt_session_listen_port(s);
	assert_true(is_self(s, "127.0.0.1", port));
	assert_false(is_self(s, "127.0.0.1", (uint16_t)(port + 1)));
	assert_false(is_self(s, "127.0.0.2", port));
	assert_false(is_self(s, "10.1.2.3", port));
	assert_false(is_self(s, "::1", port));
	bt_session_free(s);

	/* A wildcard listener is reachable on every address of the host, loopback included. */
	s = listening_session(NULL);
	port = bt_session_listen_port(s);
	assert_true(is_self(s, "127.0.0.1", port));
	assert_false(is_self(s, "127.0.0.1", (uint16_t)(port + 1)));
	assert_false(is_self(s, "192.0.2.1", port)); /* TEST-NET-1: not one of ours */
	bt_session_free(s);
}

/* Connects a blocking client to ip:port over whichever family ip is. */
static int connect_to(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = bt_sockaddr_from_ip(ip, port, &ss);
	assert_true(len != 0);
	int fd = socket(ss.ss_family, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * BEP 7: with no --listen the one port takes IPv4 and IPv6 peers alike, and an IPv4 peer is
 * handed on as AF_INET (the key a tracker's entry for it has), never as ::ffff:127.0.0.1.
 */
static void test_wildcard_listens_on_both_families(void **state)
{
	(void)state;
	struct bt_session *s = listening_session(NULL);
	uint16_t port = bt_session_listen_port(s);
	uint8_t ih[BT_HASH_LEN], hs[BT_HANDSHAKE_LEN];
	hash_of(7, ih);
	handshake_for(ih, hs);

	struct incoming in4, in6;
	incoming_init(&in4);
	assert_int_equal(bt_session_register(s, ih, on_incoming, &in4), 0);
	int fd4 = connect_to("127.0.0.1", port);
	assert_true(fd4 >= 0);
	assert_int_equal(send(fd4, hs, sizeof hs, MSG_NOSIGNAL), (ssize_t)sizeof hs);
	assert_true(pump_until_incoming(s, &in4, 3));
	assert_int_equal(in4.addr.ss_family, AF_INET);
	assert_int_equal(in4.len, sizeof(struct sockaddr_in));
	struct sockaddr_in local4;
	socklen_t l4 = sizeof local4;
	assert_int_equal(getsockname(fd4, (struct sockaddr *)&local4, &l4), 0);
	const struct sockaddr_in *seen4 = (const struct sockaddr_in *)&in4.addr;
	assert_int_equal(seen4->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	assert_int_equal(seen4->sin_port, local4.sin_port);
	bt_session_unregister(s, ih);

	incoming_init(&in6);
	assert_int_equal(bt_session_register(s, ih, on_incoming, &in6), 0);
	int fd6 = connect_to("::1", port);
	if (fd6 < 0) {
		/* No ::1 on this host: IPv4 alone is all that can be checked. */
		print_message("no IPv6 loopback here: %s\n", strerror(errno));
	} else {
		assert_int_equal(send(fd6, hs, sizeof hs, MSG_NOSIGNAL), (ssize_t)sizeof hs);
		assert_true(pump_until_incoming(s, &in6, 3));
		assert_int_equal(in6.addr.ss_family, AF_INET6);
		const struct sockaddr_in6 *seen6 = (const struct sockaddr_in6 *)&in6.addr;
		assert_true(IN6_IS_ADDR_LOOPBACK(&seen6->sin6_addr));
		assert_true(is_self(s, "::1", port));
		assert_false(is_self(s, "::1", (uint16_t)(port + 1)));
		close(fd6);
	}
	/* Our own address in either family, mapped or not, is us. */
	assert_true(is_self(s, "127.0.0.1", port));
	assert_true(is_self(s, "::ffff:127.0.0.1", port));
	assert_false(is_self(s, "::ffff:192.0.2.1", port));
	assert_false(is_self(s, "2001:db8::1", port));
	assert_int_equal(bt_session_rejected(s), 0);
	close(fd4);
	incoming_deinit(&in4);
	incoming_deinit(&in6);
	bt_session_free(s);
}

/* --listen ::1 means that address only: IPv4 peers find nothing there. */
static void test_listen_on_ipv6_address_only(void **state)
{
	(void)state;
	struct bt_err err;
	struct bt_session *s = bt_session_new(&err);
	assert_non_null(s);
	if (bt_session_listen(s, "::1", 0, &err) != 0) {
		print_message("no IPv6 loopback here: %s\n", err.msg);
		bt_session_free(s);
		return;
	}
	uint16_t port = bt_session_listen_port(s);
	assert_true(port != 0);
	int fd = connect_to("127.0.0.1", port);
	if (fd >= 0)
		close(fd);
	assert_true(fd < 0);
	assert_true(is_self(s, "::1", port));
	assert_false(is_self(s, "127.0.0.1", port));
	fd = connect_to("::1", port);
	assert_true(fd >= 0);
	close(fd);
	bt_session_free(s);
}

static void test_limits_and_source(void **state)
{
	(void)state;
	struct bt_err err;
	struct bt_session *s = bt_session_new(&err);
	assert_non_null(s);
	/* Unlimited by default: a take gets everything. */
	assert_true(bt_session_down_limit(s)->rate == 0);
	assert_true(bt_session_up_limit(s)->rate == 0);
	assert_int_equal(bt_rate_limit_take(bt_session_down_limit(s), bt_now(), 1 << 20), 1 << 20);
	bt_session_set_limits(s, 100000, 50000);
	assert_true(bt_session_down_limit(s)->rate == 100000);
	assert_true(bt_session_up_limit(s)->rate == 50000);
	/* One bucket per direction, the same one every time it is asked for. */
	assert_ptr_equal(bt_session_down_limit(s), bt_session_down_limit(s));
	assert_ptr_not_equal(bt_session_down_limit(s), bt_session_up_limit(s));
	assert_true(bt_rate_limit_take(bt_session_up_limit(s), bt_now(), 1 << 20) < (1 << 20));

	socklen_t len = 1;
	assert_null(bt_session_source(s, &len));
	assert_int_equal(len, 0);
	assert_null(bt_session_source_ip(s));
	assert_int_equal(bt_session_set_source(s, "not-an-ip", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not-an-ip"));
	assert_null(bt_session_source_ip(s));
	assert_int_equal(bt_session_set_source(s, "127.0.0.1", &err), 0);
	assert_string_equal(bt_session_source_ip(s), "127.0.0.1");
	const struct sockaddr_in *src = (const struct sockaddr_in *)bt_session_source(s, &len);
	assert_non_null(src);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(src->sin_family, AF_INET);
	assert_int_equal(src->sin_port, 0);
	assert_int_equal(src->sin_addr.s_addr, htonl(INADDR_LOOPBACK));

	/* A peer id of the Azureus style, different in each session. */
	const uint8_t *id = bt_session_peer_id(s);
	assert_memory_equal(id, BT_PEER_ID_PREFIX, 8);
	struct bt_session *s2 = bt_session_new(&err);
	assert_non_null(s2);
	assert_memory_not_equal(bt_session_peer_id(s2), id, BT_PEER_ID_LEN);
	bt_session_free(s2);
	bt_session_free(s);
}

/* bt_session_run returns at its deadline, and at bt_session_stop from a callback. */
static void on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bt_session_stop(arg);
}

static void test_run_deadline_and_stop(void **state)
{
	(void)state;
	struct bt_err err;
	struct bt_session *s = bt_session_new(&err);
	assert_non_null(s);
	double t0 = bt_now();
	assert_int_equal(bt_session_run(s, 0.1), BT_SESSION_DEADLINE);
	double took = bt_now() - t0;
	assert_true(took >= 0.09 && took < 1.0);

	struct event *ev = evtimer_new(bt_session_base(s), on_stop_timer, s);
	struct timeval tv = {0, 20000};
	evtimer_add(ev, &tv);
	t0 = bt_now();
	assert_int_equal(bt_session_run(s, 5), BT_SESSION_STOPPED);
	assert_true(bt_now() - t0 < 1.0);
	event_free(ev);
	bt_session_free(s);
	bt_session_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registered_hash_is_routed),
		cmocka_unit_test(test_unknown_hash_closed_silently),
		cmocka_unit_test(test_garbage_closed_silently),
		cmocka_unit_test(test_split_handshake_is_routed),
		cmocka_unit_test(test_at_most_64_pending),
		cmocka_unit_test(test_register_unregister),
		cmocka_unit_test(test_emfile_sheds_and_recovers),
		cmocka_unit_test(test_is_self),
		cmocka_unit_test(test_wildcard_listens_on_both_families),
		cmocka_unit_test(test_listen_on_ipv6_address_only),
		cmocka_unit_test(test_limits_and_source),
		cmocka_unit_test(test_run_deadline_and_stop),
		cmocka_unit_test(test_pending_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
