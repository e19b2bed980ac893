/*
 * tracker: announcing to trackers. bt_announce_start sends one announce to one tracker URL,
 * over HTTP(S) through `http` or over UDP through `udp_tracker`, and reports the parsed reply or
 * a one-line reason it failed. Commands that ask every tracker at once (`peers`) use it
 * directly; downloads will use the tier policy built on top of it (BEP 12).
 */
#ifndef BT_TRACKER_H
#define BT_TRACKER_H

#include "bt/tracker_policy.h"
#include "bt/tracker_proto.h"

struct event_base;
struct bt_http;
struct bt_udp_tracker;
struct bt_announce;

struct bt_tracker_io {
	struct bt_http *http;
	struct bt_udp_tracker *udp;
	const char *source_ip; /* HTTP announces leave from it; NULL: the system's choice */
};

/*
 * Called once, from the loop. reply is the tracker's parsed answer (borrowed for the call) or
 * NULL when there was none; error is NULL on success, otherwise one line saying what went wrong
 * ("failure reason: ...", "HTTP status 404", "bad reply: ...", "timed out after 5000 ms"). A
 * tracker's "failure reason" comes with both.
 */
typedef void (*bt_announce_done_fn)(const char *url, const struct bt_announce_reply *reply,
				    const char *error, void *arg);

/*
 * Starts an announce. timeout_ms bounds an HTTP transfer; a UDP announce runs until it is
 * answered, gives up after BEP 15's retries, or is cancelled. Returns NULL with err set for a
 * URL this client cannot announce to (unknown scheme, malformed); done is then not called.
 */
struct bt_announce *bt_announce_start(const struct bt_tracker_io *io, const char *url,
				      const struct bt_announce_req *req, long timeout_ms,
				      bt_announce_done_fn done, void *arg, struct bt_err *err);
void bt_announce_cancel(struct bt_announce *a);

/*
 * bt_tracker: one torrent's announces over its whole life, on the tier policy of
 * tracker_policy.h. `started` first (retried until some tracker takes it), then regular
 * announces at the tracker's interval, `completed` when told, and `stopped` to the tracker that
 * last answered when stopping, bounded by stop_timeout_s so exit is never held up for long.
 */
struct bt_tracker;

struct bt_tracker_opts {
	double min_interval_s;	 /* our floor under the tracker's interval; 0: 60 s */
	long attempt_timeout_ms; /* one announce to one URL; 0: 20 s (UDP gets one retry) */
	double stop_timeout_s;	 /* bound on the stopped announce; 0: 2 s */
};

struct bt_tracker_events {
	void (*peers)(void *arg, const struct bt_peer_addr *peers, size_t n);
	void (*error)(void *arg, const char *url, const char *message); /* may be NULL */
	void (*stopped)(void *arg); /* after bt_tracker_stop's announce ended; may be NULL */
};

/* req gives the info hash, peer id, port, key and numwant; its counters are set by update. */
struct bt_tracker *bt_tracker_new(struct event_base *base, const struct bt_tracker_io *io,
				  const struct bt_meta_tier *tiers, size_t tier_count,
				  const struct bt_announce_req *req,
				  const struct bt_tracker_opts *opts,
				  const struct bt_tracker_events *events, void *arg);
void bt_tracker_free(struct bt_tracker *t);

void bt_tracker_update(struct bt_tracker *t, int64_t uploaded, int64_t downloaded, int64_t left);
void bt_tracker_set_port(struct bt_tracker *t, uint16_t port);
void bt_tracker_start(struct bt_tracker *t);
/* Sends `completed` now (or as soon as the announce in flight ends). */
void bt_tracker_completed(struct bt_tracker *t);
/* Asks for more peers now, if the tracker's min interval allows it. */
void bt_tracker_need_peers(struct bt_tracker *t);
void bt_tracker_stop(struct bt_tracker *t);
/* Seconds until the next scheduled announce, or -1 if none is scheduled. */
double bt_tracker_next_in(const struct bt_tracker *t);
/* What happened last, for messages: "<url>: <error>", "<url>: no reply yet", ... */
const char *bt_tracker_status(const struct bt_tracker *t);
/* The URL that answered last, or NULL. */
const char *bt_tracker_working_url(const struct bt_tracker *t);

#endif
