#include "bt/session.h"

#include "bt/dht_net.h"

#include "bt/hash.h"
#include "bt/http.h"
#include "bt/log.h"
#include "bt/ratelimit.h"
#include "bt/router.h"
#include "bt/udp.h"
#include "bt/udp_tracker.h"

#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <signal.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <ifaddrs.h>
#include <unistd.h>

/* Incoming connections still sending their handshake: at most this many, each for this long. */
#define MAX_PENDING	64
#define PENDING_TIMEOUT 10.0
/*
 * Out of descriptors (EMFILE, ENFILE) or past the budget below, the listener stops accepting for
 * this long at a time; warned about at most once in WARN_INTERVAL.
 */
#define ACCEPT_PAUSE  1.0
#define WARN_INTERVAL 60.0

/* An accepted connection whose handshake the router has not judged yet. */
struct pending {
	struct bt_session *s;
	evutil_socket_t fd;
	struct event *ev;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	uint8_t buf[BT_HANDSHAKE_LEN];
	size_t got;
	double since;
	LIST_ENTRY(pending) link;
};

struct bt_session {
	struct event_base *base;
	struct evdns_base *dns;
	struct bt_http *http;
	struct bt_udp *udp_socket;
	struct bt_udp_tracker *udp;
	struct event *sigint, *sigterm, *deadline;
	enum bt_session_end end;
	struct evconnlistener *listener;
	struct event *resume; /* re-enables the listener after a pause */
	bool paused;	      /* accepting stopped for want of descriptors, not yet recovered */
	double warned;	      /* when the pause was last reported (0: never) */
	int spare_fd;	      /* /dev/null held open, given up to shed connections on EMFILE */
	uint16_t listen_port;
	struct sockaddr_storage listen_addr; /* as bound: a wildcard or one address */
	bool dual_stack;		     /* listening on [::] for IPv4 and IPv6 alike */
	struct sockaddr_storage *local;	     /* with a wildcard: this host's addresses */
	size_t nlocal;
	struct bt_router router;
	LIST_HEAD(, pending) pending;
	size_t npending;
	uint64_t rejected; /* incoming connections closed by the router */
	struct bt_rate_limit down_limit, up_limit;
	struct sockaddr_storage source; /* family 0: none */
	socklen_t source_len;
	char source_ip[64];
	uint8_t peer_id[BT_PEER_ID_LEN];
	struct bt_dht_net *dht; /* NULL: no DHT */
	struct bt_udp *dht_udp; /* the DHT's own port (--dht-port), else NULL */
};

static void drop_pending(struct pending *pd, bool close_fd);

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	struct bt_session *s = arg;
	s->end = BT_SESSION_INTERRUPTED;
	event_base_loopbreak(s->base);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bt_session *s = arg;
	s->end = BT_SESSION_DEADLINE;
	event_base_loopbreak(s->base);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bt_session *s = arg;
	if (s->listener)
		evconnlistener_enable(s->listener);
}

struct bt_session *bt_session_new(struct bt_err *err)
{
	struct bt_session *s = bt_xcalloc(1, sizeof *s);
	s->spare_fd = -1;
	s->base = event_base_new();
	if (!s->base) {
		free(s);
		bt_err_set(err, -ENOMEM, "cannot create the event loop");
		return NULL;
	}
	/* Without resolv.conf evdns still answers numeric hosts and /etc/hosts names. */
	s->dns = evdns_base_new(s->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
						 EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!s->dns)
		s->dns = evdns_base_new(s->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	s->http = bt_http_new(s->base);
	s->udp_socket = bt_udp_new(s->base);
	s->udp = bt_udp_tracker_new(s->base, s->dns, s->udp_socket);
	if (!s->dns || !s->http || !s->udp) {
		bt_session_free(s);
		bt_err_set(err, -ENOMEM, "cannot set up the resolver or libcurl");
		return NULL;
	}
	s->sigint = evsignal_new(s->base, SIGINT, on_signal, s);
	s->sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
	s->deadline = evtimer_new(s->base, on_deadline, s);
	s->resume = evtimer_new(s->base, on_resume, s);
	if (!s->sigint || !s->sigterm || !s->deadline || !s->resume)
		bt_oom();
	s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	/* A peer that hangs up must not kill us. */
	signal(SIGPIPE, SIG_IGN);

	bt_router_init(&s->router);
	LIST_INIT(&s->pending);
	bt_rate_limit_init(&s->down_limit, 0, bt_now());
	bt_rate_limit_init(&s->up_limit, 0, bt_now());
	memcpy(s->peer_id, BT_PEER_ID_PREFIX, 8);
	bt_random_bytes(s->peer_id + 8, 12);
	return s;
}

void bt_session_free(struct bt_session *s)
{
	if (!s)
		return;
	if (s->listener)
		evconnlistener_free(s->listener);
	while (!LIST_EMPTY(&s->pending))
		drop_pending(LIST_FIRST(&s->pending), true);
	bt_router_deinit(&s->router);
	bt_dht_net_free(s->dht);
	bt_udp_free(s->dht_udp);
	free(s->local);
	bt_udp_tracker_free(s->udp);
	bt_udp_free(s->udp_socket);
	bt_http_free(s->http);
	if (s->sigint)
		event_free(s->sigint);
	if (s->sigterm)
		event_free(s->sigterm);
	if (s->deadline)
		event_free(s->deadline);
	if (s->resume)
		event_free(s->resume);
	if (s->spare_fd >= 0)
		close(s->spare_fd);
	if (s->dns)
		evdns_base_free(s->dns, 0);
	event_base_free(s->base);
	free(s);
}

/* The port the shared UDP sockets are bound to (IPv4), or 0. */
static uint16_t udp_port(const struct bt_session *s)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (bt_udp_local_addr(s->udp_socket, AF_INET, &ss, &len) != 0)
		return 0;
	return ntohs(((const struct sockaddr_in *)&ss)->sin_port);
}

int bt_session_enable_dht(struct bt_session *s, const struct bt_session_dht_opts *o,
			  struct bt_err *err)
{
	struct bt_udp *udp = s->udp_socket;
	if (o->port && o->port != udp_port(s)) {
		/* Its own socket, on the port asked for. */
		s->dht_udp = bt_udp_new(s->base);
		const char *ip = s->source_ip[0] ? s->source_ip : NULL;
		int rc = bt_udp_bind(s->dht_udp, ip, o->port, err);
		if (rc) {
			bt_udp_free(s->dht_udp);
			s->dht_udp = NULL;
			return rc;
		}
		udp = s->dht_udp;
	}
	struct bt_dht_net_opts no = {.routers = o->routers,
				     .nrouters = o->nrouters,
				     .state_dir = o->state_dir,
				     .port = s->listen_port};
	s->dht = bt_dht_net_new(s->base, s->dns, udp, &no, err);
	return s->dht ? 0 : -ENOMEM;
}

struct bt_dht_net *bt_session_dht(struct bt_session *s)
{
	return s->dht;
}

struct event_base *bt_session_base(struct bt_session *s)
{
	return s->base;
}

struct evdns_base *bt_session_dns(struct bt_session *s)
{
	return s->dns;
}

struct bt_http *bt_session_http(struct bt_session *s)
{
	return s->http;
}

struct bt_udp_tracker *bt_session_udp(struct bt_session *s)
{
	return s->udp;
}

struct bt_udp *bt_session_udp_socket(struct bt_session *s)
{
	return s->udp_socket;
}

const uint8_t *bt_session_peer_id(const struct bt_session *s)
{
	return s->peer_id;
}

enum bt_session_end bt_session_run(struct bt_session *s, double deadline_s)
{
	s->end = BT_SESSION_STOPPED;
	event_add(s->sigint, NULL);
	event_add(s->sigterm, NULL);
	if (deadline_s > 0) {
		struct timeval tv;
		evtimer_add(s->deadline, bt_timeval(&tv, deadline_s));
	}
	event_base_dispatch(s->base);
	event_del(s->deadline);
	event_del(s->sigint);
	event_del(s->sigterm);
	return s->end;
}

void bt_session_stop(struct bt_session *s)
{
	s->end = BT_SESSION_STOPPED;
	event_base_loopbreak(s->base);
}

static void drop_pending(struct pending *pd, bool close_fd)
{
	LIST_REMOVE(pd, link);
	pd->s->npending--;
	event_free(pd->ev);
	if (close_fd)
		close(pd->fd);
	free(pd);
}

static void reject(struct pending *pd, const char *why)
{
	char name[64], subject[80];
	bt_sockaddr_format((struct sockaddr *)&pd->addr, name, sizeof name);
	snprintf(subject, sizeof subject, "peer %s", name);
	bt_log(BT_LOG_DEBUG, subject, "closed: %s", why);
	pd->s->rejected++;
	drop_pending(pd, true);
}

/* Reads the handshake of an accepted connection, exactly its 68 bytes, and routes it. */
static void on_pending(evutil_socket_t fd, short what, void *arg)
{
	struct pending *pd = arg;
	if ((what & EV_TIMEOUT) || bt_now() - pd->since > PENDING_TIMEOUT) {
		reject(pd, "no handshake in time");
		return;
	}
	ssize_t n = recv(fd, pd->buf + pd->got, sizeof pd->buf - pd->got, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		reject(pd, n == 0 ? "closed before its handshake" : strerror(errno));
		return;
	}
	pd->got += (size_t)n;
	/* libevent restarts a persistent event's timeout at each read: keep the deadline fixed. */
	struct timeval tv;
	event_add(pd->ev, bt_timeval(&tv, PENDING_TIMEOUT - (bt_now() - pd->since)));
	struct bt_handshake h;
	const struct bt_router_entry *e;
	struct bt_err err;
	switch (bt_router_route(&pd->s->router, pd->buf, pd->got, &h, &e, &err)) {
	case BT_ROUTE_NEED_MORE:
		return;
	case BT_ROUTE_REJECT:
		reject(pd, err.msg);
		return;
	case BT_ROUTE_OK:
		break;
	}
	struct sockaddr_storage addr = pd->addr;
	socklen_t len = pd->addr_len;
	bt_incoming_fn fn = e->fn;
	void *fn_arg = e->arg;
	drop_pending(pd, false);
	fn(fn_arg, fd, (struct sockaddr *)&addr, len, &h);
}

/*
 * Stops accepting for ACCEPT_PAUSE: with no descriptor to accept into, libevent's listener would
 * otherwise be woken for the same waiting connection at once, forever (a busy loop).
 */
static void pause_accepting(struct bt_session *s, const char *why)
{
	evconnlistener_disable(s->listener);
	struct timeval tv;
	evtimer_add(s->resume, bt_timeval(&tv, ACCEPT_PAUSE));
	if (s->paused)
		return;
	s->paused = true;
	double now = bt_now();
	if (s->warned == 0 || now - s->warned >= WARN_INTERVAL) {
		s->warned = now;
		bt_log(BT_LOG_WARN, "session",
		       "%s: not accepting peers for a while (trying again every %.0f s)", why,
		       ACCEPT_PAUSE);
	}
}

/*
 * The descriptors peers may take: accepted sockets must stay below the soft RLIMIT_NOFILE less a
 * reserve (an eighth, 16 to 256), so storage, trackers and the resolver can still open files and
 * sockets when peers pile up. The kernel hands out the lowest free descriptor, so an accepted
 * descriptor at or above the line means fewer than the reserve are left.
 */
static bool within_budget(evutil_socket_t fd)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > (rlim_t)INT32_MAX)
		return true;
	rlim_t reserve = rl.rlim_cur / 8;
	reserve = reserve < 16 ? 16 : reserve > 256 ? 256 : reserve;
	return rl.rlim_cur > reserve && (rlim_t)fd < rl.rlim_cur - reserve;
}

/*
 * accept() failed. On EMFILE/ENFILE, the classic trick: give up the spare descriptor to accept and
 * close what waits in the backlog (those peers learn at once that we are full rather than hang),
 * take the spare back, and pause. Any other persistent error pauses too, so nothing spins.
 */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct bt_session *s = arg;
	int e = EVUTIL_SOCKET_ERROR();
	if ((e == EMFILE || e == ENFILE) && s->spare_fd >= 0) {
		close(s->spare_fd);
		s->spare_fd = -1;
		for (int i = 0; i < MAX_PENDING; i++) {
			int fd = accept(evconnlistener_get_fd(l), NULL, NULL);
			if (fd < 0)
				break;
			close(fd);
			s->rejected++;
		}
		s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	char why[96];
	snprintf(why, sizeof why, "cannot accept connections: %s", strerror(e));
	pause_accepting(s, why);
}

/*
 * An IPv4 peer on the dual-stack listener arrives as ::ffff:a.b.c.d. Torrents, the address book
 * and the logs see it as the plain IPv4 address it is, the same key a tracker's entry for it has.
 */
static socklen_t unmap(const struct sockaddr *sa, socklen_t len, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof *out);
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof *s6 &&
	    IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)out;
		s4->sin_family = AF_INET;
		s4->sin_port = s6->sin6_port;
		memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
		return sizeof *s4;
	}
	memcpy(out, sa, len);
	return len;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	(void)l;
	struct bt_session *s = arg;
	if (!within_budget(fd)) {
		s->rejected++;
		close(fd);
		pause_accepting(s, "too few file descriptors left for more peers");
		return;
	}
	if (s->paused) {
		s->paused = false;
		bt_log(BT_LOG_DEBUG, "session", "accepting peers again");
	}
	if (s->npending >= MAX_PENDING || (size_t)len > sizeof(struct sockaddr_storage)) {
		s->rejected++;
		close(fd);
		return;
	}
	evutil_make_socket_nonblocking(fd);
	struct pending *pd = bt_xcalloc(1, sizeof *pd);
	pd->s = s;
	pd->fd = fd;
	pd->addr_len = unmap(sa, (socklen_t)len, &pd->addr);
	pd->since = bt_now();
	pd->ev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_pending, pd);
	if (!pd->ev)
		bt_oom();
	struct timeval tv;
	event_add(pd->ev, bt_timeval(&tv, PENDING_TIMEOUT));
	LIST_INSERT_HEAD(&s->pending, pd, link);
	s->npending++;
}

static struct evconnlistener *bind_port(struct bt_session *s, const struct sockaddr *sa,
					socklen_t len)
{
	struct evconnlistener *l = evconnlistener_new_bind(
		s->base, on_accept, s,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE, 64, sa,
		(int)len);
	if (l)
		evconnlistener_set_error_cb(l, on_accept_error);
	return l;
}

/*
 * The wildcard listener: one IPv6 socket with IPV6_V6ONLY off, so IPv4 peers (as ::ffff:a.b.c.d,
 * unmapped in on_accept) and IPv6 peers reach the same port. errno is kept for the caller:
 * EAFNOSUPPORT means this host has no IPv6 and the caller falls back to 0.0.0.0.
 */
static struct evconnlistener *bind_dual_stack(struct bt_session *s, uint16_t port)
{
	evutil_socket_t fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	int off = 0, on = 1;
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
	    bind(fd, (struct sockaddr *)&sin6, sizeof sin6) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	struct evconnlistener *l = evconnlistener_new(
		s->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 64, fd);
	if (!l) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	evconnlistener_set_error_cb(l, on_accept_error);
	return l;
}

static const void *ip_of(const struct sockaddr *sa, size_t *len_out)
{
	if (sa->sa_family == AF_INET) {
		*len_out = 4;
		return &((const struct sockaddr_in *)sa)->sin_addr;
	}
	if (sa->sa_family == AF_INET6) {
		*len_out = 16;
		return &((const struct sockaddr_in6 *)sa)->sin6_addr;
	}
	*len_out = 0;
	return NULL;
}

static uint16_t port_of(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

static bool same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
	size_t la, lb;
	const void *pa = ip_of(a, &la), *pb = ip_of(b, &lb);
	return pa && a->sa_family == b->sa_family && la == lb && memcmp(pa, pb, la) == 0;
}

static bool is_wildcard(const struct sockaddr *sa)
{
	static const uint8_t zero[16];
	size_t len;
	const void *ip = ip_of(sa, &len);
	return ip && memcmp(ip, zero, len) == 0;
}

/* With a wildcard listener, every address of this host reaches us on our port. */
static void learn_local_addresses(struct bt_session *s)
{
	struct ifaddrs *ifa;
	if (getifaddrs(&ifa) != 0)
		return;
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr ||
		    (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
			continue;
		s->local = bt_xreallocarray(s->local, s->nlocal + 1, sizeof *s->local);
		memset(&s->local[s->nlocal], 0, sizeof *s->local);
		memcpy(&s->local[s->nlocal++], i->ifa_addr,
		       i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
							 : sizeof(struct sockaddr_in6));
	}
	freeifaddrs(ifa);
}

/* Binds the TCP listener on one port: the dual-stack wildcard, or ss (an address, or 0.0.0.0). */
static struct evconnlistener *listen_on(struct bt_session *s, bool dual,
					struct sockaddr_storage *ss, socklen_t len, uint16_t port)
{
	if (dual)
		return bind_dual_stack(s, port);
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	return bind_port(s, (struct sockaddr *)ss, len);
}

int bt_session_listen(struct bt_session *s, const char *ip, uint16_t port, struct bt_err *err)
{
	struct sockaddr_storage ss;
	socklen_t len = bt_sockaddr_from_ip(ip ? ip : "0.0.0.0", 0, &ss);
	if (!len)
		return bt_err_set(err, -EINVAL, "cannot listen on '%s': not an IP address", ip);
	/* Every address means both families on the one port; a given address is just that one. */
	bool dual = ip == NULL;
	uint16_t first = port ? port : 6881, last = port ? port : 6889;
	bool udp_bound = false;
	for (uint32_t p = first; p <= last && !s->listener; p++) {
		s->listener = listen_on(s, dual, &ss, len, (uint16_t)p);
		if (!s->listener && dual && errno == EAFNOSUPPORT) {
			dual = false; /* a kernel without IPv6: IPv4 only, as before */
			s->listener = listen_on(s, dual, &ss, len, (uint16_t)p);
		}
		/* A port of our choosing should be free for the UDP sockets too. */
		udp_bound = s->listener && bt_udp_bind(s->udp_socket, ip, (uint16_t)p, NULL) == 0;
		if (s->listener && !udp_bound && !port) {
			evconnlistener_free(s->listener);
			s->listener = NULL;
		}
	}
	if (!s->listener && !port)
		s->listener = listen_on(s, dual, &ss, len, 0);
	if (!s->listener)
		return bt_err_set(err, -errno, "cannot listen on %s port %u: %s",
				  ip ? ip : "every address", port, strerror(errno));
	s->dual_stack = dual;
	struct sockaddr_storage bound;
	socklen_t blen = sizeof bound;
	getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&bound, &blen);
	s->listen_addr = bound;
	if (is_wildcard((struct sockaddr *)&bound))
		learn_local_addresses(s);
	s->listen_port =
		ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
						 : ((struct sockaddr_in6 *)&bound)->sin6_port);
	struct bt_err uerr;
	if (!udp_bound && bt_udp_bind(s->udp_socket, ip, s->listen_port, &uerr)) {
		/* Announces still work from an ephemeral port; only the shared port is lost. */
		bt_log(BT_LOG_DEBUG, "session", "%s; UDP goes out from an ephemeral port",
		       uerr.msg);
	}
	return 0;
}

bool bt_session_is_self(const struct bt_session *s, const struct sockaddr *sa)
{
	struct sockaddr_storage plain;
	socklen_t plen = sa->sa_family == AF_INET6  ? sizeof(struct sockaddr_in6)
			 : sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
						    : 0;
	if (!s->listener || !plen)
		return false;
	unmap(sa, plen, &plain);
	sa = (const struct sockaddr *)&plain;
	if (port_of(sa) != s->listen_port)
		return false;
	const struct sockaddr *bound = (const struct sockaddr *)&s->listen_addr;
	/* The dual-stack listener takes both families; any other takes its own only. */
	if (bound->sa_family != sa->sa_family && !s->dual_stack)
		return false;
	if (!is_wildcard(bound))
		return same_ip(bound, sa);
	for (size_t i = 0; i < s->nlocal; i++)
		if (same_ip((const struct sockaddr *)&s->local[i], sa))
			return true;
	return false;
}

uint16_t bt_session_listen_port(const struct bt_session *s)
{
	return s->listen_port;
}

int bt_session_register(struct bt_session *s, const uint8_t info_hash[BT_HASH_LEN],
			bt_incoming_fn fn, void *arg)
{
	return bt_router_add(&s->router, info_hash, fn, arg);
}

void bt_session_unregister(struct bt_session *s, const uint8_t info_hash[BT_HASH_LEN])
{
	bt_router_remove(&s->router, info_hash);
}

uint64_t bt_session_rejected(const struct bt_session *s)
{
	return s->rejected;
}

void bt_session_set_limits(struct bt_session *s, double max_down, double max_up)
{
	bt_rate_limit_init(&s->down_limit, max_down, bt_now());
	bt_rate_limit_init(&s->up_limit, max_up, bt_now());
}

struct bt_rate_limit *bt_session_down_limit(struct bt_session *s)
{
	return &s->down_limit;
}

struct bt_rate_limit *bt_session_up_limit(struct bt_session *s)
{
	return &s->up_limit;
}

int bt_session_set_source(struct bt_session *s, const char *ip, struct bt_err *err)
{
	socklen_t len = bt_sockaddr_from_ip(ip, 0, &s->source);
	if (!len)
		return bt_err_set(err, -EINVAL, "'%s' is not an IP address", ip);
	s->source_len = len;
	snprintf(s->source_ip, sizeof s->source_ip, "%s", ip);
	bt_udp_set_source(s->udp_socket, ip);
	return 0;
}

const struct sockaddr *bt_session_source(const struct bt_session *s, socklen_t *len_out)
{
	*len_out = s->source_len;
	return s->source_len ? (const struct sockaddr *)&s->source : NULL;
}

const char *bt_session_source_ip(const struct bt_session *s)
{
	return s->source_len ? s->source_ip : NULL;
}
