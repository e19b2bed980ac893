/*
 * tracker_proto: the tracker protocols as pure functions over bytes. HTTP announce URLs (BEP 3
 * with BEP 23 compact replies and BEP 7 IPv6 peers) and their replies; BEP 15 UDP packets.
 * No I/O here: `http`, `udp_tracker` and `tracker` call these to build what they send and to make
 * sense of what comes back. Replies are untrusted input: every length is checked, bad peer
 * entries are skipped and counted, and a malformed reply yields an error naming what was wrong.
 */
#ifndef BT_TRACKER_PROTO_H
#define BT_TRACKER_PROTO_H

#include "bt/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Values as BEP 15 numbers them; the HTTP names are "", "completed", "started", "stopped". */
enum bt_tracker_event {
	BT_TRACKER_EVENT_NONE = 0,
	BT_TRACKER_EVENT_COMPLETED = 1,
	BT_TRACKER_EVENT_STARTED = 2,
	BT_TRACKER_EVENT_STOPPED = 3,
};

struct bt_announce_req {
	uint8_t info_hash[BT_HASH_LEN];
	uint8_t peer_id[BT_PEER_ID_LEN];
	uint16_t port;
	int64_t uploaded;
	int64_t downloaded;
	int64_t left;
	enum bt_tracker_event event;
	int32_t numwant; /* -1: the tracker's default */
	uint32_t key;
	/*
	 * BEP 7: our global IPv6 address, sent as `ipv6=` to HTTP trackers so that an announce
	 * over IPv4 also lists us for IPv6 peers. has_ipv6 false: not sent (see bt_ipv6_is_global).
	 */
	bool has_ipv6;
	uint8_t ipv6[16];
};

/* A peer's address: family is 4 or 6; addr holds 4 or 16 bytes in network order. */
struct bt_peer_addr {
	uint8_t family;
	uint8_t addr[16];
	uint16_t port;
};

/* Formats "1.2.3.4:5" or "[::1]:5" into out (at least BT_PEER_ADDR_STRLEN bytes). */
#define BT_PEER_ADDR_STRLEN 64
void bt_peer_addr_format(const struct bt_peer_addr *a, char *out);
bool bt_peer_addr_equal(const struct bt_peer_addr *a, const struct bt_peer_addr *b);
/*
 * Takes the address and port of an IPv4 or IPv6 socket address (an IPv4-mapped IPv6 address
 * becomes IPv4, as trackers list it). Returns false, with out zeroed, for any other family.
 */
bool bt_peer_addr_from_sockaddr(const struct sockaddr *sa, struct bt_peer_addr *out);
/* The socket address of a peer address; returns its length (0 for an unknown family). */
unsigned bt_peer_addr_to_sockaddr(const struct bt_peer_addr *a, struct sockaddr_storage *out);

/*
 * Whether an IPv6 address is worth telling a tracker as our own (BEP 7's `ipv6=`): global
 * unicast (2000::/3) only. Loopback, link-local, unique-local (fc00::/7), IPv4-mapped and
 * documentation (2001:db8::/32) addresses reach no peer elsewhere, so announcing them would
 * only hand the swarm addresses that fail.
 */
bool bt_ipv6_is_global(const uint8_t addr[16]);

struct bt_announce_reply {
	char *failure;	  /* "failure reason": the announce failed; nothing else is set */
	char *warning;	  /* "warning message", or NULL */
	int64_t interval; /* seconds, or -1 when absent */
	int64_t min_interval;
	int64_t complete;   /* seeders, or -1 */
	int64_t incomplete; /* leechers, or -1 */
	struct bt_peer_addr *peers;
	size_t peer_count;
	size_t bad_peers; /* entries skipped: malformed, port 0, trailing bytes */
	/*
	 * Our own entry as the tracker lists it among the peers: the local address the announce
	 * left from, and the port announced. Set by the I/O layer (`announce`, `udp_tracker`), not
	 * by the parsers; family 0 when unknown. Behind a NAT the tracker sees another address.
	 */
	struct bt_peer_addr self;
};

void bt_announce_reply_deinit(struct bt_announce_reply *r);

/*
 * Builds the announce URL for an HTTP(S) tracker: the tracker's URL with the query parameters
 * appended (after any query string already there; a #fragment is dropped). Binary values are
 * percent-encoded. Returns a string the caller frees.
 */
char *bt_tracker_http_url(const char *announce, const struct bt_announce_req *req);

/*
 * Parses an HTTP tracker's reply body. Returns 0 (also for a "failure reason" reply: check
 * reply->failure), or -EINVAL with err saying what is wrong with the body.
 */
int bt_tracker_parse_http(const uint8_t *body, size_t len, struct bt_announce_reply *reply,
			  struct bt_err *err);

/*
 * BEP 48 scrape. The scrape URL of an HTTP(S) announce URL: when the last path component starts
 * with "announce", that word replaced by "scrape" (the rest of the component and the query are
 * kept), with info_hash appended; otherwise the tracker has no scrape and this returns NULL.
 * The caller frees the string.
 */
char *bt_tracker_scrape_url(const char *announce, const uint8_t info_hash[BT_HASH_LEN]);

/* What a scrape says about one torrent; every count -1 when unknown. */
struct bt_scrape_reply {
	char *failure;	    /* "failure reason" (HTTP) or the error action's message (UDP) */
	int64_t complete;   /* seeders */
	int64_t incomplete; /* leechers */
	int64_t downloaded; /* completed downloads ever reported */
};

void bt_scrape_reply_deinit(struct bt_scrape_reply *r);

/*
 * Parses an HTTP scrape reply: {"files": {<20-byte info hash>: {"complete", "incomplete",
 * "downloaded"}}}, looking up info_hash. Returns 0 (also for a "failure reason" reply: check
 * reply->failure), or -EINVAL with err naming what is wrong (not bencoded, no "files"
 * dictionary, our torrent not in it, a count missing or not a non-negative integer).
 */
int bt_tracker_parse_scrape(const uint8_t *body, size_t len, const uint8_t info_hash[BT_HASH_LEN],
			    struct bt_scrape_reply *reply, struct bt_err *err);

/* BEP 15 */
#define BT_UDP_PROTOCOL_ID  0x41727101980ULL
#define BT_UDP_CONNECT_LEN  16
#define BT_UDP_ANNOUNCE_LEN 98
#define BT_UDP_SCRAPE_LEN   36 /* a scrape for one info hash */

enum bt_udp_action {
	BT_UDP_CONNECT = 0,
	BT_UDP_ANNOUNCE = 1,
	BT_UDP_SCRAPE = 2,
	BT_UDP_ERROR = 3,
};

void bt_udp_connect_request(uint8_t out[BT_UDP_CONNECT_LEN], uint32_t transaction_id);
void bt_udp_announce_request(uint8_t out[BT_UDP_ANNOUNCE_LEN], uint64_t connection_id,
			     uint32_t transaction_id, const struct bt_announce_req *req);

void bt_udp_scrape_request(uint8_t out[BT_UDP_SCRAPE_LEN], uint64_t connection_id,
			   uint32_t transaction_id, const uint8_t info_hash[BT_HASH_LEN]);

enum bt_udp_result {
	BT_UDP_OK,     /* the expected reply: connection_id or the announce reply is filled in */
	BT_UDP_IGNORE, /* not for us (short, other transaction id, unexpected action): keep waiting
			*/
	BT_UDP_FAILED, /* an error action: reply->failure holds the tracker's message */
};

/*
 * Checks a datagram against the request it should answer (transaction id and action). For a
 * connect reply, sets *connection_id_out; for an announce reply, fills reply (peers are 6-byte
 * IPv4 entries, or 18-byte IPv6 ones when ipv6 is set, as BEP 15 sends over IPv6).
 */
enum bt_udp_result bt_udp_parse_reply(const uint8_t *p, size_t n, uint32_t transaction_id,
				      enum bt_udp_action expected, bool ipv6,
				      uint64_t *connection_id_out, struct bt_announce_reply *reply);

/*
 * Checks a datagram against a scrape for one info hash (transaction id, action 2, at least the
 * 12 bytes of the first entry: seeders, completed, leechers) and fills reply. An error action
 * gives BT_UDP_FAILED with reply->failure; anything else that is not the answer, BT_UDP_IGNORE.
 */
enum bt_udp_result bt_udp_parse_scrape(const uint8_t *p, size_t n, uint32_t transaction_id,
				       struct bt_scrape_reply *reply);

#endif
