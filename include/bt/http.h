/*
 * http: HTTP(S) GETs on the session's event loop through libcurl's multi interface, as curl
 * documents for event libraries: curl tells us which sockets to watch (socket callback) and when
 * to wake it (timer callback, which only arms one libevent timer); libevent events call
 * curl_multi_socket_action; finished transfers are drained from curl_multi_info_read, removed and
 * cleaned up, and only then is the caller's callback run. No threads of ours, no blocking call.
 *
 * Every transfer is bounded: reply size (counted on decoded bytes, so a gzip bomb stops at the
 * cap), total and connect time, at most a few redirects, and only http and https, for the first
 * URL and every redirect. Owned by the session; callers hold a request only until its callback
 * runs or they cancel it.
 */
#ifndef BT_HTTP_H
#define BT_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct bt_http;
struct bt_http_req;

/*
 * A streaming sink: the body goes here as it arrives instead of into a buffer. status is the
 * final response's (after redirects); range_start is the first byte of a 206's Content-Range, or
 * -1 when the server sent no range (a 200 to a ranged request carries the whole resource). Return
 * 0 to go on, BT_HTTP_SINK_ENOUGH to end the transfer as a success (the rest is not wanted), or
 * a negative errno-style code to abort it (done then gets that code). The sink must not cancel
 * requests or free what the http module owns: it runs inside curl.
 */
#define BT_HTTP_SINK_ENOUGH 1
typedef int (*bt_http_sink_fn)(void *arg, long status, int64_t range_start, const uint8_t *p,
			       size_t len);

struct bt_http_opts {
	size_t max_body;	 /* bytes after decoding; 0: 1 MiB; with a sink: not applied */
	long timeout_ms;	 /* whole transfer; 0: 30 s */
	long connect_timeout_ms; /* 0: 10 s */
	const char *ca_file;	 /* PEM certificates to trust for HTTPS; NULL: the system's */
	const char *source_ip;	 /* leave from this local address; NULL: the system's choice */
	int64_t range_first;	 /* with range_len > 0: ask for bytes [first, first + len) */
	int64_t range_len;
	bt_http_sink_fn sink; /* NULL: the body is buffered and handed to done */
	void *sink_arg;
	size_t recv_buffer; /* curl's receive buffer (bytes per read and per sink call); 0: its own
			     */
};

struct bt_http_response {
	int error;	     /* 0, or a negative errno-style code; message says what happened */
	long status;	     /* the HTTP status of the last response, 0 if none */
	const uint8_t *body; /* valid only during the callback */
	size_t len;
	const char *message;  /* on error: "timed out after 5000 ms", "reply larger than ..." */
	const char *local_ip; /* where the last connection left from (numeric), or "" if none */
	long retry_after_s;   /* the last response's Retry-After in seconds, or -1 if none */
};

typedef void (*bt_http_done_fn)(const struct bt_http_response *res, void *arg);

struct bt_http *bt_http_new(struct event_base *base);
/* Cancels every transfer still running (their callbacks are not called). */
void bt_http_free(struct bt_http *h);

/*
 * Starts a GET. done runs exactly once, from the event loop (never from inside this call),
 * unless the request is cancelled first. opts may be NULL. Returns NULL only for a URL that is
 * not http:// or https:// (done is then not called).
 */
struct bt_http_req *bt_http_get(struct bt_http *h, const char *url, const struct bt_http_opts *opts,
				bt_http_done_fn done, void *arg);
/* Stops a transfer whose callback has not run yet; its callback will not run. */
void bt_http_cancel(struct bt_http_req *req);
/* Transfers in flight. */
size_t bt_http_active(const struct bt_http *h);

#endif
