/*
 * picker: which block to ask which peer for next. Pure: it knows piece availability, the state
 * of every block of every started piece, and what we want and have; the torrent tells it what
 * happened (peer bitfields and haves, blocks requested, returned, received, pieces verified or
 * failed) and asks it for blocks.
 *
 * Policy: blocks of pieces already started come first (so pieces complete, verify and leave
 * memory soon); then the rarest piece the peer has, ties broken at random; once every wanted
 * piece has been started and no block is free, endgame: blocks already requested elsewhere
 * are requested again from other peers (at most BT_PICKER_ENDGAME_DUPS requests per block),
 * newest pieces first (their blocks sit at the back of the other peers' queues), and the
 * torrent cancels the duplicates when one copy arrives.
 *
 * Speed classes (libtorrent's piece affinity): the torrent says whether the peer asking is slow
 * (bt_picker_speed_of). Each started piece has the class of the peer that started it, and a
 * peer first takes free blocks of its own class's pieces, then starts pieces of its own, and
 * only then takes free blocks of the other class's pieces: a slow peer gets whole pieces, not
 * blocks scattered over pieces fast peers started, and those pieces do not wait on it. A piece
 * nobody has a request out for takes the class of the next peer that works on it. A fast peer
 * with room left after all that (endgame, or pieces it cannot start) asks again for the blocks
 * slow peers hold, before the other duplicates of the endgame; a slow peer never does, so it
 * does not use up a block's second request that a fast peer should make.
 *
 * Optional orders, set by the torrent: priority pieces first (--first-last), and a sequential
 * read-ahead window (--sequential) that replaces the whole-torrent rarest-first choice.
 *
 * Memory is 3 bytes per piece (a state and a 16-bit availability) plus 2 bytes per chunk of 64
 * pieces (the lowest availability of its wanted pieces), so a million-piece torrent costs about
 * 3 MiB. A have costs O(1) (O(64) when it raises a chunk's minimum). The rarest pieces a peer
 * has are found by a scan from a random chunk that skips chunks whose minimum is too high and
 * stops once it holds enough pieces at the lowest availability of all; one scan gives a pick
 * call up to 32 candidates, drawn at random, so a seeder's pick costs O(1) amortised. Started
 * pieces are found through a hash table sized by their number, not the torrent's.
 */
#ifndef BT_PICKER_H
#define BT_PICKER_H

#include "bt/bitfield.h"
#include "bt/geometry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BT_PICKER_ENDGAME_DUPS 2

struct bt_picker;

/*
 * have: pieces we already hold (may be NULL); want: pieces to download (NULL: all). seed feeds
 * the random tie-break (tests pass a fixed one).
 */
struct bt_picker *bt_picker_new(const struct bt_geometry *g, const struct bt_bitfield *have,
				const struct bt_bitfield *want, uint64_t seed);
void bt_picker_free(struct bt_picker *p);

void bt_picker_add_peer(struct bt_picker *p, const struct bt_bitfield *has);
void bt_picker_remove_peer(struct bt_picker *p, const struct bt_bitfield *has);
void bt_picker_peer_have(struct bt_picker *p, uint32_t piece);

/*
 * Caps the pieces started at once (each costs the torrent an assembly buffer): at the cap, only
 * blocks of started pieces are handed out. 0: no cap.
 */
void bt_picker_set_max_partial(struct bt_picker *p, size_t max);

/*
 * Sequential order (streaming): only pieces in a window of `window` pieces from the first
 * wanted piece not yet verified are started, the rarest of them first; 0 turns it off.
 */
void bt_picker_set_sequential(struct bt_picker *p, uint32_t window);
/*
 * A piece to start before any other (a file's first and last pieces: a player reads its
 * index there), in the order added, sequential window or not. Not wanted or had: ignored.
 */
void bt_picker_add_priority(struct bt_picker *p, uint32_t piece);

/* Does the peer have a piece we still want? */
bool bt_picker_interesting(const struct bt_picker *p, const struct bt_bitfield *has);

enum bt_picker_speed {
	BT_PICKER_FAST, /* every peer until it is known to be slow; web seeds */
	BT_PICKER_SLOW,
};

/*
 * A peer is slow when its download rate is below BT_PICKER_SLOW_FRACTION of the mean rate of
 * the peers we are downloading from, and below BT_PICKER_SLOW_FLOOR bytes/s. A quarter of the
 * mean: such a peer takes four times as long as the others over a piece, so a piece it shares
 * with them finishes when it does. The floor: above a megabyte a second a 256 KiB piece costs
 * the peer a quarter second or less, not worth keeping pieces apart for (on loopback every
 * peer runs at tens of MB/s and a quarter of the mean would still be fast). mean <= 0 (nothing
 * measured yet): fast.
 */
#define BT_PICKER_SLOW_FRACTION 0.25
#define BT_PICKER_SLOW_FLOOR	(1024.0 * 1024.0)
enum bt_picker_speed bt_picker_speed_of(double rate, double mean);

/*
 * Fills out[0..max) with blocks for a peer of class `speed` that has `has` and returns how
 * many. For duplicates (endgame, and what slow peers hold), `already(ctx, block)` must say
 * whether this peer has that block requested already.
 */
size_t bt_picker_pick_as(struct bt_picker *p, const struct bt_bitfield *has,
			 enum bt_picker_speed speed, struct bt_block *out, size_t max,
			 bool (*already)(void *ctx, const struct bt_block *b), void *ctx);
/* bt_picker_pick_as for a fast peer. */
size_t bt_picker_pick(struct bt_picker *p, const struct bt_bitfield *has, struct bt_block *out,
		      size_t max, bool (*already)(void *ctx, const struct bt_block *b), void *ctx);

/* A request that will not be answered (choke, cancel, timeout, peer gone). */
void bt_picker_returned(struct bt_picker *p, const struct bt_block *b);
/*
 * A block arrived. Returns false if it was not wanted (unknown block, or a copy already
 * received); otherwise true, with *piece_complete set when it was the piece's last block.
 */
bool bt_picker_received(struct bt_picker *p, const struct bt_block *b, bool *piece_complete);
/* The completed piece verified and was stored. */
void bt_picker_piece_passed(struct bt_picker *p, uint32_t piece);
/* The completed piece failed verification: all its blocks are wanted again. */
void bt_picker_piece_failed(struct bt_picker *p, uint32_t piece);

/*
 * A peer just found slow holds a request for b (asked for while it was not known to be slow):
 * fast peers with room ask for it again first, as for the blocks slow peers asked for since.
 */
void bt_picker_mark_slow(struct bt_picker *p, const struct bt_block *b);
/*
 * Requests out for the block (not received): more than one, and a copy that arrives makes the
 * others worth cancelling.
 */
uint32_t bt_picker_requests(const struct bt_picker *p, const struct bt_block *b);
/* True when the block is a valid block of a started piece and was requested and not received. */
bool bt_picker_is_pending(const struct bt_picker *p, const struct bt_block *b);
bool bt_picker_done(const struct bt_picker *p);
uint32_t bt_picker_pieces_left(const struct bt_picker *p);
bool bt_picker_in_endgame(const struct bt_picker *p);
/* Pieces started and not yet verified (each holds an assembly buffer in the torrent). */
size_t bt_picker_partial_count(const struct bt_picker *p);

#endif
