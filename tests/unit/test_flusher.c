#include "bt/flusher.h"

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static size_t open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	size_t n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int temp_file(size_t bytes)
{
	char path[] = "/tmp/test_flusher_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	char *buf = calloc(1, bytes);
	assert_non_null(buf);
	memset(buf, 'x', bytes);
	assert_int_equal(write(fd, buf, bytes), (ssize_t)bytes);
	free(buf);
	return fd;
}

static void wait_done(struct bt_flusher *f, size_t n)
{
	for (int i = 0; i < 1000 && bt_flusher_done(f) < n; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(bt_flusher_done(f), n);
}

/* A request is carried out in the thread; the caller's descriptor stays its own and usable. */
static void test_request_carried_out(void **state)
{
	(void)state;
	size_t before = open_fds();
	int fd = temp_file(1 << 20);
	struct bt_flusher *f = bt_flusher_new();
	assert_int_equal(bt_flusher_done(f), 0);
	bt_flusher_submit(f, fd);
	wait_done(f, 1);
	bt_flusher_submit(f, fd);
	wait_done(f, 2);
	assert_int_equal(write(fd, "y", 1), 1); /* still open: the thread closed its own copy */
	bt_flusher_free(f);
	close(fd);
	assert_int_equal(open_fds(), before);
}

/* Freed with requests queued (more than the ring holds): every copy is closed, none leaks. */
static void test_free_with_queue(void **state)
{
	(void)state;
	size_t before = open_fds();
	int fd = temp_file(4 << 20);
	for (int round = 0; round < 5; round++) {
		struct bt_flusher *f = bt_flusher_new();
		for (int i = 0; i < 100; i++)
			bt_flusher_submit(f, fd);
		bt_flusher_free(f);
	}
	/* Never started: nothing to stop. */
	bt_flusher_free(bt_flusher_new());
	bt_flusher_free(NULL);
	close(fd);
	assert_int_equal(open_fds(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_carried_out),
		cmocka_unit_test(test_free_with_queue),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
