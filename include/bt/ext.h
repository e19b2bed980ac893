/*
 * ext: the codecs of the extension protocol (BEP 10) and of metadata exchange (BEP 9).
 *
 * Pure: parsers read one extended message's payload (the bytes after its extension id) and
 * return 0 or a negative errno with a one-line reason; encoders append to a bt_buf. The peer
 * frames the message (bt/wire.h) and the torrent decides what to do with it.
 *
 * The handshake parser is forgiving where libtorrent is, and strict where that costs nothing:
 * it refuses a payload over BT_EXT_MAX_HANDSHAKE bytes, bencode nested deeper than
 * BT_EXT_MAX_DEPTH, anything after the dictionary, and a top level that is not a dictionary;
 * a known key with a value of the wrong type or out of range reads as absent, an `m` entry that
 * is not an integer in 0..255 is skipped, and unknown keys are ignored. Nothing it returns
 * points into the input.
 */
#ifndef BT_EXT_H
#define BT_EXT_H

#include "bt/metadata.h"
#include "bt/tracker_proto.h"
#include "bt/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Our extension ids: what we put in our `m`, and what peers use when they message us. */
#define BT_EXT_ID_HANDSHAKE   0
#define BT_EXT_ID_UT_METADATA 1
#define BT_EXT_ID_UT_PEX      2

/* The longest handshake payload we read (libtorrent's limit is smaller still in practice). */
#define BT_EXT_MAX_HANDSHAKE (64 * 1024)
/* Containers nested inside each other in a handshake or a ut_metadata dict. */
#define BT_EXT_MAX_DEPTH 32

struct bt_ext_handshake {
	uint8_t ut_metadata; /* the peer's ids for these extensions; 0: absent or disabled */
	uint8_t ut_pex;
	int64_t metadata_size;	    /* 0: absent, or absurd (<= 0 or > BT_METADATA_MAX_SIZE) */
	uint16_t port;		    /* its listen port `p`, or 0 */
	uint32_t reqq;		    /* requests it queues, or 0 */
	char version[64];	    /* `v`, printable ASCII (anything else became '?'), or "" */
	struct bt_peer_addr yourip; /* our address as the peer sees it; family 0 if absent */
	bool upload_only;
};

/* What we announce; zero fields are left out. */
struct bt_ext_handshake_out {
	bool ut_metadata;	       /* advertise ut_metadata as BT_EXT_ID_UT_METADATA */
	bool ut_pex;		       /* advertise ut_pex as BT_EXT_ID_UT_PEX */
	int64_t metadata_size;	       /* 0: omit (we do not know it yet) */
	uint16_t port;		       /* 0: omit */
	uint32_t reqq;		       /* 0: omit */
	const char *version;	       /* NULL: omit */
	const struct sockaddr *yourip; /* the peer's address as we see it; NULL: omit */
	bool upload_only;
};

/* Parses a handshake payload. Returns 0, or -EMSGSIZE / -EINVAL with err saying why. */
int bt_ext_handshake_parse(struct bt_ext_handshake *out, const uint8_t *p, size_t len,
			   struct bt_err *err);
/* Appends our handshake payload, canonical bencode (keys sorted). */
void bt_ext_handshake_encode(struct bt_buf *out, const struct bt_ext_handshake_out *ours);

enum { BT_EXT_MD_REQUEST = 0, BT_EXT_MD_DATA = 1, BT_EXT_MD_REJECT = 2 };

struct bt_ext_md_msg {
	int type;	     /* BT_EXT_MD_* */
	uint32_t piece;	     /* the block index */
	int64_t total_size;  /* DATA only: the whole info dict's size, 1..BT_METADATA_MAX_SIZE */
	const uint8_t *data; /* DATA only: the block, pointing into the input */
	size_t data_len;     /* DATA: 1..BT_METADATA_BLOCK */
};

/*
 * Parses a ut_metadata payload: a dict, and for DATA the raw block after the dict's end.
 * Returns 0, or -EINVAL with err naming the problem (an unknown msg_type, a piece past what
 * any size allows, a DATA without total_size or with no block, bytes after a REQUEST or REJECT).
 * Whether the block's length suits the piece is the fetcher's judgement (bt_metadata_on_data).
 */
int bt_ext_md_parse(struct bt_ext_md_msg *out, const uint8_t *p, size_t len, struct bt_err *err);
/* Appends a ut_metadata payload; total_size and data are used for DATA only. */
void bt_ext_md_encode(struct bt_buf *out, int type, uint32_t piece, int64_t total_size,
		      const uint8_t *data, size_t len);

#endif
