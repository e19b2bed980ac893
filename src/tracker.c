#include "bt/tracker.h"

#include "bt/hash.h"

#include <event2/event.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tracker_state {
	IDLE,	  /* not started, or stopped */
	RUNNING,  /* announcing on schedule */
	STOPPING, /* the stopped announce is in flight */
};

struct bt_tracker {
	struct event_base *base;
	struct bt_announce_io io;
	struct bt_tier_list tiers;
	struct bt_announce_req req;
	struct bt_tracker_opts opts;
	struct bt_tracker_events events;
	void *arg;
	enum tracker_state state;
	enum bt_tracker_event pending_event; /* sent until a tracker takes it */
	struct bt_announce *inflight;
	struct event *timer;
	double next_at;	    /* monotonic time of the scheduled announce, or -1 */
	double min_next_at; /* not before this, unless an event must go out */
	char *working_url;
	bool ever_answered;
	bool completed_after_start; /* completed came before any tracker took `started` */
	bool backing_off; /* every URL failed: wait out the backoff, even for need_peers */
	char status[320]; /* the last outcome, for a user's error message */
};

static uint32_t random_u32(void *arg)
{
	(void)arg;
	uint32_t v;
	bt_random_bytes(&v, sizeof v);
	return v;
}

static void schedule(struct bt_tracker *t, double seconds)
{
	struct timeval tv;
	t->next_at = bt_now() + seconds;
	evtimer_add(t->timer, bt_timeval(&tv, seconds));
}

static void announce_now(struct bt_tracker *t);

/* One URL failed: try the next one, or after a whole round of failures, back off. */
static void attempt_failed(struct bt_tracker *t, const char *url, const char *error)
{
	snprintf(t->status, sizeof t->status, "%s: %s", url, error);
	if (t->events.error)
		t->events.error(t->arg, url, error);
	if (bt_tiers_failed(&t->tiers)) {
		uint32_t r = random_u32(NULL);
		t->backing_off = true;
		schedule(t, bt_tracker_backoff(t->tiers.failed_rounds, r / 4294967296.0));
	} else {
		schedule(t, 0); /* the next URL, from the loop */
	}
}

static void on_tracker_done(const char *url, const struct bt_announce_reply *reply,
			    const char *error, void *arg)
{
	struct bt_tracker *t = arg;
	t->inflight = NULL;
	if (t->state == STOPPING) {
		evtimer_del(t->timer);
		t->state = IDLE;
		if (t->events.stopped)
			t->events.stopped(t->arg);
		return;
	}
	evtimer_del(t->timer); /* the attempt's time limit */
	if (error) {
		attempt_failed(t, url, error);
		return;
	}
	bt_tiers_succeeded(&t->tiers);
	t->backing_off = false;
	snprintf(t->status, sizeof t->status, "%s: answered with %zu peers", url,
		 reply->peer_count);
	free(t->working_url);
	t->working_url = bt_xstrdup(url);
	t->ever_answered = true;
	t->pending_event = BT_TRACKER_EVENT_NONE;
	if (t->completed_after_start) {
		t->completed_after_start = false;
		t->pending_event = BT_TRACKER_EVENT_COMPLETED;
	}
	double interval =
		bt_tracker_interval(reply->interval, reply->min_interval, t->opts.min_interval_s);
	double min_gap =
		reply->min_interval > 0 ? (double)reply->min_interval : t->opts.min_interval_s;
	t->min_next_at = bt_now() + (min_gap < interval ? min_gap : interval);
	schedule(t, t->pending_event ? 0 : interval);
	if (reply->peer_count && t->events.peers)
		t->events.peers(t->arg, reply->peers, reply->peer_count, &reply->self);
}

static void announce_now(struct bt_tracker *t)
{
	evtimer_del(t->timer);
	t->next_at = -1;
	bt_announce_cancel(t->inflight);
	t->inflight = NULL;
	const char *url = bt_tiers_current(&t->tiers);
	if (!url)
		return;
	t->req.event = t->pending_event;
	struct bt_err err;
	t->inflight = bt_announce_start(&t->io, url, &t->req, t->opts.attempt_timeout_ms,
					on_tracker_done, t, &err);
	if (!t->inflight) {
		/* A URL we cannot use at all counts as a failure of that URL. */
		attempt_failed(t, url, err.msg);
		return;
	}
	snprintf(t->status, sizeof t->status, "%s: no reply yet", url);
	/* Bound every attempt (UDP has no limit of its own short of BEP 15's minutes). */
	long ms = t->opts.attempt_timeout_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(t->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bt_tracker *t = arg;
	if (t->state == STOPPING) {
		/* The stopped announce took too long: give up on it. */
		bt_announce_cancel(t->inflight);
		t->inflight = NULL;
		t->state = IDLE;
		if (t->events.stopped)
			t->events.stopped(t->arg);
		return;
	}
	if (t->inflight) {
		/* The attempt ran out of time. */
		char url[256], msg[64];
		snprintf(url, sizeof url, "%s", bt_tiers_current(&t->tiers));
		snprintf(msg, sizeof msg, "no reply within %ld s",
			 t->opts.attempt_timeout_ms / 1000);
		bt_announce_cancel(t->inflight);
		t->inflight = NULL;
		attempt_failed(t, url, msg);
		return;
	}
	announce_now(t);
}

struct bt_tracker *bt_tracker_new(struct event_base *base, const struct bt_announce_io *io,
				  const struct bt_meta_tier *tiers, size_t tier_count,
				  const struct bt_announce_req *req,
				  const struct bt_tracker_opts *opts,
				  const struct bt_tracker_events *events, void *arg)
{
	struct bt_tracker *t = bt_xcalloc(1, sizeof *t);
	t->base = base;
	t->io = *io;
	bt_tiers_init(&t->tiers, tiers, tier_count, random_u32, NULL);
	t->req = *req;
	if (opts)
		t->opts = *opts;
	if (t->opts.min_interval_s <= 0)
		t->opts.min_interval_s = 60;
	if (t->opts.attempt_timeout_ms <= 0)
		t->opts.attempt_timeout_ms = 20000;
	if (t->opts.stop_timeout_s <= 0)
		t->opts.stop_timeout_s = 2;
	t->events = *events;
	t->arg = arg;
	t->next_at = -1;
	t->timer = evtimer_new(base, on_timer, t);
	if (!t->timer)
		bt_oom();
	return t;
}

void bt_tracker_free(struct bt_tracker *t)
{
	if (!t)
		return;
	bt_announce_cancel(t->inflight);
	event_free(t->timer);
	bt_tiers_deinit(&t->tiers);
	free(t->working_url);
	free(t);
}

void bt_tracker_update(struct bt_tracker *t, int64_t uploaded, int64_t downloaded, int64_t left)
{
	t->req.uploaded = uploaded;
	t->req.downloaded = downloaded;
	t->req.left = left;
}

void bt_tracker_start(struct bt_tracker *t)
{
	t->state = RUNNING;
	t->pending_event = BT_TRACKER_EVENT_STARTED;
	announce_now(t);
}

void bt_tracker_completed(struct bt_tracker *t)
{
	if (t->state != RUNNING)
		return;
	/* If `started` has not got through, the tracker has not seen us: say started first. */
	if (t->pending_event == BT_TRACKER_EVENT_STARTED) {
		t->completed_after_start = true;
		return;
	}
	t->pending_event = BT_TRACKER_EVENT_COMPLETED;
	announce_now(t);
}

void bt_tracker_need_peers(struct bt_tracker *t)
{
	if (t->state != RUNNING || t->inflight || t->backing_off || bt_now() < t->min_next_at)
		return;
	announce_now(t);
}

void bt_tracker_stop(struct bt_tracker *t)
{
	evtimer_del(t->timer);
	t->next_at = -1;
	bt_announce_cancel(t->inflight);
	t->inflight = NULL;
	if (t->state != RUNNING || !t->ever_answered) {
		t->state = IDLE;
		if (t->events.stopped)
			t->events.stopped(t->arg);
		return;
	}
	t->state = STOPPING;
	t->req.event = BT_TRACKER_EVENT_STOPPED;
	t->req.numwant = 0;
	t->inflight =
		bt_announce_start(&t->io, t->working_url, &t->req,
				  (long)(t->opts.stop_timeout_s * 1000), on_tracker_done, t, NULL);
	if (!t->inflight) {
		t->state = IDLE;
		if (t->events.stopped)
			t->events.stopped(t->arg);
		return;
	}
	struct timeval tv;
	bt_timeval(&tv, t->opts.stop_timeout_s);
	evtimer_add(t->timer, &tv);
}

double bt_tracker_next_in(const struct bt_tracker *t)
{
	if (t->next_at < 0)
		return -1;
	double d = t->next_at - bt_now();
	return d < 0 ? 0 : d;
}

const char *bt_tracker_working_url(const struct bt_tracker *t)
{
	return t->working_url;
}

void bt_tracker_set_port(struct bt_tracker *t, uint16_t port)
{
	t->req.port = port;
}

const char *bt_tracker_status(const struct bt_tracker *t)
{
	return t->status[0] ? t->status : "not asked yet";
}
