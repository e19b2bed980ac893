/*
 * download_internal: what the files of the download job share: download.c (the job's life,
 * names, the torrent's events, storing, finishing, the accessors) and download_prepare.c
 * (deciding what is on disk before a job starts: refusals, recheck, resume, seed data). Not for
 * any other module.
 */
#ifndef BT_DOWNLOAD_INTERNAL_H
#define BT_DOWNLOAD_INTERNAL_H

#include "bt/download.h"
#include "bt/storage.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

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

bool bt_download_exists(const char *path);
bool bt_download_have_wanted(const struct bt_download *d);
int bt_download_open_storage(struct bt_download *d, struct bt_storage **out, const char *root,
			     int flags, struct bt_err *err);
void bt_download_set_state(struct bt_download *d, enum bt_download_state state);
int bt_download_resolve_selection(struct bt_download *d, struct bt_err *err);
int bt_download_prepare_known(struct bt_download *d, struct bt_err *err);
char *bt_download_concat3(const char *a, const char *b, const char *c);

#endif
