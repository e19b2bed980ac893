#include "bt/udp_tracker.h"

#include "bt/hash.h"
#include "bt/udp.h"

#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_TRIES	  9    /* first send and 8 retransmissions: 15·2⁸ s at the last */
#define CONNECTION_ID_TTL 60.0 /* seconds a connection id may be used (BEP 15) */
#define MAX_CACHE	  64

enum phase {
	RESOLVING,
	CONNECTING,
	ANNOUNCING,
};

struct cached_id {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	uint64_t id;
	double obtained;
};

struct bt_udp_tracker {
	struct event_base *base;
	struct evdns_base *dns;
	struct bt_udp *udp;
	struct bt_udp_req *reqs;
	struct cached_id cache[MAX_CACHE];
	size_t cache_count;
	int retry_base_ms;
};

struct bt_udp_req {
	struct bt_udp_tracker *u;
	struct bt_udp_req *prev, *next;
	char host[256];
	char port[8];
	enum phase phase;
	struct evdns_getaddrinfo_request *dns_req;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	uint32_t tid;
	uint64_t connection_id;
	int tries;
	struct event *timer;
	struct bt_announce_req req; /* a scrape uses only its info hash */
	bool scrape;		    /* BEP 15 action 2 instead of an announce */
	bt_udp_done_fn done;
	bt_udp_scrape_fn scrape_done;
	void *arg;
};

static uint32_t random_u32(void)
{
	uint32_t v;
	bt_random_bytes(&v, sizeof v);
	return v;
}

static bool same_addr(const struct sockaddr_storage *a, socklen_t alen,
		      const struct sockaddr_storage *b, socklen_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

static void unlink_req(struct bt_udp_req *r)
{
	struct bt_udp_tracker *u = r->u;
	if (r->prev)
		r->prev->next = r->next;
	else
		u->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (r->dns_req)
		evdns_getaddrinfo_cancel(r->dns_req);
	event_free(r->timer);
}

/* Ends a request: unlinks and frees it, then tells the caller. */
static void finish(struct bt_udp_req *r, const struct bt_announce_reply *reply, int error,
		   const char *message)
{
	bt_udp_done_fn done = r->done;
	bt_udp_scrape_fn scrape_done = r->scrape_done;
	void *arg = r->arg;
	unlink_req(r);
	free(r);
	/* A scrape that failed before its reply (resolver, timeout) ends here too. */
	if (scrape_done)
		scrape_done(NULL, error, message, arg);
	else
		done(reply, error, message, arg);
}

static void finish_scrape(struct bt_udp_req *r, const struct bt_scrape_reply *reply, int error,
			  const char *message)
{
	bt_udp_scrape_fn done = r->scrape_done;
	void *arg = r->arg;
	unlink_req(r);
	free(r);
	done(reply, error, message, arg);
}

static const struct cached_id *cached(struct bt_udp_tracker *u, const struct bt_udp_req *r)
{
	double now = bt_now();
	for (size_t i = 0; i < u->cache_count; i++)
		if (same_addr(&u->cache[i].addr, u->cache[i].addr_len, &r->addr, r->addr_len))
			return now - u->cache[i].obtained < CONNECTION_ID_TTL ? &u->cache[i] : NULL;
	return NULL;
}

static void remember(struct bt_udp_tracker *u, const struct bt_udp_req *r, uint64_t id)
{
	size_t i;
	for (i = 0; i < u->cache_count; i++)
		if (same_addr(&u->cache[i].addr, u->cache[i].addr_len, &r->addr, r->addr_len))
			break;
	if (i == u->cache_count) {
		if (u->cache_count < MAX_CACHE)
			u->cache_count++;
		else
			i = 0; /* full: reuse the oldest slot we know of */
	}
	u->cache[i] = (struct cached_id){
		.addr = r->addr, .addr_len = r->addr_len, .id = id, .obtained = bt_now()};
}

/* Sends the packet for the current phase and arms the retransmission timer. */
static void send_current(struct bt_udp_req *r)
{
	struct bt_udp_tracker *u = r->u;
	if (r->phase == ANNOUNCING || r->tries == 0) {
		const struct cached_id *c = cached(u, r);
		if (c) {
			r->phase = ANNOUNCING;
			r->connection_id = c->id;
		} else {
			r->phase = CONNECTING;
		}
	}
	if (r->tries >= MAX_TRIES) {
		char msg[64];
		snprintf(msg, sizeof msg, "no reply after %d tries", MAX_TRIES);
		finish(r, NULL, -ETIMEDOUT, msg);
		return;
	}
	r->tid = random_u32();
	uint8_t pkt[BT_UDP_ANNOUNCE_LEN];
	size_t len;
	if (r->phase == CONNECTING) {
		bt_udp_connect_request(pkt, r->tid);
		len = BT_UDP_CONNECT_LEN;
	} else if (r->scrape) {
		bt_udp_scrape_request(pkt, r->connection_id, r->tid, r->req.info_hash);
		len = BT_UDP_SCRAPE_LEN;
	} else {
		bt_udp_announce_request(pkt, r->connection_id, r->tid, &r->req);
		len = BT_UDP_ANNOUNCE_LEN;
	}
	/* An unreachable network or a full buffer: the retry timer tries again. */
	bt_udp_send(u->udp, pkt, len, (struct sockaddr *)&r->addr, r->addr_len);
	long ms = (long)u->retry_base_ms << r->tries;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	r->tries++;
	evtimer_add(r->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bt_udp_req *r = arg;
	if (r->phase == RESOLVING)
		return; /* the resolver's callback moves us on */
	send_current(r);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct bt_udp_req *r = arg;
	r->dns_req = NULL;
	if (result == EVUTIL_EAI_CANCEL)
		return;
	if (result != 0 || !res) {
		char msg[320];
		snprintf(msg, sizeof msg, "cannot resolve '%s': %s", r->host,
			 evutil_gai_strerror(result));
		if (res)
			evutil_freeaddrinfo(res);
		finish(r, NULL, -EHOSTUNREACH, msg);
		return;
	}
	memcpy(&r->addr, res->ai_addr, res->ai_addrlen);
	r->addr_len = (socklen_t)res->ai_addrlen;
	evutil_freeaddrinfo(res);
	r->phase = CONNECTING;
	send_current(r);
}

/* The first step runs from the loop, so that no callback ever runs inside bt_udp_announce. */
static void on_start(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bt_udp_req *r = arg;
	evtimer_assign(r->timer, r->u->base, on_timer, r);
	struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM};
	r->dns_req = evdns_getaddrinfo(r->u->dns, r->host, r->port, &hints, on_resolved, r);
}

/* Our own entry in the tracker's list: where the announce left from, and the port announced. */
static void set_self(struct bt_udp_tracker *u, const struct bt_udp_req *r,
		     struct bt_announce_reply *reply)
{
	struct sockaddr_storage local;
	socklen_t len;
	if (bt_udp_source_for(u->udp, (const struct sockaddr *)&r->addr, r->addr_len, &local,
			      &len) == 0 &&
	    bt_peer_addr_from_sockaddr((const struct sockaddr *)&local, &reply->self))
		reply->self.port = r->req.port;
}

static void handle_scrape(struct bt_udp_req *r, const uint8_t *p, size_t n)
{
	struct bt_scrape_reply reply;
	switch (bt_udp_parse_scrape(p, n, r->tid, &reply)) {
	case BT_UDP_IGNORE:
		return;
	case BT_UDP_FAILED: {
		char msg[300];
		snprintf(msg, sizeof msg, "tracker error: %.*s", 250, reply.failure);
		finish_scrape(r, &reply, -EPROTO, msg);
		break;
	}
	case BT_UDP_OK:
		finish_scrape(r, &reply, 0, NULL);
		break;
	}
	bt_scrape_reply_deinit(&reply);
}

static void handle_datagram(struct bt_udp_tracker *u, const uint8_t *p, size_t n,
			    const struct sockaddr_storage *from, socklen_t from_len)
{
	if (n < 8)
		return;
	uint32_t tid = bt_load_be32(p + 4);
	struct bt_udp_req *r;
	for (r = u->reqs; r; r = r->next)
		if (r->phase != RESOLVING && r->tid == tid &&
		    same_addr(&r->addr, r->addr_len, from, from_len))
			break;
	if (!r)
		return;
	if (r->scrape && r->phase == ANNOUNCING) {
		handle_scrape(r, p, n);
		return;
	}
	struct bt_announce_reply reply;
	uint64_t cid;
	bool ipv6 = r->addr.ss_family == AF_INET6;
	enum bt_udp_action want = r->phase == CONNECTING ? BT_UDP_CONNECT : BT_UDP_ANNOUNCE;
	switch (bt_udp_parse_reply(p, n, r->tid, want, ipv6, &cid, &reply)) {
	case BT_UDP_IGNORE:
		return;
	case BT_UDP_FAILED: {
		char msg[300];
		snprintf(msg, sizeof msg, "tracker error: %.*s", 250, reply.failure);
		finish(r, &reply, -EPROTO, msg);
		bt_announce_reply_deinit(&reply);
		return;
	}
	case BT_UDP_OK:
		break;
	}
	if (want == BT_UDP_CONNECT) {
		remember(u, r, cid);
		r->connection_id = cid;
		r->phase = ANNOUNCING;
		r->tries = 0;
		evtimer_del(r->timer);
		send_current(r);
		return;
	}
	set_self(u, r, &reply);
	finish(r, &reply, 0, NULL);
	bt_announce_reply_deinit(&reply);
}

static void on_datagram(void *arg, const uint8_t *p, size_t n, const struct sockaddr *from,
			socklen_t from_len)
{
	struct sockaddr_storage ss;
	if (from_len > sizeof ss)
		return;
	memset(&ss, 0, sizeof ss);
	memcpy(&ss, from, from_len);
	handle_datagram(arg, p, n, &ss, from_len);
}

struct bt_udp_tracker *bt_udp_tracker_new(struct event_base *base, struct evdns_base *dns,
					  struct bt_udp *udp)
{
	struct bt_udp_tracker *u = bt_xcalloc(1, sizeof *u);
	u->base = base;
	u->dns = dns;
	u->udp = udp;
	u->retry_base_ms = 15000;
	if (bt_udp_add_handler(udp, bt_udp_is_tracker_reply, on_datagram, u)) {
		free(u);
		return NULL;
	}
	return u;
}

void bt_udp_tracker_free(struct bt_udp_tracker *u)
{
	if (!u)
		return;
	while (u->reqs)
		bt_udp_cancel(u->reqs);
	bt_udp_remove_handler(u->udp, on_datagram, u);
	free(u);
}

void bt_udp_tracker_set_retry_base(struct bt_udp_tracker *u, int ms)
{
	u->retry_base_ms = ms > 0 ? ms : 15000;
}

static struct bt_udp_req *start(struct bt_udp_tracker *u, const char *url,
				const struct bt_announce_req *req, void *arg, struct bt_err *err)
{
	struct bt_udp_req *r = bt_xcalloc(1, sizeof *r);
	if (bt_url_host_port(url, r->host, sizeof r->host, r->port, sizeof r->port) ||
	    !r->port[0]) {
		free(r);
		bt_err_set(err, -EINVAL, "not a udp://host:port URL");
		return NULL;
	}
	r->u = u;
	r->req = *req;
	r->arg = arg;
	r->phase = RESOLVING;
	r->timer = evtimer_new(u->base, on_start, r);
	if (!r->timer)
		bt_oom();
	r->next = u->reqs;
	if (u->reqs)
		u->reqs->prev = r;
	u->reqs = r;
	struct timeval zero = {0, 0};
	evtimer_add(r->timer, &zero);
	return r;
}

struct bt_udp_req *bt_udp_announce(struct bt_udp_tracker *u, const char *url,
				   const struct bt_announce_req *req, bt_udp_done_fn done,
				   void *arg, struct bt_err *err)
{
	struct bt_udp_req *r = start(u, url, req, arg, err);
	if (r)
		r->done = done;
	return r;
}

struct bt_udp_req *bt_udp_scrape(struct bt_udp_tracker *u, const char *url,
				 const uint8_t info_hash[BT_HASH_LEN], bt_udp_scrape_fn done,
				 void *arg, struct bt_err *err)
{
	struct bt_announce_req req = {0};
	memcpy(req.info_hash, info_hash, BT_HASH_LEN);
	struct bt_udp_req *r = start(u, url, &req, arg, err);
	if (r) {
		r->scrape = true;
		r->scrape_done = done;
	}
	return r;
}

void bt_udp_cancel(struct bt_udp_req *r)
{
	if (!r)
		return;
	unlink_req(r);
	free(r);
}
