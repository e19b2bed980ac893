#include "bt/verify.h"

#include "bt/hash.h"
#include "bt/log.h"
#include "bt/util.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int bt_verify_piece_rc(const struct bt_metainfo *m, uint32_t piece, const uint8_t *data)
{
	assert(piece < m->piece_count);
	uint8_t digest[BT_SHA1_LEN], want[BT_SHA1_LEN];
	int rc = bt_meta_piece_hash(m, piece, want);
	if (rc) {
		bt_log(BT_LOG_ERROR, "verify",
		       "piece %" PRIu32 ": cannot read its hash back from our temporary file: %s",
		       piece, strerror(-rc));
		return rc;
	}
	bt_sha1(data, (size_t)bt_meta_piece_size(m, piece), digest);
	return memcmp(digest, want, BT_SHA1_LEN) == 0;
}

bool bt_verify_piece(const struct bt_metainfo *m, uint32_t piece, const uint8_t *data)
{
	return bt_verify_piece_rc(m, piece, data) == 1;
}

void bt_recheck_init(struct bt_recheck *rc, const struct bt_metainfo *m, struct bt_bitfield *have)
{
	assert(have->nbits == m->piece_count);
	memset(rc, 0, sizeof *rc);
	rc->m = m;
	rc->have = have;
	rc->total = m->piece_count;
}

void bt_recheck_deinit(struct bt_recheck *rc)
{
	free(rc->buf);
	rc->buf = NULL;
}

uint32_t bt_recheck_step(struct bt_recheck *rc, bt_recheck_read_fn read, void *read_arg,
			 uint32_t max_pieces)
{
	uint32_t left = rc->total - rc->checked;
	uint32_t n = max_pieces && max_pieces < left ? max_pieces : left;
	if (n && !rc->buf)
		rc->buf = bt_xmalloc((size_t)rc->m->piece_length);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = rc->checked++;
		uint32_t len = (uint32_t)bt_meta_piece_size(rc->m, i);
		if (read(read_arg, i, rc->buf, len) == 0 && bt_verify_piece(rc->m, i, rc->buf)) {
			bt_bitfield_set(rc->have, i);
			rc->good++;
		} else {
			bt_bitfield_clear(rc->have, i);
		}
	}
	return n;
}
