#include "bt/peer.h"

#include "bt/log.h"
#include "bt/peer_io.h"
#include "bt/util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_QUEUE 4
#define MAX_QUEUE 64
/* Requests from the peer we keep at most (libtorrent pipelines hundreds); more are ignored. */
#define MAX_UPLOAD_QUEUE 2048
#define START_QUEUE	 32
/* Seconds of transfer to keep requested: the "delay" in bandwidth × delay. */
#define QUEUE_SECONDS	  0.5
#define KEEPALIVE_SECONDS 90
/* A PIECE whose block still lacks at least this much is read straight into its destination. */
#define STREAM_MIN_REST 4096

struct bt_peer {
	struct bt_peer_io *io;
	struct event *tick;
	struct event *later; /* reports from the loop what bt_peer_adopt was given */
	enum bt_peer_phase phase;
	struct bt_peer_config cfg;
	struct bt_peer_events ev;
	void *arg;
	struct bt_handshake theirs;
	bool handshake_unreported; /* adopted with their handshake: `handshake` is still due */
	const char *adopt_error;   /* adopted with a handshake we refuse: closed from the loop */
	unsigned features;	   /* negotiated: ours & theirs */
	bool is_self;
	uint16_t dht_port;
	struct bt_bitfield has;
	size_t bitfield_bytes; /* BT_WIRE_BITFIELD_UNKNOWN without a geometry */
	bool am_interested, peer_choking, am_choking, peer_interested;
	struct bt_block
		*upq; /* the peer's requests: a ring of MAX_UPLOAD_QUEUE, oldest at upq_head */
	size_t nupq, upq_head;
	uint64_t uploaded, up_window;
	double up_rate;

	struct bt_block *reqs; /* outstanding, oldest first */
	size_t nreqs, reqs_cap;

	double started, last_recv, last_block, last_send;
	uint64_t downloaded;
	uint64_t window_bytes; /* received since the last rate sample */
	double rate;
	bool rate_known;
	/*
	 * A block being read by the transport straight into its destination (bt_peer_io_stream).
	 * dropped: it was cancelled or taken back while arriving; its bytes are read and dropped.
	 */
	struct {
		bool active, dropped;
		struct bt_block b;
	} in_block;
	/* What the peer said of its pieces before we knew the geometry (bt_peer_set_geometry). */
	struct {
		uint8_t *bitfield; /* its raw BITFIELD, at most BT_WIRE_MAX_BITFIELD bytes */
		size_t bitfield_len;
		uint8_t *haves; /* its HAVEs as bits, grown to at most BT_WIRE_MAX_BITFIELD bytes */
		size_t haves_len;
		bool have_all;
	} early;
};

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
static void fail(struct bt_peer *p, const char *fmt, ...) BT_PRINTF(2, 3);
static void fail(struct bt_peer *p, const char *fmt, ...)
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

static void send_bytes(struct bt_peer *p, const void *data, size_t n)
{
	if (p->phase == BT_PEER_CLOSING)
		return;
	evbuffer_add(bt_peer_io_output(p->io), data, n);
	p->last_send = bt_now();
	bt_peer_io_schedule_flush(p->io);
}

static void record_request(struct bt_peer *p, const struct bt_block *b)
{
	if (p->nreqs == p->reqs_cap) {
		p->reqs_cap = p->reqs_cap ? p->reqs_cap * 2 : 32;
		p->reqs = bt_xreallocarray(p->reqs, p->reqs_cap, sizeof *p->reqs);
	}
	p->reqs[p->nreqs++] = *b;
}

static void remove_request(struct bt_peer *p, size_t i)
{
	memmove(p->reqs + i, p->reqs + i + 1, (p->nreqs - i - 1) * sizeof *p->reqs);
	p->nreqs--;
}

static ssize_t find_request(const struct bt_peer *p, const struct bt_block *b)
{
	for (size_t i = 0; i < p->nreqs; i++)
		if (bt_block_equal(&p->reqs[i], b))
			return (ssize_t)i;
	return -1;
}

/* A block has all its bytes in place (or was dropped): account for it and report it. */
static bool block_arrived(struct bt_peer *p, const struct bt_block *b, bool delivered)
{
	p->downloaded += b->length;
	p->window_bytes += b->length;
	p->last_block = bt_now();
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
	ssize_t i = find_request(p, &b);
	if (i < 0)
		return false;
	uint8_t *dest = block_dest(p, &b);
	if (!dest)
		return false;
	remove_request(p, (size_t)i);
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
	ssize_t i = find_request(p, &b);
	if (i < 0) {
		/* Not (or no longer) requested from this peer, e.g. after a cancel: drop it. */
		evbuffer_drain(in, total);
		return true;
	}
	remove_request(p, (size_t)i);
	uint8_t *dest = block_dest(p, &b);
	evbuffer_drain(in, 13);
	if (dest)
		evbuffer_remove(in, dest, b.length);
	else
		evbuffer_drain(in, b.length);
	return block_arrived(p, &b, dest != NULL);
}

static bool same_block(const struct bt_block *a, uint32_t index, uint32_t begin, uint32_t len)
{
	return a->piece == index && a->begin == begin && a->length == len;
}

static bool on_choke(struct bt_peer *p, const struct bt_wire_msg *m)
{
	bool choke = m->id == BT_WIRE_CHOKE;
	if (choke != p->peer_choking) {
		p->peer_choking = choke;
		if (p->ev.choked)
			p->ev.choked(p->arg, p, choke);
	}
	return true;
}

static bool on_interest(struct bt_peer *p, const struct bt_wire_msg *m)
{
	bool interested = m->id == BT_WIRE_INTERESTED;
	if (interested != p->peer_interested) {
		p->peer_interested = interested;
		if (p->ev.interest)
			p->ev.interest(p->arg, p, interested);
	}
	return true;
}

static void report_all_has(struct bt_peer *p)
{
	if (p->ev.has)
		p->ev.has(p->arg, p, UINT32_MAX);
}

/* Before the geometry a HAVE is remembered as a bit, within the largest bitfield we take. */
static bool remember_have(struct bt_peer *p, uint32_t index)
{
	size_t byte = index / 8;
	if (byte >= BT_WIRE_MAX_BITFIELD) {
		fail(p, "have for piece %u before the metadata (more than %u pieces)", index,
		     BT_WIRE_MAX_BITFIELD * 8);
		return false;
	}
	if (byte >= p->early.haves_len) {
		size_t len = byte + 1 > 2 * p->early.haves_len ? byte + 1 : 2 * p->early.haves_len;
		if (len > BT_WIRE_MAX_BITFIELD)
			len = BT_WIRE_MAX_BITFIELD;
		p->early.haves = bt_xreallocarray(p->early.haves, len, 1);
		memset(p->early.haves + p->early.haves_len, 0, len - p->early.haves_len);
		p->early.haves_len = len;
	}
	p->early.haves[byte] |= (uint8_t)(0x80 >> (index % 8));
	return true;
}

static bool on_have(struct bt_peer *p, const struct bt_wire_msg *m)
{
	if (!p->cfg.geo.piece_count)
		return remember_have(p, m->index);
	if (m->index >= p->cfg.geo.piece_count) {
		fail(p, "have for piece %u of %u", m->index, p->cfg.geo.piece_count);
		return false;
	}
	if (!bt_bitfield_get(&p->has, m->index)) {
		bt_bitfield_set(&p->has, m->index);
		if (p->ev.has)
			p->ev.has(p->arg, p, m->index);
	}
	return true;
}

static bool on_bitfield(struct bt_peer *p, const struct bt_wire_msg *m)
{
	if (!p->cfg.geo.piece_count) {
		/* Sized by bt_wire_check to at most BT_WIRE_MAX_BITFIELD; judged with the geometry.
		 */
		free(p->early.bitfield);
		p->early.bitfield = bt_xmalloc(m->payload_len ? m->payload_len : 1);
		memcpy(p->early.bitfield, m->payload, m->payload_len);
		p->early.bitfield_len = m->payload_len;
		return true;
	}
	if (bt_bitfield_import(&p->has, m->payload, m->payload_len)) {
		fail(p, "bitfield with spare bits set");
		return false;
	}
	report_all_has(p);
	return true;
}

static bool on_have_all(struct bt_peer *p, const struct bt_wire_msg *m)
{
	(void)m;
	if (!p->cfg.geo.piece_count) {
		p->early.have_all = true;
		return true;
	}
	bt_bitfield_set_all(&p->has);
	report_all_has(p);
	return true;
}

/* A request from the peer: checked, then queued (or ignored, as the protocol allows). */
static bool on_request(struct bt_peer *p, const struct bt_wire_msg *m)
{
	if (m->index >= p->cfg.geo.piece_count) {
		fail(p, "request for piece %u of %u", m->index, p->cfg.geo.piece_count);
		return false;
	}
	if (m->length == 0 || m->length > BT_BLOCK_SIZE) {
		fail(p, "request for %u bytes (at most %u allowed)", m->length, BT_BLOCK_SIZE);
		return false;
	}
	if ((uint64_t)m->begin + m->length > bt_geometry_piece_size(&p->cfg.geo, m->index)) {
		fail(p, "request past the end of piece %u", m->index);
		return false;
	}
	/* Requests that crossed our choke, for pieces we lack, beyond the queue, or repeated. */
	if (p->am_choking || !p->ev.read_block || !p->cfg.ours ||
	    !bt_bitfield_get(p->cfg.ours, m->index) || p->nupq >= MAX_UPLOAD_QUEUE)
		return true;
	for (size_t i = 0; i < p->nupq; i++)
		if (same_block(&p->upq[(p->upq_head + i) % MAX_UPLOAD_QUEUE], m->index, m->begin,
			       m->length))
			return true;
	p->upq[(p->upq_head + p->nupq++) % MAX_UPLOAD_QUEUE] =
		(struct bt_block){m->index, m->begin, m->length};
	return true;
}

static bool on_cancel(struct bt_peer *p, const struct bt_wire_msg *m)
{
	for (size_t i = 0; i < p->nupq; i++) {
		if (!same_block(&p->upq[(p->upq_head + i) % MAX_UPLOAD_QUEUE], m->index, m->begin,
				m->length))
			continue;
		/* Close the gap by moving the newer requests one slot back. */
		for (size_t k = i; k + 1 < p->nupq; k++)
			p->upq[(p->upq_head + k) % MAX_UPLOAD_QUEUE] =
				p->upq[(p->upq_head + k + 1) % MAX_UPLOAD_QUEUE];
		p->nupq--;
		break;
	}
	return true;
}

static bool on_port(struct bt_peer *p, const struct bt_wire_msg *m)
{
	p->dht_port = m->port;
	return true;
}

static bool on_extended(struct bt_peer *p, const struct bt_wire_msg *m)
{
	if (p->ev.extended)
		p->ev.extended(p->arg, p, m->ext_id, m->payload, m->payload_len);
	return p->phase != BT_PEER_CLOSING;
}

/*
 * The handler table: for each message id, what handles it, the earliest phase it is legal in
 * and the negotiated feature it needs. Messages are framed only after the handshake, and BEP 3
 * asks no order of them beyond "a bitfield comes first", which we do not enforce (some clients
 * send theirs late, or a bitfield and HAVEs), so every row starts at AWAIT_FIRST_MSG; a message
 * that must wait for something later says so here. PIECE is framed by process_input itself,
 * since its block may be streamed. Rows without a handler are legal and need nothing done:
 * SUGGEST, REJECT and ALLOWED_FAST get theirs when we offer Fast (today we do not, so no Fast
 * message is ever legal). `lenient`: without the feature the message is ignored, not an error
 * (clients send PORT whether or not DHT was announced).
 */
struct handler {
	const char *name;					    /* NULL: no such id (ignored) */
	bool (*fn)(struct bt_peer *p, const struct bt_wire_msg *m); /* false: the peer closed */
	enum bt_peer_phase earliest;
	unsigned needs; /* a BT_WIRE_FEAT_* bit, or 0 */
	bool lenient;
	bool needs_geometry; /* an error before bt_peer_set_geometry */
};

static const struct handler handlers[] = {
	[BT_WIRE_CHOKE] = {"choke", on_choke, BT_PEER_AWAIT_FIRST_MSG, 0, false, false},
	[BT_WIRE_UNCHOKE] = {"unchoke", on_choke, BT_PEER_AWAIT_FIRST_MSG, 0, false, false},
	[BT_WIRE_INTERESTED] = {"interested", on_interest, BT_PEER_AWAIT_FIRST_MSG, 0, false,
				false},
	[BT_WIRE_NOT_INTERESTED] = {"not interested", on_interest, BT_PEER_AWAIT_FIRST_MSG, 0,
				    false, false},
	[BT_WIRE_HAVE] = {"have", on_have, BT_PEER_AWAIT_FIRST_MSG, 0, false, false},
	[BT_WIRE_BITFIELD] = {"bitfield", on_bitfield, BT_PEER_AWAIT_FIRST_MSG, 0, false, false},
	[BT_WIRE_REQUEST] = {"request", on_request, BT_PEER_AWAIT_FIRST_MSG, 0, false, true},
	[BT_WIRE_PIECE] = {"piece", NULL, BT_PEER_AWAIT_FIRST_MSG, 0, false, true},
	[BT_WIRE_CANCEL] = {"cancel", on_cancel, BT_PEER_AWAIT_FIRST_MSG, 0, false, false},
	[BT_WIRE_PORT] = {"port", on_port, BT_PEER_AWAIT_FIRST_MSG, BT_WIRE_FEAT_DHT, true, false},
	[BT_WIRE_SUGGEST] = {"suggest piece", NULL, BT_PEER_AWAIT_FIRST_MSG, BT_WIRE_FEAT_FAST,
			     false, false},
	[BT_WIRE_HAVE_ALL] = {"have all", on_have_all, BT_PEER_AWAIT_FIRST_MSG, BT_WIRE_FEAT_FAST,
			      false, false},
	[BT_WIRE_HAVE_NONE] = {"have none", NULL, BT_PEER_AWAIT_FIRST_MSG, BT_WIRE_FEAT_FAST, false,
			       false},
	[BT_WIRE_REJECT] = {"reject request", NULL, BT_PEER_AWAIT_FIRST_MSG, BT_WIRE_FEAT_FAST,
			    false, false},
	[BT_WIRE_ALLOWED_FAST] = {"allowed fast", NULL, BT_PEER_AWAIT_FIRST_MSG, BT_WIRE_FEAT_FAST,
				  false, false},
	[BT_WIRE_EXTENDED] = {"extended", on_extended, BT_PEER_AWAIT_FIRST_MSG, BT_WIRE_FEAT_EXT,
			      false, false},
};

static const struct handler *handler_of(int id)
{
	if (id < 0 || (size_t)id >= sizeof handlers / sizeof handlers[0] || !handlers[id].name)
		return NULL;
	return &handlers[id];
}

enum bt_peer_msg_verdict bt_peer_msg_check(int id, enum bt_peer_phase phase, unsigned features)
{
	if (phase < BT_PEER_AWAIT_FIRST_MSG || phase == BT_PEER_CLOSING)
		return BT_PEER_MSG_WRONG_PHASE;
	if (id == BT_WIRE_KEEPALIVE)
		return BT_PEER_MSG_HANDLE;
	const struct handler *h = handler_of(id);
	if (!h)
		return BT_PEER_MSG_IGNORE;
	if (phase < h->earliest)
		return BT_PEER_MSG_WRONG_PHASE;
	if (h->needs && !(features & h->needs))
		return h->lenient ? BT_PEER_MSG_IGNORE : BT_PEER_MSG_NOT_NEGOTIATED;
	return BT_PEER_MSG_HANDLE;
}

unsigned bt_peer_msg_feature(int id)
{
	const struct handler *h = handler_of(id);
	return h ? h->needs : 0;
}

/*
 * Judges the message whose header is in hdr; closes the connection for a protocol error.
 * Returns the verdict (HANDLE or IGNORE when the peer is still open).
 */
static enum bt_peer_msg_verdict judge(struct bt_peer *p, int id)
{
	enum bt_peer_msg_verdict v = bt_peer_msg_check(id, p->phase, p->features);
	const struct handler *h = handler_of(id);
	switch (v) {
	case BT_PEER_MSG_HANDLE:
		if (h && h->needs_geometry && !p->cfg.geo.piece_count) {
			fail(p, "%s message before the metadata", h->name);
			return BT_PEER_MSG_WRONG_PHASE;
		}
		break;
	case BT_PEER_MSG_IGNORE:
		break;
	case BT_PEER_MSG_WRONG_PHASE:
		fail(p, "%s message (id %d) before the handshake", bt_wire_id_name(id), id);
		break;
	case BT_PEER_MSG_NOT_NEGOTIATED:
		fail(p, "%s message (id %d) but %s was not negotiated", h->name, id,
		     bt_wire_feature_name(h->needs));
		break;
	}
	return v;
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
		fail(p, "%s", err.msg);
		return false;
	case BT_WIRE_OK:
		break;
	}
	evbuffer_drain(in, BT_HANDSHAKE_LEN);
	const char *why = refuse_handshake(p, &h);
	if (why) {
		fail(p, "%s", why);
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
		fail(p, "%s", p->adopt_error);
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
			fail(p, "%s", err.msg);
			return;
		}
		if (r == BT_WIRE_NEED_MORE)
			return;
		int id = total == 4 ? BT_WIRE_KEEPALIVE : hdr[4];
		enum bt_peer_msg_verdict v = judge(p, id);
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
		} else if (v == BT_PEER_MSG_IGNORE || id == BT_WIRE_KEEPALIVE || !handlers[id].fn) {
			evbuffer_drain(in, total);
		} else {
			struct bt_wire_msg m;
			size_t used;
			const uint8_t *msg = evbuffer_pullup(in, (ssize_t)total);
			bt_wire_decode(msg, total, p->bitfield_bytes, &m, &used, NULL);
			go_on = handlers[id].fn(p, &m) && p->phase != BT_PEER_CLOSING;
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
	fail(arg, "%s", reason);
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
	while (p->nupq && !p->am_choking && p->phase == BT_PEER_ACTIVE &&
	       bt_peer_io_has_room(p->io)) {
		struct bt_block b = p->upq[p->upq_head];
		if (!bt_peer_io_take_upload(p->io, b.length))
			return; /* `room` comes again when the bucket has refilled */
		p->upq_head = (p->upq_head + 1) % MAX_UPLOAD_QUEUE;
		p->nupq--;
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
			fail(p, "cannot read piece %u to send it: %s", b.piece, strerror(-rc));
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
	/* Rate: an exponential average of one-second samples. */
	double sample = (double)p->window_bytes;
	p->window_bytes = 0;
	p->rate = p->rate_known ? 0.6 * p->rate + 0.4 * sample : sample;
	p->rate_known = p->rate_known || p->downloaded > 0;
	p->up_rate = 0.6 * p->up_rate + 0.4 * (double)p->up_window;
	p->up_window = 0;

	if (p->phase < BT_PEER_AWAIT_FIRST_MSG) {
		if (now - p->started > p->cfg.connect_timeout_s)
			fail(p, "%s timed out after %.0f s",
			     p->phase == BT_PEER_CONNECTING ? "connect" : "handshake",
			     p->cfg.connect_timeout_s);
		return;
	}
	if (now - p->last_recv > p->cfg.idle_timeout_s) {
		fail(p, "nothing received for %.0f s", p->cfg.idle_timeout_s);
		return;
	}
	/* From the last block (or the first request after none were out), not from our own
	 * sends: HAVEs and keep-alives say nothing about whether this peer answers. */
	if (p->nreqs && !p->peer_choking && now - p->last_block > p->cfg.request_timeout_s) {
		fail(p, "no block for %.0f s with %zu requests outstanding",
		     p->cfg.request_timeout_s, p->nreqs);
		return;
	}
	if (now - p->last_send > KEEPALIVE_SECONDS) {
		uint8_t ka[4];
		send_bytes(p, ka, bt_wire_put_keepalive(ka));
	}
}

static void set_bitfield_size(struct bt_peer *p)
{
	bt_bitfield_init(&p->has, p->cfg.geo.piece_count);
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
	p->upq = bt_xcalloc(MAX_UPLOAD_QUEUE, sizeof *p->upq);
	p->phase = BT_PEER_CONNECTING;
	set_bitfield_size(p);
	p->started = p->last_recv = p->last_block = p->last_send = bt_now();
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
	send_bytes(p, hs, sizeof hs);
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
	free(p->reqs);
	free(p->upq);
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
			fail(p, "bitfield of %zu bytes for %u pieces", p->early.bitfield_len,
			     count);
			return false;
		}
		if (bt_bitfield_import(&p->has, p->early.bitfield, p->early.bitfield_len)) {
			fail(p, "bitfield with spare bits set");
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
				fail(p, "have for piece %u of %u", index, count);
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
	set_bitfield_size(p);
	bool any = p->early.bitfield || p->early.have_all || p->early.haves_len;
	bool ok = apply_early(p);
	free(p->early.bitfield);
	free(p->early.haves);
	memset(&p->early, 0, sizeof p->early);
	if (!ok)
		return -EPROTO;
	if (any && p->phase != BT_PEER_CLOSING)
		report_all_has(p);
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
	send_bytes(p, m,
		   bt_wire_put_simple(m, interested ? BT_WIRE_INTERESTED : BT_WIRE_NOT_INTERESTED));
}

void bt_peer_send_have(struct bt_peer *p, uint32_t piece)
{
	uint8_t m[9];
	send_bytes(p, m, bt_wire_put_have(m, piece));
}

void bt_peer_send_bitfield(struct bt_peer *p, const struct bt_bitfield *have)
{
	if (!have->count)
		return;
	uint8_t h[5];
	size_t n = bt_bitfield_bytes(have->nbits);
	send_bytes(p, h, bt_wire_put_bitfield_header(h, n));
	send_bytes(p, have->bits, n);
}

int bt_peer_send_extended(struct bt_peer *p, uint8_t ext_id, const uint8_t *payload, size_t len)
{
	if (!(p->features & BT_WIRE_FEAT_EXT))
		return -EPROTO;
	if (len > BT_WIRE_MAX_EXTENDED - 2)
		return -EMSGSIZE;
	uint8_t h[6];
	send_bytes(p, h, bt_wire_put_extended_header(h, ext_id, len));
	send_bytes(p, payload, len);
	return 0;
}

void bt_peer_request(struct bt_peer *p, const struct bt_block *b)
{
	if (p->nreqs == 0)
		p->last_block = bt_now(); /* the request timer starts now */
	record_request(p, b);
	uint8_t m[17];
	send_bytes(p, m, bt_wire_put_request(m, BT_WIRE_REQUEST, b->piece, b->begin, b->length));
}

static bool is_in_block(const struct bt_peer *p, const struct bt_block *b)
{
	return p->in_block.active && !p->in_block.dropped &&
	       same_block(&p->in_block.b, b->piece, b->begin, b->length);
}

bool bt_peer_cancel(struct bt_peer *p, const struct bt_block *b)
{
	if (is_in_block(p, b)) {
		/* Too late to cancel: it is arriving. Its bytes will be dropped. */
		p->in_block.dropped = true;
		bt_peer_io_stream_drop(p->io);
		return true;
	}
	ssize_t i = find_request(p, b);
	if (i < 0)
		return false;
	remove_request(p, (size_t)i);
	uint8_t m[17];
	send_bytes(p, m, bt_wire_put_request(m, BT_WIRE_CANCEL, b->piece, b->begin, b->length));
	return true;
}

bool bt_peer_has_requested(const struct bt_peer *p, const struct bt_block *b)
{
	return find_request(p, b) >= 0 || is_in_block(p, b);
}

size_t bt_peer_outstanding(const struct bt_peer *p)
{
	return p->nreqs;
}

size_t bt_peer_take_requests(struct bt_peer *p, struct bt_block **out)
{
	if (p->in_block.active && !p->in_block.dropped) {
		/* The block on its way is given back too; if it still arrives it is dropped. */
		record_request(p, &p->in_block.b);
		p->in_block.dropped = true;
		bt_peer_io_stream_drop(p->io);
	}
	size_t n = p->nreqs;
	*out = p->reqs;
	p->reqs = NULL;
	p->nreqs = p->reqs_cap = 0;
	return n;
}

size_t bt_peer_queue_target(const struct bt_peer *p)
{
	if (!p->rate_known)
		return START_QUEUE;
	double q = p->rate * QUEUE_SECONDS / BT_BLOCK_SIZE;
	if (q < MIN_QUEUE)
		return MIN_QUEUE;
	return q > MAX_QUEUE ? MAX_QUEUE : (size_t)q;
}

uint64_t bt_peer_downloaded(const struct bt_peer *p)
{
	return p->downloaded;
}

double bt_peer_rate(const struct bt_peer *p)
{
	return p->rate;
}

void bt_peer_set_choking(struct bt_peer *p, bool choking)
{
	if (choking == p->am_choking)
		return;
	p->am_choking = choking;
	if (choking)
		p->nupq = 0;
	uint8_t m[5];
	send_bytes(p, m, bt_wire_put_simple(m, choking ? BT_WIRE_CHOKE : BT_WIRE_UNCHOKE));
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
	return p->nupq;
}
