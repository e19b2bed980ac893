/*
 * pex: peer exchange (BEP 11, `ut_pex`): the message codec and the sans-I/O state of one
 * connection's two directions. Pure: bytes and `now` (seconds on bt_now's clock) in, decisions
 * out; the torrent (torrent_pex.c) owns one sender and one receiver per connection and does the
 * sending, the address book and the disconnecting.
 *
 * The message is a dict of compact strings: `added` (6 bytes per IPv4 peer) with `added.f` (one
 * flag byte each), `added6` (18 bytes per IPv6 peer) with `added6.f`, `dropped` (6-byte IPv4,
 * whatever the BEP's typo says) and `dropped6`. The parser refuses a payload over
 * BT_PEX_MAX_MESSAGE bytes, anything but a dict, and an address list whose length is not a
 * multiple of its entry size; a missing or short flags string gives flags 0; other keys are
 * ignored. The parsed message borrows the input: its entries are read with bt_pex_added() and
 * bt_pex_dropped() while the input lives.
 *
 * The sender remembers which addresses it told its peer about. bt_pex_sender_poll() takes the
 * torrent's current list (peers with an established connection, at their listen port) and
 * returns the next message when one is due: the first once there is anyone to tell about, then
 * diffs at most every BT_PEX_INTERVAL_S, each with at most BT_PEX_MAX_ADDED added and
 * BT_PEX_MAX_DROPPED dropped; every address it added is dropped once it leaves the list, and
 * what did not fit waits for the next message. The receiver says whether a message came too soon
 * after the previous one (BT_PEX_MIN_GAP_S: the once-a-minute rule, with slack for timers).
 */
#ifndef BT_PEX_H
#define BT_PEX_H

#include "bt/tracker_proto.h"
#include "bt/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A bigger payload is dropped unread: 100 IPv6 peers added and dropped take about 4 KiB. */
#define BT_PEX_MAX_MESSAGE 8192
/* Addresses per message in each direction: what we send, and what we keep of one we receive. */
#define BT_PEX_MAX_ADDED   50
#define BT_PEX_MAX_DROPPED 50
/* Seconds between two messages we send to one peer. */
#define BT_PEX_INTERVAL_S 60.0
/* A peer whose messages come closer than this is breaking the once-a-minute rule. */
#define BT_PEX_MIN_GAP_S 45.0

/* The flags of an added peer (BEP 11). */
enum {
	BT_PEX_F_ENCRYPTION = 0x01,
	BT_PEX_F_SEED = 0x02, /* a seed or upload-only (BEP 21) */
	BT_PEX_F_UTP = 0x04,
	BT_PEX_F_HOLEPUNCH = 0x08,
	BT_PEX_F_REACHABLE = 0x10, /* the sender connected to it: it accepts connections */
};

struct bt_pex_peer {
	struct bt_peer_addr addr;
	uint8_t flags; /* BT_PEX_F_* */
};

/* A parsed message: slices of the input. */
struct bt_pex_msg {
	const uint8_t *added4, *added4_f, *added6, *added6_f, *dropped4, *dropped6;
	size_t n_added4, n_added4_f, n_added6, n_added6_f, n_dropped4, n_dropped6;
};

/*
 * Parses a ut_pex payload. Returns 0, or -EMSGSIZE (over BT_PEX_MAX_MESSAGE) / -EINVAL with err
 * saying what is wrong.
 */
int bt_pex_parse(struct bt_pex_msg *out, const uint8_t *p, size_t len, struct bt_err *err);
/* Added entries (IPv4 first, then IPv6), and the i-th of them (i < bt_pex_added_count). */
size_t bt_pex_added_count(const struct bt_pex_msg *m);
void bt_pex_added(const struct bt_pex_msg *m, size_t i, struct bt_pex_peer *out);
size_t bt_pex_dropped_count(const struct bt_pex_msg *m);
void bt_pex_dropped(const struct bt_pex_msg *m, size_t i, struct bt_peer_addr *out);

/* Appends a ut_pex payload (canonical bencode); entries of another family than 4 or 6 are
 * skipped. */
void bt_pex_encode(struct bt_buf *out, const struct bt_pex_peer *added, size_t n_added,
		   const struct bt_peer_addr *dropped, size_t n_dropped);

/* Zeroed (or bt_pex_sender_init) is ready. */
struct bt_pex_sender {
	struct bt_peer_addr *told; /* what the peer has been told and not yet told dropped */
	size_t n_told, cap;
	double next_at; /* no message before this time */
	bool started;	/* the first message has gone */
};

void bt_pex_sender_init(struct bt_pex_sender *s);
void bt_pex_sender_deinit(struct bt_pex_sender *s);
/*
 * The message due at `now` for a peer at `recipient` (left out of what it is told), given the
 * current peers; appends the payload to out and returns true, or returns false when nothing is
 * due (too soon, or nothing changed). Duplicates in current are told once.
 */
bool bt_pex_sender_poll(struct bt_pex_sender *s, const struct bt_pex_peer *current, size_t n,
			const struct bt_peer_addr *recipient, double now, struct bt_buf *out);

/* Zeroed is ready: no message yet. */
struct bt_pex_receiver {
	double last_at; /* when the previous message came */
	bool seen;
};

/* A message came at `now`: returns 0, or -EBUSY if it is too soon after the previous one. */
int bt_pex_receiver_on_message(struct bt_pex_receiver *r, double now);

#endif
