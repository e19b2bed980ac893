/*
 * source: what a command's torrent argument names, loaded. It may be a .torrent file, an
 * http(s):// URL of one (fetched through the session's libcurl multi handle, size-capped like a
 * file), or a magnet link (parsed; its metadata is fetched later by the engine, or at once by
 * bt_source_fetch_metainfo for commands that need it before anything else). Front door only:
 * errors are printed in the usual one-line form and returned as exit codes.
 */
#ifndef BT_SOURCE_H
#define BT_SOURCE_H

#include "bt/download.h"
#include "bt/magnet.h"
#include "bt/metainfo.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct bt_session;

struct bt_source {
	const char *arg;      /* as given */
	bool is_magnet;	      /* mg is set; m only after bt_source_fetch_metainfo */
	bool has_meta;	      /* m is set */
	struct bt_metainfo m; /* a file's or URL's, or a magnet's once fetched */
	struct bt_magnet mg;  /* a magnet's */
};

/* True for "magnet:?..." and http(s) URLs: arguments that are not file names. */
bool bt_source_is_link(const char *arg);

/*
 * Loads arg for command cmd. A URL is fetched through session's HTTP client (session may be NULL
 * for a file or a magnet). Returns 0, or BT_EXIT_USAGE (bad file, URL reply or magnet) or
 * BT_EXIT_FAILURE (the URL could not be fetched), after printing the error.
 */
int bt_source_load(const char *cmd, const char *arg, struct bt_session *session,
		   struct bt_source *out);
void bt_source_deinit(struct bt_source *src);
const uint8_t *bt_source_info_hash(const struct bt_source *src);
/* The magnet's part of a download job (a magnet source only). */
struct bt_download_magnet bt_source_job_magnet(const struct bt_source *src);

/* The magnet's x.pe peers as socket addresses, appended to (addrs, lens, n). */
void bt_source_add_magnet_peers(const struct bt_source *src, struct sockaddr_storage **addrs,
				socklen_t **lens, size_t *n);

/*
 * For a magnet: runs a session until the metadata is fetched (from the magnet's trackers and
 * x.pe peers and the extra peers given) and fills src->m. peers may be NULL. No-op for a
 * torrent file. Returns 0 or an exit code after printing the error.
 */
int bt_source_fetch_metainfo(const char *cmd, struct bt_source *src,
			     const struct sockaddr_storage *peers, const socklen_t *lens,
			     size_t npeers, double timeout_s);

/* Writes the metainfo as a .torrent file (--save-torrent). Returns 0 or an exit code. */
int bt_source_save_torrent(const char *cmd, const struct bt_metainfo *m, const char *path);

#endif
