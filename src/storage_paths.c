/* Reaching a torrent's files by their paths, never through a link (see storage.h). */
#include "storage_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The on-disk path of file i (caller frees). */
char *bt_storage_file_path(const struct bt_storage *s, size_t i)
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

int bt_storage_fail_path(struct bt_err *err, int e, const char *path)
{
	return bt_err_set(err, -e, "%s: %s", path, strerror(e));
}

/* As bt_storage_fail_path, for root/rel[0..len) (len 0: root itself). */
static int fail_rel(const struct bt_storage *s, const char *rel, size_t len, int e, const char *why,
		    struct bt_err *err)
{
	if (len == 0)
		return bt_err_set(err, -e, "%s: %s", s->root, why ? why : strerror(e));
	return bt_err_set(err, -e, "%s/%.*s: %s", s->root, (int)len, rel, why ? why : strerror(e));
}

int bt_storage_fail_file(const struct bt_storage *s, size_t i, int e, struct bt_err *err)
{
	char *path = bt_storage_file_path(s, i);
	bt_storage_fail_path(err, e, path);
	free(path);
	return -e;
}

/*
 * Why opening `name` in dir without following failed with e: a symbolic link is named as one
 * (ELOOP or ENOTDIR from O_NOFOLLOW / O_DIRECTORY), anything else by its errno.
 */
static int refuse(const struct bt_storage *s, int dir, const char *name, const char *rel,
		  size_t len, int e, struct bt_err *err)
{
	struct stat st;
	if ((e == ELOOP || e == ENOTDIR || e == EMLINK) &&
	    fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		return fail_rel(s, rel, len, ELOOP, SYMLINK_REFUSED, err);
	return fail_rel(s, rel, len, e, NULL, err);
}

/* mkdir that succeeds when the directory is already there (a symlink to one counts): for the
 * user's part of the path only, above root. */
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
	return bt_storage_fail_path(err, e == EEXIST ? ENOTDIR : e, path);
}

/* mkdir -p for path[0..len). The path is cut in place at each '/' and restored. */
int bt_storage_make_dirs(char *path, size_t len, struct bt_err *err)
{
	for (size_t i = 0; i <= len; i++) {
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

/* Opens directory `name` in dir without following it; with create, makes it first if missing
 * (remembering rel[0..len) as made by this run). Returns the descriptor or a negative errno. */
int bt_storage_open_dir_at(struct bt_storage *s, int dir, const char *name, const char *rel,
			   size_t len, bool create, struct bt_err *err)
{
	const int oflags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(dir, name, oflags);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(dir, name, 0777) == 0) {
			if (len == 0) {
				s->made_root = true;
			} else {
				bt_buf_add(&s->made_dirs, rel, len);
				bt_buf_addc(&s->made_dirs, '\0');
			}
		} else if (errno != EEXIST) {
			return fail_rel(s, rel, len, errno, NULL, err);
		}
		fd = openat(dir, name, oflags);
	}
	if (fd < 0)
		return refuse(s, dir, name, rel, len, errno, err);
	return fd;
}

/*
 * The directory holding file i's path (rel, its last '/' at `slash`), walked from root_fd one
 * component at a time without following any link. The result is kept in the directory cache
 * and must not be closed by the caller.
 */
int bt_storage_file_dir(struct bt_storage *s, const char *rel, size_t dlen, bool create,
			struct bt_err *err)
{
	if (dlen == 0)
		return s->root_fd;
	if (s->dc_fd >= 0 && s->dc_len == dlen && memcmp(s->dc_rel, rel, dlen) == 0)
		return s->dc_fd;
	int cur = s->root_fd;
	char name[256 + 1];
	for (size_t at = 0; at < dlen;) {
		size_t n = strcspn(rel + at, "/");
		if (n > dlen - at)
			n = dlen - at;
		if (n >= sizeof name) {
			if (cur != s->root_fd)
				close(cur);
			return fail_rel(s, rel, at + n, ENAMETOOLONG, NULL, err);
		}
		memcpy(name, rel + at, n);
		name[n] = '\0';
		int fd = bt_storage_open_dir_at(s, cur, name, rel, at + n, create, err);
		if (cur != s->root_fd)
			close(cur);
		if (fd < 0)
			return fd;
		cur = fd;
		at += n + 1;
	}
	if (s->dc_fd >= 0)
		close(s->dc_fd);
	free(s->dc_rel);
	s->dc_rel = bt_xstrndup(rel, dlen);
	s->dc_len = dlen;
	s->dc_fd = cur;
	return cur;
}

/*
 * Opens file i's descriptor without following a link at any component below root; with
 * create, makes missing directories and the file (noting what this run made). Checks that it
 * is a regular file. Returns the descriptor or a negative errno, err naming the path.
 */
int bt_storage_open_path(struct bt_storage *s, size_t i, bool create, struct stat *st,
			 struct bt_err *err)
{
	int dir;
	const char *leaf, *rel;
	size_t rlen;
	/* O_NONBLOCK does nothing to a regular file; it only keeps a FIFO at the path from
	 * blocking the open, so that the type check below can refuse it. */
	int oflags = O_CLOEXEC | O_NONBLOCK | (s->flags & BT_STORAGE_READONLY ? O_RDONLY : O_RDWR);
	if (!s->m->multi_file) {
		rel = "";
		rlen = 0;
		if (s->parent_fd < 0) {
			dir = AT_FDCWD; /* the user's own path, followed (read-only) */
			leaf = s->root;
		} else {
			dir = s->parent_fd;
			leaf = s->base;
			oflags |= O_NOFOLLOW;
		}
	} else {
		rel = s->m->files[i].path;
		rlen = strlen(rel);
		const char *slash = strrchr(rel, '/');
		size_t dlen = slash ? (size_t)(slash - rel) : 0;
		leaf = slash ? slash + 1 : rel;
		if ((dir = bt_storage_file_dir(s, rel, dlen, create, err)) < 0)
			/* A missing directory means a missing file: name the file, as open(2)
			 * would. */
			return dir == -ENOENT ? fail_rel(s, rel, rlen, ENOENT, NULL, err) : dir;
		oflags |= O_NOFOLLOW;
	}
	int fd = -1;
	if (create) {
		fd = openat(dir, leaf, oflags | O_CREAT | O_EXCL, 0666);
		if (fd >= 0) {
			s->made_files = bt_xreallocarray(s->made_files, s->nmade_files + 1,
							 sizeof *s->made_files);
			s->made_files[s->nmade_files++] = i;
		} else if (errno != EEXIST) {
			return refuse(s, dir, leaf, rel, rlen, errno, err);
		}
	}
	if (fd < 0 && (fd = openat(dir, leaf, oflags)) < 0)
		return refuse(s, dir, leaf, rel, rlen, errno, err);
	int rc = 0;
	if (fstat(fd, st) != 0)
		rc = fail_rel(s, rel, rlen, errno, NULL, err);
	else if (!S_ISREG(st->st_mode))
		rc = fail_rel(s, rel, rlen, EINVAL, "not a regular file", err);
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}
