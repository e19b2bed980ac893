/*
 * webseed: one web seed URL (BEP 19) as a block source beside the peers. It owns the URL's
 * state (fetching, backing off after a failure, dropped for good) and at most
 * BT_WEBSEED_MAX_CONNS runs in flight, each a run of whole pieces that its owner (the torrent)
 * has claimed from the picker. URLs on one server (scheme, host and port) share a
 * struct bt_webseed_server, which caps the runs in flight to that server over all of them at
 * BT_WEBSEED_MAX_PER_SERVER: a torrent listing a mirror's URL several times, or several
 * directories of one host, does not open more connections to it than one URL would. A run becomes
 * one ranged GET per file it crosses, through the session's http (libcurl multi on the loop); BEP
 * 47 pad files are zeros and never requested. The body is streamed into the owner's piece buffers
 * as it arrives; a 206 must start where we asked, a 200 (a server that ignores Range) is skipped up
 * to the offset. Verification is the owner's: it drops the URL when a piece from it fails.
 *
 * Callbacks: buffer and piece_filled run inside curl's write callback, so they only record
 * (no cancel, no free); run_done runs from the loop (http's done, or bt_webseed_drop).
 */
#ifndef BT_WEBSEED_H
#define BT_WEBSEED_H

#include "bt/metainfo.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BT_WEBSEED_MAX_CONNS 2
/* Runs in flight to one server, over all the URLs that name it. */
#define BT_WEBSEED_MAX_PER_SERVER 2
/* Longest wait after failures (Retry-After may ask for more, up to an hour). */
#define BT_WEBSEED_MAX_BACKOFF_S 300

struct bt_http;
struct bt_webseed;

struct bt_webseed_events {
	/* The buffer of a piece of a running run, or NULL if the piece is no longer wanted. */
	uint8_t *(*buffer)(void *arg, uint32_t piece);
	/* Every byte of the piece is in its buffer (pad bytes zeroed). */
	void (*piece_filled)(void *arg, struct bt_webseed *ws, uint32_t piece);
	/* Body bytes received from the server (skipped ones included). */
	void (*bytes)(void *arg, struct bt_webseed *ws, size_t n);
	/*
	 * The run ended; pieces [first, first + count) were not filled and go back to the picker
	 * (count 0 when all were). error is 0 or a negative errno-style code, with msg.
	 */
	void (*run_done)(void *arg, struct bt_webseed *ws, uint32_t first, uint32_t count,
			 int error, const char *msg);
};

/*
 * The runs in flight to one server, shared by the web seeds whose URLs name it. Plain data,
 * owned by whoever groups the URLs (bt_webseed_server_key); it outlives its web seeds.
 */
struct bt_webseed_server {
	unsigned runs;
};

/*
 * m and server outlive the web seed; url is copied. server NULL: the URL is alone on its
 * server (only BT_WEBSEED_MAX_CONNS applies).
 */
struct bt_webseed *bt_webseed_new(struct bt_http *http, const char *url,
				  const struct bt_metainfo *m, struct bt_webseed_server *server,
				  const struct bt_webseed_events *ev, void *arg);
/* Cancels its requests (run_done is not called). */
void bt_webseed_free(struct bt_webseed *ws);

const char *bt_webseed_url(const struct bt_webseed *ws);
/*
 * May be given another run now: not dropped, not backing off, a connection free for the URL
 * and for its server.
 */
bool bt_webseed_ready(const struct bt_webseed *ws, double now);
bool bt_webseed_dropped(const struct bt_webseed *ws);
/* Runs in flight. */
size_t bt_webseed_runs(const struct bt_webseed *ws);
/*
 * Starts fetching pieces [first, first + count), whose buffers the owner has started.
 * Returns 0, -EBUSY when not ready, or -EINVAL for an empty or out-of-range run.
 */
int bt_webseed_fetch(struct bt_webseed *ws, uint32_t first, uint32_t count, double now);
/*
 * Gives up on the URL for good (why goes to the log; NULL: quietly): runs are cancelled and
 * reported through run_done. Not from inside the buffer or piece_filled callbacks.
 */
void bt_webseed_drop(struct bt_webseed *ws, const char *why);

/*
 * The URL of file index `file` of m under web seed `base`: single-file, base itself, or base
 * plus the escaped name when it ends in '/'; multi-file, base/name/path with each component
 * percent-encoded (RFC 3986 unreserved characters kept). Returns a new string.
 */
char *bt_webseed_file_url(const char *base, const struct bt_metainfo *m, size_t file);

/*
 * What makes two URLs the same server for the cap: "scheme://host:port", scheme and host in
 * lower case, the scheme's default port filled in, user info, path, query and fragment left
 * out. Names are compared, not addresses (a host under two names counts as two servers).
 * Returns a new string, or NULL when url is not http(s):// with a host and a valid port.
 */
char *bt_webseed_server_key(const char *url);

/* The backoff after `fails` consecutive failures, jitter in [0, 1) spreading it by +-25%. */
double bt_webseed_backoff(unsigned fails, double jitter);

#endif
