#include "bt/storage.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/*
 * One descriptor per file is kept open for the storage's life: -1 for pad files (never on disk)
 * and for zero-length files (never read or written). A torrent of very many files therefore
 * needs as many descriptors, and opening fails with "Too many open files" past RLIMIT_NOFILE;
 * an LRU of open files would lift that if such torrents matter.
 */
struct bt_storage {
	const struct bt_metainfo *m; /* borrowed: the torrent owns both and frees storage first */
	char *root;
	int flags;
	int *fds; /* m->file_count entries */
};

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

/* The on-disk path of file i (caller frees). */
static char *file_path(const struct bt_storage *s, size_t i)
{
	if (!s->m->multi_file)
		return bt_xstrdup(s->root);
	const char *rel = s->m->files[i].path;
	size_t rl = strlen(s->root), pl = strlen(rel);
	char *p = bt_xmalloc(rl + 1 + pl + 1);
	memcpy(p, s->root, rl);
	p[rl] = '/';
	memcpy(p + rl + 1, rel, pl + 1);
	return p;
}

static int fail_path(struct bt_err *err, int e, const char *path)
{
	return bt_err_set(err, -e, "%s: %s", path, strerror(e));
}

static int fail_file(const struct bt_storage *s, size_t i, int e, struct bt_err *err)
{
	char *path = file_path(s, i);
	fail_path(err, e, path);
	free(path);
	return -e;
}

/* mkdir that succeeds when the directory is already there (a symlink to one counts). */
static int make_dir(const char *path, struct bt_err *err)
{
	if (mkdir(path, 0777) == 0)
		return 0;
	int e = errno;
	struct stat st;
	/* Check the outcome rather than the errno: an existing directory may report EACCES or
	 * EROFS instead of EEXIST, depending on the file system and its parent's permissions. */
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	return fail_path(err, e == EEXIST ? ENOTDIR : e, path);
}

/*
 * mkdir -p for path[0..len), where path[0..known) is a directory already known to exist.
 * The path is cut in place at each '/' and restored.
 */
static int make_dirs(char *path, size_t len, size_t known, struct bt_err *err)
{
	for (size_t i = known ? known + 1 : 0; i <= len; i++) {
		if (i < len && path[i] != '/')
			continue;
		if (i == 0 || path[i - 1] == '/') /* the leading '/' or a doubled one */
			continue;
		char c = path[i];
		path[i] = '\0';
		int rc = make_dir(path, err);
		path[i] = c;
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * How much of dir (len bytes) is known to exist because `made` (a directory created or found
 * earlier) shares it, cut back to a whole component. Files of a torrent come grouped by
 * directory, so with this most files need no mkdir at all.
 */
static size_t known_prefix(const struct bt_buf *made, const char *dir, size_t len)
{
	const char *p = (const char *)made->data;
	size_t n = 0;
	while (n < made->len && n < len && p[n] == dir[n])
		n++;
	if ((n == made->len || p[n] == '/') && (n == len || dir[n] == '/'))
		return n;
	while (n > 0 && dir[n - 1] != '/')
		n--;
	return n ? n - 1 : 0;
}

/* Creates the directory that will hold `path`, remembering it in `made`. */
static int make_parent(char *path, struct bt_buf *made, struct bt_err *err)
{
	char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return 0; /* in the current directory, or in "/" */
	size_t len = (size_t)(slash - path);
	int rc = make_dirs(path, len, known_prefix(made, path, len), err);
	if (rc)
		return rc;
	made->len = 0;
	bt_buf_add(made, path, len);
	return 0;
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
		return fail_path(err, errno, path);
	do
		r = ftruncate(fd, (off_t)length);
	while (r < 0 && errno == EINTR);
	return r == 0 ? 0 : fail_path(err, errno, path);
}

static int open_file(struct bt_storage *s, size_t i, struct bt_buf *made, struct bt_err *err)
{
	const struct bt_meta_file *f = &s->m->files[i];
	bool create = s->flags & BT_STORAGE_CREATE;
	if (f->pad || (f->length == 0 && !create))
		return 0;

	char *path = file_path(s, i);
	int rc = 0;
	if (create && (rc = make_parent(path, made, err))) {
		free(path);
		return rc;
	}
	/* O_NONBLOCK does nothing to a regular file; it only keeps a FIFO at the path from
	 * blocking the open, so that the type check below can refuse it. */
	int oflags = O_CLOEXEC | O_NONBLOCK | (s->flags & BT_STORAGE_READONLY ? O_RDONLY : O_RDWR) |
		     (create ? O_CREAT : 0);
	int fd = open(path, oflags, 0666);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = fail_path(err, errno, path);
	} else if (!S_ISREG(st.st_mode)) {
		rc = bt_err_set(err, -EINVAL, "%s: not a regular file", path);
	} else if (f->length > 0) {
		/* A file longer than the torrent says is left alone: the tail is not ours. */
		if (create && st.st_size < f->length)
			rc = size_file(fd, f->length, path, err);
		if (rc == 0) {
			s->fds[i] = fd;
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

int bt_storage_open(struct bt_storage **out, const struct bt_metainfo *m, const char *root,
		    int flags, struct bt_err *err)
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
	/* "out/" and "out" are the same directory; keep messages free of "out//a". */
	size_t rl = strlen(root);
	while (rl > 1 && root[rl - 1] == '/')
		rl--;
	s->root = bt_xstrndup(root, rl);
	s->fds = bt_xmalloc(m->file_count * sizeof *s->fds);
	for (size_t i = 0; i < m->file_count; i++)
		s->fds[i] = -1;

	struct bt_buf made; /* the directory last created or found, so siblings skip mkdir */
	bt_buf_init(&made);
	int rc = 0;
	if (flags & BT_STORAGE_CREATE && m->multi_file) {
		/* The root itself, even when every file is a pad or empty. */
		if ((rc = make_dirs(s->root, rl, 0, err)) == 0)
			bt_buf_add(&made, s->root, rl);
	}
	for (size_t i = 0; i < m->file_count && rc == 0; i++)
		rc = open_file(s, i, &made, err);
	bt_buf_deinit(&made);
	if (rc) {
		bt_storage_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void bt_storage_free(struct bt_storage *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->m->file_count; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
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
	int fd = io->s->fds[seg->file];
	if (io->s->m->files[seg->file].pad) {
		memset(p, 0, n);
		return 0;
	}
	assert(fd >= 0);
	off_t at = (off_t)seg->file_offset;
	while (n > 0) {
		ssize_t r = pread(fd, p, n, at);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail_file(io->s, seg->file, errno, io->err);
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

static int write_segment(const struct bt_segment *seg, void *arg)
{
	struct io *io = arg;
	if (io->s->m->files[seg->file].pad)
		return 0;
	const uint8_t *p = io->in + seg->data_offset;
	size_t n = (size_t)seg->length;
	int fd = io->s->fds[seg->file];
	assert(fd >= 0);
	off_t at = (off_t)seg->file_offset;
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
			return fail_file(io->s, seg->file, r < 0 ? errno : EIO, io->err);
		p += r;
		n -= (size_t)r;
		at += r;
	}
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

int bt_storage_sync(struct bt_storage *s, struct bt_err *err)
{
	for (size_t i = 0; i < s->m->file_count; i++) {
		if (s->fds[i] < 0)
			continue;
		if (fsync(s->fds[i]) != 0)
			return fail_file(s, i, errno, err);
	}
	return 0;
}

int bt_storage_trim(struct bt_storage *s, struct bt_err *err)
{
	for (size_t i = 0; i < s->m->file_count; i++) {
		struct stat st;
		if (s->fds[i] < 0 || fstat(s->fds[i], &st) != 0 ||
		    st.st_size <= s->m->files[i].length)
			continue;
		if (ftruncate(s->fds[i], (off_t)s->m->files[i].length) != 0)
			return fail_file(s, i, errno, err);
	}
	return 0;
}
