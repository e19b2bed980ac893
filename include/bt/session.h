/*
 * session: what every torrent of a process shares. One event_base, one evdns resolver, the http
 * client, the shared UDP sockets (`udp`: bound to the listen port once the session listens,
 * ephemeral until then) and the UDP tracker client on them, one listener for incoming peers
 * with its handshake router (each accepted connection's 68-byte handshake is read here and the
 * socket handed to the torrent registered for its info hash; anything else is closed before we
 * send a byte), the global rate buckets (--max-down, --max-up over every torrent), the source
 * address connections and announces leave from (--listen), a random peer id for this run
 * ("-TC0001-" and 12 random bytes, Azureus style), SIGINT/SIGTERM handling and an optional
 * deadline. Torrents know the session; the session knows torrents only through their
 * registrations. Front doors create one session, start their work on it, and call
 * bt_session_run until the work calls bt_session_stop, a signal arrives, or the deadline passes.
 */
#ifndef BT_SESSION_H
#define BT_SESSION_H

#include "bt/router.h"
#include "bt/util.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct evdns_base;
struct bt_http;
struct bt_udp;
struct bt_udp_tracker;
struct bt_session;
struct bt_rate_limit;

#define BT_PEER_ID_PREFIX "-TC0001-"

enum bt_session_end {
	BT_SESSION_STOPPED,	/* bt_session_stop was called */
	BT_SESSION_INTERRUPTED, /* SIGINT or SIGTERM */
	BT_SESSION_DEADLINE,	/* the deadline passed */
};

struct bt_session *bt_session_new(struct bt_err *err);
void bt_session_free(struct bt_session *s);

struct event_base *bt_session_base(struct bt_session *s);
struct evdns_base *bt_session_dns(struct bt_session *s);
struct bt_http *bt_session_http(struct bt_session *s);
/* The UDP tracker client (BEP 15), on the shared UDP sockets. */
struct bt_udp_tracker *bt_session_udp(struct bt_session *s);
/* The shared UDP sockets themselves, for the protocols that register their own handler. */
struct bt_udp *bt_session_udp_socket(struct bt_session *s);
const uint8_t *bt_session_peer_id(const struct bt_session *s);

/*
 * Listens for peers on ip (NULL: every address) and port; port 0 takes the first one of
 * 6881-6889 free for TCP and UDP, or else any free port. With ip NULL the one TCP socket is
 * IPv6 with IPV6_V6ONLY off, so IPv4 and IPv6 peers (BEP 7) reach the same port (IPv4 only on a
 * kernel without IPv6); an IPv4 peer is handed on with its plain IPv4 address, never as
 * ::ffff:a.b.c.d. With an address, only that address. The UDP sockets are bound to the same
 * address(es) and port; if that fails they stay on an ephemeral port (not an error). Incoming
 * connections are routed by the info hash of their handshake to the registered torrents.
 * Returns 0 with err unset, or a negative errno.
 */
int bt_session_listen(struct bt_session *s, const char *ip, uint16_t port, struct bt_err *err);

/* Incoming connections for this info hash go to fn. Returns 0, or -EEXIST. */
int bt_session_register(struct bt_session *s, const uint8_t info_hash[BT_HASH_LEN],
			bt_incoming_fn fn, void *arg);
void bt_session_unregister(struct bt_session *s, const uint8_t info_hash[BT_HASH_LEN]);
/* Incoming connections closed without being routed (not a handshake, unknown info hash). */
uint64_t bt_session_rejected(const struct bt_session *s);

/* The global rate limits in bytes/s (0: unlimited), shared by every peer of every torrent. */
void bt_session_set_limits(struct bt_session *s, double max_down, double max_up);
struct bt_rate_limit *bt_session_down_limit(struct bt_session *s);
struct bt_rate_limit *bt_session_up_limit(struct bt_session *s);

/* Connections and announces leave from this IP (--listen). 0 or -EINVAL. */
int bt_session_set_source(struct bt_session *s, const char *ip, struct bt_err *err);
/* The source address (port 0) or NULL; and its text form or NULL. */
const struct sockaddr *bt_session_source(const struct bt_session *s, socklen_t *len_out);
const char *bt_session_source_ip(const struct bt_session *s);

/* True when sa is our own listening address and port (a tracker listing us, say). */
bool bt_session_is_self(const struct bt_session *s, const struct sockaddr *sa);
/* The port listened on, or 0. */
uint16_t bt_session_listen_port(const struct bt_session *s);

struct bt_dht_net;
struct bt_session_dht_opts {
	const char *const *routers; /* "host:port"; NULL: the default routers; see dht_net.h */
	size_t nrouters;
	const char *state_dir; /* NULL: no state kept */
	uint16_t port;	       /* the DHT's UDP port; 0: the shared UDP sockets (the listen port) */
};
/*
 * Starts the DHT node (dht_net.h), after bt_session_listen so that it shares the listen port
 * (unless o->port asks for another). Torrents then find peers through it. 0 or a negative errno.
 */
int bt_session_enable_dht(struct bt_session *s, const struct bt_session_dht_opts *o,
			  struct bt_err *err);
/* The DHT node, or NULL when it is off. */
struct bt_dht_net *bt_session_dht(struct bt_session *s);

/* Runs the loop; deadline_s <= 0 means no deadline. */
enum bt_session_end bt_session_run(struct bt_session *s, double deadline_s);
void bt_session_stop(struct bt_session *s);

#endif
