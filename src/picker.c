#include "bt/picker.h"

#include "bt/util.h"

#include <stdlib.h>
#include <string.h>

enum piece_state {
	SKIP,	  /* not wanted */
	WANT,	  /* wanted, not started: in an availability bucket */
	PARTIAL,  /* started: has a partial slot */
	COMPLETE, /* every block received, being verified */
	HAVE,	  /* verified */
};

#define RECEIVED 0x80
/* A slow peer holds a request for the block: in endgame, faster peers ask for it first. Cleared
 * when no request is left (a returned request does not say whose it was). */
#define SLOW_HELD 0x40
#define REQUESTS  0x3f
/* How many equally rare pieces the random tie-break chooses among. */
#define TIE_SAMPLE 16

struct partial {
	uint32_t piece;
	uint32_t nblocks;
	uint32_t received;
	uint32_t free_blocks; /* neither requested nor received */
	bool slow;	      /* started by a slow peer: slow peers finish it */
	uint8_t *blocks;      /* per block: RECEIVED, SLOW_HELD and a request count */
};

struct bt_picker {
	uint32_t count;
	struct bt_geometry geo;
	uint8_t *state;
	uint16_t *avail;
	int32_t *next, *prev; /* bucket lists of WANT pieces */
	int32_t *head, *tail; /* per availability level */
	uint32_t levels;
	int32_t *partial_of; /* index into partials, or -1 */
	struct partial *partials;
	size_t npartial, partial_cap;
	uint32_t want_left; /* pieces in WANT state */
	size_t max_partial; /* 0: no cap */
	uint32_t not_have;  /* wanted pieces not yet verified */
	uint64_t rng;
	uint32_t window;   /* sequential: pieces ahead of seq_base that may start; 0: off */
	uint32_t seq_base; /* the first wanted piece not yet verified (sequential) */
	uint32_t *prio;	   /* pieces started before any other, in order */
	size_t nprio;
	bool slow_seen; /* a slow peer has asked: only then are SLOW_HELD blocks looked for */
};

static uint64_t next_random(struct bt_picker *p)
{
	/* xorshift64*: plenty for shuffling ties. */
	p->rng ^= p->rng >> 12;
	p->rng ^= p->rng << 25;
	p->rng ^= p->rng >> 27;
	return p->rng * 0x2545F4914F6CDD1DULL;
}

static uint32_t blocks_in(const struct bt_picker *p, uint32_t i)
{
	return bt_geometry_block_count(&p->geo, i);
}

static void ensure_level(struct bt_picker *p, uint32_t level)
{
	if (level < p->levels)
		return;
	uint32_t n = p->levels ? p->levels : 8;
	while (n <= level)
		n *= 2;
	p->head = bt_xreallocarray(p->head, n, sizeof *p->head);
	p->tail = bt_xreallocarray(p->tail, n, sizeof *p->tail);
	for (uint32_t i = p->levels; i < n; i++)
		p->head[i] = p->tail[i] = -1;
	p->levels = n;
}

/* Links a WANT piece into the bucket of its availability, at a random end. */
static void bucket_insert(struct bt_picker *p, uint32_t i)
{
	uint32_t a = p->avail[i];
	ensure_level(p, a);
	int32_t ii = (int32_t)i;
	if (p->head[a] < 0) {
		p->next[i] = p->prev[i] = -1;
		p->head[a] = p->tail[a] = ii;
	} else if (next_random(p) & 1) {
		p->prev[i] = -1;
		p->next[i] = p->head[a];
		p->prev[p->head[a]] = ii;
		p->head[a] = ii;
	} else {
		p->next[i] = -1;
		p->prev[i] = p->tail[a];
		p->next[p->tail[a]] = ii;
		p->tail[a] = ii;
	}
}

static void bucket_remove(struct bt_picker *p, uint32_t i)
{
	uint32_t a = p->avail[i];
	if (p->prev[i] >= 0)
		p->next[p->prev[i]] = p->next[i];
	else
		p->head[a] = p->next[i];
	if (p->next[i] >= 0)
		p->prev[p->next[i]] = p->prev[i];
	else
		p->tail[a] = p->prev[i];
}

struct bt_picker *bt_picker_new(const struct bt_geometry *g, const struct bt_bitfield *have,
				const struct bt_bitfield *want, uint64_t seed)
{
	struct bt_picker *p = bt_xcalloc(1, sizeof *p);
	uint32_t piece_count = g->piece_count;
	p->count = piece_count;
	p->geo = *g;
	/* splitmix64 of the seed, so nearby seeds give unrelated sequences (and never 0). */
	uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	p->rng = (z ^ (z >> 31)) | 1;
	p->state = bt_xcalloc(piece_count, 1);
	p->avail = bt_xcalloc(piece_count, sizeof *p->avail);
	p->next = bt_xcalloc(piece_count, sizeof *p->next);
	p->prev = bt_xcalloc(piece_count, sizeof *p->prev);
	p->partial_of = bt_xcalloc(piece_count, sizeof *p->partial_of);
	ensure_level(p, 0);
	/* Insert wanted pieces in a shuffled order: the random tie-break among equals. */
	uint32_t *order = bt_xcalloc(piece_count, sizeof *order);
	for (uint32_t i = 0; i < piece_count; i++)
		order[i] = i;
	for (uint32_t i = piece_count; i > 1; i--) {
		uint32_t j = (uint32_t)(next_random(p) % i);
		uint32_t t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	for (uint32_t k = 0; k < piece_count; k++) {
		uint32_t i = order[k];
		p->partial_of[i] = -1;
		if (want && !bt_bitfield_get(want, i)) {
			p->state[i] = SKIP;
		} else if (have && bt_bitfield_get(have, i)) {
			p->state[i] = HAVE;
		} else {
			p->state[i] = WANT;
			p->want_left++;
			p->not_have++;
			bucket_insert(p, i);
		}
	}
	free(order);
	return p;
}

void bt_picker_free(struct bt_picker *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->npartial; i++)
		free(p->partials[i].blocks);
	free(p->partials);
	free(p->prio);
	free(p->state);
	free(p->avail);
	free(p->next);
	free(p->prev);
	free(p->head);
	free(p->tail);
	free(p->partial_of);
	free(p);
}

static void change_avail(struct bt_picker *p, uint32_t i, int delta)
{
	if (delta < 0 && p->avail[i] == 0)
		return;
	if (delta > 0 && p->avail[i] == UINT16_MAX)
		return;
	bool listed = p->state[i] == WANT;
	if (listed)
		bucket_remove(p, i);
	p->avail[i] = (uint16_t)(p->avail[i] + delta);
	if (listed)
		bucket_insert(p, i);
}

void bt_picker_add_peer(struct bt_picker *p, const struct bt_bitfield *has)
{
	for (uint32_t i = 0; i < p->count; i++)
		if (bt_bitfield_get(has, i))
			change_avail(p, i, 1);
}

void bt_picker_remove_peer(struct bt_picker *p, const struct bt_bitfield *has)
{
	for (uint32_t i = 0; i < p->count; i++)
		if (bt_bitfield_get(has, i))
			change_avail(p, i, -1);
}

void bt_picker_peer_have(struct bt_picker *p, uint32_t piece)
{
	if (piece < p->count)
		change_avail(p, piece, 1);
}

void bt_picker_set_max_partial(struct bt_picker *p, size_t max)
{
	p->max_partial = max;
}

void bt_picker_set_sequential(struct bt_picker *p, uint32_t window)
{
	p->window = window;
	p->seq_base = 0;
}

void bt_picker_add_priority(struct bt_picker *p, uint32_t piece)
{
	if (piece >= p->count || p->state[piece] != WANT)
		return;
	for (size_t k = 0; k < p->nprio; k++)
		if (p->prio[k] == piece)
			return;
	p->prio = bt_xreallocarray(p->prio, p->nprio + 1, sizeof *p->prio);
	p->prio[p->nprio++] = piece;
}

/* A priority piece not started yet that the peer has, dropping those that have started. */
static int32_t pick_priority(struct bt_picker *p, const struct bt_bitfield *has)
{
	int32_t found = -1;
	size_t kept = 0;
	for (size_t k = 0; k < p->nprio; k++) {
		uint32_t i = p->prio[k];
		if (p->state[i] != WANT)
			continue; /* started (a failed piece is wanted again, by the usual order) */
		p->prio[kept++] = i;
		if (found < 0 && bt_bitfield_get(has, i))
			found = (int32_t)i;
	}
	p->nprio = kept;
	return found;
}

/*
 * Sequential: the rarest piece the peer has among the wanted pieces of the window that starts
 * at the first wanted piece not yet verified (ties to the lower index); nothing past the
 * window starts, so a reader at seq_base never waits on more than `window` pieces.
 */
static int32_t pick_window(struct bt_picker *p, const struct bt_bitfield *has)
{
	while (p->seq_base < p->count &&
	       (p->state[p->seq_base] == SKIP || p->state[p->seq_base] == HAVE))
		p->seq_base++;
	int32_t found = -1;
	uint32_t end = p->seq_base + p->window;
	if (end > p->count || end < p->seq_base)
		end = p->count;
	for (uint32_t i = p->seq_base; i < end; i++)
		if (p->state[i] == WANT && p->avail[i] > 0 && bt_bitfield_get(has, i) &&
		    (found < 0 || p->avail[i] < p->avail[found]))
			found = (int32_t)i;
	return found;
}

bool bt_picker_interesting(const struct bt_picker *p, const struct bt_bitfield *has)
{
	for (uint32_t i = 0; i < p->count; i++)
		if (p->state[i] != SKIP && p->state[i] != HAVE && bt_bitfield_get(has, i))
			return true;
	return false;
}

static struct partial *start_piece(struct bt_picker *p, uint32_t i, bool slow)
{
	bucket_remove(p, i);
	p->state[i] = PARTIAL;
	p->want_left--;
	if (p->npartial == p->partial_cap) {
		p->partial_cap = p->partial_cap ? p->partial_cap * 2 : 8;
		p->partials = bt_xreallocarray(p->partials, p->partial_cap, sizeof *p->partials);
	}
	struct partial *pp = &p->partials[p->npartial];
	pp->piece = i;
	pp->nblocks = blocks_in(p, i);
	pp->received = 0;
	pp->free_blocks = pp->nblocks;
	pp->slow = slow;
	pp->blocks = bt_xcalloc(pp->nblocks, 1);
	p->partial_of[i] = (int32_t)p->npartial++;
	return pp;
}

static void drop_partial(struct bt_picker *p, uint32_t i)
{
	int32_t k = p->partial_of[i];
	if (k < 0)
		return;
	free(p->partials[k].blocks);
	/* The others keep their order, oldest first: the endgame reads it from the newest end. */
	p->npartial--;
	memmove(p->partials + k, p->partials + k + 1,
		(p->npartial - (size_t)k) * sizeof *p->partials);
	for (size_t j = (size_t)k; j < p->npartial; j++)
		p->partial_of[p->partials[j].piece] = (int32_t)j;
	p->partial_of[i] = -1;
}

static struct bt_block block_of(const struct bt_picker *p, uint32_t piece, uint32_t b)
{
	return bt_geometry_block(&p->geo, piece, b);
}

static size_t take_free(struct bt_picker *p, struct partial *pp, bool slow, struct bt_block *out,
			size_t max)
{
	size_t n = 0;
	for (uint32_t b = 0; b < pp->nblocks && n < max && pp->free_blocks; b++) {
		if (pp->blocks[b])
			continue;
		pp->blocks[b] = slow ? SLOW_HELD | 1 : 1;
		pp->free_blocks--;
		out[n++] = block_of(p, pp->piece, b);
	}
	return n;
}

/* Blocks requested and not received: 0 when nobody works on the piece (its class is free). */
static uint32_t in_flight(const struct partial *pp)
{
	return pp->nblocks - pp->received - pp->free_blocks;
}

/*
 * Free blocks of started pieces the peer has: those of its own speed class, or of a piece nobody
 * works on any more (which then takes the peer's class); with `other`, those of the other class.
 */
static size_t take_started(struct bt_picker *p, const struct bt_bitfield *has, bool slow,
			   bool other, struct bt_block *out, size_t max)
{
	size_t n = 0;
	for (size_t k = 0; k < p->npartial && n < max; k++) {
		struct partial *pp = &p->partials[k];
		if (!pp->free_blocks || !bt_bitfield_get(has, pp->piece))
			continue;
		bool same = pp->slow == slow || in_flight(pp) == 0;
		if (same == other)
			continue;
		if (!other)
			pp->slow = slow;
		n += take_free(p, pp, slow, out + n, max - n);
	}
	return n;
}

/*
 * Second requests for blocks already asked of another peer: with `slow_held`, only blocks a slow
 * peer holds, otherwise only the others. At most BT_PICKER_ENDGAME_DUPS requests per block.
 * Newest pieces first: their blocks were asked for last and sit at the back of the other peers'
 * queues, so a copy of them saves the most time; the oldest are about to arrive anyway.
 */
static size_t take_dups(struct bt_picker *p, const struct bt_bitfield *has, bool slow_held,
			struct bt_block *out, size_t max,
			bool (*already)(void *ctx, const struct bt_block *b), void *ctx)
{
	size_t n = 0;
	for (size_t k = p->npartial; k-- > 0 && n < max;) {
		struct partial *pp = &p->partials[k];
		if (!bt_bitfield_get(has, pp->piece) || in_flight(pp) == 0)
			continue;
		for (uint32_t b = 0; b < pp->nblocks && n < max; b++) {
			uint8_t s = pp->blocks[b];
			if ((s & RECEIVED) || (s & REQUESTS) == 0 ||
			    (s & REQUESTS) >= BT_PICKER_ENDGAME_DUPS ||
			    !!(s & SLOW_HELD) != slow_held)
				continue;
			struct bt_block blk = block_of(p, pp->piece, b);
			if (already && already(ctx, &blk))
				continue;
			pp->blocks[b] = (uint8_t)(s + 1);
			out[n++] = blk;
		}
	}
	return n;
}

size_t bt_picker_pick(struct bt_picker *p, const struct bt_bitfield *has, struct bt_block *out,
		      size_t max, bool (*already)(void *ctx, const struct bt_block *b), void *ctx)
{
	return bt_picker_pick_as(p, has, BT_PICKER_FAST, out, max, already, ctx);
}

size_t bt_picker_pick_as(struct bt_picker *p, const struct bt_bitfield *has,
			 enum bt_picker_speed speed, struct bt_block *out, size_t max,
			 bool (*already)(void *ctx, const struct bt_block *b), void *ctx)
{
	bool slow = speed == BT_PICKER_SLOW;
	p->slow_seen = p->slow_seen || slow;
	size_t n = take_started(p, has, slow, false, out, max);
	while (n < max && p->want_left && (!p->max_partial || p->npartial < p->max_partial)) {
		/*
		 * The rarest level holding a piece this peer has; among its first few such pieces
		 * one is taken at random (reservoir sampling), which keeps the tie-break random
		 * even though bucket order follows the order in which availability changed.
		 */
		int32_t found = pick_priority(p, has);
		if (found < 0 && p->window) {
			if ((found = pick_window(p, has)) < 0)
				break;
		}
		for (uint32_t a = 1; a < p->levels && found < 0; a++) {
			uint32_t seen = 0;
			for (int32_t i = p->head[a]; i >= 0 && seen < TIE_SAMPLE; i = p->next[i]) {
				if (!bt_bitfield_get(has, (uint32_t)i))
					continue;
				if (next_random(p) % ++seen == 0)
					found = i;
			}
		}
		if (found < 0)
			break;
		n += take_free(p, start_piece(p, (uint32_t)found, slow), slow, out + n, max - n);
	}
	/* Nothing of its own to start: the other class's free blocks beat an idle peer. */
	if (n < max)
		n += take_started(p, has, slow, true, out + n, max - n);
	/*
	 * A fast peer with room left asks again for what slow peers hold, endgame or not: the last
	 * pieces, and pieces it cannot start (the cap), do not wait on the slowest peer. A slow
	 * peer never takes that second request: a copy from it would hardly ever arrive first.
	 */
	if (n < max && !slow && p->slow_seen)
		n += take_dups(p, has, true, out + n, max - n, already, ctx);
	if (n > 0 || p->want_left)
		return n;
	/* Endgame: every wanted piece is started; ask again for blocks still in flight. */
	return take_dups(p, has, false, out, max, already, ctx);
}

/* The block's slot in its partial piece, or NULL if it is not a block of a started piece. */
static uint8_t *slot(const struct bt_picker *p, const struct bt_block *b, struct partial **pp_out)
{
	if (b->piece >= p->count || p->partial_of[b->piece] < 0 || b->begin % BT_BLOCK_SIZE)
		return NULL;
	struct partial *pp = &p->partials[p->partial_of[b->piece]];
	uint32_t idx = b->begin / BT_BLOCK_SIZE;
	if (idx >= pp->nblocks || block_of(p, b->piece, idx).length != b->length)
		return NULL;
	*pp_out = pp;
	return &pp->blocks[idx];
}

void bt_picker_returned(struct bt_picker *p, const struct bt_block *b)
{
	struct partial *pp;
	uint8_t *s = slot(p, b, &pp);
	if (!s || (*s & RECEIVED) || (*s & REQUESTS) == 0)
		return;
	(*s)--;
	if ((*s & REQUESTS) == 0) {
		*s = 0;
		pp->free_blocks++;
	}
}

void bt_picker_mark_slow(struct bt_picker *p, const struct bt_block *b)
{
	struct partial *pp;
	uint8_t *s = slot(p, b, &pp);
	if (s && !(*s & RECEIVED) && (*s & REQUESTS)) {
		*s |= SLOW_HELD;
		p->slow_seen = true;
	}
}

uint32_t bt_picker_requests(const struct bt_picker *p, const struct bt_block *b)
{
	struct partial *pp;
	uint8_t *s = slot(p, b, &pp);
	return s && !(*s & RECEIVED) ? (uint32_t)(*s & REQUESTS) : 0;
}

bool bt_picker_received(struct bt_picker *p, const struct bt_block *b, bool *piece_complete)
{
	*piece_complete = false;
	struct partial *pp;
	uint8_t *s = slot(p, b, &pp);
	if (!s || (*s & RECEIVED) || p->state[b->piece] != PARTIAL)
		return false;
	if ((*s & REQUESTS) == 0)
		pp->free_blocks--; /* arrived unrequested (or after being returned): still good */
	*s = RECEIVED;
	if (++pp->received == pp->nblocks) {
		p->state[b->piece] = COMPLETE;
		*piece_complete = true;
	}
	return true;
}

bool bt_picker_is_pending(const struct bt_picker *p, const struct bt_block *b)
{
	struct partial *pp;
	uint8_t *s = slot(p, b, &pp);
	return s && !(*s & RECEIVED) && (*s & REQUESTS);
}

void bt_picker_piece_passed(struct bt_picker *p, uint32_t piece)
{
	if (piece >= p->count || p->state[piece] == HAVE)
		return;
	if (p->state[piece] == WANT) {
		bucket_remove(p, piece);
		p->want_left--;
	}
	drop_partial(p, piece);
	if (p->state[piece] != SKIP)
		p->not_have--;
	p->state[piece] = HAVE;
}

void bt_picker_piece_failed(struct bt_picker *p, uint32_t piece)
{
	if (piece >= p->count || (p->state[piece] != PARTIAL && p->state[piece] != COMPLETE))
		return;
	drop_partial(p, piece);
	p->state[piece] = WANT;
	p->want_left++;
	bucket_insert(p, piece);
}

enum bt_picker_speed bt_picker_speed_of(double rate, double mean)
{
	if (mean <= 0 || rate >= BT_PICKER_SLOW_FRACTION * mean || rate >= BT_PICKER_SLOW_FLOOR)
		return BT_PICKER_FAST;
	return BT_PICKER_SLOW;
}

bool bt_picker_done(const struct bt_picker *p)
{
	return p->not_have == 0;
}

uint32_t bt_picker_pieces_left(const struct bt_picker *p)
{
	return p->not_have;
}

bool bt_picker_in_endgame(const struct bt_picker *p)
{
	if (p->want_left)
		return false;
	for (size_t k = 0; k < p->npartial; k++)
		if (p->partials[k].free_blocks)
			return false;
	return p->npartial > 0;
}

size_t bt_picker_partial_count(const struct bt_picker *p)
{
	return p->npartial;
}
