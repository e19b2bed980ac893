/*
 * dht_net: the DHT's glue (layer 2) around the sans-I/O core (dht.h). One core per address family
 * the UDP sockets have (IPv4 always, IPv6 when the socket is bound on IPv6), fed the KRPC datagrams
 * the udp module demultiplexes to it (first byte 'd'); one libevent timer armed at the earliest of
 * the cores' wake-ups and the searches' schedules; the bootstrap routers' names resolved through
 * the session's evdns (never a blocking lookup); the node id and good nodes loaded from the state
 * file at start and saved atomically (write, fsync, rename) every 5 minutes and when freed.
 *
 * Torrents subscribe their info hash: each gets the peers found for it, and its search is repeated
 * while it is subscribed (every 15 minutes, with announce_peer when asked; after 30 s when one
 * found nothing; after 5 s while the node is still joining, and for the first two empty rounds).
 * The routers are used only to join (the core never keeps them). Owned by the session; a
 * subscription is removed by its torrent before it goes.
 */
#ifndef BT_DHT_NET_H
#define BT_DHT_NET_H

#include "bt/dht.h"
#include "bt/tracker_proto.h"
#include "bt/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct evdns_base;
struct bt_udp;
struct bt_dht_net;

/* The routers used when none are given. */
extern const char *const bt_dht_default_routers[];
#define BT_DHT_DEFAULT_ROUTERS 4

#define BT_DHT_RESEARCH_S      900 /* a search is repeated (and re-announced) this often */
#define BT_DHT_RETRY_S	       30  /* ... or this soon when it found nothing */
#define BT_DHT_JOINING_RETRY_S 5   /* ... or this soon when the node knows few good nodes yet */
#define BT_DHT_SAVE_S	       300 /* the state file is saved this often */

struct bt_dht_net_opts {
	/* "host:port" (IPv6 hosts in brackets); routers NULL: the defaults; nrouters 0 with
	 * routers non-NULL: none. */
	const char *const *routers;
	size_t nrouters;
	/* Where the state goes ("<dir>/dht.dat" and "<dir>/dht6.dat"); NULL: not kept. */
	const char *state_dir;
	uint16_t port; /* announced with announce_peer (our TCP listen port) */
};

struct bt_dht_net_stats {
	size_t nodes, good;   /* over both families */
	size_t searches;      /* running in the cores */
	uint64_t peers_found; /* addresses reported to subscribers */
	uint64_t queries_in;  /* queries answered for others */
};

/* The state directory: $XDG_STATE_HOME/torrent, else $HOME/.local/state/torrent; NULL if
 * neither is set. Caller frees. */
char *bt_dht_state_dir(void);

/* Starts the node on udp (whose handler it registers). Returns NULL with err set on failure. */
struct bt_dht_net *bt_dht_net_new(struct event_base *base, struct evdns_base *dns,
				  struct bt_udp *udp, const struct bt_dht_net_opts *o,
				  struct bt_err *err);
/* Saves the state and stops. */
void bt_dht_net_free(struct bt_dht_net *n);

/* Peers found for a subscription; returns how many were of use (not ourselves): a round that
 * found only our own announce counts as finding nothing. */
typedef size_t (*bt_dht_peers_fn)(void *arg, const struct bt_peer_addr *peers, size_t count);
/* Searches for info_hash now and then repeatedly; peers go to fn. 0, -EEXIST or -ENOSPC. */
int bt_dht_net_subscribe(struct bt_dht_net *n, const uint8_t info_hash[BT_HASH_LEN], bool announce,
			 bt_dht_peers_fn fn, void *arg);
void bt_dht_net_unsubscribe(struct bt_dht_net *n, const uint8_t info_hash[BT_HASH_LEN]);
/* A node heard of elsewhere (a peer's PORT message, a torrent's `nodes`): pinged, kept if good. */
void bt_dht_net_add_node(struct bt_dht_net *n, const struct sockaddr *sa, socklen_t len);
/* The same for "host:port" (a torrent's `nodes`), resolved first. */
void bt_dht_net_add_node_name(struct bt_dht_net *n, const char *host_port);
void bt_dht_net_get_stats(const struct bt_dht_net *n, struct bt_dht_net_stats *out);
/* True while the DHT may still bring peers: it knows nodes, or has routers (or is resolving
 * their names), or a search is running. */
bool bt_dht_net_hopeful(const struct bt_dht_net *n);
/* The UDP port the node answers on. */
uint16_t bt_dht_net_port(const struct bt_dht_net *n);

#endif
