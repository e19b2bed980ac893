/*
 * storage: a torrent's bytes on disk. The torrent's data is one long byte range (all files in
 * order, pad files included); storage maps a range of it to file segments and reads or writes
 * them with pread/pwrite. Only verified pieces are ever written (the caller's rule), so data on
 * disk is either a whole good piece or never written.
 *
 * Layout under `root`: a single-file torrent is the one file `root`; a multi-file torrent is the
 * directory `root` holding each file at its relative path (directories are created). BEP 47 pad
 * files are never created, written or read from disk: reads of them give zeros. Files are
 * created at their full length (preallocated with fallocate where the file system supports it,
 * else extended sparse with ftruncate), so a full disk is found at the start, naming the path.
 * A failed CREATE open removes the files and directories it made itself (never what was there).
 *
 * Links: what is followed and what is not. Opened for writing (CREATE or flags 0), root's
 * parent directory is the user's and is followed; root itself and everything below it are
 * ours and are reached from a directory descriptor without following any symbolic link
 * (openat with O_NOFOLLOW, O_DIRECTORY on each directory, mkdirat, an fstat type check): a link
 * at root or anywhere inside the tree is refused, naming it ("out/x.part/sub: a symbolic link;
 * refusing to follow it"), so nothing outside root is ever opened for writing. Opened
 * READONLY (seeding, checking data the user points at), root itself is the user's path and is
 * followed, but links inside a multi-file root are still refused, naming the entry.
 *
 * Descriptors: when the files on disk number at most a quarter of the soft RLIMIT_NOFILE
 * (and at most 128), all are opened once and kept, at no cost per read or write. Past that,
 * at most that many are open at a time, in LRU order, reopened on demand by the same no-follow
 * walk; the creation and sizing at open still touch every file. Owned by the download job
 * (download.h).
 */
#ifndef BT_STORAGE_H
#define BT_STORAGE_H

#include "bt/metainfo.h"
#include "bt/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One contiguous run of a file that a byte range of the torrent covers. */
struct bt_segment {
	size_t file;	     /* index into m->files */
	int64_t file_offset; /* where in that file */
	int64_t length;
	int64_t data_offset; /* where in the caller's range (0 = its first byte) */
};

/*
 * Pure: calls fn for each file segment of the torrent range [offset, offset + length), in
 * order, skipping zero-length files; pad files are included (seg->file tells). Returns the
 * first non-zero value fn returns, or 0; -EINVAL if the range is not inside the torrent.
 * Finding the first file is a binary search, so torrents of many files map quickly.
 */
int bt_storage_map(const struct bt_metainfo *m, int64_t offset, int64_t length,
		   int (*fn)(const struct bt_segment *seg, void *arg), void *arg);

struct bt_storage;

enum bt_storage_flags {
	BT_STORAGE_CREATE = 1,	 /* create missing files and directories at full length */
	BT_STORAGE_READONLY = 2, /* open existing files only, for reading (seeding, checking) */
};

/*
 * Opens (and with CREATE, creates) the files under root. Errors name the path and the reason
 * ("out/dir/a.bin: Permission denied"). Flags 0 opens existing files for reading and writing
 * without resizing them; CREATE with READONLY is -EINVAL. A file longer than the torrent says is
 * left as it is. Zero-length files are created by CREATE and otherwise need not exist. m is
 * borrowed and must outlive the storage.
 */
int bt_storage_open(struct bt_storage **out, const struct bt_metainfo *m, const char *root,
		    int flags, struct bt_err *err);
/*
 * A selection of files (the `--select` of a download): files[i] false means file i is never
 * created, opened or required; its bytes in a piece shared with a selected file are written to
 * and read from the side file `parts` (created on the first such write, at the bytes' offset
 * in the torrent, sparse), so that piece verifies and can be served. A selected file this open
 * creates takes its bytes from the side file, so what an earlier run verified stays good
 * (files NULL with parts set: every file selected, the side file an earlier run's). Opened
 * READONLY with a side file, a missing file counts as not selected (what such a run left).
 */
struct bt_storage_select {
	const bool *files; /* m->file_count entries; NULL: every file */
	const char *parts; /* the side file's path (followed: it is beside the output) */
};

/* bt_storage_open with a selection (NULL: every file); sel is copied. */
int bt_storage_open_select(struct bt_storage **out, const struct bt_metainfo *m, const char *root,
			   int flags, const struct bt_storage_select *sel, struct bt_err *err);
void bt_storage_free(struct bt_storage *s);
/*
 * Frees s after removing what its CREATE open made (the files, then the directories, newest
 * first; never what was there before), for an owner that stored nothing in them. NULL: no-op.
 */
void bt_storage_discard(struct bt_storage *s);

/*
 * Reads len bytes at offset `begin` within piece `index`; pad ranges read as zeros, and so does
 * anything past the end of a file someone shortened. -EINVAL if the range is not in the piece.
 */
int bt_storage_read(struct bt_storage *s, uint32_t index, uint32_t begin, void *out, uint32_t len,
		    struct bt_err *err);
/* Writes one whole piece (its exact length); pad ranges are skipped. -EBADF if READONLY. */
int bt_storage_write_piece(struct bt_storage *s, uint32_t index, const void *data,
			   struct bt_err *err);
/* Cuts files longer than the torrent says to their length (after resuming from a longer one). */
int bt_storage_trim(struct bt_storage *s, struct bt_err *err);
/*
 * Writeback started early (flusher.h): every 32 MiB written to a file, or at its next write
 * once a quarter second has passed since the last request, its writeback is begun beside the loop,
 * so the final bt_storage_sync has little left. How many such requests have been carried out so far
 * (tests, benchmarks).
 */
size_t bt_storage_writebacks(struct bt_storage *s);
/* Tests: the seconds after which a write asks for writeback whatever its size (0.25). */
void bt_storage_set_flush_after(struct bt_storage *s, double seconds);
/* fsync()s every file (one syncfs with the LRU on): called before a download is declared
 * complete. */
int bt_storage_sync(struct bt_storage *s, struct bt_err *err);

#endif
