#include "bt/addrbook.h"

#include "bt/util.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

/* family (4 or 6), 16 address bytes (an IPv4 address in the first 4), port big-endian */
#define KEY_LEN 19

/* Which eviction list an entry is on (see the policy in the header). */
enum list {
	LIST_NONE, /* never evicted */
	LIST_SPENT,
	LIST_COLD, /* idle, never handshook */
	LIST_WARM, /* idle, handshook once */
	LIST_COUNT,
};

struct slot {
	struct bt_addrbook_entry e;
	uint8_t key[KEY_LEN];
	uint64_t hash;
	int h;
	int heap_pos; /* index in the dial heap, or -1 */
	uint64_t seq; /* queueing order: ties in retry_at go first in, first out */
	enum list list;
	int origin;   /* index in by_origin of the source that first reported it, or -1 */
	bool hopeful; /* counted in counts.hopeful (and in by_origin[origin]) */
	TAILQ_ENTRY(slot) link;
};

TAILQ_HEAD(slot_list, slot);

#define ORIGIN_COUNT 3

struct bt_addrbook {
	size_t capacity;
	uint64_t k0, k1; /* SipHash key */

	struct slot **slots; /* by handle; NULL for a free handle */
	size_t nslots, slots_cap;
	int *free_handles; /* handles of evicted entries, reused first */
	size_t nfree;

	int *table; /* open addressing, linear probing: handles, -1 for empty */
	size_t table_size;

	int *heap; /* handles queued for dialling, a min-heap on (retry_at, seq) */
	size_t nheap;
	uint64_t seq;

	struct slot_list lists[LIST_COUNT];
	struct bt_addrbook_counts counts;
	size_t per_source;		/* bound on by_origin[i] */
	size_t by_origin[ORIGIN_COUNT]; /* hopeful entries first reported by tracker, DHT, PEX */
};

/* The unsolicited sources, each bounded to per_source hopeful entries: an index, or -1. */
static int origin_of(unsigned source)
{
	if (source & BT_ADDRBOOK_TRACKER)
		return 0;
	if (source & BT_ADDRBOOK_DHT)
		return 1;
	if (source & BT_ADDRBOOK_PEX)
		return 2;
	return -1;
}

static uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = rotl(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = rotl(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = rotl(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = rotl(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = rotl(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = rotl(v2, 32);                                                                 \
	} while (0)

/* SipHash-2-4 (Aumasson and Bernstein): a keyed hash made for hash tables fed by attackers. */
static uint64_t siphash(uint64_t k0, uint64_t k1, const uint8_t *p, size_t n)
{
	uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
	uint64_t b = (uint64_t)n << 56;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t m = 0;
		for (int k = 7; k >= 0; k--)
			m = m << 8 | p[i + (size_t)k];
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t k = 0; i + k < n; k++)
		b |= (uint64_t)p[i + k] << (8 * k);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The lookup key of a socket address; false for anything but a whole IPv4 or IPv6 one. */
static bool make_key(const struct sockaddr *sa, socklen_t len, uint8_t key[KEY_LEN])
{
	memset(key, 0, KEY_LEN);
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		key[0] = 4;
		memcpy(key + 1, &s4->sin_addr, 4);
		memcpy(key + 17, &s4->sin_port, 2);
		return true;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		key[0] = 6;
		memcpy(key + 1, &s6->sin6_addr, 16);
		memcpy(key + 17, &s6->sin6_port, 2);
		return true;
	}
	return false;
}

static struct slot *slot_of(const struct bt_addrbook *ab, int h)
{
	if (h < 0 || (size_t)h >= ab->nslots)
		return NULL;
	return ab->slots[h];
}

static struct slot *must_slot(const struct bt_addrbook *ab, int h)
{
	struct slot *s = slot_of(ab, h);
	assert(s);
	return s;
}

/* The table slot holding the key, or the empty one where it would go. */
static size_t probe(const struct bt_addrbook *ab, const uint8_t key[KEY_LEN], uint64_t hash)
{
	size_t mask = ab->table_size - 1;
	for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
		int h = ab->table[i];
		if (h < 0 ||
		    (ab->slots[h]->hash == hash && !memcmp(ab->slots[h]->key, key, KEY_LEN)))
			return i;
	}
}

static void table_resize(struct bt_addrbook *ab, size_t size)
{
	free(ab->table);
	ab->table = bt_xcalloc(size, sizeof *ab->table);
	ab->table_size = size;
	for (size_t i = 0; i < size; i++)
		ab->table[i] = -1;
	for (size_t h = 0; h < ab->nslots; h++)
		if (ab->slots[h])
			ab->table[probe(ab, ab->slots[h]->key, ab->slots[h]->hash)] = (int)h;
}

/* Removes a key with backward-shift deletion, so lookups need no tombstones. */
static void table_remove(struct bt_addrbook *ab, const struct slot *s)
{
	size_t mask = ab->table_size - 1;
	size_t i = probe(ab, s->key, s->hash);
	assert(ab->table[i] == s->h);
	for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
		int h = ab->table[j];
		if (h < 0)
			break;
		size_t home = (size_t)ab->slots[h]->hash & mask;
		/* Move j into the hole at i unless its home lies cyclically in (i, j]. */
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (!stays) {
			ab->table[i] = h;
			i = j;
		}
	}
	ab->table[i] = -1;
}

static bool heap_less(const struct bt_addrbook *ab, int a, int b)
{
	const struct slot *x = ab->slots[a], *y = ab->slots[b];
	if (x->e.retry_at != y->e.retry_at)
		return x->e.retry_at < y->e.retry_at;
	return x->seq < y->seq;
}

static void heap_set(struct bt_addrbook *ab, size_t i, int h)
{
	ab->heap[i] = h;
	ab->slots[h]->heap_pos = (int)i;
}

static void heap_up(struct bt_addrbook *ab, size_t i)
{
	int h = ab->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!heap_less(ab, h, ab->heap[parent]))
			break;
		heap_set(ab, i, ab->heap[parent]);
		i = parent;
	}
	heap_set(ab, i, h);
}

static void heap_down(struct bt_addrbook *ab, size_t i)
{
	int h = ab->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= ab->nheap)
			break;
		if (c + 1 < ab->nheap && heap_less(ab, ab->heap[c + 1], ab->heap[c]))
			c++;
		if (!heap_less(ab, ab->heap[c], h))
			break;
		heap_set(ab, i, ab->heap[c]);
		i = c;
	}
	heap_set(ab, i, h);
}

static void heap_push(struct bt_addrbook *ab, struct slot *s)
{
	s->seq = ab->seq++;
	ab->heap[ab->nheap++] = s->h;
	heap_up(ab, ab->nheap - 1);
}

static void heap_remove(struct bt_addrbook *ab, struct slot *s)
{
	size_t i = (size_t)s->heap_pos;
	s->heap_pos = -1;
	int last = ab->heap[--ab->nheap];
	if (i == ab->nheap)
		return;
	heap_set(ab, i, last);
	heap_up(ab, i);
	heap_down(ab, (size_t)ab->slots[last]->heap_pos);
}

static bool dialable(const struct bt_addrbook_entry *e)
{
	return !e->connected && !e->banned && !e->self && !e->incoming &&
	       e->tries < BT_ADDRBOOK_MAX_TRIES;
}

static enum list list_for(const struct bt_addrbook_entry *e)
{
	if (e->connected || e->banned || e->self || (e->sources & BT_ADDRBOOK_MANUAL) || e->bytes)
		return LIST_NONE;
	if (e->handshaken)
		return LIST_WARM;
	return dialable(e) ? LIST_COLD : LIST_SPENT;
}

/*
 * Puts the entry where its state says: in the dial queue or not, on its eviction list. Every
 * change of state ends here, so the queue and the lists never disagree with the entries.
 */
static void relist(struct bt_addrbook *ab, struct slot *s)
{
	bool hopeful = !s->e.banned && !s->e.self && s->e.tries < BT_ADDRBOOK_MAX_TRIES;
	if (hopeful != s->hopeful) {
		ab->counts.hopeful += hopeful ? 1 : (size_t)-1;
		if (s->origin >= 0)
			ab->by_origin[s->origin] += hopeful ? 1 : (size_t)-1;
		s->hopeful = hopeful;
	}
	bool queued = s->heap_pos >= 0;
	if (dialable(&s->e) && !queued)
		heap_push(ab, s);
	else if (!dialable(&s->e) && queued)
		heap_remove(ab, s);
	enum list l = list_for(&s->e);
	if (l != s->list) {
		if (s->list != LIST_NONE)
			TAILQ_REMOVE(&ab->lists[s->list], s, link);
		if (l != LIST_NONE)
			TAILQ_INSERT_TAIL(&ab->lists[l], s, link);
		s->list = l;
	}
}

static void evict(struct bt_addrbook *ab, struct slot *s)
{
	assert(s->list != LIST_NONE);
	TAILQ_REMOVE(&ab->lists[s->list], s, link);
	if (s->heap_pos >= 0)
		heap_remove(ab, s);
	table_remove(ab, s);
	ab->slots[s->h] = NULL;
	ab->free_handles[ab->nfree++] = s->h;
	ab->counts.known--;
	ab->counts.hopeful -= s->hopeful;
	if (s->origin >= 0)
		ab->by_origin[s->origin] -= s->hopeful;
	ab->counts.banned -= s->e.banned;
	ab->counts.used -= s->e.bytes > 0;
	free(s);
}

/* Makes room for one more entry; false if the policy says the address is dropped. */
static bool make_room(struct bt_addrbook *ab, unsigned source)
{
	if (ab->counts.known < ab->capacity)
		return true;
	struct slot *victim = TAILQ_FIRST(&ab->lists[LIST_SPENT]);
	bool must_fit = source & (BT_ADDRBOOK_MANUAL | BT_ADDRBOOK_INCOMING);
	if (!victim && must_fit)
		victim = TAILQ_FIRST(&ab->lists[LIST_COLD]);
	if (!victim && must_fit)
		victim = TAILQ_FIRST(&ab->lists[LIST_WARM]);
	if (victim)
		evict(ab, victim);
	return victim || must_fit;
}

struct bt_addrbook *bt_addrbook_new(size_t capacity, uint64_t seed)
{
	struct bt_addrbook *ab = bt_xcalloc(1, sizeof *ab);
	ab->capacity = capacity ? capacity : BT_ADDRBOOK_DEFAULT_CAPACITY;
	ab->per_source = ab->capacity - ab->capacity / 2;
	ab->k0 = splitmix64(&seed);
	ab->k1 = splitmix64(&seed);
	for (int i = 0; i < LIST_COUNT; i++)
		TAILQ_INIT(&ab->lists[i]);
	table_resize(ab, 16);
	return ab;
}

void bt_addrbook_free(struct bt_addrbook *ab)
{
	if (!ab)
		return;
	for (size_t h = 0; h < ab->nslots; h++)
		free(ab->slots[h]);
	free(ab->slots);
	free(ab->free_handles);
	free(ab->table);
	free(ab->heap);
	free(ab);
}

int bt_addrbook_find(const struct bt_addrbook *ab, const struct sockaddr *sa, socklen_t len)
{
	uint8_t key[KEY_LEN];
	if (!make_key(sa, len, key))
		return -ENOENT;
	int h = ab->table[probe(ab, key, siphash(ab->k0, ab->k1, key, KEY_LEN))];
	return h >= 0 ? h : -ENOENT;
}

int bt_addrbook_add(struct bt_addrbook *ab, const struct sockaddr *sa, socklen_t len,
		    unsigned source, double now)
{
	uint8_t key[KEY_LEN];
	if (!make_key(sa, len, key))
		return -EAFNOSUPPORT;
	uint64_t hash = siphash(ab->k0, ab->k1, key, KEY_LEN);
	int found = ab->table[probe(ab, key, hash)];
	if (found >= 0) {
		struct slot *s = ab->slots[found];
		s->e.sources |= source;
		/* Reported with this port by someone else: a port to dial after all. */
		if (source & ~(unsigned)BT_ADDRBOOK_INCOMING)
			s->e.incoming = false;
		relist(ab, s);
		return found;
	}
	int origin = origin_of(source);
	if (origin >= 0 && ab->by_origin[origin] >= ab->per_source)
		return -ENOSPC;
	if (!make_room(ab, source))
		return -ENOSPC;

	int h;
	if (ab->nfree) {
		h = ab->free_handles[--ab->nfree];
	} else {
		if (ab->nslots >= INT32_MAX)
			return -ENOSPC;
		if (ab->nslots == ab->slots_cap) {
			ab->slots_cap = ab->slots_cap ? ab->slots_cap * 2 : 16;
			ab->slots = bt_xreallocarray(ab->slots, ab->slots_cap, sizeof *ab->slots);
			ab->free_handles = bt_xreallocarray(ab->free_handles, ab->slots_cap,
							    sizeof *ab->free_handles);
			ab->heap = bt_xreallocarray(ab->heap, ab->slots_cap, sizeof *ab->heap);
		}
		h = (int)ab->nslots++;
	}
	struct slot *s = bt_xcalloc(1, sizeof *s);
	s->h = h;
	s->heap_pos = -1;
	s->list = LIST_NONE;
	s->origin = origin;
	memcpy(s->key, key, KEY_LEN);
	s->hash = hash;
	memcpy(&s->e.addr, sa,
	       key[0] == 4 ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	s->e.len = key[0] == 4 ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	bt_sockaddr_format(sa, s->e.name, sizeof s->e.name);
	s->e.sources = source;
	s->e.incoming = source == BT_ADDRBOOK_INCOMING;
	s->e.retry_at = now;
	ab->slots[h] = s;
	ab->counts.known++;
	/* Keep the table at most half full: probes stay short. */
	if (ab->counts.known * 2 > ab->table_size)
		table_resize(ab, ab->table_size * 2);
	else
		ab->table[probe(ab, key, hash)] = h;
	relist(ab, s);
	return h;
}

const struct bt_addrbook_entry *bt_addrbook_get(const struct bt_addrbook *ab, int h)
{
	struct slot *s = slot_of(ab, h);
	return s ? &s->e : NULL;
}

int bt_addrbook_next_to_dial(struct bt_addrbook *ab, double now)
{
	if (!ab->nheap || ab->slots[ab->heap[0]]->e.retry_at > now)
		return -ENOENT;
	struct slot *s = ab->slots[ab->heap[0]];
	s->e.tries++;
	s->e.connected = true;
	s->e.since = now;
	ab->counts.connected++;
	relist(ab, s);
	return s->h;
}

bool bt_addrbook_next_due(const struct bt_addrbook *ab, double *at_out)
{
	if (!ab->nheap)
		return false;
	if (at_out)
		*at_out = ab->slots[ab->heap[0]]->e.retry_at;
	return true;
}

int bt_addrbook_connected(struct bt_addrbook *ab, int h, double now)
{
	struct slot *s = must_slot(ab, h);
	if (s->e.banned || s->e.self)
		return -EPERM;
	if (s->e.connected)
		return -EBUSY;
	s->e.connected = true;
	s->e.since = now;
	ab->counts.connected++;
	relist(ab, s);
	return 0;
}

void bt_addrbook_handshaken(struct bt_addrbook *ab, int h)
{
	struct slot *s = must_slot(ab, h);
	s->e.handshaken = true;
	relist(ab, s);
}

bool bt_addrbook_closed(struct bt_addrbook *ab, int h, double now, const char *reason)
{
	struct slot *s = must_slot(ab, h);
	if (!s->e.connected)
		return false;
	s->e.connected = false;
	ab->counts.connected--;
	/* A connection that served a good while earns a fresh set of tries; one that fails soon
	 * after its handshake counts as a failed try like a refused one. */
	if (now - s->e.since > BT_ADDRBOOK_FRESH_AFTER_S)
		s->e.tries = 1;
	s->e.retry_at = now + BT_ADDRBOOK_BACKOFF_S * s->e.tries;
	if (reason)
		bt_addrbook_set_error(ab, h, reason);
	relist(ab, s);
	/* Known only from a connection that brought nothing: its port was ephemeral, there is
	 * nothing to dial and nothing to remember. */
	if (s->e.sources == BT_ADDRBOOK_INCOMING && s->list != LIST_NONE) {
		evict(ab, s);
		return true;
	}
	return false;
}

void bt_addrbook_set_error(struct bt_addrbook *ab, int h, const char *reason)
{
	struct slot *s = must_slot(ab, h);
	snprintf(s->e.last_error, sizeof s->e.last_error, "%s", reason);
}

void bt_addrbook_set_pex_flags(struct bt_addrbook *ab, int h, uint8_t flags)
{
	must_slot(ab, h)->e.pex_flags = flags;
}

void bt_addrbook_add_bytes(struct bt_addrbook *ab, int h, uint64_t n)
{
	struct slot *s = must_slot(ab, h);
	if (!n)
		return;
	if (!s->e.bytes) {
		ab->counts.used++;
		s->e.bytes = n;
		relist(ab, s);
		return;
	}
	s->e.bytes += n;
}

void bt_addrbook_ban(struct bt_addrbook *ab, int h, const char *reason)
{
	struct slot *s = must_slot(ab, h);
	if (s->e.banned)
		return;
	s->e.banned = true;
	ab->counts.banned++;
	snprintf(s->e.last_error, sizeof s->e.last_error, "banned: %s", reason);
	relist(ab, s);
}

bool bt_addrbook_strike(struct bt_addrbook *ab, int h, uint32_t n, const char *reason)
{
	struct slot *s = must_slot(ab, h);
	s->e.strikes += n;
	if (s->e.banned || s->e.strikes < BT_ADDRBOOK_MAX_STRIKES)
		return false;
	bt_addrbook_ban(ab, h, reason);
	return true;
}

void bt_addrbook_mark_self(struct bt_addrbook *ab, int h)
{
	struct slot *s = must_slot(ab, h);
	s->e.self = true;
	relist(ab, s);
}

void bt_addrbook_counts(const struct bt_addrbook *ab, struct bt_addrbook_counts *out)
{
	*out = ab->counts;
	out->dialable = ab->nheap;
}

int bt_addrbook_next(const struct bt_addrbook *ab, int h)
{
	for (size_t i = h < 0 ? 0 : (size_t)h + 1; i < ab->nslots; i++)
		if (ab->slots[i])
			return (int)i;
	return -ENOENT;
}
