/* The download job before it starts: what is on disk, refused, rechecked or resumed (see
 * download.h). */
#include "download_internal.h"

#include "bt/verify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_piece(void *arg, uint32_t piece, uint8_t *buf, uint32_t len)
{
	return bt_storage_read(arg, piece, 0, buf, len, NULL);
}

/* Rechecks the pieces in storage into `have`, reporting progress. Returns how many are good. */
static uint32_t check_pieces(struct bt_download *d, struct bt_storage *st)
{
	struct bt_recheck rc;
	bt_recheck_init(&rc, d->m, &d->have);
	/* A few MiB a step: progress is drawn between steps. */
	uint32_t step = (uint32_t)(((int64_t)8 << 20) / d->m->piece_length) + 1;
	double last = 0;
	while (!bt_recheck_done(&rc)) {
		bt_recheck_step(&rc, read_piece, st, step);
		if (d->ev.checking && (bt_now() - last > 0.25 || bt_recheck_done(&rc))) {
			d->ev.checking(d->arg, d, rc.checked, rc.total);
			last = bt_now();
		}
	}
	uint32_t good = rc.good;
	bt_recheck_deinit(&rc);
	return good;
}

/* Creates dir and any missing parents, as `mkdir -p` does, noting the ones it made. */
static int make_dirs(struct bt_download *d, const char *dir, struct bt_err *err)
{
	char *path = bt_xstrdup(dir);
	int rc = 0;
	for (char *p = path + 1;; p++) {
		bool last = *p == '\0';
		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (mkdir(path, 0777) == 0) {
			d->made_dirs = bt_xreallocarray(d->made_dirs, d->nmade_dirs + 1,
							sizeof *d->made_dirs);
			d->made_dirs[d->nmade_dirs++] = bt_xstrdup(path);
		} else if (errno != EEXIST) {
			rc = bt_err_set(err, -errno, "cannot create '%s': %s", path,
					strerror(errno));
			break;
		}
		if (last)
			break;
		*p = '/';
	}
	free(path);
	return rc;
}

/* The last component of path. */
static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* Opens the directory holding the final name: the user's --dir or -o parent, followed. */
static int open_parent(struct bt_download *d, struct bt_err *err)
{
	d->final_base = base_name(d->final_path);
	d->temp_base = d->temp_path ? base_name(d->temp_path) : NULL;
	size_t len = (size_t)(d->final_base - d->final_path);
	char *dir = len == 0   ? bt_xstrdup(".")
		    : len == 1 ? bt_xstrdup("/")
			       : bt_xstrndup(d->final_path, len - 1);
	d->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;
	if (d->dir_fd < 0)
		rc = bt_err_set(err, -errno, "cannot open '%s': %s", dir, strerror(errno));
	free(dir);
	return rc;
}

/* Refuses a symbolic link at one of our names: what it points to is not ours to write. */
static int refuse_link(const struct bt_download *d, const char *base, const char *path,
		       struct bt_err *err)
{
	struct stat st;
	if (fstatat(d->dir_fd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		return bt_err_set(err, -ELOOP,
				  "'%s' is a symbolic link; refusing to write through it", path);
	return 0;
}

/* What a file-system object is, for a refusal that names it. */
static const char *kind_of(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return "a device";
	if (S_ISSOCK(mode))
		return "a socket";
	return S_ISREG(mode) ? "a regular file" : "of an unknown kind";
}

/*
 * The final name holds something that is not this torrent's complete data. Unless it is of
 * the torrent's own kind (a regular file for one file, a directory for several), nothing may
 * touch it, --force or not: --force resumes from a partial download, it never moves the
 * user's folder (`-o Downloads`) or a FIFO, a device or a link out of the way.
 */
static int refuse_other_kind(const struct bt_download *d, struct bt_err *err)
{
	struct stat st;
	if (fstatat(d->dir_fd, d->final_base, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return bt_err_set(err, -errno, "cannot open '%s': %s", d->final_path,
				  strerror(errno));
	bool multi = d->m->multi_file;
	if (multi ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode))
		return 0;
	if (S_ISLNK(st.st_mode))
		return bt_err_set(err, -ELOOP,
				  "'%s' is a symbolic link; refusing to write through it",
				  d->final_path);
	return bt_err_set(err, multi ? -ENOTDIR : -EISDIR,
			  "'%s' is %s, not this torrent's %s; refusing to touch it (choose "
			  "another output)",
			  d->final_path, kind_of(st.st_mode), multi ? "folder" : "file");
}

static int prepare_torrent(struct bt_download *d, struct bt_err *err)
{
	const struct bt_metainfo *m = d->m;
	/* The folder the output goes in (--dir, -o's or -o itself), made if missing. */
	const char *slash = strrchr(d->final_path, '/');
	int rc = 0;
	if (slash && slash > d->final_path) {
		char *parent = bt_xstrndup(d->final_path, (size_t)(slash - d->final_path));
		rc = make_dirs(d, parent, err);
		free(parent);
	}
	if (rc || (rc = open_parent(d, err)) || (rc = bt_download_resolve_selection(d, err)))
		return rc;

	if (bt_download_exists(d->final_path)) {
		struct bt_storage *st;
		uint32_t good = 0;
		if (bt_download_open_storage(d, &st, d->final_path, BT_STORAGE_READONLY, NULL) ==
		    0) {
			good = check_pieces(d, st);
			bt_storage_free(st);
		}
		if (good && bt_download_have_wanted(d)) {
			d->was_complete = true;
			return 0;
		}
		if ((rc = refuse_other_kind(d, err)))
			return rc;
		/* A side file beside it: an earlier run with a selection made both. */
		bool ours = bt_download_exists(d->parts_path) && good > 0;
		if (!d->o.force && !ours)
			return bt_err_set(
				err, -EEXIST,
				"'%s' exists and is not this torrent's complete data (%u of "
				"%u pieces match); use --force to resume from it",
				d->final_path, good, m->piece_count);
		if (bt_download_exists(d->temp_path))
			return bt_err_set(err, -EEXIST, "both '%s' and '%s' exist; remove one",
					  d->final_path, d->temp_path);
		if (renameat(d->dir_fd, d->final_base, d->dir_fd, d->temp_base) != 0)
			return bt_err_set(err, -errno, "cannot rename '%s': %s", d->final_path,
					  strerror(errno));
		d->forced_rename = true;
		/* The data just checked goes on under its temporary name: `have` stands. */
		rc = bt_download_open_storage(d, &d->storage, d->temp_path, BT_STORAGE_CREATE, err);
		if (!rc)
			d->resumed = good;
		d->part_is_ours = true; /* what the open added to the user's data, not the data */
		return rc;
	}
	bool resuming = bt_download_exists(d->temp_path);
	rc = bt_download_open_storage(d, &d->storage, d->temp_path, BT_STORAGE_CREATE, err);
	if (rc)
		return rc;
	d->part_is_ours = true;
	if (resuming)
		d->resumed = check_pieces(d, d->storage);
	return 0;
}

static int prepare_piece(struct bt_download *d, struct bt_err *err)
{
	uint32_t index = d->o.piece;
	size_t len = (size_t)bt_meta_piece_size(d->m, index);
	if (bt_download_exists(d->final_path) && !d->o.force) {
		uint8_t *data;
		size_t n;
		if (bt_read_file(d->final_path, len, &data, &n, NULL) == 0) {
			bool good = n == len && bt_verify_piece(d->m, index, data);
			free(data);
			if (good) {
				d->was_complete = true;
				return 0;
			}
		}
		return bt_err_set(err, -EEXIST,
				  "'%s' exists and is not piece %u; use --force to overwrite it",
				  d->final_path, index);
	}
	int rc = open_parent(d, err);
	if (rc || (rc = refuse_link(d, d->final_base, d->final_path, err)))
		return rc;
	/* Not O_TRUNC: a link or a FIFO at the name is refused first, its target untouched. */
	d->piece_fd = openat(d->dir_fd, d->temp_base,
			     O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0666);
	if (d->piece_fd < 0) {
		int e = errno;
		if ((rc = refuse_link(d, d->temp_base, d->temp_path, err)))
			return rc;
		return bt_err_set(err, -e, "cannot create '%s': %s", d->temp_path, strerror(e));
	}
	struct stat st;
	if (fstat(d->piece_fd, &st) == 0 && !S_ISREG(st.st_mode))
		rc = bt_err_set(err, -EINVAL, "'%s' is not a regular file", d->temp_path);
	else if (ftruncate(d->piece_fd, 0) != 0)
		rc = bt_err_set(err, -errno, "cannot create '%s': %s", d->temp_path,
				strerror(errno));
	if (rc) {
		close(d->piece_fd);
		d->piece_fd = -1;
		return rc;
	}
	return 0;
}

/* Names the pieces of `have` that are missing, for the error a seed of bad data gets. */
static void list_missing(const struct bt_download *d, char *list, size_t size)
{
	size_t n = 0, shown = 0;
	list[0] = '\0';
	for (uint32_t i = 0; i < d->m->piece_count && n < size - 16; i++) {
		if (bt_bitfield_get(&d->have, i))
			continue;
		if (shown++ == 10) {
			snprintf(list + n, size - n, ", ...");
			break;
		}
		n += (size_t)snprintf(list + n, size - n, "%s%u", shown > 1 ? ", " : "", i);
	}
}

static bool is_dir_at(const char *dir, const char *rel)
{
	char *path = bt_download_concat3(dir, "/", rel);
	struct stat st;
	bool yes = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
	free(path);
	return yes;
}

static bool exists_at(const char *dir, const char *rel)
{
	char *path = bt_download_concat3(dir, "/", rel);
	bool yes = bt_download_exists(path);
	free(path);
	return yes;
}

/*
 * `seed t.torrent D` with D a folder: like a save path (libtorrent, Transmission), D holds
 * the content, D/<name>, unless D is itself a multi-file torrent's content (it holds the
 * torrent's first file), as `seed t.torrent D/<name>` has always meant.
 */
static void resolve_data_path(struct bt_download *d)
{
	const struct bt_metainfo *m = d->m;
	const char *path = d->final_path;
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return;
	if (m->multi_file) {
		const char *first = NULL;
		for (size_t i = 0; i < m->file_count && !first; i++)
			if (!m->files[i].pad && m->files[i].length > 0)
				first = m->files[i].path;
		if (!first || exists_at(path, first) || !is_dir_at(path, m->name))
			return;
	}
	char *inside = bt_download_concat3(path, "/", m->name);
	free(d->final_path);
	d->final_path = inside;
}

static int prepare_seed(struct bt_download *d, struct bt_err *err)
{
	const struct bt_metainfo *m = d->m;
	if (d->o.data_path)
		resolve_data_path(d);
	int rc = bt_storage_open(&d->storage, m, d->final_path, BT_STORAGE_READONLY, err);
	if (rc)
		return rc;
	if (d->o.assume_valid) {
		/* Data we just made (bench): its pieces are known good, skip the re-hash. */
		bt_bitfield_set_all(&d->have);
		return 0;
	}
	uint32_t good = check_pieces(d, d->storage);
	if (good == m->piece_count)
		return 0;
	char list[256];
	list_missing(d, list, sizeof list);
	return bt_err_set(err, -EINVAL,
			  "'%s' does not match the torrent: %u of %u pieces differ (%s)",
			  d->final_path, m->piece_count - good, m->piece_count, list);
}

/* Everything prepare does once the metainfo is known. */
int bt_download_prepare_known(struct bt_download *d, struct bt_err *err)
{
	int rc = d->o.kind == BT_DOWNLOAD_PIECE	 ? prepare_piece(d, err)
		 : d->o.kind == BT_DOWNLOAD_SEED ? prepare_seed(d, err)
						 : prepare_torrent(d, err);
	if (rc || !d->was_complete)
		return rc;
	if (!d->o.seed) {
		bt_download_set_state(d, BT_DOWNLOAD_DONE);
		return 0;
	}
	/* Complete already: seed from the final name (`have` holds what the recheck found,
	 * every piece unless a selection left some out). */
	rc = bt_download_open_storage(d, &d->storage, d->final_path, BT_STORAGE_READONLY, err);
	if (!rc && !d->sel && d->o.kind != BT_DOWNLOAD_TORRENT)
		bt_bitfield_set_all(&d->have);
	return rc;
}

int bt_download_prepare(struct bt_download *d, struct bt_err *err)
{
	/* A magnet's names and data are known only once its metadata is. */
	return d->m ? bt_download_prepare_known(d, err) : 0;
}
