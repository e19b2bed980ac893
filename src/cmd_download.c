/*
 * `download` and `download_piece`: front doors onto one engine (bt_torrent). They differ only in
 * the wanted set and in where verified pieces go: `download` writes them through storage into a
 * temporary name and renames it when everything is verified; `download_piece` writes its one
 * piece to a temporary file beside <out>.
 */
#include "bt/cli.h"
#include "bt/hash.h"
#include "bt/log.h"
#include "bt/metainfo.h"
#include "bt/progress.h"
#include "bt/ratelimit.h"
#include "bt/session.h"
#include "bt/storage.h"
#include "bt/torrent.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char download_help[] =
	"Usage: torrent download [options] <file.torrent>\n"
	"\n"
	"Downloads the whole torrent from its trackers' peers and from --peer addresses, many at\n"
	"once, verifying every piece (SHA-1) before it is written. A single-file torrent is\n"
	"written to <out>; a multi-file torrent to the directory <out>/<name>. Data is written\n"
	"under a temporary name (<out>.part or <out>/<name>.part) and renamed when complete, so\n"
	"the final name only ever holds a complete, verified download.\n"
	"\n"
	"Resume: if the temporary name exists (an interrupted run: Ctrl-C, kill -9, a crash), its\n"
	"pieces are checked and every good one is kept. An existing final output that is not\n"
	"this torrent's complete data is refused unless --force, which resumes from it.\n"
	"\n"
	"Options:\n"
	"  -o, --output PATH        where to write (default: the torrent's name, here)\n"
	"      --peer HOST:PORT     also download from this peer (repeatable)\n"
	"      --no-tracker         do not ask the trackers (use --peer addresses only)\n"
	"      --max-peers N        peers connected at once (default 50)\n"
	"  -p, --port PORT          port to listen on for peers and to announce (default: the\n"
	"                           first free of 6881-6889, else any free port)\n"
	"      --listen IP          address to listen on, and to connect and announce from\n"
	"                           (default: every address, and the system's choice)\n"
	"      --seed               keep seeding after the download until Ctrl-C or a limit\n"
	"      --seed-ratio R       stop seeding once R times the torrent's size is uploaded\n"
	"      --seed-time S        stop seeding after S seconds\n"
	"      --stall-timeout S    give up when no data arrives for S seconds (default 60)\n"
	"      --force              resume from or overwrite an existing output\n"
	"      --max-down RATE      download at most RATE bytes/s (e.g. 500K, 2M)\n"
	"      --max-up RATE        upload at most RATE bytes/s\n"
	"  -v, --verbose            a line for each peer connected and closed, with the reason\n"
	"  -q, --quiet              no progress output\n"
	"      --progress=MODE      auto (a redrawn line on a terminal, a line every 5 s\n"
	"                           otherwise), json (one object per second), or none\n"
	"  -h, --help               show this help\n"
	"\n"
	"What we have we share: peers may download from us during the download too.\n"
	"\n"
	"Exit status: 0 downloaded and verified, 1 failed (no peers, all peers gone, tracker\n"
	"down, disk full, interrupted: the verified pieces are kept for the next run), 2 bad\n"
	"usage or invalid torrent.\n";

static const char piece_help[] =
	"Usage: torrent download_piece -o <out> [options] <file.torrent> <index>\n"
	"\n"
	"Downloads one piece from many peers at once, verifies it, and writes exactly that\n"
	"piece's bytes to <out> (through a temporary file renamed at the end).\n"
	"\n"
	"Options: as for 'torrent download' (-o is required), see 'torrent download --help'.\n"
	"\n"
	"Exit status: 0 downloaded and verified, 1 failed, 2 bad usage or invalid torrent.\n";

static const char seed_help[] =
	"Usage: torrent seed [options] <file.torrent> <path>\n"
	"\n"
	"Serves a torrent's data to other peers. <path> is the data: the file of a single-file\n"
	"torrent, or the directory holding a multi-file torrent's files. Every piece is checked\n"
	"first (with a progress line); data that does not match is refused, naming the pieces.\n"
	"Then it announces to the trackers and serves peers until Ctrl-C or a limit, showing the\n"
	"upload rate, the peers and the total uploaded.\n"
	"\n"
	"Options:\n"
	"  -p, --port PORT          port to listen on and announce (default: the first free of\n"
	"                           6881-6889, else any free port)\n"
	"      --listen IP          address to listen on, and to connect and announce from\n"
	"                           (default: every address, and the system's choice)\n"
	"      --peer HOST:PORT     also connect to this peer (repeatable)\n"
	"      --no-tracker         do not announce to the trackers\n"
	"      --max-peers N        peers connected at once (default 50)\n"
	"      --seed-ratio R       stop once R times the torrent's size is uploaded\n"
	"      --seed-time S        stop after S seconds\n"
	"      --assume-valid       skip checking the data (only for data you just made and\n"
	"                           hashed yourself: bad data would be served as good)\n"
	"      --max-up RATE        upload at most RATE bytes/s (e.g. 500K, 2M)\n"
	"  -v, --verbose            a line for each peer connected and closed, with the reason\n"
	"  -q, --quiet              no progress output\n"
	"      --progress=MODE      auto, json or none, as for 'torrent download'\n"
	"  -h, --help               show this help\n"
	"\n"
	"Exit status: 0 stopped by Ctrl-C or a limit, 1 the data does not match or cannot be\n"
	"served, 2 bad usage or invalid torrent.\n";

enum mode { MODE_DOWNLOAD, MODE_PIECE, MODE_SEED };

enum progress_mode { PROGRESS_AUTO, PROGRESS_JSON, PROGRESS_NONE };

struct options {
	const char *command;
	const char *output;
	char **peers;
	size_t npeers;
	size_t max_peers;
	unsigned long port;
	double stall_timeout;
	bool force, no_tracker, seed, verbose, assume_valid;
	double seed_ratio, seed_time; /* 0: no limit */
	double max_down, max_up;      /* bytes/s; 0: unlimited */
	const char *listen_ip;
	enum progress_mode progress;
	enum mode mode;
	const char *torrent_path;
	const char *piece_arg; /* download_piece: the index; seed: the data's path */
};

struct job {
	const struct options *o;
	const struct bt_metainfo *m;
	struct bt_session *session;
	struct bt_torrent *torrent;
	struct bt_storage *storage; /* download */
	int piece_fd;		    /* download_piece */
	char *final_path, *temp_path;
	bool complete, failed, seeding;
	double seeding_since;
	char reason[512];
	struct event *progress_ev;
	bool tty, line_drawn;
	double started, last_plain;
	double engine_started; /* when the torrent started, for its first-byte time */
};

static int parse_options(int argc, char **argv, struct options *o)
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
		OPT_VERBOSE,
		OPT_MAX_DOWN,
		OPT_MAX_UP,
		OPT_ASSUME_VALID
	};
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},
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
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *cmd = o->command;
	bool piece = o->mode == MODE_PIECE;
	unsigned long max_peers = 50;
	o->port = 0;
	o->stall_timeout = 60;
	int c;
	while ((c = bt_cli_getopt(argc, argv, ":o:p:qvh", opts)) != -1) {
		switch (c) {
		case 'o':
			o->output = optarg;
			break;
		case OPT_PEER:
			o->peers = bt_xreallocarray(o->peers, o->npeers + 1, sizeof *o->peers);
			o->peers[o->npeers++] = optarg;
			break;
		case OPT_NO_TRACKER:
			o->no_tracker = true;
			break;
		case OPT_MAX_PEERS:
			if (bt_cli_parse_uint(optarg, 1, 1000, &max_peers))
				return bt_cli_usage_error(
					cmd, "--max-peers wants 1 to 1000, not '%s'", optarg);
			break;
		case 'p':
			if (bt_cli_parse_uint(optarg, 1, 65535, &o->port))
				return bt_cli_usage_error(cmd, "--port wants 1 to 65535, not '%s'",
							  optarg);
			break;
		case OPT_STALL:
			if (bt_cli_parse_seconds(optarg, 1, 86400, &o->stall_timeout))
				return bt_cli_usage_error(
					cmd, "--stall-timeout wants 1 to 86400 seconds, not '%s'",
					optarg);
			break;
		case OPT_FORCE:
			o->force = true;
			break;
		case 'q':
			o->progress = PROGRESS_NONE;
			break;
		case OPT_PROGRESS:
			if (strcmp(optarg, "auto") == 0)
				o->progress = PROGRESS_AUTO;
			else if (strcmp(optarg, "json") == 0)
				o->progress = PROGRESS_JSON;
			else if (strcmp(optarg, "none") == 0)
				o->progress = PROGRESS_NONE;
			else
				return bt_cli_usage_error(cmd,
							  "--progress wants auto, json or none, "
							  "not '%s'",
							  optarg);
			break;
		case OPT_SEED:
			o->seed = true;
			break;
		case OPT_ASSUME_VALID:
			o->assume_valid = true;
			break;
		case OPT_SEED_RATIO:
			if (bt_cli_parse_seconds(optarg, 0.01, 1e6, &o->seed_ratio))
				return bt_cli_usage_error(cmd,
							  "--seed-ratio wants a number like 1.5, "
							  "not '%s'",
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
				return bt_cli_usage_error(cmd,
							  "--max-%s wants a rate like 500K or 2M "
							  "(bytes per second, at least 1K), "
							  "not '%s'",
							  c == OPT_MAX_DOWN ? "down" : "up",
							  optarg);
			break;
		case 'h':
			fputs(o->mode == MODE_PIECE  ? piece_help
			      : o->mode == MODE_SEED ? seed_help
						     : download_help,
			      stdout);
			return -1;
		default:
			return BT_EXIT_USAGE;
		}
	}
	o->max_peers = (size_t)max_peers;
	int want = o->mode == MODE_DOWNLOAD ? 1 : 2;
	if (argc - optind != want)
		return bt_cli_usage_error(cmd,
					  o->mode == MODE_PIECE	 ? "expected a .torrent file and "
								   "a piece index"
					  : o->mode == MODE_SEED ? "expected a .torrent file and "
								   "the data's path"
								 : "expected one .torrent file");
	o->torrent_path = argv[optind];
	if (want == 2)
		o->piece_arg = argv[optind + 1];
	if (piece && !o->output)
		return bt_cli_usage_error(cmd, "-o <out> is required");
	if (o->mode == MODE_SEED)
		o->seed = true;
	if ((o->seed_ratio || o->seed_time) && !o->seed)
		return bt_cli_usage_error(cmd, "--seed-ratio and --seed-time need --seed");
	if (piece && o->seed)
		return bt_cli_usage_error(cmd, "--seed is for 'download' and 'seed'");
	if (o->assume_valid && o->mode != MODE_SEED)
		return bt_cli_usage_error(cmd, "--assume-valid is for 'seed'");
	return 0;
}

struct peer_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Resolves "host:port" or "[v6]:port" (once, before anything is written or started). */
static int resolve_peer_arg(const char *cmd, const char *arg, struct peer_addr *out)
{
	char host[256];
	const char *port;
	if (arg[0] == '[') {
		const char *close = strchr(arg, ']');
		if (!close || close[1] != ':' || (size_t)(close - arg - 1) >= sizeof host)
			goto bad;
		memcpy(host, arg + 1, (size_t)(close - arg - 1));
		host[close - arg - 1] = '\0';
		port = close + 2;
	} else {
		const char *colon = strrchr(arg, ':');
		if (!colon || (size_t)(colon - arg) >= sizeof host || colon == arg)
			goto bad;
		memcpy(host, arg, (size_t)(colon - arg));
		host[colon - arg] = '\0';
		port = colon + 1;
	}
	unsigned long pv;
	if (bt_cli_parse_uint(port, 1, 65535, &pv))
		goto bad;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		bt_cli_error(cmd, "--peer %s: %s", arg, gai_strerror(rc));
		return BT_EXIT_FAILURE;
	}
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->len = (socklen_t)res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
bad:
	return bt_cli_usage_error(cmd, "--peer wants HOST:PORT or [IPv6]:PORT, not '%s'", arg);
}

static void show_progress(struct job *j, bool final)
{
	if (j->o->progress == PROGRESS_NONE)
		return;
	struct bt_torrent_stats s;
	bt_torrent_get_stats(j->torrent, &s);
	double now = bt_now();
	struct bt_progress p = {.done = s.verified_bytes,
				.total = s.wanted_bytes,
				.rate = s.rate,
				.elapsed = now - j->started,
				.peers = s.peers_connected,
				.unchoking = s.peers_unchoking};
	/* The last line shows the whole run's average rather than the last second's. */
	if (final && p.elapsed > 0)
		p.rate = (double)s.received_bytes / p.elapsed;
	if (j->o->progress == PROGRESS_JSON) {
		struct bt_buf b;
		bt_buf_init(&b);
		bt_progress_json(&b, &p);
		fprintf(stderr, "%s\n", (char *)b.data);
		bt_buf_deinit(&b);
		return;
	}
	char line[256];
	bt_progress_line(line, sizeof line, &p);
	if (j->tty) {
		fprintf(stderr, "\r%s\033[K", line);
		j->line_drawn = true;
		if (final) {
			fputc('\n', stderr);
			j->line_drawn = false;
		}
	} else if (final || now - j->last_plain >= 5) {
		fprintf(stderr, "torrent: %s\n", line);
		j->last_plain = now;
	}
}

static void end_progress_line(struct job *j)
{
	if (j->line_drawn) {
		fputc('\n', stderr);
		j->line_drawn = false;
	}
}

static void show_seeding(struct job *j)
{
	struct bt_torrent_stats s;
	bt_torrent_get_stats(j->torrent, &s);
	double now = bt_now();
	if (j->o->progress == PROGRESS_JSON) {
		fprintf(stderr,
			"{\"seeding\":true,\"uploaded\":%llu,\"up_rate\":%.0f,\"peers\":%zu,"
			"\"elapsed\":%.2f}\n",
			(unsigned long long)s.uploaded_bytes, s.up_rate, s.peers_connected,
			now - j->seeding_since);
		return;
	}
	if (j->o->progress == PROGRESS_NONE || (!j->tty && now - j->last_plain < 5))
		return;
	char up[32], rate[32];
	bt_format_bytes(up, sizeof up, (double)s.uploaded_bytes);
	bt_format_rate(rate, sizeof rate, s.up_rate);
	char line[200];
	snprintf(line, sizeof line, "seeding: %s uploaded  %s  peers %zu  ratio %.2f", up, rate,
		 s.peers_connected, (double)s.uploaded_bytes / (double)j->m->total_length);
	if (j->tty) {
		fprintf(stderr, "\r%s\033[K", line);
		j->line_drawn = true;
	} else {
		fprintf(stderr, "torrent: %s\n", line);
		j->last_plain = now;
	}
}

static void on_progress(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct job *j = arg;
	if (!j->seeding) {
		show_progress(j, false);
		return;
	}
	show_seeding(j);
	struct bt_torrent_stats s;
	bt_torrent_get_stats(j->torrent, &s);
	if ((j->o->seed_ratio > 0 &&
	     (double)s.uploaded_bytes >= j->o->seed_ratio * (double)j->m->total_length) ||
	    (j->o->seed_time > 0 && bt_now() - j->seeding_since >= j->o->seed_time))
		bt_session_stop(j->session);
}

static int store_piece(void *arg, uint32_t piece, const uint8_t *data, struct bt_err *err)
{
	struct job *j = arg;
	if (j->storage)
		return bt_storage_write_piece(j->storage, piece, data, err);
	size_t len = (size_t)bt_meta_piece_size(j->m, piece);
	for (size_t off = 0; off < len;) {
		ssize_t n = pwrite(j->piece_fd, data + off, len - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return bt_err_set(err, -errno, "%s: %s", j->temp_path, strerror(errno));
		off += (size_t)n;
	}
	return 0;
}

/* Makes a complete download durable and gives it its final name. Returns 0 or an exit code. */
static int finalize(struct job *j)
{
	const char *cmd = j->o->command;
	struct bt_err err;
	if (j->o->mode == MODE_SEED)
		return 0;
	/* A resumed (--force) file may have been longer than the torrent: cut it to size. */
	if (j->storage &&
	    (bt_storage_trim(j->storage, &err) || bt_storage_sync(j->storage, &err))) {
		bt_cli_error(cmd, "%s", err.msg);
		return BT_EXIT_FAILURE;
	}
	if (j->piece_fd >= 0 && fsync(j->piece_fd) != 0) {
		bt_cli_error(cmd, "%s: %s", j->temp_path, strerror(errno));
		return BT_EXIT_FAILURE;
	}
	if (rename(j->temp_path, j->final_path) != 0) {
		bt_cli_error(cmd, "cannot rename '%s' to '%s': %s", j->temp_path, j->final_path,
			     strerror(errno));
		return BT_EXIT_FAILURE;
	}
	return 0;
}

static void announce_result(const struct job *j, uint32_t index)
{
	if (j->o->mode == MODE_PIECE)
		printf("Piece %u downloaded to %s.\n", index, j->final_path);
	else if (j->o->mode == MODE_DOWNLOAD)
		printf("Downloaded %s to %s.\n", j->o->torrent_path, j->final_path);
	fflush(stdout);
}

static void on_complete(void *arg)
{
	struct job *j = arg;
	j->complete = true;
	if (!j->o->seed) {
		bt_session_stop(j->session);
		return;
	}
	/* Seeding on: the data gets its final name now, and serving goes on from it. */
	if (j->o->mode == MODE_DOWNLOAD && !j->seeding) {
		show_progress(j, true);
		end_progress_line(j);
		if (finalize(j)) {
			j->failed = true;
			snprintf(j->reason, sizeof j->reason, "cannot finish the download");
			bt_session_stop(j->session);
			return;
		}
		announce_result(j, 0);
	}
	j->seeding = true;
	j->seeding_since = bt_now();
}

static void on_failed(void *arg, const char *reason)
{
	struct job *j = arg;
	j->failed = true;
	snprintf(j->reason, sizeof j->reason, "%s", reason);
	bt_session_stop(j->session);
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/*
 * Checks the pieces already in storage (a resumed download) into `have`, with progress.
 * Returns how many are good.
 */
static uint32_t check_pieces(struct job *j, struct bt_storage *st, struct bt_bitfield *have)
{
	const struct bt_metainfo *m = j->m;
	uint8_t *buf = bt_xmalloc((size_t)m->piece_length);
	uint32_t good = 0;
	double last = bt_now();
	for (uint32_t i = 0; i < m->piece_count; i++) {
		uint32_t len = (uint32_t)bt_meta_piece_size(m, i);
		uint8_t digest[BT_SHA1_LEN];
		if (bt_storage_read(st, i, 0, buf, len, NULL) == 0) {
			bt_sha1(buf, len, digest);
			if (!memcmp(digest, m->piece_hashes + (size_t)i * BT_SHA1_LEN,
				    BT_SHA1_LEN)) {
				bt_bitfield_set(have, i);
				good++;
			}
		}
		if (j->o->progress == PROGRESS_AUTO && j->tty && bt_now() - last > 0.25) {
			fprintf(stderr, "\rchecking %u of %u pieces\033[K", i + 1, m->piece_count);
			last = bt_now();
			j->line_drawn = true;
		}
	}
	end_progress_line(j);
	free(buf);
	return good;
}

static char *join_path(const char *dir, const char *name)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_printf(&b, "%s/%s", dir, name);
	return (char *)bt_buf_steal(&b, NULL);
}

/*
 * Decides the final and temporary names, refuses to clobber what is not ours, and opens the
 * storage with the pieces already there marked in `have`. Returns 0 or an exit code.
 */
static int prepare_download(struct job *j, struct bt_bitfield *have, bool *already_done)
{
	const struct bt_metainfo *m = j->m;
	const char *cmd = j->o->command;
	if (m->multi_file)
		j->final_path = join_path(j->o->output ? j->o->output : ".", m->name);
	else
		j->final_path = bt_xstrdup(j->o->output ? j->o->output : m->name);
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_printf(&b, "%s.part", j->final_path);
	j->temp_path = (char *)bt_buf_steal(&b, NULL);
	if (m->multi_file && j->o->output && !exists(j->o->output) &&
	    mkdir(j->o->output, 0777) != 0) {
		bt_cli_error(cmd, "cannot create '%s': %s", j->o->output, strerror(errno));
		return BT_EXIT_FAILURE;
	}

	struct bt_err err;
	if (exists(j->final_path)) {
		struct bt_storage *st;
		uint32_t good = 0;
		if (bt_storage_open(&st, m, j->final_path, BT_STORAGE_READONLY, &err) == 0) {
			good = check_pieces(j, st, have);
			bt_storage_free(st);
		}
		if (good == m->piece_count) {
			*already_done = true;
			return 0;
		}
		if (!j->o->force) {
			bt_cli_error(
				cmd,
				"'%s' exists and is not this torrent's complete data (%u of %u "
				"pieces match); use --force to resume from it",
				j->final_path, good, m->piece_count);
			return BT_EXIT_FAILURE;
		}
		if (exists(j->temp_path)) {
			bt_cli_error(cmd, "both '%s' and '%s' exist; remove one", j->final_path,
				     j->temp_path);
			return BT_EXIT_FAILURE;
		}
		if (rename(j->final_path, j->temp_path) != 0) {
			bt_cli_error(cmd, "cannot rename '%s': %s", j->final_path, strerror(errno));
			return BT_EXIT_FAILURE;
		}
		memset(have->bits, 0, bt_bitfield_bytes(have->nbits));
		have->count = 0;
	}
	bool resuming = exists(j->temp_path);
	if (bt_storage_open(&j->storage, m, j->temp_path, BT_STORAGE_CREATE, &err)) {
		bt_cli_error(cmd, "%s", err.msg);
		return BT_EXIT_FAILURE;
	}
	if (resuming) {
		uint32_t good = check_pieces(j, j->storage, have);
		if (j->o->progress != PROGRESS_NONE)
			fprintf(stderr,
				"torrent: resuming '%s': %u of %u pieces already verified\n",
				j->temp_path, good, m->piece_count);
	}
	return 0;
}

static int prepare_piece(struct job *j, uint32_t index, bool *already_done)
{
	const char *cmd = j->o->command;
	j->final_path = bt_xstrdup(j->o->output);
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_printf(&b, "%s.part", j->final_path);
	j->temp_path = (char *)bt_buf_steal(&b, NULL);
	size_t len = (size_t)bt_meta_piece_size(j->m, index);
	if (exists(j->final_path) && !j->o->force) {
		uint8_t *data;
		size_t n;
		if (bt_read_file(j->final_path, len, &data, &n, NULL) == 0) {
			uint8_t digest[BT_SHA1_LEN];
			bt_sha1(data, n, digest);
			free(data);
			if (n == len &&
			    !memcmp(digest, j->m->piece_hashes + (size_t)index * BT_SHA1_LEN,
				    BT_SHA1_LEN)) {
				*already_done = true;
				return 0;
			}
		}
		bt_cli_error(cmd, "'%s' exists and is not piece %u; use --force to overwrite it",
			     j->final_path, index);
		return BT_EXIT_FAILURE;
	}
	j->piece_fd = open(j->temp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (j->piece_fd < 0) {
		bt_cli_error(cmd, "cannot create '%s': %s", j->temp_path, strerror(errno));
		return BT_EXIT_FAILURE;
	}
	return 0;
}

static void print_summary(struct job *j)
{
	struct bt_torrent_stats s;
	bt_torrent_get_stats(j->torrent, &s);
	double elapsed = bt_now() - j->started;
	char size[32], rate[32];
	bt_format_bytes(size, sizeof size, (double)s.received_bytes);
	bt_format_rate(rate, sizeof rate, elapsed > 0 ? (double)s.received_bytes / elapsed : 0);
	if (j->o->progress == PROGRESS_JSON) {
		struct bt_torrent_peer_stat *ps;
		size_t n = bt_torrent_peer_stats(j->torrent, &ps);
		fprintf(stderr,
			"{\"event\":\"summary\",\"received\":%llu,\"verified\":%llu,\"total\":%llu,"
			"\"seconds\":%.3f,\"first_byte\":%.3f,\"pieces_failed\":%u,\"peers\":[",
			(unsigned long long)s.received_bytes, (unsigned long long)s.verified_bytes,
			(unsigned long long)s.wanted_bytes, elapsed,
			s.first_byte_s < 0 ? -1 : s.first_byte_s + (j->engine_started - j->started),
			s.pieces_failed);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, "%s{\"address\":\"%s\",\"bytes\":%llu,\"banned\":%s}",
				i ? "," : "", ps[i].name, (unsigned long long)ps[i].bytes,
				ps[i].banned ? "true" : "false");
		fprintf(stderr, "]}\n");
		free(ps);
		return;
	}
	if (j->o->progress == PROGRESS_NONE)
		return;
	fprintf(stderr,
		"torrent: received %s in %.1f s (%s average) from %zu peer%s; %u piece%s failed "
		"verification\n",
		size, elapsed, rate, s.peers_used, s.peers_used == 1 ? "" : "s", s.pieces_failed,
		s.pieces_failed == 1 ? "" : "s");
}

static int read_block(void *arg, uint32_t piece, uint32_t begin, uint32_t length, uint8_t *dest)
{
	struct job *j = arg;
	return bt_storage_read(j->storage, piece, begin, dest, length, NULL);
}

static void on_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t len)
{
	struct job *j = arg;
	bt_torrent_accept(j->torrent, fd, sa, len);
}

/* Opens the data to seed and checks every piece; refuses data that does not match. */
static int prepare_seed(struct job *j, struct bt_bitfield *have)
{
	const char *cmd = j->o->command;
	struct bt_err err;
	if (bt_storage_open(&j->storage, j->m, j->o->piece_arg, BT_STORAGE_READONLY, &err)) {
		bt_cli_error(cmd, "%s", err.msg);
		return BT_EXIT_FAILURE;
	}
	if (j->o->assume_valid) {
		/* Data we just made (bench): its pieces are known good, skip the re-hash. */
		bt_bitfield_set_all(have);
		return 0;
	}
	uint32_t good = check_pieces(j, j->storage, have);
	if (good == j->m->piece_count)
		return 0;
	char list[256];
	size_t n = 0, shown = 0;
	list[0] = '\0';
	for (uint32_t i = 0; i < j->m->piece_count && n < sizeof list - 16; i++) {
		if (bt_bitfield_get(have, i))
			continue;
		if (shown++ == 10) {
			n += (size_t)snprintf(list + n, sizeof list - n, ", ...");
			break;
		}
		n += (size_t)snprintf(list + n, sizeof list - n, "%s%u", shown > 1 ? ", " : "", i);
	}
	bt_cli_error(cmd, "'%s' does not match the torrent: %u of %u pieces differ (%s)",
		     j->o->piece_arg, j->m->piece_count - good, j->m->piece_count, list);
	return BT_EXIT_FAILURE;
}

static int run_job(struct options *o)
{
	const char *cmd = o->command;
	struct bt_metainfo m;
	struct bt_err err;
	int rc = bt_cli_load_torrent(cmd, o->torrent_path, &m);
	if (rc)
		return rc;
	uint32_t index = 0;
	if (o->mode == MODE_PIECE) {
		unsigned long v;
		if (bt_cli_parse_uint(o->piece_arg, 0, m.piece_count - 1, &v)) {
			bt_meta_deinit(&m);
			return bt_cli_usage_error(cmd, "piece index must be 0 to %u, not '%s'",
						  m.piece_count - 1, o->piece_arg);
		}
		index = (uint32_t)v;
	}

	struct peer_addr *peers = bt_xcalloc(o->npeers ? o->npeers : 1, sizeof *peers);
	for (size_t i = 0; i < o->npeers; i++) {
		if ((rc = resolve_peer_arg(cmd, o->peers[i], &peers[i]))) {
			free(peers);
			bt_meta_deinit(&m);
			return rc;
		}
	}
	struct job j = {.o = o, .m = &m, .piece_fd = -1, .tty = isatty(STDERR_FILENO) == 1};
	j.started = bt_now();
	struct bt_bitfield have, want;
	bt_bitfield_init(&have, m.piece_count);
	bt_bitfield_init(&want, m.piece_count);
	if (o->mode == MODE_PIECE)
		bt_bitfield_set(&want, index);
	else
		bt_bitfield_set_all(&want);
	bool already_done = false;
	rc = o->mode == MODE_PIECE  ? prepare_piece(&j, index, &already_done)
	     : o->mode == MODE_SEED ? prepare_seed(&j, &have)
				    : prepare_download(&j, &have, &already_done);
	if (rc || (already_done && !o->seed))
		goto done;
	if (already_done) {
		/* Complete already: seed from the final name. */
		announce_result(&j, index);
		already_done = false;
		if (bt_storage_open(&j.storage, &m, j.final_path, BT_STORAGE_READONLY, &err)) {
			bt_cli_error(cmd, "%s", err.msg);
			rc = BT_EXIT_FAILURE;
			goto done;
		}
		bt_bitfield_set_all(&have);
		j.seeding = true;
		j.seeding_since = bt_now();
	}

	if (o->verbose)
		bt_log_set_level(BT_LOG_DEBUG);
	j.session = bt_session_new(&err);
	if (!j.session) {
		bt_cli_error(cmd, "%s", err.msg);
		rc = BT_EXIT_FAILURE;
		goto done;
	}
	struct bt_torrent_opts topts = {.max_peers = o->max_peers,
					.port = (uint16_t)o->port,
					.use_trackers = !o->no_tracker,
					.stall_timeout_s = o->stall_timeout,
					.seed = o->seed,
					.max_down = o->max_down,
					.max_up = o->max_up,
					.source_ip = o->listen_ip};
	struct bt_torrent_events tev = {.piece_verified = store_piece,
					.read_block = j.storage ? read_block : NULL,
					.complete = on_complete,
					.failed = on_failed};
	j.torrent = bt_torrent_new(j.session, &m, &have, &want, &topts, &tev, &j);
	for (size_t i = 0; i < o->npeers; i++)
		bt_torrent_add_peer(j.torrent, (struct sockaddr *)&peers[i].ss, peers[i].len);
	if (j.storage) {
		if (bt_session_listen(j.session, o->listen_ip, (uint16_t)o->port, on_accept, &j,
				      &err) == 0) {
			bt_torrent_set_port(j.torrent, bt_session_listen_port(j.session));
			if (o->mode == MODE_SEED && o->progress != PROGRESS_NONE)
				fprintf(stderr, "torrent: seeding on port %u\n",
					bt_session_listen_port(j.session));
		} else if (o->mode == MODE_SEED || o->seed) {
			bt_cli_error(cmd, "%s", err.msg);
			rc = BT_EXIT_FAILURE;
			goto done;
		} else if (o->progress != PROGRESS_NONE) {
			/* Downloading works without it: we only cannot be dialled. */
			bt_cli_error(cmd, "warning: %s; downloading without accepting peers",
				     err.msg);
		}
	}
	j.progress_ev = event_new(bt_session_base(j.session), -1, EV_PERSIST, on_progress, &j);
	struct timeval tv = {0, 250000}, sec = {1, 0};
	event_add(j.progress_ev, j.tty && o->progress == PROGRESS_AUTO ? &tv : &sec);

	j.engine_started = bt_now();
	bt_torrent_start(j.torrent);
	enum bt_session_end end = BT_SESSION_STOPPED;
	if (j.seeding || (!j.complete && !j.failed) || (j.complete && o->seed && !j.failed))
		end = bt_session_run(j.session, 0);
	event_del(j.progress_ev);
	if (j.complete && !o->seed)
		show_progress(&j, true);
	end_progress_line(&j);

	/* Tell the trackers we are leaving, bounded, and close every peer. */
	bt_torrent_stop(j.torrent);
	if (!bt_torrent_stopped(j.torrent) && end != BT_SESSION_INTERRUPTED)
		bt_session_run(j.session, 3);

	if (j.failed) {
		bt_cli_error(cmd, "%s", j.reason);
		rc = BT_EXIT_FAILURE;
	} else if (j.seeding) {
		print_summary(&j);
	} else if (j.complete) {
		rc = finalize(&j);
		print_summary(&j);
		if (!rc)
			announce_result(&j, index);
	} else if (end == BT_SESSION_INTERRUPTED) {
		bt_cli_error(cmd,
			     "interrupted; verified pieces are kept in '%s': run the same "
			     "command again to resume",
			     j.temp_path);
		rc = BT_EXIT_FAILURE;
	} else {
		bt_cli_error(cmd, "%s", j.reason);
		rc = BT_EXIT_FAILURE;
	}

done:
	if (!rc && already_done)
		announce_result(&j, index);
	if (j.progress_ev)
		event_free(j.progress_ev);
	bt_torrent_free(j.torrent);
	bt_session_free(j.session);
	bt_storage_free(j.storage);
	if (j.piece_fd >= 0) {
		close(j.piece_fd);
		if (!j.complete)
			unlink(j.temp_path);
	}
	free(j.final_path);
	free(j.temp_path);
	bt_bitfield_deinit(&have);
	bt_bitfield_deinit(&want);
	bt_meta_deinit(&m);
	free(peers);
	return rc;
}

static int run_mode(int argc, char **argv, const char *name, enum mode mode)
{
	struct options o = {.command = name, .mode = mode};
	int rc = parse_options(argc, argv, &o);
	if (rc == 0)
		rc = run_job(&o);
	free(o.peers);
	return rc < 0 ? BT_EXIT_OK : rc;
}

static int run_download(int argc, char **argv)
{
	return run_mode(argc, argv, "download", MODE_DOWNLOAD);
}

static int run_download_piece(int argc, char **argv)
{
	return run_mode(argc, argv, "download_piece", MODE_PIECE);
}

static int run_seed(int argc, char **argv)
{
	return run_mode(argc, argv, "seed", MODE_SEED);
}

const struct bt_cli_command bt_cmd_seed = {
	.name = "seed",
	.summary = "serve a torrent's data to other peers",
	.help = seed_help,
	.run = run_seed,
};

const struct bt_cli_command bt_cmd_download = {
	.name = "download",
	.summary = "download a whole torrent",
	.help = download_help,
	.run = run_download,
};

const struct bt_cli_command bt_cmd_download_piece = {
	.name = "download_piece",
	.summary = "download one piece of a torrent",
	.help = piece_help,
	.run = run_download_piece,
};
