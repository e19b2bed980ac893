/*
 * jobargs: the command lines of `download`, `download_piece` and `seed`, parsed into one
 * struct bt_job_args, with their --help texts. Pure argv work: usage errors are reported in
 * the usual one-line form and nothing is opened, resolved or started here.
 */
#ifndef BT_JOBARGS_H
#define BT_JOBARGS_H

#include "bt/jobview.h"

#include <stdbool.h>
#include <stddef.h>

enum bt_job_mode { BT_JOB_DOWNLOAD, BT_JOB_PIECE, BT_JOB_SEED };

struct bt_job_args {
	const char *command;
	const char *output, *dir, *listen_ip;
	char **peers;
	size_t npeers;
	unsigned long max_peers, port;
	double stall_timeout;
	const char *select, *exclude; /* download: --select LIST, --exclude GLOB; NULL: none */
	bool sequential, first_last;  /* download: picker orders */
	bool force, no_tracker, seed, verbose, assume_valid;
	double seed_ratio, seed_time; /* 0: no limit */
	double max_down, max_up;      /* bytes/s; 0: unlimited */
	enum bt_view_mode progress;
	enum bt_job_mode mode;
	char **torrents;
	size_t ntorrents;
	const char *piece_arg; /* download_piece: the index */
	const char *data_path; /* seed: the data's path */
	/* download: --plot FILE.svg, --stats FILE (JSON lines); NULL when not asked for */
	const char *plot_path, *stats_path;
	const char *save_torrent; /* --save-torrent: write the metainfo there once known */
	bool no_dht;
	const char **dht_routers; /* --dht-bootstrap, in order; the caller frees the array */
	size_t ndht_routers;
	unsigned long dht_port;
};

extern const char bt_job_download_help[], bt_job_piece_help[], bt_job_seed_help[];

/*
 * Parses argv (argv[0] is the command) into a, whose command and mode the caller set. Returns
 * 0, -1 after printing --help, or BT_EXIT_USAGE after a usage error. The caller frees a->peers.
 */
int bt_job_args_parse(int argc, char **argv, struct bt_job_args *a);

#endif
