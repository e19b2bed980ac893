/*
 * peer_internal: what the two files of the peer module share (peer.c: phases, framing, the
 * connection's life and the public calls; peer_msg.c: the handler table and the message
 * handlers). Not for any other module: the peer's state is the peer's.
 */
#ifndef BT_PEER_INTERNAL_H
#define BT_PEER_INTERNAL_H

#include "bt/fastset.h"
#include "bt/peer.h"
#include "bt/peer_io.h"
#include "bt/pipeline.h"
#include "bt/serveq.h"
#include "bt/util.h"
#include "bt/wire.h"

struct event;

struct bt_peer {
	struct bt_peer_io *io;
	struct event *tick;
	struct event *later; /* reports from the loop what bt_peer_adopt was given */
	enum bt_peer_phase phase;
	struct bt_peer_config cfg;
	struct bt_peer_events ev;
	void *arg;
	struct bt_handshake theirs;
	bool handshake_unreported; /* adopted with their handshake: `handshake` is still due */
	const char *adopt_error;   /* adopted with a handshake we refuse: closed from the loop */
	unsigned features;	   /* negotiated: ours & theirs */
	bool is_self;
	uint16_t dht_port;
	struct bt_bitfield has;
	size_t bitfield_bytes; /* BT_WIRE_BITFIELD_UNKNOWN without a geometry */
	bool am_interested, peer_choking, am_choking, peer_interested;
	struct bt_serveq to_serve; /* the peer's requests to us */
	uint64_t uploaded, up_window;
	double up_rate;

	struct bt_pipeline pl; /* our requests outstanding, the download rate */

	/* Fast (BEP 6). */
	int bitfield_msg;		/* the BITFIELD, HAVE_ALL or HAVE_NONE that came, 0: none */
	bool sent_bitfield;		/* ours went out; the allowed-fast set once the geometry */
	struct bt_bitfield allowed;	/* the pieces the peer lets us request while choked */
	struct bt_bitfield allowed_has; /* allowed ∩ has, for bt_peer_allowed_pieces */
	uint32_t allowed_them[BT_FASTSET_K]; /* the pieces we serve it while choking it */
	size_t allowed_them_count;

	double started, last_recv, last_send;
	/*
	 * A block being read by the transport straight into its destination (bt_peer_io_stream).
	 * dropped: it was cancelled or taken back while arriving; its bytes are read and dropped.
	 */
	struct {
		bool active, dropped;
		struct bt_block b;
	} in_block;
	/* What the peer said of its pieces before we knew the geometry (bt_peer_set_geometry). */
	struct {
		uint8_t *bitfield; /* its raw BITFIELD, at most BT_WIRE_MAX_BITFIELD bytes */
		size_t bitfield_len;
		uint8_t *haves; /* its HAVEs as bits, grown to at most BT_WIRE_MAX_BITFIELD bytes */
		size_t haves_len;
		bool have_all;
	} early;
};

/* The connection failed: stop everything and tell the owner once. */
void bt_peer_fail(struct bt_peer *p, const char *fmt, ...) BT_PRINTF(2, 3);
/* Judges a message by its id in the peer's phase and features; closes on a protocol error. */
enum bt_peer_msg_verdict bt_peer_judge(struct bt_peer *p, int id);
/* True when the id has a handler (others, once judged legal, are read and dropped). */
bool bt_peer_has_handler(int id);
/* Runs the handler of a decoded message; false when the peer closed. */
bool bt_peer_handle(struct bt_peer *p, const struct bt_wire_msg *m);
/* The peer's whole bitfield changed: the `has` event with UINT32_MAX. */
void bt_peer_report_all_has(struct bt_peer *p);
/* Queues bytes for the peer (nothing once CLOSING). */
void bt_peer_send(struct bt_peer *p, const void *data, size_t n);
/* Fast: answers a request of the peer's with REJECT. */
void bt_peer_send_reject(struct bt_peer *p, const struct bt_block *b);
/* Fast: piece is in the allowed-fast set we gave the peer. */
bool bt_peer_allowed_them(const struct bt_peer *p, uint32_t piece);
/* Fast: sends our allowed-fast set for this peer (once, IPv4 peers, a geometry known). In
 * peer_fast.c, with the sets' other helpers. */
void bt_peer_send_allowed_fast(struct bt_peer *p);
static inline bool bt_peer_fast(const struct bt_peer *p)
{
	return p->features & BT_WIRE_FEAT_FAST;
}

#endif
