#include "bt/flusher.h"

#include "bt/util.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

/* Requests waiting at most; more are dropped (the fsync will do their work). */
#define RING 32

struct bt_flusher {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool started, stop;
	int ring[RING];
	size_t head, count, done;
};

static void *run(void *arg)
{
	struct bt_flusher *f = arg;
	pthread_mutex_lock(&f->lock);
	for (;;) {
		while (!f->stop && !f->count)
			pthread_cond_wait(&f->wake, &f->lock);
		if (f->stop)
			break;
		int fd = f->ring[f->head];
		f->head = (f->head + 1) % RING;
		f->count--;
		pthread_mutex_unlock(&f->lock);
		/* Offset 0, length 0: the whole file; WRITE alone: start it, do not wait. */
		(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		close(fd);
		pthread_mutex_lock(&f->lock);
		f->done++;
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

struct bt_flusher *bt_flusher_new(void)
{
	struct bt_flusher *f = bt_xcalloc(1, sizeof *f);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->wake, NULL);
	return f;
}

void bt_flusher_free(struct bt_flusher *f)
{
	if (!f)
		return;
	if (f->started) {
		pthread_mutex_lock(&f->lock);
		f->stop = true;
		pthread_cond_signal(&f->wake);
		pthread_mutex_unlock(&f->lock);
		pthread_join(f->thread, NULL);
	}
	for (; f->count; f->count--, f->head = (f->head + 1) % RING)
		close(f->ring[f->head]);
	pthread_cond_destroy(&f->wake);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void bt_flusher_submit(struct bt_flusher *f, int fd)
{
	if (!f->started) {
		if (pthread_create(&f->thread, NULL, run, f) != 0)
			return; /* no thread: the fsync does it all, as without a flusher */
		f->started = true;
	}
	pthread_mutex_lock(&f->lock);
	if (f->count < RING) {
		int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (copy >= 0) {
			f->ring[(f->head + f->count) % RING] = copy;
			f->count++;
			pthread_cond_signal(&f->wake);
		}
	}
	pthread_mutex_unlock(&f->lock);
}

size_t bt_flusher_done(struct bt_flusher *f)
{
	pthread_mutex_lock(&f->lock);
	size_t n = f->done;
	pthread_mutex_unlock(&f->lock);
	return n;
}
