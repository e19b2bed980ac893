#include "bt/wire.h"

#include <errno.h>
#include <string.h>

static const char protocol[] = "\x13"
			       "BitTorrent protocol";

const uint8_t bt_wire_reserved_ext[8] = {0, 0, 0, 0, 0, 0x10, 0, 0};
const uint8_t bt_wire_reserved_fast[8] = {0, 0, 0, 0, 0, 0x10, 0, 0x04};

/* The handshake's fields: the 20-byte protocol string, then these. */
enum { HS_PROTOCOL_LEN = 20, HS_RESERVED = 20, HS_INFO_HASH = 28, HS_PEER_ID = 48 };

void bt_wire_handshake(uint8_t out[BT_HANDSHAKE_LEN], const struct bt_handshake *h)
{
	memcpy(out, protocol, HS_PROTOCOL_LEN);
	memcpy(out + HS_RESERVED, h->reserved, 8);
	memcpy(out + HS_INFO_HASH, h->info_hash, BT_HASH_LEN);
	memcpy(out + HS_PEER_ID, h->peer_id, BT_PEER_ID_LEN);
}

enum bt_wire_result bt_wire_parse_handshake(const uint8_t *p, size_t n, struct bt_handshake *out,
					    struct bt_err *err)
{
	size_t check = n < HS_PROTOCOL_LEN ? n : HS_PROTOCOL_LEN;
	if (memcmp(p, protocol, check) != 0) {
		bt_err_set(err, -EPROTO, "not a BitTorrent handshake");
		return BT_WIRE_BAD;
	}
	if (n < BT_HANDSHAKE_LEN)
		return BT_WIRE_NEED_MORE;
	memcpy(out->reserved, p + HS_RESERVED, 8);
	memcpy(out->info_hash, p + HS_INFO_HASH, BT_HASH_LEN);
	memcpy(out->peer_id, p + HS_PEER_ID, BT_PEER_ID_LEN);
	return BT_WIRE_OK;
}

unsigned bt_wire_features(const uint8_t reserved[8])
{
	return (reserved[5] & 0x10 ? BT_WIRE_FEAT_EXT : 0u) |
	       (reserved[7] & 0x04 ? BT_WIRE_FEAT_FAST : 0u) |
	       (reserved[7] & 0x01 ? BT_WIRE_FEAT_DHT : 0u);
}

const char *bt_wire_feature_name(unsigned feature)
{
	switch (feature) {
	case BT_WIRE_FEAT_EXT:
		return "the extension protocol (BEP 10)";
	case BT_WIRE_FEAT_FAST:
		return "the Fast extension (BEP 6)";
	case BT_WIRE_FEAT_DHT:
		return "DHT (BEP 5)";
	default:
		return "an unknown feature";
	}
}

const char *bt_wire_id_name(int id)
{
	static const char *const names[] = {
		[BT_WIRE_CHOKE] = "choke",
		[BT_WIRE_UNCHOKE] = "unchoke",
		[BT_WIRE_INTERESTED] = "interested",
		[BT_WIRE_NOT_INTERESTED] = "not interested",
		[BT_WIRE_HAVE] = "have",
		[BT_WIRE_BITFIELD] = "bitfield",
		[BT_WIRE_REQUEST] = "request",
		[BT_WIRE_PIECE] = "piece",
		[BT_WIRE_CANCEL] = "cancel",
		[BT_WIRE_PORT] = "port",
		[BT_WIRE_SUGGEST] = "suggest piece",
		[BT_WIRE_HAVE_ALL] = "have all",
		[BT_WIRE_HAVE_NONE] = "have none",
		[BT_WIRE_REJECT] = "reject request",
		[BT_WIRE_ALLOWED_FAST] = "allowed fast",
		[BT_WIRE_EXTENDED] = "extended",
	};
	if (id == BT_WIRE_KEEPALIVE)
		return "keep-alive";
	if (id >= 0 && (size_t)id < sizeof names / sizeof names[0] && names[id])
		return names[id];
	return "unknown";
}

enum bt_wire_result bt_wire_check(const uint8_t *p, size_t n, size_t bitfield_bytes,
				  size_t *total_out, struct bt_err *err)
{
	if (n < 4)
		return BT_WIRE_NEED_MORE;
	uint32_t len = bt_load_be32(p);
	if (len == 0) {
		*total_out = 4;
		return BT_WIRE_OK;
	}
	if (n < 5)
		return BT_WIRE_NEED_MORE;
	int id = p[4];
	bool ok;
	switch (id) {
	case BT_WIRE_CHOKE:
	case BT_WIRE_UNCHOKE:
	case BT_WIRE_INTERESTED:
	case BT_WIRE_NOT_INTERESTED:
	case BT_WIRE_HAVE_ALL:
	case BT_WIRE_HAVE_NONE:
		ok = len == 1;
		break;
	case BT_WIRE_HAVE:
	case BT_WIRE_SUGGEST:
	case BT_WIRE_ALLOWED_FAST:
		ok = len == 5;
		break;
	case BT_WIRE_BITFIELD:
		if (bitfield_bytes == BT_WIRE_BITFIELD_UNKNOWN)
			ok = len >= 1 && len <= 1 + BT_WIRE_MAX_BITFIELD;
		else
			ok = len == 1 + bitfield_bytes;
		break;
	case BT_WIRE_REQUEST:
	case BT_WIRE_CANCEL:
	case BT_WIRE_REJECT:
		ok = len == 13;
		break;
	case BT_WIRE_PIECE:
		ok = len > 9 && len <= BT_WIRE_MAX_BODY;
		break;
	case BT_WIRE_PORT:
		ok = len == 3;
		break;
	case BT_WIRE_EXTENDED:
		ok = len >= 2 && len <= BT_WIRE_MAX_EXTENDED;
		break;
	default:
		ok = len <= BT_WIRE_MAX_BODY; /* unknown ids are skipped, within the usual cap */
		break;
	}
	if (!ok) {
		bt_err_set(err, -EPROTO, "%s message (id %d) with bad length %u",
			   bt_wire_id_name(id), id, len);
		return BT_WIRE_BAD;
	}
	*total_out = 4 + (size_t)len;
	return BT_WIRE_OK;
}

enum bt_wire_result bt_wire_decode(const uint8_t *p, size_t n, size_t bitfield_bytes,
				   struct bt_wire_msg *out, size_t *consumed_out,
				   struct bt_err *err)
{
	size_t total;
	enum bt_wire_result r = bt_wire_check(p, n, bitfield_bytes, &total, err);
	if (r != BT_WIRE_OK)
		return r;
	if (n < total)
		return BT_WIRE_NEED_MORE;
	memset(out, 0, sizeof *out);
	*consumed_out = total;
	if (total == 4) {
		out->id = BT_WIRE_KEEPALIVE;
		return BT_WIRE_OK;
	}
	out->id = p[4];
	const uint8_t *body = p + 5;
	size_t blen = total - 5;
	switch (out->id) {
	case BT_WIRE_HAVE:
	case BT_WIRE_SUGGEST:
	case BT_WIRE_ALLOWED_FAST:
		out->index = bt_load_be32(body);
		break;
	case BT_WIRE_HAVE_ALL:
	case BT_WIRE_HAVE_NONE:
		break;
	case BT_WIRE_REQUEST:
	case BT_WIRE_CANCEL:
	case BT_WIRE_REJECT:
		out->index = bt_load_be32(body);
		out->begin = bt_load_be32(body + 4);
		out->length = bt_load_be32(body + 8);
		break;
	case BT_WIRE_PIECE:
		out->index = bt_load_be32(body);
		out->begin = bt_load_be32(body + 4);
		out->payload = body + 8;
		out->payload_len = blen - 8;
		out->length = (uint32_t)out->payload_len;
		break;
	case BT_WIRE_PORT:
		out->port = bt_load_be16(body);
		break;
	case BT_WIRE_EXTENDED:
		out->ext_id = body[0];
		out->payload = body + 1;
		out->payload_len = blen - 1;
		break;
	default:
		out->payload = body;
		out->payload_len = blen;
		break;
	}
	return BT_WIRE_OK;
}

size_t bt_wire_put_keepalive(uint8_t out[4])
{
	bt_store_be32(out, 0);
	return 4;
}

size_t bt_wire_put_simple(uint8_t out[5], enum bt_wire_id id)
{
	bt_store_be32(out, 1);
	out[4] = (uint8_t)id;
	return 5;
}

size_t bt_wire_put_have(uint8_t out[9], uint32_t index)
{
	return bt_wire_put_index(out, BT_WIRE_HAVE, index);
}

size_t bt_wire_put_port(uint8_t out[7], uint16_t port)
{
	bt_store_be32(out, 3);
	out[4] = (uint8_t)BT_WIRE_PORT;
	bt_store_be16(out + 5, port);
	return 7;
}

size_t bt_wire_put_index(uint8_t out[9], enum bt_wire_id id, uint32_t index)
{
	bt_store_be32(out, 5);
	out[4] = (uint8_t)id;
	bt_store_be32(out + 5, index);
	return 9;
}

size_t bt_wire_put_request(uint8_t out[17], enum bt_wire_id id, uint32_t index, uint32_t begin,
			   uint32_t length)
{
	bt_store_be32(out, 13);
	out[4] = (uint8_t)id;
	bt_store_be32(out + 5, index);
	bt_store_be32(out + 9, begin);
	bt_store_be32(out + 13, length);
	return 17;
}

size_t bt_wire_put_piece_header(uint8_t out[13], uint32_t index, uint32_t begin, uint32_t length)
{
	bt_store_be32(out, 9 + length);
	out[4] = BT_WIRE_PIECE;
	bt_store_be32(out + 5, index);
	bt_store_be32(out + 9, begin);
	return 13;
}

size_t bt_wire_put_bitfield_header(uint8_t out[5], size_t bytes)
{
	bt_store_be32(out, (uint32_t)(1 + bytes));
	out[4] = BT_WIRE_BITFIELD;
	return 5;
}

size_t bt_wire_put_extended_header(uint8_t out[6], uint8_t ext_id, size_t len)
{
	bt_store_be32(out, (uint32_t)(2 + len));
	out[4] = BT_WIRE_EXTENDED;
	out[5] = ext_id;
	return 6;
}
