/*
 * torrent: one info hash in the swarm. It owns the peer connections, the address book
 * (addrbook.h: every address it knows, with source, tries, backoff and bans), the picker, the
 * piece assembly buffers (assembly.h) and the tracker schedule; it decides what to request
 * from whom, has each completed piece judged by verify.h, hands verified pieces to its owner to
 * store, and strikes and bans peers whose data fails verification. What to keep and where is
 * the owner's business (the download job, download.h), through piece_verified and read_block.
 *
 * It also uploads: our bitfield goes out after the handshake, HAVEs as pieces verify, and a
 * choker (choker.h) decides every 10 s (and when a peer becomes interested) whom to serve.
 * With opts.seed it keeps serving after the download is complete.
 *
 * Peers come from the tracker, from bt_torrent_add_peer (--peer) and from incoming connections
 * that the session's router hands over (the torrent registers its info hash when it starts).
 * Up to max_peers are connected at once; failed addresses are retried with a growing delay, a
 * few times; our own address (the tracker's entry for us, or a peer whose id is ours) is never
 * dialled. Rate limits and the source address are the session's. Every unchoked peer's request
 * pipe is kept at its rate-based depth. Peers that fail are reaped by a zero-delay event, never
 * freed inside their own callbacks. The torrent never stops the session: it reports complete,
 * failed and stopped to its owner.
 *
 * Phases: a torrent made from a magnet (bt_torrent_new_magnet) starts in METADATA: it knows
 * only the info hash and trackers, connects to peers without a geometry, and fetches the info
 * dict over BEP 9 from every peer that offers it (metadata.h decides whom to ask; the dict is
 * checked against the info hash). The verified dict goes to the owner (`metadata` event), which
 * parses it and calls bt_torrent_set_metainfo: the torrent then downloads on the same
 * connections, judging the bitfields and HAVEs they sent meanwhile. Once the metadata is known
 * (either way) we serve it to peers that ask (ut_metadata). Every peer with the extension bit
 * gets our extended handshake (BEP 10) right after our bitfield.
 *
 * With the Fast extension (BEP 6, see peer.h) a peer that chokes us keeps our requests and
 * answers each with a PIECE or a REJECT (a rejected block goes back to the picker); while it
 * chokes us we request the pieces of its allowed-fast set.
 */
#ifndef BT_TORRENT_H
#define BT_TORRENT_H

#include "bt/bitfield.h"
#include "bt/ext.h"
#include "bt/metadata.h"
#include "bt/metainfo.h"
#include "bt/wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct bt_session;
struct bt_torrent;

struct bt_torrent_opts {
	size_t max_peers; /* 0: 50 */
	uint16_t port;	  /* announced to trackers; 0: 6881 */
	bool use_trackers;
	double stall_timeout_s;	  /* fail when nothing arrives for this long; 0: never */
	double request_timeout_s; /* 0: the peer default (20 s) */
	bool seed;		  /* keep serving peers after the download is complete */
	/* Reserved bytes exactly 00 00 00 00 00 10 00 00, as the course's commands check: no Fast
	 * extension (BEP 6), which every other torrent announces. */
	bool course_handshake;
	/* Piece order (picker.h): in order through a read-ahead window (streaming); each file's
	 * first and last wanted pieces before the others. */
	bool sequential, first_last;
};

struct bt_torrent_events {
	/* A piece passed verification; data holds its bytes for the call. Return 0, or a negative
	 * errno with err set to stop the download (a disk error, say). */
	int (*piece_verified)(void *arg, uint32_t piece, const uint8_t *data, struct bt_err *err);
	/* Reads a block of a piece we have, to upload it. Return 0 or a negative errno. NULL: we
	 * upload nothing. */
	int (*read_block)(void *arg, uint32_t piece, uint32_t begin, uint32_t length,
			  uint8_t *dest);
	/* Every wanted piece is verified and stored. */
	void (*complete)(void *arg);
	/* The download cannot go on; reason is one line. */
	void (*failed)(void *arg, const char *reason);
	/* After bt_torrent_stop: the stopped announce has ended. May be NULL. */
	void (*stopped)(void *arg);
	/* A magnet's info dict arrived and hashes to the info hash (md is valid during the call;
	 * a large dict is in a file, not in memory). The owner parses it (bt_metadata_parse) and
	 * calls bt_torrent_set_metainfo, or returns a negative errno with err set, which fails
	 * the torrent. NULL for a torrent made from metainfo. */
	int (*metadata)(void *arg, const struct bt_metadata *md, struct bt_err *err);
	/* A peer's extended handshake (BEP 10) arrived. May be NULL. */
	void (*peer_extended)(void *arg, const uint8_t *peer_id, const struct bt_ext_handshake *h);
};

struct bt_torrent_stats {
	uint64_t wanted_bytes;	 /* total of the wanted pieces */
	uint64_t verified_bytes; /* of those, verified (resumed pieces included) */
	uint64_t received_bytes; /* block bytes received in this run */
	uint64_t webseed_bytes;	 /* of those, from web seeds (BEP 19) */
	size_t webseeds;	 /* web seed URLs, and of them fetching now: */
	size_t webseeds_active;
	uint32_t pieces_failed;	 /* pieces that failed verification */
	size_t peers_connected;	 /* past the handshake */
	size_t peers_unchoking;	 /* of those, unchoking us */
	size_t peers_used;	 /* peers that sent us at least one block */
	double rate;		 /* bytes/s, smoothed */
	uint64_t uploaded_bytes; /* block bytes sent in this run */
	double up_rate;		 /* bytes/s, smoothed */
	double first_byte_s;	 /* seconds from start to the first block, or -1 */
	bool has_metadata;	 /* false while a magnet's info dict is being fetched */
	size_t metadata_peers;	 /* peers offering it (while fetching) */
	uint32_t metadata_blocks_done, metadata_blocks_total; /* total 0: size not known yet */
	size_t peers_max;   /* the most peers connected (past the handshake) at once */
	bool dht;	    /* the session's DHT is on */
	size_t dht_nodes;   /* nodes it knows */
	uint64_t dht_peers; /* addresses it gave this torrent */
};

struct bt_torrent_peer_stat {
	char name[64];
	uint64_t bytes;
	uint32_t strikes;
	bool banned;
};

/* have: pieces already verified (resume); want: NULL for all. */
struct bt_torrent *bt_torrent_new(struct bt_session *s, const struct bt_metainfo *m,
				  const struct bt_bitfield *have, const struct bt_bitfield *want,
				  const struct bt_torrent_opts *opts,
				  const struct bt_torrent_events *ev, void *arg);
/* A torrent known by its info hash only (a magnet): it starts by fetching the metadata. tiers
 * (may be empty) are borrowed and must outlive the torrent. */
struct bt_torrent *bt_torrent_new_magnet(struct bt_session *s, const uint8_t info_hash[BT_HASH_LEN],
					 const struct bt_meta_tier *tiers, size_t tier_count,
					 const struct bt_torrent_opts *opts,
					 const struct bt_torrent_events *ev, void *arg);
/*
 * Gives a magnet's torrent its metainfo (m borrowed, outliving the torrent; its info hash must
 * be the torrent's), the pieces already verified (have, may be NULL) and the pieces wanted
 * (want, NULL for all). Meant to be called from the `metadata` event. The torrent downloads
 * from then on; `complete` may be reported from inside this call.
 */
void bt_torrent_set_metainfo(struct bt_torrent *t, const struct bt_metainfo *m,
			     const struct bt_bitfield *have, const struct bt_bitfield *want);
void bt_torrent_free(struct bt_torrent *t);

void bt_torrent_add_peer(struct bt_torrent *t, const struct sockaddr *sa, socklen_t len);
/* Takes an incoming connection (the torrent closes it if it has no room). */
void bt_torrent_accept(struct bt_torrent *t, int fd, const struct sockaddr *sa, socklen_t len,
		       const struct bt_handshake *h);
/* The port announced to trackers, once the command knows what it listens on. */
void bt_torrent_set_port(struct bt_torrent *t, uint16_t port);
void bt_torrent_start(struct bt_torrent *t);
/* Closes every peer and sends the tracker `completed` (if done) and `stopped`, bounded. */
void bt_torrent_stop(struct bt_torrent *t);
/* True once the stop announce has ended (or there was none to send). */
bool bt_torrent_stopped(const struct bt_torrent *t);

void bt_torrent_get_stats(const struct bt_torrent *t, struct bt_torrent_stats *out);
/* Every address that got past the handshake, with the bytes it sent; returns the count. */
size_t bt_torrent_peer_stats(const struct bt_torrent *t, struct bt_torrent_peer_stat **out);

/* The pieces verified so far (resumed ones included), for per-file progress. */
const struct bt_bitfield *bt_torrent_have(const struct bt_torrent *t);
/* Connections (gone or open) that we sent at least one block to. */
size_t bt_torrent_peers_served(const struct bt_torrent *t);
/* Before the first block, what the torrent waits for, in a few words for the progress line
 * ("waiting for trackers", "connecting to 3 peers", "waiting for data from 2 peers"), written
 * into buf; NULL once data flows or the torrent is complete, failed or stopping. A later
 * metadata phase (magnet) answers here too: "fetching metadata". */
const char *bt_torrent_phase(const struct bt_torrent *t, char *buf, size_t n);

#endif
