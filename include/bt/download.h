/*
 * download: the job behind `download`, `download_piece` and `seed` — one torrent's data on disk
 * over its whole life. It decides the output's final and temporary names (`<final>.part`),
 * refuses to clobber what is not ours, opens storage, rechecks what is already there (resume,
 * --force, seed) through the verify module's cursor, runs a bt_torrent over the pieces still
 * wanted, stores each verified piece, and on completion trims, fsyncs and renames the data to
 * its final name, so the final name only ever holds complete, verified data. With seeding on it
 * goes on serving from the final name until a ratio or time limit.
 *
 * Where data goes: with `output` (-o) a single-file torrent is the file `output` and a
 * multi-file one the directory `output/<name>`; otherwise the content is `dir/<name>` (a file
 * or a folder; dir NULL means the current directory), as libtorrent's save path, aria2's -d and
 * Transmission's -w mean. A piece job writes exactly that piece's bytes to `output` (without
 * one, to `dir/<name>.piece<index>`). A seed job serves `data_path` if given, else
 * `dir/<name>`; a `data_path` that is a folder holding `<name>` is taken as a save path
 * (`<data_path>/<name>` is served) unless it holds the multi-file torrent's files itself.
 *
 * What is never touched: a final name that is not of the torrent's kind (a directory, FIFO,
 * device or link where a single file goes; anything but a directory for several files) is
 * refused by name, --force or not; --force only resumes from a regular file (or the
 * torrent's own folder). What is left behind: a job that ends (fails, is interrupted or is
 * freed) without a verified piece in its `.part` removes what it made (the `.part`, the
 * folders it created, and moves a --force'd output back); with verified pieces the `.part`
 * stays for the next run.
 *
 * Life: new → prepare (names, checks; synchronous, reporting progress through `checking`) →
 * start (on the session's loop) → the state moves to SEEDING, DONE or FAILED, each change
 * reported through `changed` → stop (the tracker's `stopped`, bounded) → free. The job never
 * stops the session: the front door runs the loop until every job has ended. Layer 3: it knows
 * the torrent, storage and the session, and nothing of the command line.
 *
 * A magnet's job (bt_download_new_magnet) starts in METADATA with no metainfo and no names: its
 * torrent fetches the info dict from peers; then the job parses it, decides the names, prepares
 * (as above, rechecking what is on disk) and moves to RUNNING on the same connections, reporting
 * `changed`. An INFO job ends (DONE) as soon as the metadata is there.
 *
 * A selection (opts.select, opts.exclude) makes `want` the pieces that overlap the selected
 * files: only those files are created, and the bytes of shared pieces that belong to other
 * files go to the side file `<final>.parts` (storage.h). Done with its selection, the job
 * renames to the final name as usual; a later run finding that final name beside its side
 * file resumes from it without --force (both are ours), so selecting more fetches only the
 * rest, and a run that ends with every file present removes the side file.
 */
#ifndef BT_DOWNLOAD_H
#define BT_DOWNLOAD_H

#include "bt/metainfo.h"
#include "bt/torrent.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct bt_session;
struct bt_download;

enum bt_download_kind {
	BT_DOWNLOAD_TORRENT, /* the whole torrent */
	BT_DOWNLOAD_PIECE,   /* one piece, to a file of its own */
	BT_DOWNLOAD_SEED,    /* existing data, served */
	BT_DOWNLOAD_INFO,    /* a magnet's metadata only */
};

enum bt_download_state {
	BT_DOWNLOAD_NEW,       /* before start */
	BT_DOWNLOAD_METADATA,  /* a magnet's info dict is being fetched */
	BT_DOWNLOAD_RUNNING,   /* fetching pieces */
	BT_DOWNLOAD_FINISHING, /* every piece verified: syncing and renaming (reported first) */
	BT_DOWNLOAD_SEEDING,   /* complete under its final name, serving */
	BT_DOWNLOAD_DONE,      /* complete (and seeding over, if it seeded) */
	BT_DOWNLOAD_FAILED,    /* bt_download_reason says why */
};

struct bt_download_opts {
	enum bt_download_kind kind;
	const char *dir;       /* content at dir/<name>; NULL: the current directory */
	const char *output;    /* -o, see above */
	const char *data_path; /* seed: the data itself; NULL: dir/<name> */
	uint32_t piece;	       /* for a piece job */
	bool force;	       /* resume from (or overwrite) an existing final output */
	bool seed;	       /* keep serving once complete */
	bool assume_valid;     /* seed without checking (data we just made) */
	double seed_ratio;     /* stop seeding at this upload ratio; 0: no limit */
	double seed_time;      /* stop seeding after this many seconds; 0: no limit */
	/* Which files to download (whole-torrent jobs): `select` lists file numbers as `info`
	 * shows them (from 1, pad files unnumbered), "1,3-5"; NULL: all. `exclude` drops the
	 * files whose path matches the fnmatch glob. */
	const char *select, *exclude;
	struct bt_torrent_opts torrent;
	const struct sockaddr_storage *peers; /* --peer addresses, already resolved */
	const socklen_t *peer_lens;
	size_t npeers;
};

struct bt_download_events {
	/* prepare is rechecking existing data: done of total pieces. May be NULL. */
	void (*checking)(void *arg, struct bt_download *d, uint32_t done, uint32_t total);
	/* The state changed (bt_download_state tells to what). May be NULL. */
	void (*changed)(void *arg, struct bt_download *d);
	/* After bt_download_stop: the job has let go of its peers and trackers. May be NULL. */
	void (*stopped)(void *arg, struct bt_download *d);
	/* A magnet's metainfo is known (bt_download_metainfo), before its outputs are prepared.
	 * May be NULL. */
	void (*metadata)(void *arg, struct bt_download *d);
};

/* A magnet: the info hash, the `dn` name if any (for messages) and the trackers. */
struct bt_download_magnet {
	uint8_t info_hash[BT_HASH_LEN];
	const char *name;
	const struct bt_meta_tier *tiers;
	size_t tier_count;
	char *const *web_seeds; /* ws= (BEP 19), become the fetched metainfo's web seeds */
	size_t web_seed_count;
};

/* m is borrowed and must outlive the job. */
struct bt_download *bt_download_new(struct bt_session *s, const struct bt_metainfo *m,
				    const struct bt_download_opts *opts,
				    const struct bt_download_events *ev, void *arg);
/* The job for a magnet; mg's strings and tiers are borrowed and must outlive the job. */
struct bt_download *bt_download_new_magnet(struct bt_session *s,
					   const struct bt_download_magnet *mg,
					   const struct bt_download_opts *opts,
					   const struct bt_download_events *ev, void *arg);
void bt_download_free(struct bt_download *d);

/*
 * Decides the names, refuses what it must not touch, opens storage and rechecks data already
 * there. Returns 0, or a negative errno with err naming the path and the reason. Afterwards
 * bt_download_resumed tells how many pieces were kept, and bt_download_state is DONE when the
 * final output was complete already and there is nothing to seed.
 */
int bt_download_prepare(struct bt_download *d, struct bt_err *err);
/* Starts fetching (or serving) on the session's loop; announces the session's listen port. */
void bt_download_start(struct bt_download *d);
/* Lets go of peers and tells the trackers (bounded); `stopped` follows. */
void bt_download_stop(struct bt_download *d);
bool bt_download_stopped(const struct bt_download *d);

enum bt_download_state bt_download_state(const struct bt_download *d);
bool bt_download_ended(const struct bt_download *d); /* DONE or FAILED */
const char *bt_download_reason(const struct bt_download *d);
/* The names are known from bt_download_new on (a magnet's once its metadata is: NULL before;
 * a seed job's folder data_path is resolved by prepare); the temporary one is NULL for a seed
 * job. */
const char *bt_download_final_path(const struct bt_download *d);
const char *bt_download_temp_path(const struct bt_download *d);
/* NULL while a magnet's metadata is fetched. */
const struct bt_metainfo *bt_download_metainfo(const struct bt_download *d);
/* A name for messages: the torrent's, else the magnet's `dn`, else the info hash in hex. */
const char *bt_download_name(const struct bt_download *d);
/* The info hash (known from the start, magnets included). */
const uint8_t *bt_download_info_hash(const struct bt_download *d);
/* Pieces found good by prepare's recheck (resume), -1 if there was nothing to recheck. */
int64_t bt_download_resumed(const struct bt_download *d);
/* True when the `.part` holds verified pieces (stored or resumed) and is kept when the job
 * ends unfinished; false means bt_download_free removes what the run made. */
bool bt_download_keeps_part(const struct bt_download *d);
/* True when prepare found the final output complete already. */
bool bt_download_was_complete(const struct bt_download *d);
/* Whether file i (an index into the metainfo's files) is selected; true without a selection. */
bool bt_download_file_selected(const struct bt_download *d, size_t i);
/* Seconds since seeding began, or -1. */
double bt_download_seeding_for(const struct bt_download *d);
/* The torrent, for its statistics; NULL before start or when nothing was run. */
struct bt_torrent *bt_download_torrent(const struct bt_download *d);

#endif
