/*
 * announce: one announce to one tracker URL. bt_announce_start sends it over HTTP(S) through
 * `http` or over UDP through `udp_tracker`, by the URL's scheme, and reports once, from the loop,
 * the parsed reply or a one-line reason it failed. It keeps no state between announces: the
 * schedule (tiers, intervals, events) is `tracker`'s. Commands that ask every tracker at once
 * (`peers`) use it directly; bt_tracker uses it for each attempt.
 */
#ifndef BT_ANNOUNCE_H
#define BT_ANNOUNCE_H

#include "bt/tracker_proto.h"

struct bt_http;
struct bt_udp_tracker;
struct bt_announce;

/* What announces go through; borrowed, owned by the session. */
struct bt_announce_io {
	struct bt_http *http;
	struct bt_udp_tracker *udp;
	const char *source_ip; /* HTTP announces leave from it; NULL: the system's choice */
};

/*
 * Called once, from the loop. reply is the tracker's parsed answer (borrowed for the call) or
 * NULL when there was none; reply->self is our own entry in its peer list (the local address
 * the request left from and the port announced; family 0 if unknown). error is NULL on success,
 * otherwise one line saying what went wrong ("failure reason: ...", "HTTP status 404", "bad
 * reply: ...", "timed out after 5000 ms"). A tracker's "failure reason" comes with both.
 */
typedef void (*bt_announce_done_fn)(const char *url, const struct bt_announce_reply *reply,
				    const char *error, void *arg);

/*
 * Starts an announce. timeout_ms bounds an HTTP transfer; a UDP announce runs until it is
 * answered, gives up after BEP 15's retries, or is cancelled. Returns NULL with err set for a
 * URL this client cannot announce to (unknown scheme, malformed); done is then not called.
 */
struct bt_announce *bt_announce_start(const struct bt_announce_io *io, const char *url,
				      const struct bt_announce_req *req, long timeout_ms,
				      bt_announce_done_fn done, void *arg, struct bt_err *err);
/* Stops an announce whose callback has not run; it will not run. NULL is a no-op. */
void bt_announce_cancel(struct bt_announce *a);

#endif
