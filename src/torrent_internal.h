/*
 * torrent_internal: what the files of the torrent module share: torrent.c (phases, peers,
 * pieces, trackers, the public calls), torrent_request.c (the request path: which blocks each
 * peer is asked for, the peers' speed classes), torrent_ext.c (the extension protocol: our
 * extended handshake, fetching a magnet's metadata over ut_metadata and serving ours) and
 * torrent_stats.c (statistics and what the torrent is waiting for). Not for any other module.
 */
#ifndef BT_TORRENT_INTERNAL_H
#define BT_TORRENT_INTERNAL_H

#include "bt/addrbook.h"
#include "bt/assembly.h"
#include "bt/choker.h"
#include "bt/metadata.h"
#include "bt/peer.h"
#include "bt/pex.h"
#include "bt/picker.h"
#include "bt/torrent.h"
#include "bt/util.h"

#include <event2/event.h>

/* One connected peer, as the torrent sees it. */
struct conn {
	struct bt_torrent *t;
	struct bt_peer *peer;
	int addr;		    /* its address book handle */
	struct bt_bitfield counted; /* the availability it contributes to the picker */
	bool counted_in;
	bool reaping;
	bool optimistic;	      /* the choker's optimistic unchoke */
	bool slow;		      /* far slower than the others (bt_picker_speed_of) */
	uint8_t ut_metadata;	      /* the peer's id for ut_metadata (BEP 9), 0: none */
	bool md_peer;		      /* known to the metadata fetcher */
	double since;		      /* when the connection was made (or accepted) */
	bool outgoing;		      /* we dialled it: its address book port is its listen port */
	bool ext_seen;		      /* its extended handshake came */
	bool upload_only;	      /* it said upload_only (BEP 21): a partial seed, or a seed */
	uint8_t ut_pex;		      /* the peer's id for ut_pex (BEP 11), 0: none */
	uint16_t listen_port;	      /* `p` from its extended handshake, 0: unknown */
	struct bt_pex_sender pex_out; /* what we told it */
	struct bt_pex_receiver pex_in;
};

struct bt_torrent {
	struct bt_session *session;
	uint8_t info_hash[BT_HASH_LEN];
	const struct bt_metainfo *m; /* NULL while a magnet's metadata is fetched */
	struct bt_metadata *md;	     /* the fetch, in that phase */
	struct event *meta_ready;    /* the fetched dict goes to the owner from the loop */
	struct bt_torrent_opts opts;
	struct bt_torrent_events ev;
	void *arg;
	struct bt_picker *picker;
	struct bt_bitfield have;
	uint64_t wanted_bytes, verified_bytes, received_bytes;
	uint32_t pieces_failed;

	struct bt_addrbook *book;
	struct conn **conns;
	size_t nconns, conns_cap;

	struct bt_assembly assembly;
	struct bt_tracker *tracker;
	struct event *tick, *reap;
	double started, last_data, first_byte;
	double rate;
	uint64_t rate_window;
	struct bt_choker choker;
	bool registered; /* with the session's router, for incoming connections */
	unsigned ticks;
	uint64_t uploaded_closed; /* bytes sent to peers since gone */
	size_t served_closed;	  /* connections since gone that we sent blocks to */
	bool finished, failed, stopping, stopped;
	bool dht_subscribed; /* the DHT searches for us */
	size_t peers_max;    /* the most connections past the handshake at once */
	uint64_t dht_peers;  /* addresses the DHT gave */
	struct bt_block *pick_buf;
	struct bt_torrent_webseeds *webseeds; /* torrent_webseed.c; NULL: none */
	uint64_t webseed_bytes;		      /* of received_bytes, from web seeds */
};

static inline struct conn *conn_of(struct bt_peer *p, void *arg)
{
	(void)p;
	return arg;
}

/* Fails the torrent once, reporting the reason to its owner. */
void bt_torrent_fail(struct bt_torrent *t, const char *fmt, ...) BT_PRINTF(2, 3);
/* "peer 1.2.3.4:5", the subject of a connection's log lines. */
const char *bt_torrent_peer_subject(const struct bt_torrent *t, const struct conn *c, char *buf,
				    size_t n);
/* Marks the connection for the reap event, which frees it from the loop. */
void bt_torrent_reap(struct bt_torrent *t, struct conn *c);

/* torrent_ext.c */
void bt_torrent_send_ext_handshake(struct bt_torrent *t, struct conn *c);
/* Sends it again to every active peer: what we offer changed (ut_pex, upload_only). */
void bt_torrent_resend_ext_handshake(struct bt_torrent *t);
/* Asks every peer offering the metadata for the blocks the fetcher gives it. */
void bt_torrent_request_metadata(struct bt_torrent *t);
/* The peer event for extended messages. */
void bt_torrent_on_extended(void *arg, struct bt_peer *p, uint8_t ext_id, const uint8_t *payload,
			    size_t len);
/* The meta_ready event: the fetched dict goes to the owner. */
void bt_torrent_on_meta_ready(evutil_socket_t fd, short what, void *arg);

/* torrent_pex.c */
/* PEX is on: the torrent's metadata is known and it is not private (BEP 27). */
bool bt_torrent_pex_enabled(const struct bt_torrent *t);
/* Each second: the PEX messages due to each peer. */
void bt_torrent_pex_tick(struct bt_torrent *t);
/* A ut_pex message from the peer. */
void bt_torrent_pex_on_message(struct bt_torrent *t, struct conn *c, const uint8_t *payload,
			       size_t len);
/* The connection is being freed. */
void bt_torrent_pex_conn_gone(struct conn *c);
/*
 * Every wanted piece is done: a fresh extended handshake with upload_only (BEP 21) to each peer,
 * and seeds and upload-only peers, who have nothing left to give us, are let go.
 */
void bt_torrent_pex_finished(struct bt_torrent *t);

/* torrent_request.c: the request path. */
/* Keeps the peer's request pipe at its target depth, with blocks for its speed class. */
void bt_torrent_fill(struct bt_torrent *t, struct conn *c);
/* The peer's outstanding requests go back to the picker (choke, close, ban). */
void bt_torrent_return_requests(struct bt_torrent *t, struct bt_peer *p);
/* Each second: which peers are slow, from their rates against the mean (bt/picker.h). */
void bt_torrent_classify_peers(struct bt_torrent *t);
/* Block b arrived from `from`: every other peer asked for it gets a CANCEL. */
void bt_torrent_cancel_copies(struct bt_torrent *t, struct conn *from, const struct bt_block *b);

/* A piece's last block is in: verify it, store it or strike its contributors. */
void bt_torrent_piece_complete(struct bt_torrent *t, uint32_t piece);

/* torrent_webseed.c: web seeds (BEP 19) as block sources beside the peers. */
/* Makes one source per URL once the metainfo is known, unless nothing is wanted. */
void bt_torrent_webseed_start(struct bt_torrent *t);
/* Each second: idle web seeds past their backoff get runs of pieces. */
void bt_torrent_webseed_tick(struct bt_torrent *t);
/* Some web seed has not been dropped. */
bool bt_torrent_webseed_hopeful(const struct bt_torrent *t);
/* Web seeds, and in *active_out those fetching now. */
size_t bt_torrent_webseed_count(const struct bt_torrent *t, size_t *active_out);
/* The torrent stops: requests in flight are cancelled (the URLs are not retried). */
void bt_torrent_webseed_stop(struct bt_torrent *t);
void bt_torrent_webseed_free(struct bt_torrent *t);

/* Dials more addresses from the book, up to max_peers. */
void bt_torrent_connect_more(struct bt_torrent *t);

/* torrent_sources.c: trackers and the DHT. */
/* `left` for the trackers: a positive placeholder until a magnet's size is known. */
int64_t bt_torrent_bytes_left(const struct bt_torrent *t);
void bt_torrent_make_tracker(struct bt_torrent *t, const struct bt_meta_tier *tiers, size_t count);
/* Subscribes to (on) or leaves the DHT's searches for our info hash (never a private torrent). */
void bt_torrent_dht_subscribe(struct bt_torrent *t, bool on);
/* The peer event for PORT: the peer's DHT node joins ours. */
void bt_torrent_on_dht_port(void *arg, struct bt_peer *p, uint16_t port);

/* torrent_stats.c */
/* What became of the peers (the first few), after lead, for the error a user sees. */
void bt_torrent_describe_peers(const struct bt_torrent *t, const char *lead, char *out, size_t n);

#endif
