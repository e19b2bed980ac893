#include "bt/log.h"

#include <stdarg.h>
#include <stdio.h>

static enum bt_log_level min_level = BT_LOG_INFO;
static bt_log_sink_fn sink;
static void *sink_arg;

void bt_log_set_level(enum bt_log_level level)
{
	min_level = level;
}

bool bt_log_enabled(enum bt_log_level level)
{
	return level >= min_level;
}

void bt_log_set_sink(bt_log_sink_fn fn, void *arg)
{
	sink = fn;
	sink_arg = arg;
}

void bt_log(enum bt_log_level level, const char *subject, const char *fmt, ...)
{
	if (level < min_level)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (sink)
		sink(sink_arg, level, subject, msg);
	else
		fprintf(stderr, "torrent: %s: %s\n", subject, msg);
}
