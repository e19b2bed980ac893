/*
 * verify: the one place that judges a piece, and a resumable recheck of data already on disk.
 *
 * bt_verify_piece compares the SHA-1 of a piece's exact bytes (piece_length, or less for the last
 * piece) with the metainfo's hash; every completed download piece and every rechecked piece goes
 * through it, so nothing unverified is ever counted as had. The hash comes from the metainfo,
 * which for a large torrent reads it from its own temporary file (metainfo.h): the one I/O
 * here, and the one failure that is not the data's fault (bt_verify_piece_rc tells it apart).
 *
 * A recheck (resume, `seed`) walks the pieces in order a few at a time, so its owner can run it
 * from an event loop and draw progress between steps. It stays pure: pieces are read through the
 * caller's callback, which is where storage lives. When it is done, the `have` bitfield it was
 * given holds exactly the pieces that verified: good ones are set, bad or unreadable ones
 * cleared.
 */
#ifndef BT_VERIFY_H
#define BT_VERIFY_H

#include "bt/bitfield.h"
#include "bt/metainfo.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * 1 when data (the piece's exact size) has the piece's hash, 0 when it does not, or a negative
 * errno when the hash itself cannot be read (a spilled torrent's temporary file failed: our
 * disk's fault, not the data's senders').
 */
int bt_verify_piece_rc(const struct bt_metainfo *m, uint32_t piece, const uint8_t *data);
/* bt_verify_piece_rc == 1: an unreadable hash judges the piece not good. */
bool bt_verify_piece(const struct bt_metainfo *m, uint32_t piece, const uint8_t *data);

/*
 * Reads all len bytes of a piece into buf. Returns 0, or a negative errno: the piece then counts
 * as bad.
 */
typedef int (*bt_recheck_read_fn)(void *arg, uint32_t piece, uint8_t *buf, uint32_t len);

/* Embedded in its owner. checked, good and total are for reading; the rest is the module's. */
struct bt_recheck {
	const struct bt_metainfo *m;
	struct bt_bitfield *have;
	uint8_t *buf;	  /* one piece_length buffer, allocated at the first step */
	uint32_t checked; /* pieces judged so far: pieces [0, checked) */
	uint32_t good;	  /* of those, verified */
	uint32_t total;	  /* piece count */
};

/* have (of m->piece_count bits) is filled as pieces are checked; both must outlive the recheck. */
void bt_recheck_init(struct bt_recheck *rc, const struct bt_metainfo *m, struct bt_bitfield *have);
void bt_recheck_deinit(struct bt_recheck *rc);
/* Checks up to max_pieces more pieces (0: all that are left); returns how many it checked. */
uint32_t bt_recheck_step(struct bt_recheck *rc, bt_recheck_read_fn read, void *read_arg,
			 uint32_t max_pieces);

static inline bool bt_recheck_done(const struct bt_recheck *rc)
{
	return rc->checked == rc->total;
}

#endif
