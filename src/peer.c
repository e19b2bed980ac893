#include "bt/peer.h"

#include "bt/log.h"
#include "bt/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/uio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIN_QUEUE 4
#define MAX_QUEUE 64
/* Requests from the peer we keep at most (libtorrent pipelines hundreds); more are ignored. */
#define MAX_UPLOAD_QUEUE 2048
/* Produce the next block for the peer only while less than this is waiting to be sent. */
#define UPLOAD_LOW_WATER (512 * 1024)
#define START_QUEUE	 32
/* Seconds of transfer to keep requested: the "delay" in bandwidth × delay. */
#define QUEUE_SECONDS	  0.5
#define KEEPALIVE_SECONDS 90
/* One read asks for this much; a wake-up reads at most READS_PER_WAKE times. */
#define READ_CHUNK     (256 * 1024)
#define READS_PER_WAKE 4

struct bt_peer {
	evutil_socket_t fd;
	struct evbuffer *in, *out;
	struct event *read_ev, *write_ev;
	struct event *flush_ev; /* made active when output is queued: one write per loop pass */
	struct event *throttle; /* a rate limit ran dry: wakes us when there is more */
	bool read_throttled, send_throttled;
	struct event *tick;
	enum bt_peer_phase phase;
	struct bt_peer_config cfg;
	struct bt_peer_events ev;
	void *arg;
	char name[64];
	uint8_t remote_id[BT_PEER_ID_LEN];
	struct bt_bitfield has;
	size_t bitfield_bytes;
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
	int connect_errno; /* connect failed at once: reported from the first tick */
	/*
	 * A block being read straight from the socket into its destination: its header is
	 * consumed, `got` of its bytes are in place. dest NULL: the block was cancelled or taken
	 * back while arriving, and its remaining bytes are read and dropped.
	 */
	struct {
		bool active;
		struct bt_block b;
		uint8_t *dest;
		uint32_t got;
	} in_block;
	uint8_t *scratch; /* where a dropped block's bytes go (one block) */
};

static void set_phase(struct bt_peer *p, enum bt_peer_phase next)
{
	/* Phases only move forward; CLOSING may come from any of them. */
	if (next != BT_PEER_CLOSING && next != p->phase + 1) {
		bt_log(BT_LOG_ERROR, "peer", "internal error: phase %d -> %d", p->phase, next);
		abort();
	}
	p->phase = next;
}

static void stop_io(struct bt_peer *p)
{
	event_del(p->read_ev);
	event_del(p->write_ev);
	event_del(p->flush_ev);
	event_del(p->tick);
	event_del(p->throttle);
}

static void throttle_for(struct bt_peer *p, double seconds)
{
	if (seconds < 0.005)
		seconds = 0.005;
	struct timeval tv;
	if (!event_pending(p->throttle, EV_TIMEOUT, NULL))
		event_add(p->throttle, bt_timeval(&tv, seconds));
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
	p->ev.closed(p->arg, p, reason);
}

/*
 * Output queued during this pass of the loop goes out together in one writev, from the flush
 * event; epoll is only asked to watch for writability when the socket is full.
 */
static void schedule_flush(struct bt_peer *p)
{
	if (p->phase != BT_PEER_CONNECTING && !event_pending(p->write_ev, EV_WRITE, NULL) &&
	    !event_pending(p->flush_ev, EV_TIMEOUT, NULL))
		event_active(p->flush_ev, EV_TIMEOUT, 0);
}

static void send_bytes(struct bt_peer *p, const void *data, size_t n)
{
	if (p->phase == BT_PEER_CLOSING)
		return;
	evbuffer_add(p->out, data, n);
	p->last_send = bt_now();
	schedule_flush(p);
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
		if (p->reqs[i].piece == b->piece && p->reqs[i].begin == b->begin &&
		    p->reqs[i].length == b->length)
			return (ssize_t)i;
	return -1;
}

/* A block has all its bytes in place (or was dropped): account for it and report it. */
static bool block_arrived(struct bt_peer *p, const struct bt_block *b, bool delivered)
{
	p->downloaded += b->length;
	p->window_bytes += b->length;
	p->last_block = bt_now();
	if (delivered)
		p->ev.block(p->arg, p, b);
	return p->phase != BT_PEER_CLOSING;
}

/*
 * The header of a PIECE message is here but most of its block is still in the kernel: take
 * what has arrived and read the rest straight into the destination (see on_readable), which
 * saves copying every block through the input buffer. Returns false if it does not apply.
 */
static bool start_block_stream(struct bt_peer *p, struct evbuffer *in, size_t total)
{
	uint8_t hdr[13];
	evbuffer_copyout(in, hdr, sizeof hdr);
	struct bt_block b = {.piece = bt_load_be32(hdr + 5),
			     .begin = bt_load_be32(hdr + 9),
			     .length = (uint32_t)(total - 13)};
	ssize_t i = find_request(p, &b);
	if (i < 0)
		return false;
	uint8_t *dest = p->ev.block_dest(p->arg, p, &b);
	if (!dest)
		return false;
	remove_request(p, (size_t)i);
	evbuffer_drain(in, 13);
	size_t have = evbuffer_get_length(in);
	evbuffer_remove(in, dest, have);
	p->in_block.active = true;
	p->in_block.b = b;
	p->in_block.dest = dest;
	p->in_block.got = (uint32_t)have;
	return true;
}

static bool handle_piece(struct bt_peer *p, struct evbuffer *in, size_t total)
{
	uint8_t hdr[13];
	evbuffer_copyout(in, hdr, sizeof hdr);
	struct bt_block b = {.piece = bt_load_be32(hdr + 5),
			     .begin = bt_load_be32(hdr + 9),
			     .length = (uint32_t)(total - 13)};
	ssize_t i = find_request(p, &b);
	if (i < 0) {
		/* Not (or no longer) requested from this peer, e.g. after a cancel: drop it. */
		evbuffer_drain(in, total);
		return true;
	}
	remove_request(p, (size_t)i);
	uint8_t *dest = p->ev.block_dest(p->arg, p, &b);
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

/* A request from the peer: checked, then queued (or ignored, as the protocol allows). */
static bool take_request(struct bt_peer *p, const struct bt_wire_msg *m)
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

static void drop_upload(struct bt_peer *p, uint32_t index, uint32_t begin, uint32_t len)
{
	for (size_t i = 0; i < p->nupq; i++) {
		if (!same_block(&p->upq[(p->upq_head + i) % MAX_UPLOAD_QUEUE], index, begin, len))
			continue;
		/* Close the gap by moving the newer requests one slot back. */
		for (size_t k = i; k + 1 < p->nupq; k++)
			p->upq[(p->upq_head + k) % MAX_UPLOAD_QUEUE] =
				p->upq[(p->upq_head + k + 1) % MAX_UPLOAD_QUEUE];
		p->nupq--;
		return;
	}
}

static void pump_uploads(struct bt_peer *p);

static bool dispatch(struct bt_peer *p, const struct bt_wire_msg *m)
{
	switch (m->id) {
	case BT_WIRE_CHOKE:
	case BT_WIRE_UNCHOKE: {
		bool choke = m->id == BT_WIRE_CHOKE;
		if (choke == p->peer_choking)
			break;
		p->peer_choking = choke;
		p->ev.choked(p->arg, p, choke);
		break;
	}
	case BT_WIRE_HAVE:
		if (m->index >= p->cfg.geo.piece_count) {
			fail(p, "have for piece %u of %u", m->index, p->cfg.geo.piece_count);
			return false;
		}
		if (!bt_bitfield_get(&p->has, m->index)) {
			bt_bitfield_set(&p->has, m->index);
			p->ev.has(p->arg, p, m->index);
		}
		break;
	case BT_WIRE_BITFIELD:
		/* Accepted late too: some clients send one instead of HAVE messages. */
		if (bt_bitfield_import(&p->has, m->payload, m->payload_len)) {
			fail(p, "bitfield with spare bits set");
			return false;
		}
		p->ev.has(p->arg, p, UINT32_MAX);
		break;
	case BT_WIRE_INTERESTED:
	case BT_WIRE_NOT_INTERESTED: {
		bool interested = m->id == BT_WIRE_INTERESTED;
		if (interested == p->peer_interested)
			break;
		p->peer_interested = interested;
		if (p->ev.interest)
			p->ev.interest(p->arg, p, interested);
		break;
	}
	case BT_WIRE_REQUEST:
		return take_request(p, m);
	case BT_WIRE_CANCEL:
		drop_upload(p, m->index, m->begin, m->length);
		break;
	default:
		/* port, extended and unknown ids: nothing to do. */
		break;
	}
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
	if (memcmp(h.info_hash, p->cfg.info_hash, BT_HASH_LEN) != 0) {
		fail(p, "handshake for another torrent");
		return false;
	}
	memcpy(p->remote_id, h.peer_id, BT_PEER_ID_LEN);
	set_phase(p, BT_PEER_AWAIT_FIRST_MSG);
	p->ev.handshake(p->arg, p, &h);
	return p->phase != BT_PEER_CLOSING;
}

/* Takes every complete message out of the input buffer and acts on it. */
static void process_input(struct bt_peer *p)
{
	struct evbuffer *in = p->in;
	if (p->phase == BT_PEER_AWAIT_HANDSHAKE && !read_handshake(p, in))
		return;
	for (;;) {
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
		if (r == BT_WIRE_OK && len < total && len >= 13 && hdr[4] == BT_WIRE_PIECE &&
		    total - len >= 4096 && p->phase == BT_PEER_ACTIVE) {
			start_block_stream(p, in, total);
			return;
		}
		if (r == BT_WIRE_NEED_MORE || len < total)
			return;
		if (p->phase == BT_PEER_AWAIT_FIRST_MSG)
			set_phase(p, BT_PEER_ACTIVE);
		bool go_on;
		if (hdr[4] == BT_WIRE_PIECE && total > 4) {
			go_on = handle_piece(p, in, total);
		} else {
			struct bt_wire_msg m;
			size_t used;
			const uint8_t *msg = evbuffer_pullup(in, (ssize_t)total);
			bt_wire_decode(msg, total, p->bitfield_bytes, &m, &used, NULL);
			go_on = dispatch(p, &m);
			if (go_on)
				evbuffer_drain(in, total);
		}
		if (!go_on)
			return;
	}
}

/*
 * Reads straight into the input buffer's free space (no FIONREAD probe per read, as
 * evbuffer_read does), then processes what arrived. A message that is not complete yet simply
 * waits in the buffer: its length was already judged from its header.
 */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct bt_peer *p = arg;
	bool eof = false;
	int error = 0;
	for (int i = 0; i < READS_PER_WAKE; i++) {
		/* Under a limit, read in 16 KiB steps at least: tiny reads only burn CPU. */
		size_t allow = bt_rate_limit_take(p->cfg.down_limit, bt_now(), READ_CHUNK);
		if (allow < BT_BLOCK_SIZE && allow < READ_CHUNK) {
			bt_rate_limit_give_back(p->cfg.down_limit, allow);
			/* Out of download budget: stop reading until the bucket refills. */
			event_del(p->read_ev);
			p->read_throttled = true;
			throttle_for(p, bt_rate_limit_wait(p->cfg.down_limit, bt_now(), 16384));
			break;
		}
		/* The rest of a block being streamed goes first, straight to its place. */
		struct iovec iov[3];
		int ni = 0;
		size_t direct = 0;
		if (p->in_block.active) {
			direct = p->in_block.b.length - p->in_block.got;
			if (direct > allow)
				direct = allow;
			if (!p->in_block.dest && !p->scratch)
				p->scratch = bt_xmalloc(BT_BLOCK_SIZE);
			iov[ni].iov_base = (p->in_block.dest ? p->in_block.dest : p->scratch) +
					   p->in_block.got;
			iov[ni++].iov_len = direct;
		}
		struct evbuffer_iovec v[2];
		int nv = 0;
		size_t asked = direct;
		if (allow > direct) {
			nv = evbuffer_reserve_space(p->in, (ssize_t)(allow - direct), v, 2);
			if (nv <= 0)
				bt_oom();
			for (int k = 0; k < nv; k++) {
				size_t len =
					v[k].iov_len < allow - asked ? v[k].iov_len : allow - asked;
				iov[ni].iov_base = v[k].iov_base;
				iov[ni++].iov_len = len;
				asked += len;
			}
		}
		ssize_t n = readv(fd, iov, ni);
		bt_rate_limit_give_back(p->cfg.down_limit, asked - (n > 0 ? (size_t)n : 0));
		if (n < 0 && errno == EINTR) {
			if (nv)
				evbuffer_commit_space(p->in, v, 0);
			continue;
		}
		if (n <= 0) {
			if (nv)
				evbuffer_commit_space(p->in, v, 0);
			if (n == 0)
				eof = true;
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				error = errno;
			break;
		}
		size_t left = (size_t)n;
		if (direct) {
			size_t took = left < direct ? left : direct;
			p->in_block.got += (uint32_t)took;
			left -= took;
			if (p->in_block.got == p->in_block.b.length) {
				p->in_block.active = false;
				if (!block_arrived(p, &p->in_block.b, p->in_block.dest != NULL)) {
					if (nv)
						evbuffer_commit_space(p->in, v, 0);
					return;
				}
			}
		}
		for (int k = 0; k < nv; k++) {
			if (v[k].iov_len > left)
				v[k].iov_len = left;
			left -= v[k].iov_len;
		}
		/* evbuffer_commit_space wants the vectors it gave: drop empty trailing ones. */
		while (nv > 1 && v[nv - 1].iov_len == 0)
			nv--;
		if (nv)
			evbuffer_commit_space(p->in, v, nv);
		p->last_recv = bt_now();
		if ((size_t)n < asked)
			break; /* the socket is drained */
	}
	process_input(p);
	if (p->phase == BT_PEER_CLOSING)
		return;
	pump_uploads(p);
	if (p->phase == BT_PEER_CLOSING)
		return;
	if (eof)
		fail(p, "connection closed by the peer");
	else if (error)
		fail(p, "%s", strerror(error));
}

/* Produces queued blocks while the output buffer has room for them. */
static void pump_uploads(struct bt_peer *p)
{
	while (p->nupq && !p->am_choking && p->phase == BT_PEER_ACTIVE &&
	       evbuffer_get_length(p->out) < UPLOAD_LOW_WATER) {
		struct bt_block b = p->upq[p->upq_head];
		if (!bt_rate_limit_take_all(p->cfg.up_limit, bt_now(), b.length)) {
			p->send_throttled = true;
			throttle_for(p, bt_rate_limit_wait(p->cfg.up_limit, bt_now(), b.length));
			return;
		}
		p->upq_head = (p->upq_head + 1) % MAX_UPLOAD_QUEUE;
		p->nupq--;
		uint8_t hdr[13];
		struct evbuffer_iovec v;
		if (evbuffer_reserve_space(p->out, b.length + sizeof hdr, &v, 1) != 1)
			bt_oom();
		bt_wire_put_piece_header(hdr, b.piece, b.begin, b.length);
		memcpy(v.iov_base, hdr, sizeof hdr);
		int rc = p->ev.read_block(p->arg, p, &b, (uint8_t *)v.iov_base + sizeof hdr);
		if (rc) {
			evbuffer_commit_space(p->out, &v, 0);
			fail(p, "cannot read piece %u to send it: %s", b.piece, strerror(-rc));
			return;
		}
		v.iov_len = b.length + sizeof hdr;
		evbuffer_commit_space(p->out, &v, 1);
		p->uploaded += b.length;
		p->up_window += b.length;
		p->last_send = bt_now();
		schedule_flush(p);
	}
}

static void flush(struct bt_peer *p)
{
	pump_uploads(p);
	while (evbuffer_get_length(p->out)) {
		int n = evbuffer_write(p->out, p->fd);
		if (n > 0) {
			pump_uploads(p);
			continue;
		}
		int e = EVUTIL_SOCKET_ERROR();
		if (n < 0 && (e == EAGAIN || e == EWOULDBLOCK || e == EINTR)) {
			event_add(p->write_ev, NULL); /* the socket is full: wait until it is not */
			return;
		}
		fail(p, "%s", n < 0 ? strerror(e) : "connection closed");
		return;
	}
	event_del(p->write_ev);
}

static void on_throttle_end(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bt_peer *p = arg;
	if (p->phase == BT_PEER_CLOSING)
		return;
	if (p->read_throttled) {
		p->read_throttled = false;
		event_add(p->read_ev, NULL);
	}
	if (p->send_throttled) {
		p->send_throttled = false;
		pump_uploads(p);
		schedule_flush(p);
	}
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush(arg);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct bt_peer *p = arg;
	if (p->phase == BT_PEER_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof err;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err) {
			fail(p, "connect: %s", strerror(err));
			return;
		}
		set_phase(p, BT_PEER_AWAIT_HANDSHAKE);
		event_add(p->read_ev, NULL);
	}
	flush(p);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bt_peer *p = arg;
	if (p->connect_errno) {
		fail(p, "connect: %s", strerror(p->connect_errno));
		return;
	}
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

/* The parts every peer has, in phase CONNECTING with our handshake queued, on socket fd. */
static struct bt_peer *peer_new(struct event_base *base, evutil_socket_t fd,
				const struct bt_peer_config *cfg, const struct bt_peer_events *ev,
				void *arg)
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
	p->fd = fd;
	p->peer_choking = true;
	p->am_choking = true;
	p->upq = bt_xcalloc(MAX_UPLOAD_QUEUE, sizeof *p->upq);
	p->phase = BT_PEER_CONNECTING;
	bt_bitfield_init(&p->has, cfg->geo.piece_count);
	p->bitfield_bytes = bt_bitfield_bytes(cfg->geo.piece_count);
	p->started = p->last_recv = p->last_block = p->last_send = bt_now();
	p->in = evbuffer_new();
	p->out = evbuffer_new();
	p->tick = event_new(base, -1, EV_PERSIST, on_tick, p);
	p->flush_ev = event_new(base, -1, 0, on_flush, p);
	p->throttle = event_new(base, -1, 0, on_throttle_end, p);
	p->read_ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, p);
	p->write_ev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_writable, p);
	if (!p->in || !p->out || !p->tick || !p->flush_ev || !p->throttle || !p->read_ev ||
	    !p->write_ev)
		bt_oom();
	struct timeval one = {1, 0};
	event_add(p->tick, &one);

	struct bt_handshake h;
	memcpy(h.reserved, cfg->reserved, 8);
	memcpy(h.info_hash, cfg->info_hash, BT_HASH_LEN);
	memcpy(h.peer_id, cfg->peer_id, BT_PEER_ID_LEN);
	uint8_t hs[BT_HANDSHAKE_LEN];
	bt_wire_handshake(hs, &h);
	evbuffer_add(p->out, hs, sizeof hs); /* sent as soon as the connection is up */
	return p;
}

struct bt_peer *bt_peer_connect(struct event_base *base, const struct sockaddr *sa,
				socklen_t sa_len, const struct bt_peer_config *cfg,
				const struct bt_peer_events *ev, void *arg)
{
	evutil_socket_t fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int saved = errno;
	struct bt_peer *p = peer_new(base, fd, cfg, ev, arg);
	bt_sockaddr_format(sa, p->name, sizeof p->name);
	if (fd < 0) {
		p->connect_errno = saved;
	} else {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		/* Leave from the address we listen on (--listen), so peers and trackers see it. */
		if (cfg->bind_addr && cfg->bind_addr->sa_family == sa->sa_family &&
		    bind(fd, cfg->bind_addr, cfg->bind_len) != 0) {
			p->connect_errno = errno;
			event_active(p->tick, EV_TIMEOUT, 0);
			return p;
		}
		if (connect(fd, sa, sa_len) == 0 || errno == EINPROGRESS) {
			event_add(p->write_ev,
				  NULL); /* writable = connected, or failed: SO_ERROR */
			return p;
		}
		p->connect_errno = errno;
	}
	/* Reported from the loop like any other failure, never from inside this call. */
	event_active(p->tick, EV_TIMEOUT, 0);
	return p;
}

struct bt_peer *bt_peer_adopt(struct event_base *base, int fd, const struct bt_peer_config *cfg,
			      const struct bt_handshake *theirs, const struct bt_peer_events *ev,
			      void *arg)
{
	evutil_make_socket_nonblocking(fd);
	struct bt_peer *p = peer_new(base, fd, cfg, ev, arg);
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		bt_sockaddr_format((struct sockaddr *)&ss, p->name, sizeof p->name);
	else
		snprintf(p->name, sizeof p->name, "fd %d", (int)fd);
	set_phase(p, BT_PEER_AWAIT_HANDSHAKE);
	event_add(p->read_ev, NULL);
	event_active(p->flush_ev, EV_TIMEOUT, 0);
	if (theirs) {
		/* Read by the session's router: judged like any handshake, from the loop. */
		uint8_t hs[BT_HANDSHAKE_LEN];
		bt_wire_handshake(hs, theirs);
		evbuffer_prepend(p->in, hs, sizeof hs);
		event_active(p->read_ev, EV_READ, 0);
	}
	return p;
}

void bt_peer_free(struct bt_peer *p)
{
	if (!p)
		return;
	event_free(p->read_ev);
	event_free(p->write_ev);
	event_free(p->flush_ev);
	event_free(p->throttle);
	event_free(p->tick);
	evbuffer_free(p->in);
	evbuffer_free(p->out);
	if (p->fd >= 0)
		close(p->fd);
	bt_bitfield_deinit(&p->has);
	free(p->reqs);
	free(p->upq);
	free(p->scratch);
	free(p);
}

void bt_peer_close(struct bt_peer *p)
{
	if (p->phase == BT_PEER_CLOSING)
		return;
	set_phase(p, BT_PEER_CLOSING);
	stop_io(p);
}

enum bt_peer_phase bt_peer_phase(const struct bt_peer *p)
{
	return p->phase;
}

const char *bt_peer_name(const struct bt_peer *p)
{
	return p->name;
}

const struct bt_bitfield *bt_peer_bitfield(const struct bt_peer *p)
{
	return &p->has;
}

const uint8_t *bt_peer_id(const struct bt_peer *p)
{
	return p->remote_id;
}

bool bt_peer_choking_us(const struct bt_peer *p)
{
	return p->peer_choking;
}

bool bt_peer_am_interested(const struct bt_peer *p)
{
	return p->am_interested;
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
	return p->in_block.active && p->in_block.dest &&
	       same_block(&p->in_block.b, b->piece, b->begin, b->length);
}

bool bt_peer_cancel(struct bt_peer *p, const struct bt_block *b)
{
	if (is_in_block(p, b)) {
		/* Too late to cancel: it is arriving. Its bytes will be dropped. */
		p->in_block.dest = NULL;
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
	if (p->in_block.active && p->in_block.dest) {
		/* The block on its way is given back too; if it still arrives it is dropped. */
		record_request(p, &p->in_block.b);
		p->in_block.dest = NULL;
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
