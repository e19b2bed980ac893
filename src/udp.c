#include "bt/udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DATAGRAM 65536

struct handler {
	bt_udp_match_fn match;
	bt_udp_recv_fn recv;
	void *arg;
};

struct sock {
	struct bt_udp *u;
	evutil_socket_t fd; /* -1 until opened */
	struct event *ev;
};

struct bt_udp {
	struct event_base *base;
	struct sock sock[2]; /* IPv4, IPv6 */
	struct handler handlers[BT_UDP_MAX_HANDLERS];
	size_t handler_count;
	struct sockaddr_storage source; /* ss_family 0: none */
	socklen_t source_len;
	uint8_t *buf;
	uint64_t dropped;
};

bool bt_udp_is_tracker_reply(const uint8_t *p, size_t n)
{
	/* The action, then the transaction id: anything shorter is no reply of BEP 15. */
	return n >= 8 && p[0] == 0 && p[1] == 0 && p[2] == 0 && p[3] <= 3;
}

bool bt_udp_is_krpc(const uint8_t *p, size_t n)
{
	return n >= 1 && p[0] == 'd';
}

bool bt_udp_is_utp(const uint8_t *p, size_t n)
{
	/* The smallest uTP header is 20 bytes; type is 0..4 and version 1. */
	return n >= 20 && (p[0] & 0x0f) == 1 && (p[0] >> 4) <= 4;
}

static int family_index(int family)
{
	return family == AF_INET6 ? 1 : family == AF_INET ? 0 : -1;
}

static void on_readable(evutil_socket_t fd, short what, void *arg);

static void close_sock(struct sock *s)
{
	if (s->ev)
		event_free(s->ev);
	if (s->fd >= 0)
		close(s->fd);
	s->ev = NULL;
	s->fd = -1;
}

static void adopt(struct bt_udp *u, int i, evutil_socket_t fd)
{
	struct sock *s = &u->sock[i];
	close_sock(s);
	s->fd = fd;
	s->ev = event_new(u->base, fd, EV_READ | EV_PERSIST, on_readable, s);
	if (!s->ev)
		bt_oom();
	event_add(s->ev, NULL);
}

/* A non-blocking datagram socket, bound to sa if it is given. -errno on failure. */
static evutil_socket_t open_socket(int family, const struct sockaddr *sa, socklen_t len)
{
	evutil_socket_t fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (family == AF_INET6) {
		/* The IPv4 socket has IPv4: no mapped addresses on this one. */
		int one = 1;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	}
	if (sa && bind(fd, sa, len) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

static int socket_for(struct bt_udp *u, int family)
{
	int i = family_index(family);
	if (i < 0)
		return -EAFNOSUPPORT;
	if (u->sock[i].fd >= 0)
		return u->sock[i].fd;
	evutil_socket_t fd = -1;
	if (u->source.ss_family == family) {
		/* Failing that, the system's choice. */
		fd = open_socket(family, (struct sockaddr *)&u->source, u->source_len);
	}
	if (fd < 0)
		fd = open_socket(family, NULL, 0);
	if (fd < 0)
		return fd;
	adopt(u, i, fd);
	return fd;
}

static void dispatch(struct bt_udp *u, const uint8_t *p, size_t n, const struct sockaddr *from,
		     socklen_t from_len)
{
	for (size_t i = 0; i < u->handler_count; i++) {
		const struct handler *h = &u->handlers[i];
		if (h->match(p, n)) {
			h->recv(h->arg, p, n, from, from_len);
			return;
		}
	}
	u->dropped++;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct sock *s = arg;
	struct bt_udp *u = s->u;
	for (int i = 0; i < BT_UDP_MAX_PER_WAKEUP && s->fd == fd; i++) {
		struct sockaddr_storage from;
		socklen_t from_len = sizeof from;
		ssize_t n =
			recvfrom(fd, u->buf, MAX_DATAGRAM, 0, (struct sockaddr *)&from, &from_len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return; /* EAGAIN, or an ICMP error queued on the socket: nothing to read */
		}
		dispatch(u, u->buf, (size_t)n, (struct sockaddr *)&from, from_len);
	}
}

struct bt_udp *bt_udp_new(struct event_base *base)
{
	struct bt_udp *u = bt_xcalloc(1, sizeof *u);
	u->base = base;
	u->buf = bt_xmalloc(MAX_DATAGRAM);
	for (int i = 0; i < 2; i++) {
		u->sock[i].u = u;
		u->sock[i].fd = -1;
	}
	return u;
}

void bt_udp_free(struct bt_udp *u)
{
	if (!u)
		return;
	for (int i = 0; i < 2; i++)
		close_sock(&u->sock[i]);
	free(u->buf);
	free(u);
}

int bt_udp_set_source(struct bt_udp *u, const char *ip)
{
	if (!ip || !*ip) {
		memset(&u->source, 0, sizeof u->source);
		u->source_len = 0;
		return 0;
	}
	struct sockaddr_storage ss;
	socklen_t len = bt_sockaddr_from_ip(ip, 0, &ss);
	if (!len)
		return -EINVAL;
	u->source = ss;
	u->source_len = len;
	return 0;
}

static int bind_one(struct bt_udp *u, const struct sockaddr_storage *ss, socklen_t len,
		    struct bt_err *err)
{
	evutil_socket_t fd = open_socket(ss->ss_family, (const struct sockaddr *)ss, len);
	if (fd < 0) {
		char name[80];
		bt_sockaddr_format((const struct sockaddr *)ss, name, sizeof name);
		return bt_err_set(err, (int)fd, "cannot bind UDP %s: %s", name, strerror((int)-fd));
	}
	adopt(u, family_index(ss->ss_family), fd);
	return 0;
}

int bt_udp_bind(struct bt_udp *u, const char *ip, uint16_t port, struct bt_err *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (ip) {
		len = bt_sockaddr_from_ip(ip, port, &ss);
		if (!len)
			return bt_err_set(err, -EINVAL,
					  "cannot bind UDP to '%s': not an IP address", ip);
		int rc = bind_one(u, &ss, len, err);
		if (rc == 0) {
			u->source = ss;
			u->source_len = len;
			((struct sockaddr_in *)&u->source)->sin_port = 0; /* same field in both */
		}
		return rc;
	}
	len = bt_sockaddr_from_ip("0.0.0.0", port, &ss);
	int rc = bind_one(u, &ss, len, err);
	if (rc)
		return rc;
	if (port == 0) {
		/* The IPv6 socket takes the same number, if that is free for it too. */
		struct sockaddr_storage got;
		socklen_t glen = sizeof got;
		getsockname(u->sock[0].fd, (struct sockaddr *)&got, &glen);
		port = ntohs(((struct sockaddr_in *)&got)->sin_port);
	}
	len = bt_sockaddr_from_ip("::", port, &ss);
	bind_one(u, &ss, len, NULL); /* no IPv6 here, or the port taken: IPv6 goes on demand */
	return 0;
}

int bt_udp_send(struct bt_udp *u, const void *data, size_t n, const struct sockaddr *to,
		socklen_t tolen)
{
	int fd = socket_for(u, to->sa_family);
	if (fd < 0)
		return fd;
	for (;;) {
		if (sendto(fd, data, n, 0, to, tolen) >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int bt_udp_add_handler(struct bt_udp *u, bt_udp_match_fn match, bt_udp_recv_fn recv, void *arg)
{
	if (u->handler_count == BT_UDP_MAX_HANDLERS)
		return -ENOSPC;
	u->handlers[u->handler_count++] = (struct handler){match, recv, arg};
	return 0;
}

void bt_udp_remove_handler(struct bt_udp *u, bt_udp_recv_fn recv, void *arg)
{
	for (size_t i = 0; i < u->handler_count; i++) {
		if (u->handlers[i].recv == recv && u->handlers[i].arg == arg) {
			memmove(&u->handlers[i], &u->handlers[i + 1],
				(u->handler_count - i - 1) * sizeof u->handlers[0]);
			u->handler_count--;
			return;
		}
	}
}

int bt_udp_local_addr(const struct bt_udp *u, int family, struct sockaddr_storage *out,
		      socklen_t *len_out)
{
	int i = family_index(family);
	if (i < 0)
		return -EAFNOSUPPORT;
	if (u->sock[i].fd < 0)
		return -ENOTCONN;
	*len_out = sizeof *out;
	if (getsockname(u->sock[i].fd, (struct sockaddr *)out, len_out) < 0)
		return -errno;
	return 0;
}

static bool is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

int bt_udp_source_for(const struct bt_udp *u, const struct sockaddr *to, socklen_t tolen,
		      struct sockaddr_storage *out, socklen_t *len_out)
{
	struct sockaddr_storage own;
	socklen_t own_len;
	bool have_own = bt_udp_local_addr(u, to->sa_family, &own, &own_len) == 0;
	if (have_own && !is_wildcard(&own)) {
		*out = own;
		*len_out = own_len;
		return 0;
	}
	/*
	 * The kernel picks the source of a connected socket as it would for our sendto. A socket
	 * still to be opened will be bound to the source address, so the throwaway one is too.
	 */
	const struct sockaddr *src = !have_own && u->source.ss_family == to->sa_family
					     ? (const struct sockaddr *)&u->source
					     : NULL;
	evutil_socket_t fd = open_socket(to->sa_family, src, u->source_len);
	if (fd < 0 && src)
		fd = open_socket(to->sa_family, NULL, 0);
	if (fd < 0)
		return (int)fd;
	int rc = 0;
	*len_out = sizeof *out;
	if (connect(fd, to, tolen) < 0 || getsockname(fd, (struct sockaddr *)out, len_out) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0) {
		/* The port is our real socket's (the same field in both families). */
		((struct sockaddr_in *)out)->sin_port =
			have_own ? ((struct sockaddr_in *)&own)->sin_port : 0;
	}
	return rc;
}

uint64_t bt_udp_dropped(const struct bt_udp *u)
{
	return u->dropped;
}
