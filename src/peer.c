#include "bt/peer.h"

#include "peer_internal.h"

#include "bt/fastset.h"
#include "bt/log.h"
#include "bt/peer_io.h"
#include "bt/pipeline.h"
#include "bt/serveq.h"
#include "bt/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEEPALIVE_SECONDS 90
/* A PIECE whose block still lacks at least this much is read straight into its destination. */
#define STREAM_MIN_REST 4096

static void set_phase(struct bt_peer *p, enum bt_peer_phase next)
{
	/* Phases only move forward, one step at a time; CLOSING may come from any of them. */
	if (next != BT_PEER_CLOSING && next != p->phase + 1) {
		bt_log(BT_LOG_ERROR, "peer", "internal error: phase %d -> %d", p->phase, next);
		abort();
	}
	p->phase = next;
}

static void stop_io(struct bt_peer *p)
{
	bt_peer_io_stop(p->io);
	event_del(p->tick);
	event_del(p->later);
}

/* The connection failed: stop everything and tell the owner once. */
void bt_peer_fail(struct bt_peer *p, const char *fmt, ...)
{
	if (p->phase == BT_PEER_CLOSING)
		return;
	set_phase(p, BT_PEER_CLOSING);
	stop_io(p);
	char reason[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	if (p->ev.closed)
		p->ev.closed(p->arg, p, reason);
}

void bt_peer_send(struct bt_peer *p, const void *data, size_t n)
{
	if (p->phase == BT_PEER_CLOSING)
		return;
	evbuffer_add(bt_peer_io_output(p->io), data, n);
	p->last_send = bt_now();
	bt_peer_io_schedule_flush(p->io);
}

/* A block has all its bytes in place (or was dropped): account for it and report it. */
static bool block_arrived(struct bt_peer *p, const struct bt_block *b, bool delivered)
{
	bt_pipeline_received(&p->pl, b->length, bt_now());
	if (delivered && p->ev.block)
		p->ev.block(p->arg, p, b);
	return p->phase != BT_PEER_CLOSING;
}

static uint8_t *block_dest(struct bt_peer *p, const struct bt_block *b)
{
	return p->ev.block_dest ? p->ev.block_dest(p->arg, p, b) : NULL;
}

static struct bt_block piece_header(struct evbuffer *in, size_t total)
{
	uint8_t hdr[13];
	evbuffer_copyout(in, hdr, sizeof hdr);
	return (struct bt_block){.piece = bt_load_be32(hdr + 5),
				 .begin = bt_load_be32(hdr + 9),
				 .length = (uint32_t)(total - 13)};
}

/*
 * The header of a PIECE message is here but most of its block is still in the kernel: the
 * transport takes what has arrived and reads the rest straight into the destination, which
 * saves copying every block through the input buffer. Returns false if it does not apply.
 */
static bool start_block_stream(struct bt_peer *p, struct evbuffer *in, size_t total)
{
	struct bt_block b = piece_header(in, total);
	int i = bt_pipeline_find(&p->pl, &b);
	if (i < 0)
		return false;
	uint8_t *dest = block_dest(p, &b);
	if (!dest)
		return false;
	bt_pipeline_answered_at(&p->pl, (size_t)i, bt_now());
	evbuffer_drain(in, 13);
	p->in_block.active = true;
	p->in_block.dropped = false;
	p->in_block.b = b;
	bt_peer_io_stream(p->io, dest, b.length);
	return true;
}

static bool handle_piece(struct bt_peer *p, struct evbuffer *in, size_t total)
{
	struct bt_block b = piece_header(in, total);
	int i = bt_pipeline_find(&p->pl, &b);
	if (i < 0) {
		/* Not (or no longer) requested from this peer, e.g. after a cancel: drop it. With
		 * Fast, only a cancelled request may still be answered. */
		if (bt_peer_fast(p) && !bt_pipeline_cancel_answered(&p->pl, &b)) {
			bt_peer_fail(p, "piece %u (offset %u, %u bytes) that we did not request",
				     b.piece, b.begin, b.length);
			return false;
		}
		evbuffer_drain(in, total);
		return true;
	}
	bt_pipeline_answered_at(&p->pl, (size_t)i, bt_now());
	uint8_t *dest = block_dest(p, &b);
	evbuffer_drain(in, 13);
	if (dest)
		evbuffer_remove(in, dest, b.length);
	else
		evbuffer_drain(in, b.length);
	return block_arrived(p, &b, dest != NULL);
}

static void pump_uploads(struct bt_peer *p);

/* Why we refuse their handshake, or NULL. */
static const char *refuse_handshake(struct bt_peer *p, const struct bt_handshake *h)
{
	if (memcmp(h->info_hash, p->cfg.info_hash, BT_HASH_LEN) != 0)
		return "handshake for another torrent";
	if (memcmp(h->peer_id, p->cfg.peer_id, BT_PEER_ID_LEN) == 0) {
		p->is_self = true;
		return "connected to ourselves";
	}
	return NULL;
}

static void take_handshake(struct bt_peer *p, const struct bt_handshake *h)
{
	p->theirs = *h;
	p->features = bt_wire_features(p->cfg.reserved) & bt_wire_features(h->reserved);
	set_phase(p, BT_PEER_AWAIT_FIRST_MSG);
}

static bool report_handshake(struct bt_peer *p)
{
	p->handshake_unreported = false;
	if (p->ev.handshake)
		p->ev.handshake(p->arg, p, &p->theirs);
	return p->phase != BT_PEER_CLOSING;
}

static bool read_handshake(struct bt_peer *p, struct evbuffer *in)
{
	uint8_t buf[BT_HANDSHAKE_LEN];
	size_t n = evbuffer_get_length(in);
	if (n > sizeof buf)
		n = sizeof buf;
	evbuffer_copyout(in, buf, n);
	struct bt_handshake h;
	struct bt_err err;
	switch (bt_wire_parse_handshake(buf, n, &h, &err)) {
	case BT_WIRE_NEED_MORE:
		return false;
	case BT_WIRE_BAD:
		bt_peer_fail(p, "%s", err.msg);
		return false;
	case BT_WIRE_OK:
		break;
	}
	evbuffer_drain(in, BT_HANDSHAKE_LEN);
	const char *why = refuse_handshake(p, &h);
	if (why) {
		bt_peer_fail(p, "%s", why);
		return false;
	}
	take_handshake(p, &h);
	return report_handshake(p);
}

/* What bt_peer_adopt was given, told from the loop: the handshake, or why we refuse it. */
static bool report_adopted(struct bt_peer *p)
{
	if (p->adopt_error) {
		/* Our handshake goes out first, so that a connection to ourselves is seen as
		 * such from the dialling side too. */
		bt_peer_io_flush(p->io);
		bt_peer_fail(p, "%s", p->adopt_error);
		return false;
	}
	return !p->handshake_unreported || report_handshake(p);
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	report_adopted(arg);
}

/* Takes every complete message out of the input buffer and acts on it. */
static void process_input(struct bt_peer *p)
{
	struct evbuffer *in = bt_peer_io_input(p->io);
	if ((p->adopt_error || p->handshake_unreported) && !report_adopted(p))
		return;
	if (p->phase == BT_PEER_AWAIT_HANDSHAKE && !read_handshake(p, in))
		return;
	while (!bt_peer_io_streaming(p->io)) {
		size_t len = evbuffer_get_length(in);
		uint8_t hdr[5];
		size_t hn = len < 5 ? len : 5;
		evbuffer_copyout(in, hdr, hn);
		size_t total;
		struct bt_err err;
		enum bt_wire_result r = bt_wire_check(hdr, hn, p->bitfield_bytes, &total, &err);
		if (r == BT_WIRE_BAD) {
			bt_peer_fail(p, "%s", err.msg);
			return;
		}
		if (r == BT_WIRE_NEED_MORE)
			return;
		int id = total == 4 ? BT_WIRE_KEEPALIVE : hdr[4];
		enum bt_peer_msg_verdict v = bt_peer_judge(p, id);
		if (v != BT_PEER_MSG_HANDLE && v != BT_PEER_MSG_IGNORE)
			return;
		if (len < total) {
			if (id == BT_WIRE_PIECE && len >= 13 && total - len >= STREAM_MIN_REST &&
			    p->phase == BT_PEER_ACTIVE)
				start_block_stream(p, in, total);
			return;
		}
		if (p->phase == BT_PEER_AWAIT_FIRST_MSG)
			set_phase(p, BT_PEER_ACTIVE);
		bool go_on = true;
		if (id == BT_WIRE_PIECE) {
			go_on = handle_piece(p, in, total);
		} else if (v == BT_PEER_MSG_IGNORE || !bt_peer_has_handler(id)) {
			evbuffer_drain(in, total);
		} else {
			struct bt_wire_msg m;
			size_t used;
			const uint8_t *msg = evbuffer_pullup(in, (ssize_t)total);
			bt_wire_decode(msg, total, p->bitfield_bytes, &m, &used, NULL);
			go_on = bt_peer_handle(p, &m) && p->phase != BT_PEER_CLOSING;
			if (go_on)
				evbuffer_drain(in, total);
		}
		if (!go_on)
			return;
	}
}

static void io_connected(void *arg)
{
	set_phase(arg, BT_PEER_AWAIT_HANDSHAKE);
}

static void io_readable(void *arg)
{
	struct bt_peer *p = arg;
	p->last_recv = bt_now();
	process_input(p);
	if (p->phase != BT_PEER_CLOSING)
		pump_uploads(p);
}

static void io_streamed(void *arg)
{
	struct bt_peer *p = arg;
	p->in_block.active = false;
	block_arrived(p, &p->in_block.b, !p->in_block.dropped);
}

static void io_room(void *arg)
{
	pump_uploads(arg);
}

static void io_closed(void *arg, const char *reason)
{
	bt_peer_fail(arg, "%s", reason);
}

static const struct bt_peer_io_events io_events = {
	.connected = io_connected,
	.readable = io_readable,
	.streamed = io_streamed,
	.room = io_room,
	.closed = io_closed,
};

/* Produces queued blocks while the output buffer has room for them. */
static void pump_uploads(struct bt_peer *p)
{
	const struct bt_block *next;
	/* While we choke a Fast peer, the queue holds only requests for its allowed-fast set. */
	while ((next = bt_serveq_front(&p->to_serve)) &&
	       (!p->am_choking || bt_peer_allowed_them(p, next->piece)) &&
	       p->phase == BT_PEER_ACTIVE && bt_peer_io_has_room(p->io)) {
		struct bt_block b = *next;
		if (!bt_peer_io_take_upload(p->io, b.length))
			return; /* `room` comes again when the bucket has refilled */
		bt_serveq_pop(&p->to_serve);
		struct evbuffer *out = bt_peer_io_output(p->io);
		uint8_t hdr[13];
		struct evbuffer_iovec v;
		if (evbuffer_reserve_space(out, b.length + sizeof hdr, &v, 1) != 1)
			bt_oom();
		bt_wire_put_piece_header(hdr, b.piece, b.begin, b.length);
		memcpy(v.iov_base, hdr, sizeof hdr);
		int rc = p->ev.read_block(p->arg, p, &b, (uint8_t *)v.iov_base + sizeof hdr);
		if (rc) {
			evbuffer_commit_space(out, &v, 0);
			bt_peer_fail(p, "cannot read piece %u to send it: %s", b.piece,
				     strerror(-rc));
			return;
		}
		v.iov_len = b.length + sizeof hdr;
		evbuffer_commit_space(out, &v, 1);
		p->uploaded += b.length;
		p->up_window += b.length;
		p->last_send = bt_now();
		bt_peer_io_schedule_flush(p->io);
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bt_peer *p = arg;
	double now = bt_now();
	bt_pipeline_sample(&p->pl);
	p->up_rate = 0.6 * p->up_rate + 0.4 * (double)p->up_window;
	p->up_window = 0;

	if (p->phase < BT_PEER_AWAIT_FIRST_MSG) {
		if (now - p->started > p->cfg.connect_timeout_s)
			bt_peer_fail(p, "%s timed out after %.0f s",
				     p->phase == BT_PEER_CONNECTING ? "connect" : "handshake",
				     p->cfg.connect_timeout_s);
		return;
	}
	if (now - p->last_recv > p->cfg.idle_timeout_s) {
		bt_peer_fail(p, "nothing received for %.0f s", p->cfg.idle_timeout_s);
		return;
	}
	/* From the last block (or the first request after none were out), not from our own
	 * sends: HAVEs and keep-alives say nothing about whether this peer answers. */
	size_t outstanding = bt_pipeline_count(&p->pl);
	if (outstanding && !p->peer_choking &&
	    bt_pipeline_waited(&p->pl, now) > p->cfg.request_timeout_s) {
		bt_peer_fail(p, "no block for %.0f s with %zu requests outstanding",
			     p->cfg.request_timeout_s, outstanding);
		return;
	}
	/* A Fast peer that chokes us owes each request a PIECE or a REJECT; one that keeps them
	 * past the timeout is not judged a failure (it may serve them when it unchokes us), but
	 * they are cancelled and given back, so they cannot wait forever. */
	if (outstanding && p->peer_choking && bt_peer_fast(p) &&
	    bt_pipeline_waited(&p->pl, now) > p->cfg.request_timeout_s) {
		while (bt_pipeline_count(&p->pl) && p->phase != BT_PEER_CLOSING) {
			struct bt_block b = p->pl.reqs[0];
			bt_peer_cancel(p, &b);
			if (p->ev.rejected)
				p->ev.rejected(p->arg, p, &b);
		}
		if (p->phase == BT_PEER_CLOSING)
			return;
	}
	if (now - p->last_send > KEEPALIVE_SECONDS) {
		uint8_t ka[4];
		bt_peer_send(p, ka, bt_wire_put_keepalive(ka));
	}
}

static void set_bitfield_size(struct bt_peer *p)
{
	bt_bitfield_init(&p->has, p->cfg.geo.piece_count);
	bt_bitfield_init(&p->allowed, p->cfg.geo.piece_count);
	bt_bitfield_init(&p->allowed_has, p->cfg.geo.piece_count);
	p->bitfield_bytes = p->cfg.geo.piece_count ? bt_bitfield_bytes(p->cfg.geo.piece_count)
						   : BT_WIRE_BITFIELD_UNKNOWN;
}

/* The parts every peer has, in phase CONNECTING, without its transport yet. */
static struct bt_peer *peer_new(struct event_base *base, const struct bt_peer_config *cfg,
				const struct bt_peer_events *ev, void *arg)
{
	struct bt_peer *p = bt_xcalloc(1, sizeof *p);
	p->cfg = *cfg;
	if (p->cfg.connect_timeout_s <= 0)
		p->cfg.connect_timeout_s = 10;
	if (p->cfg.request_timeout_s <= 0)
		p->cfg.request_timeout_s = 20;
	if (p->cfg.idle_timeout_s <= 0)
		p->cfg.idle_timeout_s = 120;
	p->ev = *ev;
	p->arg = arg;
	p->peer_choking = true;
	p->am_choking = true;
	bt_serveq_init(&p->to_serve);
	p->phase = BT_PEER_CONNECTING;
	set_bitfield_size(p);
	p->started = p->last_recv = p->last_send = bt_now();
	bt_pipeline_init(&p->pl, p->started);
	p->tick = event_new(base, -1, EV_PERSIST, on_tick, p);
	p->later = event_new(base, -1, 0, on_later, p);
	if (!p->tick || !p->later)
		bt_oom();
	struct timeval one = {1, 0};
	event_add(p->tick, &one);
	return p;
}

static struct bt_peer_io_config io_config(const struct bt_peer_config *cfg)
{
	return (struct bt_peer_io_config){.bind_addr = cfg->bind_addr,
					  .bind_len = cfg->bind_len,
					  .down_limit = cfg->down_limit,
					  .up_limit = cfg->up_limit};
}

/* Queues our handshake: sent as soon as the connection is up. */
static void send_handshake(struct bt_peer *p)
{
	struct bt_handshake h;
	memcpy(h.reserved, p->cfg.reserved, 8);
	memcpy(h.info_hash, p->cfg.info_hash, BT_HASH_LEN);
	memcpy(h.peer_id, p->cfg.peer_id, BT_PEER_ID_LEN);
	uint8_t hs[BT_HANDSHAKE_LEN];
	bt_wire_handshake(hs, &h);
	bt_peer_send(p, hs, sizeof hs);
}

struct bt_peer *bt_peer_connect(struct event_base *base, const struct sockaddr *sa,
				socklen_t sa_len, const struct bt_peer_config *cfg,
				const struct bt_peer_events *ev, void *arg)
{
	struct bt_peer *p = peer_new(base, cfg, ev, arg);
	struct bt_peer_io_config iocfg = io_config(cfg);
	p->io = bt_peer_io_connect(base, sa, sa_len, &iocfg, &io_events, p);
	send_handshake(p);
	return p;
}

struct bt_peer *bt_peer_adopt(struct event_base *base, int fd, const struct bt_peer_config *cfg,
			      const struct bt_handshake *theirs, const struct bt_peer_events *ev,
			      void *arg)
{
	struct bt_peer *p = peer_new(base, cfg, ev, arg);
	struct bt_peer_io_config iocfg = io_config(cfg);
	p->io = bt_peer_io_adopt(base, fd, &iocfg, &io_events, p);
	set_phase(p, BT_PEER_AWAIT_HANDSHAKE);
	send_handshake(p);
	if (theirs) {
		p->adopt_error = refuse_handshake(p, theirs);
		if (!p->adopt_error) {
			take_handshake(p, theirs);
			p->handshake_unreported = true;
		}
		event_active(p->later, EV_TIMEOUT, 0);
	}
	return p;
}

void bt_peer_free(struct bt_peer *p)
{
	if (!p)
		return;
	event_free(p->tick);
	event_free(p->later);
	bt_peer_io_free(p->io);
	bt_bitfield_deinit(&p->has);
	bt_bitfield_deinit(&p->allowed);
	bt_bitfield_deinit(&p->allowed_has);
	bt_pipeline_deinit(&p->pl);
	bt_serveq_deinit(&p->to_serve);
	free(p->early.bitfield);
	free(p->early.haves);
	free(p);
}

void bt_peer_close(struct bt_peer *p)
{
	if (p->phase == BT_PEER_CLOSING)
		return;
	set_phase(p, BT_PEER_CLOSING);
	stop_io(p);
}

/* Applies what the peer said of its pieces before the geometry; false if it does not fit. */
static bool apply_early(struct bt_peer *p)
{
	uint32_t count = p->cfg.geo.piece_count;
	if (p->early.bitfield) {
		if (p->early.bitfield_len != p->bitfield_bytes) {
			bt_peer_fail(p, "bitfield of %zu bytes for %u pieces",
				     p->early.bitfield_len, count);
			return false;
		}
		if (bt_bitfield_import(&p->has, p->early.bitfield, p->early.bitfield_len)) {
			bt_peer_fail(p, "bitfield with spare bits set");
			return false;
		}
	}
	if (p->early.have_all)
		bt_bitfield_set_all(&p->has);
	for (size_t i = 0; i < p->early.haves_len; i++) {
		for (unsigned k = 0; k < 8 && p->early.haves[i]; k++) {
			if (!(p->early.haves[i] & (0x80 >> k)))
				continue;
			uint32_t index = (uint32_t)(i * 8 + k);
			if (index >= count) {
				bt_peer_fail(p, "have for piece %u of %u", index, count);
				return false;
			}
			bt_bitfield_set(&p->has, index);
		}
	}
	return true;
}

int bt_peer_set_geometry(struct bt_peer *p, const struct bt_geometry *g)
{
	if (p->cfg.geo.piece_count)
		return -EALREADY;
	if (!g->piece_count)
		return -EINVAL;
	p->cfg.geo = *g;
	bt_bitfield_deinit(&p->has);
	bt_bitfield_deinit(&p->allowed);
	bt_bitfield_deinit(&p->allowed_has);
	set_bitfield_size(p);
	if (p->sent_bitfield)
		bt_peer_send_allowed_fast(p);
	bool any = p->early.bitfield || p->early.have_all || p->early.haves_len;
	bool ok = apply_early(p);
	free(p->early.bitfield);
	free(p->early.haves);
	memset(&p->early, 0, sizeof p->early);
	if (!ok)
		return -EPROTO;
	if (any && p->phase != BT_PEER_CLOSING)
		bt_peer_report_all_has(p);
	return 0;
}

enum bt_peer_phase bt_peer_phase(const struct bt_peer *p)
{
	return p->phase;
}

const char *bt_peer_name(const struct bt_peer *p)
{
	return bt_peer_io_name(p->io);
}

const struct bt_bitfield *bt_peer_bitfield(const struct bt_peer *p)
{
	return &p->has;
}

const uint8_t *bt_peer_id(const struct bt_peer *p)
{
	return p->theirs.peer_id;
}

bool bt_peer_choking_us(const struct bt_peer *p)
{
	return p->peer_choking;
}

bool bt_peer_am_interested(const struct bt_peer *p)
{
	return p->am_interested;
}

bool bt_peer_is_self(const struct bt_peer *p)
{
	return p->is_self;
}

unsigned bt_peer_features(const struct bt_peer *p)
{
	return p->features;
}

uint16_t bt_peer_dht_port(const struct bt_peer *p)
{
	return p->dht_port;
}

void bt_peer_set_interested(struct bt_peer *p, bool interested)
{
	if (interested == p->am_interested)
		return;
	p->am_interested = interested;
	uint8_t m[5];
	bt_peer_send(
		p, m,
		bt_wire_put_simple(m, interested ? BT_WIRE_INTERESTED : BT_WIRE_NOT_INTERESTED));
}

void bt_peer_send_have(struct bt_peer *p, uint32_t piece)
{
	uint8_t m[9];
	bt_peer_send(p, m, bt_wire_put_have(m, piece));
}

void bt_peer_send_bitfield(struct bt_peer *p, const struct bt_bitfield *have)
{
	uint8_t h[5];
	p->sent_bitfield = true;
	if (bt_peer_fast(p) && (!have->count || have->count == have->nbits)) {
		bt_peer_send(
			p, h,
			bt_wire_put_simple(h, have->count ? BT_WIRE_HAVE_ALL : BT_WIRE_HAVE_NONE));
	} else if (have->count) {
		size_t n = bt_bitfield_bytes(have->nbits);
		bt_peer_send(p, h, bt_wire_put_bitfield_header(h, n));
		bt_peer_send(p, have->bits, n);
	}
	if (p->cfg.geo.piece_count)
		bt_peer_send_allowed_fast(p);
}

int bt_peer_send_extended(struct bt_peer *p, uint8_t ext_id, const uint8_t *payload, size_t len)
{
	if (!(p->features & BT_WIRE_FEAT_EXT))
		return -EPROTO;
	if (len > BT_WIRE_MAX_EXTENDED - 2)
		return -EMSGSIZE;
	uint8_t h[6];
	bt_peer_send(p, h, bt_wire_put_extended_header(h, ext_id, len));
	bt_peer_send(p, payload, len);
	return 0;
}

void bt_peer_request(struct bt_peer *p, const struct bt_block *b)
{
	bt_pipeline_add(&p->pl, b, bt_now()); /* the request timer starts if none were out */
	uint8_t m[17];
	bt_peer_send(p, m, bt_wire_put_request(m, BT_WIRE_REQUEST, b->piece, b->begin, b->length));
}

static bool is_in_block(const struct bt_peer *p, const struct bt_block *b)
{
	return p->in_block.active && !p->in_block.dropped && bt_block_equal(&p->in_block.b, b);
}

bool bt_peer_cancel(struct bt_peer *p, const struct bt_block *b)
{
	if (is_in_block(p, b)) {
		/* Too late to cancel: it is arriving. Its bytes will be dropped. */
		p->in_block.dropped = true;
		bt_peer_io_stream_drop(p->io);
		return true;
	}
	int i = bt_pipeline_find(&p->pl, b);
	if (i < 0)
		return false;
	/* A Fast peer still answers it: with the PIECE, or a REJECT. */
	if (bt_peer_fast(p))
		bt_pipeline_cancel_at(&p->pl, (size_t)i);
	else
		bt_pipeline_remove_at(&p->pl, (size_t)i);
	uint8_t m[17];
	bt_peer_send(p, m, bt_wire_put_request(m, BT_WIRE_CANCEL, b->piece, b->begin, b->length));
	return true;
}

bool bt_peer_has_requested(const struct bt_peer *p, const struct bt_block *b)
{
	return bt_pipeline_has(&p->pl, b) || is_in_block(p, b);
}

size_t bt_peer_outstanding(const struct bt_peer *p)
{
	return bt_pipeline_count(&p->pl);
}

const struct bt_block *bt_peer_requests(const struct bt_peer *p, size_t *n_out)
{
	*n_out = bt_pipeline_count(&p->pl);
	return p->pl.reqs;
}

size_t bt_peer_take_requests(struct bt_peer *p, struct bt_block **out)
{
	if (p->in_block.active && !p->in_block.dropped) {
		/* The block on its way is given back too; if it still arrives it is dropped. */
		bt_pipeline_add(&p->pl, &p->in_block.b, bt_now());
		p->in_block.dropped = true;
		bt_peer_io_stream_drop(p->io);
	}
	return bt_pipeline_take(&p->pl, out);
}

size_t bt_peer_queue_target(const struct bt_peer *p)
{
	return bt_pipeline_target(&p->pl);
}

size_t bt_peer_queue_refill_at(const struct bt_peer *p)
{
	return bt_pipeline_refill_at(&p->pl);
}

void bt_peer_set_reqq(struct bt_peer *p, uint32_t reqq)
{
	bt_pipeline_set_limit(&p->pl, reqq);
}

uint64_t bt_peer_downloaded(const struct bt_peer *p)
{
	return bt_pipeline_downloaded(&p->pl);
}

double bt_peer_rate(const struct bt_peer *p)
{
	return bt_pipeline_rate(&p->pl);
}

void bt_peer_set_choking(struct bt_peer *p, bool choking)
{
	if (choking == p->am_choking)
		return;
	p->am_choking = choking;
	uint8_t m[5];
	bt_peer_send(p, m, bt_wire_put_simple(m, choking ? BT_WIRE_CHOKE : BT_WIRE_UNCHOKE));
	if (!choking)
		return;
	if (!bt_peer_fast(p)) {
		bt_serveq_clear(&p->to_serve);
		return;
	}
	/* Fast: every queued request is answered, with a REJECT unless it is for a piece of the
	 * peer's allowed-fast set, which stays queued and is served while it is choked. */
	for (size_t n = bt_serveq_count(&p->to_serve); n > 0; n--) {
		struct bt_block b = *bt_serveq_front(&p->to_serve);
		bt_serveq_pop(&p->to_serve);
		if (bt_peer_allowed_them(p, b.piece))
			(void)bt_serveq_push(&p->to_serve, &b);
		else
			bt_peer_send_reject(p, &b);
	}
}

bool bt_peer_am_choking(const struct bt_peer *p)
{
	return p->am_choking;
}

bool bt_peer_interested_in_us(const struct bt_peer *p)
{
	return p->peer_interested;
}

uint64_t bt_peer_uploaded(const struct bt_peer *p)
{
	return p->uploaded;
}

double bt_peer_up_rate(const struct bt_peer *p)
{
	return p->up_rate;
}

size_t bt_peer_upload_queue(const struct bt_peer *p)
{
	return bt_serveq_count(&p->to_serve);
}
