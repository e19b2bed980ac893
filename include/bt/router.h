/*
 * router: which torrent an incoming connection belongs to, decided from the bytes of its
 * handshake alone. Pure: it holds the registry (info hash → the torrent's callback and
 * argument) and judges a handshake prefix of any length: NEED_MORE while it can still be a
 * handshake, REJECT as soon as it cannot (not the BitTorrent protocol string) or once the whole
 * 68 bytes name an info hash nobody registered, ROUTE with the registered entry otherwise. The
 * session feeds it what an accepted socket has sent; a rejected connection is closed before we
 * send a byte, so a stranger learns nothing about which torrents we have.
 */
#ifndef BT_ROUTER_H
#define BT_ROUTER_H

#include "bt/util.h"
#include "bt/wire.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An incoming connection for a registered torrent: fd is now the callee's, the handshake in h
 * has been read from it, and nothing has been sent yet. */
typedef void (*bt_incoming_fn)(void *arg, int fd, const struct sockaddr *sa, socklen_t len,
			       const struct bt_handshake *h);

struct bt_router_entry {
	uint8_t info_hash[BT_HASH_LEN];
	bt_incoming_fn fn;
	void *arg;
};

struct bt_router {
	struct bt_router_entry *entries;
	size_t n, cap;
};

enum bt_route {
	BT_ROUTE_NEED_MORE,
	BT_ROUTE_OK,
	BT_ROUTE_REJECT,
};

void bt_router_init(struct bt_router *r);
void bt_router_deinit(struct bt_router *r);
/* Returns 0, or -EEXIST if that info hash is registered already. */
int bt_router_add(struct bt_router *r, const uint8_t info_hash[BT_HASH_LEN], bt_incoming_fn fn,
		  void *arg);
/* Forgets the info hash (no-op if unknown). */
void bt_router_remove(struct bt_router *r, const uint8_t info_hash[BT_HASH_LEN]);
const struct bt_router_entry *bt_router_find(const struct bt_router *r,
					     const uint8_t info_hash[BT_HASH_LEN]);

/*
 * Judges the first n bytes an incoming connection sent. On OK, *h_out is its handshake and
 * *entry_out the torrent it goes to; on REJECT, err says why ("not a BitTorrent handshake",
 * "unknown info hash <hex>").
 */
enum bt_route bt_router_route(const struct bt_router *r, const uint8_t *p, size_t n,
			      struct bt_handshake *h_out, const struct bt_router_entry **entry_out,
			      struct bt_err *err);

#endif
