#include "bt/metadata.h"

#include "bt/hash.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	uint8_t *buf; /* the blocks, for a dict of at most BT_METADATA_IN_MEMORY bytes */
	int fd;	      /* else an unlinked temporary file of ours holds them; or -1 */
	/* Once set, the fetch cannot go on (a temporary file failed): error's message says why. */
	bool broken;
	struct bt_err error;
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
	md->fd = -1;
	return md;
}

static void drop_buffer(struct bt_metadata *md)
{
	free(md->buf);
	if (md->fd >= 0)
		close(md->fd);
	md->fd = -1;
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

/*
 * Block b's bytes: in the buffer, or read from the file into `tmp` (BT_METADATA_BLOCK bytes).
 * NULL if the file cannot be read, which breaks the fetch.
 */
static const uint8_t *block_bytes(struct bt_metadata *md, uint32_t b, uint8_t *tmp)
{
	size_t off = (size_t)b * BT_METADATA_BLOCK;
	if (md->buf)
		return md->buf + off;
	int rc = bt_meta_pread(md->fd, tmp, block_len(md, b), off);
	if (!rc)
		return tmp;
	if (!md->broken)
		bt_err_set(&md->error, rc,
			   "metadata: cannot read block %" PRIu32
			   " back from its temporary file: %s",
			   b, strerror(-rc));
	md->broken = true;
	return NULL;
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
	if (size <= BT_METADATA_IN_MEMORY) {
		md->buf = bt_xmalloc((size_t)size);
	} else {
		/* A dict this large holds a large torrent's hashes: assemble it where metainfo
		 * will keep it, in a file, so it is never whole in memory. */
		const char *dir;
		md->fd = bt_meta_tmpfile(&dir);
		if (md->fd < 0) {
			bt_err_set(&md->error, md->fd,
				   "metadata: cannot make a temporary file in '%s' for the %" PRId64
				   "-byte info dict: %s",
				   dir, size, strerror(-md->fd));
			md->broken = true;
		}
	}
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
	if (!p || p->banned || md->complete || md->broken || !md->size || p->size != md->size ||
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
static void remember_suspects(struct bt_metadata *md, uint8_t *tmp)
{
	for (uint32_t b = 0; b < md->blocks && md->suspect_count < MAX_SUSPECTS; b++) {
		const uint8_t *bytes = block_bytes(md, b, tmp);
		if (!bytes)
			return;
		if (!md->suspects)
			md->suspects = bt_xcalloc(MAX_SUSPECTS, sizeof *md->suspects);
		struct md_suspect *s = &md->suspects[md->suspect_count++];
		s->peer = md->from[b];
		s->block = b;
		bt_sha1(bytes, block_len(md, b), s->hash);
	}
}

/* The SHA-1 of the assembled dict, a block at a time (from the file, never all in memory). */
static int hash_all(struct bt_metadata *md, uint8_t *tmp, uint8_t out[BT_SHA1_LEN])
{
	struct bt_sha1_ctx *h = bt_sha1_new();
	const uint8_t *bytes = NULL;
	for (uint32_t b = 0; b < md->blocks && (bytes = block_bytes(md, b, tmp)); b++)
		bt_sha1_update(h, bytes, block_len(md, b));
	bt_sha1_final(h, out);
	bt_sha1_free(h);
	return bytes ? 0 : -EIO;
}

/*
 * A complete assembly that does not hash: bans its one sender, or strikes its several and takes
 * every later assembly from one peer; then starts over.
 */
static void failed(struct bt_metadata *md, uint8_t *tmp)
{
	remember_suspects(md, tmp);
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
}

static enum bt_metadata_result judge(struct bt_metadata *md)
{
	uint8_t h[BT_SHA1_LEN];
	uint8_t *tmp = md->buf ? NULL : bt_xmalloc(BT_METADATA_BLOCK);
	enum bt_metadata_result r = BT_METADATA_FAILED;
	if (hash_all(md, tmp, h)) {
		r = BT_METADATA_ERROR;
	} else if (memcmp(h, md->info_hash, BT_HASH_LEN) == 0) {
		md->complete = true;
		drop_reqs(md, -1, -1);
		for (size_t i = 0; i < md->suspect_count; i++) {
			struct md_suspect *s = &md->suspects[i];
			struct md_peer *p = find_peer(md, s->peer);
			const uint8_t *bytes = block_bytes(md, s->block, tmp);
			if (!bytes)
				break;
			bt_sha1(bytes, block_len(md, s->block), h);
			if (p && memcmp(h, s->hash, BT_SHA1_LEN) != 0)
				ban(md, p);
		}
		r = BT_METADATA_COMPLETE;
	}
	if (r == BT_METADATA_FAILED)
		failed(md, tmp);
	free(tmp);
	return r;
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
	else if (md->broken)
		why = "the fetch has failed";
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
	size_t off = (size_t)piece * BT_METADATA_BLOCK;
	int rc = md->buf ? (memcpy(md->buf + off, data, len), 0)
			 : bt_meta_pwrite(md->fd, data, len, off);
	if (rc) {
		bt_err_set(&md->error, rc,
			   "metadata: cannot write block %" PRIu32 " to its temporary file: %s",
			   piece, strerror(-rc));
		md->broken = true;
		bt_err_set(err, rc, "%s", md->error.msg);
		return BT_METADATA_ERROR;
	}
	md->have[piece] = true;
	md->from[piece] = peer;
	md->have_count++;
	/* Other copies asked for in endgame are no longer wanted: free those peers' slots. */
	drop_reqs(md, -1, piece);
	if (md->have_count < md->blocks)
		return BT_METADATA_OK;
	enum bt_metadata_result verdict = judge(md);
	if (md->broken) {
		bt_err_set(err, -EIO, "%s", md->error.msg);
		return BT_METADATA_ERROR;
	}
	return verdict;
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

int bt_metadata_read(const struct bt_metadata *md, size_t off, uint8_t *out, size_t len)
{
	if (!md->complete || off > (size_t)md->size || len > (size_t)md->size - off)
		return -EINVAL;
	if (md->buf) {
		memcpy(out, md->buf + off, len);
		return 0;
	}
	return bt_meta_pread(md->fd, out, len, off);
}

int bt_metadata_parse(const struct bt_metadata *md, struct bt_metainfo *m,
		      const struct bt_meta_tier *tiers, size_t tier_count, struct bt_err *err)
{
	if (!md->complete) {
		memset(m, 0, sizeof *m);
		return bt_err_set(err, -EINVAL, "metadata: the info dict is not complete");
	}
	if (md->buf)
		return bt_meta_parse_info(m, md->buf, (size_t)md->size, tiers, tier_count, err);
	return bt_meta_parse_info_fd(m, md->fd, (size_t)md->size, tiers, tier_count, err);
}

bool bt_metadata_in_file(const struct bt_metadata *md)
{
	return md->fd >= 0;
}

const char *bt_metadata_error(const struct bt_metadata *md)
{
	return md->broken ? md->error.msg : NULL;
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
