#include "bt/metadata.h"

#include "bt/hash.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Block hashes kept from failed assemblies, to name liars once the true bytes are known. */
#define MAX_SUSPECTS 16384

struct md_peer {
	int id;
	int64_t size;
	double rest_until; /* not asked before this time (it rejected) */
	uint32_t inflight;
	uint32_t strikes;
	bool banned;
};

struct md_req {
	uint32_t block;
	int peer;
	double sent;
};

struct md_suspect {
	int peer;
	uint32_t block;
	uint8_t hash[BT_SHA1_LEN];
};

struct bt_metadata {
	uint8_t info_hash[BT_HASH_LEN];
	struct md_peer *peers; /* in the order they were added */
	size_t peer_count;

	int64_t size; /* 0: none chosen */
	uint32_t blocks;
	uint8_t *buf;
	bool *have;
	int *from;	 /* who sent each block */
	uint32_t *asked; /* requests outstanding for each block */
	uint32_t have_count;
	bool complete;

	struct md_req *reqs;
	size_t req_count, req_cap;

	/* After a failed assembly from several peers: each assembly comes from `source` alone. */
	bool single_source;
	int source; /* -1: none yet */

	struct md_suspect *suspects;
	size_t suspect_count;
};

struct bt_metadata *bt_metadata_new(const uint8_t info_hash[BT_HASH_LEN])
{
	struct bt_metadata *md = bt_xcalloc(1, sizeof *md);
	memcpy(md->info_hash, info_hash, BT_HASH_LEN);
	md->source = -1;
	return md;
}

static void drop_buffer(struct bt_metadata *md)
{
	free(md->buf);
	free(md->have);
	free(md->from);
	free(md->asked);
	md->buf = NULL;
	md->have = NULL;
	md->from = NULL;
	md->asked = NULL;
	md->size = 0;
	md->blocks = 0;
	md->have_count = 0;
}

void bt_metadata_free(struct bt_metadata *md)
{
	if (!md)
		return;
	drop_buffer(md);
	free(md->peers);
	free(md->reqs);
	free(md->suspects);
	free(md);
}

static struct md_peer *find_peer(const struct bt_metadata *md, int id)
{
	for (size_t i = 0; i < md->peer_count; i++)
		if (md->peers[i].id == id)
			return &md->peers[i];
	return NULL;
}

static size_t block_len(const struct bt_metadata *md, uint32_t b)
{
	if (b + 1 < md->blocks)
		return BT_METADATA_BLOCK;
	return (size_t)(md->size - (int64_t)(md->blocks - 1) * BT_METADATA_BLOCK);
}

static void drop_req(struct bt_metadata *md, size_t i)
{
	struct md_peer *p = find_peer(md, md->reqs[i].peer);
	if (p && p->inflight)
		p->inflight--;
	md->asked[md->reqs[i].block]--;
	md->reqs[i] = md->reqs[--md->req_count];
}

/* Drops the requests that match: a peer's (peer >= 0 or any), a block's (block >= 0 or any). */
static void drop_reqs(struct bt_metadata *md, int peer, int64_t block)
{
	for (size_t i = md->req_count; i-- > 0;)
		if ((peer < 0 || md->reqs[i].peer == peer) &&
		    (block < 0 || md->reqs[i].block == (uint32_t)block))
			drop_req(md, i);
}

static ptrdiff_t find_req(const struct bt_metadata *md, int peer, uint32_t block)
{
	for (size_t i = 0; i < md->req_count; i++)
		if (md->reqs[i].peer == peer && md->reqs[i].block == block)
			return (ptrdiff_t)i;
	return -1;
}

/* Throws away the blocks received so far (not the size or the buffer). */
static void reset_blocks(struct bt_metadata *md)
{
	drop_reqs(md, -1, -1);
	if (md->have)
		memset(md->have, 0, md->blocks * sizeof *md->have);
	md->have_count = 0;
	md->source = -1;
}

static void choose(struct bt_metadata *md, int64_t size)
{
	drop_reqs(md, -1, -1);
	drop_buffer(md);
	md->suspect_count = 0;
	md->source = -1;
	md->size = size;
	md->blocks = (uint32_t)((size + BT_METADATA_BLOCK - 1) / BT_METADATA_BLOCK);
	md->buf = bt_xmalloc((size_t)size);
	md->have = bt_xcalloc(md->blocks, sizeof *md->have);
	md->from = bt_xcalloc(md->blocks, sizeof *md->from);
	md->asked = bt_xcalloc(md->blocks, sizeof *md->asked);
}

/*
 * Keeps the size being fetched while some peer that is not banned offers it; otherwise follows
 * the first such peer's size, so a liar's size, once its peers are banned, yields to the others.
 */
static void settle_size(struct bt_metadata *md)
{
	if (md->complete)
		return;
	struct md_peer *first = NULL;
	for (size_t i = 0; i < md->peer_count; i++) {
		struct md_peer *p = &md->peers[i];
		if (p->banned)
			continue;
		if (p->size == md->size)
			return;
		if (!first)
			first = p;
	}
	if (first)
		choose(md, first->size);
}

int bt_metadata_add_peer(struct bt_metadata *md, int peer, int64_t size)
{
	if (size <= 0 || size > BT_METADATA_MAX_SIZE)
		return -EINVAL;
	if (find_peer(md, peer))
		return -EEXIST;
	md->peers = bt_xreallocarray(md->peers, md->peer_count + 1, sizeof *md->peers);
	md->peers[md->peer_count++] = (struct md_peer){.id = peer, .size = size};
	settle_size(md);
	return 0;
}

void bt_metadata_remove_peer(struct bt_metadata *md, int peer)
{
	struct md_peer *p = find_peer(md, peer);
	if (!p)
		return;
	drop_reqs(md, peer, -1);
	size_t i = (size_t)(p - md->peers);
	memmove(p, p + 1, (md->peer_count - i - 1) * sizeof *p);
	md->peer_count--;
	/* A single source that leaves takes its assembly with it: it must be whole from one. */
	if (md->single_source && md->source == peer)
		reset_blocks(md);
	settle_size(md);
}

static int ask(struct bt_metadata *md, struct md_peer *p, uint32_t b, double now)
{
	if (md->req_count == md->req_cap) {
		md->req_cap = md->req_cap ? 2 * md->req_cap : 16;
		md->reqs = bt_xreallocarray(md->reqs, md->req_cap, sizeof *md->reqs);
	}
	md->reqs[md->req_count++] = (struct md_req){.block = b, .peer = p->id, .sent = now};
	p->inflight++;
	md->asked[b]++;
	return (int)b;
}

int bt_metadata_next_request(struct bt_metadata *md, int peer, double now)
{
	struct md_peer *p = find_peer(md, peer);
	if (!p || p->banned || md->complete || !md->size || p->size != md->size ||
	    p->rest_until > now || p->inflight >= BT_METADATA_PER_PEER)
		return -1;
	if (md->single_source) {
		if (md->source < 0)
			md->source = peer;
		if (md->source != peer)
			return -1;
	}
	for (uint32_t b = 0; b < md->blocks; b++)
		if (!md->have[b] && !md->asked[b])
			return ask(md, p, b, now);
	/* Endgame: every missing block is asked of someone; ask this peer too. */
	for (uint32_t b = 0; b < md->blocks; b++)
		if (!md->have[b] && find_req(md, peer, b) < 0)
			return ask(md, p, b, now);
	return -1;
}

static void ban(struct bt_metadata *md, struct md_peer *p)
{
	p->banned = true;
	drop_reqs(md, p->id, -1);
}

/* Keeps each block's hash and sender, so the true bytes can later name who lied. */
static void remember_suspects(struct bt_metadata *md)
{
	for (uint32_t b = 0; b < md->blocks && md->suspect_count < MAX_SUSPECTS; b++) {
		if (!md->suspects)
			md->suspects = bt_xcalloc(MAX_SUSPECTS, sizeof *md->suspects);
		struct md_suspect *s = &md->suspects[md->suspect_count++];
		s->peer = md->from[b];
		s->block = b;
		bt_sha1(md->buf + (size_t)b * BT_METADATA_BLOCK, block_len(md, b), s->hash);
	}
}

static enum bt_metadata_result judge(struct bt_metadata *md)
{
	uint8_t h[BT_SHA1_LEN];
	bt_sha1(md->buf, (size_t)md->size, h);
	if (memcmp(h, md->info_hash, BT_HASH_LEN) == 0) {
		md->complete = true;
		drop_reqs(md, -1, -1);
		for (size_t i = 0; i < md->suspect_count; i++) {
			struct md_suspect *s = &md->suspects[i];
			struct md_peer *p = find_peer(md, s->peer);
			bt_sha1(md->buf + (size_t)s->block * BT_METADATA_BLOCK,
				block_len(md, s->block), h);
			if (p && memcmp(h, s->hash, BT_SHA1_LEN) != 0)
				ban(md, p);
		}
		return BT_METADATA_COMPLETE;
	}
	remember_suspects(md);
	struct md_peer *only = find_peer(md, md->from[0]);
	bool several = false;
	for (uint32_t b = 1; b < md->blocks; b++)
		several |= md->from[b] != md->from[0];
	if (!several) {
		if (only)
			ban(md, only);
	} else {
		for (size_t i = 0; i < md->peer_count; i++)
			for (uint32_t b = 0; b < md->blocks; b++)
				if (md->from[b] == md->peers[i].id) {
					md->peers[i].strikes++;
					break;
				}
		md->single_source = true;
	}
	reset_blocks(md);
	settle_size(md);
	return BT_METADATA_FAILED;
}

enum bt_metadata_result bt_metadata_on_data(struct bt_metadata *md, int peer, uint32_t piece,
					    int64_t total_size, const uint8_t *data, size_t len,
					    double now, struct bt_err *err)
{
	(void)now;
	struct md_peer *p = find_peer(md, peer);
	const char *why = NULL;
	if (!p)
		why = "from an unknown peer";
	else if (p->banned)
		why = "from a banned peer";
	else if (md->complete)
		why = "the metadata is complete";
	else if (total_size != md->size)
		why = "total_size differs from the size being fetched";
	else if (piece >= md->blocks)
		why = "block past the end";
	else if (len != block_len(md, piece))
		why = "wrong block length (16 KiB, except the last block)";
	if (why) {
		bt_err_set(err, -EINVAL, "metadata block %" PRIu32 " of %" PRId64 " bytes: %s",
			   piece, total_size, why);
		return BT_METADATA_IGNORED;
	}
	ptrdiff_t r = find_req(md, peer, piece);
	if (r < 0) {
		bt_err_set(err, -EINVAL, "metadata block %" PRIu32 ": not requested from this peer",
			   piece);
		return BT_METADATA_IGNORED;
	}
	drop_req(md, (size_t)r);
	if (md->have[piece]) {
		bt_err_set(err, -EALREADY, "metadata block %" PRIu32 ": a duplicate", piece);
		return BT_METADATA_IGNORED;
	}
	memcpy(md->buf + (size_t)piece * BT_METADATA_BLOCK, data, len);
	md->have[piece] = true;
	md->from[piece] = peer;
	md->have_count++;
	/* Other copies asked for in endgame are no longer wanted: free those peers' slots. */
	drop_reqs(md, -1, piece);
	return md->have_count == md->blocks ? judge(md) : BT_METADATA_OK;
}

void bt_metadata_on_reject(struct bt_metadata *md, int peer, uint32_t piece, double now)
{
	struct md_peer *p = find_peer(md, peer);
	if (!p)
		return;
	drop_reqs(md, peer, piece);
	p->rest_until = now + BT_METADATA_REJECT_WAIT;
	if (md->single_source && md->source == peer)
		reset_blocks(md);
}

double bt_metadata_tick(struct bt_metadata *md, double now)
{
	double next = HUGE_VAL;
	bool source_stalled = false;
	for (size_t i = md->req_count; i-- > 0;) {
		struct md_req *r = &md->reqs[i];
		if (r->sent + BT_METADATA_TIMEOUT <= now) {
			source_stalled |= md->single_source && r->peer == md->source;
			drop_req(md, i);
		} else if (r->sent + BT_METADATA_TIMEOUT < next) {
			next = r->sent + BT_METADATA_TIMEOUT;
		}
	}
	/*
	 * A single source that stalls would hold the whole fetch: it rests for a timeout and the
	 * next peer to ask starts a new assembly (the stalled one may take it up again later).
	 */
	struct md_peer *src = source_stalled ? find_peer(md, md->source) : NULL;
	if (src) {
		src->rest_until = now + BT_METADATA_TIMEOUT;
		reset_blocks(md);
	}
	for (size_t i = 0; i < md->peer_count; i++)
		if (md->peers[i].rest_until > now && md->peers[i].rest_until < next)
			next = md->peers[i].rest_until;
	/* With nothing pending, a tick now and then costs nothing and needs no special case. */
	return next == HUGE_VAL ? now + BT_METADATA_TIMEOUT : next;
}

bool bt_metadata_banned(const struct bt_metadata *md, int peer)
{
	const struct md_peer *p = find_peer(md, peer);
	return p && p->banned;
}

const uint8_t *bt_metadata_info(const struct bt_metadata *md, size_t *len_out)
{
	if (!md->complete)
		return NULL;
	if (len_out)
		*len_out = (size_t)md->size;
	return md->buf;
}

bool bt_metadata_complete(const struct bt_metadata *md)
{
	return md->complete;
}

int64_t bt_metadata_size(const struct bt_metadata *md)
{
	return md->size;
}

void bt_metadata_progress(const struct bt_metadata *md, struct bt_metadata_progress *out)
{
	out->blocks_have = md->have_count;
	out->blocks_total = md->blocks;
	out->peers = 0;
	for (size_t i = 0; i < md->peer_count; i++)
		out->peers += !md->peers[i].banned;
}
