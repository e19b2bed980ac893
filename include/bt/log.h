/*
 * log: the engine's diagnostics. The engine never prints: modules call bt_log with a level, a
 * subject ("peer 1.2.3.4:5", "tracker <url>") and a one-line message, and the front door decides
 * where lines go and which levels it wants (bt_log_set_sink, bt_log_set_level). Without a sink,
 * lines at or above the level go to stderr as "torrent: <subject>: <message>". Single-threaded,
 * like the rest of the engine.
 */
#ifndef BT_LOG_H
#define BT_LOG_H

#include "bt/util.h"

enum bt_log_level {
	BT_LOG_DEBUG, /* per-peer chatter: shown with --verbose */
	BT_LOG_INFO,
	BT_LOG_WARN, /* something failed that the engine works around (a tracker, say) */
	BT_LOG_ERROR,
};

typedef void (*bt_log_sink_fn)(void *arg, enum bt_log_level level, const char *subject,
			       const char *message);

/* Lines below `level` are dropped before they are formatted. The default is BT_LOG_INFO. */
void bt_log_set_level(enum bt_log_level level);
bool bt_log_enabled(enum bt_log_level level);
/* NULL restores the default sink (stderr). */
void bt_log_set_sink(bt_log_sink_fn fn, void *arg);

void bt_log(enum bt_log_level level, const char *subject, const char *fmt, ...) BT_PRINTF(3, 4);

#endif
