/*
 * metadata: fetching a torrent's info dictionary from peers (BEP 9), sans I/O.
 *
 * The caller names peers by int handles of its choosing, tells the fetcher which peers offer
 * ut_metadata and what size they announced, asks it which block to request from whom, and feeds
 * it what arrives with the time `now` in seconds; the fetcher keeps the blocks, times requests
 * out and judges the assembled bytes against the info hash. It never sends anything itself.
 *
 * Invariants and policy:
 * - The size followed is the first plausible one announced (1..BT_METADATA_MAX_SIZE); peers that
 *   announced another size are kept and used only when no usable peer of that size is left
 *   (they were all banned or removed). The buffer is allocated once a size is chosen.
 * - A dict of more than BT_METADATA_IN_MEMORY bytes (it holds a large torrent's piece hashes:
 *   20 MiB for 16 GiB in 16 KiB pieces) is assembled in an unlinked temporary file of ours
 *   (bt_meta_tmpfile: $TMPDIR, else /tmp) instead, judged by reading it back a block at a time,
 *   and parsed from there (bt_metadata_parse), so it never is whole in memory; the parsed
 *   metainfo keeps that file as its spill file. A smaller one is a plain buffer. If the file
 *   cannot be made, written or read, the fetch is broken for good: bt_metadata_error says why
 *   in one line naming the directory, and nothing more is asked or kept.
 * - Every block is BT_METADATA_BLOCK bytes except the last, which holds the rest.
 * - A peer has at most BT_METADATA_PER_PEER requests outstanding; a block is asked of a second
 *   peer only when no block is left that nobody was asked for (endgame).
 * - A request unanswered after BT_METADATA_TIMEOUT seconds is freed for any peer (a late answer
 *   is then ignored); a peer that rejects is not asked again for BT_METADATA_REJECT_WAIT seconds.
 * - A complete assembly whose SHA-1 is not the info hash is thrown away. If one peer sent all of
 *   it, that peer is banned. If several did, each is struck and from then on every assembly is
 *   taken whole from one peer, so the next failure names its liar exactly. The hash of every
 *   block of a failed assembly is kept with its sender, so when the info finally completes,
 *   every peer that sent a block differing from the true one is banned too.
 * - After bt_metadata_on_data returns FAILED or COMPLETE, the caller asks bt_metadata_banned of
 *   its peers and disconnects the banned ones.
 */
#ifndef BT_METADATA_H
#define BT_METADATA_H

#include "bt/metainfo.h"
#include "bt/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BT_METADATA_BLOCK 16384
/* The largest info dict taken (real ones pass 16 MiB for torrents of a million files). */
#define BT_METADATA_MAX_SIZE	((int64_t)64 << 20)
#define BT_METADATA_PER_PEER	4
#define BT_METADATA_TIMEOUT	10.0
#define BT_METADATA_REJECT_WAIT 30.0
/* Larger dicts are assembled in a temporary file: the size above which metainfo spills too. */
#define BT_METADATA_IN_MEMORY ((int64_t)BT_META_SPILL_HASHES)

enum bt_metadata_result {
	BT_METADATA_OK,	     /* the block was kept */
	BT_METADATA_IGNORED, /* not kept: err says why */
	BT_METADATA_COMPLETE,
	BT_METADATA_FAILED,
	BT_METADATA_ERROR, /* the temporary file failed: the fetch cannot go on (err says why) */
};

struct bt_metadata;

struct bt_metadata *bt_metadata_new(const uint8_t info_hash[BT_HASH_LEN]);
void bt_metadata_free(struct bt_metadata *md);

/*
 * A peer that offers ut_metadata and announced `size`. Returns 0, -EINVAL for an implausible
 * size (the peer is not added), -EEXIST if the handle is already known.
 */
int bt_metadata_add_peer(struct bt_metadata *md, int peer, int64_t size);
/* Forgets a peer; its outstanding requests go back to the others. Unknown handles are ignored. */
void bt_metadata_remove_peer(struct bt_metadata *md, int peer);

/* The next block index to request from this peer, or -1: nothing to ask it now. */
int bt_metadata_next_request(struct bt_metadata *md, int peer, double now);

/* A DATA message from a peer (bt_ext_md_parse's fields). */
enum bt_metadata_result bt_metadata_on_data(struct bt_metadata *md, int peer, uint32_t piece,
					    int64_t total_size, const uint8_t *data, size_t len,
					    double now, struct bt_err *err);
/* A REJECT from a peer: the block goes to others and the peer rests for a while. */
void bt_metadata_on_reject(struct bt_metadata *md, int peer, uint32_t piece, double now);
/* Frees timed-out requests; returns when it next wants to be called. */
double bt_metadata_tick(struct bt_metadata *md, double now);

bool bt_metadata_banned(const struct bt_metadata *md, int peer);
/* Copies bytes [off, off + len) of the complete dict. Returns 0, -EINVAL, or -EIO (the file). */
int bt_metadata_read(const struct bt_metadata *md, size_t off, uint8_t *out, size_t len);
/*
 * Parses the complete dict into m with the magnet's trackers (bt_meta_parse_info, or
 * bt_meta_parse_info_fd from the file, which m then keeps as its spill file rather than copy
 * it). Returns 0, or a negative errno with err set; on failure m is zeroed.
 */
int bt_metadata_parse(const struct bt_metadata *md, struct bt_metainfo *m,
		      const struct bt_meta_tier *tiers, size_t tier_count, struct bt_err *err);
/* Whether the dict is being assembled in a temporary file (its size is over the limit). */
bool bt_metadata_in_file(const struct bt_metadata *md);
/* Why the fetch cannot go on (a temporary file failed), or NULL while it can. */
const char *bt_metadata_error(const struct bt_metadata *md);
bool bt_metadata_complete(const struct bt_metadata *md);
/* The size being fetched (0: none chosen yet). */
int64_t bt_metadata_size(const struct bt_metadata *md);

struct bt_metadata_progress {
	uint32_t blocks_have;
	uint32_t blocks_total; /* 0 until a size is chosen */
	size_t peers;	       /* known and not banned */
};
void bt_metadata_progress(const struct bt_metadata *md, struct bt_metadata_progress *out);

#endif
