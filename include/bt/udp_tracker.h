/*
 * udp_tracker: BEP 15 announces and scrapes on the event loop. It owns no socket: datagrams go out
 * and come back through the shared sockets of `udp` (given to bt_udp_tracker_new), where it
 * registers a handler for what looks like a BEP 15 reply. Replies are matched to requests by
 * transaction id and source address, and anything else (short, wrong id, wrong action, other
 * sender) is ignored. Connection ids are cached per tracker address and renewed when older than a
 * minute. A request that gets no reply is sent again after 15·2ⁿ seconds (n = 0..8); the caller
 * bounds the whole by cancelling at its deadline. Host names are resolved with evdns, so nothing
 * blocks.
 */
#ifndef BT_UDP_TRACKER_H
#define BT_UDP_TRACKER_H

#include "bt/tracker_proto.h"

struct event_base;
struct evdns_base;
struct bt_udp;
struct bt_udp_tracker;
struct bt_udp_req;

/*
 * Called once per request, from the loop. On success error is 0 and reply is the tracker's
 * answer (borrowed for the call), with reply->self our own entry in its list; otherwise reply
 * is NULL, or holds the tracker's error action message in reply->failure (error -EPROTO), and
 * message says what went wrong.
 */
typedef void (*bt_udp_done_fn)(const struct bt_announce_reply *reply, int error,
			       const char *message, void *arg);

/* udp must outlive the tracker. NULL if udp has no room for another handler. */
struct bt_udp_tracker *bt_udp_tracker_new(struct event_base *base, struct evdns_base *dns,
					  struct bt_udp *udp);
/* Cancels every request still pending (their callbacks are not called). */
void bt_udp_tracker_free(struct bt_udp_tracker *u);

/* The first retransmission delay, 15 s by default (BEP 15); tests may shorten it. */
void bt_udp_tracker_set_retry_base(struct bt_udp_tracker *u, int ms);

/*
 * Starts an announce to a udp://host:port[/...] URL. Returns NULL with err set if the URL is
 * malformed (done is then not called); otherwise done runs once, from the loop.
 */
struct bt_udp_req *bt_udp_announce(struct bt_udp_tracker *u, const char *url,
				   const struct bt_announce_req *req, bt_udp_done_fn done,
				   void *arg, struct bt_err *err);

/*
 * Called once per scrape, from the loop: reply is the tracker's counts for the torrent (error
 * 0), or NULL with error and message saying why not; an error action's text is in message.
 */
typedef void (*bt_udp_scrape_fn)(const struct bt_scrape_reply *reply, int error,
				 const char *message, void *arg);

/*
 * Starts a scrape (BEP 15 action 2) of one info hash, with the same connection ids, retries and
 * matching as announces. NULL with err set for a malformed URL; otherwise done runs once.
 */
struct bt_udp_req *bt_udp_scrape(struct bt_udp_tracker *u, const char *url,
				 const uint8_t info_hash[BT_HASH_LEN], bt_udp_scrape_fn done,
				 void *arg, struct bt_err *err);
/* Cancels an announce or a scrape whose callback has not run. NULL is a no-op. */
void bt_udp_cancel(struct bt_udp_req *r);

#endif
