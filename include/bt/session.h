/*
 * session: what every command's engine runs on. One event_base, one evdns resolver, the http
 * client, the shared UDP sockets (`udp`: bound to the listen port once the session listens,
 * ephemeral until then) and the UDP tracker client on them, the listener for incoming peers, a
 * random peer id for this run ("-TC0001-" and 12 random bytes, Azureus style), SIGINT/SIGTERM
 * handling and an optional deadline. Commands create one session, start their work on it, and
 * call bt_session_run until the work calls bt_session_stop, a signal arrives, or the deadline
 * passes.
 */
#ifndef BT_SESSION_H
#define BT_SESSION_H

#include "bt/util.h"

#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct evdns_base;
struct bt_http;
struct bt_udp;
struct bt_udp_tracker;
struct bt_session;

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

/* An incoming connection: fd is ours to keep or close. */
typedef void (*bt_accept_fn)(void *arg, int fd, const struct sockaddr *sa, socklen_t len);

/*
 * Listens for peers on ip (NULL: every address) and port; port 0 takes the first one of
 * 6881-6889 free for TCP and UDP, or else any free port. The UDP sockets are bound to the same
 * address and port; if that fails they stay on an ephemeral port (not an error). Returns 0 with
 * err unset, or a negative errno.
 */
int bt_session_listen(struct bt_session *s, const char *ip, uint16_t port, bt_accept_fn fn,
		      void *arg, struct bt_err *err);
/* The port listened on, or 0. */
uint16_t bt_session_listen_port(const struct bt_session *s);

/* Runs the loop; deadline_s <= 0 means no deadline. */
enum bt_session_end bt_session_run(struct bt_session *s, double deadline_s);
void bt_session_stop(struct bt_session *s);

#endif
