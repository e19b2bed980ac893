/*
 * addrbook: every address known for one torrent, and the rules for dialling them. Pure: the
 * torrent tells it where addresses came from and what happened to their connections, passing the
 * time in (`now`, seconds on bt_now's clock); it answers which address to dial next.
 *
 * An entry is one IPv4 or IPv6 address and port, with the sources that reported it (flags, OR-ed
 * as more report it), its connection history (tries, next retry time, whether it got past the
 * handshake, block bytes received, strikes, the last error) and its standing (banned, self).
 * Entries have stable small integer handles (>= 0): the torrent keeps one per connection and per
 * contributor of a piece. Entries live on the heap, so a `get` pointer stays valid until the entry
 * is evicted.
 *
 * Dialling: an entry is queued for dialling while it is not connected, not banned, not our own
 * address, has a source whose port can be dialled (an address that only ever dialled us has an
 * ephemeral port) and has had fewer than BT_ADDRBOOK_MAX_TRIES tries. The queue is a heap ordered
 * by retry time, then by the order of queueing, so next_to_dial costs O(log n), never a scan.
 * When a connection ends, the next try waits BT_ADDRBOOK_BACKOFF_S × tries seconds; a connection
 * that lasted more than BT_ADDRBOOK_FRESH_AFTER_S earns a fresh set of tries (tries back to 1).
 *
 * Lookup: an open-addressing hash table over family, address and port, hashed with SipHash-2-4
 * under a per-book seed, so a hostile tracker or peer cannot pick addresses that collide.
 *
 * Capacity: at most `capacity` entries. When the book is full, a new address evicts the oldest
 * "spent" entry (never got past a handshake and will not be dialled again: out of tries);
 * failing that, addresses from trackers, DHT and PEX are dropped (-ENOSPC), while manual and
 * incoming ones evict the oldest idle entry that never handshook, then the oldest idle one that
 * did, and if every entry is connected, manual, banned, ours or has sent us data, the book grows
 * by one. Entries that are connected, manual, banned, ours or have sent us block data are never
 * evicted, so the handles the torrent holds (its connections, the contributors of its pieces)
 * always stay valid.
 *
 * Per source: trackers, DHT and PEX each bring at most half the capacity (rounded up; 2000 in a
 * default book) of the hopeful entries (not banned, not ours, tries left), counted by the source
 * that reported the address first. Past that, their new addresses are dropped (-ENOSPC) until
 * some are spent: one source (one huge tracker reply) cannot fill the book alone, and the
 * torrent can stop reading a reply at the first -ENOSPC.
 *
 * Incoming: an address known only because it dialled us (its port is ephemeral) is never
 * dialled, and when its connection closes having sent no block data (and not banned), the entry
 * is released at once: connect/close floods leave nothing behind.
 */
#ifndef BT_ADDRBOOK_H
#define BT_ADDRBOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define BT_ADDRBOOK_DEFAULT_CAPACITY 4000
/* Hopeful entries per unsolicited source (tracker, DHT, PEX) in a default book: half of it. */
#define BT_ADDRBOOK_DEFAULT_PER_SOURCE (BT_ADDRBOOK_DEFAULT_CAPACITY / 2)
/* Connection attempts per address before it is given up. */
#define BT_ADDRBOOK_MAX_TRIES 3
/* Seconds to wait before the next try, per try made. */
#define BT_ADDRBOOK_BACKOFF_S 2.0
/* A connection that lasted longer than this earns a fresh set of tries. */
#define BT_ADDRBOOK_FRESH_AFTER_S 60.0
/* Strikes (data that failed verification) that ban an address. */
#define BT_ADDRBOOK_MAX_STRIKES 2

/* Where an address came from (flags). */
enum bt_addrbook_source {
	BT_ADDRBOOK_TRACKER = 1 << 0,
	BT_ADDRBOOK_MANUAL = 1 << 1, /* --peer */
	BT_ADDRBOOK_INCOMING = 1 << 2,
	BT_ADDRBOOK_DHT = 1 << 3,
	BT_ADDRBOOK_PEX = 1 << 4,
};

struct bt_addrbook_entry {
	struct sockaddr_storage addr;
	socklen_t len;
	char name[64];	  /* "1.2.3.4:5" or "[::1]:5" */
	unsigned sources; /* enum bt_addrbook_source flags */
	int tries;	  /* connection attempts since the last fresh set */
	double retry_at;  /* not dialled before this time */
	double since;	  /* when the current (or last) connection began */
	bool connected;	  /* a connection (or attempt) is open now */
	bool handshaken;  /* ever got past the handshake */
	bool banned;
	bool self;	/* our own address: never dialled */
	bool incoming;	/* known only because it dialled us: its port is not one to dial */
	uint64_t bytes; /* block bytes received from it, all connections */
	uint32_t strikes;
	uint8_t pex_flags; /* what the last PEX message naming it said (BT_PEX_F_* in bt/pex.h) */
	char last_error[128]; /* why its last connection ended, or why it is banned; "" if none */
};

struct bt_addrbook_counts {
	size_t known;	  /* entries */
	size_t dialable;  /* queued for dialling, due now or later */
	size_t connected; /* connections or attempts open */
	size_t banned;
	size_t used; /* entries that sent us at least one block byte */
	/* Entries neither banned nor ours with tries left (connected or not: one that dialled us
	 * may dial again). None, and no connection open: no peer is left to hope for. */
	size_t hopeful;
};

struct bt_addrbook;

/*
 * capacity 0: BT_ADDRBOOK_DEFAULT_CAPACITY (the per-source bound is half of it, see above). seed
 * keys the hash (callers pass random bytes).
 */
struct bt_addrbook *bt_addrbook_new(size_t capacity, uint64_t seed);
void bt_addrbook_free(struct bt_addrbook *ab);

/*
 * Adds an address (or ORs `source` into the entry already there) and returns its handle; an
 * address that was banned stays banned. Returns -EAFNOSUPPORT for anything but a whole
 * sockaddr_in or sockaddr_in6, or -ENOSPC when the book, or the source's share of it, is full
 * (see the policy above).
 */
int bt_addrbook_add(struct bt_addrbook *ab, const struct sockaddr *sa, socklen_t len,
		    unsigned source, double now);
/* The handle of an address, or -ENOENT. */
int bt_addrbook_find(const struct bt_addrbook *ab, const struct sockaddr *sa, socklen_t len);
/* The entry of a handle, or NULL if there is none. */
const struct bt_addrbook_entry *bt_addrbook_get(const struct bt_addrbook *ab, int h);

/*
 * The next address due for dialling at `now`, marked connected with one more try; or -ENOENT
 * when none is due.
 */
int bt_addrbook_next_to_dial(struct bt_addrbook *ab, double now);
/*
 * When the next queued address is due (possibly already); false when none is queued, that is,
 * no address is left to dial now or later.
 */
bool bt_addrbook_next_due(const struct bt_addrbook *ab, double *at_out);

/*
 * An incoming connection from the entry: marks it connected. Returns 0, -EBUSY if it already
 * has a connection, or -EPERM if it is banned or ours.
 */
int bt_addrbook_connected(struct bt_addrbook *ab, int h, double now);
/* The connection got past the handshake. */
void bt_addrbook_handshaken(struct bt_addrbook *ab, int h);
/*
 * The connection (or attempt) is gone: sets the next retry time (and a fresh set of tries after
 * a long connection) and queues the address again if it is still dialable. reason, if not NULL,
 * becomes last_error. Returns true if the entry was released (an incoming-only address that
 * sent no data): the handle is no longer valid.
 */
bool bt_addrbook_closed(struct bt_addrbook *ab, int h, double now, const char *reason);
/* Records why the current connection is ending, before it is closed. */
void bt_addrbook_set_error(struct bt_addrbook *ab, int h, const char *reason);
void bt_addrbook_add_bytes(struct bt_addrbook *ab, int h, uint64_t n);
/* The flags a PEX message gave the address (seed, reachable, uTP, encryption): replaced, since a
 * peer's state changes. */
void bt_addrbook_set_pex_flags(struct bt_addrbook *ab, int h, uint8_t flags);

/* Bans the address for good; last_error becomes "banned: <reason>". */
void bt_addrbook_ban(struct bt_addrbook *ab, int h, const char *reason);
/* Adds n strikes; at BT_ADDRBOOK_MAX_STRIKES it bans with reason. True if this call banned it. */
bool bt_addrbook_strike(struct bt_addrbook *ab, int h, uint32_t n, const char *reason);
/* The entry is our own address (a connection to it reached ourselves): never dialled again. */
void bt_addrbook_mark_self(struct bt_addrbook *ab, int h);

void bt_addrbook_counts(const struct bt_addrbook *ab, struct bt_addrbook_counts *out);
/*
 * Iterates the entries in handle order: pass -1 first, then the last handle returned; returns
 * -ENOENT at the end. The book must not change during the iteration.
 */
int bt_addrbook_next(const struct bt_addrbook *ab, int h);

#endif
