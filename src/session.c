#include "bt/session.h"

#include "bt/hash.h"
#include "bt/http.h"
#include "bt/log.h"
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
#include <stdlib.h>
#include <string.h>

struct bt_session {
	struct event_base *base;
	struct evdns_base *dns;
	struct bt_http *http;
	struct bt_udp *udp_socket;
	struct bt_udp_tracker *udp;
	struct event *sigint, *sigterm, *deadline;
	enum bt_session_end end;
	struct evconnlistener *listener;
	uint16_t listen_port;
	bt_accept_fn accept_fn;
	void *accept_arg;
	uint8_t peer_id[BT_PEER_ID_LEN];
};

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

struct bt_session *bt_session_new(struct bt_err *err)
{
	struct bt_session *s = bt_xcalloc(1, sizeof *s);
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
	if (!s->sigint || !s->sigterm || !s->deadline)
		bt_oom();
	/* A peer that hangs up must not kill us. */
	signal(SIGPIPE, SIG_IGN);

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
	bt_udp_tracker_free(s->udp);
	bt_udp_free(s->udp_socket);
	bt_http_free(s->http);
	if (s->sigint)
		event_free(s->sigint);
	if (s->sigterm)
		event_free(s->sigterm);
	if (s->deadline)
		event_free(s->deadline);
	if (s->dns)
		evdns_base_free(s->dns, 0);
	event_base_free(s->base);
	free(s);
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

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	(void)l;
	struct bt_session *s = arg;
	s->accept_fn(s->accept_arg, fd, sa, (socklen_t)len);
}

static struct evconnlistener *bind_port(struct bt_session *s, const struct sockaddr *sa,
					socklen_t len)
{
	return evconnlistener_new_bind(s->base, on_accept, s,
				       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
					       LEV_OPT_REUSEABLE,
				       64, sa, (int)len);
}

int bt_session_listen(struct bt_session *s, const char *ip, uint16_t port, bt_accept_fn fn,
		      void *arg, struct bt_err *err)
{
	struct sockaddr_storage ss;
	socklen_t len = bt_sockaddr_from_ip(ip ? ip : "0.0.0.0", 0, &ss);
	if (!len)
		return bt_err_set(err, -EINVAL, "cannot listen on '%s': not an IP address", ip);
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	s->accept_fn = fn;
	s->accept_arg = arg;
	uint16_t first = port ? port : 6881, last = port ? port : 6889;
	bool udp_bound = false;
	for (uint32_t p = first; p <= last && !s->listener; p++) {
		if (ss.ss_family == AF_INET)
			s4->sin_port = htons((uint16_t)p);
		else
			s6->sin6_port = htons((uint16_t)p);
		s->listener = bind_port(s, (struct sockaddr *)&ss, len);
		/* A port of our choosing should be free for the UDP sockets too. */
		udp_bound = s->listener && bt_udp_bind(s->udp_socket, ip, (uint16_t)p, NULL) == 0;
		if (s->listener && !udp_bound && !port) {
			evconnlistener_free(s->listener);
			s->listener = NULL;
		}
	}
	if (!s->listener && !port) {
		s4->sin_port = 0; /* the same field for both families */
		s->listener = bind_port(s, (struct sockaddr *)&ss, len);
	}
	if (!s->listener)
		return bt_err_set(err, -errno, "cannot listen on %s port %u: %s",
				  ip ? ip : "every address", port, strerror(errno));
	struct sockaddr_storage bound;
	socklen_t blen = sizeof bound;
	getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&bound, &blen);
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

uint16_t bt_session_listen_port(const struct bt_session *s)
{
	return s->listen_port;
}
