/* The peer module's Fast extension (BEP 6) parts: the allowed-fast sets and rejects. */
#include "peer_internal.h"

#include "bt/fastset.h"

#include <arpa/inet.h>
#include <string.h>

/* The peer's IPv4 address from its name ("1.2.3.4:5"); false for IPv6 or a socket pair. */
static bool peer_ipv4(const struct bt_peer *p, uint8_t out[4])
{
	char host[INET_ADDRSTRLEN];
	const char *name = bt_peer_name(p), *colon = strchr(name, ':');
	if (!colon || (size_t)(colon - name) >= sizeof host)
		return false;
	memcpy(host, name, (size_t)(colon - name));
	host[colon - name] = '\0';
	return inet_pton(AF_INET, host, out) == 1;
}

/*
 * Fast: our allowed-fast set for this peer, once we know the geometry and only for IPv4 peers
 * (the BEP defines none for IPv6). A torrent of fewer than twice as many pieces as the set
 * gets none: the set would be most of it, free to every peer we choke.
 */
void bt_peer_send_allowed_fast(struct bt_peer *p)
{
	uint8_t ip[4];
	uint32_t n = p->cfg.geo.piece_count;
	if (!bt_peer_fast(p) || p->allowed_them_count || n < 2 * BT_FASTSET_K ||
	    !p->ev.read_block || !p->cfg.ours || !peer_ipv4(p, ip))
		return;
	p->allowed_them_count =
		bt_fastset_generate(p->cfg.info_hash, ip, n, BT_FASTSET_K, p->allowed_them);
	for (size_t i = 0; i < p->allowed_them_count; i++) {
		uint8_t m[9];
		bt_peer_send(p, m, bt_wire_put_index(m, BT_WIRE_ALLOWED_FAST, p->allowed_them[i]));
	}
}

bool bt_peer_allowed_them(const struct bt_peer *p, uint32_t piece)
{
	for (size_t i = 0; i < p->allowed_them_count; i++)
		if (p->allowed_them[i] == piece)
			return true;
	return false;
}

void bt_peer_send_reject(struct bt_peer *p, const struct bt_block *b)
{
	uint8_t m[17];
	bt_peer_send(p, m, bt_wire_put_request(m, BT_WIRE_REJECT, b->piece, b->begin, b->length));
}

const struct bt_bitfield *bt_peer_allowed_pieces(struct bt_peer *p)
{
	struct bt_bitfield *out = &p->allowed_has;
	size_t bytes = bt_bitfield_bytes(out->nbits);
	out->count = 0;
	for (size_t i = 0; i < bytes; i++) {
		out->bits[i] = p->allowed.bits[i] & p->has.bits[i];
		out->count += (uint32_t)__builtin_popcount(out->bits[i]);
	}
	return out;
}
