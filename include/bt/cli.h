/*
 * cli: what the command front doors share. Each command is a function over its own argv
 * (argv[0] is the command's name) returning an exit code; main.c dispatches to it. Results go to
 * stdout; every diagnostic is one stderr line starting with "torrent: <command>: ".
 */
#ifndef BT_CLI_H
#define BT_CLI_H

#include "bt/util.h"

#include <getopt.h>
#include <sys/socket.h>
#include <stdio.h>

enum bt_exit {
	BT_EXIT_OK = 0,
	BT_EXIT_FAILURE = 1, /* network, peers, disk, verification */
	BT_EXIT_USAGE = 2,   /* bad usage or invalid input */
};

struct bt_cli_command {
	const char *name;
	const char *summary; /* one line for `torrent --help` */
	const char *help;    /* the whole text of `torrent <command> --help` */
	int (*run)(int argc, char **argv);
};

extern const struct bt_cli_command bt_cmd_decode;
extern const struct bt_cli_command bt_cmd_info;
extern const struct bt_cli_command bt_cmd_peers;
extern const struct bt_cli_command bt_cmd_handshake;
extern const struct bt_cli_command bt_cmd_download_piece;
extern const struct bt_cli_command bt_cmd_download;
extern const struct bt_cli_command bt_cmd_create;
extern const struct bt_cli_command bt_cmd_seed;
extern const struct bt_cli_command bt_cmd_bench;
extern const struct bt_cli_command bt_cmd_magnet_parse;
extern const struct bt_cli_command bt_cmd_magnet_handshake;
extern const struct bt_cli_command bt_cmd_magnet_info;
extern const struct bt_cli_command bt_cmd_magnet_download_piece;
extern const struct bt_cli_command bt_cmd_magnet_download;

/* Prints "torrent: <command>: <message>" on stderr. */
void bt_cli_error(const char *command, const char *fmt, ...) BT_PRINTF(2, 3);

/*
 * Reports a bad option or argument count in the usual form, with a pointer to --help, and
 * returns BT_EXIT_USAGE.
 */
int bt_cli_usage_error(const char *command, const char *fmt, ...) BT_PRINTF(2, 3);

/*
 * getopt_long with our error reporting: options may come before or after the positional
 * arguments (GNU permutation). Call with a shortopts string that starts with ':'. Returns the
 * option, -1 at the end, or '?' after printing a usage error for a bad option.
 */
int bt_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/*
 * Strict number parsing for options: decimal digits only (no sign, spaces, hex or exponent),
 * within [min, max]. Seconds may have a fractional part ("2.5"). Return 0 or -1.
 */
int bt_cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);
int bt_cli_parse_seconds(const char *s, double min, double max, double *out);

struct bt_metainfo;
/*
 * Reads and parses a .torrent for a command. Returns 0, or BT_EXIT_USAGE after printing
 * "torrent: <command>: <path>: <problem>".
 */
int bt_cli_load_torrent(const char *command, const char *path, struct bt_metainfo *m);
/*
 * Says once (bt_log WARN) that the torrent's names were sanitised for the file system, naming the
 * first as the torrent has it (escaped) and as it goes on disk; nothing if none was.
 */
void bt_cli_warn_renamed(const char *command, const struct bt_metainfo *m);

/*
 * The name among names[0..n) nearest to word by edit distance (insertions, deletions,
 * substitutions and swaps of two neighbours each count one), for "did you mean" hints. Returns its
 * index, or -1 when none is close enough to be a likely typo (at most 2 edits, and fewer than
 * half of word's length), so a wild guess is never offered.
 */
int bt_cli_nearest(const char *word, const char *const *names, size_t n);

/* Writes s to f with control characters escaped as \xNN, so a torrent cannot drive a terminal. */
void bt_cli_put_safe(FILE *f, const char *s);

/*
 * Resolves a --peer argument, "host:port" or "[v6]:port", into out (getaddrinfo, once, before
 * anything starts). Returns 0, BT_EXIT_USAGE for a malformed one or BT_EXIT_FAILURE for a name
 * that does not resolve, after printing the error.
 */
int bt_cli_resolve_peer(const char *cmd, const char *arg, struct sockaddr_storage *out,
			socklen_t *len_out);

struct bt_session;
/*
 * Starts the session's DHT node (after it listens): routers from --dht-bootstrap (given, n), else
 * from $TORRENT_DHT_BOOTSTRAP ("none", or comma-separated host:port), else the defaults; state in
 * bt_dht_state_dir(); port 0 for the listen port. Prints a warning and returns a negative errno if
 * it cannot start (the command goes on without it).
 */
int bt_cli_start_dht(const char *cmd, struct bt_session *s, const char *const *given, size_t n,
		     uint16_t port);

#endif
