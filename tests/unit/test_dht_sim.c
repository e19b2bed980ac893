/*
 * A deterministic simulation of a DHT of our own cores: 1,000 nodes at 10.x.y.z:6881 that are
 * never real sockets. The simulator routes each datagram a core sends to the core at that address
 * after a pseudo-random latency, drops some, and drives every core's timer on a virtual clock.
 * Everything (ids, latency, loss, the cores' own randomness) comes from fixed seeds, so a failure
 * repeats exactly.
 */
#include "bt/bencode.h"
#include "bt/dht.h"
#include "bt/krpc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define N_NODES	     1000
#define STEP	     0.01 /* seconds of virtual time per simulator step */
#define SLOTS	     16	  /* latency < SLOTS steps */
#define LOSS_PER_MIL 20	  /* 2% of datagrams lost */
#define PORT	     6881

struct packet {
	uint8_t *data;
	size_t len;
	int from, to;
};

struct slot {
	struct packet *p;
	size_t n, cap;
};

struct sim {
	int n;
	struct bt_dht **dht; /* NULL for attackers */
	uint8_t (*ids)[20];  /* true ids */
	bool *alive, *attacker;
	double *next_tick;
	double start_at_step; /* node i starts at i * start_at_step */
	double now;
	uint64_t rng;
	struct slot slots[SLOTS];
	size_t cur;
	size_t sent, lost;
	/* events seen by the nodes we watch */
	int watch;
	bool done;
	bool found;
	struct bt_peer_addr want_peer;
	uint8_t watch_hash[20];
};

static uint64_t rnd(struct sim *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void sim_addr(int i, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_port = htons(PORT);
	uint32_t ip = (10u << 24) | (uint32_t)(i + 1);
	sa->sin_addr.s_addr = htonl(ip);
}

/* The node index at an address, or -1 (an address no node has). */
/* (Copied, not cast: reading a sockaddr_in through another struct type is undefined.) */
static int sim_index(const struct sim *s, const void *sa)
{
	struct sockaddr_in in;
	memcpy(&in, sa, sizeof in);
	if (in.sin_family != AF_INET)
		return -1;
	uint32_t ip = ntohl(in.sin_addr.s_addr);
	if ((ip >> 24) != 10 || ntohs(in.sin_port) != PORT)
		return -1;
	int64_t i = (int64_t)(ip & 0xffffff) - 1;
	return i >= 0 && i < s->n ? (int)i : -1;
}

static void sim_send(struct sim *s, int from, int to, const uint8_t *p, size_t len)
{
	s->sent++;
	if (to < 0 || !s->alive[to] || rnd(s) % 1000 < LOSS_PER_MIL) {
		s->lost++;
		return;
	}
	size_t delay = 1 + rnd(s) % (SLOTS - 1);
	struct slot *sl = &s->slots[(s->cur + delay) % SLOTS];
	if (sl->n == sl->cap) {
		sl->cap = sl->cap ? sl->cap * 2 : 256;
		sl->p = realloc(sl->p, sl->cap * sizeof *sl->p);
		assert_non_null(sl->p);
	}
	struct packet *pk = &sl->p[sl->n++];
	pk->data = malloc(len);
	assert_non_null(pk->data);
	memcpy(pk->data, p, len);
	pk->len = len;
	pk->from = from;
	pk->to = to;
}

static void drain(struct sim *s, int i)
{
	struct bt_dht_datagram g;
	while (bt_dht_next_output(s->dht[i], &g))
		sim_send(s, i, sim_index(s, &g.to), g.data, g.len);
	struct bt_dht_event e;
	while (bt_dht_next_event(s->dht[i], &e)) {
		if (i != s->watch || memcmp(e.info_hash, s->watch_hash, 20) != 0)
			continue;
		if (e.kind == BT_DHT_SEARCH_DONE)
			s->done = true;
		for (size_t k = 0; k < e.count; k++)
			if (bt_peer_addr_equal(&e.peers[k], &s->want_peer))
				s->found = true;
	}
}

/*
 * An attacker answers every query from the address it has with the id of a random honest node,
 * lists honest addresses under made-up ids and made-up addresses near the target, and now and then
 * sends garbage and queries claiming the receiver's own id.
 */
static void attacker_input(struct sim *s, int a, const struct packet *pk)
{
	struct bt_krpc_msg m;
	if (bt_krpc_parse(&m, pk->data, pk->len, NULL) != 0 || m.type != BT_KRPC_QUERY)
		return;
	int victim;
	do
		victim = (int)(rnd(s) % (uint64_t)s->n);
	while (s->attacker[victim]);
	struct bt_krpc_node nodes[8];
	const uint8_t *target = m.has_target ? m.target : m.has_info_hash ? m.info_hash : m.id;
	for (int k = 0; k < 8; k++) {
		memcpy(nodes[k].id, target, 20);
		nodes[k].id[19] ^= (uint8_t)(k + 1);
		struct sockaddr_in sa;
		/* half at addresses nobody has, half at honest nodes under the wrong id */
		sim_addr(k % 2 ? s->n + 100 + (int)(rnd(s) % 1000) : (int)(rnd(s) % (uint64_t)s->n),
			 &sa);
		bt_peer_addr_from_sockaddr((struct sockaddr *)&sa, &nodes[k].addr);
	}
	uint8_t token[8] = "tok_tok_";
	struct bt_krpc_reply r = {.nodes = nodes, .node_count = 8, .token = token, .token_len = 8};
	struct bt_buf b;
	bt_buf_init(&b);
	bt_krpc_put_reply(&b, m.tid, m.tid_len, s->ids[victim], &r);
	sim_send(s, a, pk->from, b.data, b.len);
	b.len = 0;
	/* garbage, and a query claiming the receiver's own id */
	static const char garbage[] = "d1:ad2:id20:short1:q4:ping1:t2:aa1:y1:qe";
	sim_send(s, a, pk->from, (const uint8_t *)garbage, sizeof garbage - 1);
	uint8_t tid[2] = {1, 2};
	bt_krpc_put_ping(&b, tid, 2, s->ids[pk->from]);
	sim_send(s, a, pk->from, b.data, b.len);
	bt_buf_deinit(&b);
}

static void sim_step(struct sim *s)
{
	s->now += STEP;
	s->cur = (s->cur + 1) % SLOTS;
	struct slot *sl = &s->slots[s->cur];
	/* New packets land in other slots (delay >= 1), so this slot is stable while we read it. */
	for (size_t k = 0; k < sl->n; k++) {
		struct packet *pk = &sl->p[k];
		if (s->alive[pk->to]) {
			if (s->attacker[pk->to]) {
				attacker_input(s, pk->to, pk);
			} else if (s->dht[pk->to]) {
				struct sockaddr_in from;
				sim_addr(pk->from, &from);
				bt_dht_input(s->dht[pk->to], pk->data, pk->len,
					     (struct sockaddr *)&from, sizeof from, s->now);
				s->next_tick[pk->to] = bt_dht_tick(s->dht[pk->to], s->now);
				drain(s, pk->to);
			}
		}
		free(pk->data);
	}
	sl->n = 0;
	/* Every second, each attacker makes itself known: a find_node to a random honest node
	 * under a stolen id, which puts it in tables and in the nodes lists honest nodes send. */
	bool second = (long)(s->now * 100 + 0.5) % 100 == 0;
	for (int i = 0; i < s->n; i++) {
		if (s->attacker[i] && s->alive[i] && second) {
			int to = (int)(rnd(s) % (uint64_t)s->n),
			    victim = (int)(rnd(s) % (uint64_t)s->n);
			uint8_t tid[2] = {9, 9};
			struct bt_buf b;
			bt_buf_init(&b);
			bt_krpc_put_find_node(&b, tid, 2, s->ids[victim], s->ids[i], false, false);
			sim_send(s, i, to, b.data, b.len);
			bt_buf_deinit(&b);
		}
		if (!s->alive[i] || s->attacker[i])
			continue;
		if (!s->dht[i]) {
			if (s->now < i * s->start_at_step)
				continue;
			struct bt_dht_config cfg = {.family = AF_INET};
			memcpy(cfg.id, s->ids[i], 20);
			for (int k = 0; k < 16; k++)
				cfg.secret_seed[k] = (uint8_t)rnd(s);
			s->dht[i] = bt_dht_new(&cfg, s->now);
			assert_non_null(s->dht[i]);
			/* Routers: the first four nodes (a node is never its own router). */
			for (int r = 0; r < 4; r++) {
				struct sockaddr_in sa;
				sim_addr(r, &sa);
				if (r != i)
					bt_dht_add_router(s->dht[i], (struct sockaddr *)&sa,
							  sizeof sa);
			}
			s->next_tick[i] = s->now;
		}
		if (s->next_tick[i] <= s->now) {
			s->next_tick[i] = bt_dht_tick(s->dht[i], s->now);
			drain(s, i);
		}
	}
}

static void sim_run(struct sim *s, double seconds)
{
	double end = s->now + seconds;
	while (s->now < end)
		sim_step(s);
}

static struct sim *sim_new(int n, int attackers_per_100, uint64_t seed)
{
	struct sim *s = calloc(1, sizeof *s);
	assert_non_null(s);
	s->n = n;
	s->rng = seed;
	s->dht = calloc((size_t)n, sizeof *s->dht);
	s->ids = calloc((size_t)n, sizeof *s->ids);
	s->alive = calloc((size_t)n, sizeof *s->alive);
	s->attacker = calloc((size_t)n, sizeof *s->attacker);
	s->next_tick = calloc((size_t)n, sizeof *s->next_tick);
	assert_true(s->dht && s->ids && s->alive && s->attacker && s->next_tick);
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < 20; k += 4) {
			uint32_t v = (uint32_t)rnd(s);
			memcpy(s->ids[i] + k, &v, 4);
		}
		s->alive[i] = true;
		/* never the routers */
		s->attacker[i] = i >= 4 && (int)(rnd(s) % 100) < attackers_per_100;
	}
	s->start_at_step = 0.01;
	s->watch = -1;
	return s;
}

static void sim_free(struct sim *s)
{
	for (int i = 0; i < s->n; i++)
		bt_dht_free(s->dht[i]);
	for (int k = 0; k < SLOTS; k++) {
		for (size_t j = 0; j < s->slots[k].n; j++)
			free(s->slots[k].p[j].data);
		free(s->slots[k].p);
	}
	free(s->dht);
	free(s->ids);
	free(s->alive);
	free(s->attacker);
	free(s->next_tick);
	free(s);
}

static const uint8_t *g_target;

static int by_distance(const void *a, const void *b)
{
	const uint8_t *x = *(const uint8_t *const *)a, *y = *(const uint8_t *const *)b;
	for (int i = 0; i < 20; i++) {
		uint8_t p = x[i] ^ g_target[i], q = y[i] ^ g_target[i];
		if (p != q)
			return p < q ? -1 : 1;
	}
	return 0;
}

/* The indexes of the 8 live honest nodes closest to target, from the sorted list of all ids. */
static void true_closest(struct sim *s, const uint8_t *target, int *out)
{
	const uint8_t **ptr = calloc((size_t)s->n, sizeof *ptr);
	assert_non_null(ptr);
	int m = 0;
	for (int i = 0; i < s->n; i++)
		if (s->alive[i] && !s->attacker[i])
			ptr[m++] = s->ids[i];
	g_target = target;
	qsort(ptr, (size_t)m, sizeof *ptr, by_distance);
	for (int k = 0; k < 8; k++)
		out[k] = (int)((const uint8_t(*)[20])(const void *)ptr[k] - s->ids);
	free(ptr);
}

static size_t stored_at(struct sim *s, int i)
{
	struct bt_dht_stats st;
	bt_dht_get_stats(s->dht[i], &st);
	return st.stored_peers;
}

/* Node `who` announces hash with port; returns how many of the 8 true closest now store it. */
static int announce_and_count(struct sim *s, int who, const uint8_t *hash, uint16_t port)
{
	size_t *before = calloc((size_t)s->n, sizeof *before);
	assert_non_null(before);
	for (int i = 0; i < s->n; i++)
		if (s->dht[i])
			before[i] = stored_at(s, i);
	s->watch = who;
	s->done = false;
	memcpy(s->watch_hash, hash, 20);
	assert_int_equal(bt_dht_search(s->dht[who], hash, true, port, s->now), 0);
	drain(s, who);
	double limit = s->now + 60;
	while (!s->done && s->now < limit)
		sim_step(s);
	assert_true(s->done);
	sim_run(s, 5); /* the announces travel */
	int closest[8], hits = 0;
	true_closest(s, hash, closest);
	for (int k = 0; k < 8; k++)
		if (s->dht[closest[k]] && stored_at(s, closest[k]) > before[closest[k]])
			hits++;
	free(before);
	return hits;
}

/* Node `who` searches hash; true if it is told of the peer at `owner`:port. */
static bool search_finds(struct sim *s, int who, const uint8_t *hash, int owner, uint16_t port)
{
	struct sockaddr_in sa;
	sim_addr(owner, &sa);
	sa.sin_port = htons(port);
	bt_peer_addr_from_sockaddr((struct sockaddr *)&sa, &s->want_peer);
	s->watch = who;
	s->done = s->found = false;
	memcpy(s->watch_hash, hash, 20);
	assert_int_equal(bt_dht_search(s->dht[who], hash, false, 0, s->now), 0);
	drain(s, who);
	double limit = s->now + 60;
	while (!s->done && s->now < limit)
		sim_step(s);
	assert_true(s->done);
	return s->found;
}

static int honest_node(struct sim *s)
{
	int i;
	do
		i = (int)(rnd(s) % (uint64_t)s->n);
	while (!s->alive[i] || s->attacker[i] || !s->dht[i]);
	return i;
}

static void random_hash(struct sim *s, uint8_t *h)
{
	for (int k = 0; k < 20; k++)
		h[k] = (uint8_t)rnd(s);
}

static void test_lookups_converge_and_survive_churn(void **state)
{
	(void)state;
	struct sim *s = sim_new(N_NODES, 0, 42);
	sim_run(s, 10 + N_NODES * s->start_at_step); /* everyone started and bootstrapped */

	size_t good = 0;
	for (int i = 0; i < s->n; i++) {
		struct bt_dht_stats st;
		bt_dht_get_stats(s->dht[i], &st);
		good += st.good;
	}
	print_message("sim: %zu good entries per node on average, %zu datagrams, %zu lost\n",
		      good / (size_t)s->n, s->sent, s->lost);
	assert_true(good / (size_t)s->n >= 16);

	int total = 0;
	for (int round = 0; round < 4; round++) {
		uint8_t h[20];
		random_hash(s, h);
		int a = honest_node(s), b = honest_node(s);
		int hits = announce_and_count(s, a, h, (uint16_t)(7000 + round));
		print_message("sim: announce %d reached %d of the 8 true closest\n", round, hits);
		assert_true(hits >= 5);
		total += hits;
		assert_true(search_finds(s, b, h, a, (uint16_t)(7000 + round)));
	}

	/* 20% of the nodes leave at once (never the routers: they are the bootstrap). */
	int gone = 0;
	for (int i = 4; i < s->n; i++)
		if (rnd(s) % 5 == 0) {
			s->alive[i] = false;
			gone++;
		}
	print_message("sim: %d nodes left\n", gone);
	sim_run(s, 10);
	for (int round = 0; round < 3; round++) {
		uint8_t h[20];
		random_hash(s, h);
		int a = honest_node(s), b = honest_node(s);
		int hits = announce_and_count(s, a, h, (uint16_t)(8000 + round));
		print_message("sim: after churn, announce %d reached %d of the 8 true closest\n",
			      round, hits);
		/* (an announce_peer is one datagram: the 2% loss alone costs one now and then) */
		assert_true(hits >= 5);
		total += hits;
		assert_true(search_finds(s, b, h, a, (uint16_t)(8000 + round)));
	}
	/* 7 rounds of 8: at least 90% of the announces reached a true closest node */
	assert_true(total >= 51);
	sim_free(s);
}

/* Reads a node's saved table: every entry's address must be the one its id really has, except
 * entries held by attackers (which answer from their own address under stolen ids). */
static void check_table(struct sim *s, int i, size_t *entries, size_t *fake, size_t *stolen)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_dht_save(s->dht[i], &b);
	struct bt_benc_doc doc;
	assert_int_equal(bt_benc_parse(&doc, b.data, b.len, NULL, NULL, NULL), BT_BENC_OK);
	const struct bt_benc_node *nodes = bt_benc_dict_get(bt_benc_root(&doc), "nodes");
	assert_non_null(nodes);
	for (size_t k = 0; k + 26 <= nodes->str_len; k += 26) {
		const uint8_t *e = nodes->str + k;
		struct sockaddr_in sa = {.sin_family = AF_INET};
		memcpy(&sa.sin_addr, e + 20, 4);
		memcpy(&sa.sin_port, e + 24, 2);
		int at = sim_index(s, &sa);
		(*entries)++;
		if (at < 0)
			(*fake)++;
		else if (memcmp(s->ids[at], e, 20) != 0)
			(*stolen)++;
		/* a lie about an honest node's address never gets in */
		if (at >= 0 && !s->attacker[at])
			assert_memory_equal(s->ids[at], e, 20);
	}
	bt_benc_doc_deinit(&doc);
	bt_buf_deinit(&b);
}

static void test_liars_and_garbage_do_not_poison(void **state)
{
	(void)state;
	struct sim *s = sim_new(N_NODES, 5, 7);
	sim_run(s, 10 + N_NODES * s->start_at_step);
	int attackers = 0;
	for (int i = 0; i < s->n; i++)
		attackers += s->attacker[i];
	int total = 0;
	for (int round = 0; round < 4; round++) {
		uint8_t h[20];
		random_hash(s, h);
		int a = honest_node(s), b = honest_node(s);
		int hits = announce_and_count(s, a, h, (uint16_t)(9000 + round));
		print_message("sim: with %d liars, announce %d reached %d of the 8 true closest\n",
			      attackers, round, hits);
		total += hits;
		assert_true(search_finds(s, b, h, a, (uint16_t)(9000 + round)));
	}
	assert_true(total >= 24);
	size_t entries = 0, fake = 0, stolen = 0;
	for (int i = 0; i < s->n; i++)
		if (s->dht[i])
			check_table(s, i, &entries, &fake, &stolen);
	print_message(
		"sim: %zu table entries, %zu at made-up addresses, %zu liars under stolen ids\n",
		entries, fake, stolen);
	assert_true(entries > 0);
	assert_int_equal(fake, 0);
	/* Liars get in only as themselves (one entry per address): at most their share. */
	assert_true(stolen * 100 <= entries * 10);
	sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookups_converge_and_survive_churn),
		cmocka_unit_test(test_liars_and_garbage_do_not_poison),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
