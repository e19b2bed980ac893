/*
 * The peer's messages (part of the peer module, see peer.h): the handler table that says for
 * each message id what handles it, in which phase it is legal and under which negotiated
 * feature, and the handlers themselves. Framing, phases and the connection's life are in
 * peer.c; both files share struct bt_peer through peer_internal.h.
 */
#include "bt/peer.h"

#include "peer_internal.h"

#include "bt/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

void bt_peer_report_all_has(struct bt_peer *p)
{
	if (p->ev.has)
		p->ev.has(p->arg, p, UINT32_MAX);
}

/* Before the geometry a HAVE is remembered as a bit, within the largest bitfield we take. */
static bool remember_have(struct bt_peer *p, uint32_t index)
{
	size_t byte = index / 8;
	if (byte >= BT_WIRE_MAX_BITFIELD) {
		bt_peer_fail(p, "have for piece %u before the metadata (more than %u pieces)",
			     index, BT_WIRE_MAX_BITFIELD * 8);
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
		bt_peer_fail(p, "have for piece %u of %u", m->index, p->cfg.geo.piece_count);
		return false;
	}
	if (!bt_bitfield_get(&p->has, m->index)) {
		bt_bitfield_set(&p->has, m->index);
		if (p->ev.has)
			p->ev.has(p->arg, p, m->index);
	}
	return true;
}

/*
 * A BITFIELD, HAVE_ALL or HAVE_NONE says all the peer has: one of them, once (BEP 3, BEP 6).
 * But aria2 sends HAVE_NONE, then BITFIELDs as it gets pieces and HAVE_ALL when complete, so
 * a later BITFIELD or HAVE_ALL is taken as the new whole; only a HAVE_NONE after any of them
 * (pieces taken back) closes the connection.
 */
static bool first_bitfield(struct bt_peer *p, const struct bt_wire_msg *m)
{
	if (p->bitfield_msg && m->id == BT_WIRE_HAVE_NONE) {
		bt_peer_fail(p, "%s message after a bitfield, have all or have none",
			     bt_wire_id_name(m->id));
		return false;
	}
	p->bitfield_msg = m->id;
	return true;
}

static bool on_bitfield(struct bt_peer *p, const struct bt_wire_msg *m)
{
	if (!first_bitfield(p, m))
		return false;
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
		bt_peer_fail(p, "bitfield with spare bits set");
		return false;
	}
	bt_peer_report_all_has(p);
	return true;
}

static bool on_have_all(struct bt_peer *p, const struct bt_wire_msg *m)
{
	if (!first_bitfield(p, m))
		return false;
	if (!p->cfg.geo.piece_count) {
		p->early.have_all = true;
		return true;
	}
	bt_bitfield_set_all(&p->has);
	bt_peer_report_all_has(p);
	return true;
}

/* HAVE_NONE: it has nothing yet. Reported, so that the owner counts the peer as it is. */
static bool on_have_none(struct bt_peer *p, const struct bt_wire_msg *m)
{
	if (!first_bitfield(p, m))
		return false;
	if (p->cfg.geo.piece_count)
		bt_peer_report_all_has(p);
	return true;
}

/* Fast: the peer will not answer a request of ours. One we did not make is a protocol error. */
static bool on_reject(struct bt_peer *p, const struct bt_wire_msg *m)
{
	struct bt_block b = {m->index, m->begin, m->length};
	int i = bt_pipeline_find(&p->pl, &b);
	if (i < 0) {
		if (bt_pipeline_cancel_answered(&p->pl, &b))
			return true;
		bt_peer_fail(p, "reject for piece %u (offset %u, %u bytes) that we did not request",
			     b.piece, b.begin, b.length);
		return false;
	}
	bt_pipeline_remove_at(&p->pl, (size_t)i);
	/* A piece of its allowed-fast set rejected while it chokes us is not allowed after all:
	 * asking again would only be rejected again. */
	if (p->peer_choking && b.piece < p->allowed.nbits)
		bt_bitfield_clear(&p->allowed, b.piece);
	if (p->ev.rejected)
		p->ev.rejected(p->arg, p, &b);
	return p->phase != BT_PEER_CLOSING;
}

/* Fast: a piece we may request while the peer chokes us (advisory; kept once the geometry is
 * known, ignored before). */
static bool on_allowed_fast(struct bt_peer *p, const struct bt_wire_msg *m)
{
	if (!p->cfg.geo.piece_count)
		return true;
	if (m->index >= p->cfg.geo.piece_count) {
		bt_peer_fail(p, "allowed fast for piece %u of %u", m->index,
			     p->cfg.geo.piece_count);
		return false;
	}
	if (bt_bitfield_get(&p->allowed, m->index))
		return true;
	bt_bitfield_set(&p->allowed, m->index);
	if (p->ev.allowed_fast)
		p->ev.allowed_fast(p->arg, p, m->index);
	return p->phase != BT_PEER_CLOSING;
}

/* A request from the peer: checked, then queued (or ignored, as the protocol allows). */
static bool on_request(struct bt_peer *p, const struct bt_wire_msg *m)
{
	if (m->index >= p->cfg.geo.piece_count) {
		bt_peer_fail(p, "request for piece %u of %u", m->index, p->cfg.geo.piece_count);
		return false;
	}
	if (m->length == 0 || m->length > BT_BLOCK_SIZE) {
		bt_peer_fail(p, "request for %u bytes (at most %u allowed)", m->length,
			     BT_BLOCK_SIZE);
		return false;
	}
	if ((uint64_t)m->begin + m->length > bt_geometry_piece_size(&p->cfg.geo, m->index)) {
		bt_peer_fail(p, "request past the end of piece %u", m->index);
		return false;
	}
	/* Refused: requests that crossed our choke (but for the allowed-fast pieces of a Fast
	 * peer) or are for pieces we lack, and, by the serve queue, requests beyond its capacity.
	 * Without Fast a refusal is silent; with Fast it is a REJECT. A repeat of a request still
	 * queued is ignored either way: the one queued will be answered. */
	struct bt_block b = {m->index, m->begin, m->length};
	bool fast = bt_peer_fast(p);
	int rc = -EPERM;
	if ((!p->am_choking || (fast && bt_peer_allowed_them(p, m->index))) && p->ev.read_block &&
	    p->cfg.ours && bt_bitfield_get(p->cfg.ours, m->index))
		rc = bt_serveq_push(&p->to_serve, &b);
	if (fast && rc != 0 && rc != -EEXIST)
		bt_peer_send_reject(p, &b);
	return true;
}

static bool on_cancel(struct bt_peer *p, const struct bt_wire_msg *m)
{
	struct bt_block b = {m->index, m->begin, m->length};
	/* Fast: a cancelled request is answered too, with a REJECT (if it was not served yet). */
	if (bt_serveq_cancel(&p->to_serve, &b) && bt_peer_fast(p))
		bt_peer_send_reject(p, &b);
	return true;
}

static bool on_port(struct bt_peer *p, const struct bt_wire_msg *m)
{
	p->dht_port = m->port;
	if (m->port && p->ev.dht_port)
		p->ev.dht_port(p->arg, p, m->port);
	return p->phase != BT_PEER_CLOSING;
}

void bt_peer_send_port(struct bt_peer *p, uint16_t port)
{
	if (!(p->features & BT_WIRE_FEAT_DHT) || !port)
		return;
	uint8_t m[7];
	bt_peer_send(p, m, bt_wire_put_port(m, port));
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
 * SUGGEST is a hint we do not take (the picker's rarest-first order stands). `lenient`:
 * without the feature the message is ignored, not an error (clients send PORT whether or not
 * DHT was announced).
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
	[BT_WIRE_HAVE_NONE] = {"have none", on_have_none, BT_PEER_AWAIT_FIRST_MSG,
			       BT_WIRE_FEAT_FAST, false, false},
	[BT_WIRE_REJECT] = {"reject request", on_reject, BT_PEER_AWAIT_FIRST_MSG, BT_WIRE_FEAT_FAST,
			    false, false},
	[BT_WIRE_ALLOWED_FAST] = {"allowed fast", on_allowed_fast, BT_PEER_AWAIT_FIRST_MSG,
				  BT_WIRE_FEAT_FAST, false, false},
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
enum bt_peer_msg_verdict bt_peer_judge(struct bt_peer *p, int id)
{
	enum bt_peer_msg_verdict v = bt_peer_msg_check(id, p->phase, p->features);
	const struct handler *h = handler_of(id);
	switch (v) {
	case BT_PEER_MSG_HANDLE:
		if (h && h->needs_geometry && !p->cfg.geo.piece_count) {
			bt_peer_fail(p, "%s message before the metadata", h->name);
			return BT_PEER_MSG_WRONG_PHASE;
		}
		break;
	case BT_PEER_MSG_IGNORE:
		break;
	case BT_PEER_MSG_WRONG_PHASE:
		bt_peer_fail(p, "%s message (id %d) before the handshake", bt_wire_id_name(id), id);
		break;
	case BT_PEER_MSG_NOT_NEGOTIATED:
		bt_peer_fail(p, "%s message (id %d) but %s was not negotiated", h->name, id,
			     bt_wire_feature_name(h->needs));
		break;
	}
	return v;
}

bool bt_peer_has_handler(int id)
{
	const struct handler *h = handler_of(id);
	return h && h->fn;
}

bool bt_peer_handle(struct bt_peer *p, const struct bt_wire_msg *m)
{
	return handler_of(m->id)->fn(p, m);
}
