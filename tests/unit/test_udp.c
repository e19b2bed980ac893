/*
 * The shared datagram sockets on loopback: the classifiers of the demultiplexing rule, each
 * datagram given to the first handler that wants it and the rest dropped, sockets opened on
 * demand or bound to a given address and port, IPv4 and IPv6 (::1), the local address a datagram
 * leaves from, and a flood read at most BT_UDP_MAX_PER_WAKEUP datagrams per wake-up.
 */
#include "bt/udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

/* What one handler saw. */
struct seen {
	struct event_base *base;
	int count;
	int stop_at; /* break the loop when count reaches it */
	uint8_t first[4];
	size_t last_len;
	struct sockaddr_storage from;
	socklen_t from_len;
};

static void on_recv(void *arg, const uint8_t *data, size_t n, const struct sockaddr *from,
		    socklen_t fromlen)
{
	struct seen *s = arg;
	s->count++;
	s->last_len = n;
	memcpy(s->first, data, n < 4 ? n : 4);
	memcpy(&s->from, from, fromlen);
	s->from_len = fromlen;
	if (s->count == s->stop_at)
		event_base_loopbreak(s->base);
}

static bool match_all(const uint8_t *data, size_t n)
{
	(void)data;
	(void)n;
	return true;
}

static void on_safety(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Runs the loop until a handler breaks it, or 3 s at most. */
static void run(struct event_base *base)
{
	struct event *safety = evtimer_new(base, on_safety, base);
	struct timeval tv = {3, 0};
	evtimer_add(safety, &tv);
	event_base_dispatch(base);
	event_free(safety);
}

/* A plain blocking socket on ip:0 standing for the other side; -1 if the family is missing. */
static int peer_socket(const char *ip, struct sockaddr_storage *addr, socklen_t *len)
{
	*len = bt_sockaddr_from_ip(ip, 0, addr);
	int fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)addr, *len) < 0) {
		close(fd);
		return -1;
	}
	getsockname(fd, (struct sockaddr *)addr, len);
	struct timeval tv = {2, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
	return ntohs(((const struct sockaddr_in *)ss)->sin_port); /* same field in both */
}

static void test_classifiers(void **state)
{
	(void)state;
	static const uint8_t connect_reply[16] = {0, 0, 0, 0, 1, 2, 3, 4};
	static const uint8_t error_reply[12] = {0, 0, 0, 3, 1, 2, 3, 4, 'n', 'o'};
	static const uint8_t krpc[] = "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe";
	uint8_t utp[20] = {0x41, 0}; /* ST_SYN, version 1 */
	uint8_t utp_data[20] = {0x01, 0};
	assert_true(bt_udp_is_tracker_reply(connect_reply, sizeof connect_reply));
	assert_true(bt_udp_is_tracker_reply(error_reply, sizeof error_reply));
	assert_false(bt_udp_is_tracker_reply(connect_reply, 7)); /* no transaction id */
	uint8_t action4[8] = {0, 0, 0, 4};
	assert_false(bt_udp_is_tracker_reply(action4, sizeof action4));
	assert_true(bt_udp_is_krpc(krpc, sizeof krpc - 1));
	assert_true(bt_udp_is_utp(utp, sizeof utp));
	assert_true(bt_udp_is_utp(utp_data, sizeof utp_data));
	assert_false(bt_udp_is_utp(utp, 19));
	uint8_t utp_type5[20] = {0x51};
	assert_false(bt_udp_is_utp(utp_type5, sizeof utp_type5));

	/* Disjoint: no datagram is claimed by two protocols. */
	const uint8_t *all[] = {connect_reply, error_reply, krpc, utp, utp_data};
	size_t lens[] = {sizeof connect_reply, sizeof error_reply, sizeof krpc - 1, 20, 20};
	for (size_t i = 0; i < 5; i++) {
		int claims = bt_udp_is_tracker_reply(all[i], lens[i]) +
			     bt_udp_is_krpc(all[i], lens[i]) + bt_udp_is_utp(all[i], lens[i]);
		assert_int_equal(claims, 1);
	}
	for (unsigned b = 0; b < 256; b++) {
		uint8_t d[20] = {(uint8_t)b};
		int claims = bt_udp_is_tracker_reply(d, sizeof d) + bt_udp_is_krpc(d, sizeof d) +
			     bt_udp_is_utp(d, sizeof d);
		assert_true(claims <= 1);
	}
}

static void test_demux_by_first_bytes(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct bt_udp *u = bt_udp_new(base);
	struct seen tracker = {.base = base}, krpc = {.base = base}, shadowed = {.base = base};
	assert_int_equal(bt_udp_add_handler(u, bt_udp_is_tracker_reply, on_recv, &tracker), 0);
	assert_int_equal(bt_udp_add_handler(u, bt_udp_is_krpc, on_recv, &krpc), 0);
	/* Later than the KRPC handler: it never sees what that one takes. */
	assert_int_equal(bt_udp_add_handler(u, bt_udp_is_krpc, on_recv, &shadowed), 0);
	assert_int_equal(bt_udp_bind(u, "127.0.0.1", 0, NULL), 0);
	struct sockaddr_storage ours, peer;
	socklen_t ours_len, peer_len;
	assert_int_equal(bt_udp_local_addr(u, AF_INET, &ours, &ours_len), 0);
	int fd = peer_socket("127.0.0.1", &peer, &peer_len);
	assert_true(fd >= 0);

	static const uint8_t reply[16] = {0, 0, 0, 1, 9, 9, 9, 9};
	static const char ping[] = "d1:y1:qe";
	uint8_t utp[20] = {0x41};
	static const char junk[] = "GET / HTTP/1.0";
	struct sockaddr *to = (struct sockaddr *)&ours;
	sendto(fd, utp, sizeof utp, 0, to, ours_len); /* no uTP handler yet: dropped */
	sendto(fd, junk, sizeof junk - 1, 0, to, ours_len);
	sendto(fd, ping, sizeof ping - 1, 0, to, ours_len);
	sendto(fd, reply, sizeof reply, 0, to, ours_len);
	tracker.stop_at = 1;
	run(base);
	assert_int_equal(tracker.count, 1);
	assert_int_equal(tracker.last_len, 16);
	assert_int_equal(tracker.first[3], 1);
	assert_int_equal(port_of(&tracker.from), port_of(&peer));
	assert_int_equal(krpc.count, 1);
	assert_int_equal(krpc.first[0], 'd');
	assert_int_equal(shadowed.count, 0);
	assert_int_equal(bt_udp_dropped(u), 2);

	/* Once the tracker's handler is gone, its datagrams are dropped too. */
	bt_udp_remove_handler(u, on_recv, &tracker);
	krpc.stop_at = 2;
	sendto(fd, reply, sizeof reply, 0, to, ours_len);
	sendto(fd, ping, sizeof ping - 1, 0, to, ours_len);
	run(base);
	assert_int_equal(tracker.count, 1);
	assert_int_equal(krpc.count, 2);
	assert_int_equal(bt_udp_dropped(u), 3);

	close(fd);
	bt_udp_free(u);
	event_base_free(base);
}

static void test_bind_to_a_given_port(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct bt_udp *u = bt_udp_new(base);
	struct seen seen = {.base = base, .stop_at = 1};
	bt_udp_add_handler(u, match_all, on_recv, &seen);
	struct sockaddr_storage peer, ours;
	socklen_t peer_len, ours_len;
	int fd = peer_socket("127.0.0.1", &peer, &peer_len);
	assert_true(fd >= 0);
	assert_int_equal(bt_udp_local_addr(u, AF_INET, &ours, &ours_len), -ENOTCONN);

	/* Sending before any bind opens an ephemeral socket. */
	assert_int_equal(bt_udp_send(u, "d1:xe", 5, (struct sockaddr *)&peer, peer_len), 0);
	uint8_t buf[64];
	struct sockaddr_storage from;
	socklen_t from_len = sizeof from;
	assert_int_equal(recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len), 5);
	assert_int_equal(bt_udp_local_addr(u, AF_INET, &ours, &ours_len), 0);
	uint16_t ephemeral = port_of(&ours);
	assert_int_equal(port_of(&from), ephemeral);

	/* A port that was free a moment ago; the bind replaces the ephemeral socket. */
	struct sockaddr_storage probe;
	socklen_t probe_len;
	int p = peer_socket("127.0.0.1", &probe, &probe_len);
	uint16_t port = port_of(&probe);
	close(p);
	struct bt_err err;
	assert_int_equal(bt_udp_bind(u, "127.0.0.1", port, &err), 0);
	assert_int_equal(bt_udp_local_addr(u, AF_INET, &ours, &ours_len), 0);
	assert_int_equal(port_of(&ours), port);

	/* Datagrams leave from it, and replies sent to it arrive. */
	assert_int_equal(bt_udp_send(u, "d1:ye", 5, (struct sockaddr *)&peer, peer_len), 0);
	from_len = sizeof from;
	assert_int_equal(recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len), 5);
	assert_int_equal(port_of(&from), port);
	sendto(fd, "d1:ze", 5, 0, (struct sockaddr *)&from, from_len);
	run(base);
	assert_int_equal(seen.count, 1);
	assert_memory_equal(seen.first, "d1:z", 4);

	/* The port is taken now: a second bt_udp cannot have it, and says so. */
	struct bt_udp *other = bt_udp_new(base);
	assert_int_equal(bt_udp_bind(other, "127.0.0.1", port, &err), -EADDRINUSE);
	assert_non_null(strstr(err.msg, "cannot bind UDP 127.0.0.1:"));
	assert_int_equal(bt_udp_bind(other, "not-an-ip", 0, &err), -EINVAL);
	bt_udp_free(other);

	close(fd);
	bt_udp_free(u);
	event_base_free(base);
}

/* Sends from the bt_udp to a peer on ip, which echoes it back; checks both directions. */
static void echo(const char *ip, bool bound)
{
	struct event_base *base = event_base_new();
	struct bt_udp *u = bt_udp_new(base);
	struct seen seen = {.base = base, .stop_at = 1};
	bt_udp_add_handler(u, bt_udp_is_krpc, on_recv, &seen);
	struct sockaddr_storage peer, ours;
	socklen_t peer_len, ours_len;
	int fd = peer_socket(ip, &peer, &peer_len);
	if (fd < 0) {
		bt_udp_free(u);
		event_base_free(base);
		skip(); /* no such address family here */
	}
	if (bound)
		assert_int_equal(bt_udp_bind(u, NULL, 0, NULL), 0);
	assert_int_equal(bt_udp_send(u, "d4:pinge", 8, (struct sockaddr *)&peer, peer_len), 0);
	uint8_t buf[64];
	struct sockaddr_storage from;
	socklen_t from_len = sizeof from;
	assert_int_equal(recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len), 8);
	assert_int_equal(from.ss_family, peer.ss_family);
	sendto(fd, "d4:ponge", 8, 0, (struct sockaddr *)&from, from_len);
	run(base);
	assert_int_equal(seen.count, 1);
	assert_int_equal(seen.from_len, peer_len);
	assert_memory_equal(&seen.from, &peer, peer_len);

	/* The local address toward the peer is the loopback address it saw us at. */
	assert_int_equal(bt_udp_source_for(u, (struct sockaddr *)&peer, peer_len, &ours, &ours_len),
			 0);
	assert_int_equal(ours_len, from_len);
	assert_memory_equal(&ours, &from, from_len);
	close(fd);
	bt_udp_free(u);
	event_base_free(base);
}

static void test_ipv4_on_demand(void **state)
{
	(void)state;
	echo("127.0.0.1", false);
}

static void test_ipv4_wildcard_bound(void **state)
{
	(void)state;
	echo("127.0.0.1", true);
}

static void test_ipv6_loopback(void **state)
{
	(void)state;
	echo("::1", false);
}

static void test_source_address(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct bt_udp *u = bt_udp_new(base);
	assert_int_equal(bt_udp_set_source(u, "nonsense"), -EINVAL);
	assert_int_equal(bt_udp_set_source(u, "127.0.0.3"), 0);
	struct sockaddr_storage peer, ours;
	socklen_t peer_len, ours_len;
	int fd = peer_socket("127.0.0.1", &peer, &peer_len);
	assert_true(fd >= 0);
	/* Asked before any socket exists: the address, with no port yet. */
	assert_int_equal(bt_udp_source_for(u, (struct sockaddr *)&peer, peer_len, &ours, &ours_len),
			 0);
	assert_int_equal(((struct sockaddr_in *)&ours)->sin_addr.s_addr, htonl(0x7f000003));
	assert_int_equal(port_of(&ours), 0);
	assert_int_equal(bt_udp_send(u, "x", 1, (struct sockaddr *)&peer, peer_len), 0);
	uint8_t buf[8];
	struct sockaddr_storage from;
	socklen_t from_len = sizeof from;
	assert_int_equal(recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len), 1);
	assert_int_equal(((struct sockaddr_in *)&from)->sin_addr.s_addr, htonl(0x7f000003));
	assert_int_equal(bt_udp_source_for(u, (struct sockaddr *)&peer, peer_len, &ours, &ours_len),
			 0);
	assert_memory_equal(&ours, &from, from_len);
	close(fd);
	bt_udp_free(u);
	event_base_free(base);
}

static void test_flood_bounded_per_wakeup(void **state)
{
	(void)state;
	enum { FLOOD = 100 };
	struct event_base *base = event_base_new();
	struct bt_udp *u = bt_udp_new(base);
	struct seen seen = {.base = base};
	bt_udp_add_handler(u, match_all, on_recv, &seen);
	assert_int_equal(bt_udp_bind(u, "127.0.0.1", 0, NULL), 0);
	struct sockaddr_storage ours, peer;
	socklen_t ours_len, peer_len;
	bt_udp_local_addr(u, AF_INET, &ours, &ours_len);
	int fd = peer_socket("127.0.0.1", &peer, &peer_len);
	for (int i = 0; i < FLOOD; i++)
		assert_int_equal(sendto(fd, "d1:ae", 5, 0, (struct sockaddr *)&ours, ours_len), 5);
	/* Loopback delivers at once: every datagram is queued before the loop runs. */
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(seen.count, BT_UDP_MAX_PER_WAKEUP);
	for (int pass = 0; pass < 10 && seen.count < FLOOD; pass++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(seen.count, FLOOD);
	close(fd);
	bt_udp_free(u);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classifiers),
		cmocka_unit_test(test_demux_by_first_bytes),
		cmocka_unit_test(test_bind_to_a_given_port),
		cmocka_unit_test(test_ipv4_on_demand),
		cmocka_unit_test(test_ipv4_wildcard_bound),
		cmocka_unit_test(test_ipv6_loopback),
		cmocka_unit_test(test_source_address),
		cmocka_unit_test(test_flood_bounded_per_wakeup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
