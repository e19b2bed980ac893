#include "bt/pipeline.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static struct bt_block blk(uint32_t piece, uint32_t k)
{
	return (struct bt_block){piece, k * BT_BLOCK_SIZE, BT_BLOCK_SIZE};
}

static void add(struct bt_pipeline *pl, uint32_t piece, uint32_t k, double now)
{
	struct bt_block b = blk(piece, k);
	bt_pipeline_add(pl, &b, now);
}

static int find(const struct bt_pipeline *pl, uint32_t piece, uint32_t k)
{
	struct bt_block b = blk(piece, k);
	return bt_pipeline_find(pl, &b);
}

static void test_order_find_remove_take(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 100);
	for (uint32_t k = 0; k < 40; k++) /* past the first allocation */
		add(&pl, k % 3, k, 100);
	assert_int_equal(bt_pipeline_count(&pl), 40);
	for (uint32_t k = 0; k < 40; k++)
		assert_int_equal(find(&pl, k % 3, k), k);
	/* Same piece and offset, another length: not the same request. */
	struct bt_block shorter = {1, BT_BLOCK_SIZE, 100};
	assert_int_equal(bt_pipeline_find(&pl, &shorter), -ENOENT);

	bt_pipeline_remove_at(&pl, 0);
	bt_pipeline_remove_at(&pl, 10); /* block 11 */
	bt_pipeline_remove_at(&pl, 37); /* the newest, block 39 */
	assert_int_equal(bt_pipeline_count(&pl), 37);
	assert_int_equal(find(&pl, 0, 0), -ENOENT);
	assert_int_equal(find(&pl, 2, 11), -ENOENT);
	assert_int_equal(find(&pl, 1, 1), 0);
	assert_int_equal(find(&pl, 0, 12), 10);

	struct bt_block *out;
	assert_int_equal(bt_pipeline_take(&pl, &out), 37);
	uint32_t want = 1;
	for (size_t i = 0; i < 37; i++, want++) {
		if (want == 11)
			want++;
		assert_int_equal(out[i].piece, want % 3);
		assert_int_equal(out[i].begin, want * BT_BLOCK_SIZE);
	}
	free(out);
	assert_int_equal(bt_pipeline_count(&pl), 0);
	assert_int_equal(bt_pipeline_take(&pl, &out), 0);
	assert_null(out);

	/* It fills again after a take. */
	add(&pl, 5, 0, 200);
	assert_int_equal(find(&pl, 5, 0), 0);
	bt_pipeline_deinit(&pl);
}

/* Fast: a cancelled request awaits one answer; anything else is not one of ours. */
static void test_cancelled_await_one_answer(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 0);
	for (uint32_t k = 0; k < 3; k++)
		add(&pl, 7, k, 0);
	bt_pipeline_cancel_at(&pl, (size_t)find(&pl, 7, 1));
	assert_int_equal(bt_pipeline_count(&pl), 2);
	assert_int_equal(find(&pl, 7, 1), -ENOENT);
	struct bt_block b1 = blk(7, 1), b0 = blk(7, 0);
	assert_false(bt_pipeline_cancel_answered(&pl, &b0)); /* outstanding, not cancelled */
	assert_true(bt_pipeline_cancel_answered(&pl, &b1));
	assert_false(bt_pipeline_cancel_answered(&pl, &b1)); /* answered once only */

	/* The ring keeps the newest BT_PIPELINE_CANCELLED; an answer may come in any order. */
	for (uint32_t k = 0; k < BT_PIPELINE_CANCELLED + 5; k++) {
		add(&pl, 9, k, 0);
		bt_pipeline_cancel_at(&pl, (size_t)find(&pl, 9, k));
	}
	struct bt_block oldest = blk(9, 4), kept = blk(9, 5), newest = blk(9, 131);
	assert_false(bt_pipeline_cancel_answered(&pl, &oldest));
	assert_true(bt_pipeline_cancel_answered(&pl, &newest));
	assert_true(bt_pipeline_cancel_answered(&pl, &kept));
	size_t answered = 2;
	for (uint32_t k = 0; k < BT_PIPELINE_CANCELLED + 5; k++) {
		struct bt_block b = blk(9, k);
		answered += bt_pipeline_cancel_answered(&pl, &b);
	}
	assert_int_equal(answered, BT_PIPELINE_CANCELLED);
	assert_int_equal(bt_pipeline_count(&pl), 2);
	bt_pipeline_deinit(&pl);
}

static void test_has_requested(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 0);
	struct bt_block a = blk(7, 2), b = blk(7, 3);
	assert_false(bt_pipeline_has(&pl, &a));
	bt_pipeline_add(&pl, &a, 0);
	assert_true(bt_pipeline_has(&pl, &a));
	assert_false(bt_pipeline_has(&pl, &b));
	bt_pipeline_remove_at(&pl, (size_t)bt_pipeline_find(&pl, &a));
	assert_false(bt_pipeline_has(&pl, &a));
	bt_pipeline_deinit(&pl);
}

/* The timer starts with the first request after none were out and restarts with each block. */
static void test_request_timer(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 10);
	assert_true(bt_pipeline_waited(&pl, 15) == 5);
	add(&pl, 0, 0, 50);
	add(&pl, 0, 1, 60); /* not a restart */
	assert_true(bt_pipeline_waited(&pl, 70) == 20);
	bt_pipeline_remove_at(&pl, 0);
	bt_pipeline_received(&pl, BT_BLOCK_SIZE, 72);
	assert_true(bt_pipeline_waited(&pl, 75) == 3);
	bt_pipeline_remove_at(&pl, 0);
	add(&pl, 0, 2, 90); /* none were out: restart */
	assert_true(bt_pipeline_waited(&pl, 91) == 1);
	bt_pipeline_deinit(&pl);
}

static void test_target_before_rate(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 0);
	assert_int_equal(bt_pipeline_target(&pl), BT_PIPELINE_START_TARGET);
	/* Seconds without a byte do not make the rate known. */
	for (int i = 0; i < 5; i++)
		bt_pipeline_sample(&pl);
	assert_int_equal(bt_pipeline_target(&pl), BT_PIPELINE_START_TARGET);
	assert_true(bt_pipeline_rate(&pl) == 0);
	/* Bytes, but no sample yet. */
	bt_pipeline_received(&pl, 100, 1);
	assert_int_equal(bt_pipeline_target(&pl), BT_PIPELINE_START_TARGET);
	assert_int_equal(bt_pipeline_downloaded(&pl), 100);
	bt_pipeline_sample(&pl);
	assert_int_equal(bt_pipeline_target(&pl), BT_PIPELINE_MIN_TARGET);
	bt_pipeline_deinit(&pl);
}

/* Without a delay sample the target is the headroom: a quarter second of the rate, at most
 * BT_PIPELINE_HEADROOM; two seconds of the rate at most. */
static void test_target_from_rate(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 0);
	for (int i = 0; i < 40; i++)
		bt_pipeline_received(&pl, BT_BLOCK_SIZE, 0.5);
	bt_pipeline_sample(&pl); /* the first sample is taken as it is: 40 blocks/s */
	assert_true(bt_pipeline_rate(&pl) == 40.0 * BT_BLOCK_SIZE);
	assert_int_equal(bt_pipeline_target(&pl), 10);
	assert_int_equal(bt_pipeline_downloaded(&pl), 40 * BT_BLOCK_SIZE);
	assert_true(bt_pipeline_delay(&pl) == 0);

	/* On loopback the rate is huge and the delay nothing: the headroom's cap, no more. */
	struct bt_pipeline fast;
	bt_pipeline_init(&fast, 0);
	bt_pipeline_received(&fast, 10000 * BT_BLOCK_SIZE, 0.5);
	bt_pipeline_sample(&fast);
	assert_int_equal(bt_pipeline_target(&fast), BT_PIPELINE_HEADROOM);
	bt_pipeline_deinit(&fast);

	struct bt_pipeline slow;
	bt_pipeline_init(&slow, 0);
	bt_pipeline_received(&slow, BT_BLOCK_SIZE, 0.5);
	bt_pipeline_sample(&slow);
	assert_int_equal(bt_pipeline_target(&slow), BT_PIPELINE_MIN_TARGET);
	bt_pipeline_deinit(&slow);
	bt_pipeline_deinit(&pl);
}

/* Later samples are averaged: 0.6 of the history, 0.4 of the new second. */
static void test_smoothing(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 0);
	bt_pipeline_received(&pl, 100 * BT_BLOCK_SIZE, 0.5);
	bt_pipeline_sample(&pl);
	bt_pipeline_sample(&pl); /* a second with nothing: 60 blocks/s */
	assert_true(bt_pipeline_rate(&pl) == 0.6 * 100 * BT_BLOCK_SIZE);
	bt_pipeline_received(&pl, 40 * BT_BLOCK_SIZE, 1.5);
	bt_pipeline_received(&pl, 60 * BT_BLOCK_SIZE, 1.7);
	bt_pipeline_sample(&pl); /* 0.6 × 60 + 0.4 × 100 = 76 blocks/s */
	assert_true(fabs(bt_pipeline_rate(&pl) - 76.0 * BT_BLOCK_SIZE) < 1e-6);
	/* Slow-start ended with the empty second: the target is 0.25 s of 76 blocks/s. */
	assert_int_equal(bt_pipeline_target(&pl), 19);
	/* The average decays towards an idle peer: the target to the floor. */
	for (int i = 0; i < 10; i++)
		bt_pipeline_sample(&pl);
	assert_int_equal(bt_pipeline_target(&pl), BT_PIPELINE_MIN_TARGET);
	assert_int_equal(bt_pipeline_downloaded(&pl), 200 * BT_BLOCK_SIZE);
	bt_pipeline_deinit(&pl);
}

/* The delay: the shortest request-to-answer time, plus the average of each second's longest
 * silence while a request was overdue. */
static void test_delay_sample(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 0);
	assert_true(bt_pipeline_delay(&pl) == 0);
	for (uint32_t k = 0; k < 3; k++)
		add(&pl, 0, k, 10.0);
	bt_pipeline_answered_at(&pl, 0, 10.2);
	assert_true(fabs(bt_pipeline_delay(&pl) - 0.2) < 1e-9);
	bt_pipeline_answered_at(&pl, 0, 10.25); /* longer: the minimum stays */
	bt_pipeline_answered_at(&pl, 0, 10.9);	/* overdue since 10.25: a 0.65 s silence */
	assert_int_equal(bt_pipeline_count(&pl), 0);
	assert_true(fabs(bt_pipeline_delay(&pl) - 0.2) < 1e-9); /* counted at the sample */
	bt_pipeline_sample(&pl);
	/* A longer silence than the usual one counts at once. */
	assert_true(fabs(bt_pipeline_delay(&pl) - (0.2 + 0.65)) < 1e-9);

	add(&pl, 1, 0, 11.0);
	bt_pipeline_answered_at(&pl, 0, 11.1); /* a shorter round trip */
	/* Sent well after the last answer (our pipe was dry): the silence says nothing of the
	 * peer, and a shorter usual silence counts slowly. */
	add(&pl, 1, 1, 11.5);
	bt_pipeline_answered_at(&pl, 0, 11.7);
	bt_pipeline_sample(&pl);
	assert_true(fabs(bt_pipeline_delay(&pl) - (0.1 + 0.6 * 0.65)) < 1e-9);
	/* Sent on the last answer (the refill made on it) and kept 0.5 s: the peer sat on it. */
	add(&pl, 1, 2, 11.7);
	bt_pipeline_answered_at(&pl, 0, 12.2);
	bt_pipeline_sample(&pl);
	assert_true(fabs(bt_pipeline_delay(&pl) - (0.1 + 0.5)) < 1e-9);
	bt_pipeline_deinit(&pl);
}

/* The peer's reqq bounds the target, before and after the rate is known. */
static void test_reqq_limit(void **state)
{
	(void)state;
	struct bt_pipeline pl;
	bt_pipeline_init(&pl, 0);
	/* One short of it: the list may hold one more than the target. */
	bt_pipeline_set_limit(&pl, 10);
	assert_int_equal(bt_pipeline_target(&pl), 9);
	bt_pipeline_received(&pl, 10000 * BT_BLOCK_SIZE, 0.5);
	bt_pipeline_sample(&pl);
	assert_int_equal(bt_pipeline_target(&pl), 9);
	bt_pipeline_set_limit(&pl, 1);
	assert_int_equal(bt_pipeline_target(&pl), 1);
	bt_pipeline_set_limit(&pl, 0);
	assert_int_equal(bt_pipeline_target(&pl), BT_PIPELINE_HEADROOM);
	bt_pipeline_deinit(&pl);
}

/*
 * A simulated peer: it receives our requests half a round trip after we send them, serves them
 * in order at `rate` bytes/s, and its blocks reach us half a round trip later. A bursty one
 * (period > 0) sends only every `period` seconds, at most a period's worth of the rate of what
 * has arrived by then, the way Transmission 3.00 does. Our side keeps the target outstanding,
 * as the torrent's fill does, and samples once a second.
 */
struct sim {
	struct bt_pipeline pl;
	double rate, rtt, period;
	double deliver[BT_PIPELINE_MAX]; /* parallel to the pipeline: when each block reaches us */
	double free_at;			 /* smooth: when the peer is done with what it has */
	double pulse;			 /* bursty: the pulse being filled, and its blocks */
	double pulse_used;
	double now;
	uint64_t got; /* bytes, since the last sim_reset_count */
	uint32_t next;
	int refill; /* 0: keep the target out; REFILL_AT: in batches from bt_pipeline_refill_at;
		       REFILL_HALF: in batches once half the target is out (the torrent before) */
};

enum { REFILL_AT = 1, REFILL_HALF };

static void sim_init(struct sim *s, double rate, double rtt, double period)
{
	memset(s, 0, sizeof *s);
	bt_pipeline_init(&s->pl, 0);
	s->rate = rate;
	s->rtt = rtt;
	s->period = period;
}

static double sim_when(struct sim *s)
{
	double arrive = s->now + s->rtt / 2, block = (double)BT_BLOCK_SIZE / s->rate;
	if (s->period <= 0) {
		s->free_at = (arrive > s->free_at ? arrive : s->free_at) + block;
		return s->free_at + s->rtt / 2;
	}
	double pulse = ceil(arrive / s->period) * s->period;
	if (pulse > s->pulse) {
		s->pulse = pulse;
		s->pulse_used = 0;
	}
	if (s->pulse_used + block > s->period + 1e-9) {
		s->pulse += s->period;
		s->pulse_used = 0;
	}
	s->pulse_used += block;
	return s->pulse + s->rtt / 2;
}

/* Runs the simulation until `until` seconds, in steps of a millisecond. */
static void sim_run(struct sim *s, double until)
{
	while (s->now < until) {
		s->now += 0.001;
		while (bt_pipeline_count(&s->pl) && s->deliver[0] <= s->now) {
			bt_pipeline_answered_at(&s->pl, 0, s->now);
			memmove(s->deliver, s->deliver + 1,
				bt_pipeline_count(&s->pl) * sizeof *s->deliver);
			bt_pipeline_received(&s->pl, BT_BLOCK_SIZE, s->now);
			s->got += BT_BLOCK_SIZE;
		}
		size_t target = bt_pipeline_target(&s->pl), count = bt_pipeline_count(&s->pl);
		if (count && ((s->refill == REFILL_AT && count > bt_pipeline_refill_at(&s->pl)) ||
			      (s->refill == REFILL_HALF && count > target / 2)))
			target = 0;
		while (bt_pipeline_count(&s->pl) < target) {
			struct bt_block b = blk(s->next / 16, s->next % 16);
			s->next++;
			s->deliver[bt_pipeline_count(&s->pl)] = sim_when(s);
			bt_pipeline_add(&s->pl, &b, s->now);
		}
		/* Whole seconds, as the peer's tick. */
		if (fmod(s->now + 0.0005, 1.0) < 0.001)
			bt_pipeline_sample(&s->pl);
	}
}

/* The fraction of the peer's rate we got between `from` and `to`. */
static double sim_share(struct sim *s, double from, double to)
{
	sim_run(s, from);
	s->got = 0;
	sim_run(s, to);
	return (double)s->got / (s->rate * (to - from));
}

#define MIB (1024.0 * 1024.0)

/* 2 MiB/s at 80 ms: the queue covers the bandwidth-delay product (10 blocks), and not much
 * more than that and its headroom, and the peer's whole rate comes through. */
static void test_sim_covers_bdp(void **state)
{
	(void)state;
	struct sim s;
	sim_init(&s, 2 * MIB, 0.080, 0);
	double share = sim_share(&s, 10, 20);
	size_t target = bt_pipeline_target(&s.pl);
	print_message("2 MiB/s, 80 ms: %.3f of the rate, target %zu, delay %.3f s\n", share, target,
		      bt_pipeline_delay(&s.pl));
	assert_true(share > 0.97);
	assert_true(target >= 11 && target <= 64);
	assert_true(bt_pipeline_delay(&s.pl) > 0.07 && bt_pipeline_delay(&s.pl) < 0.15);
	bt_pipeline_deinit(&s.pl);
}

/* A peer that answers in bursts every half second is not judged by its quick answers: the
 * queue grows to cover a burst and the whole rate comes through. */
static void test_sim_bursty(void **state)
{
	(void)state;
	struct sim s;
	sim_init(&s, 2 * MIB, 0.040, 0.5);
	double share = sim_share(&s, 15, 25);
	print_message("2 MiB/s, 40 ms, bursts every 0.5 s: %.3f of the rate, target %zu\n", share,
		      bt_pipeline_target(&s.pl));
	assert_true(share > 0.95);
	assert_true(bt_pipeline_target(&s.pl) >= 64);
	bt_pipeline_deinit(&s.pl);
}

/*
 * Transmission on loopback: bursts every half second, a round trip of a millisecond. After a
 * few seconds of a slow seeder (its disk, its other peers) the queue must grow back when the
 * seeder does: a target that only covered the silence it measured (rate x gap, gap = the period)
 * was a fixed point at any rate, and the download stayed at 4 blocks a burst, 128 KiB/s.
 */
static void test_sim_bursty_recovers(void **state)
{
	(void)state;
	struct sim s;
	/* Slow for long enough that slow-start is over and the queue has settled to the slow
	 * rate (the peer's requests are served at the rate of when they were asked). */
	sim_init(&s, 128 * 1024, 0.001, 0.5);
	sim_run(&s, 12);
	size_t low = bt_pipeline_target(&s.pl);
	s.rate = 2 * MIB;
	double share = sim_share(&s, 22, 32);
	print_message("bursty, 2 MiB/s after 12 s at 128 KiB/s: %.3f of the rate, target %zu "
		      "(was %zu)\n",
		      share, bt_pipeline_target(&s.pl), low);
	assert_true(share > 0.9);
	bt_pipeline_deinit(&s.pl);
}

/*
 * The torrent refills in batches. A slow, distant peer (512 KiB/s at 250 ms: a target of 16, 8
 * of them the round trip) kept its whole rate only when the batch waits for no more than the
 * round trip's blocks and a quarter of the target to be out, not half the target; a loopback
 * peer still gets its batches of half the target.
 */
static void test_sim_refill_batches(void **state)
{
	(void)state;
	struct sim at, half;
	sim_init(&at, 512 * 1024, 0.250, 0);
	at.refill = REFILL_AT;
	sim_init(&half, 512 * 1024, 0.250, 0);
	half.refill = REFILL_HALF;
	double share_at = sim_share(&at, 10, 20), share_half = sim_share(&half, 10, 20);
	print_message("512 KiB/s, 250 ms: %.3f of the rate (refill at %zu of %zu), %.3f at half\n",
		      share_at, bt_pipeline_refill_at(&at.pl), bt_pipeline_target(&at.pl),
		      share_half);
	assert_true(share_at > 0.97);
	assert_true(bt_pipeline_refill_at(&at.pl) >= 10);
	assert_true(bt_pipeline_refill_at(&at.pl) < bt_pipeline_target(&at.pl));
	bt_pipeline_deinit(&at.pl);
	bt_pipeline_deinit(&half.pl);

	/* Before the first sample: topped up 4 at a time, and a peer whose round trip is nearly
	 * the whole start target (3.5 MiB/s at 120 ms: 27 blocks of 32) keeps its pipe full. */
	struct sim start, start_half;
	sim_init(&start, 3.5 * MIB, 0.120, 0);
	start.refill = REFILL_AT;
	assert_int_equal(bt_pipeline_refill_at(&start.pl), BT_PIPELINE_START_TARGET - 4);
	sim_init(&start_half, 3.5 * MIB, 0.120, 0);
	start_half.refill = REFILL_HALF;
	double first = sim_share(&start, 0.2, 0.99), first_half = sim_share(&start_half, 0.2, 0.99);
	print_message(
		"3.5 MiB/s, 120 ms, before the first sample: %.3f of the rate, %.3f at half\n",
		first, first_half);
	assert_true(first > 0.97);
	bt_pipeline_deinit(&start.pl);
	bt_pipeline_deinit(&start_half.pl);

	struct sim lo;
	sim_init(&lo, 200 * MIB, 0.0001, 0);
	lo.refill = REFILL_AT;
	sim_run(&lo, 0.5); /* a short round trip, before the first sample: batches of half */
	assert_int_equal(bt_pipeline_refill_at(&lo.pl), BT_PIPELINE_START_TARGET / 2);
	sim_run(&lo, 8);
	size_t t = bt_pipeline_target(&lo.pl);
	assert_int_equal(bt_pipeline_refill_at(&lo.pl), t / 2);
	/* A loaded loopback: 200 MiB/s with a "round trip" of 5 ms (64 blocks) still refills
	 * in batches of an eighth of the target or more, not a block at a time. */
	lo.pl.rtt = 0.005;
	size_t t5 = bt_pipeline_target(&lo.pl), at5 = bt_pipeline_refill_at(&lo.pl);
	assert_true(t5 >= 64);
	assert_true(at5 <= t5 - t5 / 8);
	assert_true(at5 > t5 / 2);
	bt_pipeline_deinit(&lo.pl);
}

/* The product as bt_pipeline_target computes it from the smoothed rate, unclamped. */
static double product_of(const struct bt_pipeline *pl)
{
	double bps = bt_pipeline_rate(pl) / BT_BLOCK_SIZE, trip = bps * pl->rtt;
	double cap = fmax(BT_PIPELINE_HEADROOM - trip, BT_PIPELINE_HEADROOM / 2);
	double headroom = fmin(bps / 4, cap);
	return trip + fmax(bps * pl->gap, headroom);
}

/* 12 MiB/s at 150 ms (a product of 115 blocks): while the rate rises, slow-start asks for more
 * than the lagging average's product, and the pipe fills sooner. */
static void test_sim_slow_start(void **state)
{
	(void)state;
	struct sim s;
	sim_init(&s, 12 * MIB, 0.150, 0);
	assert_int_equal(bt_pipeline_target(&s.pl), BT_PIPELINE_START_TARGET);
	size_t at[6];
	double prod[6];
	for (int sec = 1; sec <= 5; sec++) {
		sim_run(&s, sec + 0.01);
		at[sec] = bt_pipeline_target(&s.pl);
		prod[sec] = product_of(&s.pl);
		print_message("second %d: target %zu, product %.0f, slow-start %d\n", sec, at[sec],
			      prod[sec], s.pl.slow_start);
	}
	assert_true(at[2] > 1.3 * prod[2]);
	assert_true(at[3] >= 115);
	assert_false(s.pl.slow_start); /* over once the rate stopped rising */
	double share = sim_share(&s, 10, 20);
	print_message("12 MiB/s, 150 ms: %.3f of the rate, target %zu\n", share,
		      bt_pipeline_target(&s.pl));
	assert_true(share > 0.97);
	bt_pipeline_deinit(&s.pl);
}

/* The peer slows from 4 MiB/s to 256 KiB/s: the queue shrinks with it. */
static void test_sim_rate_drops(void **state)
{
	(void)state;
	struct sim s;
	sim_init(&s, 4 * MIB, 0.100, 0);
	sim_run(&s, 15);
	size_t before = bt_pipeline_target(&s.pl);
	s.rate = 256 * 1024;
	sim_run(&s, 40);
	size_t after = bt_pipeline_target(&s.pl);
	print_message("4 MiB/s: target %zu; 256 KiB/s: target %zu\n", before, after);
	assert_true(before >= 40);
	assert_true(after <= 12);
	assert_true(after >= 2); /* still the product: 1.6 blocks */
	bt_pipeline_deinit(&s.pl);
}

/* A slow peer does not hoard blocks; a loopback one gets the headroom, not hundreds. */
static void test_sim_extremes(void **state)
{
	(void)state;
	struct sim slow;
	sim_init(&slow, 32 * 1024, 0.100, 0);
	sim_run(&slow, 20);
	assert_int_equal(bt_pipeline_target(&slow.pl), BT_PIPELINE_MIN_TARGET);
	bt_pipeline_deinit(&slow.pl);

	struct sim lo;
	sim_init(&lo, 200 * MIB, 0.0001, 0);
	sim_run(&lo, 8);
	size_t t = bt_pipeline_target(&lo.pl);
	print_message("loopback 200 MiB/s: target %zu\n", t);
	/* The headroom, the simulation's millisecond steps (a 1 ms "round trip") within it; not
	 * the hundreds the cap would allow. */
	assert_true(t >= BT_PIPELINE_HEADROOM - 1 && t <= BT_PIPELINE_HEADROOM + 1);
	bt_pipeline_deinit(&lo.pl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_find_remove_take),
		cmocka_unit_test(test_has_requested),
		cmocka_unit_test(test_cancelled_await_one_answer),
		cmocka_unit_test(test_request_timer),
		cmocka_unit_test(test_target_before_rate),
		cmocka_unit_test(test_target_from_rate),
		cmocka_unit_test(test_smoothing),
		cmocka_unit_test(test_delay_sample),
		cmocka_unit_test(test_reqq_limit),
		cmocka_unit_test(test_sim_covers_bdp),
		cmocka_unit_test(test_sim_bursty),
		cmocka_unit_test(test_sim_bursty_recovers),
		cmocka_unit_test(test_sim_slow_start),
		cmocka_unit_test(test_sim_rate_drops),
		cmocka_unit_test(test_sim_extremes),
		cmocka_unit_test(test_sim_refill_batches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
