#include "download_internal.h"

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

void bt_download_set_state(struct bt_download *d, enum bt_download_state state)
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
	bt_download_set_state(d, BT_DOWNLOAD_FAILED);
	bt_download_stop(d);
}

bool bt_download_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* a, b and c joined, however long (paths are not cut). */
char *bt_download_concat3(const char *a, const char *b, const char *c)
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
		char *base = bt_download_concat3(dir ? dir : ".", "/", m->name);
		d->final_path = bt_download_concat3(base, index, "");
		free(base);
	} else if (d->o.kind == BT_DOWNLOAD_PIECE)
		d->final_path = bt_xstrdup(d->o.output);
	else if (d->o.kind == BT_DOWNLOAD_SEED && d->o.data_path)
		d->final_path = bt_xstrdup(d->o.data_path);
	else if (d->o.output && d->o.kind != BT_DOWNLOAD_SEED)
		d->final_path = m->multi_file ? bt_download_concat3(d->o.output, "/", m->name)
					      : bt_xstrdup(d->o.output);
	else if (dir)
		d->final_path = bt_download_concat3(dir, "/", m->name);
	else if (d->o.kind == BT_DOWNLOAD_SEED || !m->multi_file)
		d->final_path = bt_xstrdup(m->name);
	else
		d->final_path = bt_download_concat3("./", m->name, "");
	if (d->o.kind != BT_DOWNLOAD_SEED)
		d->temp_path = bt_download_concat3(d->final_path, ".part", "");
	d->parts_path = bt_download_concat3(d->final_path, ".parts", "");
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
int bt_download_resolve_selection(struct bt_download *d, struct bt_err *err)
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
bool bt_download_have_wanted(const struct bt_download *d)
{
	for (uint32_t k = 0; k < d->m->piece_count; k++)
		if (bt_bitfield_get(&d->want, k) && !bt_bitfield_get(&d->have, k))
			return false;
	return true;
}

/* Opens storage at root with the job's selection and, when there is one or an earlier run
 * left it, the side file. */
int bt_download_open_storage(struct bt_download *d, struct bt_storage **out, const char *root,
			     int flags, struct bt_err *err)
{
	struct bt_storage_select sel = {
		.files = d->sel,
		.parts = d->sel || bt_download_exists(d->parts_path) ? d->parts_path : NULL};
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
	bt_download_set_state(d, BT_DOWNLOAD_SEEDING);
}

static void on_complete(void *arg)
{
	struct bt_download *d = arg;
	if (d->state != BT_DOWNLOAD_RUNNING)
		return;
	if (d->o.kind != BT_DOWNLOAD_SEED && !d->was_complete) {
		/* Shown as done before the fsync, which can take a while for a large download. */
		bt_download_set_state(d, BT_DOWNLOAD_FINISHING);
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
	bt_download_set_state(d, BT_DOWNLOAD_DONE);
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
		bt_download_set_state(d, BT_DOWNLOAD_DONE);
		bt_download_stop(d);
	}
}

/* A magnet's info dict arrived: the job now knows what it downloads, and where. */
static int on_metadata(void *arg, const struct bt_metadata *md, struct bt_err *err)
{
	struct bt_download *d = arg;
	if (d->m)
		return 0;
	/* A large dict is parsed from the fetcher's file, which then becomes its spill file. */
	int rc = bt_metadata_parse(md, &d->own, d->mg.tiers, d->mg.tier_count, err);
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
		bt_download_set_state(d, BT_DOWNLOAD_DONE);
		bt_download_stop(d);
		return 0;
	}
	if ((rc = bt_download_prepare_known(d, err)))
		return rc;
	if (d->state == BT_DOWNLOAD_DONE) {
		bt_download_stop(d);
		return 0;
	}
	bt_download_set_state(d, BT_DOWNLOAD_RUNNING);
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
