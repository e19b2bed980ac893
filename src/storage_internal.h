/*
 * storage_internal: what the files of the storage module share: storage.c (opening a torrent's
 * files, the descriptor LRU, the side file of a selection, reads, writes, sync) and
 * storage_paths.c (reaching a file by its path without following a link: openat one component
 * at a time, O_NOFOLLOW, directories made as needed, errors naming the path). Not for any other
 * module.
 */
#ifndef BT_STORAGE_INTERNAL_H
#define BT_STORAGE_INTERNAL_H

#include "bt/storage.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* Why a name we must not follow is refused. */
#define SYMLINK_REFUSED "a symbolic link; refusing to follow it"

struct bt_storage {
	const struct bt_metainfo *m; /* borrowed: the torrent owns both and frees storage first */
	char *root;
	int flags;
	int parent_fd;	  /* single-file: the directory holding root; -1 when root is followed */
	const char *base; /* root's last component (inside `root`) */
	int root_fd;	  /* multi-file: the root directory */
	int *fds;	  /* m->file_count entries */
	bool any_long;	  /* some file was longer than the torrent says: trim has work */
	bool limited;	  /* more files on disk than cap: the LRU is on */
	size_t cap, open_count;
	uint32_t *prev, *next, head, tail; /* the LRU, when limited */
	/* The directory of the last file opened (relative to root_fd), kept open: files come
	 * grouped by directory, so most opens need one openat. */
	char *dc_rel;
	size_t dc_len;
	int dc_fd;
	/* What bt_storage_open created in this run, removed again if it fails part-way or the
	 * owner discards it (a job that stored nothing). */
	bool made_root;
	struct bt_buf made_dirs; /* relative paths, each '\0'-terminated, in creation order */
	size_t *made_files, nmade_files;
	/* A selection: files not selected are never created; their bytes in pieces shared with
	 * selected files live in the side file, at their offset in the torrent's byte range (a
	 * sparse file: only the shared pieces' bytes take space). */
	bool *sel;	    /* NULL: every file */
	char *parts_path;   /* the side file */
	int parts_fd;	    /* opened on first use */
	bool parts_missing; /* a read found none: no need to look again */
	/* Early writeback (flusher.h): bytes written to each file since its last request. */
	struct bt_flusher *flusher; /* made on the first request */
	int64_t *unflushed;	    /* m->file_count entries */
	double flushed_at;	    /* bt_now() of the last request (or of the open) */
	double flush_after;	    /* seconds: a request at the next write after this long */
};

int bt_storage_open_path(struct bt_storage *s, size_t i, bool create, struct stat *st,
			 struct bt_err *err);
int bt_storage_file_dir(struct bt_storage *s, const char *rel, size_t dlen, bool create,
			struct bt_err *err);
int bt_storage_fail_file(const struct bt_storage *s, size_t i, int e, struct bt_err *err);
char *bt_storage_file_path(const struct bt_storage *s, size_t i);
int bt_storage_make_dirs(char *path, size_t len, struct bt_err *err);
int bt_storage_open_dir_at(struct bt_storage *s, int dir, const char *name, const char *rel,
			   size_t len, bool create, struct bt_err *err);
int bt_storage_fail_path(struct bt_err *err, int e, const char *path);

#endif
