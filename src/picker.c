#include "bt/picker.h"

#include "bt/util.h"

#include <stdlib.h>
#include <string.h>

enum piece_state {
	SKIP,	  /* not wanted */
	WANT,	  /* wanted, not started: counted in its availability level and chunk */
	PARTIAL,  /* started: has a partial */
	COMPLETE, /* every block received, being verified */
	HAVE,	  /* verified */
};

#define RECEIVED 0x80
/* A slow peer holds a request for the block: in endgame, faster peers ask for it first. Cleared
 * when no request is left (a returned request does not say whose it was). */
#define SLOW_HELD 0x40
#define REQUESTS  0x3f
/*
 * Pieces per chunk. Each chunk keeps the lowest availability of its WANT pieces, so a search
 * for the rarest piece skips whole chunks: 2 bytes per 64 pieces.
 */
#define CHUNK 64
/* A chunk with no WANT piece anybody has. */
#define CHUNK_NONE 0
/*
 * Candidates one search returns: the rarest pieces the peer has, sampled at random among those
 * of that availability met from a random chunk on. A pick call takes from them and searches
 * again only when they run out, so the search is paid once per this many pieces started.
 */
#define CANDIDATES 32

struct partial {
	uint32_t piece;
	uint32_t nblocks;
	uint32_t received;
	uint32_t free_blocks; /* neither requested nor received */
	bool slow;	      /* started by a slow peer: slow peers finish it */
	uint8_t blocks[];     /* per block: RECEIVED, SLOW_HELD and a request count */
};

/*
 * Per piece only a state byte and a 16-bit availability (3 bytes; a 16 GiB torrent of 16 KiB
 * pieces costs 3 MiB): no bucket links, no index into the partials. The rarest piece is found
 * by a scan that chunk minimums keep short, and started pieces are found through a small hash
 * table whose size follows the number started, not the torrent.
 */
struct bt_picker {
	uint32_t count;
	struct bt_geometry geo;
	uint8_t *state;
	uint16_t *avail;
	/*
	 * Per chunk: at most the lowest availability >= 1 of its WANT pieces, or NONE when it has
	 * none. Kept as a lower bound (a piece leaving WANT or becoming more common never
	 * raises it) and made exact whenever a search reads the chunk: starting a piece costs
	 * nothing here, and a stale minimum costs one extra read of 64 pieces.
	 */
	uint16_t *cmin;
	uint32_t nchunks;
	uint32_t *level_count; /* WANT pieces at each availability, for the lowest level */
	uint32_t levels;
	struct partial **partials; /* started, oldest first */
	size_t npartial, partial_cap;
	struct partial **ptab; /* open addressing by piece, linear probing; NULL: empty */
	size_t ptab_size;      /* a power of two, at least twice npartial; 0 before the first */
	uint32_t want_left;    /* pieces in WANT state */
	size_t max_partial;    /* 0: no cap */
	uint32_t not_have;     /* wanted pieces not yet verified */
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
	p->level_count = bt_xreallocarray(p->level_count, n, sizeof *p->level_count);
	memset(p->level_count + p->levels, 0, (n - p->levels) * sizeof *p->level_count);
	p->levels = n;
}

/* Availability a (of a WANT piece in chunk c) lowers the chunk's bound if it must. */
static void chunk_lower(struct bt_picker *p, uint32_t c, uint16_t a)
{
	if (a && (p->cmin[c] == CHUNK_NONE || a < p->cmin[c]))
		p->cmin[c] = a;
}

/* Piece i (state already WANT) joins its level and lowers its chunk's bound. */
static void want_add(struct bt_picker *p, uint32_t i)
{
	uint16_t a = p->avail[i];
	ensure_level(p, a);
	p->level_count[a]++;
	chunk_lower(p, i / CHUNK, a);
}

/* Piece i (state still WANT) leaves its level; its chunk's bound may go stale (see cmin). */
static void want_remove(struct bt_picker *p, uint32_t i)
{
	p->level_count[p->avail[i]]--;
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
	p->state = bt_xcalloc(piece_count ? piece_count : 1, 1);
	p->avail = bt_xcalloc(piece_count ? piece_count : 1, sizeof *p->avail);
	p->nchunks = (piece_count + CHUNK - 1) / CHUNK;
	p->cmin = bt_xcalloc(p->nchunks ? p->nchunks : 1, sizeof *p->cmin);
	ensure_level(p, 0);
	for (uint32_t i = 0; i < piece_count; i++) {
		if (want && !bt_bitfield_get(want, i)) {
			p->state[i] = SKIP;
		} else if (have && bt_bitfield_get(have, i)) {
			p->state[i] = HAVE;
		} else {
			p->state[i] = WANT;
			p->want_left++;
			p->not_have++;
			p->level_count[0]++; /* nobody has anything yet: no chunk minimum either */
		}
	}
	return p;
}

void bt_picker_free(struct bt_picker *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->npartial; i++)
		free(p->partials[i]);
	free(p->partials);
	free(p->ptab);
	free(p->prio);
	free(p->state);
	free(p->avail);
	free(p->cmin);
	free(p->level_count);
	free(p);
}

/* Availability of piece i by one, up or down (clamped to 0 and UINT16_MAX). */
static void step_avail(struct bt_picker *p, uint32_t i, int delta)
{
	uint16_t a = p->avail[i];
	if ((delta < 0 && a == 0) || (delta > 0 && a == UINT16_MAX))
		return;
	uint16_t b = (uint16_t)(a + delta);
	p->avail[i] = b;
	if (p->state[i] != WANT)
		return;
	p->level_count[a]--;
	ensure_level(p, b);
	p->level_count[b]++;
	chunk_lower(p, i / CHUNK, b);
}

static void bitfield_avail(struct bt_picker *p, const struct bt_bitfield *has, int delta)
{
	for (uint32_t i = 0; i < p->count; i++)
		if (bt_bitfield_get(has, i))
			step_avail(p, i, delta);
}

void bt_picker_add_peer(struct bt_picker *p, const struct bt_bitfield *has)
{
	bitfield_avail(p, has, 1);
}

void bt_picker_remove_peer(struct bt_picker *p, const struct bt_bitfield *has)
{
	bitfield_avail(p, has, -1);
}

void bt_picker_peer_have(struct bt_picker *p, uint32_t piece)
{
	if (piece < p->count)
		step_avail(p, piece, 1);
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

static size_t ptab_home(const struct bt_picker *p, uint32_t piece)
{
	return (size_t)((piece * 2654435761u) & (p->ptab_size - 1));
}

static struct partial *find_partial(const struct bt_picker *p, uint32_t piece)
{
	if (!p->ptab_size)
		return NULL;
	for (size_t s = ptab_home(p, piece); p->ptab[s]; s = (s + 1) & (p->ptab_size - 1))
		if (p->ptab[s]->piece == piece)
			return p->ptab[s];
	return NULL;
}

static void ptab_insert(struct bt_picker *p, struct partial *pp)
{
	size_t s = ptab_home(p, pp->piece);
	while (p->ptab[s])
		s = (s + 1) & (p->ptab_size - 1);
	p->ptab[s] = pp;
}

/* Room for one more started piece: at most half full, so probes stay short. */
static void ptab_reserve(struct bt_picker *p)
{
	if ((p->npartial + 1) * 2 <= p->ptab_size)
		return;
	size_t n = p->ptab_size ? p->ptab_size * 2 : 16;
	free(p->ptab);
	p->ptab = bt_xcalloc(n, sizeof *p->ptab);
	p->ptab_size = n;
	for (size_t k = 0; k < p->npartial; k++)
		ptab_insert(p, p->partials[k]);
}

/* Linear probing's deletion: later entries of the run move back so no lookup stops short. */
static void ptab_remove(struct bt_picker *p, uint32_t piece)
{
	size_t mask = p->ptab_size - 1, i = ptab_home(p, piece);
	while (p->ptab[i]->piece != piece)
		i = (i + 1) & mask;
	p->ptab[i] = NULL;
	for (size_t j = (i + 1) & mask; p->ptab[j]; j = (j + 1) & mask) {
		size_t k = ptab_home(p, p->ptab[j]->piece);
		/* It stays if its home lies cyclically in (i, j]. */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		p->ptab[i] = p->ptab[j];
		p->ptab[j] = NULL;
		i = j;
	}
}

static struct partial *start_piece(struct bt_picker *p, uint32_t i, bool slow)
{
	want_remove(p, i);
	p->state[i] = PARTIAL;
	p->want_left--;
	ptab_reserve(p);
	if (p->npartial == p->partial_cap) {
		p->partial_cap = p->partial_cap ? p->partial_cap * 2 : 8;
		p->partials = bt_xreallocarray(p->partials, p->partial_cap, sizeof *p->partials);
	}
	uint32_t nblocks = blocks_in(p, i);
	struct partial *pp = bt_xcalloc(1, sizeof *pp + nblocks);
	pp->piece = i;
	pp->nblocks = nblocks;
	pp->free_blocks = nblocks;
	pp->slow = slow;
	p->partials[p->npartial++] = pp;
	ptab_insert(p, pp);
	return pp;
}

static void drop_partial(struct bt_picker *p, uint32_t i)
{
	struct partial *pp = find_partial(p, i);
	if (!pp)
		return;
	ptab_remove(p, i);
	size_t k = 0;
	while (p->partials[k] != pp)
		k++;
	/* The others keep their order, oldest first: the endgame reads it from the newest end. */
	p->npartial--;
	memmove(p->partials + k, p->partials + k + 1, (p->npartial - k) * sizeof *p->partials);
	free(pp);
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
		struct partial *pp = p->partials[k];
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
		struct partial *pp = p->partials[k];
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

/* The lowest availability (at least 1) of any WANT piece, or 0 if no WANT piece is had by anyone.
 */
static uint32_t lowest_level(const struct bt_picker *p)
{
	for (uint32_t a = 1; a < p->levels; a++)
		if (p->level_count[a])
			return a;
	return 0;
}

/*
 * Fills cand with up to CANDIDATES WANT pieces that the peer has, all at the lowest availability
 * among such pieces, and returns how many. Chunks whose minimum is above the best level found so
 * far are skipped unread. The scan starts at a random chunk and ends early once it holds enough
 * pieces at the lowest level of all; pieces of the level it ends on are sampled at random
 * (reservoir sampling), so equally rare pieces are taken in no fixed order.
 */
static size_t find_rarest(struct bt_picker *p, const struct bt_bitfield *has,
			  uint32_t cand[CANDIDATES])
{
	uint32_t floor = lowest_level(p);
	if (!floor || !p->nchunks)
		return 0;
	uint32_t best = UINT32_MAX, seen = 0;
	size_t n = 0;
	uint32_t c = (uint32_t)(next_random(p) % p->nchunks);
	for (uint32_t k = 0; k < p->nchunks; k++, c = c + 1 == p->nchunks ? 0 : c + 1) {
		if (p->cmin[c] == CHUNK_NONE || p->cmin[c] > best)
			continue;
		uint32_t lo = c * CHUNK, hi = lo + CHUNK < p->count ? lo + CHUNK : p->count;
		uint16_t m = CHUNK_NONE; /* the chunk's exact minimum, read on the way */
		for (uint32_t i = lo; i < hi; i++) {
			uint16_t a = p->avail[i];
			if (p->state[i] != WANT || a == 0)
				continue;
			if (m == CHUNK_NONE || a < m)
				m = a;
			if (a > best || !bt_bitfield_get(has, i))
				continue;
			if (a < best) {
				best = a;
				n = seen = 0;
			}
			if (n < CANDIDATES) {
				cand[n++] = i;
				seen++;
			} else {
				uint64_t j = next_random(p) % ++seen;
				if (j < CANDIDATES)
					cand[j] = i;
			}
		}
		p->cmin[c] = m;
		if (best == floor && seen >= CANDIDATES)
			break;
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
	uint32_t cand[CANDIDATES];
	size_t ncand = 0;
	bool searched_out = false; /* a search found nothing: the next would too (same call) */
	while (n < max && p->want_left && (!p->max_partial || p->npartial < p->max_partial)) {
		int32_t found = pick_priority(p, has);
		if (found < 0 && p->window) {
			if ((found = pick_window(p, has)) < 0)
				break;
		}
		/*
		 * Nothing within the call changes availability, so the candidates stay the rarest
		 * the peer has until they run out; one taken meanwhile as a priority piece is
		 * skipped. Drawn at random: the random tie-break.
		 */
		while (found < 0 && !searched_out) {
			if (!ncand && !(ncand = find_rarest(p, has, cand))) {
				searched_out = true;
				break;
			}
			size_t j = (size_t)(next_random(p) % ncand);
			uint32_t i = cand[j];
			cand[j] = cand[--ncand];
			if (p->state[i] == WANT)
				found = (int32_t)i;
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
	if (b->piece >= p->count || b->begin % BT_BLOCK_SIZE)
		return NULL;
	struct partial *pp = find_partial(p, b->piece);
	if (!pp)
		return NULL;
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
		want_remove(p, piece);
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
	want_add(p, piece);
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
		if (p->partials[k]->free_blocks)
			return false;
	return p->npartial > 0;
}

size_t bt_picker_partial_count(const struct bt_picker *p)
{
	return p->npartial;
}
