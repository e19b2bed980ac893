#include "bt/router.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bt_router_init(struct bt_router *r)
{
	memset(r, 0, sizeof *r);
}

void bt_router_deinit(struct bt_router *r)
{
	free(r->entries);
	memset(r, 0, sizeof *r);
}

const struct bt_router_entry *bt_router_find(const struct bt_router *r,
					     const uint8_t info_hash[BT_HASH_LEN])
{
	/* A session holds a handful of torrents, rarely hundreds: a scan is the right size. */
	for (size_t i = 0; i < r->n; i++)
		if (memcmp(r->entries[i].info_hash, info_hash, BT_HASH_LEN) == 0)
			return &r->entries[i];
	return NULL;
}

int bt_router_add(struct bt_router *r, const uint8_t info_hash[BT_HASH_LEN], bt_incoming_fn fn,
		  void *arg)
{
	if (bt_router_find(r, info_hash))
		return -EEXIST;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 4;
		r->entries = bt_xreallocarray(r->entries, r->cap, sizeof *r->entries);
	}
	struct bt_router_entry *e = &r->entries[r->n++];
	memcpy(e->info_hash, info_hash, BT_HASH_LEN);
	e->fn = fn;
	e->arg = arg;
	return 0;
}

void bt_router_remove(struct bt_router *r, const uint8_t info_hash[BT_HASH_LEN])
{
	const struct bt_router_entry *e = bt_router_find(r, info_hash);
	if (!e)
		return;
	size_t i = (size_t)(e - r->entries);
	r->entries[i] = r->entries[--r->n];
}

enum bt_route bt_router_route(const struct bt_router *r, const uint8_t *p, size_t n,
			      struct bt_handshake *h_out, const struct bt_router_entry **entry_out,
			      struct bt_err *err)
{
	switch (bt_wire_parse_handshake(p, n, h_out, err)) {
	case BT_WIRE_NEED_MORE:
		return BT_ROUTE_NEED_MORE;
	case BT_WIRE_BAD:
		return BT_ROUTE_REJECT;
	case BT_WIRE_OK:
		break;
	}
	*entry_out = bt_router_find(r, h_out->info_hash);
	if (!*entry_out) {
		char hex[2 * BT_HASH_LEN + 1];
		bt_hex_encode(hex, h_out->info_hash, BT_HASH_LEN);
		bt_err_set(err, -ENOENT, "unknown info hash %s", hex);
		return BT_ROUTE_REJECT;
	}
	return BT_ROUTE_OK;
}
