/*
 * peer_io: one peer connection's transport (TCP now, uTP later). It owns the socket (closed by
 * bt_peer_io_free), the non-blocking connect (optionally from a source address), the input and
 * output buffers, the reads and the writes, and the accounting against the shared download and
 * upload rate buckets. It knows nothing of the protocol: it reports upward only through struct
 * bt_peer_io_events and never calls peer code. Its one user is the peer (src/peer.c).
 *
 * Reads: each wake-up reads with readv straight into the input buffer's free space (no FIONREAD
 * probe), at most a few times, within what the download bucket allows. While a stream is set
 * (bt_peer_io_stream), the next bytes go straight to the stream's destination instead, so a
 * block's body is never copied through the input buffer; `streamed` reports when it is full.
 *
 * Writes: output queued during one pass of the loop goes out in one write, from a flush event
 * made active by bt_peer_io_schedule_flush; write interest is asked for only while the socket is
 * full. Before and after each write the user is offered `room` to add more (uploads are pulled).
 *
 * Failures (connect, read, write, EOF) are reported once through `closed` from the loop, never
 * from inside a call the user made. After bt_peer_io_stop the object does nothing more but
 * keeps its socket until it is freed; the user may call stop from inside any of its callbacks.
 */
#ifndef BT_PEER_IO_H
#define BT_PEER_IO_H

#include "bt/ratelimit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct evbuffer;
struct bt_peer_io;

/* Every callback may be NULL. */
struct bt_peer_io_events {
	/* An outgoing connection is up: reading has started, queued output is being sent. */
	void (*connected)(void *arg);
	/* New bytes arrived: in the input buffer, or in the stream's destination, or both. */
	void (*readable)(void *arg);
	/* The stream set with bt_peer_io_stream has all its bytes in place. */
	void (*streamed)(void *arg);
	/* The output has room (bt_peer_io_has_room) or the upload bucket refilled: add more. */
	void (*room)(void *arg);
	/* The connection failed or the remote closed it; reason is one line. The io is stopped. */
	void (*closed)(void *arg, const char *reason);
};

struct bt_peer_io_config {
	const struct sockaddr *bind_addr; /* source address for outgoing connections; NULL */
	socklen_t bind_len;
	struct bt_rate_limit *down_limit; /* shared buckets; NULL: unlimited */
	struct bt_rate_limit *up_limit;
};

/* Starts connecting to sa; a failure, even an immediate one, is reported from the loop. */
struct bt_peer_io *bt_peer_io_connect(struct event_base *base, const struct sockaddr *sa,
				      socklen_t sa_len, const struct bt_peer_io_config *cfg,
				      const struct bt_peer_io_events *ev, void *arg);
/* Takes over a connected socket (made non-blocking here) and starts reading. */
struct bt_peer_io *bt_peer_io_adopt(struct event_base *base, int fd,
				    const struct bt_peer_io_config *cfg,
				    const struct bt_peer_io_events *ev, void *arg);
void bt_peer_io_free(struct bt_peer_io *io);

/* Stops all I/O and callbacks for good; the socket stays open until bt_peer_io_free. */
void bt_peer_io_stop(struct bt_peer_io *io);
bool bt_peer_io_stopped(const struct bt_peer_io *io);

const char *bt_peer_io_name(const struct bt_peer_io *io); /* "127.0.0.1:6881" or "fd 7" */

/* Received bytes not yet consumed. The user drains what it has used. */
struct evbuffer *bt_peer_io_input(struct bt_peer_io *io);
/* Bytes to send. After adding to it, call bt_peer_io_schedule_flush. */
struct evbuffer *bt_peer_io_output(struct bt_peer_io *io);
/* Sends the output from the loop, together with whatever else is queued in this pass. */
void bt_peer_io_schedule_flush(struct bt_peer_io *io);
/* Writes what the socket takes now (for a last message before stopping). */
void bt_peer_io_flush(struct bt_peer_io *io);
/* True while little enough waits to be sent that producing more is worth it. */
bool bt_peer_io_has_room(const struct bt_peer_io *io);
/* Takes n bytes from the upload bucket, all or nothing. On false, `room` is called when the
 * bucket has refilled. */
bool bt_peer_io_take_upload(struct bt_peer_io *io, size_t n);

/*
 * The next `len` bytes of the connection go to dest: first what the input buffer already holds
 * (moved out of it), then straight from the socket. Requires that the input buffer hold fewer
 * than len bytes, and no stream be active. `streamed` reports completion.
 */
void bt_peer_io_stream(struct bt_peer_io *io, uint8_t *dest, size_t len);
/* The active stream's remaining bytes are read and dropped; dest is no longer written. */
void bt_peer_io_stream_drop(struct bt_peer_io *io);
bool bt_peer_io_streaming(const struct bt_peer_io *io);

#endif
