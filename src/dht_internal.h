/*
 * dht_internal: what the files of the DHT core share: dht.c (the transactions, output and event
 * queues, responses, the clock and the public calls), dht_table.c (the routing table, the saved
 * state and BEP 42 ids), dht_search.c (iterative lookups and announces) and dht_serve.c
 * (answering others: tokens, stored peers, rate limits, our external address). Not for any
 * other module.
 */
#ifndef BT_DHT_INTERNAL_H
#define BT_DHT_INTERNAL_H

#include "bt/dht.h"
#include "bt/krpc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GOOD_TIME	900.0 /* BEP 5: 15 minutes */
#define REFRESH_TIME	900.0
#define SOFT_TIMEOUT	1.0
#define HARD_TIMEOUT	4.0
#define SEARCH_MAX_TIME 60.0
#define BOOTSTRAP_EVERY 30.0
#define SECRET_EVERY	300.0
#define PEER_TTL	1800.0
#define MAX_FAILS	2
#define MAX_BUCKETS	160
#define MAX_CANDS	64
#define MAX_TX		512
#define MAX_PINGS	32 /* pings of heard-of nodes outstanding at once */
#define MAX_OUT		4096
#define MAX_ROUTERS	16
#define PEERS_PER_HASH	100
#define MAX_HASHES	2000
#define TOKEN_LEN	8
#define TID_LEN		4
#define MIN_QUERY_LEN	20
#define RL_SLOTS	256
#define RL_RATE		20.0
#define RL_BURST	40.0
#define VOTE_SLOTS	8
#define VOTERS_NEEDED	4
#define MAX_TICK_WAIT	5.0
#define EXPIRE_EVERY	60.0

struct node {
	uint8_t id[BT_HASH_LEN];
	struct bt_peer_addr addr;
	double last_reply; /* 0: never replied */
	double last_query; /* last time it queried us */
	double last_seen;
	int fails;
	bool pinged; /* a query to it is outstanding */
};

struct bucket {
	struct node nodes[BT_DHT_K];
	size_t count;
	struct node cache[BT_DHT_K]; /* replacements, newest last */
	size_t cache_count;
	double last_changed;
};

enum tx_kind { TX_PING, TX_FIND_NODE, TX_SEARCH, TX_ANNOUNCE };

struct tx {
	uint8_t tid[TID_LEN];
	struct bt_peer_addr to;
	uint8_t id[BT_HASH_LEN];
	bool has_id;
	bool router;
	bool slow; /* past the soft timeout: no longer holds a search slot */
	double sent;
	enum tx_kind kind;
	int search;
	unsigned serial;
};

enum cand_state { C_NEW, C_SENT, C_REPLIED, C_FAILED };

struct cand {
	uint8_t id[BT_HASH_LEN];
	struct bt_peer_addr addr;
	enum cand_state state;
	bool slow;
	uint8_t token[BT_KRPC_MAX_TOKEN];
	size_t token_len;
};

struct search {
	bool active;
	bool internal; /* the bootstrap: bt_dht_find_node of our id, no events */
	bool announce;
	uint16_t port;
	uint8_t target[BT_HASH_LEN];
	unsigned serial;
	double started;
	int router_pending;
	struct cand c[MAX_CANDS];
	size_t n;
};

struct stored_peer {
	struct bt_peer_addr addr;
	double expires;
};

struct stored {
	uint8_t hash[BT_HASH_LEN];
	struct stored_peer peers[PEERS_PER_HASH];
	size_t count;
};

struct rl_slot {
	struct bt_peer_addr ip; /* port 0 */
	double tokens, last;
	bool used;
};

struct vote {
	struct bt_peer_addr ip;
	struct bt_peer_addr voters[VOTERS_NEEDED];
	size_t nvoters;
};

struct datagram {
	uint8_t *data;
	size_t len;
	struct bt_peer_addr to;
};

struct event {
	enum bt_dht_event_kind kind;
	uint8_t hash[BT_HASH_LEN];
	struct bt_peer_addr *peers;
	size_t count;
};

struct bt_dht {
	uint8_t id[BT_HASH_LEN];
	uint8_t fam; /* 4 or 6 */
	uint64_t rng;

	struct bucket *buckets;
	size_t nbuckets;

	struct tx *txs;
	size_t ntx, cap_tx;

	/* slot 0 is the bootstrap; allocated when first used (a search is ~8 KiB) */
	struct search *searches[BT_DHT_MAX_SEARCHES + 1];
	unsigned next_serial;

	struct bt_peer_addr routers[MAX_ROUTERS];
	size_t nrouters;

	uint8_t secret[2][BT_HASH_LEN]; /* current, previous */
	double next_rotate;

	struct stored *stored;
	size_t nstored;
	double next_expire;

	struct rl_slot rl[RL_SLOTS];
	struct vote votes[VOTE_SLOTS];

	struct datagram *out;
	size_t out_head, out_n, out_cap;
	uint8_t *out_last; /* the datagram last returned, freed on the next call */

	struct event *ev;
	size_t ev_head, ev_n, ev_cap;
	struct bt_peer_addr *ev_last;

	double next_bootstrap;
	double now; /* the latest time given to us */
	size_t queries_in, replies_in;
};

/* Shared between the files (each defined in the file its name suggests). */
int bt_dht_xor_cmp(const uint8_t *target, const uint8_t *a, const uint8_t *b);
bool bt_dht_same_ip(const struct bt_peer_addr *a, const struct bt_peer_addr *b);
bool bt_dht_addr_of(const struct bt_dht *d, const struct sockaddr *sa, socklen_t len,
		    struct bt_peer_addr *out);
bool bt_dht_is_router(const struct bt_dht *d, const struct bt_peer_addr *a);
bool bt_dht_node_good(const struct node *n, double now);
bool bt_dht_node_bad(const struct node *n);
size_t bt_dht_bucket_index(const struct bt_dht *d, const uint8_t *id);
struct node *bt_dht_find_node(struct bt_dht *d, const uint8_t *id);
struct node *bt_dht_find_addr(struct bt_dht *d, const struct bt_peer_addr *a, bool *cached);
void bt_dht_split_last(struct bt_dht *d);
void bt_dht_cache_add(struct bucket *b, const struct node *n);
void bt_dht_table_heard(struct bt_dht *d, const uint8_t *id, const struct bt_peer_addr *a,
			bool replied, bool queried, double now);
void bt_dht_table_failed(struct bt_dht *d, const uint8_t *id, const struct bt_peer_addr *a);
size_t bt_dht_table_closest(struct bt_dht *d, const uint8_t *target, struct node **out, size_t max);
void bt_dht_random_id_in_bucket(struct bt_dht *d, size_t bi, uint8_t *out);
void bt_dht_add_known(struct bt_dht *d, const uint8_t *id, const struct bt_peer_addr *a,
		      double now);
void bt_dht_expire_peers(struct bt_dht *d, double now);
bool bt_dht_rate_ok(struct bt_dht *d, const struct bt_peer_addr *from, double now);
void bt_dht_note_ip_vote(struct bt_dht *d, const struct bt_peer_addr *ip,
			 const struct bt_peer_addr *voter);
void bt_dht_reply_error(struct bt_dht *d, const struct bt_krpc_msg *m,
			const struct bt_peer_addr *to, int code, const char *msg);
void bt_dht_handle_query(struct bt_dht *d, const struct bt_krpc_msg *m,
			 const struct bt_peer_addr *from, double now);
struct search *bt_dht_search_at(struct bt_dht *d, int i);
int bt_dht_cand_find_addr(const struct search *s, const struct bt_peer_addr *a);
void bt_dht_search_step(struct bt_dht *d, int si, double now);
int bt_dht_search_start(struct bt_dht *d, int si, const uint8_t *target, bool internal,
			bool announce, uint16_t port, double now);
void bt_dht_consider_nodes(struct bt_dht *d, const struct bt_krpc_node *nodes, size_t count,
			   double now);
void bt_dht_search_reply(struct bt_dht *d, const struct tx *t, const struct bt_krpc_msg *m,
			 double now);
void bt_dht_rnd_bytes(struct bt_dht *d, uint8_t *p, size_t n);
int bt_dht_send_ping(struct bt_dht *d, const struct bt_peer_addr *to, const uint8_t *id,
		     double now);

/*
 * Puts a node into the table: into a free slot, a split of our bucket, a bad node's slot, or
 * else the replacement cache, pinging a questionable member so that a dead one makes room.
 * Returns true if it entered the bucket itself.
 */
bool bt_dht_table_put(struct bt_dht *d, const struct node *n, double now);
void bt_dht_queue_out(struct bt_dht *d, const struct bt_buf *b, const struct bt_peer_addr *to);
void bt_dht_queue_event(struct bt_dht *d, enum bt_dht_event_kind kind, const uint8_t *hash,
			const struct bt_peer_addr *peers, size_t count);
struct tx *bt_dht_tx_new(struct bt_dht *d, const struct bt_peer_addr *to, const uint8_t *id,
			 enum tx_kind kind, double now);
bool bt_dht_tx_to(const struct bt_dht *d, const struct bt_peer_addr *a);

#endif
