#include "bt/jobargs.h"

#include "bt/cli.h"
#include "bt/ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char bt_job_download_help[] =
	"Usage: torrent download [options] <torrent>...\n"
	"\n"
	"A <torrent> is a .torrent file, an http:// or https:// URL of one, or a magnet link\n"
	"(magnet:?xt=urn:btih:...; its metadata is fetched from peers first, BEP 9).\n"
	"\n"
	"Downloads whole torrents from their trackers' peers and from --peer addresses, many at\n"
	"once, verifying every piece (SHA-1) before it is written. Each torrent's content goes\n"
	"to <dir>/<name>: a file for a single-file torrent, a folder for a multi-file one. Data\n"
	"is written under a temporary name (<dir>/<name>.part) and renamed when complete, so the\n"
	"final name only ever holds a complete, verified download. Several torrents download at\n"
	"once in one process, sharing its port, peer id and rate limits.\n"
	"\n"
	"Resume: if the temporary name exists (an interrupted run: Ctrl-C, kill -9, a crash), its\n"
	"pieces are checked and every good one is kept. An existing final output that is not\n"
	"this torrent's complete data is refused unless --force, which resumes from it.\n"
	"\n"
	"Options:\n"
	"  -d, --dir DIR            where content goes: DIR/<name> (default: here)\n"
	"  -o, --output PATH        one torrent only: write a single-file torrent to PATH, a\n"
	"                           multi-file one to the folder PATH/<name>\n"
	"      --peer HOST:PORT     also download from this peer (repeatable)\n"
	"      --no-tracker         do not ask the trackers (use --peer addresses only)\n"
	"      --no-dht             do not use the DHT (BEP 5)\n"
	"      --dht-bootstrap H:P  join the DHT through this node (repeatable; replaces the\n"
	"                           default routers; default from $TORRENT_DHT_BOOTSTRAP)\n"
	"      --dht-port PORT      the DHT's UDP port (default: the listen port)\n"
	"      --max-peers N        peers connected at once, per torrent (default 50)\n"
	"  -p, --port PORT          port to listen on for peers and to announce (default: the\n"
	"                           first free of 6881-6889, else any free port)\n"
	"      --listen IP          address to listen on, and to connect and announce from\n"
	"                           (default: every address, and the system's choice)\n"
	"      --seed               keep seeding after the download until Ctrl-C or a limit\n"
	"      --seed-ratio R       stop seeding once R times the torrent's size is uploaded\n"
	"      --seed-time S        stop seeding after S seconds\n"
	"      --stall-timeout S    give up when no data arrives for S seconds (default 0:\n"
	"                           wait for peers as long as it takes)\n"
	"      --force              resume from or overwrite an existing output\n"
	"      --select LIST        download only these files, numbered as 'info' shows them\n"
	"                           (e.g. 1,3-5); a magnet's so= when not given\n"
	"      --exclude GLOB       leave out the files whose path matches GLOB (fnmatch)\n"
	"      --sequential         fetch pieces in order, through a read-ahead window (for\n"
	"                           playing a file while it downloads)\n"
	"      --first-last         fetch the first and last pieces of each file first\n"
	"      --save-torrent FILE  write the torrent's metainfo to FILE once known (from a\n"
	"                           magnet link or a URL) as a .torrent file\n"
	"      --max-down RATE      download at most RATE bytes/s in all (e.g. 500K, 2M)\n"
	"      --max-up RATE        upload at most RATE bytes/s in all\n"
	"  -v, --verbose            a line for each peer connected and closed, with the reason\n"
	"  -q, --quiet              no progress output\n"
	"      --progress=MODE      auto (a redrawn line on a terminal, a line every 5 s\n"
	"                           otherwise), json (one object per second), or none\n"
	"      --plot FILE.svg      draw the throughput over time, per peer, and each peer's\n"
	"                           share as an SVG picture when the run ends\n"
	"      --stats FILE         write the same numbers as JSON lines, one per second: t,\n"
	"                           rate, received, and each peer's bytes so far\n"
	"  -h, --help               show this help\n"
	"\n"
	"What we have we share: peers may download from us during the download too.\n"
	"\n"
	"Exit status: 0 every torrent downloaded and verified, 1 one or more failed (no peers,\n"
	"all peers gone, tracker down, disk full, interrupted: the verified pieces are kept for\n"
	"the next run), 2 bad usage or invalid torrent.\n";

const char bt_job_piece_help[] =
	"Usage: torrent download_piece -o <out> [options] <torrent> <index>\n"
	"       torrent download_piece --dir DIR [options] <torrent> <index>\n"
	"\n"
	"Downloads one piece from many peers at once, verifies it, and writes exactly that\n"
	"piece's bytes to <out>, or with --dir to DIR/<name>.piece<index> (through a temporary\n"
	"file renamed at the end).\n"
	"\n"
	"Options: as for 'torrent download' (-o or --dir is required), see\n"
	"'torrent download --help'.\n"
	"\n"
	"Exit status: 0 downloaded and verified, 1 failed, 2 bad usage or invalid torrent.\n";

const char bt_job_seed_help[] =
	"Usage: torrent seed [options] <file.torrent> <path>\n"
	"       torrent seed [options] [--dir DIR] <file.torrent>...\n"
	"\n"
	"Serves torrents' data to other peers. <path> is one torrent's data: the file of a\n"
	"single-file torrent, or the folder holding a multi-file torrent's files. Without <path>\n"
	"each torrent's data is DIR/<name> (default: here), where 'torrent download --dir DIR'\n"
	"puts it. Every piece is checked first (with a progress line); data that does not match\n"
	"is refused, naming the pieces. Then it announces to the trackers and serves peers until\n"
	"Ctrl-C or a limit, showing the upload rate, the peers and the total uploaded.\n"
	"\n"
	"Options:\n"
	"  -d, --dir DIR            where the torrents' data is: DIR/<name> (default: here)\n"
	"  -p, --port PORT          port to listen on and announce (default: the first free of\n"
	"                           6881-6889, else any free port)\n"
	"      --listen IP          address to listen on, and to connect and announce from\n"
	"                           (default: every address, and the system's choice)\n"
	"      --peer HOST:PORT     also connect to this peer (repeatable)\n"
	"      --no-tracker         do not announce to the trackers\n"
	"      --no-dht             do not use the DHT (BEP 5)\n"
	"      --dht-bootstrap H:P  join the DHT through this node (repeatable; replaces the\n"
	"                           default routers; default from $TORRENT_DHT_BOOTSTRAP)\n"
	"      --dht-port PORT      the DHT's UDP port (default: the listen port)\n"
	"      --max-peers N        peers connected at once, per torrent (default 50)\n"
	"      --seed-ratio R       stop once R times the torrent's size is uploaded\n"
	"      --seed-time S        stop after S seconds\n"
	"      --assume-valid       skip checking the data (only for data you just made and\n"
	"                           hashed yourself: bad data would be served as good)\n"
	"      --max-up RATE        upload at most RATE bytes/s in all (e.g. 500K, 2M)\n"
	"  -v, --verbose            a line for each peer connected and closed, with the reason\n"
	"  -q, --quiet              no progress output\n"
	"      --progress=MODE      auto, json or none, as for 'torrent download'\n"
	"  -h, --help               show this help\n"
	"\n"
	"Exit status: 0 stopped by Ctrl-C or a limit, 1 the data does not match or cannot be\n"
	"served, 2 bad usage or invalid torrent.\n";

/* "1,3-5": numbers from 1, ranges low to high (the torrent's file count is checked later). */
static bool select_list_ok(const char *p)
{
	for (;;) {
		unsigned long a = 0, b;
		if (*p < '1' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9' && a < 100000000)
			a = a * 10 + (unsigned long)(*p++ - '0');
		b = a;
		if (*p == '-') {
			p++;
			if (*p < '1' || *p > '9')
				return false;
			for (b = 0; *p >= '0' && *p <= '9' && b < 100000000;)
				b = b * 10 + (unsigned long)(*p++ - '0');
		}
		if (b < a || (*p && *p != ','))
			return false;
		if (!*p++)
			return true;
	}
}

int bt_job_args_parse(int argc, char **argv, struct bt_job_args *o)
{
	enum {
		OPT_PEER = 256,
		OPT_MAX_PEERS,
		OPT_STALL,
		OPT_FORCE,
		OPT_PROGRESS,
		OPT_NO_TRACKER,
		OPT_SEED,
		OPT_SEED_RATIO,
		OPT_SEED_TIME,
		OPT_LISTEN,
		OPT_MAX_DOWN,
		OPT_MAX_UP,
		OPT_ASSUME_VALID,
		OPT_PLOT,
		OPT_STATS,
		OPT_SAVE_TORRENT,
		OPT_NO_DHT,
		OPT_DHT_BOOTSTRAP,
		OPT_DHT_PORT,
		OPT_SELECT,
		OPT_EXCLUDE,
		OPT_SEQUENTIAL,
		OPT_FIRST_LAST
	};
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},
		{"dir", required_argument, NULL, 'd'},
		{"peer", required_argument, NULL, OPT_PEER},
		{"no-tracker", no_argument, NULL, OPT_NO_TRACKER},
		{"max-peers", required_argument, NULL, OPT_MAX_PEERS},
		{"port", required_argument, NULL, 'p'},
		{"stall-timeout", required_argument, NULL, OPT_STALL},
		{"force", no_argument, NULL, OPT_FORCE},
		{"quiet", no_argument, NULL, 'q'},
		{"progress", required_argument, NULL, OPT_PROGRESS},
		{"seed", no_argument, NULL, OPT_SEED},
		{"seed-ratio", required_argument, NULL, OPT_SEED_RATIO},
		{"seed-time", required_argument, NULL, OPT_SEED_TIME},
		{"listen", required_argument, NULL, OPT_LISTEN},
		{"verbose", no_argument, NULL, 'v'},
		{"max-down", required_argument, NULL, OPT_MAX_DOWN},
		{"max-up", required_argument, NULL, OPT_MAX_UP},
		{"assume-valid", no_argument, NULL, OPT_ASSUME_VALID},
		{"plot", required_argument, NULL, OPT_PLOT},
		{"stats", required_argument, NULL, OPT_STATS},
		{"save-torrent", required_argument, NULL, OPT_SAVE_TORRENT},
		{"no-dht", no_argument, NULL, OPT_NO_DHT},
		{"dht-bootstrap", required_argument, NULL, OPT_DHT_BOOTSTRAP},
		{"dht-port", required_argument, NULL, OPT_DHT_PORT},
		{"select", required_argument, NULL, OPT_SELECT},
		{"exclude", required_argument, NULL, OPT_EXCLUDE},
		{"sequential", no_argument, NULL, OPT_SEQUENTIAL},
		{"first-last", no_argument, NULL, OPT_FIRST_LAST},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *cmd = o->command;
	o->max_peers = 50;
	int c;
	while ((c = bt_cli_getopt(argc, argv, ":o:d:p:qvh", opts)) != -1) {
		switch (c) {
		case 'o':
			o->output = optarg;
			break;
		case 'd':
			o->dir = optarg;
			break;
		case OPT_PEER:
			o->peers = bt_xreallocarray(o->peers, o->npeers + 1, sizeof *o->peers);
			o->peers[o->npeers++] = optarg;
			break;
		case OPT_NO_TRACKER:
			o->no_tracker = true;
			break;
		case OPT_MAX_PEERS:
			if (bt_cli_parse_uint(optarg, 1, 1000, &o->max_peers))
				return bt_cli_usage_error(
					cmd, "--max-peers wants 1 to 1000, not '%s'", optarg);
			break;
		case 'p':
			if (bt_cli_parse_uint(optarg, 1, 65535, &o->port))
				return bt_cli_usage_error(cmd, "--port wants 1 to 65535, not '%s'",
							  optarg);
			break;
		case OPT_STALL:
			if (bt_cli_parse_seconds(optarg, 0, 86400, &o->stall_timeout))
				return bt_cli_usage_error(cmd,
							  "--stall-timeout wants 0 (never) to "
							  "86400 seconds, not '%s'",
							  optarg);
			break;
		case OPT_FORCE:
			o->force = true;
			break;
		case OPT_SELECT:
			if (!select_list_ok(optarg))
				return bt_cli_usage_error(cmd,
							  "--select wants file numbers from 1 like "
							  "1,3-5, not '%s'",
							  optarg);
			o->select = optarg;
			break;
		case OPT_EXCLUDE:
			if (!*optarg)
				return bt_cli_usage_error(cmd, "--exclude wants a pattern, not ''");
			o->exclude = optarg;
			break;
		case OPT_SEQUENTIAL:
			o->sequential = true;
			break;
		case OPT_FIRST_LAST:
			o->first_last = true;
			break;
		case 'q':
			o->progress = BT_VIEW_NONE;
			break;
		case OPT_PROGRESS:
			if (strcmp(optarg, "auto") == 0)
				o->progress = BT_VIEW_AUTO;
			else if (strcmp(optarg, "json") == 0)
				o->progress = BT_VIEW_JSON;
			else if (strcmp(optarg, "none") == 0)
				o->progress = BT_VIEW_NONE;
			else
				return bt_cli_usage_error(
					cmd, "--progress wants auto, json or none, not '%s'",
					optarg);
			break;
		case OPT_SEED:
			o->seed = true;
			break;
		case OPT_ASSUME_VALID:
			o->assume_valid = true;
			break;
		case OPT_SAVE_TORRENT:
			o->save_torrent = optarg;
			break;
		case OPT_NO_DHT:
			o->no_dht = true;
			break;
		case OPT_DHT_BOOTSTRAP:
			o->dht_routers = bt_xreallocarray(o->dht_routers, o->ndht_routers + 1,
							  sizeof *o->dht_routers);
			o->dht_routers[o->ndht_routers++] = optarg;
			break;
		case OPT_DHT_PORT:
			if (bt_cli_parse_uint(optarg, 1, 65535, &o->dht_port))
				return bt_cli_usage_error(
					cmd, "--dht-port wants 1 to 65535, not '%s'", optarg);
			break;
		case OPT_SEED_RATIO:
			if (bt_cli_parse_seconds(optarg, 0.01, 1e6, &o->seed_ratio))
				return bt_cli_usage_error(
					cmd, "--seed-ratio wants a number like 1.5, not '%s'",
					optarg);
			break;
		case OPT_SEED_TIME:
			if (bt_cli_parse_seconds(optarg, 1, 1e9, &o->seed_time))
				return bt_cli_usage_error(
					cmd, "--seed-time wants seconds, not '%s'", optarg);
			break;
		case OPT_LISTEN:
			o->listen_ip = optarg;
			break;
		case 'v':
			o->verbose = true;
			break;
		case OPT_MAX_DOWN:
		case OPT_MAX_UP:
			if (bt_rate_parse(optarg, c == OPT_MAX_DOWN ? &o->max_down : &o->max_up))
				return bt_cli_usage_error(
					cmd,
					"--max-%s wants a rate like 500K or 2M "
					"(bytes per second, at least 1K), not '%s'",
					c == OPT_MAX_DOWN ? "down" : "up", optarg);
			break;
		case OPT_PLOT:
			o->plot_path = optarg;
			break;
		case OPT_STATS:
			o->stats_path = optarg;
			break;
		case 'h':
			fputs(o->mode == BT_JOB_PIECE  ? bt_job_piece_help
			      : o->mode == BT_JOB_SEED ? bt_job_seed_help
						       : bt_job_download_help,
			      stdout);
			return -1;
		default:
			return BT_EXIT_USAGE;
		}
	}
	char **args = argv + optind;
	size_t nargs = (size_t)(argc - optind);
	if (o->mode == BT_JOB_PIECE) {
		if (nargs != 2)
			return bt_cli_usage_error(cmd,
						  "expected a .torrent file and a piece index");
		o->piece_arg = args[1];
		nargs = 1;
	} else if (o->mode == BT_JOB_SEED && !o->dir && nargs == 2) {
		size_t len = strlen(args[1]);
		/* The older form: one torrent and its data's path. */
		if (len < 8 || strcmp(args[1] + len - 8, ".torrent") != 0) {
			o->data_path = args[1];
			nargs = 1;
		}
	}
	if (nargs == 0)
		return bt_cli_usage_error(
			cmd, o->mode == BT_JOB_SEED ? "expected a .torrent file and the data's path"
						    : "expected a .torrent file");
	o->torrents = args;
	o->ntorrents = nargs;
	if (o->mode == BT_JOB_PIECE && !o->output && !o->dir)
		return bt_cli_usage_error(cmd, "-o <out> (or --dir DIR) is required");
	if (o->output && nargs > 1)
		return bt_cli_usage_error(cmd, "-o is for one torrent; use --dir for several");
	if (o->output && o->dir)
		return bt_cli_usage_error(cmd, "-o and --dir do not go together");
	if (o->mode == BT_JOB_SEED)
		o->seed = true;
	if ((o->seed_ratio || o->seed_time) && !o->seed)
		return bt_cli_usage_error(cmd, "--seed-ratio and --seed-time need --seed");
	if (o->mode == BT_JOB_PIECE && o->seed)
		return bt_cli_usage_error(cmd, "--seed is for 'download' and 'seed'");
	if ((o->plot_path || o->stats_path) && o->mode == BT_JOB_SEED)
		return bt_cli_usage_error(cmd, "--plot and --stats are for 'download'");
	if (o->save_torrent && nargs > 1)
		return bt_cli_usage_error(cmd, "--save-torrent is for one torrent");
	if (o->assume_valid && o->mode != BT_JOB_SEED)
		return bt_cli_usage_error(cmd, "--assume-valid is for 'seed'");
	return 0;
}
