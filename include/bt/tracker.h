/*
 * tracker: one torrent's announces over its whole life, on the tier policy of tracker_policy.h
 * (BEP 12 tiers, intervals, backoff), each one made with `announce`. `started` first (retried
 * until some tracker takes it), then regular announces at the tracker's interval, `completed`
 * when told, and `stopped` to the tracker that last answered when stopping, bounded by
 * stop_timeout_s so exit is never held up for long. The policy's decisions are pure functions;
 * this module adds the timers and the announce in flight. Owned by a torrent, which hears about
 * peers and errors through struct bt_tracker_events.
 */
#ifndef BT_TRACKER_H
#define BT_TRACKER_H

#include "bt/announce.h"
#include "bt/tracker_policy.h"

struct event_base;

struct bt_tracker;

struct bt_tracker_opts {
	double min_interval_s;	 /* our floor under the tracker's interval; 0: 60 s */
	long attempt_timeout_ms; /* one announce to one URL; 0: 20 s (UDP gets one retry) */
	double stop_timeout_s;	 /* bound on the stopped announce; 0: 2 s */
};

struct bt_tracker_events {
	/*
	 * A tracker's peers; self is our own entry as that tracker lists it (family 0 if unknown),
	 * which may be among them.
	 */
	void (*peers)(void *arg, const struct bt_peer_addr *peers, size_t n,
		      const struct bt_peer_addr *self);
	void (*error)(void *arg, const char *url, const char *message); /* may be NULL */
	void (*stopped)(void *arg); /* after bt_tracker_stop's announce ended; may be NULL */
};

/* req gives the info hash, peer id, port, key and numwant; its counters are set by update. */
struct bt_tracker *bt_tracker_new(struct event_base *base, const struct bt_announce_io *io,
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
