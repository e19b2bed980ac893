#include "storage_internal.h"

#include "bt/flusher.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/*
 * Descriptors: one slot per file, -1 for pad files (never on disk), zero-length files (never
 * read or written) and files not open at the moment. When every file on disk fits under `cap`
 * they are all opened once and kept, and the I/O path is a plain array lookup. Past that the
 * open files form an LRU list (most recent at `head`): a file is reopened on demand, through the
 * same no-follow walk, and the least recently used one is closed to make room.
 */
#define NONE UINT32_MAX
/* Bytes written to a file between two requests to start its writeback. */
#define FLUSH_EVERY ((int64_t)32 << 20)

int bt_storage_map(const struct bt_metainfo *m, int64_t offset, int64_t length,
		   int (*fn)(const struct bt_segment *seg, void *arg), void *arg)
{
	if (offset < 0 || length < 0 || offset > m->total_length ||
	    length > m->total_length - offset)
		return -EINVAL;
	if (length == 0)
		return 0;

	/*
	 * The last file starting at or before `offset` holds it: the file after it starts past
	 * `offset`, so this one is not empty and ends past `offset`. Zero-length files at the same
	 * offset sort before it, which is why "last" matters.
	 */
	size_t lo = 0, hi = m->file_count;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->files[mid].offset <= offset)
			lo = mid;
		else
			hi = mid;
	}

	int64_t done = 0;
	for (size_t i = lo; done < length; i++) {
		assert(i < m->file_count);
		const struct bt_meta_file *f = &m->files[i];
		if (f->length == 0)
			continue;
		int64_t at = offset + done - f->offset;
		assert(at >= 0 && at < f->length);
		int64_t n = f->length - at;
		if (n > length - done)
			n = length - done;
		struct bt_segment seg = {
			.file = i, .file_offset = at, .length = n, .data_offset = done};
		int rc = fn(&seg, arg);
		if (rc)
			return rc;
		done += n;
	}
	return 0;
}

static void lru_unlink(struct bt_storage *s, uint32_t i)
{
	if (s->prev[i] != NONE)
		s->next[s->prev[i]] = s->next[i];
	else
		s->head = s->next[i];
	if (s->next[i] != NONE)
		s->prev[s->next[i]] = s->prev[i];
	else
		s->tail = s->prev[i];
}

static void lru_push(struct bt_storage *s, uint32_t i)
{
	s->prev[i] = NONE;
	s->next[i] = s->head;
	if (s->head != NONE)
		s->prev[s->head] = i;
	s->head = i;
	if (s->tail == NONE)
		s->tail = i;
}

/* Takes fd as file i's open descriptor; in LRU mode closes the least recent past the cap. */
static void keep_fd(struct bt_storage *s, size_t i, int fd)
{
	s->fds[i] = fd;
	s->open_count++;
	if (!s->limited)
		return;
	lru_push(s, (uint32_t)i);
	while (s->open_count > s->cap) {
		uint32_t t = s->tail;
		lru_unlink(s, t);
		close(s->fds[t]);
		s->fds[t] = -1;
		s->open_count--;
	}
}

/* File i's descriptor, reopened if the LRU closed it. Files on disk only. */
static int file_fd(struct bt_storage *s, size_t i, struct bt_err *err)
{
	int fd = s->fds[i];
	if (fd >= 0) {
		if (s->limited && s->head != i) {
			lru_unlink(s, (uint32_t)i);
			lru_push(s, (uint32_t)i);
		}
		return fd;
	}
	struct stat st;
	fd = bt_storage_open_path(s, i, false, &st, err);
	if (fd >= 0)
		keep_fd(s, i, fd);
	return fd;
}

/*
 * Grows a file to `length`: fallocate reserves the blocks so a full disk shows now, naming the
 * path, rather than as a failed write hours into the download. File systems without it get a
 * sparse file from ftruncate.
 */
static int size_file(int fd, int64_t length, const char *path, struct bt_err *err)
{
	int r;
	do
		r = fallocate(fd, 0, 0, (off_t)length);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return bt_storage_fail_path(err, errno, path);
	do
		r = ftruncate(fd, (off_t)length);
	while (r < 0 && errno == EINTR);
	return r == 0 ? 0 : bt_storage_fail_path(err, errno, path);
}

static bool selected(const struct bt_storage *s, size_t i)
{
	return !s->sel || s->sel[i];
}

static bool on_disk(const struct bt_storage *s, size_t i)
{
	const struct bt_meta_file *f = &s->m->files[i];
	return !f->pad && f->length > 0 && selected(s, i);
}

/*
 * The side file's descriptor, opened on first use: created for a write (a run whose selection
 * shares no piece with other files leaves none), else only if it is there. Returns the
 * descriptor, -ENOENT when reading and there is none, or another negative errno.
 */
static int parts_fd(struct bt_storage *s, bool write, struct bt_err *err)
{
	if (s->parts_fd >= 0)
		return s->parts_fd;
	if (!s->parts_path || (s->parts_missing && !write))
		return -ENOENT;
	bool ro = s->flags & BT_STORAGE_READONLY;
	int oflags = O_CLOEXEC | O_NOFOLLOW | (ro ? O_RDONLY : O_RDWR) | (write ? O_CREAT : 0);
	int fd = open(s->parts_path, oflags, 0666);
	if (fd < 0) {
		if (errno == ENOENT && !write) {
			s->parts_missing = true; /* until a write makes it */
			return -ENOENT;
		}
		if (errno == ELOOP)
			return bt_err_set(err, -ELOOP, "%s: %s", s->parts_path, SYMLINK_REFUSED);
		return bt_storage_fail_path(err, errno, s->parts_path);
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return bt_err_set(err, -EINVAL, "%s: not a regular file", s->parts_path);
	}
	s->parts_fd = fd;
	return fd;
}

/* Copies len bytes at `at` from the side file into fd at `file_at` (holes copy as zeros). */
static int copy_from_parts(struct bt_storage *s, int pfd, int64_t at, int fd, int64_t file_at,
			   int64_t len, size_t i, struct bt_err *err)
{
	uint8_t buf[64 << 10];
	while (len > 0) {
		size_t n = len < (int64_t)sizeof buf ? (size_t)len : sizeof buf;
		ssize_t r = pread(pfd, buf, n, (off_t)at);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return bt_storage_fail_path(err, errno, s->parts_path);
		if (r == 0)
			return 0; /* past the side file's end: zeros, as the new file holds */
		for (ssize_t w = 0; w < r;) {
			ssize_t k = pwrite(fd, buf + w, (size_t)(r - w), (off_t)(file_at + w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				return bt_storage_fail_file(s, i, k < 0 ? errno : EIO, err);
			w += k;
		}
		at += r;
		file_at += r;
		len -= r;
	}
	return 0;
}

/*
 * A file selected now that an earlier run left unselected: its bytes in the pieces it shares
 * with other files (its first and last piece) may be in the side file, verified; moving them
 * in keeps those pieces good, so they are not fetched again.
 */
static int adopt_parts(struct bt_storage *s, size_t i, int fd, struct bt_err *err)
{
	const struct bt_meta_file *f = &s->m->files[i];
	int pfd = parts_fd(s, false, err);
	if (pfd == -ENOENT)
		return 0;
	if (pfd < 0)
		return pfd;
	int64_t pl = s->m->piece_length, end = f->offset + f->length;
	int64_t head_end = (f->offset / pl + 1) * pl;
	if (head_end > end)
		head_end = end;
	int rc = copy_from_parts(s, pfd, f->offset, fd, 0, head_end - f->offset, i, err);
	int64_t tail = (end - 1) / pl * pl;
	if (tail < head_end)
		tail = head_end;
	if (rc == 0 && tail < end)
		rc = copy_from_parts(s, pfd, tail, fd, tail - f->offset, end - tail, i, err);
	return rc;
}

static int open_file(struct bt_storage *s, size_t i, struct bt_err *err)
{
	const struct bt_meta_file *f = &s->m->files[i];
	bool create = s->flags & BT_STORAGE_CREATE;
	if (f->pad || (f->length == 0 && !create) || !selected(s, i))
		return 0;
	struct stat st;
	size_t made = s->nmade_files;
	int fd = bt_storage_open_path(s, i, create, &st, err);
	if (fd == -ENOENT && s->parts_path && (s->flags & BT_STORAGE_READONLY)) {
		/* Checking what an earlier run with a selection left: a file it did not select
		 * is missing, and its bytes of shared pieces are in the side file. */
		if (!s->sel) {
			s->sel = bt_xmalloc(s->m->file_count * sizeof *s->sel);
			for (size_t k = 0; k < s->m->file_count; k++)
				s->sel[k] = true;
		}
		s->sel[i] = false;
		return 0;
	}
	if (fd < 0)
		return fd;
	int rc = 0;
	/* A file longer than the torrent says is left alone: the tail is not ours. */
	if (st.st_size > f->length)
		s->any_long = true;
	if (f->length > 0 && create && st.st_size < f->length) {
		char *path = bt_storage_file_path(s, i);
		rc = size_file(fd, f->length, path, err);
		free(path);
	}
	if (rc == 0 && s->parts_path && f->length > 0 && s->nmade_files > made)
		rc = adopt_parts(s, i, fd, err);
	if (rc == 0 && f->length > 0)
		keep_fd(s, i, fd);
	else
		close(fd);
	return rc;
}

/* How many descriptors the files may hold: a quarter of the soft limit, at most 128. */
static size_t fd_cap(void)
{
	struct rlimit rl;
	size_t cap = 128;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 4 < cap)
		cap = rl.rlim_cur / 4;
	return cap < 4 ? 4 : cap;
}

/* Undoes what the open created: the files, then the directories, newest first. */
static void remove_made(struct bt_storage *s)
{
	struct bt_err ignored;
	if (!s->m->multi_file) {
		if (s->nmade_files && s->parent_fd >= 0)
			unlinkat(s->parent_fd, s->base, 0);
		return;
	}
	if (s->root_fd < 0)
		return;
	for (size_t k = 0; k < s->nmade_files; k++) {
		const char *rel = s->m->files[s->made_files[k]].path;
		const char *slash = strrchr(rel, '/');
		size_t dlen = slash ? (size_t)(slash - rel) : 0;
		int dir = bt_storage_file_dir(s, rel, dlen, false, &ignored);
		if (dir >= 0)
			unlinkat(dir, slash ? slash + 1 : rel, 0);
	}
	if (s->dc_fd >= 0)
		close(s->dc_fd);
	s->dc_fd = -1;
	/* Directories were made parents first: remove them from the end. */
	const char *p = (const char *)s->made_dirs.data;
	size_t end = s->made_dirs.len;
	while (end > 0) {
		size_t startp = end - 1;
		while (startp > 0 && p[startp - 1] != '\0')
			startp--;
		const char *rel = p + startp;
		const char *slash = strrchr(rel, '/');
		size_t dlen = slash ? (size_t)(slash - rel) : 0;
		int dir = bt_storage_file_dir(s, rel, dlen, false, &ignored);
		if (dir >= 0)
			unlinkat(dir, slash ? slash + 1 : rel, AT_REMOVEDIR);
		end = startp;
	}
	if (s->made_root && s->parent_fd >= 0)
		unlinkat(s->parent_fd, s->base, AT_REMOVEDIR);
}

int bt_storage_open(struct bt_storage **out, const struct bt_metainfo *m, const char *root,
		    int flags, struct bt_err *err)
{
	return bt_storage_open_select(out, m, root, flags, NULL, err);
}

int bt_storage_open_select(struct bt_storage **out, const struct bt_metainfo *m, const char *root,
			   int flags, const struct bt_storage_select *sel, struct bt_err *err)
{
	*out = NULL;
	if (flags & ~(BT_STORAGE_CREATE | BT_STORAGE_READONLY) ||
	    (flags & BT_STORAGE_CREATE && flags & BT_STORAGE_READONLY))
		return bt_err_set(err, -EINVAL, "storage: bad flags %#x", (unsigned)flags);
	if (!root || !*root)
		return bt_err_set(err, -EINVAL, "storage: empty output path");

	struct bt_storage *s = bt_xcalloc(1, sizeof *s);
	s->m = m;
	s->flags = flags;
	s->parent_fd = s->root_fd = s->dc_fd = s->parts_fd = -1;
	if (sel && sel->files) {
		s->sel = bt_xmalloc(m->file_count * sizeof *s->sel);
		memcpy(s->sel, sel->files, m->file_count * sizeof *s->sel);
	}
	if (sel && sel->parts)
		s->parts_path = bt_xstrdup(sel->parts);
	s->head = s->tail = NONE;
	s->flush_after = 0.25;
	s->flushed_at = bt_now();
	bt_buf_init(&s->made_dirs);
	/* "out/" and "out" are the same directory; keep messages free of "out//a". */
	size_t rl = strlen(root);
	while (rl > 1 && root[rl - 1] == '/')
		rl--;
	s->root = bt_xstrndup(root, rl);
	s->fds = bt_xmalloc(m->file_count * sizeof *s->fds);
	size_t ndisk = 0;
	for (size_t i = 0; i < m->file_count; i++) {
		s->fds[i] = -1;
		ndisk += on_disk(s, i);
	}
	s->cap = fd_cap();
	if (ndisk > s->cap && m->file_count < NONE) {
		s->limited = true;
		s->prev = bt_xmalloc(m->file_count * sizeof *s->prev);
		s->next = bt_xmalloc(m->file_count * sizeof *s->next);
	}

	int rc = 0;
	bool create = flags & BT_STORAGE_CREATE;
	if (flags & BT_STORAGE_READONLY) {
		/* Reading data the user points at: root is the user's own path, followed. */
		if (m->multi_file &&
		    (s->root_fd = open(s->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			rc = bt_storage_fail_path(err, errno, s->root);
	} else {
		/* root's parent is the user's (followed); root and all below it are ours. */
		char *slash = strrchr(s->root, '/');
		s->base = slash ? slash + 1 : s->root;
		const char *parent = !slash ? "." : slash == s->root ? "/" : s->root;
		if (slash && slash != s->root)
			*slash = '\0';
		if (create && slash && slash != s->root)
			rc = bt_storage_make_dirs(s->root, strlen(s->root), err);
		if (rc == 0 &&
		    (s->parent_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			rc = bt_storage_fail_path(err, errno, parent);
		if (slash && slash != s->root)
			*slash = '/';
		if (rc == 0 && m->multi_file) {
			int fd = bt_storage_open_dir_at(s, s->parent_fd, s->base, "", 0, create,
							err);
			if (fd < 0)
				rc = fd;
			else
				s->root_fd = fd;
		}
	}
	for (size_t i = 0; i < m->file_count && rc == 0; i++)
		rc = open_file(s, i, err);
	if (rc) {
		remove_made(s);
		bt_storage_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void bt_storage_discard(struct bt_storage *s)
{
	if (!s)
		return;
	remove_made(s);
	bt_storage_free(s);
}

void bt_storage_free(struct bt_storage *s)
{
	if (!s)
		return;
	bt_flusher_free(s->flusher); /* first: its thread may be writing back one of the files */
	free(s->unflushed);
	for (size_t i = 0; i < s->m->file_count; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	if (s->dc_fd >= 0)
		close(s->dc_fd);
	if (s->root_fd >= 0)
		close(s->root_fd);
	if (s->parent_fd >= 0)
		close(s->parent_fd);
	free(s->dc_rel);
	free(s->prev);
	free(s->next);
	free(s->made_files);
	if (s->parts_fd >= 0)
		close(s->parts_fd);
	free(s->sel);
	free(s->parts_path);
	bt_buf_deinit(&s->made_dirs);
	free(s->fds);
	free(s->root);
	free(s);
}

struct io {
	struct bt_storage *s;
	uint8_t *out;	   /* reading */
	const uint8_t *in; /* writing */
	struct bt_err *err;
};

static int read_segment(const struct bt_segment *seg, void *arg)
{
	struct io *io = arg;
	uint8_t *p = io->out + seg->data_offset;
	size_t n = (size_t)seg->length;
	if (io->s->m->files[seg->file].pad) {
		memset(p, 0, n);
		return 0;
	}
	int fd;
	off_t at = (off_t)seg->file_offset;
	if (!selected(io->s, seg->file)) {
		/* Never written: zeros, which the piece's hash check rejects. */
		if ((fd = parts_fd(io->s, false, io->err)) == -ENOENT) {
			memset(p, 0, n);
			return 0;
		}
		at += (off_t)io->s->m->files[seg->file].offset;
	} else {
		fd = file_fd(io->s, seg->file, io->err);
	}
	if (fd < 0)
		return fd;
	while (n > 0) {
		ssize_t r = pread(fd, p, n, at);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return selected(io->s, seg->file)
				       ? bt_storage_fail_file(io->s, seg->file, errno, io->err)
				       : bt_storage_fail_path(io->err, errno, io->s->parts_path);
		if (r == 0) {
			/* Files are sized at open, so only someone truncating one behind our back
			 * gets here; zeros are what a sparse file would give, and the piece's hash
			 * check will reject them. */
			memset(p, 0, n);
			break;
		}
		p += r;
		n -= (size_t)r;
		at += r;
	}
	return 0;
}

#define WRITE_SLICE ((size_t)256 << 10)

/*
 * Every FLUSH_EVERY bytes written to a file, or once flush_after seconds (a quarter second
 * unless a test says) have passed since the last request, its writeback is started beside the
 * loop, so the fsync at the end finds most of the file already on its way to the disk: at most
 * 32 MiB at loopback rates, at most a quarter second's worth at slower ones, where 32 MiB would
 * be much of the download (the fsync at the end of 128 MiB at 18 MiB/s took 0.04-0.11 s).
 */
static void note_written(struct bt_storage *s, size_t file, int fd, int64_t n)
{
	if (!s->unflushed)
		s->unflushed = bt_xcalloc(s->m->file_count, sizeof *s->unflushed);
	s->unflushed[file] += n;
	double now = bt_now();
	if (s->unflushed[file] < FLUSH_EVERY && now - s->flushed_at < s->flush_after)
		return;
	s->unflushed[file] = 0;
	s->flushed_at = now;
	if (!s->flusher)
		s->flusher = bt_flusher_new();
	bt_flusher_submit(s->flusher, fd);
}

static int write_segment(const struct bt_segment *seg, void *arg)
{
	struct io *io = arg;
	if (io->s->m->files[seg->file].pad)
		return 0;
	const uint8_t *p = io->in + seg->data_offset;
	size_t n = (size_t)seg->length;
	off_t at = (off_t)seg->file_offset;
	int fd;
	if (!selected(io->s, seg->file)) {
		fd = parts_fd(io->s, true, io->err);
		at += (off_t)io->s->m->files[seg->file].offset;
	} else {
		fd = file_fd(io->s, seg->file, io->err);
	}
	if (fd < 0)
		return fd;
	while (n > 0) {
		/*
		 * In slices of 256 KiB: one large pwrite of a just-freed buffer was measured at
		 * 35x the cost of four small ones on this kind of VM (pages returned to the host).
		 */
		ssize_t r = pwrite(fd, p, n < WRITE_SLICE ? n : WRITE_SLICE, at);
		if (r < 0 && errno == EINTR)
			continue;
		/* pwrite returning 0 for a non-zero count would loop forever: call it EIO. */
		if (r <= 0)
			return selected(io->s, seg->file)
				       ? bt_storage_fail_file(io->s, seg->file, r < 0 ? errno : EIO,
							      io->err)
				       : bt_storage_fail_path(io->err, r < 0 ? errno : EIO,
							      io->s->parts_path);
		p += r;
		n -= (size_t)r;
		at += r;
	}
	if (selected(io->s, seg->file))
		note_written(io->s, seg->file, fd, seg->length);
	return 0;
}

int bt_storage_read(struct bt_storage *s, uint32_t index, uint32_t begin, void *out, uint32_t len,
		    struct bt_err *err)
{
	const struct bt_metainfo *m = s->m;
	if (index >= m->piece_count)
		return bt_err_set(err, -EINVAL,
				  "storage: piece %" PRIu32 " out of range (%" PRIu32 " pieces)",
				  index, m->piece_count);
	int64_t size = bt_meta_piece_size(m, index);
	if ((int64_t)begin + len > size)
		return bt_err_set(err, -EINVAL,
				  "storage: %" PRIu32 " bytes at %" PRIu32 " overrun piece %" PRIu32
				  " (%" PRId64 " bytes)",
				  len, begin, index, size);
	struct io io = {.s = s, .out = out, .err = err};
	return bt_storage_map(m, (int64_t)index * m->piece_length + begin, len, read_segment, &io);
}

int bt_storage_write_piece(struct bt_storage *s, uint32_t index, const void *data,
			   struct bt_err *err)
{
	const struct bt_metainfo *m = s->m;
	if (s->flags & BT_STORAGE_READONLY)
		return bt_err_set(err, -EBADF, "storage: opened read-only");
	if (index >= m->piece_count)
		return bt_err_set(err, -EINVAL,
				  "storage: piece %" PRIu32 " out of range (%" PRIu32 " pieces)",
				  index, m->piece_count);
	struct io io = {.s = s, .in = data, .err = err};
	return bt_storage_map(m, (int64_t)index * m->piece_length, bt_meta_piece_size(m, index),
			      write_segment, &io);
}

void bt_storage_set_flush_after(struct bt_storage *s, double seconds)
{
	s->flush_after = seconds;
}

size_t bt_storage_writebacks(struct bt_storage *s)
{
	return s->flusher ? bt_flusher_done(s->flusher) : 0;
}

int bt_storage_sync(struct bt_storage *s, struct bt_err *err)
{
	/*
	 * With the LRU on, files written and closed since are not in fds: one syncfs of the file
	 * system holding them flushes them all (and reports a writeback error on it) for one
	 * call instead of thousands of reopens and fsyncs.
	 */
	if (s->parts_fd >= 0 && fsync(s->parts_fd) != 0)
		return bt_storage_fail_path(err, errno, s->parts_path);
	if (s->limited) {
		int fd = s->m->multi_file ? s->root_fd : s->parent_fd;
		if (syncfs(fd) != 0)
			return bt_storage_fail_path(err, errno, s->root);
		return 0;
	}
	for (size_t i = 0; i < s->m->file_count; i++) {
		if (s->fds[i] < 0)
			continue;
		if (fsync(s->fds[i]) != 0)
			return bt_storage_fail_file(s, i, errno, err);
	}
	return 0;
}

int bt_storage_trim(struct bt_storage *s, struct bt_err *err)
{
	if (!s->any_long)
		return 0;
	for (size_t i = 0; i < s->m->file_count; i++) {
		if (!on_disk(s, i))
			continue;
		int fd = file_fd(s, i, err);
		if (fd < 0)
			return fd;
		struct stat st;
		if (fstat(fd, &st) != 0 || st.st_size <= s->m->files[i].length)
			continue;
		if (ftruncate(fd, (off_t)s->m->files[i].length) != 0)
			return bt_storage_fail_file(s, i, errno, err);
	}
	return 0;
}
