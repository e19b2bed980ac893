#include "bt/cli.h"
#include "bt/dht_net.h"
#include "bt/source.h"
#include "bt/hash.h"
#include "bt/json.h"
#include "bt/metainfo.h"
#include "bt/session.h"
#include "bt/udp.h"
#include "bt/announce.h"
#include "bt/http.h"
#include "bt/udp_tracker.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* After the first tracker that gives peers, the others get this long to catch up. */
#define GRACE_SECONDS 0.5
/* The bound on the "stopped" announces sent on the way out. */
#define STOPPED_SECONDS 1.0
/* The bound on the scrape round of --json (never more than --timeout). */
#define SCRAPE_SECONDS 2.0
/* A scrape reply for one torrent is tiny; this is far above any honest one. */
#define SCRAPE_MAX_REPLY ((size_t)256 << 10)

static const char help[] =
	"Usage: torrent peers [options] <torrent>\n"
	"\n"
	"A <torrent> is a .torrent file, an http(s):// URL of one, or a magnet link (its tr=\n"
	"trackers are asked; until the size is known, 'left' is announced as 16384).\n"
	"\n"
	"Asks the torrent's trackers for peers and prints each peer as ip:port (IPv6 as\n"
	"[addr]:port), one per line, without duplicates. Every tracker of every tier (HTTP, HTTPS\n"
	"and UDP) is asked at once; once one has answered with peers, the others get half a "
	"second\n"
	"more, so a dead tracker costs nothing when a live one answers. Trackers that fail are\n"
	"reported on stderr with their URL and the reason. On the way out each tracker that\n"
	"answered is sent a 'stopped' announce, so this query does not linger in its swarm.\n"
	"\n"
	"Options:\n"
	"  -t, --timeout SECONDS  give up on trackers that have not answered by then (default 5)\n"
	"  -p, --port PORT        the port announced to the trackers (default 6881)\n"
	"      --listen IP        announce from this local address (HTTP and UDP)\n"
	"      --dht              ask the DHT too (BEP 5; peers found until --timeout, or half a\n"
	"                         second after the trackers are done and it found some)\n"
	"      --dht-bootstrap H:P  join the DHT through this node (repeatable; default from\n"
	"                         $TORRENT_DHT_BOOTSTRAP, else the usual routers)\n"
	"      --json             print one JSON object: the merged peers, and per tracker its\n"
	"                         peers, interval, seeders, leechers, warning and error, and its\n"
	"                         scrape (BEP 48; complete, incomplete, downloaded, error), asked\n"
	"                         after our 'stopped' so that we are not counted; with --dht,\n"
	"                         \"dht\": the peers it found and the nodes it knew\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 if any tracker (or the DHT) gave a peer, 1 if none did, 2 bad usage or "
	"invalid "
	"torrent.\n";

struct peers_run;

struct tracker_result {
	struct peers_run *run;
	const char *url;
	struct bt_announce *announce;
	bool answered;
	char *error;
	char *warning;
	int64_t interval, min_interval, seeders, leechers;
	struct bt_peer_addr *peers;
	size_t peer_count;
	double elapsed;
	struct bt_http_req *scrape_http;
	struct bt_udp_req *scrape_udp;
	struct bt_scrape_reply scrape; /* counts -1 until a scrape answered */
	char *scrape_error;
};

struct peers_run {
	struct bt_session *session;
	struct bt_announce_io io;
	struct bt_announce_req req;
	struct tracker_result *trackers;
	size_t count;
	size_t pending;
	struct event *grace;
	double started;
	bool dht;			/* --dht: the DHT is asked too */
	struct bt_peer_addr *dht_peers; /* what it found */
	size_t ndht;
};

/* With --dht the run ends on the trackers' and the DHT's answers, a grace period after peers. */
static void answered_some(struct peers_run *run, bool peers)
{
	bool dht_ok = !run->dht || run->ndht;
	if (run->pending == 0 && dht_ok) {
		bt_session_stop(run->session);
	} else if (peers && dht_ok && !evtimer_pending(run->grace, NULL)) {
		struct timeval tv = {0, (suseconds_t)(GRACE_SECONDS * 1e6)};
		evtimer_add(run->grace, &tv);
	}
}

static size_t on_dht_peers(void *arg, const struct bt_peer_addr *peers, size_t n)
{
	struct peers_run *run = arg;
	run->dht_peers = bt_xreallocarray(run->dht_peers, run->ndht + n, sizeof *run->dht_peers);
	memcpy(run->dht_peers + run->ndht, peers, n * sizeof *peers);
	run->ndht += n;
	answered_some(run, true);
	return n;
}

/*
 * Our own announce comes back from trackers that list every peer, the asker included: the entry
 * at the address this announce left from with the port we announced. Other peers on the same
 * port (other addresses of this machine, say) are peers.
 */
static bool is_us(const struct bt_announce_reply *reply, const struct bt_peer_addr *a)
{
	return reply->self.family && bt_peer_addr_equal(&reply->self, a);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct peers_run *run = arg;
	bt_session_stop(run->session);
}

static void on_announced(const char *url, const struct bt_announce_reply *reply, const char *error,
			 void *arg)
{
	(void)url;
	struct tracker_result *t = arg;
	struct peers_run *run = t->run;
	t->announce = NULL;
	t->answered = reply != NULL;
	t->elapsed = bt_now() - run->started;
	if (error)
		t->error = bt_xstrdup(error);
	if (reply) {
		if (reply->warning)
			t->warning = bt_xstrdup(reply->warning);
		t->interval = reply->interval;
		t->min_interval = reply->min_interval;
		t->seeders = reply->complete;
		t->leechers = reply->incomplete;
		t->peers = bt_xcalloc(reply->peer_count, sizeof *t->peers);
		for (size_t i = 0; i < reply->peer_count; i++)
			if (!is_us(reply, &reply->peers[i]))
				t->peers[t->peer_count++] = reply->peers[i];
	}
	run->pending--;
	answered_some(run, t->peer_count > 0);
}

/* The "stopped" round: replies are not kept, only counted. */
static void on_stopped(const char *url, const struct bt_announce_reply *reply, const char *error,
		       void *arg)
{
	(void)url;
	(void)reply;
	(void)error;
	struct tracker_result *t = arg;
	t->announce = NULL;
	if (--t->run->pending == 0)
		bt_session_stop(t->run->session);
}

static void send_stopped(struct peers_run *run)
{
	struct bt_announce_req req = run->req;
	req.event = BT_TRACKER_EVENT_STOPPED;
	req.numwant = 0;
	run->pending = 0;
	for (size_t i = 0; i < run->count; i++) {
		struct tracker_result *t = &run->trackers[i];
		if (!t->answered || t->error)
			continue;
		t->announce =
			bt_announce_start(&run->io, t->url, &req, (long)(STOPPED_SECONDS * 1000),
					  on_stopped, t, NULL);
		run->pending += t->announce != NULL;
	}
	if (run->pending)
		bt_session_run(run->session, STOPPED_SECONDS);
	for (size_t i = 0; i < run->count; i++) {
		bt_announce_cancel(run->trackers[i].announce);
		run->trackers[i].announce = NULL;
	}
}

static void scrape_done(struct tracker_result *t)
{
	if (--t->run->pending == 0)
		bt_session_stop(t->run->session);
}

static void on_scrape_http(const struct bt_http_response *res, void *arg)
{
	struct tracker_result *t = arg;
	t->scrape_http = NULL;
	struct bt_err err;
	char msg[320];
	if (res->error && res->error != -EPROTO) {
		t->scrape_error = bt_xstrdup(res->message);
	} else if (bt_tracker_parse_scrape(res->body, res->len, t->run->req.info_hash, &t->scrape,
					   &err)) {
		/* An error status with a body that is no scrape reply: the status says more. */
		snprintf(msg, sizeof msg, "%s", res->error ? res->message : err.msg);
		t->scrape_error = bt_xstrdup(msg);
	} else if (t->scrape.failure) {
		snprintf(msg, sizeof msg, "failure reason: %.250s", t->scrape.failure);
		t->scrape_error = bt_xstrdup(msg);
		bt_scrape_reply_deinit(&t->scrape);
	} else if (res->error) {
		t->scrape_error = bt_xstrdup(res->message);
		bt_scrape_reply_deinit(&t->scrape);
	}
	scrape_done(t);
}

static void on_scrape_udp(const struct bt_scrape_reply *reply, int error, const char *message,
			  void *arg)
{
	struct tracker_result *t = arg;
	t->scrape_udp = NULL;
	if (error || !reply) {
		t->scrape_error = bt_xstrdup(message ? message : "no reply");
	} else {
		t->scrape = *reply;
		t->scrape.failure = NULL;
	}
	scrape_done(t);
}

/*
 * BEP 48: every tracker that answered the announce is scraped, all at once, after the "stopped"
 * round (so the counts do not include this query). Failures are recorded per tracker and are
 * never fatal: the peers were already found.
 */
static void scrape_all(struct peers_run *run, double timeout)
{
	run->pending = 0;
	for (size_t i = 0; i < run->count; i++) {
		struct tracker_result *t = &run->trackers[i];
		if (!t->answered || t->error) {
			t->scrape_error = bt_xstrdup("not scraped: the announce failed");
			continue;
		}
		if (strncasecmp(t->url, "udp://", 6) == 0) {
			struct bt_err err;
			t->scrape_udp = bt_udp_scrape(run->io.udp, t->url, run->req.info_hash,
						      on_scrape_udp, t, &err);
			if (!t->scrape_udp)
				t->scrape_error = bt_xstrdup(err.msg);
			run->pending += t->scrape_udp != NULL;
			continue;
		}
		char *url = bt_tracker_scrape_url(t->url, run->req.info_hash);
		if (!url) {
			t->scrape_error = bt_xstrdup("no scrape URL: the announce URL's last path "
						     "component does not start with 'announce'");
			continue;
		}
		struct bt_http_opts opts = {.max_body = SCRAPE_MAX_REPLY,
					    /* Past the round's own bound, which then ends a
					     * stalled scrape with its message, not curl's (they
					     * raced at the same instant). */
					    .timeout_ms = (long)(timeout * 1000) + 1000,
					    .source_ip = run->io.source_ip};
		t->scrape_http = bt_http_get(run->io.http, url, &opts, on_scrape_http, t);
		free(url);
		if (!t->scrape_http)
			t->scrape_error = bt_xstrdup("not an http(s) URL");
		run->pending += t->scrape_http != NULL;
	}
	if (run->pending)
		bt_session_run(run->session, timeout);
	for (size_t i = 0; i < run->count; i++) {
		struct tracker_result *t = &run->trackers[i];
		if (!t->scrape_http && !t->scrape_udp)
			continue;
		bt_http_cancel(t->scrape_http);
		bt_udp_cancel(t->scrape_udp);
		t->scrape_http = NULL;
		t->scrape_udp = NULL;
		char msg[64];
		snprintf(msg, sizeof msg, "no scrape reply within %g s", timeout);
		t->scrape_error = bt_xstrdup(msg);
	}
}

/* Every tracker URL of every tier, once each, in tier order. */
static size_t collect_urls(const struct bt_metainfo *m, const char ***urls_out)
{
	size_t total = 0, n = 0;
	for (size_t t = 0; t < m->tier_count; t++)
		total += m->tiers[t].count;
	const char **urls = bt_xcalloc(total, sizeof *urls);
	for (size_t t = 0; t < m->tier_count; t++) {
		for (size_t i = 0; i < m->tiers[t].count; i++) {
			const char *u = m->tiers[t].urls[i];
			size_t j;
			for (j = 0; j < n && strcmp(urls[j], u) != 0; j++)
				;
			if (j == n)
				urls[n++] = u;
		}
	}
	*urls_out = urls;
	return n;
}

/* Appends a's peers to the list (duplicates are dropped afterwards, by dedupe). */
static void merge(struct bt_peer_addr **all, size_t *n, const struct tracker_result *t)
{
	if (!t->peer_count)
		return;
	*all = bt_xreallocarray(*all, *n + t->peer_count, sizeof **all);
	memcpy(*all + *n, t->peers, t->peer_count * sizeof **all);
	*n += t->peer_count;
}

struct indexed {
	const struct bt_peer_addr *a;
	size_t i;
};

static int by_addr_then_index(const void *x, const void *y)
{
	const struct indexed *p = x, *q = y;
	int c = p->a->family - q->a->family;
	if (!c)
		c = memcmp(p->a->addr, q->a->addr, p->a->family == 6 ? 16 : 4);
	if (!c)
		c = (int)p->a->port - (int)q->a->port;
	if (!c)
		c = p->i < q->i ? -1 : p->i > q->i;
	return c;
}

/* Keeps the first of each address, in order: O(n log n), however many a tracker sent. */
static size_t dedupe(struct bt_peer_addr *all, size_t n)
{
	if (n < 2)
		return n;
	struct indexed *ix = bt_xcalloc(n, sizeof *ix);
	bool *dup = bt_xcalloc(n, sizeof *dup);
	for (size_t i = 0; i < n; i++)
		ix[i] = (struct indexed){&all[i], i};
	qsort(ix, n, sizeof *ix, by_addr_then_index);
	for (size_t k = 1; k < n; k++)
		dup[ix[k].i] = bt_peer_addr_equal(ix[k].a, ix[k - 1].a);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++)
		if (!dup[i])
			all[kept++] = all[i];
	free(ix);
	free(dup);
	return kept;
}

static void json_peers(struct bt_buf *b, const struct bt_peer_addr *p, size_t n)
{
	bt_buf_addc(b, '[');
	for (size_t i = 0; i < n; i++) {
		char s[BT_PEER_ADDR_STRLEN];
		bt_peer_addr_format(&p[i], s);
		if (i)
			bt_buf_addc(b, ',');
		bt_json_put_str(b, s);
	}
	bt_buf_addc(b, ']');
}

static void json_int(struct bt_buf *b, int *first, const char *key, int64_t v)
{
	bt_json_key(b, first, key);
	if (v < 0)
		bt_buf_adds(b, "null");
	else
		bt_buf_printf(b, "%" PRId64, v);
}

static void json_opt(struct bt_buf *b, int *first, const char *key, const char *v)
{
	bt_json_key(b, first, key);
	if (v)
		bt_json_put_str(b, v);
	else
		bt_buf_adds(b, "null");
}

static void print_json(const struct peers_run *run, const struct bt_peer_addr *all, size_t n)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_adds(&b, "{\"peers\":");
	json_peers(&b, all, n);
	bt_buf_adds(&b, ",\"trackers\":[");
	for (size_t i = 0; i < run->count; i++) {
		const struct tracker_result *t = &run->trackers[i];
		int first = 1;
		bt_buf_adds(&b, i ? ",{" : "{");
		json_opt(&b, &first, "url", t->url);
		bt_json_key(&b, &first, "peers");
		json_peers(&b, t->peers, t->peer_count);
		json_int(&b, &first, "interval", t->answered ? t->interval : -1);
		json_int(&b, &first, "min_interval", t->answered ? t->min_interval : -1);
		json_int(&b, &first, "seeders", t->answered ? t->seeders : -1);
		json_int(&b, &first, "leechers", t->answered ? t->leechers : -1);
		json_opt(&b, &first, "warning", t->warning);
		json_opt(&b, &first, "error", t->error);
		bt_json_key(&b, &first, "elapsed_ms");
		bt_buf_printf(&b, "%.0f", t->elapsed * 1000);
		int sfirst = 1;
		bt_json_key(&b, &first, "scrape");
		bt_buf_addc(&b, '{');
		json_int(&b, &sfirst, "complete", t->scrape.complete);
		json_int(&b, &sfirst, "incomplete", t->scrape.incomplete);
		json_int(&b, &sfirst, "downloaded", t->scrape.downloaded);
		json_opt(&b, &sfirst, "error", t->scrape_error);
		bt_buf_addc(&b, '}');
		bt_buf_addc(&b, '}');
	}
	bt_buf_adds(&b, "]");
	if (run->dht) {
		/* Each peer's source: the trackers' lists above, and the DHT's here. */
		bt_buf_adds(&b, ",\"dht\":{\"peers\":");
		json_peers(&b, run->dht_peers, run->ndht);
		struct bt_dht_net_stats st = {0};
		if (bt_session_dht(run->session))
			bt_dht_net_get_stats(bt_session_dht(run->session), &st);
		bt_buf_printf(&b, ",\"nodes\":%zu}", st.nodes);
	}
	bt_buf_adds(&b, "}\n");
	fwrite(b.data, 1, b.len, stdout);
	bt_buf_deinit(&b);
}

/* --dht and its routers. */
struct dht_args {
	bool on;
	const char **routers;
	size_t nrouters;
};

static int run_peers(const struct bt_metainfo *m, double timeout, uint16_t port,
		     const char *listen_ip, bool json, const struct dht_args *dht)
{
	const char **urls;
	size_t count = collect_urls(m, &urls);
	if (count == 0 && !dht->on) {
		free(urls);
		bt_cli_error("peers", "the torrent lists no trackers (--dht asks the DHT)");
		return BT_EXIT_FAILURE;
	}
	struct bt_err err;
	struct bt_session *s = bt_session_new(&err);
	if (!s) {
		free(urls);
		bt_cli_error("peers", "%s", err.msg);
		return BT_EXIT_FAILURE;
	}
	struct peers_run run = {
		.session = s,
		.io = {.http = bt_session_http(s),
		       .udp = bt_session_udp(s),
		       .source_ip = listen_ip},
		.trackers = bt_xcalloc(count, sizeof *run.trackers),
		.count = count,
		.started = bt_now(),
		.dht = dht->on,
	};
	for (size_t i = 0; i < count; i++)
		bt_scrape_reply_deinit(&run.trackers[i].scrape); /* counts unknown: -1 */
	if (listen_ip)
		bt_udp_set_source(bt_session_udp_socket(s), listen_ip);
	run.grace = evtimer_new(bt_session_base(s), on_grace, &run);
	memcpy(run.req.info_hash, m->info_hash, BT_HASH_LEN);
	memcpy(run.req.peer_id, bt_session_peer_id(s), BT_PEER_ID_LEN);
	run.req.port = port;
	run.req.left = m->total_length;
	run.req.event = BT_TRACKER_EVENT_STARTED;
	run.req.numwant = 200;
	bt_random_bytes(&run.req.key, sizeof run.req.key);

	for (size_t i = 0; i < count; i++) {
		struct tracker_result *t = &run.trackers[i];
		t->run = &run;
		t->url = urls[i];
		/* The command's deadline ends slow transfers; curl's own limit is only a backstop.
		 */
		t->announce =
			bt_announce_start(&run.io, t->url, &run.req, (long)(timeout * 1000) + 1000,
					  on_announced, t, &err);
		if (t->announce)
			run.pending++;
		else
			t->error = bt_xstrdup(err.msg);
	}
	struct bt_dht_net *node = NULL;
	if (dht->on && bt_cli_start_dht("peers", s, dht->routers, dht->nrouters, 0) == 0) {
		node = bt_session_dht(s);
		bt_dht_net_subscribe(node, m->info_hash, false, on_dht_peers, &run);
	}
	enum bt_session_end end =
		run.pending || node ? bt_session_run(s, timeout) : BT_SESSION_STOPPED;
	if (node)
		bt_dht_net_unsubscribe(node, m->info_hash);
	for (size_t i = 0; i < count; i++) {
		struct tracker_result *t = &run.trackers[i];
		if (!t->announce)
			continue;
		bt_announce_cancel(t->announce);
		t->announce = NULL;
		t->elapsed = bt_now() - run.started;
		char msg[96];
		if (end == BT_SESSION_DEADLINE)
			snprintf(msg, sizeof msg, "no reply within %g s", timeout);
		else
			snprintf(msg, sizeof msg, "no reply yet when the others had answered");
		t->error = bt_xstrdup(msg);
	}
	if (end == BT_SESSION_INTERRUPTED)
		bt_cli_error("peers", "interrupted");
	else
		send_stopped(&run);
	if (json && end != BT_SESSION_INTERRUPTED)
		scrape_all(&run, timeout < SCRAPE_SECONDS ? timeout : SCRAPE_SECONDS);

	struct bt_peer_addr *all = NULL;
	size_t n = 0;
	for (size_t i = 0; i < count; i++) {
		struct tracker_result *t = &run.trackers[i];
		if (t->warning)
			bt_cli_error("peers", "%s: warning: %s", t->url, t->warning);
		if (t->error)
			bt_cli_error("peers", "%s: %s", t->url, t->error);
		merge(&all, &n, t);
	}
	if (run.ndht) {
		/* A search reports what each node said: the same peer many times. */
		run.ndht = dedupe(run.dht_peers, run.ndht);
		all = bt_xreallocarray(all, n + run.ndht, sizeof *all);
		memcpy(all + n, run.dht_peers, run.ndht * sizeof *all);
		n += run.ndht;
	}
	n = dedupe(all, n);
	if (end != BT_SESSION_INTERRUPTED) {
		if (json) {
			print_json(&run, all, n);
		} else {
			for (size_t i = 0; i < n; i++) {
				char a[BT_PEER_ADDR_STRLEN];
				bt_peer_addr_format(&all[i], a);
				puts(a);
			}
		}
		if (n == 0)
			bt_cli_error("peers", "no peers from %zu tracker%s%s", count,
				     count == 1 ? "" : "s", dht->on ? " and the DHT" : "");
	}
	int rc = n && end != BT_SESSION_INTERRUPTED ? BT_EXIT_OK : BT_EXIT_FAILURE;

	free(all);
	free(run.dht_peers);
	for (size_t i = 0; i < count; i++) {
		free(run.trackers[i].error);
		free(run.trackers[i].warning);
		free(run.trackers[i].peers);
		free(run.trackers[i].scrape_error);
		bt_scrape_reply_deinit(&run.trackers[i].scrape);
	}
	free(run.trackers);
	event_free(run.grace);
	bt_session_free(s);
	free(urls);
	return rc;
}

static int run(int argc, char **argv)
{
	enum { OPT_LISTEN = 256, OPT_DHT, OPT_DHT_BOOTSTRAP };
	static const struct option opts[] = {
		{"timeout", required_argument, NULL, 't'},
		{"port", required_argument, NULL, 'p'},
		{"json", no_argument, NULL, 'j'},
		{"listen", required_argument, NULL, OPT_LISTEN},
		{"dht", no_argument, NULL, OPT_DHT},
		{"dht-bootstrap", required_argument, NULL, OPT_DHT_BOOTSTRAP},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	double timeout = 5;
	unsigned long port = 6881;
	bool json = false;
	const char *listen_ip = NULL;
	struct dht_args dht = {0};
	int c;
	while ((c = bt_cli_getopt(argc, argv, ":t:p:h", opts)) != -1) {
		switch (c) {
		case 't':
			if (bt_cli_parse_seconds(optarg, 0.001, 3600, &timeout))
				return bt_cli_usage_error("peers",
							  "--timeout wants seconds from 0.001 to "
							  "3600, not '%s'",
							  optarg);
			break;
		case 'p':
			if (bt_cli_parse_uint(optarg, 1, 65535, &port))
				return bt_cli_usage_error("peers",
							  "--port wants a port from 1 to 65535, "
							  "not '%s'",
							  optarg);
			break;
		case 'j':
			json = true;
			break;
		case OPT_LISTEN: {
			struct sockaddr_storage ss;
			if (!bt_sockaddr_from_ip(optarg, 0, &ss))
				return bt_cli_usage_error("peers",
							  "--listen wants a numeric IP address, "
							  "not '%s'",
							  optarg);
			listen_ip = optarg;
			break;
		}
		case OPT_DHT:
			dht.on = true;
			break;
		case OPT_DHT_BOOTSTRAP:
			dht.routers = bt_xreallocarray(dht.routers, dht.nrouters + 1,
						       sizeof *dht.routers);
			dht.routers[dht.nrouters++] = optarg;
			break;
		case 'h':
			free(dht.routers);
			fputs(help, stdout);
			return BT_EXIT_OK;
		default:
			free(dht.routers);
			return BT_EXIT_USAGE;
		}
	}
	struct bt_source src;
	int rc = argc - optind != 1 ? bt_cli_usage_error("peers", "expected one .torrent file, URL "
								  "or magnet link")
		 : dht.nrouters && !dht.on
			 ? bt_cli_usage_error("peers", "--dht-bootstrap goes with --dht")
			 : bt_source_load("peers", argv[optind], NULL, &src);
	if (rc) {
		free(dht.routers);
		return rc;
	}
	if (src.is_magnet) {
		/* The trackers need only the info hash; the size is a positive placeholder. */
		struct bt_metainfo m = {.tiers = (struct bt_meta_tier *)src.mg.tiers,
					.tier_count = src.mg.tier_count,
					.total_length = BT_BLOCK_SIZE};
		memcpy(m.info_hash, src.mg.info_hash, BT_HASH_LEN);
		rc = run_peers(&m, timeout, (uint16_t)port, listen_ip, json, &dht);
	} else {
		rc = run_peers(&src.m, timeout, (uint16_t)port, listen_ip, json, &dht);
	}
	bt_source_deinit(&src);
	free(dht.routers);
	return rc;
}

const struct bt_cli_command bt_cmd_peers = {
	.name = "peers",
	.summary = "ask the torrent's trackers for peers",
	.help = help,
	.run = run,
};
