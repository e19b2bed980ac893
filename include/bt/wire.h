/*
 * wire: the peer protocol's bytes (BEP 3; BEP 6's Fast messages framed and decoded; BEP 10's
 * extended message framed and handed up).
 * Pure: encoders write into caller buffers; decoders read from contiguous bytes and return OK,
 * NEED_MORE or BAD. Framing is checked from the 5-byte header alone (length prefix and id), so
 * a peer's claimed length is judged before a single byte of the body is buffered: a fixed-size
 * message must have its exact size, a bitfield exactly the torrent's size (or at most
 * BT_WIRE_MAX_BITFIELD bytes while that size is unknown), a piece at most one block, and nothing
 * else may be longer than a block plus its header.
 */
#ifndef BT_WIRE_H
#define BT_WIRE_H

#include "bt/geometry.h"
#include "bt/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BT_HANDSHAKE_LEN 68
/* The longest message body we take: a piece message's header and one block. */
#define BT_WIRE_MAX_BODY (9 + BT_BLOCK_SIZE)
/* Extended messages may carry one block of metadata (BEP 9) plus their bencoded header. */
#define BT_WIRE_MAX_EXTENDED (2 + BT_BLOCK_SIZE + 1024)
/* bitfield_bytes for a torrent whose size is not known yet (a magnet before its metadata). */
#define BT_WIRE_BITFIELD_UNKNOWN SIZE_MAX
/* The longest bitfield taken while the torrent's size is unknown (8 Mi pieces). */
#define BT_WIRE_MAX_BITFIELD (1024 * 1024)

enum bt_wire_id {
	BT_WIRE_KEEPALIVE = -1,
	BT_WIRE_CHOKE = 0,
	BT_WIRE_UNCHOKE = 1,
	BT_WIRE_INTERESTED = 2,
	BT_WIRE_NOT_INTERESTED = 3,
	BT_WIRE_HAVE = 4,
	BT_WIRE_BITFIELD = 5,
	BT_WIRE_REQUEST = 6,
	BT_WIRE_PIECE = 7,
	BT_WIRE_CANCEL = 8,
	BT_WIRE_PORT = 9,
	BT_WIRE_SUGGEST = 13, /* BEP 6 (Fast) from here to ALLOWED_FAST */
	BT_WIRE_HAVE_ALL = 14,
	BT_WIRE_HAVE_NONE = 15,
	BT_WIRE_REJECT = 16,
	BT_WIRE_ALLOWED_FAST = 17,
	BT_WIRE_EXTENDED = 20,
};

/* Protocol features, each announced by a bit of the handshake's reserved bytes. A feature is
 * negotiated when both sides announce it. */
enum bt_wire_feature {
	BT_WIRE_FEAT_EXT = 1 << 0,  /* BEP 10 extension protocol: reserved[5] & 0x10 */
	BT_WIRE_FEAT_FAST = 1 << 1, /* BEP 6 Fast extension: reserved[7] & 0x04 */
	BT_WIRE_FEAT_DHT = 1 << 2,  /* BEP 5 DHT (the PORT message): reserved[7] & 0x01 */
};

enum bt_wire_result {
	BT_WIRE_OK,
	BT_WIRE_NEED_MORE,
	BT_WIRE_BAD,
};

struct bt_handshake {
	uint8_t reserved[8];
	uint8_t info_hash[BT_HASH_LEN];
	uint8_t peer_id[BT_PEER_ID_LEN];
};

/* Reserved bytes with only the extension protocol bit (BEP 10) set: exactly what the course's
 * `handshake` and magnet commands expect. */
extern const uint8_t bt_wire_reserved_ext[8];
/* The extension protocol and the Fast extension (BEP 6): what a torrent announces. */
extern const uint8_t bt_wire_reserved_fast[8];

/* The features (enum bt_wire_feature bits) that reserved bytes announce. */
unsigned bt_wire_features(const uint8_t reserved[8]);
/* A one-line name for a feature bit, for messages: "the extension protocol (BEP 10)". */
const char *bt_wire_feature_name(unsigned feature);
/* "choke", "have all", ... or "unknown". */
const char *bt_wire_id_name(int id);

void bt_wire_handshake(uint8_t out[BT_HANDSHAKE_LEN], const struct bt_handshake *h);
enum bt_wire_result bt_wire_parse_handshake(const uint8_t *p, size_t n, struct bt_handshake *out,
					    struct bt_err *err);

struct bt_wire_msg {
	int id;			/* enum bt_wire_id, or another id (unknown: to be ignored) */
	uint32_t index;		/* HAVE, REQUEST, PIECE, CANCEL, SUGGEST, REJECT, ALLOWED_FAST */
	uint32_t begin;		/* REQUEST, PIECE, CANCEL, REJECT */
	uint32_t length;	/* REQUEST, CANCEL, REJECT; for PIECE the block's length */
	uint16_t port;		/* PORT */
	uint8_t ext_id;		/* EXTENDED */
	const uint8_t *payload; /* BITFIELD bits, PIECE block, EXTENDED body, unknown body */
	size_t payload_len;
};

/*
 * Checks the header of the next message: p holds the first n bytes of it (n may be short).
 * On OK, *total_out is the whole message's size, prefix included. bitfield_bytes is what this
 * torrent's bitfield must be, or BT_WIRE_BITFIELD_UNKNOWN. BAD comes with err naming the id and the
 * length claimed.
 */
enum bt_wire_result bt_wire_check(const uint8_t *p, size_t n, size_t bitfield_bytes,
				  size_t *total_out, struct bt_err *err);
/* Decodes one whole message (as sized by bt_wire_check) from p[0..n). */
enum bt_wire_result bt_wire_decode(const uint8_t *p, size_t n, size_t bitfield_bytes,
				   struct bt_wire_msg *out, size_t *consumed_out,
				   struct bt_err *err);

/* Encoders return the number of bytes written. */
size_t bt_wire_put_keepalive(uint8_t out[4]);
/* CHOKE .. NOT_INTERESTED, HAVE_ALL, HAVE_NONE: an id and no body. */
size_t bt_wire_put_simple(uint8_t out[5], enum bt_wire_id id);
size_t bt_wire_put_have(uint8_t out[9], uint32_t index);
/* PORT (BEP 5): our DHT node's UDP port. */
size_t bt_wire_put_port(uint8_t out[7], uint16_t port);
/* HAVE, SUGGEST or ALLOWED_FAST: an id and one piece index. */
size_t bt_wire_put_index(uint8_t out[9], enum bt_wire_id id, uint32_t index);
size_t bt_wire_put_request(uint8_t out[17], enum bt_wire_id id, uint32_t index, uint32_t begin,
			   uint32_t length); /* REQUEST, CANCEL or REJECT */
/* The 13-byte header of a PIECE message whose block of `length` bytes follows. */
size_t bt_wire_put_piece_header(uint8_t out[13], uint32_t index, uint32_t begin, uint32_t length);
/* The 5-byte header of a BITFIELD message whose `bytes` bytes follow. */
size_t bt_wire_put_bitfield_header(uint8_t out[5], size_t bytes);
/* The 6-byte header of an EXTENDED message whose `len` body bytes follow. */
size_t bt_wire_put_extended_header(uint8_t out[6], uint8_t ext_id, size_t len);

#endif
