#include "bt/download.h"

#include "bt/session.h"
#include "bt/storage.h"
#include "bt/verify.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct bt_download {
	struct bt_session *s;
	const struct bt_metainfo *m;  /* NULL while a magnet's metadata is fetched */
	struct bt_download_magnet mg; /* a magnet's job */
	bool magnet;
	char hex_name[2 * BT_HASH_LEN + 1];
	struct bt_metainfo own; /* a magnet's metainfo, once fetched */
	struct bt_download_opts o;
	struct bt_download_events ev;
	void *arg;
	enum bt_download_state state;
	struct bt_torrent *torrent;
	struct bt_storage *storage; /* whole-torrent and seed jobs */
	int piece_fd;		    /* piece jobs: the temporary file */
	char *final_path, *temp_path;
	/* The directory holding both names (the user's, followed), opened by prepare, and the
	 * names in it: what is ours is only ever reached relative to it, never through a link. */
	int dir_fd;
	const char *final_base, *temp_base;
	struct bt_bitfield have, want;
	bool *sel;	  /* per file; NULL: every file */
	char *parts_path; /* `<final>.parts`, the side file of a selection */
	bool was_complete, stopping, stopped;
	/* What this run made, to be undone if it ends with nothing verified stored: the `.part`
	 * (through storage's own record), the final name moved to it by --force, and the folders
	 * make_dirs created, parents first. */
	bool part_is_ours, forced_rename;
	char **made_dirs;
	size_t nmade_dirs;
	uint32_t stored; /* pieces stored in this run */
	int64_t resumed;
	double seeding_since;
	struct event *tick; /* seed limits */
	char reason[512];
};

static void set_state(struct bt_download *d, enum bt_download_state state)
{
	if (d->state == state)
		return;
	d->state = state;
	if (d->ev.changed)
		d->ev.changed(d->arg, d);
}

static void fail(struct bt_download *d, const char *fmt, ...) BT_PRINTF(2, 3);
static void fail(struct bt_download *d, const char *fmt, ...)
{
	if (bt_download_ended(d))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof d->reason, fmt, ap);
	va_end(ap);
	set_state(d, BT_DOWNLOAD_FAILED);
	bt_download_stop(d);
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* a, b and c joined, however long (paths are not cut). */
static char *concat3(const char *a, const char *b, const char *c)
{
	struct bt_buf buf;
	bt_buf_init(&buf);
	bt_buf_adds(&buf, a);
	bt_buf_adds(&buf, b);
	bt_buf_adds(&buf, c);
	return (char *)bt_buf_steal(&buf, NULL);
}

/* The final and temporary names, from the options alone (nothing is looked at on disk). */
static void name_outputs(struct bt_download *d)
{
	const struct bt_metainfo *m = d->m;
	const char *dir = d->o.dir;
	if (d->o.kind == BT_DOWNLOAD_PIECE && !d->o.output) {
		/* --dir instead of -o: the piece beside where the whole torrent would go. */
		char index[32];
		snprintf(index, sizeof index, ".piece%u", d->o.piece);
		char *base = concat3(dir ? dir : ".", "/", m->name);
		d->final_path = concat3(base, index, "");
		free(base);
	} else if (d->o.kind == BT_DOWNLOAD_PIECE)
		d->final_path = bt_xstrdup(d->o.output);
	else if (d->o.kind == BT_DOWNLOAD_SEED && d->o.data_path)
		d->final_path = bt_xstrdup(d->o.data_path);
	else if (d->o.output && d->o.kind != BT_DOWNLOAD_SEED)
		d->final_path = m->multi_file ? concat3(d->o.output, "/", m->name)
					      : bt_xstrdup(d->o.output);
	else if (dir)
		d->final_path = concat3(dir, "/", m->name);
	else if (d->o.kind == BT_DOWNLOAD_SEED || !m->multi_file)
		d->final_path = bt_xstrdup(m->name);
	else
		d->final_path = concat3("./", m->name, "");
	if (d->o.kind != BT_DOWNLOAD_SEED)
		d->temp_path = concat3(d->final_path, ".part", "");
	d->parts_path = concat3(d->final_path, ".parts", "");
}

/* Parses a decimal file number at *p, advancing it; 0 when there is none or it is too big. */
static size_t file_number(const char **p)
{
	size_t n = 0;
	if (**p < '0' || **p > '9')
		return 0;
	while (**p >= '0' && **p <= '9') {
		if (n > 100000000)
			return 0;
		n = n * 10 + (size_t)(**p - '0');
		(*p)++;
	}
	return n;
}

/*
 * Turns opts.select and opts.exclude into d->sel (NULL when every file stays selected) and
 * `want` (the pieces overlapping a selected file). Numbers count the files that are not pad
 * files from 1, as `info` prints them.
 */
static int resolve_selection(struct bt_download *d, struct bt_err *err)
{
	const struct bt_metainfo *m = d->m;
	if (d->o.kind != BT_DOWNLOAD_TORRENT || (!d->o.select && !d->o.exclude))
		return 0;
	size_t nfiles = 0;
	for (size_t i = 0; i < m->file_count; i++)
		nfiles += !m->files[i].pad;
	bool *by_number = bt_xcalloc(nfiles + 1, sizeof *by_number);
	if (!d->o.select) {
		for (size_t k = 1; k <= nfiles; k++)
			by_number[k] = true;
	} else {
		const char *p = d->o.select;
		for (;;) {
			const char *item = p;
			size_t first = file_number(&p), last = first;
			if (first && *p == '-') {
				p++;
				last = file_number(&p);
			}
			if (!first || !last || last < first || (*p && *p != ',')) {
				free(by_number);
				return bt_err_set(err, -EINVAL,
						  "--select: '%.*s' is not a file number or range "
						  "like 1,3-5",
						  (int)strcspn(item, ","), item);
			}
			if (last > nfiles) {
				free(by_number);
				return bt_err_set(
					err, -EINVAL,
					"--select: file %zu is out of range: the torrent has "
					"%zu files (1 to %zu)",
					last, nfiles, nfiles);
			}
			for (size_t k = first; k <= last; k++)
				by_number[k] = true;
			if (!*p)
				break;
			p++;
		}
	}
	d->sel = bt_xcalloc(m->file_count, sizeof *d->sel);
	bool all = true, any = false;
	for (size_t i = 0, k = 0; i < m->file_count; i++) {
		if (m->files[i].pad)
			continue;
		bool on = by_number[++k];
		if (on && d->o.exclude && fnmatch(d->o.exclude, m->files[i].path, 0) == 0)
			on = false;
		d->sel[i] = on;
		all = all && on;
		any = any || on;
	}
	free(by_number);
	if (!any)
		return bt_err_set(err, -EINVAL,
				  "--select/--exclude: no file of '%s' is left to "
				  "download",
				  m->name);
	bt_bitfield_deinit(&d->want);
	bt_bitfield_init(&d->want, m->piece_count);
	for (size_t i = 0; i < m->file_count; i++) {
		const struct bt_meta_file *f = &m->files[i];
		if (m->files[i].pad || f->length == 0)
			continue;
		/* An unselected file still counts as selected in the pieces it shares with a
		 * selected one: those are wanted because of the selected file. */
		if (!d->sel[i] && !all)
			continue;
		uint32_t a = (uint32_t)(f->offset / m->piece_length);
		uint32_t b = (uint32_t)((f->offset + f->length - 1) / m->piece_length);
		for (uint32_t k = a; k <= b; k++)
			bt_bitfield_set(&d->want, k);
	}
	if (all) {
		free(d->sel);
		d->sel = NULL;
	}
	return 0;
}

/* Every wanted piece is had. */
static bool have_wanted(const struct bt_download *d)
{
	for (uint32_t k = 0; k < d->m->piece_count; k++)
		if (bt_bitfield_get(&d->want, k) && !bt_bitfield_get(&d->have, k))
			return false;
	return true;
}

/* Opens storage at root with the job's selection and, when there is one or an earlier run
 * left it, the side file. */
static int open_storage(struct bt_download *d, struct bt_storage **out, const char *root, int flags,
			struct bt_err *err)
{
	struct bt_storage_select sel = {
		.files = d->sel, .parts = d->sel || exists(d->parts_path) ? d->parts_path : NULL};
	return bt_storage_open_select(out, d->m, root, flags, &sel, err);
}

static struct bt_download *download_alloc(struct bt_session *s, const struct bt_download_opts *opts,
					  const struct bt_download_events *ev, void *arg)
{
	struct bt_download *d = bt_xcalloc(1, sizeof *d);
	d->s = s;
	d->o = *opts;
	if (ev)
		d->ev = *ev;
	d->arg = arg;
	d->piece_fd = -1;
	d->dir_fd = -1;
	d->resumed = -1;
	d->seeding_since = -1;
	if (d->o.kind == BT_DOWNLOAD_SEED)
		d->o.seed = true;
	return d;
}

/* What the metainfo decides: the piece sets and the names. */
static void set_metainfo(struct bt_download *d, const struct bt_metainfo *m)
{
	d->m = m;
	bt_bitfield_deinit(&d->have);
	bt_bitfield_deinit(&d->want);
	bt_bitfield_init(&d->have, m->piece_count);
	bt_bitfield_init(&d->want, m->piece_count);
	if (d->o.kind == BT_DOWNLOAD_PIECE)
		bt_bitfield_set(&d->want, d->o.piece);
	else
		bt_bitfield_set_all(&d->want);
	name_outputs(d);
}

struct bt_download *bt_download_new(struct bt_session *s, const struct bt_metainfo *m,
				    const struct bt_download_opts *opts,
				    const struct bt_download_events *ev, void *arg)
{
	struct bt_download *d = download_alloc(s, opts, ev, arg);
	set_metainfo(d, m);
	return d;
}

struct bt_download *bt_download_new_magnet(struct bt_session *s,
					   const struct bt_download_magnet *mg,
					   const struct bt_download_opts *opts,
					   const struct bt_download_events *ev, void *arg)
{
	struct bt_download *d = download_alloc(s, opts, ev, arg);
	d->mg = *mg;
	d->magnet = true;
	bt_hex_encode(d->hex_name, mg->info_hash, BT_HASH_LEN);
	return d;
}

bool bt_download_keeps_part(const struct bt_download *d)
{
	return d->o.kind == BT_DOWNLOAD_TORRENT && !d->was_complete &&
	       (d->stored > 0 || d->resumed > 0);
}

/*
 * A run that got no verified piece leaves nothing behind: the `.part` it created (a
 * preallocated file or tree), the user's output it moved there under --force (moved back),
 * and the folders it made. Only what this run made is removed, and folders only when empty.
 */
static void leave_nothing(struct bt_download *d)
{
	bool ended_well = d->state == BT_DOWNLOAD_DONE || d->state == BT_DOWNLOAD_SEEDING ||
			  d->state == BT_DOWNLOAD_FINISHING;
	bool keep = ended_well || bt_download_keeps_part(d) || d->o.kind == BT_DOWNLOAD_SEED;
	if (!keep && d->part_is_ours)
		bt_storage_discard(d->storage);
	else
		bt_storage_free(d->storage);
	d->storage = NULL;
	if (keep)
		return;
	struct stat st;
	if (d->forced_rename && fstatat(d->dir_fd, d->final_base, &st, AT_SYMLINK_NOFOLLOW) != 0)
		renameat(d->dir_fd, d->temp_base, d->dir_fd, d->final_base);
	for (size_t i = d->nmade_dirs; i-- > 0;)
		rmdir(d->made_dirs[i]);
}

void bt_download_free(struct bt_download *d)
{
	if (!d)
		return;
	bt_torrent_free(d->torrent);
	if (d->tick)
		event_free(d->tick);
	if (d->piece_fd >= 0) {
		close(d->piece_fd);
		if (d->state != BT_DOWNLOAD_DONE)
			unlinkat(d->dir_fd, d->temp_base, 0);
	}
	leave_nothing(d);
	if (d->dir_fd >= 0)
		close(d->dir_fd);
	for (size_t i = 0; i < d->nmade_dirs; i++)
		free(d->made_dirs[i]);
	free(d->made_dirs);
	free(d->final_path);
	free(d->temp_path);
	free(d->parts_path);
	free(d->sel);
	bt_bitfield_deinit(&d->have);
	bt_bitfield_deinit(&d->want);
	if (d->magnet)
		bt_meta_deinit(&d->own);
	free(d);
}

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
	if (rc || (rc = open_parent(d, err)) || (rc = resolve_selection(d, err)))
		return rc;

	if (exists(d->final_path)) {
		struct bt_storage *st;
		uint32_t good = 0;
		if (open_storage(d, &st, d->final_path, BT_STORAGE_READONLY, NULL) == 0) {
			good = check_pieces(d, st);
			bt_storage_free(st);
		}
		if (good && have_wanted(d)) {
			d->was_complete = true;
			return 0;
		}
		if ((rc = refuse_other_kind(d, err)))
			return rc;
		/* A side file beside it: an earlier run with a selection made both. */
		bool ours = exists(d->parts_path) && good > 0;
		if (!d->o.force && !ours)
			return bt_err_set(
				err, -EEXIST,
				"'%s' exists and is not this torrent's complete data (%u of "
				"%u pieces match); use --force to resume from it",
				d->final_path, good, m->piece_count);
		if (exists(d->temp_path))
			return bt_err_set(err, -EEXIST, "both '%s' and '%s' exist; remove one",
					  d->final_path, d->temp_path);
		if (renameat(d->dir_fd, d->final_base, d->dir_fd, d->temp_base) != 0)
			return bt_err_set(err, -errno, "cannot rename '%s': %s", d->final_path,
					  strerror(errno));
		d->forced_rename = true;
		/* The data just checked goes on under its temporary name: `have` stands. */
		rc = open_storage(d, &d->storage, d->temp_path, BT_STORAGE_CREATE, err);
		if (!rc)
			d->resumed = good;
		d->part_is_ours = true; /* what the open added to the user's data, not the data */
		return rc;
	}
	bool resuming = exists(d->temp_path);
	rc = open_storage(d, &d->storage, d->temp_path, BT_STORAGE_CREATE, err);
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
	if (exists(d->final_path) && !d->o.force) {
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
	char *path = concat3(dir, "/", rel);
	struct stat st;
	bool yes = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
	free(path);
	return yes;
}

static bool exists_at(const char *dir, const char *rel)
{
	char *path = concat3(dir, "/", rel);
	bool yes = exists(path);
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
	char *inside = concat3(path, "/", m->name);
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
static int prepare_known(struct bt_download *d, struct bt_err *err)
{
	int rc = d->o.kind == BT_DOWNLOAD_PIECE	 ? prepare_piece(d, err)
		 : d->o.kind == BT_DOWNLOAD_SEED ? prepare_seed(d, err)
						 : prepare_torrent(d, err);
	if (rc || !d->was_complete)
		return rc;
	if (!d->o.seed) {
		set_state(d, BT_DOWNLOAD_DONE);
		return 0;
	}
	/* Complete already: seed from the final name (`have` holds what the recheck found,
	 * every piece unless a selection left some out). */
	rc = open_storage(d, &d->storage, d->final_path, BT_STORAGE_READONLY, err);
	if (!rc && !d->sel && d->o.kind != BT_DOWNLOAD_TORRENT)
		bt_bitfield_set_all(&d->have);
	return rc;
}

int bt_download_prepare(struct bt_download *d, struct bt_err *err)
{
	/* A magnet's names and data are known only once its metadata is. */
	return d->m ? prepare_known(d, err) : 0;
}

static int store_piece(void *arg, uint32_t piece, const uint8_t *data, struct bt_err *err)
{
	struct bt_download *d = arg;
	if (d->storage) {
		int rc = bt_storage_write_piece(d->storage, piece, data, err);
		d->stored += rc == 0;
		return rc;
	}
	size_t len = (size_t)bt_meta_piece_size(d->m, piece);
	for (size_t off = 0; off < len;) {
		ssize_t n = pwrite(d->piece_fd, data + off, len - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return bt_err_set(err, -errno, "%s: %s", d->temp_path, strerror(errno));
		if (n == 0)
			return bt_err_set(err, -EIO, "%s: nothing written", d->temp_path);
		off += (size_t)n;
	}
	return 0;
}

static int read_block(void *arg, uint32_t piece, uint32_t begin, uint32_t length, uint8_t *dest)
{
	struct bt_download *d = arg;
	if (!d->storage)
		return -EIO;
	return bt_storage_read(d->storage, piece, begin, dest, length, NULL);
}

/* Makes the complete data durable and gives it its final name. */
static int finalize(struct bt_download *d, struct bt_err *err)
{
	/* A resumed (--force) file may have been longer than the torrent: cut it to size. */
	if (d->storage) {
		int rc = bt_storage_trim(d->storage, err);
		if (!rc)
			rc = bt_storage_sync(d->storage, err);
		if (rc)
			return rc;
	}
	if (d->piece_fd >= 0 && fsync(d->piece_fd) != 0)
		return bt_err_set(err, -errno, "%s: %s", d->temp_path, strerror(errno));
	if (renameat(d->dir_fd, d->temp_base, d->dir_fd, d->final_base) != 0)
		return bt_err_set(err, -errno, "cannot rename '%s' to '%s': %s", d->temp_path,
				  d->final_path, strerror(errno));
	/* Every file is in place now: what the side file held was moved into them. */
	if (d->storage && !d->sel && d->o.kind == BT_DOWNLOAD_TORRENT)
		unlink(d->parts_path);
	return 0;
}

static void start_seeding(struct bt_download *d)
{
	d->seeding_since = bt_now();
	struct timeval one = {1, 0};
	event_add(d->tick, &one);
	set_state(d, BT_DOWNLOAD_SEEDING);
}

static void on_complete(void *arg)
{
	struct bt_download *d = arg;
	if (d->state != BT_DOWNLOAD_RUNNING)
		return;
	if (d->o.kind != BT_DOWNLOAD_SEED && !d->was_complete) {
		/* Shown as done before the fsync, which can take a while for a large download. */
		set_state(d, BT_DOWNLOAD_FINISHING);
		struct bt_err err;
		if (finalize(d, &err)) {
			fail(d, "%s", err.msg);
			return;
		}
	}
	if (d->o.seed) {
		start_seeding(d);
		return;
	}
	set_state(d, BT_DOWNLOAD_DONE);
	bt_download_stop(d);
}

static void on_failed(void *arg, const char *reason)
{
	fail(arg, "%s", reason);
}

static void on_torrent_stopped(void *arg)
{
	struct bt_download *d = arg;
	if (d->stopped)
		return;
	d->stopped = true;
	if (d->ev.stopped)
		d->ev.stopped(d->arg, d);
}

/* Once a second while seeding: has a limit been reached? */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bt_download *d = arg;
	if (d->state != BT_DOWNLOAD_SEEDING)
		return;
	struct bt_torrent_stats st;
	bt_torrent_get_stats(d->torrent, &st);
	if ((d->o.seed_ratio > 0 &&
	     (double)st.uploaded_bytes >= d->o.seed_ratio * (double)d->m->total_length) ||
	    (d->o.seed_time > 0 && bt_now() - d->seeding_since >= d->o.seed_time)) {
		set_state(d, BT_DOWNLOAD_DONE);
		bt_download_stop(d);
	}
}

/* A magnet's info dict arrived: the job now knows what it downloads, and where. */
static int on_metadata(void *arg, const uint8_t *info, size_t len, struct bt_err *err)
{
	struct bt_download *d = arg;
	if (d->m)
		return 0;
	int rc = bt_meta_parse_info(&d->own, info, len, d->mg.tiers, d->mg.tier_count, err);
	if (rc)
		return rc;
	/* An info dict has no url-list: a magnet's web seeds are its ws= values. */
	if (d->mg.web_seed_count) {
		d->own.web_seeds = bt_xcalloc(d->mg.web_seed_count, sizeof *d->own.web_seeds);
		for (size_t i = 0; i < d->mg.web_seed_count; i++)
			d->own.web_seeds[i] = bt_xstrdup(d->mg.web_seeds[i]);
		d->own.web_seed_count = d->mg.web_seed_count;
	}
	if (d->o.kind == BT_DOWNLOAD_PIECE && d->o.piece >= d->own.piece_count) {
		uint32_t count = d->own.piece_count;
		bt_meta_deinit(&d->own);
		return bt_err_set(
			err, -EINVAL,
			"piece index %u is out of range: the torrent has %u pieces (0 to %u)",
			d->o.piece, count, count - 1);
	}
	set_metainfo(d, &d->own);
	if (d->ev.metadata)
		d->ev.metadata(d->arg, d);
	if (d->o.kind == BT_DOWNLOAD_INFO) {
		set_state(d, BT_DOWNLOAD_DONE);
		bt_download_stop(d);
		return 0;
	}
	if ((rc = prepare_known(d, err)))
		return rc;
	if (d->state == BT_DOWNLOAD_DONE) {
		bt_download_stop(d);
		return 0;
	}
	set_state(d, BT_DOWNLOAD_RUNNING);
	bt_torrent_set_metainfo(d->torrent, d->m, &d->have, &d->want);
	return 0;
}

void bt_download_start(struct bt_download *d)
{
	if (d->state != BT_DOWNLOAD_NEW)
		return;
	struct bt_torrent_opts topts = d->o.torrent;
	topts.seed = d->o.seed;
	topts.port = bt_session_listen_port(d->s);
	bool serves = d->storage || (d->magnet && d->o.kind == BT_DOWNLOAD_TORRENT);
	struct bt_torrent_events tev = {.piece_verified = store_piece,
					.read_block = serves ? read_block : NULL,
					.complete = on_complete,
					.failed = on_failed,
					.stopped = on_torrent_stopped,
					.metadata = on_metadata};
	if (d->magnet)
		d->torrent = bt_torrent_new_magnet(d->s, d->mg.info_hash, d->mg.tiers,
						   d->mg.tier_count, &topts, &tev, d);
	else
		d->torrent = bt_torrent_new(d->s, d->m, &d->have, &d->want, &topts, &tev, d);
	for (size_t i = 0; i < d->o.npeers; i++)
		bt_torrent_add_peer(d->torrent, (const struct sockaddr *)&d->o.peers[i],
				    d->o.peer_lens[i]);
	d->tick = event_new(bt_session_base(d->s), -1, EV_PERSIST, on_tick, d);
	if (!d->tick)
		bt_oom();
	d->state = d->m ? BT_DOWNLOAD_RUNNING : BT_DOWNLOAD_METADATA;
	bt_torrent_start(d->torrent);
}

void bt_download_stop(struct bt_download *d)
{
	if (d->stopping)
		return;
	d->stopping = true;
	if (d->tick)
		event_del(d->tick);
	if (!d->torrent) {
		on_torrent_stopped(d);
		return;
	}
	bt_torrent_stop(d->torrent);
	if (bt_torrent_stopped(d->torrent))
		on_torrent_stopped(d);
}

bool bt_download_stopped(const struct bt_download *d)
{
	return d->stopped;
}

enum bt_download_state bt_download_state(const struct bt_download *d)
{
	return d->state;
}

bool bt_download_ended(const struct bt_download *d)
{
	return d->state == BT_DOWNLOAD_DONE || d->state == BT_DOWNLOAD_FAILED;
}

const char *bt_download_reason(const struct bt_download *d)
{
	return d->reason;
}

const char *bt_download_final_path(const struct bt_download *d)
{
	return d->final_path;
}

const char *bt_download_temp_path(const struct bt_download *d)
{
	return d->temp_path;
}

const struct bt_metainfo *bt_download_metainfo(const struct bt_download *d)
{
	return d->m;
}

const char *bt_download_name(const struct bt_download *d)
{
	return d->m ? d->m->name : d->mg.name ? d->mg.name : d->hex_name;
}

const uint8_t *bt_download_info_hash(const struct bt_download *d)
{
	return d->magnet ? d->mg.info_hash : d->m->info_hash;
}

int64_t bt_download_resumed(const struct bt_download *d)
{
	return d->resumed;
}

bool bt_download_was_complete(const struct bt_download *d)
{
	return d->was_complete;
}

bool bt_download_file_selected(const struct bt_download *d, size_t i)
{
	return !d->sel || d->sel[i];
}

double bt_download_seeding_for(const struct bt_download *d)
{
	return d->seeding_since < 0 ? -1 : bt_now() - d->seeding_since;
}

struct bt_torrent *bt_download_torrent(const struct bt_download *d)
{
	return d->torrent;
}
