#include "bt/announce.h"

#include "bt/http.h"
#include "bt/udp_tracker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Tracker replies are small; a cap well above any honest reply (thousands of peers). */
#define MAX_REPLY ((size_t)2 << 20)

struct bt_announce {
	char *url;
	uint16_t port; /* the port announced: our own entry's */
	struct bt_http_req *http;
	struct bt_udp_req *udp;
	bt_announce_done_fn done;
	void *arg;
};

static void finish(struct bt_announce *a, const struct bt_announce_reply *reply, const char *error)
{
	a->done(a->url, reply, error, a->arg);
	free(a->url);
	free(a);
}

static void report(struct bt_announce *a, const struct bt_announce_reply *reply)
{
	if (reply->failure) {
		char msg[300];
		snprintf(msg, sizeof msg, "failure reason: %.250s", reply->failure);
		finish(a, reply, msg);
	} else {
		finish(a, reply, NULL);
	}
}

/* Our own entry in the tracker's list: where the request left from, and the port announced. */
static void set_self(struct bt_announce_reply *reply, const char *local_ip, uint16_t port)
{
	struct sockaddr_storage ss;
	if (local_ip && bt_sockaddr_from_ip(local_ip, port, &ss))
		bt_peer_addr_from_sockaddr((struct sockaddr *)&ss, &reply->self);
}

/*
 * Our global IPv6 address for BEP 7's `ipv6=`, or false when we have none worth announcing.
 * With a source address (--listen) it is that address, if it is a global IPv6 one: an IPv4 or
 * loopback source means we listen there only. Otherwise the kernel is asked which address it
 * would send from to a global destination (connecting a UDP socket sends nothing); on a host
 * with only loopback, link-local or unique-local IPv6 there is no route or no global source, and
 * nothing is announced.
 */
static bool global_ipv6(const char *source_ip, uint8_t out[16])
{
	if (source_ip) {
		struct in6_addr a;
		if (inet_pton(AF_INET6, source_ip, &a) != 1 || !bt_ipv6_is_global(a.s6_addr))
			return false;
		memcpy(out, a.s6_addr, 16);
		return true;
	}
	int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	/* 2001:4860:4860::8888, a public resolver's address; any global one would do. */
	struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(53)};
	static const uint8_t probe[16] = {0x20, 0x01, 0x48, 0x60, 0x48, 0x60, 0,    0,
					  0,	0,    0,    0,	  0,	0,    0x88, 0x88};
	memcpy(&to.sin6_addr, probe, 16);
	struct sockaddr_in6 local;
	socklen_t len = sizeof local;
	bool ok = connect(fd, (struct sockaddr *)&to, sizeof to) == 0 &&
		  getsockname(fd, (struct sockaddr *)&local, &len) == 0 &&
		  local.sin6_family == AF_INET6 && bt_ipv6_is_global(local.sin6_addr.s6_addr);
	close(fd);
	if (ok)
		memcpy(out, &local.sin6_addr, 16);
	return ok;
}

static void on_http_done(const struct bt_http_response *res, void *arg)
{
	struct bt_announce *a = arg;
	a->http = NULL;
	struct bt_announce_reply reply;
	struct bt_err err;
	/* A tracker may explain a refusal in a bencoded body even with an error status. */
	if (res->error && res->error != -EPROTO) {
		finish(a, NULL, res->message);
		return;
	}
	if (bt_tracker_parse_http(res->body, res->len, &reply, &err)) {
		char msg[320];
		if (res->error)
			snprintf(msg, sizeof msg, "%s", res->message);
		else
			snprintf(msg, sizeof msg, "bad reply: %s", err.msg);
		finish(a, NULL, msg);
		return;
	}
	set_self(&reply, res->local_ip, a->port);
	if (res->error && !reply.failure) {
		finish(a, NULL, res->message);
	} else {
		report(a, &reply);
	}
	bt_announce_reply_deinit(&reply);
}

static void on_udp_done(const struct bt_announce_reply *reply, int error, const char *message,
			void *arg)
{
	struct bt_announce *a = arg;
	a->udp = NULL;
	if (reply)
		report(a, reply);
	else
		finish(a, NULL, error ? message : "no reply");
}

struct bt_announce *bt_announce_start(const struct bt_announce_io *io, const char *url,
				      const struct bt_announce_req *req, long timeout_ms,
				      bt_announce_done_fn done, void *arg, struct bt_err *err)
{
	struct bt_announce *a = bt_xcalloc(1, sizeof *a);
	a->url = bt_xstrdup(url);
	a->port = req->port;
	a->done = done;
	a->arg = arg;
	if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
		struct bt_announce_req with6 = *req;
		if (!with6.has_ipv6)
			with6.has_ipv6 = global_ipv6(io->source_ip, with6.ipv6);
		char *full = bt_tracker_http_url(url, &with6);
		struct bt_http_opts opts = {.max_body = MAX_REPLY,
					    .timeout_ms = timeout_ms,
					    .source_ip = io->source_ip};
		a->http = bt_http_get(io->http, full, &opts, on_http_done, a);
		free(full);
	} else if (strncasecmp(url, "udp://", 6) == 0) {
		a->udp = bt_udp_announce(io->udp, url, req, on_udp_done, a, err);
		if (!a->udp) {
			free(a->url);
			free(a);
			return NULL;
		}
	}
	if (!a->http && !a->udp) {
		bt_err_set(err, -EPROTONOSUPPORT, "unsupported tracker URL scheme");
		free(a->url);
		free(a);
		return NULL;
	}
	return a;
}

void bt_announce_cancel(struct bt_announce *a)
{
	if (!a)
		return;
	bt_http_cancel(a->http);
	bt_udp_cancel(a->udp);
	free(a->url);
	free(a);
}
