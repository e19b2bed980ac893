/*
 * krpc: the DHT's messages (BEP 5's KRPC, with BEP 32's `nodes6` and `want`, BEP 42's `ip` and
 * BEP 43's `ro`) as pure functions over bytes. It owns nothing but the codec: the DHT core
 * (`dht`) calls bt_krpc_parse on every datagram the UDP demultiplexer hands it (bt_krpc_is) and
 * the bt_krpc_put_* encoders to build what it sends; which queries are outstanding, what a
 * transaction id means and whether a token is valid are the core's business, not this module's.
 *
 * Datagrams are untrusted. The parser refuses anything over BT_KRPC_MAX_DATAGRAM bytes before
 * looking inside, parses with the strict bencode parser under a small depth and node budget, and
 * then checks every key it reads: a key we read that has the wrong type, or a length that makes
 * the whole value unusable (an id that is not 20 bytes, `nodes` that is not a multiple of 26), is
 * an error naming the key ("krpc: a.id is 19 bytes"). An entry that is merely malformed inside a
 * usable value (a `values` string that is neither 6 nor 18 bytes, a node or peer with port 0, an
 * `ip` of the wrong length) is skipped. Unknown keys are ignored. Counts are capped (the rest is
 * dropped, not an error): BT_KRPC_MAX_NODES per family, BT_KRPC_MAX_VALUES peers.
 *
 * Encoders write canonical bencode (sorted keys) with our version `v` = "TC01" on every message.
 * A reply of 8 nodes, 8 nodes6, a token and `ip` stays well inside 1024 bytes; `values` cost 8
 * (IPv4) or 20 (IPv6) bytes each, so the caller caps how many it puts in one reply.
 */
#ifndef BT_KRPC_H
#define BT_KRPC_H

#include "bt/tracker_proto.h"
#include "bt/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BT_KRPC_MAX_NODES  16  /* nodes kept from one reply (per family) */
#define BT_KRPC_MAX_VALUES 100 /* peers kept from one get_peers reply */
#define BT_KRPC_MAX_TOKEN  64
#define BT_KRPC_MAX_TID	   16
/* Larger datagrams are refused unread: real KRPC messages fit in one unfragmented packet. */
#define BT_KRPC_MAX_DATAGRAM 8192
/* Our client version (BEP 20 style: two letters, two digits), sent as `v`. */
#define BT_KRPC_VERSION "TC01"

/* The lengths of one compact node: id + IPv4 + port, id + IPv6 + port. */
#define BT_KRPC_NODE4_LEN 26
#define BT_KRPC_NODE6_LEN 38

enum bt_krpc_type { BT_KRPC_QUERY, BT_KRPC_RESPONSE, BT_KRPC_ERROR };
enum bt_krpc_method {
	BT_KRPC_PING,
	BT_KRPC_FIND_NODE,
	BT_KRPC_GET_PEERS,
	BT_KRPC_ANNOUNCE_PEER,
	BT_KRPC_OTHER,
};

/* BEP 5's error codes. */
#define BT_KRPC_ERR_GENERIC  201
#define BT_KRPC_ERR_SERVER   202
#define BT_KRPC_ERR_PROTOCOL 203
#define BT_KRPC_ERR_METHOD   204

struct bt_krpc_node {
	uint8_t id[BT_HASH_LEN];
	struct bt_peer_addr addr;
};

struct bt_krpc_msg {
	enum bt_krpc_type type;
	uint8_t tid[BT_KRPC_MAX_TID];
	size_t tid_len;
	enum bt_krpc_method method; /* queries; BT_KRPC_OTHER for responses and errors */
	bool has_id;
	uint8_t id[BT_HASH_LEN]; /* a.id or r.id */
	bool has_target;
	uint8_t target[BT_HASH_LEN]; /* find_node target, or an unknown method's target */
	bool has_info_hash;
	uint8_t info_hash[BT_HASH_LEN];
	uint16_t port; /* announce_peer; 0 when implied_port is set and no port was given */
	bool implied_port;
	uint8_t token[BT_KRPC_MAX_TOKEN];
	size_t token_len;
	bool want_n4, want_n6; /* BEP 32 `want` */
	bool read_only;	       /* BEP 43 `ro` */
	struct bt_krpc_node nodes[BT_KRPC_MAX_NODES];
	size_t node_count; /* compact nodes (26 B) */
	struct bt_krpc_node nodes6[BT_KRPC_MAX_NODES];
	size_t node6_count; /* nodes6 (38 B) */
	struct bt_peer_addr values[BT_KRPC_MAX_VALUES];
	size_t value_count;	/* 6 or 18 B each */
	struct bt_peer_addr ip; /* BEP 42 top-level `ip`; family 0 if absent */
	int error_code;
	char error_msg[128]; /* errors; control characters replaced by '?' */
};

/*
 * Parses one datagram. Returns 0, or -EINVAL with err naming the problem ("krpc: a.id is 19
 * bytes"). Unknown keys are ignored. A query whose method is unknown parses as BT_KRPC_OTHER
 * with target/info_hash if present as 20-byte strings (so it can be answered like find_node).
 * A query needs a.id and its method's arguments; a response needs r.id; an error needs `e` as
 * [code, message]. On -EINVAL, out->tid_len is nonzero only if both `t` and `y` were read, in
 * which case out->tid and out->type hold them, so a malformed query can still be answered
 * with error 203.
 */
int bt_krpc_parse(struct bt_krpc_msg *out, const uint8_t *p, size_t len, struct bt_err *err);

void bt_krpc_put_ping(struct bt_buf *b, const uint8_t *tid, size_t tid_len,
		      const uint8_t id[BT_HASH_LEN]);
/* `want` is sent only when want_n4 or want_n6 is set. */
void bt_krpc_put_find_node(struct bt_buf *b, const uint8_t *tid, size_t tid_len,
			   const uint8_t id[BT_HASH_LEN], const uint8_t target[BT_HASH_LEN],
			   bool want_n4, bool want_n6);
void bt_krpc_put_get_peers(struct bt_buf *b, const uint8_t *tid, size_t tid_len,
			   const uint8_t id[BT_HASH_LEN], const uint8_t info_hash[BT_HASH_LEN],
			   bool want_n4, bool want_n6);
/* `implied_port` is sent (as 1) only when set; `port` is always sent. */
void bt_krpc_put_announce_peer(struct bt_buf *b, const uint8_t *tid, size_t tid_len,
			       const uint8_t id[BT_HASH_LEN], const uint8_t info_hash[BT_HASH_LEN],
			       uint16_t port, bool implied_port, const uint8_t *token,
			       size_t token_len);

/*
 * A reply: id always; nodes/nodes6/values/token as given (NULL/0 to omit); requester_ip for
 * `ip` (NULL to omit). Entries of the wrong family (an IPv6 address in `nodes`, an IPv4 one in
 * `nodes6`, family 0 in `values`) are left out.
 */
struct bt_krpc_reply {
	const struct bt_krpc_node *nodes;
	size_t node_count;
	const struct bt_krpc_node *nodes6;
	size_t node6_count;
	const struct bt_peer_addr *values;
	size_t value_count;
	const uint8_t *token;
	size_t token_len;
	const struct bt_peer_addr *requester_ip;
};

/* r may be NULL for a reply with the id only (ping, announce_peer). */
void bt_krpc_put_reply(struct bt_buf *b, const uint8_t *tid, size_t tid_len,
		       const uint8_t id[BT_HASH_LEN], const struct bt_krpc_reply *r);
void bt_krpc_put_error(struct bt_buf *b, const uint8_t *tid, size_t tid_len, int code,
		       const char *msg);

/* True if p looks like a KRPC message (a bencoded dict: first byte 'd'), for the UDP demux. */
bool bt_krpc_is(const uint8_t *p, size_t len);

#endif
