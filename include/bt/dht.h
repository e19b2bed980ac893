/*
 * dht: the sans-I/O core of a Mainline DHT node (BEP 5, with BEP 42's external address). It owns
 * the routing table, the outstanding queries (transaction ids), the iterative searches, the
 * tokens and the peers stored for others. It never touches a socket or reads a clock: the glue
 * (`dht_net`) hands it each datagram with the time, sends what bt_dht_next_output returns, and
 * calls bt_dht_tick when the time bt_dht_tick last returned has come. Messages are parsed and
 * built by `krpc`.
 *
 * Routing table: buckets by the length of the prefix an id shares with ours (k = 8 nodes each, so
 * only the bucket holding our id splits), each with a replacement cache of 8. A node is good if
 * it replied within 15 minutes, or queried us within 15 minutes after having replied once; bad
 * after 2 failed queries in a row; questionable otherwise. A full bucket takes a new node only in
 * place of a bad one; meanwhile the newcomer waits in the cache and a questionable member is
 * pinged. Nodes heard of in replies are pinged (never inserted unheard), so only addresses that
 * answered from the id they claim enter the table; an id already held by a good node, or an
 * address already held under another id, is not taken over. Routers are used to bootstrap and
 * never enter the table. A bucket untouched for 15 minutes is refreshed by a find_node of a random
 * id in it. While fewer than 8 nodes are good, a lookup of our own id runs every 30 s (the
 * bootstrap), through the routers and the nodes known.
 *
 * Searches: iterative get_peers with 5 queries in flight; a query unanswered after 1 s frees its
 * slot (its answer is still used) and fails after 4 s. A search ends when the 8 closest nodes
 * seen (by the id they answered with) have answered; with announce, it then sends announce_peer
 * to them with their tokens. Peers found are reported as events while it runs.
 *
 * Serving: ping, find_node, get_peers (stored peers if any, else the 8 closest nodes; always a
 * token), announce_peer (the token must be ours for the requester's IP: 8 bytes of SHA-1 over a
 * secret and the IP; the secret rotates every 5 minutes and the previous one is accepted). At
 * most 100 peers per info hash and 2000 info hashes are stored, each peer for 30 minutes. Each
 * source IP may send 20 queries a second (burst 40); beyond that queries are dropped unanswered.
 * Replies stay within 1024 bytes; queries under 20 bytes are not answered (nothing we send is
 * much larger than what provoked it). Malformed queries get error 203, unknown methods without a
 * target or info_hash error 204; an unknown method with one is answered like find_node. Replies
 * whose transaction id is unknown or that come from another address than the query went to, and
 * every message claiming our own id, are ignored.
 *
 * The core speaks one address family (the socket's): IPv4 nodes in `nodes` or IPv6 ones in
 * `nodes6` (BEP 32). Randomness (transaction ids, refresh targets, token secrets) comes from
 * cfg->secret_seed through a deterministic generator, so a simulation with fixed seeds repeats.
 */
#ifndef BT_DHT_H
#define BT_DHT_H

#include "bt/tracker_proto.h"
#include "bt/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define BT_DHT_K	    8	 /* nodes per bucket, and the closest nodes a search ends on */
#define BT_DHT_ALPHA	    5	 /* queries a search keeps in flight */
#define BT_DHT_MAX_SEARCHES 32	 /* searches started by bt_dht_search at once */
#define BT_DHT_SAVE_NODES   300	 /* nodes kept by bt_dht_save */
#define BT_DHT_MAX_REPLY    1024 /* UDP payload of anything we send */

struct bt_dht_config {
	uint8_t id[BT_HASH_LEN];
	int family;		 /* AF_INET or AF_INET6 */
	uint8_t secret_seed[16]; /* random bytes from the caller: tokens, transaction ids */
};

struct bt_dht;

/* NULL if cfg->family is neither AF_INET nor AF_INET6. */
struct bt_dht *bt_dht_new(const struct bt_dht_config *cfg, double now);
void bt_dht_free(struct bt_dht *d);

/*
 * A datagram arrived from `from`. Anything may arrive: what is not a well-formed KRPC message is
 * answered with an error (a query we can still address) or dropped. May queue datagrams and
 * events; bt_dht_tick's next wake-up may move earlier, so call it again afterwards.
 */
void bt_dht_input(struct bt_dht *d, const uint8_t *p, size_t len, const struct sockaddr *from,
		  socklen_t fromlen, double now);

/* A datagram to send. */
struct bt_dht_datagram {
	const uint8_t *data;
	size_t len;
	struct sockaddr_storage to;
	socklen_t tolen;
};

/* The next datagram to send, in order: false when none are left. out->data is valid until the
 * next call (or bt_dht_free). */
bool bt_dht_next_output(struct bt_dht *d, struct bt_dht_datagram *out);

/* Runs timeouts and periodic work (bootstrap, refresh, secret rotation, expiry). Returns the time
 * at which to call it next (never later than now + 5 s). */
double bt_dht_tick(struct bt_dht *d, double now);

/* A bootstrap router (its name resolved by the glue): queried by lookups, never kept in the
 * table. Duplicates are ignored; at most 16 routers. */
void bt_dht_add_router(struct bt_dht *d, const struct sockaddr *sa, socklen_t len);
/*
 * A node learned elsewhere (a PORT message, a torrent's `nodes`, or the state file through
 * bt_dht_load). With an id it enters the table as questionable (or the replacement cache if its
 * bucket is full); without one it is pinged, and enters the table when it answers.
 */
void bt_dht_add_node(struct bt_dht *d, const uint8_t *id_or_null, const struct sockaddr *sa,
		     socklen_t len, double now);

/*
 * Starts (or restarts) an iterative get_peers for info_hash; with announce, announce_peer to the
 * closest nodes at the end (port, or implied_port when port == 0). Returns 0, or -ENOSPC when
 * BT_DHT_MAX_SEARCHES searches are running. A restart drops the running search's progress and
 * reports no BT_DHT_SEARCH_DONE for it.
 */
int bt_dht_search(struct bt_dht *d, const uint8_t info_hash[BT_HASH_LEN], bool announce,
		  uint16_t port, double now);

/* Results: peers found (repeatedly during a search; duplicates possible across events) and the
 * end of a search (count = 0, peers NULL). */
enum bt_dht_event_kind { BT_DHT_PEERS, BT_DHT_SEARCH_DONE };
struct bt_dht_event {
	enum bt_dht_event_kind kind;
	uint8_t info_hash[BT_HASH_LEN];
	const struct bt_peer_addr *peers;
	size_t count;
};
/* The next event, in order: false when none are left. out->peers is valid until the next call. */
bool bt_dht_next_event(struct bt_dht *d, struct bt_dht_event *out);

/* For the progress line. queries_in and replies_in count accepted messages since bt_dht_new. */
struct bt_dht_stats {
	size_t good, nodes, searches, stored_peers, queries_in, replies_in;
};
void bt_dht_get_stats(const struct bt_dht *d, struct bt_dht_stats *out);

/*
 * State: bt_dht_save appends a bencoded dict {"id": 20 bytes, "nodes" or "nodes6": compact nodes}
 * with up to BT_DHT_SAVE_NODES nodes that have answered us, good ones first. bt_dht_load reads
 * one back: it takes the id as ours (the table is rebuilt around it) and adds the nodes like
 * bt_dht_add_node. A blob that does not parse, lacks the id, or has nodes of the wrong length
 * returns -EINVAL and changes nothing (a corrupt state file is not an error for the caller).
 */
void bt_dht_save(const struct bt_dht *d, struct bt_buf *out);
int bt_dht_load(struct bt_dht *d, const uint8_t *p, size_t len, double now);

/* Our current id. */
const uint8_t *bt_dht_id(const struct bt_dht *d);
/* Takes a new id (BEP 42's, once our external address is known), keeping the table's nodes. */
void bt_dht_set_id(struct bt_dht *d, const uint8_t id[BT_HASH_LEN], double now);

/*
 * Our external address as the `ip` of replies says it (BEP 42), once 4 different nodes agree:
 * true and *out filled, else false. The caller may then derive a BEP 42 id with bt_dht_bep42_id
 * and restart the node with it.
 */
bool bt_dht_external_ip(const struct bt_dht *d, struct bt_peer_addr *out);
/* The BEP 42 id for an external IP: its first 21 bits from CRC32-C of the masked IP and
 * rnd[19] & 7, the rest from rnd, the last byte rnd[19]. */
void bt_dht_bep42_id(const struct bt_peer_addr *ip, const uint8_t rnd[BT_HASH_LEN],
		     uint8_t id_out[BT_HASH_LEN]);

#endif
