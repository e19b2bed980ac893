/*
 * flusher: starts the kernel's writeback of a file's dirty pages early, from a thread of its
 * own, so that the fsync that makes a finished download durable has little left to write.
 *
 * Why a thread: sync_file_range(SYNC_FILE_RANGE_WRITE) submits the writeback in the calling
 * thread (building and queueing the bios is CPU work, and it blocks when the device's queue is
 * full). Called from the event loop after each piece it made the download slower; here it runs
 * beside the loop, on the other core, while the loop goes on receiving. The loop hands over a
 * dup()ed descriptor and never waits: the thread owns what it is given and shares nothing else
 * (a mutex-guarded ring of descriptors). It only starts writeback; durability is still the
 * owner's fsync, which then waits for what is under way and writes what is left.
 *
 * Best effort: a full ring, a failed dup or a failed call only mean more work for the fsync.
 */
#ifndef BT_FLUSHER_H
#define BT_FLUSHER_H

#include <stddef.h>

struct bt_flusher;

/* The thread is started on the first submit. */
struct bt_flusher *bt_flusher_new(void);
/* Stops the thread (after the request it is running; queued ones are dropped) and frees. */
void bt_flusher_free(struct bt_flusher *f);

/* Starts writeback of all of fd's file, later, in the thread; fd is not taken (it is dup()ed). */
void bt_flusher_submit(struct bt_flusher *f, int fd);

/* Requests carried out so far (tests). */
size_t bt_flusher_done(struct bt_flusher *f);

#endif
