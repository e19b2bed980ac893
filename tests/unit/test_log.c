#include "bt/log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

struct seen {
	int count;
	enum bt_log_level level;
	char subject[64], message[600];
};

static void sink(void *arg, enum bt_log_level level, const char *subject, const char *message)
{
	struct seen *s = arg;
	s->count++;
	s->level = level;
	snprintf(s->subject, sizeof s->subject, "%s", subject);
	snprintf(s->message, sizeof s->message, "%s", message);
}

static void test_levels_and_sink(void **state)
{
	(void)state;
	struct seen s = {0};
	bt_log_set_sink(sink, &s);
	bt_log_set_level(BT_LOG_INFO);
	bt_log(BT_LOG_DEBUG, "peer 1.2.3.4:5", "dropped below the level");
	assert_int_equal(s.count, 0);
	assert_false(bt_log_enabled(BT_LOG_DEBUG));
	bt_log(BT_LOG_WARN, "tracker http://x/", "HTTP status %d", 404);
	assert_int_equal(s.count, 1);
	assert_int_equal(s.level, BT_LOG_WARN);
	assert_string_equal(s.subject, "tracker http://x/");
	assert_string_equal(s.message, "HTTP status 404");
	bt_log_set_level(BT_LOG_DEBUG);
	assert_true(bt_log_enabled(BT_LOG_DEBUG));
	bt_log(BT_LOG_DEBUG, "peer 1.2.3.4:5", "closed: %s", "connection reset");
	assert_int_equal(s.count, 2);
	assert_string_equal(s.message, "closed: connection reset");
	/* A long message is cut, never overflowed. */
	char big[2000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	bt_log(BT_LOG_ERROR, "s", "%s", big);
	assert_int_equal(s.count, 3);
	assert_true(strlen(s.message) < sizeof big - 1);
	bt_log_set_sink(NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_levels_and_sink),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
