/*
 * The peer state machine through a socket pair: the test plays the remote peer on one end,
 * byte by byte where it matters, and checks what the peer sends and reports.
 */
#include "bt/fastset.h"
#include "bt/peer.h"
#include "bt/serveq.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define PIECES 10
#define BLOCK  100

struct rec {
	int handshakes, chokes, unchokes, has_calls, blocks, closed, extended, rejected;
	struct bt_block last_rejected;
	uint8_t ext_id;
	uint8_t ext_payload[64];
	size_t ext_len;
	uint32_t last_has;
	char reason[256];
	uint8_t dest[BT_BLOCK_SIZE];
	struct bt_block last_block;
	uint8_t remote_id[20];
};

struct fx {
	struct event_base *base;
	int remote; /* the test's end */
	struct bt_peer *peer;
	struct rec r;
	struct bt_peer_config cfg;
	struct bt_bitfield ours;
};

static void on_handshake(void *arg, struct bt_peer *p, const struct bt_handshake *h)
{
	(void)p;
	struct rec *r = arg;
	r->handshakes++;
	memcpy(r->remote_id, h->peer_id, 20);
}

static void on_choked(void *arg, struct bt_peer *p, bool choked)
{
	(void)p;
	struct rec *r = arg;
	if (choked)
		r->chokes++;
	else
		r->unchokes++;
}

static void on_has(void *arg, struct bt_peer *p, uint32_t piece)
{
	(void)p;
	struct rec *r = arg;
	r->has_calls++;
	r->last_has = piece;
}

static uint8_t *on_dest(void *arg, struct bt_peer *p, const struct bt_block *b)
{
	(void)p;
	struct rec *r = arg;
	return b->length <= BT_BLOCK_SIZE ? r->dest : NULL;
}

static void on_block(void *arg, struct bt_peer *p, const struct bt_block *b)
{
	(void)p;
	struct rec *r = arg;
	r->blocks++;
	r->last_block = *b;
}

static void on_closed(void *arg, struct bt_peer *p, const char *reason)
{
	(void)p;
	struct rec *r = arg;
	r->closed++;
	snprintf(r->reason, sizeof r->reason, "%s", reason);
}

static int on_read_block(void *arg, struct bt_peer *p, const struct bt_block *b, uint8_t *dest)
{
	(void)arg;
	(void)p;
	for (uint32_t i = 0; i < b->length; i++)
		dest[i] = (uint8_t)(b->piece * 31 + b->begin + i);
	return 0;
}

static void on_extended(void *arg, struct bt_peer *p, uint8_t ext_id, const uint8_t *payload,
			size_t len)
{
	(void)p;
	struct rec *r = arg;
	r->extended++;
	r->ext_id = ext_id;
	r->ext_len = len < sizeof r->ext_payload ? len : sizeof r->ext_payload;
	memcpy(r->ext_payload, payload, r->ext_len);
}

static void on_rejected(void *arg, struct bt_peer *p, const struct bt_block *b)
{
	(void)p;
	struct rec *r = arg;
	r->rejected++;
	r->last_rejected = *b;
}

static const struct bt_peer_events events = {.handshake = on_handshake,
					     .choked = on_choked,
					     .rejected = on_rejected,
					     .has = on_has,
					     .block_dest = on_dest,
					     .block = on_block,
					     .closed = on_closed,
					     .read_block = on_read_block,
					     .extended = on_extended};

/* Runs the loop until nothing is ready (a few passes). */
static void spin(struct fx *f)
{
	for (int i = 0; i < 20; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
}

static void send_raw(struct fx *f, const void *p, size_t n)
{
	assert_int_equal(write(f->remote, p, n), (ssize_t)n);
}

static size_t read_raw(struct fx *f, uint8_t *buf, size_t max)
{
	ssize_t n = read(f->remote, buf, max);
	return n > 0 ? (size_t)n : 0;
}

static const uint8_t reserved_none[8] = {0};
static const uint8_t reserved_all[8] = {0, 0, 0, 0, 0, 0x10, 0, 0x05};

static struct bt_handshake remote_hs(uint8_t hash_byte, const uint8_t reserved[8])
{
	struct bt_handshake h;
	memcpy(h.reserved, reserved, 8);
	memset(h.info_hash, hash_byte, 20);
	memcpy(h.peer_id, "-XX0001-remote-peer!", 20);
	return h;
}

static void remote_handshake_with(struct fx *f, uint8_t hash_byte, const uint8_t reserved[8])
{
	struct bt_handshake h = remote_hs(hash_byte, reserved);
	uint8_t hs[BT_HANDSHAKE_LEN];
	bt_wire_handshake(hs, &h);
	send_raw(f, hs, sizeof hs);
}

/* The remote announces the extension protocol, as real clients do. */
static void remote_handshake(struct fx *f, uint8_t hash_byte)
{
	remote_handshake_with(f, hash_byte, bt_wire_reserved_ext);
}

/* A peer on one end of a socket pair; theirs: the remote's handshake, already read. */
static struct fx *make_fx(bool geometry, const struct bt_handshake *theirs,
			  const struct bt_peer_events *ev)
{
	struct fx *f = calloc(1, sizeof *f);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->remote = sv[1];
	fcntl(f->remote, F_SETFL, O_NONBLOCK);
	f->base = event_base_new();
	/* the last piece is 150 bytes */
	if (geometry)
		assert_int_equal(bt_geometry_init(&f->cfg.geo, 2 * BLOCK, PIECES * 2 * BLOCK - 50),
				 0);
	bt_bitfield_init(&f->ours, PIECES);
	bt_bitfield_set_all(&f->ours);
	bt_bitfield_clear(&f->ours, 4);
	f->cfg.ours = &f->ours;
	memset(f->cfg.info_hash, 0xaa, 20);
	memcpy(f->cfg.peer_id, "-TC0001-test-peer-id", 20);
	memcpy(f->cfg.reserved, bt_wire_reserved_ext, 8);
	f->peer = bt_peer_adopt(f->base, sv[0], &f->cfg, theirs, ev, &f->r);
	return f;
}

static int setup(void **state)
{
	*state = make_fx(true, NULL, &events);
	return 0;
}

static int setup_no_geometry(void **state)
{
	*state = make_fx(false, NULL, &events);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	bt_peer_free(f->peer);
	bt_bitfield_deinit(&f->ours);
	close(f->remote);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* Handshakes both ways and checks what we sent. */
static void handshake(struct fx *f)
{
	spin(f);
	uint8_t buf[BT_HANDSHAKE_LEN];
	assert_int_equal(read_raw(f, buf, sizeof buf), BT_HANDSHAKE_LEN);
	struct bt_handshake h;
	assert_int_equal(bt_wire_parse_handshake(buf, sizeof buf, &h, NULL), BT_WIRE_OK);
	assert_memory_equal(h.reserved, "\0\0\0\0\0\x10\0\0", 8);
	assert_memory_equal(h.info_hash, f->cfg.info_hash, 20);
	assert_memory_equal(h.peer_id, f->cfg.peer_id, 20);
	remote_handshake(f, 0xaa);
	spin(f);
	assert_int_equal(f->r.handshakes, 1);
	assert_memory_equal(f->r.remote_id, "-XX0001-remote-peer!", 20);
	assert_memory_equal(bt_peer_id(f->peer), "-XX0001-remote-peer!", 20);
	assert_int_equal(bt_peer_phase(f->peer), BT_PEER_AWAIT_FIRST_MSG);
}

static void test_handshake_byte_by_byte(void **state)
{
	struct fx *f = *state;
	spin(f);
	uint8_t buf[BT_HANDSHAKE_LEN];
	assert_int_equal(read_raw(f, buf, sizeof buf), BT_HANDSHAKE_LEN);
	struct bt_handshake h;
	memset(&h, 0, sizeof h);
	memset(h.info_hash, 0xaa, 20);
	memcpy(h.peer_id, "-XX0001-remote-peer!", 20);
	bt_wire_handshake(buf, &h);
	for (size_t i = 0; i < sizeof buf; i++) {
		assert_int_equal(f->r.handshakes, 0);
		send_raw(f, buf + i, 1);
		spin(f);
	}
	assert_int_equal(f->r.handshakes, 1);
	assert_int_equal(f->r.closed, 0);
}

static void test_wrong_torrent(void **state)
{
	struct fx *f = *state;
	spin(f);
	remote_handshake(f, 0xbb);
	spin(f);
	assert_int_equal(f->r.handshakes, 0);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "handshake for another torrent");
	assert_int_equal(bt_peer_phase(f->peer), BT_PEER_CLOSING);
}

static void test_bitfield_have_and_bad_ones(void **state)
{
	struct fx *f = *state;
	handshake(f);
	uint8_t m[16];
	size_t n = bt_wire_put_bitfield_header(m, 2);
	m[n++] = 0xa0;
	m[n++] = 0x40;
	send_raw(f, m, n);
	n = bt_wire_put_have(m, 3);
	send_raw(f, m, n);
	n = bt_wire_put_have(m, 3); /* a repeat changes nothing */
	send_raw(f, m, n);
	spin(f);
	assert_int_equal(f->r.has_calls, 2);
	assert_int_equal(f->r.last_has, 3);
	const struct bt_bitfield *bf = bt_peer_bitfield(f->peer);
	assert_int_equal(bf->count, 4);
	assert_true(bt_bitfield_get(bf, 0) && bt_bitfield_get(bf, 2) && bt_bitfield_get(bf, 3) &&
		    bt_bitfield_get(bf, 9));
	assert_int_equal(bt_peer_phase(f->peer), BT_PEER_ACTIVE);

	n = bt_wire_put_have(m, PIECES);
	send_raw(f, m, n);
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "have for piece 10 of 10");
}

static void test_bitfield_wrong_size_or_spare_bits(void **state)
{
	struct fx *f = *state;
	handshake(f);
	uint8_t m[8];
	size_t n = bt_wire_put_bitfield_header(m, 3);
	send_raw(f, m, n); /* judged from the header alone: the body never comes */
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "bitfield message (id 5) with bad length 4");
}

static void test_spare_bits(void **state)
{
	struct fx *f = *state;
	handshake(f);
	uint8_t m[8];
	size_t n = bt_wire_put_bitfield_header(m, 2);
	m[n++] = 0xff;
	m[n++] = 0xff;
	send_raw(f, m, n);
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "bitfield with spare bits set");
}

static void test_request_piece_cancel_choke(void **state)
{
	struct fx *f = *state;
	handshake(f);
	uint8_t m[64];
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_UNCHOKE));
	spin(f);
	assert_int_equal(f->r.unchokes, 1);
	assert_false(bt_peer_choking_us(f->peer));

	bt_peer_set_interested(f->peer, true);
	struct bt_block a = {1, 0, BLOCK}, b = {1, BLOCK, BLOCK}, c = {2, 0, BLOCK};
	bt_peer_request(f->peer, &a);
	bt_peer_request(f->peer, &b);
	bt_peer_request(f->peer, &c);
	assert_int_equal(bt_peer_outstanding(f->peer), 3);
	assert_true(bt_peer_has_requested(f->peer, &b));
	assert_true(bt_peer_cancel(f->peer, &b));
	assert_false(bt_peer_cancel(f->peer, &b));
	spin(f);
	/* Everything queued in one pass arrives together: interested, 3 requests, a cancel. */
	uint8_t got[5 + 4 * 17];
	assert_int_equal(read_raw(f, got, sizeof got), sizeof got);
	assert_int_equal(got[4], BT_WIRE_INTERESTED);
	assert_int_equal(got[5 + 4], BT_WIRE_REQUEST);
	assert_int_equal(bt_load_be32(got + 5 + 17 + 9), BLOCK);
	assert_int_equal(got[5 + 3 * 17 + 4], BT_WIRE_CANCEL);

	/* The piece for `a`, delivered one byte at a time. */
	uint8_t piece[13 + BLOCK];
	bt_wire_put_piece_header(piece, 1, 0, BLOCK);
	for (int i = 0; i < BLOCK; i++)
		piece[13 + i] = (uint8_t)(i * 7);
	for (size_t i = 0; i < sizeof piece; i++) {
		assert_int_equal(f->r.blocks, 0);
		send_raw(f, piece + i, 1);
		spin(f);
	}
	assert_int_equal(f->r.blocks, 1);
	assert_memory_equal(f->r.dest, piece + 13, BLOCK);
	assert_int_equal(bt_peer_downloaded(f->peer), BLOCK);
	assert_int_equal(bt_peer_outstanding(f->peer), 1);

	/* A piece we never asked for (the cancelled one) is dropped, not reported. */
	bt_wire_put_piece_header(piece, 1, BLOCK, BLOCK);
	send_raw(f, piece, sizeof piece);
	spin(f);
	assert_int_equal(f->r.blocks, 1);
	assert_int_equal(f->r.closed, 0);

	/* Choked with `c` outstanding: the owner takes the requests back. */
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_CHOKE));
	spin(f);
	assert_int_equal(f->r.chokes, 1);
	struct bt_block *reqs;
	assert_int_equal(bt_peer_take_requests(f->peer, &reqs), 1);
	assert_memory_equal(&reqs[0], &c, sizeof c);
	free(reqs);
	assert_int_equal(bt_peer_outstanding(f->peer), 0);
}

static void test_oversized_length_dropped_at_once(void **state)
{
	struct fx *f = *state;
	handshake(f);
	const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff, BT_WIRE_PIECE};
	send_raw(f, huge, sizeof huge);
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "piece message (id 7) with bad length 2147483647");
}

static void test_ignored_messages_and_eof(void **state)
{
	struct fx *f = *state;
	handshake(f);
	uint8_t m[32];
	size_t n = bt_wire_put_keepalive(m);
	send_raw(f, m, n);
	const uint8_t unknown[] = {0, 0, 0, 3, 42, 'x', 'y'};
	send_raw(f, unknown, sizeof unknown);
	const uint8_t port[] = {0, 0, 0, 3, 9, 0x1a, 0xe1};
	send_raw(f, port, sizeof port);
	n = bt_wire_put_extended_header(m, 0, 2);
	memcpy(m + n, "de", 2);
	send_raw(f, m, n + 2);
	spin(f);
	assert_int_equal(f->r.closed, 0);
	shutdown(f->remote, SHUT_WR);
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "connection closed by the peer");
}

static void test_connect_refused_reported_from_loop(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct rec r = {0};
	struct bt_peer_config cfg = {.geo = {.piece_count = PIECES,
					     .piece_length = 2 * BLOCK,
					     .total_length = PIECES * 2 * BLOCK}};
	struct sockaddr_in sin = {
		.sin_family = AF_INET, .sin_port = htons(1), .sin_addr.s_addr = htonl(0x7f000001)};
	struct bt_peer *p =
		bt_peer_connect(base, (struct sockaddr *)&sin, sizeof sin, &cfg, &events, &r);
	assert_int_equal(r.closed, 0); /* never from inside the call */
	assert_string_equal(bt_peer_name(p), "127.0.0.1:1");
	for (int i = 0; i < 50 && !r.closed; i++)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(r.closed, 1);
	assert_string_equal(r.reason, "connect: Connection refused");
	bt_peer_free(p);
	event_base_free(base);
}

/* A whole block whose header and first bytes come first, the rest later (read in place). */
static void test_block_streamed_in_place(void **state)
{
	struct fx *f = *state;
	handshake(f);
	uint8_t m[16];
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_UNCHOKE));
	spin(f);
	struct bt_block a = {3, 0, BT_BLOCK_SIZE}, b = {3, BT_BLOCK_SIZE, BT_BLOCK_SIZE};
	bt_peer_request(f->peer, &a);
	bt_peer_request(f->peer, &b);
	spin(f);
	uint8_t sink[64];
	while (read_raw(f, sink, sizeof sink))
		;
	static uint8_t piece[13 + BT_BLOCK_SIZE];
	bt_wire_put_piece_header(piece, 3, 0, BT_BLOCK_SIZE);
	for (int i = 0; i < BT_BLOCK_SIZE; i++)
		piece[13 + i] = (uint8_t)(i * 13 + 5);
	send_raw(f, piece, 13 + 100);
	spin(f);
	assert_int_equal(f->r.blocks, 0);
	assert_true(bt_peer_has_requested(f->peer, &a)); /* on its way: still ours */
	for (size_t off = 113; off < sizeof piece; off += 5000) {
		size_t n = sizeof piece - off < 5000 ? sizeof piece - off : 5000;
		send_raw(f, piece + off, n);
		spin(f);
	}
	assert_int_equal(f->r.blocks, 1);
	assert_memory_equal(f->r.dest, piece + 13, BT_BLOCK_SIZE);
	assert_int_equal(bt_peer_downloaded(f->peer), BT_BLOCK_SIZE);

	/* The second block: cancelled while arriving, its bytes are dropped, the stream goes on. */
	bt_wire_put_piece_header(piece, 3, BT_BLOCK_SIZE, BT_BLOCK_SIZE);
	send_raw(f, piece, 13 + 100);
	spin(f);
	assert_true(bt_peer_cancel(f->peer, &b));
	assert_false(bt_peer_has_requested(f->peer, &b));
	send_raw(f, piece + 113, sizeof piece - 113);
	send_raw(f, m, bt_wire_put_have(m, 2));
	spin(f);
	assert_int_equal(f->r.blocks, 1);
	assert_int_equal(f->r.last_has, 2); /* the message after it was read as one */
	assert_int_equal(f->r.closed, 0);

	/* Taken back (a choke) while arriving: returned to the owner, then dropped. */
	bt_peer_request(f->peer, &a);
	bt_wire_put_piece_header(piece, 3, 0, BT_BLOCK_SIZE);
	send_raw(f, piece, 13 + 100);
	spin(f);
	struct bt_block *reqs;
	assert_int_equal(bt_peer_take_requests(f->peer, &reqs), 1);
	assert_memory_equal(&reqs[0], &a, sizeof a);
	free(reqs);
	send_raw(f, piece + 113, sizeof piece - 113);
	spin(f);
	assert_int_equal(f->r.blocks, 1);
	assert_int_equal(f->r.closed, 0);
}

static void send_request(struct fx *f, uint32_t index, uint32_t begin, uint32_t len)
{
	uint8_t m[17];
	send_raw(f, m, bt_wire_put_request(m, BT_WIRE_REQUEST, index, begin, len));
}

static void test_serving_requests(void **state)
{
	struct fx *f = *state;
	handshake(f);
	uint8_t buf[4096];
	send_request(f, 1, 0, BLOCK); /* before we unchoke: ignored */
	spin(f);
	assert_int_equal(read_raw(f, buf, sizeof buf), 0);
	assert_int_equal(bt_peer_upload_queue(f->peer), 0);

	bt_peer_set_choking(f->peer, false);
	uint8_t m[8];
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_INTERESTED));
	send_request(f, 1, BLOCK, BLOCK);
	send_request(f, 4, 0, BLOCK);	      /* a piece we lack: ignored */
	send_request(f, PIECES - 1, 100, 50); /* the short last piece's tail */
	spin(f);
	assert_true(bt_peer_interested_in_us(f->peer));
	size_t n = read_raw(f, buf, sizeof buf);
	assert_int_equal(n, 5 + 13 + BLOCK + 13 + 50);
	assert_int_equal(buf[4], BT_WIRE_UNCHOKE);
	struct bt_wire_msg msg;
	size_t used;
	assert_int_equal(bt_wire_decode(buf + 5, n - 5, 2, &msg, &used, NULL), BT_WIRE_OK);
	assert_int_equal(msg.id, BT_WIRE_PIECE);
	assert_int_equal(msg.index, 1);
	assert_int_equal(msg.begin, BLOCK);
	assert_int_equal(msg.payload[0], (uint8_t)(31 + BLOCK));
	assert_int_equal(bt_wire_decode(buf + 5 + used, n - 5 - used, 2, &msg, &used, NULL),
			 BT_WIRE_OK);
	assert_int_equal(msg.index, PIECES - 1);
	assert_int_equal(msg.length, 50);
	assert_int_equal(bt_peer_uploaded(f->peer), BLOCK + 50);

	/* Thousands of requests from a peer that does not read: the queue stays bounded. */
	static const uint32_t have[] = {0, 1, 2, 3, 5, 6, 7, 8};
	uint32_t sent = 0;
	for (; sent < 40000 && bt_peer_upload_queue(f->peer) < 2048; sent++) {
		/* All different: 8 pieces x 100 offsets x 50 lengths. */
		send_request(f, have[sent % 8], sent / 8 % 100, 100 - sent / 800 % 50);
		if (sent % 100 == 99)
			spin(f);
	}
	assert_true(sent < 40000); /* the queue filled up: what was produced waits unsent */
	for (uint32_t i = 0; i < 200; i++)
		send_request(f, have[i % 8], i / 8 % 100, 51 + i % 40);
	spin(f);
	assert_int_equal(bt_peer_upload_queue(f->peer), 2048);
	assert_int_equal(f->r.closed, 0);

	/* Choking drops what is queued. */
	bt_peer_set_choking(f->peer, true);
	assert_int_equal(bt_peer_upload_queue(f->peer), 0);
}

static void expect_bad_request(void **state, uint32_t index, uint32_t begin, uint32_t len,
			       const char *reason)
{
	struct fx *f = *state;
	handshake(f);
	bt_peer_set_choking(f->peer, false);
	send_request(f, index, begin, len);
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, reason);
}

static void test_request_out_of_range(void **state)
{
	expect_bad_request(state, PIECES, 0, BLOCK, "request for piece 10 of 10");
}

static void test_request_too_big(void **state)
{
	expect_bad_request(state, 0, 0, 1 << 20,
			   "request for 1048576 bytes (at most 16384 allowed)");
}

static void test_request_past_piece_end(void **state)
{
	expect_bad_request(state, PIECES - 1, 100, 100, "request past the end of piece 9");
}

/*
 * The handler table, from its own statement of the rules: nothing is framed before the
 * handshake or after closing; keep-alive and the BEP 3 messages need nothing; PORT needs DHT
 * but is ignored without it; the Fast messages need Fast; EXTENDED needs the extension
 * protocol; unknown ids are ignored.
 */
static enum bt_peer_msg_verdict expected_verdict(int id, enum bt_peer_phase phase, unsigned feat)
{
	if (phase < BT_PEER_AWAIT_FIRST_MSG || phase == BT_PEER_CLOSING)
		return BT_PEER_MSG_WRONG_PHASE;
	if (id >= BT_WIRE_KEEPALIVE && id <= BT_WIRE_CANCEL)
		return BT_PEER_MSG_HANDLE;
	if (id == BT_WIRE_PORT)
		return feat & BT_WIRE_FEAT_DHT ? BT_PEER_MSG_HANDLE : BT_PEER_MSG_IGNORE;
	if (id >= BT_WIRE_SUGGEST && id <= BT_WIRE_ALLOWED_FAST)
		return feat & BT_WIRE_FEAT_FAST ? BT_PEER_MSG_HANDLE : BT_PEER_MSG_NOT_NEGOTIATED;
	if (id == BT_WIRE_EXTENDED)
		return feat & BT_WIRE_FEAT_EXT ? BT_PEER_MSG_HANDLE : BT_PEER_MSG_NOT_NEGOTIATED;
	return BT_PEER_MSG_IGNORE;
}

static void test_handler_table(void **state)
{
	(void)state;
	for (int id = BT_WIRE_KEEPALIVE; id <= 255; id++)
		for (int phase = BT_PEER_CONNECTING; phase <= BT_PEER_CLOSING; phase++)
			for (unsigned feat = 0; feat < 8; feat++) {
				enum bt_peer_msg_verdict want = expected_verdict(id, phase, feat);
				enum bt_peer_msg_verdict got = bt_peer_msg_check(id, phase, feat);
				if (got != want)
					fail_msg("id %d phase %d features %u: %d, want %d", id,
						 phase, feat, got, want);
			}
	assert_int_equal(bt_peer_msg_feature(BT_WIRE_EXTENDED), BT_WIRE_FEAT_EXT);
	assert_int_equal(bt_peer_msg_feature(BT_WIRE_HAVE_ALL), BT_WIRE_FEAT_FAST);
	assert_int_equal(bt_peer_msg_feature(BT_WIRE_PORT), BT_WIRE_FEAT_DHT);
	assert_int_equal(bt_peer_msg_feature(BT_WIRE_PIECE), 0);
	assert_int_equal(bt_peer_msg_feature(99), 0);
}

/* Handshakes with the remote announcing `reserved`; checks what we announced. */
static void handshake_with(struct fx *f, const uint8_t reserved[8])
{
	spin(f);
	uint8_t buf[BT_HANDSHAKE_LEN];
	assert_int_equal(read_raw(f, buf, sizeof buf), BT_HANDSHAKE_LEN);
	assert_memory_equal(buf + 20, "\0\0\0\0\0\x10\0\0", 8);
	remote_handshake_with(f, 0xaa, reserved);
	spin(f);
	assert_int_equal(f->r.handshakes, 1);
}

static void send_extended(struct fx *f, uint8_t ext_id, const char *body)
{
	uint8_t m[64];
	size_t n = bt_wire_put_extended_header(m, ext_id, strlen(body));
	memcpy(m + n, body, strlen(body));
	send_raw(f, m, n + strlen(body));
}

static void test_extended_needs_bep10(void **state)
{
	struct fx *f = *state;
	handshake_with(f, reserved_none);
	assert_int_equal(bt_peer_features(f->peer), 0);
	assert_int_equal(bt_peer_send_extended(f->peer, 0, (const uint8_t *)"de", 2), -EPROTO);
	send_extended(f, 0, "de");
	spin(f);
	assert_int_equal(f->r.extended, 0);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "extended message (id 20) but the extension protocol "
					 "(BEP 10) was not negotiated");
}

static void test_extended_reaches_the_owner(void **state)
{
	struct fx *f = *state;
	handshake_with(f, bt_wire_reserved_ext);
	assert_int_equal(bt_peer_features(f->peer), BT_WIRE_FEAT_EXT);
	send_extended(f, 0, "d1:md6:ut_pexi1eee");
	send_extended(f, 3, "d8:msg_typei0ee");
	spin(f);
	assert_int_equal(f->r.closed, 0);
	assert_int_equal(f->r.extended, 2);
	assert_int_equal(f->r.ext_id, 3);
	assert_int_equal(f->r.ext_len, strlen("d8:msg_typei0ee"));
	assert_memory_equal(f->r.ext_payload, "d8:msg_typei0ee", f->r.ext_len);

	/* And ours go out framed. */
	assert_int_equal(bt_peer_send_extended(f->peer, 2, (const uint8_t *)"d1:ai1ee", 8), 0);
	static uint8_t big[BT_WIRE_MAX_EXTENDED];
	assert_int_equal(bt_peer_send_extended(f->peer, 2, big, sizeof big), -EMSGSIZE);
	spin(f);
	uint8_t got[32];
	assert_int_equal(read_raw(f, got, sizeof got), 6 + 8);
	assert_int_equal(bt_load_be32(got), 2 + 8);
	assert_int_equal(got[4], BT_WIRE_EXTENDED);
	assert_int_equal(got[5], 2);
	assert_memory_equal(got + 6, "d1:ai1ee", 8);
}

static void test_fast_messages_not_negotiated(void **state)
{
	struct fx *f = *state;
	/* The remote offers Fast, but we do not: no Fast message is legal. */
	handshake_with(f, reserved_all);
	assert_int_equal(bt_peer_features(f->peer), BT_WIRE_FEAT_EXT);
	uint8_t m[8];
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_HAVE_ALL));
	spin(f);
	assert_int_equal(f->r.has_calls, 0);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "have all message (id 14) but the Fast extension (BEP 6) "
					 "was not negotiated");
}

static void test_port_without_dht_ignored(void **state)
{
	struct fx *f = *state;
	handshake_with(f, reserved_all); /* we do not announce DHT */
	const uint8_t port[] = {0, 0, 0, 3, 9, 0x1a, 0xe1};
	send_raw(f, port, sizeof port);
	uint8_t m[16];
	send_raw(f, m, bt_wire_put_have(m, 1));
	spin(f);
	assert_int_equal(f->r.closed, 0);
	assert_int_equal(f->r.last_has, 1);
	assert_int_equal(bt_peer_dht_port(f->peer), 0);
}

static void test_port_with_dht(void **state)
{
	(void)state;
	struct fx *f = make_fx(true, NULL, &events);
	memcpy(f->cfg.reserved, reserved_all, 8); /* not the peer's copy: make one that has it */
	bt_peer_free(f->peer);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(f->remote);
	f->remote = sv[1];
	fcntl(f->remote, F_SETFL, O_NONBLOCK);
	f->peer = bt_peer_adopt(f->base, sv[0], &f->cfg, NULL, &events, &f->r);
	spin(f);
	uint8_t buf[BT_HANDSHAKE_LEN];
	assert_int_equal(read_raw(f, buf, sizeof buf), BT_HANDSHAKE_LEN);
	remote_handshake_with(f, 0xaa, reserved_all);
	const uint8_t port[] = {0, 0, 0, 3, 9, 0x1a, 0xe1};
	send_raw(f, port, sizeof port);
	spin(f);
	assert_int_equal(bt_peer_features(f->peer),
			 BT_WIRE_FEAT_EXT | BT_WIRE_FEAT_FAST | BT_WIRE_FEAT_DHT);
	assert_int_equal(bt_peer_dht_port(f->peer), 6881);
	assert_int_equal(f->r.closed, 0);
	void *st = f;
	teardown(&st);
}

/* The session's router read their handshake; the peer answers and reports it from the loop. */
static void test_adopt_with_read_handshake(void **state)
{
	(void)state;
	struct bt_handshake theirs = remote_hs(0xaa, bt_wire_reserved_ext);
	struct fx *f = make_fx(true, &theirs, &events);
	assert_int_equal(f->r.handshakes, 0); /* never from inside adopt */
	assert_int_equal(bt_peer_phase(f->peer), BT_PEER_AWAIT_FIRST_MSG);
	spin(f);
	assert_int_equal(f->r.handshakes, 1);
	assert_memory_equal(f->r.remote_id, "-XX0001-remote-peer!", 20);
	assert_memory_equal(bt_peer_id(f->peer), "-XX0001-remote-peer!", 20);
	assert_int_equal(bt_peer_features(f->peer), BT_WIRE_FEAT_EXT);
	uint8_t buf[BT_HANDSHAKE_LEN + 1];
	assert_int_equal(read_raw(f, buf, sizeof buf), BT_HANDSHAKE_LEN);
	struct bt_handshake ours;
	assert_int_equal(bt_wire_parse_handshake(buf, BT_HANDSHAKE_LEN, &ours, NULL), BT_WIRE_OK);
	assert_memory_equal(ours.reserved, bt_wire_reserved_ext, 8);
	assert_memory_equal(ours.peer_id, f->cfg.peer_id, 20);
	/* The next bytes are messages, not a handshake. */
	uint8_t m[16];
	send_raw(f, m, bt_wire_put_have(m, 2));
	spin(f);
	assert_int_equal(f->r.closed, 0);
	assert_int_equal(f->r.last_has, 2);
	assert_int_equal(bt_peer_phase(f->peer), BT_PEER_ACTIVE);
	void *st = f;
	teardown(&st);
}

/* Their first message arrives in the same loop pass as the deferred report: still in order. */
static void test_adopt_message_before_report(void **state)
{
	(void)state;
	struct bt_handshake theirs = remote_hs(0xaa, bt_wire_reserved_ext);
	struct fx *f = make_fx(true, &theirs, &events);
	uint8_t m[16];
	send_raw(f, m, bt_wire_put_have(m, 5));
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	spin(f);
	assert_int_equal(f->r.handshakes, 1);
	assert_int_equal(f->r.has_calls, 1);
	assert_int_equal(f->r.closed, 0);
	void *st = f;
	teardown(&st);
}

static void test_self_connection(void **state)
{
	struct fx *f = *state;
	spin(f);
	uint8_t buf[BT_HANDSHAKE_LEN];
	assert_int_equal(read_raw(f, buf, sizeof buf), BT_HANDSHAKE_LEN);
	send_raw(f, buf, sizeof buf); /* our own handshake comes back */
	spin(f);
	assert_int_equal(f->r.handshakes, 0);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "connected to ourselves");
	assert_true(bt_peer_is_self(f->peer));
}

static void test_self_connection_adopted(void **state)
{
	(void)state;
	struct bt_handshake theirs = remote_hs(0xaa, bt_wire_reserved_ext);
	memcpy(theirs.peer_id, "-TC0001-test-peer-id", 20);
	struct fx *f = make_fx(true, &theirs, &events);
	assert_int_equal(f->r.closed, 0);
	assert_true(bt_peer_is_self(f->peer));
	spin(f);
	assert_int_equal(f->r.handshakes, 0);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "connected to ourselves");
	/* Our handshake went out first, so the dialling side sees itself too. */
	uint8_t buf[BT_HANDSHAKE_LEN + 1];
	assert_int_equal(read_raw(f, buf, sizeof buf), BT_HANDSHAKE_LEN);
	assert_memory_equal(buf + 48, "-TC0001-test-peer-id", 20);
	void *st = f;
	teardown(&st);
}

static void test_adopted_for_another_torrent(void **state)
{
	(void)state;
	struct bt_handshake theirs = remote_hs(0xbb, bt_wire_reserved_ext);
	struct fx *f = make_fx(true, &theirs, &events);
	assert_int_equal(f->r.closed, 0);
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "handshake for another torrent");
	assert_false(bt_peer_is_self(f->peer));
	void *st = f;
	teardown(&st);
}

/* A magnet's peer: handshake and extended messages first, the geometry later. */
static void test_geometry_after_handshake(void **state)
{
	struct fx *f = *state;
	handshake_with(f, bt_wire_reserved_ext);
	send_extended(f, 0, "de");
	uint8_t m[32];
	size_t n = bt_wire_put_bitfield_header(m, 2); /* its size is judged later */
	m[n++] = 0xa0;
	m[n++] = 0x00;
	send_raw(f, m, n);
	send_raw(f, m, bt_wire_put_have(m, 9));
	send_raw(f, m, bt_wire_put_have(m, 3));
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_UNCHOKE));
	spin(f);
	assert_int_equal(f->r.closed, 0);
	assert_int_equal(f->r.extended, 1);
	assert_int_equal(f->r.has_calls, 0);
	assert_int_equal(f->r.unchokes, 1);
	assert_int_equal(bt_peer_bitfield(f->peer)->count, 0);

	struct bt_geometry g;
	assert_int_equal(bt_geometry_init(&g, 2 * BLOCK, PIECES * 2 * BLOCK - 50), 0);
	struct bt_geometry empty = {0};
	assert_int_equal(bt_peer_set_geometry(f->peer, &empty), -EINVAL);
	assert_int_equal(bt_peer_set_geometry(f->peer, &g), 0);
	assert_int_equal(f->r.has_calls, 1);
	assert_int_equal(f->r.last_has, UINT32_MAX);
	const struct bt_bitfield *bf = bt_peer_bitfield(f->peer);
	assert_int_equal(bf->nbits, PIECES);
	assert_int_equal(bf->count, 4);
	assert_true(bt_bitfield_get(bf, 0) && bt_bitfield_get(bf, 2) && bt_bitfield_get(bf, 3) &&
		    bt_bitfield_get(bf, 9));
	assert_int_equal(bt_peer_set_geometry(f->peer, &g), -EALREADY);

	/* From now on the usual rules: a bitfield of the wrong size is judged from its header. */
	send_raw(f, m, bt_wire_put_have(m, 7));
	spin(f);
	assert_int_equal(f->r.last_has, 7);
	n = bt_wire_put_bitfield_header(m, 3);
	send_raw(f, m, n);
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "bitfield message (id 5) with bad length 4");
}

static void test_early_bitfield_that_does_not_fit(void **state)
{
	struct fx *f = *state;
	handshake_with(f, bt_wire_reserved_ext);
	uint8_t m[32];
	size_t n = bt_wire_put_bitfield_header(m, 3);
	memset(m + n, 0, 3);
	send_raw(f, m, n + 3);
	spin(f);
	assert_int_equal(f->r.closed, 0);
	struct bt_geometry g;
	assert_int_equal(bt_geometry_init(&g, 2 * BLOCK, PIECES * 2 * BLOCK - 50), 0);
	assert_int_equal(bt_peer_set_geometry(f->peer, &g), -EPROTO);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "bitfield of 3 bytes for 10 pieces");
	assert_int_equal(f->r.has_calls, 0);
}

static void test_early_have_out_of_range(void **state)
{
	struct fx *f = *state;
	handshake_with(f, bt_wire_reserved_ext);
	uint8_t m[16];
	send_raw(f, m, bt_wire_put_have(m, 12));
	spin(f);
	assert_int_equal(f->r.closed, 0);
	struct bt_geometry g;
	assert_int_equal(bt_geometry_init(&g, 2 * BLOCK, PIECES * 2 * BLOCK - 50), 0);
	assert_int_equal(bt_peer_set_geometry(f->peer, &g), -EPROTO);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "have for piece 12 of 10");
}

static void test_early_have_bounded(void **state)
{
	struct fx *f = *state;
	handshake_with(f, bt_wire_reserved_ext);
	uint8_t m[16];
	send_raw(f, m, bt_wire_put_have(m, 8u * 1024 * 1024 - 1)); /* the last one kept */
	spin(f);
	assert_int_equal(f->r.closed, 0);
	send_raw(f, m, bt_wire_put_have(m, 8u * 1024 * 1024));
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(
		f->r.reason,
		"have for piece 8388608 before the metadata (more than 8388608 pieces)");
}

static void test_early_bitfield_bounded(void **state)
{
	struct fx *f = *state;
	handshake_with(f, bt_wire_reserved_ext);
	uint8_t m[8];
	send_raw(f, m, bt_wire_put_bitfield_header(m, BT_WIRE_MAX_BITFIELD + 1));
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "bitfield message (id 5) with bad length 1048578");
}

static void test_request_before_geometry(void **state)
{
	struct fx *f = *state;
	handshake_with(f, bt_wire_reserved_ext);
	bt_peer_set_choking(f->peer, false);
	send_request(f, 0, 0, BLOCK);
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "request message before the metadata");
}

static void test_piece_before_geometry(void **state)
{
	struct fx *f = *state;
	handshake_with(f, bt_wire_reserved_ext);
	uint8_t piece[13];
	send_raw(f, piece,
		 bt_wire_put_piece_header(piece, 0, 0, 4000)); /* judged from the header */
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "piece message before the metadata");
}

/* No callbacks at all: every event is optional. */
static void test_no_callbacks(void **state)
{
	(void)state;
	static const struct bt_peer_events none = {0};
	struct fx *f = make_fx(true, NULL, &none);
	spin(f);
	uint8_t buf[BT_HANDSHAKE_LEN];
	assert_int_equal(read_raw(f, buf, sizeof buf), BT_HANDSHAKE_LEN);
	remote_handshake(f, 0xaa);
	uint8_t m[64];
	size_t n = bt_wire_put_bitfield_header(m, 2);
	m[n++] = 0xff;
	m[n++] = 0xc0;
	send_raw(f, m, n);
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_UNCHOKE));
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_INTERESTED));
	send_extended(f, 0, "de");
	spin(f);
	struct bt_block a = {1, 0, BLOCK};
	bt_peer_request(f->peer, &a);
	uint8_t piece[13 + BLOCK] = {0};
	bt_wire_put_piece_header(piece, 1, 0, BLOCK);
	send_raw(f, piece, sizeof piece);
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_CHOKE));
	spin(f);
	assert_int_equal(bt_peer_downloaded(f->peer), BLOCK);
	shutdown(f->remote, SHUT_WR);
	spin(f);
	assert_int_equal(bt_peer_phase(f->peer), BT_PEER_CLOSING);
	void *st = f;
	teardown(&st);
}

/* --- The Fast extension (BEP 6) ------------------------------------------------------------ */

/* A connected TCP pair on loopback, so that the peer has an IPv4 address (allowed-fast set). */
static void tcp_pair(int sv[2])
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof a;
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
	sv[1] = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(sv[1], (struct sockaddr *)&a, sizeof a), 0);
	sv[0] = accept(l, NULL, NULL);
	assert_true(sv[0] >= 0);
	close(l);
}

/*
 * A peer announcing Fast (and BEP 10), handshaken with a remote announcing `theirs`. pieces 0:
 * no geometry; otherwise pieces of 2 * BLOCK bytes, all ours but piece 4. tcp: over loopback
 * TCP instead of a socket pair.
 */
static struct fx *fast_fx(const uint8_t theirs[8], uint32_t pieces, bool tcp)
{
	struct fx *f = calloc(1, sizeof *f);
	int sv[2];
	if (tcp)
		tcp_pair(sv);
	else
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->remote = sv[1];
	fcntl(f->remote, F_SETFL, O_NONBLOCK);
	f->base = event_base_new();
	if (pieces)
		assert_int_equal(bt_geometry_init(&f->cfg.geo, 2 * BLOCK, pieces * 2 * BLOCK), 0);
	bt_bitfield_init(&f->ours, pieces);
	bt_bitfield_set_all(&f->ours);
	if (pieces)
		bt_bitfield_clear(&f->ours, 4);
	f->cfg.ours = &f->ours;
	memset(f->cfg.info_hash, 0xaa, 20);
	memcpy(f->cfg.peer_id, "-TC0001-test-peer-id", 20);
	memcpy(f->cfg.reserved, bt_wire_reserved_fast, 8);
	f->peer = bt_peer_adopt(f->base, sv[0], &f->cfg, NULL, &events, &f->r);
	spin(f);
	uint8_t buf[BT_HANDSHAKE_LEN];
	assert_int_equal(read_raw(f, buf, sizeof buf), BT_HANDSHAKE_LEN);
	assert_memory_equal(buf + 20, "\0\0\0\0\0\x10\0\x04", 8);
	remote_handshake_with(f, 0xaa, theirs);
	spin(f);
	assert_int_equal(f->r.handshakes, 1);
	return f;
}

static void fast_teardown(struct fx *f)
{
	void *st = f;
	teardown(&st);
}

struct got {
	int id;
	uint32_t index, begin, length;
};

/* Reads and decodes everything the peer sends until it stops; returns how many messages. */
static size_t read_msgs(struct fx *f, struct got *out, size_t max)
{
	static uint8_t buf[1 << 23];
	size_t have = 0, n = 0;
	for (int idle = 0; idle < 3;) {
		spin(f);
		size_t r = read_raw(f, buf + have, sizeof buf - have);
		idle = r ? 0 : idle + 1;
		have += r;
	}
	size_t off = 0;
	while (off < have) {
		struct bt_wire_msg m;
		size_t used;
		assert_int_equal(bt_wire_decode(buf + off, have - off, BT_WIRE_BITFIELD_UNKNOWN, &m,
						&used, NULL),
				 BT_WIRE_OK);
		assert_true(n < max);
		out[n++] = (struct got){m.id, m.index, m.begin, m.length};
		off += used;
	}
	return n;
}

static void send_reject(struct fx *f, const struct bt_block *b)
{
	uint8_t m[17];
	send_raw(f, m, bt_wire_put_request(m, BT_WIRE_REJECT, b->piece, b->begin, b->length));
}

static void send_piece(struct fx *f, const struct bt_block *b)
{
	uint8_t piece[13 + BT_BLOCK_SIZE] = {0};
	bt_wire_put_piece_header(piece, b->piece, b->begin, b->length);
	send_raw(f, piece, 13 + b->length);
}

/* Our pieces go out as exactly one of HAVE_ALL, HAVE_NONE or BITFIELD. */
static void test_fast_our_bitfield(void **state)
{
	(void)state;
	struct got g[16];
	for (int which = 0; which < 4; which++) {
		struct fx *f = fast_fx(which == 3 ? bt_wire_reserved_ext : bt_wire_reserved_fast,
				       PIECES, false);
		struct bt_bitfield bf;
		bt_bitfield_init(&bf, PIECES);
		if (which == 1 || which == 3)
			bt_bitfield_set_all(&bf);
		if (which == 2)
			bt_bitfield_set(&bf, 3);
		bt_peer_send_bitfield(f->peer, &bf);
		size_t n = read_msgs(f, g, 16);
		if (which == 0) { /* nothing yet */
			assert_int_equal(n, 1);
			assert_int_equal(g[0].id, BT_WIRE_HAVE_NONE);
		} else if (which == 1) {
			assert_int_equal(n, 1);
			assert_int_equal(g[0].id, BT_WIRE_HAVE_ALL);
		} else { /* some, or all to a peer without Fast: a bitfield */
			assert_int_equal(n, 1);
			assert_int_equal(g[0].id, BT_WIRE_BITFIELD);
		}
		bt_bitfield_deinit(&bf);
		fast_teardown(f);
	}
	/* A magnet's torrent before its metadata has nothing: HAVE_NONE. */
	struct fx *f = fast_fx(bt_wire_reserved_fast, 0, false);
	struct bt_bitfield none;
	bt_bitfield_init(&none, 0);
	bt_peer_send_bitfield(f->peer, &none);
	assert_int_equal(read_msgs(f, g, 16), 1);
	assert_int_equal(g[0].id, BT_WIRE_HAVE_NONE);
	bt_bitfield_deinit(&none);
	fast_teardown(f);
}

static void test_fast_their_have_none_then_all(void **state)
{
	(void)state;
	struct fx *f = fast_fx(bt_wire_reserved_fast, PIECES, false);
	assert_int_equal(bt_peer_features(f->peer), BT_WIRE_FEAT_EXT | BT_WIRE_FEAT_FAST);
	uint8_t m[8];
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_HAVE_NONE));
	spin(f);
	assert_int_equal(f->r.closed, 0);
	assert_int_equal(f->r.has_calls, 1);
	assert_int_equal(f->r.last_has, UINT32_MAX);
	assert_int_equal(bt_peer_bitfield(f->peer)->count, 0);
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_HAVE_ALL)); /* aria2 does, once complete */
	spin(f);
	assert_int_equal(f->r.closed, 0);
	assert_int_equal(bt_peer_bitfield(f->peer)->count, PIECES);
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_HAVE_NONE));
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason,
			    "have none message after a bitfield, have all or have none");
	fast_teardown(f);

	f = fast_fx(bt_wire_reserved_fast, PIECES, false);
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_HAVE_ALL));
	spin(f);
	assert_int_equal(bt_peer_bitfield(f->peer)->count, PIECES);
	uint8_t bf[8];
	size_t n = bt_wire_put_bitfield_header(bf, 2);
	bf[n++] = 0xff;
	bf[n++] = 0xc0;
	send_raw(f, bf, n); /* the new whole */
	spin(f);
	assert_int_equal(f->r.closed, 0);
	assert_int_equal(bt_peer_bitfield(f->peer)->count, PIECES);
	fast_teardown(f);
}

/* A second bitfield replaces the first (aria2 sends several); a HAVE_NONE after it closes. */
static void test_two_bitfields(void **state)
{
	struct fx *f = *state;
	handshake(f);
	uint8_t m[16];
	size_t n = bt_wire_put_bitfield_header(m, 2);
	m[n++] = 0xa0;
	m[n++] = 0x40;
	send_raw(f, m, n);
	m[n - 2] = 0xe0;
	send_raw(f, m, n);
	spin(f);
	assert_int_equal(f->r.has_calls, 2);
	assert_int_equal(f->r.closed, 0);
	assert_int_equal(bt_peer_bitfield(f->peer)->count, 4);
}

/* A magnet's peer (no geometry yet): its HAVE_ALL or HAVE_NONE is applied with the geometry. */
static void test_fast_early_have_all_and_none(void **state)
{
	(void)state;
	struct bt_geometry geo;
	assert_int_equal(bt_geometry_init(&geo, 2 * BLOCK, PIECES * 2 * BLOCK), 0);
	for (int all = 0; all < 2; all++) {
		struct fx *f = fast_fx(bt_wire_reserved_fast, 0, false);
		uint8_t m[16];
		send_raw(f, m, bt_wire_put_simple(m, all ? BT_WIRE_HAVE_ALL : BT_WIRE_HAVE_NONE));
		send_raw(f, m,
			 bt_wire_put_index(m, BT_WIRE_ALLOWED_FAST, 3)); /* ignored: advisory */
		spin(f);
		assert_int_equal(f->r.closed, 0);
		assert_int_equal(f->r.has_calls, 0);
		assert_int_equal(bt_peer_set_geometry(f->peer, &geo), 0);
		assert_int_equal(bt_peer_bitfield(f->peer)->count, all ? PIECES : 0);
		assert_int_equal(f->r.has_calls, all ? 1 : 0);
		fast_teardown(f);
	}
}

/* The remote does not offer Fast, we do: none of its messages is legal. */
static void test_fast_messages_without_the_bit(void **state)
{
	(void)state;
	static const int ids[] = {BT_WIRE_SUGGEST, BT_WIRE_HAVE_ALL, BT_WIRE_HAVE_NONE,
				  BT_WIRE_REJECT, BT_WIRE_ALLOWED_FAST};
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		struct fx *f = fast_fx(bt_wire_reserved_ext, PIECES, false);
		assert_int_equal(bt_peer_features(f->peer), BT_WIRE_FEAT_EXT);
		uint8_t m[17];
		size_t n = ids[i] == BT_WIRE_REJECT
				   ? bt_wire_put_request(m, BT_WIRE_REJECT, 1, 0, BLOCK)
			   : ids[i] == BT_WIRE_SUGGEST || ids[i] == BT_WIRE_ALLOWED_FAST
				   ? bt_wire_put_index(m, (enum bt_wire_id)ids[i], 1)
				   : bt_wire_put_simple(m, (enum bt_wire_id)ids[i]);
		send_raw(f, m, n);
		spin(f);
		assert_int_equal(f->r.closed, 1);
		char want[160];
		snprintf(want, sizeof want,
			 "%s message (id %d) but the Fast extension (BEP 6) was not negotiated",
			 bt_wire_id_name(ids[i]), ids[i]);
		assert_string_equal(f->r.reason, want);
		fast_teardown(f);
	}
}

/* A choke keeps our requests; each ends in one PIECE or REJECT; anything else closes. */
static void test_fast_choke_keeps_requests(void **state)
{
	(void)state;
	struct fx *f = fast_fx(bt_wire_reserved_fast, PIECES, false);
	uint8_t m[8];
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_HAVE_ALL));
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_UNCHOKE));
	spin(f);
	struct bt_block a = {1, 0, BLOCK}, b = {1, BLOCK, BLOCK}, c = {2, 0, BLOCK},
			d = {3, 0, BLOCK};
	bt_peer_request(f->peer, &a);
	bt_peer_request(f->peer, &b);
	bt_peer_request(f->peer, &c);
	bt_peer_request(f->peer, &d);
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_CHOKE));
	spin(f);
	assert_int_equal(f->r.chokes, 1);
	assert_int_equal(bt_peer_outstanding(f->peer), 4);

	send_reject(f, &a);
	send_piece(f, &b); /* served though choked (it was on its way) */
	spin(f);
	assert_int_equal(f->r.rejected, 1);
	assert_memory_equal(&f->r.last_rejected, &a, sizeof a);
	assert_int_equal(f->r.blocks, 1);
	assert_int_equal(bt_peer_outstanding(f->peer), 2);

	/* A cancelled request is still answered, by a PIECE or a REJECT, once. */
	assert_true(bt_peer_cancel(f->peer, &c));
	assert_true(bt_peer_cancel(f->peer, &d));
	send_reject(f, &c);
	send_piece(f, &d);
	spin(f);
	assert_int_equal(f->r.closed, 0);
	assert_int_equal(f->r.rejected, 1); /* not reported: the owner gave it up already */
	assert_int_equal(f->r.blocks, 1);
	assert_int_equal(bt_peer_outstanding(f->peer), 0);

	send_reject(f, &c); /* a second answer: not a request of ours any more */
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason,
			    "reject for piece 2 (offset 0, 100 bytes) that we did not request");
	fast_teardown(f);

	f = fast_fx(bt_wire_reserved_fast, PIECES, false);
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_HAVE_ALL));
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_UNCHOKE));
	send_piece(f, &a);
	spin(f);
	assert_int_equal(f->r.blocks, 0);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "piece 1 (offset 0, 100 bytes) that we did not request");
	fast_teardown(f);
}

/*
 * Every request of a Fast peer's gets exactly one PIECE or REJECT: served, refused (a piece we
 * lack, while choked, beyond the queue), cancelled while queued, or queued when we choke.
 */
static void test_fast_every_request_answered_once(void **state)
{
	(void)state;
	struct fx *f = fast_fx(bt_wire_reserved_fast, PIECES, false);
	uint8_t m[8];
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_INTERESTED));
	send_request(f, 1, 0, BLOCK); /* while we choke it: rejected */
	send_request(f, 4, 0, BLOCK); /* a piece we lack: rejected */
	spin(f);
	static struct got g[45000];
	size_t n = read_msgs(f, g, 45000);
	assert_int_equal(n, 2);
	assert_true(g[0].id == BT_WIRE_REJECT && g[0].index == 1 && g[0].length == BLOCK);
	assert_true(g[1].id == BT_WIRE_REJECT && g[1].index == 4);

	/* Many requests, unread: some are served, the rest wait until the queue is full, those
	 * past it are rejected; a few waiting are cancelled; then we choke. Piece, offset and
	 * length identify request i. */
	bt_peer_set_choking(f->peer, false);
	static const uint32_t have[] = {0, 1, 2, 3, 5, 6, 7, 8};
#define REQ(i) have[(i) % 8], (i) / 8 % 100, 100 - (i) / 800 % 50
	uint32_t total = 0;
	for (; total < 40000 && bt_peer_upload_queue(f->peer) < BT_SERVEQ_CAP; total++) {
		send_request(f, REQ(total));
		if (total % 100 == 99)
			spin(f);
	}
	assert_true(total < 40000);
	for (uint32_t end = total + 100; total < end; total++)
		send_request(f, REQ(total));
	for (uint32_t i = total - 300; i < total - 295; i++) {
		uint8_t c[17];
		send_raw(f, c, bt_wire_put_request(c, BT_WIRE_CANCEL, REQ(i)));
	}
#undef REQ
	spin(f);
	assert_int_equal(bt_peer_upload_queue(f->peer), BT_SERVEQ_CAP - 5);
	bt_peer_set_choking(f->peer, true);
	assert_int_equal(bt_peer_upload_queue(f->peer), 0);
	n = read_msgs(f, g, 45000);
	static uint8_t answers[40000];
	memset(answers, 0, sizeof answers);
	size_t pieces = 0, rejects = 0, chokes = 0;
	for (size_t k = 0; k < n; k++) {
		if (g[k].id == BT_WIRE_CHOKE || g[k].id == BT_WIRE_UNCHOKE) {
			chokes++;
			continue;
		}
		assert_true(g[k].id == BT_WIRE_PIECE || g[k].id == BT_WIRE_REJECT);
		pieces += g[k].id == BT_WIRE_PIECE;
		rejects += g[k].id == BT_WIRE_REJECT;
		/* Which request: piece, offset and length identify it. */
		uint32_t slot = 0;
		for (; slot < 8 && have[slot] != g[k].index; slot++)
			;
		assert_true(slot < 8);
		uint32_t i = (100 - g[k].length) * 800 + g[k].begin * 8 + slot;
		assert_true(i < total);
		answers[i]++;
	}
	assert_int_equal(chokes, 2);
	for (uint32_t i = 0; i < total; i++)
		if (answers[i] != 1)
			fail_msg("request %u answered %u times", i, answers[i]);
	assert_true(pieces > 0 && rejects >= BT_SERVEQ_CAP + 100);
	assert_int_equal(f->r.closed, 0);
	fast_teardown(f);
}

/* Our allowed-fast set goes to an IPv4 peer, and we serve it those pieces while choking it. */
static void test_fast_allowed_fast_we_give(void **state)
{
	(void)state;
	const uint32_t pieces = 40;
	struct fx *f = fast_fx(bt_wire_reserved_fast, pieces, true);
	bt_peer_send_bitfield(f->peer, &f->ours);
	struct got g[64];
	size_t n = read_msgs(f, g, 64);
	uint32_t want[BT_FASTSET_K];
	const uint8_t lo[4] = {127, 0, 0, 1};
	assert_int_equal(bt_fastset_generate(f->cfg.info_hash, lo, pieces, BT_FASTSET_K, want),
			 BT_FASTSET_K);
	assert_int_equal(n, 1 + BT_FASTSET_K);
	assert_int_equal(g[0].id, BT_WIRE_BITFIELD);
	for (size_t i = 0; i < BT_FASTSET_K; i++) {
		assert_int_equal(g[1 + i].id, BT_WIRE_ALLOWED_FAST);
		assert_int_equal(g[1 + i].index, want[i]);
	}
	/* Choked: an allowed piece we have is served, another piece rejected. */
	uint32_t other = 0;
	for (size_t i = 0; i < BT_FASTSET_K; i++)
		if (other == 4 || want[i] == other)
			other++, i = (size_t)-1;
	uint32_t allowed = want[0] == 4 ? want[1] : want[0];
	send_request(f, allowed, 0, BLOCK);
	send_request(f, other, 0, BLOCK);
	n = read_msgs(f, g, 64);
	assert_int_equal(n, 2);
	assert_int_equal(g[0].id, BT_WIRE_PIECE);
	assert_int_equal(g[0].index, allowed);
	assert_int_equal(g[1].id, BT_WIRE_REJECT);
	assert_int_equal(g[1].index, other);
	assert_int_equal(f->r.closed, 0);
	fast_teardown(f);

	/* A torrent of fewer than 2k pieces, or a peer without an IPv4 address: no set. */
	f = fast_fx(bt_wire_reserved_fast, 2 * BT_FASTSET_K - 1, true);
	bt_peer_send_bitfield(f->peer, &f->ours);
	assert_int_equal(read_msgs(f, g, 64), 1);
	fast_teardown(f);
	f = fast_fx(bt_wire_reserved_fast, pieces, false);
	bt_peer_send_bitfield(f->peer, &f->ours);
	assert_int_equal(read_msgs(f, g, 64), 1);
	fast_teardown(f);
}

/* The peer's allowed-fast set: what we may request while choked, until it rejects a piece. */
static void test_fast_allowed_fast_we_get(void **state)
{
	(void)state;
	struct fx *f = fast_fx(bt_wire_reserved_fast, PIECES, false);
	uint8_t m[16];
	size_t n = bt_wire_put_bitfield_header(m, 2);
	m[n++] = 0x7f; /* all but piece 0 */
	m[n++] = 0xc0;
	send_raw(f, m, n);
	send_raw(f, m, bt_wire_put_index(m, BT_WIRE_ALLOWED_FAST, 0)); /* one it lacks */
	send_raw(f, m, bt_wire_put_index(m, BT_WIRE_ALLOWED_FAST, 5));
	send_raw(f, m, bt_wire_put_index(m, BT_WIRE_ALLOWED_FAST, 7));
	send_raw(f, m, bt_wire_put_index(m, BT_WIRE_SUGGEST, 2)); /* a hint, ignored */
	spin(f);
	assert_int_equal(f->r.closed, 0);
	const struct bt_bitfield *a = bt_peer_allowed_pieces(f->peer);
	assert_int_equal(a->count, 2);
	assert_true(bt_bitfield_get(a, 5) && bt_bitfield_get(a, 7));
	struct bt_block b = {5, 0, BLOCK};
	bt_peer_request(f->peer, &b);
	send_reject(f, &b);
	spin(f);
	assert_int_equal(f->r.rejected, 1);
	a = bt_peer_allowed_pieces(f->peer);
	assert_int_equal(a->count, 1);
	assert_false(bt_bitfield_get(a, 5));

	send_raw(f, m, bt_wire_put_index(m, BT_WIRE_ALLOWED_FAST, PIECES));
	spin(f);
	assert_int_equal(f->r.closed, 1);
	assert_string_equal(f->r.reason, "allowed fast for piece 10 of 10");
	fast_teardown(f);
}

/* A Fast peer that chokes us and never answers: our requests come back after the timeout,
 * cancelled, and the connection stays. */
static void test_fast_choked_requests_time_out(void **state)
{
	(void)state;
	struct fx *f = fast_fx(bt_wire_reserved_fast, PIECES, false);
	bt_peer_free(f->peer);
	close(f->remote);
	f->cfg.request_timeout_s = 0.5;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->remote = sv[1];
	fcntl(f->remote, F_SETFL, O_NONBLOCK);
	f->peer = bt_peer_adopt(f->base, sv[0], &f->cfg, NULL, &events, &f->r);
	memset(&f->r, 0, sizeof f->r);
	spin(f);
	uint8_t buf[BT_HANDSHAKE_LEN];
	assert_int_equal(read_raw(f, buf, sizeof buf), BT_HANDSHAKE_LEN);
	remote_handshake_with(f, 0xaa, bt_wire_reserved_fast);
	uint8_t m[8];
	send_raw(f, m, bt_wire_put_simple(m, BT_WIRE_HAVE_ALL));
	spin(f);
	struct bt_block a = {1, 0, BLOCK}, b = {2, 0, BLOCK};
	bt_peer_request(f->peer, &a);
	bt_peer_request(f->peer, &b);
	struct timeval two = {2, 200000};
	event_base_loopexit(f->base, &two);
	event_base_dispatch(f->base);
	assert_int_equal(f->r.closed, 0);
	assert_int_equal(f->r.rejected, 2);
	assert_int_equal(bt_peer_outstanding(f->peer), 0);
	/* They were cancelled: their late answers are taken quietly. */
	send_piece(f, &a);
	send_reject(f, &b);
	spin(f);
	assert_int_equal(f->r.closed, 0);
	fast_teardown(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_handshake_byte_by_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_torrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bitfield_have_and_bad_ones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bitfield_wrong_size_or_spare_bits, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_spare_bits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_piece_cancel_choke, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_length_dropped_at_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ignored_messages_and_eof, setup, teardown),
		cmocka_unit_test(test_connect_refused_reported_from_loop),
		cmocka_unit_test_setup_teardown(test_block_streamed_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_serving_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_past_piece_end, setup, teardown),
		cmocka_unit_test(test_handler_table),
		cmocka_unit_test_setup_teardown(test_extended_needs_bep10, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extended_reaches_the_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fast_messages_not_negotiated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port_without_dht_ignored, setup, teardown),
		cmocka_unit_test(test_port_with_dht),
		cmocka_unit_test(test_adopt_with_read_handshake),
		cmocka_unit_test(test_adopt_message_before_report),
		cmocka_unit_test_setup_teardown(test_self_connection, setup, teardown),
		cmocka_unit_test(test_self_connection_adopted),
		cmocka_unit_test(test_adopted_for_another_torrent),
		cmocka_unit_test_setup_teardown(test_geometry_after_handshake, setup_no_geometry,
						teardown),
		cmocka_unit_test_setup_teardown(test_early_bitfield_that_does_not_fit,
						setup_no_geometry, teardown),
		cmocka_unit_test_setup_teardown(test_early_have_out_of_range, setup_no_geometry,
						teardown),
		cmocka_unit_test_setup_teardown(test_early_have_bounded, setup_no_geometry,
						teardown),
		cmocka_unit_test_setup_teardown(test_early_bitfield_bounded, setup_no_geometry,
						teardown),
		cmocka_unit_test_setup_teardown(test_request_before_geometry, setup_no_geometry,
						teardown),
		cmocka_unit_test_setup_teardown(test_piece_before_geometry, setup_no_geometry,
						teardown),
		cmocka_unit_test(test_no_callbacks),
		cmocka_unit_test(test_fast_our_bitfield),
		cmocka_unit_test(test_fast_their_have_none_then_all),
		cmocka_unit_test_setup_teardown(test_two_bitfields, setup, teardown),
		cmocka_unit_test(test_fast_early_have_all_and_none),
		cmocka_unit_test(test_fast_messages_without_the_bit),
		cmocka_unit_test(test_fast_choke_keeps_requests),
		cmocka_unit_test(test_fast_every_request_answered_once),
		cmocka_unit_test(test_fast_allowed_fast_we_give),
		cmocka_unit_test(test_fast_allowed_fast_we_get),
		cmocka_unit_test(test_fast_choked_requests_time_out),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
