/*
 * choker: which peers we upload to. Pure: given each peer's interest and rates, it says who is
 * unchoked. A fixed number of regular slots go to the interested peers that give us the most
 * (by their upload to us while we download, by our upload to them while we seed: reciprocation,
 * and while seeding, the peers that take data fastest); one more slot is the optimistic
 * unchoke, a random interested peer outside the regular set, kept for OPTIMISTIC_ROUNDS rounds
 * (3 × 10 s = 30 s) so newcomers get a chance to prove themselves.
 */
#ifndef BT_CHOKER_H
#define BT_CHOKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BT_CHOKER_SLOTS		    4
#define BT_CHOKER_OPTIMISTIC_ROUNDS 3
#define BT_CHOKER_INTERVAL_S	    10

struct bt_choker_peer {
	bool interested;  /* in us */
	double down_rate; /* bytes/s they send us */
	double up_rate;	  /* bytes/s we send them */
	bool unchoke;	  /* out: the decision */
	bool optimistic;  /* in: the current optimistic pick; out: the new one */
};

struct bt_choker {
	unsigned round;
	uint64_t rng;
};

void bt_choker_init(struct bt_choker *c, uint64_t seed);
/* Decides for all n peers (sets unchoke and optimistic). seeding picks the rate to rank by. */
void bt_choker_run(struct bt_choker *c, struct bt_choker_peer *peers, size_t n, bool seeding);

#endif
