#include "bt/dht_net.h"

#include "bt/hash.h"
#include "bt/krpc.h"
#include "bt/log.h"
#include "bt/udp.h"

#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const bt_dht_default_routers[BT_DHT_DEFAULT_ROUTERS] = {
	"router.bittorrent.com:6881",
	"dht.transmissionbt.com:6881",
	"router.utorrent.com:6881",
	"dht.libtorrent.org:25401",
};

#define MAX_SUBS 256

/* One torrent's subscription. */
struct sub {
	uint8_t info_hash[BT_HASH_LEN];
	bool announce;
	bt_dht_peers_fn fn;
	void *arg;
	double next;	  /* when its search starts again */
	unsigned running; /* cores searching for it now */
	size_t found;	  /* peers found by the current round */
	unsigned empty;	  /* rounds in a row that found nothing */
};

struct core {
	struct bt_dht *d;
	int family;
	char *state_path;
	bool rekeyed; /* took its BEP 42 id */
};

struct lookup {
	struct bt_dht_net *n; /* NULL once the net is gone */
	struct evdns_getaddrinfo_request *req;
	bool as_node;  /* a node to ping, not a router */
	bool in_call;  /* evdns_getaddrinfo has not returned yet */
	bool answered; /* ... and has already called back (a numeric host) */
	char name[300];
};

/* The lookup is over: freed now, or once evdns_getaddrinfo returns if it answered inside. */
static void lookup_done(struct lookup *l)
{
	if (l->in_call)
		l->answered = true;
	else
		free(l);
}

struct bt_dht_net {
	struct event_base *base;
	struct evdns_base *dns;
	struct bt_udp *udp;
	struct core cores[2];
	size_t ncores;
	struct sub *subs;
	size_t nsubs;
	struct event *timer;
	double next_save;
	uint16_t port;
	struct lookup **lookups;
	size_t nlookups;
	size_t resolving; /* router names not answered yet */
	size_t routers;	  /* router addresses given to the cores */
	uint64_t peers_found;
};

char *bt_dht_state_dir(void)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	struct bt_buf b;
	bt_buf_init(&b);
	if (xdg && xdg[0] == '/')
		bt_buf_printf(&b, "%s/torrent", xdg);
	else if (home && home[0] == '/')
		bt_buf_printf(&b, "%s/.local/state/torrent", home);
	else
		return bt_buf_deinit(&b), NULL;
	return (char *)bt_buf_steal(&b, NULL);
}

static struct core *core_for(struct bt_dht_net *n, int family)
{
	for (size_t i = 0; i < n->ncores; i++)
		if (n->cores[i].family == family)
			return &n->cores[i];
	return NULL;
}

static struct sub *find_sub(struct bt_dht_net *n, const uint8_t *ih)
{
	for (size_t i = 0; i < n->nsubs; i++)
		if (!memcmp(n->subs[i].info_hash, ih, BT_HASH_LEN))
			return &n->subs[i];
	return NULL;
}

/* Creates dir and its missing parents. */
static void make_dirs(const char *dir)
{
	char *p = bt_xstrdup(dir);
	for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
		if (s)
			*s = '\0';
		mkdir(p, 0700);
		if (!s)
			break;
		*s = '/';
	}
	free(p);
}

/* Writes the core's state through a temporary file, synced and renamed over the old one. */
static void save_core(const struct core *c)
{
	if (!c->state_path)
		return;
	struct bt_buf b, tmp;
	bt_buf_init(&b);
	bt_buf_init(&tmp);
	bt_dht_save(c->d, &b);
	bt_buf_printf(&tmp, "%s.tmp", c->state_path);
	const char *tmp_path = (const char *)tmp.data;
	int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	bool ok = fd >= 0;
	for (size_t off = 0; ok && off < b.len;) {
		ssize_t w = write(fd, b.data + off, b.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		ok = w > 0;
		off += ok ? (size_t)w : 0;
	}
	ok = ok && fsync(fd) == 0;
	if (fd >= 0 && close(fd) != 0)
		ok = false;
	if (ok && rename(tmp_path, c->state_path) != 0)
		ok = false;
	if (!ok) {
		bt_log(BT_LOG_DEBUG, "dht", "cannot save %s: %s", c->state_path, strerror(errno));
		if (fd >= 0)
			unlink(tmp_path);
	}
	bt_buf_deinit(&b);
	bt_buf_deinit(&tmp);
}

/* A missing or corrupt state file is not an error: the node joins through the routers. */
static void load_core(struct core *c, double now)
{
	uint8_t *data;
	size_t len;
	if (!c->state_path || bt_read_file(c->state_path, 1 << 20, &data, &len, NULL) != 0)
		return;
	if (bt_dht_load(c->d, data, len, now) != 0)
		bt_log(BT_LOG_DEBUG, "dht", "%s is not a DHT state; starting afresh",
		       c->state_path);
	free(data);
}

static void arm(struct bt_dht_net *n, double now);

/* Takes BEP 42's id once enough nodes agree on our external address. */
static void maybe_rekey(struct core *c, double now)
{
	struct bt_peer_addr ip;
	if (c->rekeyed || !bt_dht_external_ip(c->d, &ip))
		return;
	uint8_t rnd[BT_HASH_LEN], id[BT_HASH_LEN];
	memcpy(rnd, bt_dht_id(c->d), BT_HASH_LEN);
	bt_dht_bep42_id(&ip, rnd, id);
	bt_dht_set_id(c->d, id, now);
	c->rekeyed = true;
}

/* Sends what the cores queued, hands their results out and rearms the timer. */
static void pump(struct bt_dht_net *n, double now)
{
	for (size_t i = 0; i < n->ncores; i++) {
		struct core *c = &n->cores[i];
		struct bt_dht_datagram dg;
		while (bt_dht_next_output(c->d, &dg))
			(void)bt_udp_send(n->udp, dg.data, dg.len, (const struct sockaddr *)&dg.to,
					  dg.tolen);
		struct bt_dht_event ev;
		while (bt_dht_next_event(c->d, &ev)) {
			struct sub *s = find_sub(n, ev.info_hash);
			if (!s)
				continue;
			if (ev.kind == BT_DHT_PEERS) {
				n->peers_found += ev.count;
				s->found += s->fn(s->arg, ev.peers, ev.count);
				/* The callback may have unsubscribed: look it up again. */
				continue;
			}
			if (s->running && --s->running == 0) {
				/* Nothing found while the node is still joining (its table nearly
				 * empty), or by the first rounds (begun from a table of routers
				 * only), says little: ask again soon. */
				struct bt_dht_stats st;
				bt_dht_get_stats(c->d, &st);
				s->empty = s->found ? 0 : s->empty + 1;
				s->next = now + (s->found ? BT_DHT_RESEARCH_S
						 : st.good < BT_DHT_K || s->empty <= 2
							 ? BT_DHT_JOINING_RETRY_S
							 : BT_DHT_RETRY_S);
				bt_log(BT_LOG_DEBUG, "dht", "search done: %zu peers", s->found);
			}
		}
		maybe_rekey(c, now);
	}
	arm(n, now);
}

static void start_search(struct bt_dht_net *n, struct sub *s, double now)
{
	s->found = 0;
	s->running = 0;
	for (size_t i = 0; i < n->ncores; i++)
		if (bt_dht_search(n->cores[i].d, s->info_hash, s->announce, n->port, now) == 0)
			s->running++;
	/* No room in the cores now: try again soon. */
	s->next = now + (s->running ? BT_DHT_RESEARCH_S : BT_DHT_RETRY_S);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct bt_dht_net *n = arg;
	double now = bt_now();
	for (size_t i = 0; i < n->nsubs; i++)
		if (!n->subs[i].running && n->subs[i].next <= now)
			start_search(n, &n->subs[i], now);
	if (now >= n->next_save) {
		for (size_t i = 0; i < n->ncores; i++)
			save_core(&n->cores[i]);
		n->next_save = now + BT_DHT_SAVE_S;
	}
	pump(n, now);
}

static void arm(struct bt_dht_net *n, double now)
{
	double next = n->next_save;
	for (size_t i = 0; i < n->ncores; i++) {
		double t = bt_dht_tick(n->cores[i].d, now);
		if (t < next)
			next = t;
	}
	for (size_t i = 0; i < n->nsubs; i++)
		if (!n->subs[i].running && n->subs[i].next < next)
			next = n->subs[i].next;
	struct timeval tv;
	event_add(n->timer, bt_timeval(&tv, next > now ? next - now : 0));
}

static void on_datagram(void *arg, const uint8_t *data, size_t len, const struct sockaddr *from,
			socklen_t fromlen)
{
	struct bt_dht_net *n = arg;
	struct core *c = core_for(n, from->sa_family);
	if (!c)
		return;
	double now = bt_now();
	bt_dht_input(c->d, data, len, from, fromlen, now);
	pump(n, now);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct lookup *l = arg;
	struct bt_dht_net *n = l->n;
	if (!n) {
		if (res)
			evutil_freeaddrinfo(res);
		lookup_done(l);
		return;
	}
	for (size_t i = 0; i < n->nlookups; i++)
		if (n->lookups[i] == l)
			n->lookups[i] = n->lookups[--n->nlookups];
	n->resolving--;
	if (result != 0)
		bt_log(BT_LOG_DEBUG, "dht", "router %s: %s", l->name, evutil_gai_strerror(result));
	size_t added = 0;
	for (struct evutil_addrinfo *a = res; a; a = a->ai_next) {
		struct core *c = core_for(n, a->ai_family);
		if (!c)
			continue;
		if (l->as_node)
			bt_dht_add_node(c->d, NULL, a->ai_addr, (socklen_t)a->ai_addrlen, bt_now());
		else {
			bt_dht_add_router(c->d, a->ai_addr, (socklen_t)a->ai_addrlen);
			n->routers++;
		}
		added++;
	}
	if (res)
		evutil_freeaddrinfo(res);
	lookup_done(l);
	if (added)
		pump(n, bt_now());
}

static void resolve(struct bt_dht_net *n, const char *name, bool as_node)
{
	char host[256], port[8];
	uint16_t pv;
	if (bt_split_host_port(name, host, sizeof host, &pv) != 0) {
		bt_log(BT_LOG_WARN, "dht", "router '%s' is not host:port; ignored", name);
		return;
	}
	snprintf(port, sizeof port, "%u", pv);
	struct lookup *l = bt_xcalloc(1, sizeof *l);
	l->n = n;
	l->as_node = as_node;
	snprintf(l->name, sizeof l->name, "%s", name);
	struct evutil_addrinfo hints = {.ai_socktype = SOCK_DGRAM,
					.ai_protocol = IPPROTO_UDP,
					.ai_flags = EVUTIL_AI_NUMERICSERV};
	n->lookups = bt_xreallocarray(n->lookups, n->nlookups + 1, sizeof *n->lookups);
	n->lookups[n->nlookups++] = l;
	n->resolving++;
	/* Numeric hosts are answered from inside this call. */
	l->in_call = true;
	struct evdns_getaddrinfo_request *req =
		evdns_getaddrinfo(n->dns, host, port, &hints, on_resolved, l);
	l->in_call = false;
	if (l->answered)
		free(l);
	else
		l->req = req;
}

static void add_core(struct bt_dht_net *n, int family, const char *state_dir, double now)
{
	struct bt_dht_config cfg = {.family = family};
	bt_random_bytes(cfg.id, sizeof cfg.id);
	bt_random_bytes(cfg.secret_seed, sizeof cfg.secret_seed);
	struct core *c = &n->cores[n->ncores];
	c->family = family;
	c->d = bt_dht_new(&cfg, now);
	if (!c->d)
		return;
	if (state_dir) {
		struct bt_buf b;
		bt_buf_init(&b);
		bt_buf_printf(&b, "%s/%s", state_dir, family == AF_INET ? "dht.dat" : "dht6.dat");
		c->state_path = (char *)bt_buf_steal(&b, NULL);
	}
	load_core(c, now);
	n->ncores++;
}

struct bt_dht_net *bt_dht_net_new(struct event_base *base, struct evdns_base *dns,
				  struct bt_udp *udp, const struct bt_dht_net_opts *o,
				  struct bt_err *err)
{
	struct bt_dht_net *n = bt_xcalloc(1, sizeof *n);
	n->base = base;
	n->dns = dns;
	n->udp = udp;
	n->port = o->port;
	n->subs = bt_xcalloc(MAX_SUBS, sizeof *n->subs);
	double now = bt_now();
	if (o->state_dir)
		make_dirs(o->state_dir);
	struct sockaddr_storage ss;
	socklen_t len;
	add_core(n, AF_INET, o->state_dir, now);
	if (bt_udp_local_addr(udp, AF_INET6, &ss, &len) == 0)
		add_core(n, AF_INET6, o->state_dir, now);
	n->timer = event_new(base, -1, 0, on_timer, n);
	if (!n->timer)
		bt_oom();
	if (bt_udp_add_handler(udp, bt_udp_is_krpc, on_datagram, n) != 0) {
		bt_err_set(err, -ENOSPC, "dht: no room for another UDP handler");
		bt_dht_net_free(n);
		return NULL;
	}
	n->next_save = now + BT_DHT_SAVE_S;
	const char *const *routers = o->routers ? o->routers : bt_dht_default_routers;
	size_t nrouters = o->routers ? o->nrouters : BT_DHT_DEFAULT_ROUTERS;
	for (size_t i = 0; i < nrouters; i++)
		resolve(n, routers[i], false);
	pump(n, now);
	return n;
}

void bt_dht_net_free(struct bt_dht_net *n)
{
	if (!n)
		return;
	bt_udp_remove_handler(n->udp, on_datagram, n);
	for (size_t i = 0; i < n->nlookups; i++) {
		struct lookup *l = n->lookups[i];
		l->n = NULL;
		if (l->req)
			evdns_getaddrinfo_cancel(l->req);
	}
	free(n->lookups);
	for (size_t i = 0; i < n->ncores; i++) {
		save_core(&n->cores[i]);
		bt_dht_free(n->cores[i].d);
		free(n->cores[i].state_path);
	}
	if (n->timer)
		event_free(n->timer);
	free(n->subs);
	free(n);
}

int bt_dht_net_subscribe(struct bt_dht_net *n, const uint8_t info_hash[BT_HASH_LEN], bool announce,
			 bt_dht_peers_fn fn, void *arg)
{
	if (find_sub(n, info_hash))
		return -EEXIST;
	if (n->nsubs == MAX_SUBS)
		return -ENOSPC;
	struct sub *s = &n->subs[n->nsubs++];
	*s = (struct sub){.announce = announce, .fn = fn, .arg = arg};
	memcpy(s->info_hash, info_hash, BT_HASH_LEN);
	double now = bt_now();
	start_search(n, s, now);
	pump(n, now);
	return 0;
}

void bt_dht_net_unsubscribe(struct bt_dht_net *n, const uint8_t info_hash[BT_HASH_LEN])
{
	struct sub *s = find_sub(n, info_hash);
	if (s)
		*s = n->subs[--n->nsubs];
}

void bt_dht_net_add_node(struct bt_dht_net *n, const struct sockaddr *sa, socklen_t len)
{
	struct core *c = core_for(n, sa->sa_family);
	if (!c)
		return;
	double now = bt_now();
	bt_dht_add_node(c->d, NULL, sa, len, now);
	pump(n, now);
}

void bt_dht_net_add_node_name(struct bt_dht_net *n, const char *host_port)
{
	resolve(n, host_port, true);
}

void bt_dht_net_get_stats(const struct bt_dht_net *n, struct bt_dht_net_stats *out)
{
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < n->ncores; i++) {
		struct bt_dht_stats st;
		bt_dht_get_stats(n->cores[i].d, &st);
		out->nodes += st.nodes;
		out->good += st.good;
		out->searches += st.searches;
		out->queries_in += st.queries_in;
	}
	out->peers_found = n->peers_found;
}

bool bt_dht_net_hopeful(const struct bt_dht_net *n)
{
	struct bt_dht_net_stats st;
	bt_dht_net_get_stats(n, &st);
	/* The cores keep asking their routers while they know few nodes: with a router there is
	 * always a way in. */
	return st.nodes > 0 || n->routers > 0 || n->resolving > 0 || st.searches > 0;
}

uint16_t bt_dht_net_port(const struct bt_dht_net *n)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (bt_udp_local_addr(n->udp, AF_INET, &ss, &len) != 0)
		return 0;
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}
