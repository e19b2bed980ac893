/*
 * The torrent's web seeds (BEP 19): one bt_webseed per URL of the metainfo, fed runs of
 * contiguous whole pieces that nobody has started, claimed from the picker as a peer that has
 * just those pieces (so the picker's wanted set, caps and accounting all hold). Filled pieces
 * come back inside curl's callback, so they are queued and judged from a zero-delay event:
 * blocks received, verified like a peer's; a URL whose piece fails is dropped. URLs naming
 * the same server share one bt_webseed_server, so its cap holds over all of them.
 */
#include "torrent_internal.h"

#include "bt/log.h"
#include "bt/session.h"
#include "bt/webseed.h"

#include <stdlib.h>
#include <string.h>

/* A run aims at this many bytes (several pieces per request, one request per file). */
#define RUN_BYTES ((int64_t)4 << 20)

struct filled {
	struct bt_webseed *ws;
	uint32_t piece;
};

struct bt_torrent_webseeds {
	struct bt_torrent *t;
	struct bt_webseed **ws;
	struct bt_webseed_server *servers; /* one per distinct server; the URLs point in */
	bool *counted;			   /* its full bitfield is in the picker's availability */
	size_t n;
	struct bt_bitfield all, window;
	struct bt_block *blocks;
	size_t blocks_cap;
	struct filled *filled;
	size_t nfilled, filled_cap;
	struct event *ready;
	uint32_t cursor;
};

static uint8_t *ws_buffer(void *arg, uint32_t piece)
{
	struct bt_torrent *t = arg;
	if (bt_bitfield_get(&t->have, piece))
		return NULL;
	return bt_assembly_get(&t->assembly, piece);
}

static void ws_piece_filled(void *arg, struct bt_webseed *ws, uint32_t piece)
{
	struct bt_torrent *t = arg;
	struct bt_torrent_webseeds *w = t->webseeds;
	if (w->nfilled == w->filled_cap) {
		w->filled_cap = w->filled_cap ? 2 * w->filled_cap : 16;
		w->filled = bt_xreallocarray(w->filled, w->filled_cap, sizeof *w->filled);
	}
	w->filled[w->nfilled++] = (struct filled){ws, piece};
	event_active(w->ready, EV_TIMEOUT, 0);
}

static void ws_bytes(void *arg, struct bt_webseed *ws, size_t n)
{
	(void)ws;
	struct bt_torrent *t = arg;
	double now = bt_now();
	if (t->first_byte < 0)
		t->first_byte = now - t->started;
	t->last_data = now;
	t->received_bytes += n;
	t->rate_window += n;
	t->webseed_bytes += n;
}

/* The piece's requested blocks go back to the picker; its buffer too if nobody else wrote. */
static void give_back(struct bt_torrent *t, uint32_t piece)
{
	if (bt_bitfield_get(&t->have, piece) || !bt_assembly_get(&t->assembly, piece))
		return;
	struct bt_geometry geo = bt_meta_geometry(t->m);
	uint32_t nb = bt_geometry_block_count(&geo, piece);
	bool all_pending = true;
	for (uint32_t k = 0; k < nb; k++) {
		struct bt_block b = bt_geometry_block(&geo, piece, k);
		if (bt_picker_is_pending(t->picker, &b))
			bt_picker_returned(t->picker, &b);
		else
			all_pending = false;
	}
	/* A peer given a copy in endgame may have sent a block of it: keep that. */
	if (all_pending)
		bt_assembly_release(&t->assembly, piece);
}

static void ws_run_done(void *arg, struct bt_webseed *ws, uint32_t first, uint32_t count, int error,
			const char *msg)
{
	(void)error;
	(void)msg;
	struct bt_torrent *t = arg;
	for (uint32_t i = 0; i < count; i++)
		give_back(t, first + i);
	struct bt_torrent_webseeds *w = t->webseeds;
	for (size_t i = 0; i < w->n; i++)
		if (w->ws[i] == ws && w->counted[i] && bt_webseed_dropped(ws)) {
			bt_picker_remove_peer(t->picker, &w->all);
			w->counted[i] = false;
		}
	/* The next run starts from the loop, not from inside http's completion. */
	event_active(w->ready, EV_TIMEOUT, 0);
}

static const struct bt_webseed_events ws_events = {
	.buffer = ws_buffer,
	.piece_filled = ws_piece_filled,
	.bytes = ws_bytes,
	.run_done = ws_run_done,
};

static bool not_already(void *ctx, const struct bt_block *b)
{
	(void)ctx;
	(void)b;
	return false;
}

/*
 * Claims up to max contiguous pieces nobody has started, from the picker, for one web seed.
 * Returns how many, with the first in *first_out; their buffers are started.
 */
static uint32_t claim_run(struct bt_torrent *t, uint32_t max, uint32_t *first_out)
{
	struct bt_torrent_webseeds *w = t->webseeds;
	const struct bt_metainfo *m = t->m;
	struct bt_geometry geo = bt_meta_geometry(m);
	for (uint32_t scanned = 0; scanned < m->piece_count;) {
		uint32_t i = (w->cursor + scanned) % m->piece_count;
		if (bt_bitfield_get(&t->have, i) || bt_assembly_get(&t->assembly, i)) {
			scanned++;
			continue;
		}
		uint32_t n = 0;
		size_t nblocks = 0;
		while (n < max && i + n < m->piece_count && !bt_bitfield_get(&t->have, i + n) &&
		       !bt_assembly_get(&t->assembly, i + n)) {
			bt_bitfield_set(&w->window, i + n);
			nblocks += bt_geometry_block_count(&geo, i + n);
			n++;
		}
		if (nblocks > w->blocks_cap) {
			w->blocks_cap = nblocks;
			w->blocks = bt_xreallocarray(w->blocks, nblocks, sizeof *w->blocks);
		}
		size_t got = bt_picker_pick(t->picker, &w->window, w->blocks, nblocks, not_already,
					    NULL);
		for (uint32_t k = 0; k < n; k++)
			bt_bitfield_clear(&w->window, i + k);
		/* Which pieces came whole: count blocks per piece of the window. */
		uint32_t *per = bt_xcalloc(n, sizeof *per);
		for (size_t k = 0; k < got; k++)
			if (w->blocks[k].piece - i < n)
				per[w->blocks[k].piece - i]++;
		uint32_t start = n, len = 0;
		for (uint32_t k = 0; k < n; k++) {
			bool whole = per[k] == bt_geometry_block_count(&geo, i + k);
			if (whole && start == n)
				start = k;
			if (start < n) {
				if (!whole)
					break;
				len++;
			}
		}
		/* Blocks outside the contiguous run go back (partial pieces, a later run). */
		for (size_t k = 0; k < got; k++) {
			uint32_t rel = w->blocks[k].piece - i;
			if (rel < start || rel >= start + len)
				bt_picker_returned(t->picker, &w->blocks[k]);
		}
		free(per);
		if (len > 0) {
			for (uint32_t k = 0; k < len; k++)
				bt_assembly_buffer_for(&t->assembly, i + start + k);
			*first_out = i + start;
			w->cursor = (i + start + len) % m->piece_count;
			return len;
		}
		if (got > 0)
			return 0; /* the picker is at its cap of started pieces */
		scanned += n;
	}
	return 0;
}

static uint32_t run_pieces(const struct bt_torrent *t)
{
	int64_t n = RUN_BYTES / t->m->piece_length;
	if (n < 1)
		n = 1;
	/* Leave most assembly buffers to the peers. */
	int64_t cap = (int64_t)bt_assembly_max_partial(&t->assembly) / 4;
	if (cap < 1)
		cap = 1;
	return (uint32_t)(n < cap ? n : cap);
}

static void feed(struct bt_torrent *t)
{
	struct bt_torrent_webseeds *w = t->webseeds;
	if (!w || t->finished || t->failed || t->stopping)
		return;
	double now = bt_now();
	for (size_t i = 0; i < w->n; i++) {
		while (bt_webseed_ready(w->ws[i], now)) {
			uint32_t first, n = claim_run(t, run_pieces(t), &first);
			if (n == 0)
				return;
			if (bt_webseed_fetch(w->ws[i], first, n, now) != 0) {
				for (uint32_t k = 0; k < n; k++)
					give_back(t, first + k);
				break;
			}
		}
	}
}

static void judge(struct bt_torrent *t, struct bt_webseed *ws, uint32_t piece)
{
	if (bt_bitfield_get(&t->have, piece) || !bt_assembly_get(&t->assembly, piece))
		return;
	if (bt_webseed_dropped(ws)) {
		give_back(t, piece);
		return;
	}
	struct bt_geometry geo = bt_meta_geometry(t->m);
	uint32_t nb = bt_geometry_block_count(&geo, piece);
	bool complete = false;
	for (uint32_t k = 0; k < nb; k++) {
		struct bt_block b = bt_geometry_block(&geo, piece, k);
		bool c = false;
		if (bt_picker_received(t->picker, &b, &c) && c)
			complete = true;
		/* A copy asked of a peer in endgame is no longer needed. */
		for (size_t i = 0; i < t->nconns; i++)
			if (!t->conns[i]->reaping && bt_peer_has_requested(t->conns[i]->peer, &b))
				bt_peer_cancel(t->conns[i]->peer, &b);
	}
	if (!complete)
		return;
	bt_torrent_piece_complete(t, piece);
	if (!bt_bitfield_get(&t->have, piece) && !t->failed)
		bt_webseed_drop(ws, "its data failed verification");
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bt_torrent *t = arg;
	struct bt_torrent_webseeds *w = t->webseeds;
	for (size_t i = 0; i < w->nfilled && !t->failed; i++)
		judge(t, w->filled[i].ws, w->filled[i].piece);
	w->nfilled = 0;
	if (t->finished || t->failed || t->stopping) {
		for (size_t i = 0; i < w->n; i++)
			if (bt_webseed_runs(w->ws[i]))
				bt_webseed_drop(w->ws[i], NULL);
		return;
	}
	feed(t);
}

void bt_torrent_webseed_start(struct bt_torrent *t)
{
	if (t->webseeds || !t->m || !t->m->web_seed_count || !t->picker ||
	    bt_picker_done(t->picker))
		return;
	struct bt_torrent_webseeds *w = bt_xcalloc(1, sizeof *w);
	t->webseeds = w;
	w->t = t;
	w->ready = event_new(bt_session_base(t->session), -1, 0, on_ready, t);
	if (!w->ready)
		bt_oom();
	bt_bitfield_init(&w->all, t->m->piece_count);
	bt_bitfield_set_all(&w->all);
	bt_bitfield_init(&w->window, t->m->piece_count);
	size_t count = t->m->web_seed_count;
	w->ws = bt_xcalloc(count, sizeof *w->ws);
	w->servers = bt_xcalloc(count, sizeof *w->servers);
	w->counted = bt_xcalloc(count, sizeof *w->counted);
	char **keys = bt_xcalloc(count, sizeof *keys);
	struct bt_webseed_server **server_of = bt_xcalloc(count, sizeof *server_of);
	size_t nservers = 0;
	for (size_t i = 0; i < count; i++) {
		/* The server of an earlier URL with the same key, else a new one. */
		keys[i] = bt_webseed_server_key(t->m->web_seeds[i]);
		struct bt_webseed_server *server = NULL;
		for (size_t j = 0; j < i && keys[i] && !server; j++)
			if (keys[j] && strcmp(keys[i], keys[j]) == 0)
				server = server_of[j];
		if (!server)
			server = &w->servers[nservers++];
		server_of[i] = server;
		w->ws[w->n] = bt_webseed_new(bt_session_http(t->session), t->m->web_seeds[i], t->m,
					     server, &ws_events, t);
		/* Like a peer that has everything, for the picker's rarity counts. */
		bt_picker_add_peer(t->picker, &w->all);
		w->counted[w->n++] = true;
	}
	for (size_t i = 0; i < count; i++)
		free(keys[i]);
	free(keys);
	free(server_of);
	feed(t);
}

void bt_torrent_webseed_tick(struct bt_torrent *t)
{
	feed(t);
}

bool bt_torrent_webseed_hopeful(const struct bt_torrent *t)
{
	const struct bt_torrent_webseeds *w = t->webseeds;
	for (size_t i = 0; w && i < w->n; i++)
		if (!bt_webseed_dropped(w->ws[i]))
			return true;
	return false;
}

size_t bt_torrent_webseed_count(const struct bt_torrent *t, size_t *active_out)
{
	const struct bt_torrent_webseeds *w = t->webseeds;
	size_t active = 0;
	for (size_t i = 0; w && i < w->n; i++)
		active += bt_webseed_runs(w->ws[i]) > 0;
	if (active_out)
		*active_out = active;
	return w ? w->n : 0;
}

void bt_torrent_webseed_stop(struct bt_torrent *t)
{
	struct bt_torrent_webseeds *w = t->webseeds;
	for (size_t i = 0; w && i < w->n; i++)
		if (bt_webseed_runs(w->ws[i]))
			bt_webseed_drop(w->ws[i], NULL);
}

void bt_torrent_webseed_free(struct bt_torrent *t)
{
	struct bt_torrent_webseeds *w = t->webseeds;
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++)
		bt_webseed_free(w->ws[i]);
	free(w->ws);
	free(w->servers);
	free(w->counted);
	free(w->blocks);
	free(w->filled);
	bt_bitfield_deinit(&w->all);
	bt_bitfield_deinit(&w->window);
	event_free(w->ready);
	free(w);
	t->webseeds = NULL;
}
