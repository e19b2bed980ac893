/*
 * maketorrent: builds a v1 .torrent from a file or a directory. Files of a directory are taken
 * recursively in byte-wise sorted path order (so the same tree always gives the same torrent),
 * hidden files (a component starting with '.') only when asked; symbolic links are not
 * followed. Data is read once, sequentially, and hashed piece by piece with SHA-1; the caller
 * sees progress through a callback. The result is canonical bencode (sorted keys).
 */
#ifndef BT_MAKETORRENT_H
#define BT_MAKETORRENT_H

#include "bt/util.h"

#include <stdbool.h>
#include <stdint.h>

struct bt_make_opts {
	const char *path;     /* file or directory */
	const char *name;     /* NULL: the path's last component */
	int64_t piece_length; /* 0: chosen from the total size */
	char **trackers;      /* one tier each; "a,b" puts a and b in one tier */
	size_t tracker_count;
	char **web_seeds;
	size_t web_seed_count;
	const char *comment; /* NULL: none */
	bool is_private;
	bool include_hidden;
	bool no_date; /* leave out "creation date" (reproducible output) */
	/* Called every few MiB while hashing; may be NULL. */
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *progress_arg;
};

/* The default piece length: a power of two from 16 KiB to 16 MiB, about 1000-2000 pieces. */
int64_t bt_make_piece_length(uint64_t total);

/*
 * Builds the torrent into out. Returns 0, or a negative errno with err naming the path and
 * the problem ("data/x: Permission denied", "data: no files to put in a torrent").
 */
int bt_make_torrent(const struct bt_make_opts *o, struct bt_buf *out, struct bt_err *err);

#endif
