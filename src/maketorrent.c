#include "bt/maketorrent.h"

#include "bt/bencode.h"
#include "bt/hash.h"
#include "bt/metainfo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef BT_VERSION
#define BT_VERSION "unknown"
#endif

#define READ_CHUNK (1 << 20)

struct file_entry {
	char *rel; /* relative path, '/'-separated; "" for a single-file torrent */
	int64_t length;
};

struct file_list {
	struct file_entry *v;
	size_t n, cap;
};

static void add_file(struct file_list *l, const char *rel, int64_t length)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = bt_xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	l->v[l->n++] = (struct file_entry){.rel = bt_xstrdup(rel), .length = length};
}

/* Component-wise order: "a/b" sorts before "a-b" because a '/' ends a component. */
static int compare_rel(const void *a, const void *b)
{
	const unsigned char *x = (const unsigned char *)((const struct file_entry *)a)->rel;
	const unsigned char *y = (const unsigned char *)((const struct file_entry *)b)->rel;
	for (;; x++, y++) {
		unsigned cx = *x == '/' ? 0 : *x + 1u, cy = *y == '/' ? 0 : *y + 1u;
		if (!*x || !*y || cx != cy)
			return *x && *y ? (int)cx - (int)cy : (*x != 0) - (*y != 0);
	}
}

static int walk(const char *root, const char *rel, const struct bt_make_opts *o,
		struct file_list *l, struct bt_err *err)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
	DIR *d = opendir(dir);
	if (!d)
		return bt_err_set(err, -errno, "%s: %s", dir, strerror(errno));
	int rc = 0;
	struct dirent *e;
	while (!rc && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_name[0] == '.' && !o->include_hidden)
			continue;
		char child_rel[4096], child[4096 + 256];
		if ((size_t)snprintf(child_rel, sizeof child_rel, "%s%s%s", rel, *rel ? "/" : "",
				     e->d_name) >= sizeof child_rel) {
			rc = bt_err_set(err, -ENAMETOOLONG, "%s/%s: path too long", dir, e->d_name);
			break;
		}
		snprintf(child, sizeof child, "%s/%s", root, child_rel);
		struct stat st;
		if (lstat(child, &st) != 0) {
			rc = bt_err_set(err, -errno, "%s: %s", child, strerror(errno));
		} else if (S_ISDIR(st.st_mode)) {
			rc = walk(root, child_rel, o, l, err);
		} else if (S_ISREG(st.st_mode)) {
			if (!bt_meta_component_ok((const uint8_t *)e->d_name, strlen(e->d_name)))
				rc = bt_err_set(err, -EINVAL, "%s: name not allowed in a torrent",
						child);
			else
				add_file(l, child_rel, st.st_size);
		}
		/* Symbolic links, sockets and devices are left out. */
	}
	closedir(d);
	return rc;
}

int64_t bt_make_piece_length(uint64_t total)
{
	int64_t pl = 16 << 10;
	while (pl < (16 << 20) && total / (uint64_t)pl > 2048)
		pl *= 2;
	return pl;
}

/* Hashes the files' concatenated bytes piece by piece into pieces (20 bytes each). */
static int hash_files(const char *root, bool single, const struct file_list *l, int64_t pl,
		      uint64_t total, const struct bt_make_opts *o, struct bt_buf *pieces,
		      struct bt_err *err)
{
	uint8_t *piece = bt_xmalloc((size_t)pl);
	size_t fill = 0;
	uint64_t done = 0, last_report = 0;
	int rc = 0;
	for (size_t i = 0; i < l->n && !rc; i++) {
		char path[8192];
		if (single)
			snprintf(path, sizeof path, "%s", root);
		else
			snprintf(path, sizeof path, "%s/%s", root, l->v[i].rel);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = bt_err_set(err, -errno, "%s: %s", path, strerror(errno));
			break;
		}
		int64_t left = l->v[i].length;
		while (left > 0) {
			size_t want = (size_t)pl - fill;
			if ((int64_t)want > left)
				want = (size_t)left;
			if (want > READ_CHUNK)
				want = READ_CHUNK;
			ssize_t n = read(fd, piece + fill, want);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				rc = n < 0 ? bt_err_set(err, -errno, "%s: %s", path,
							strerror(errno))
					   : bt_err_set(err, -EIO, "%s: changed while being read",
							path);
				break;
			}
			fill += (size_t)n;
			left -= n;
			done += (uint64_t)n;
			if (fill == (size_t)pl) {
				uint8_t d[BT_SHA1_LEN];
				bt_sha1(piece, fill, d);
				bt_buf_add(pieces, d, sizeof d);
				fill = 0;
			}
			if (o->progress && done - last_report >= (8u << 20)) {
				o->progress(o->progress_arg, done, total);
				last_report = done;
			}
		}
		close(fd);
	}
	if (!rc && fill) {
		uint8_t d[BT_SHA1_LEN];
		bt_sha1(piece, fill, d);
		bt_buf_add(pieces, d, sizeof d);
	}
	if (!rc && o->progress)
		o->progress(o->progress_arg, done, total);
	free(piece);
	return rc;
}

static void put_path(struct bt_buf *b, const char *rel)
{
	bt_benc_begin_list(b);
	for (const char *c = rel; *c;) {
		size_t n = strcspn(c, "/");
		bt_benc_put_str(b, c, n);
		c += n + (c[n] == '/');
	}
	bt_benc_end(b);
}

static void put_trackers(struct bt_buf *b, const struct bt_make_opts *o)
{
	/* announce: the first URL; announce-list: every tier, when there is more than one URL. */
	size_t first_len = strcspn(o->trackers[0], ",");
	bt_benc_put_cstr(b, "announce");
	bt_benc_put_str(b, o->trackers[0], first_len);
	bool many = o->tracker_count > 1 || o->trackers[0][first_len] == ',';
	if (!many)
		return;
	bt_benc_put_cstr(b, "announce-list");
	bt_benc_begin_list(b);
	for (size_t t = 0; t < o->tracker_count; t++) {
		bt_benc_begin_list(b);
		for (const char *c = o->trackers[t]; *c;) {
			size_t n = strcspn(c, ",");
			if (n)
				bt_benc_put_str(b, c, n);
			c += n + (c[n] == ',');
		}
		bt_benc_end(b);
	}
	bt_benc_end(b);
}

int bt_make_torrent(const struct bt_make_opts *o, struct bt_buf *out, struct bt_err *err)
{
	struct stat st;
	if (stat(o->path, &st) != 0)
		return bt_err_set(err, -errno, "%s: %s", o->path, strerror(errno));
	char root[4096];
	snprintf(root, sizeof root, "%s", o->path);
	for (size_t n = strlen(root); n > 1 && root[n - 1] == '/'; n--)
		root[n - 1] = '\0';
	const char *base = strrchr(root, '/') ? strrchr(root, '/') + 1 : root;
	const char *name = o->name ? o->name : base;
	if (!bt_meta_component_ok((const uint8_t *)name, strlen(name)))
		return bt_err_set(err, -EINVAL, "'%s' cannot be a torrent's name (use --name)",
				  name);

	struct file_list l = {0};
	bool single = S_ISREG(st.st_mode);
	int rc = 0;
	if (single)
		add_file(&l, "", st.st_size);
	else if (S_ISDIR(st.st_mode))
		rc = walk(root, "", o, &l, err);
	else
		rc = bt_err_set(err, -EINVAL, "%s: not a file or directory", o->path);
	uint64_t total = 0;
	for (size_t i = 0; i < l.n; i++)
		total += (uint64_t)l.v[i].length;
	if (!rc && l.n == 0)
		rc = bt_err_set(err, -ENOENT, "%s: no files to put in a torrent", o->path);
	else if (!rc && total == 0)
		rc = bt_err_set(err, -EINVAL, "%s: holds no data (every file is empty)", o->path);
	int64_t pl = o->piece_length ? o->piece_length : bt_make_piece_length(total);
	struct bt_buf pieces;
	bt_buf_init(&pieces);
	if (!rc) {
		qsort(l.v, l.n, sizeof *l.v, compare_rel);
		rc = hash_files(root, single, &l, pl, total, o, &pieces, err);
	}
	if (!rc) {
		struct bt_buf *b = out;
		bt_benc_begin_dict(b);
		if (o->tracker_count)
			put_trackers(b, o);
		if (o->comment) {
			bt_benc_put_cstr(b, "comment");
			bt_benc_put_cstr(b, o->comment);
		}
		bt_benc_put_cstr(b, "created by");
		bt_benc_put_cstr(b, "torrent-client/" BT_VERSION);
		if (!o->no_date) {
			bt_benc_put_cstr(b, "creation date");
			bt_benc_put_int(b, (int64_t)time(NULL));
		}
		bt_benc_put_cstr(b, "info");
		bt_benc_begin_dict(b);
		if (!single) {
			bt_benc_put_cstr(b, "files");
			bt_benc_begin_list(b);
			for (size_t i = 0; i < l.n; i++) {
				bt_benc_begin_dict(b);
				bt_benc_put_cstr(b, "length");
				bt_benc_put_int(b, l.v[i].length);
				bt_benc_put_cstr(b, "path");
				put_path(b, l.v[i].rel);
				bt_benc_end(b);
			}
			bt_benc_end(b);
		} else {
			bt_benc_put_cstr(b, "length");
			bt_benc_put_int(b, (int64_t)total);
		}
		bt_benc_put_cstr(b, "name");
		bt_benc_put_cstr(b, name);
		bt_benc_put_cstr(b, "piece length");
		bt_benc_put_int(b, pl);
		bt_benc_put_cstr(b, "pieces");
		bt_benc_put_str(b, pieces.data, pieces.len);
		if (o->is_private) {
			bt_benc_put_cstr(b, "private");
			bt_benc_put_int(b, 1);
		}
		bt_benc_end(b);
		if (o->web_seed_count) {
			bt_benc_put_cstr(b, "url-list");
			bt_benc_begin_list(b);
			for (size_t i = 0; i < o->web_seed_count; i++)
				bt_benc_put_cstr(b, o->web_seeds[i]);
			bt_benc_end(b);
		}
		bt_benc_end(b);
	}
	bt_buf_deinit(&pieces);
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].rel);
	free(l.v);
	return rc;
}
