/*
 * peer: one peer's protocol, over a transport (peer_io, which owns the socket). It owns the
 * connection's phase (CONNECTING → AWAIT_HANDSHAKE → AWAIT_FIRST_MSG → ACTIVE → CLOSING, changed
 * by one function that checks each step), the framing loop, the features negotiated in the
 * handshake, the four choke/interest flags, the peer's bitfield and its timeouts; our outstanding
 * requests to it, its measured rate and the request queue depth that follows are its pipeline
 * (bt/pipeline.h), its requests to us waiting to be served its serve queue (bt/serveq.h). It
 * reports what happens upward through struct bt_peer_events and does what the torrent tells it
 * (request, cancel, have, interested); it never decides what to download.
 *
 * Framing: the 4-byte length and the id are judged (bt_wire_check) before the body is waited
 * for; then the message is judged by a table keyed by its id (bt_peer_msg_check): the earliest
 * phase it is legal in and the negotiated feature it needs. A message whose feature was not
 * negotiated closes the connection, except that a PORT without DHT and unknown ids are ignored.
 * A PIECE's block is read straight from the socket into the destination the torrent names (one
 * copy, no linearising of the input buffer).
 *
 * Uploads are pulled, not pushed: a validated request waits in a bounded queue, and the next
 * block is read (straight into the output buffer) only when that buffer has room, so a peer
 * that asks for much but reads slowly costs one queue, not the data.
 *
 * The Fast extension (BEP 6), when both handshakes announce it: our pieces go out as HAVE_ALL,
 * HAVE_NONE or BITFIELD (exactly one, a second from the peer closes the connection), then the
 * allowed-fast set (bt/fastset.h) of an IPv4 peer, whose requests for those pieces we serve
 * while choking it. Every request of the peer's gets exactly one PIECE or REJECT: we reject what
 * we will not serve, what we had queued when we choke it (allowed-fast pieces excepted) and
 * what it cancels. Our requests stay outstanding when it chokes us (they come back as PIECEs or
 * REJECTs, `rejected`), a cancelled one still awaits its answer, and a REJECT or PIECE for a
 * request we did not make closes the connection. Its allowed-fast set is kept for the owner to
 * request from while choked (bt_peer_allowed_pieces); SUGGEST is taken as a hint and ignored.
 *
 * A peer may start without a geometry (cfg.geo.piece_count == 0, a magnet before its metadata):
 * it handshakes and exchanges extended messages; a BITFIELD and HAVEs are kept (bounded) until
 * bt_peer_set_geometry applies them; a REQUEST or PIECE before then is a protocol error.
 *
 * Lifetime: the owner (the torrent) frees a peer with bt_peer_free, never from inside one of the
 * peer's callbacks. When the connection fails the peer enters CLOSING, stops all I/O, and calls
 * `closed` once; the owner then frees it later (from its reap event).
 */
#ifndef BT_PEER_H
#define BT_PEER_H

#include "bt/bitfield.h"
#include "bt/picker.h"
#include "bt/ratelimit.h"
#include "bt/wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct bt_peer;

enum bt_peer_phase {
	BT_PEER_CONNECTING,
	BT_PEER_AWAIT_HANDSHAKE,
	BT_PEER_AWAIT_FIRST_MSG,
	BT_PEER_ACTIVE,
	BT_PEER_CLOSING,
};

/* What the handler table says about a message (id, or BT_WIRE_KEEPALIVE) in a phase. */
enum bt_peer_msg_verdict {
	BT_PEER_MSG_HANDLE,	    /* legal: handle it */
	BT_PEER_MSG_IGNORE,	    /* skip it: an unknown id, or PORT without DHT negotiated */
	BT_PEER_MSG_WRONG_PHASE,    /* not legal in this phase: a protocol error */
	BT_PEER_MSG_NOT_NEGOTIATED, /* needs a feature not negotiated: a protocol error */
};

/* Judges message `id` arriving in `phase` with the negotiated `features` (enum
 * bt_wire_feature bits). Pure; the framing loop asks it about every message. */
enum bt_peer_msg_verdict bt_peer_msg_check(int id, enum bt_peer_phase phase, unsigned features);
/* The feature message `id` needs (a BT_WIRE_FEAT_* bit), or 0. */
unsigned bt_peer_msg_feature(int id);

/* Every callback may be NULL. */
struct bt_peer_events {
	/* The peer's handshake arrived and named our torrent (always reported from the loop). */
	void (*handshake)(void *arg, struct bt_peer *p, const struct bt_handshake *h);
	/* The peer choked or unchoked us. On choke without Fast, its requests are dropped: see
	 * bt_peer_take_requests; with Fast they stay outstanding until answered. */
	void (*choked)(void *arg, struct bt_peer *p, bool choked);
	/* Fast: a request of ours will not be answered (the peer sent REJECT, or kept it past the
	 * request timeout while choking us, and we cancelled it). No longer outstanding. */
	void (*rejected)(void *arg, struct bt_peer *p, const struct bt_block *b);
	/* Fast: the peer allows us `piece` while it chokes us (ALLOWED_FAST, once per piece). */
	void (*allowed_fast)(void *arg, struct bt_peer *p, uint32_t piece);
	/* The peer's bitfield changed (a BITFIELD or a HAVE for `piece`, or UINT32_MAX for all). */
	void (*has)(void *arg, struct bt_peer *p, uint32_t piece);
	/* Where a block's bytes go: a buffer of b->length bytes, or NULL to drop them (NULL
	 * callback: every block is dropped). */
	uint8_t *(*block_dest)(void *arg, struct bt_peer *p, const struct bt_block *b);
	/* The block's bytes are now in the buffer block_dest gave. */
	void (*block)(void *arg, struct bt_peer *p, const struct bt_block *b);
	/* The peer became interested in us or lost interest. */
	void (*interest)(void *arg, struct bt_peer *p, bool interested);
	/* Fills dest with a block we serve (validated: in range, a piece we have). Return 0, or
	 * a negative errno to close the connection. NULL: we serve nothing. */
	int (*read_block)(void *arg, struct bt_peer *p, const struct bt_block *b, uint8_t *dest);
	/* The connection ended; reason is one line. Do not free p from here. */
	void (*closed)(void *arg, struct bt_peer *p, const char *reason);
	/* An extended message (BEP 10; only when negotiated): ext_id 0 is the extended handshake,
	 * others are the ids we announced. payload is valid during the call only. */
	void (*extended)(void *arg, struct bt_peer *p, uint8_t ext_id, const uint8_t *payload,
			 size_t len);
	/* The peer's DHT node listens on this UDP port (PORT, with DHT negotiated). */
	void (*dht_port)(void *arg, struct bt_peer *p, uint16_t port);
};

struct bt_peer_config {
	uint8_t info_hash[BT_HASH_LEN];
	uint8_t peer_id[BT_PEER_ID_LEN];
	uint8_t reserved[8];		  /* sent as is; features = ours & theirs */
	struct bt_geometry geo;		  /* to size the bitfield and check the peer's requests;
					     piece_count 0: not known yet (bt_peer_set_geometry) */
	const struct bt_bitfield *ours;	  /* the pieces we have, to serve; may be NULL */
	const struct sockaddr *bind_addr; /* source address for outgoing connections; NULL */
	socklen_t bind_len;
	struct bt_rate_limit *down_limit; /* shared buckets; NULL: unlimited */
	struct bt_rate_limit *up_limit;
	double connect_timeout_s; /* connect + handshake; 0: 10 s */
	double request_timeout_s; /* requests outstanding and no block for this long; 0: 20 s */
	double idle_timeout_s;	  /* nothing at all received for this long; 0: 120 s */
};

struct bt_peer *bt_peer_connect(struct event_base *base, const struct sockaddr *sa,
				socklen_t sa_len, const struct bt_peer_config *cfg,
				const struct bt_peer_events *ev, void *arg);
/*
 * Takes over an already connected socket (which it will close), as for an accepted one. With
 * `theirs`, the remote's handshake already read from the socket (by the session's router), we
 * send ours and go to AWAIT_FIRST_MSG; the `handshake` event (or `closed`, for another torrent or
 * ourselves) is reported from the loop. With theirs NULL, the handshakes are exchanged here.
 */
struct bt_peer *bt_peer_adopt(struct event_base *base, int fd, const struct bt_peer_config *cfg,
			      const struct bt_handshake *theirs, const struct bt_peer_events *ev,
			      void *arg);
void bt_peer_free(struct bt_peer *p);

/* Ends the connection now, without calling `closed` (the owner is the one asking). */
void bt_peer_close(struct bt_peer *p);

enum bt_peer_phase bt_peer_phase(const struct bt_peer *p);
const char *bt_peer_name(const struct bt_peer *p); /* "127.0.0.1:6881" */
const struct bt_bitfield *bt_peer_bitfield(const struct bt_peer *p);
const uint8_t *bt_peer_id(const struct bt_peer *p); /* after the handshake */
bool bt_peer_choking_us(const struct bt_peer *p);
/* The connection reached ourselves (the remote's peer id is ours): never dial that address
 * again. Set when the peer closes with "connected to ourselves". */
bool bt_peer_is_self(const struct bt_peer *p);
/* The features (enum bt_wire_feature bits) both sides announced; 0 before the handshake. */
unsigned bt_peer_features(const struct bt_peer *p);
/* The DHT port the peer announced with PORT (DHT negotiated), or 0. */
uint16_t bt_peer_dht_port(const struct bt_peer *p);
/* Sends PORT with our DHT node's UDP port, if the DHT was negotiated (else nothing). */
void bt_peer_send_port(struct bt_peer *p, uint16_t port);
bool bt_peer_am_interested(const struct bt_peer *p);

/*
 * Gives a peer created without a geometry its geometry (g->piece_count > 0), and applies the
 * BITFIELD and HAVEs it sent meanwhile, reporting `has` (UINT32_MAX) before returning if there
 * were any. Returns 0; -EINVAL for an empty geometry; -EALREADY if it had one; -EPROTO if what
 * the peer sent does not fit: the peer is then CLOSING and `closed` was called.
 */
int bt_peer_set_geometry(struct bt_peer *p, const struct bt_geometry *g);

void bt_peer_set_interested(struct bt_peer *p, bool interested);
void bt_peer_send_have(struct bt_peer *p, uint32_t piece);
/* Sends our bitfield (right after the handshake only): with Fast, HAVE_ALL, HAVE_NONE or
 * BITFIELD (HAVE_NONE without a geometry), then our allowed-fast set; without Fast, a BITFIELD
 * if we have any piece. */
void bt_peer_send_bitfield(struct bt_peer *p, const struct bt_bitfield *have);
/* Sends an extended message (BEP 10). Returns 0; -EPROTO if the extension protocol was not
 * negotiated (or the handshake is not done); -EMSGSIZE if it is too long for the peer to take. */
int bt_peer_send_extended(struct bt_peer *p, uint8_t ext_id, const uint8_t *payload, size_t len);

/* Queues a request and remembers it as outstanding. Keep at most bt_peer_queue_target out
 * (the pipeline's bound, BT_PIPELINE_MAX, is asserted). */
void bt_peer_request(struct bt_peer *p, const struct bt_block *b);
/* Sends a cancel for an outstanding request and forgets it. Returns false if it was not one. */
bool bt_peer_cancel(struct bt_peer *p, const struct bt_block *b);
bool bt_peer_has_requested(const struct bt_peer *p, const struct bt_block *b);
size_t bt_peer_outstanding(const struct bt_peer *p);
/* The outstanding requests, oldest first (*n_out of them); valid until the next request call. */
const struct bt_block *bt_peer_requests(const struct bt_peer *p, size_t *n_out);
/* Moves the outstanding requests out (to be returned to the picker); returns how many. */
size_t bt_peer_take_requests(struct bt_peer *p, struct bt_block **out);
/* Fast: the pieces the peer allowed us to request while it chokes us and has (empty
 * otherwise). Valid until the next call. */
const struct bt_bitfield *bt_peer_allowed_pieces(struct bt_peer *p);
/* How many requests this peer should have outstanding, from its measured rate. */
size_t bt_peer_queue_target(const struct bt_peer *p);
/* Refill the queue once no more than this many are outstanding (bt_pipeline_refill_at). */
size_t bt_peer_queue_refill_at(const struct bt_peer *p);
/* The peer queues at most `reqq` of our requests (BEP 10); 0: no bound given. */
void bt_peer_set_reqq(struct bt_peer *p, uint32_t reqq);

/* Choke or unchoke the peer (uploads). Choking drops its queued requests (with Fast: rejects
 * them, but for the pieces of its allowed-fast set, which are still served). */
void bt_peer_set_choking(struct bt_peer *p, bool choking);
bool bt_peer_am_choking(const struct bt_peer *p);
bool bt_peer_interested_in_us(const struct bt_peer *p);
uint64_t bt_peer_uploaded(const struct bt_peer *p);   /* block bytes sent */
double bt_peer_up_rate(const struct bt_peer *p);      /* bytes/s, smoothed */
size_t bt_peer_upload_queue(const struct bt_peer *p); /* requests waiting to be served */

uint64_t bt_peer_downloaded(const struct bt_peer *p); /* block bytes received */
double bt_peer_rate(const struct bt_peer *p);	      /* bytes/s, smoothed */

#endif
