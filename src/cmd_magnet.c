/*
 * The CodeCrafters course's magnet commands: magnet_parse and magnet_handshake here;
 * magnet_info is `info` on a magnet, and magnet_download(_piece) are `download(_piece)` (a magnet
 * is accepted wherever a .torrent is). Their output is checked byte for byte by the course.
 */
#include "bt/cli.h"
#include "bt/jobargs.h"
#include "bt/log.h"
#include "bt/session.h"
#include "bt/source.h"
#include "bt/torrent.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

static const char parse_help[] =
	"Usage: torrent magnet_parse <magnet>\n"
	"\n"
	"Parses a magnet link and prints its first tracker and its info hash:\n"
	"  Tracker URL: <the first tr=, percent-decoded; '(none)' if it has none>\n"
	"  Info Hash: <40 lowercase hex digits>\n"
	"The info hash may be given as 40 hex or 32 base32 digits (urn:btih:); a hybrid magnet's\n"
	"v1 hash is used and a v2-only one (urn:btmh: alone) is refused.\n"
	"\n"
	"Exit status: 0 success, 2 bad usage or a malformed magnet link.\n";

static const char handshake_help[] =
	"Usage: torrent magnet_handshake [--peer HOST:PORT] <magnet>\n"
	"\n"
	"Asks the magnet's trackers for peers (or uses its x.pe= and --peer addresses), connects\n"
	"to one, exchanges the BitTorrent handshake (our reserved bytes announce the extension\n"
	"protocol only: 00 00 00 00 00 10 00 00) and the extension handshake (BEP 10), and prints\n"
	"  Peer ID: <the peer's id, 40 lowercase hex digits>\n"
	"  Peer Metadata Extension ID: <the peer's id for ut_metadata>\n"
	"Gives up after 30 s.\n"
	"\n"
	"Options:\n"
	"      --peer HOST:PORT  a peer to try (repeatable)\n"
	"  -h, --help            show this help\n"
	"\n"
	"Exit status: 0 done, 1 no peer answered with an extension handshake, 2 bad usage or\n"
	"a malformed magnet link.\n";

static int help_only(int argc, char **argv, const char *help, int nargs, const char *what)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	int c;
	while ((c = bt_cli_getopt(argc, argv, ":h", opts)) != -1) {
		if (c == 'h') {
			fputs(help, stdout);
			return -1;
		}
		return BT_EXIT_USAGE;
	}
	if (argc - optind != nargs)
		return bt_cli_usage_error(argv[0], "expected %s", what);
	return 0;
}

static int run_parse(int argc, char **argv)
{
	int rc = help_only(argc, argv, parse_help, 1, "a magnet link");
	if (rc)
		return rc < 0 ? BT_EXIT_OK : rc;
	const char *arg = argv[optind];
	if (!bt_magnet_is(arg))
		return bt_cli_usage_error("magnet_parse", "'%.40s' is not a magnet link", arg);
	struct bt_source src;
	if ((rc = bt_source_load("magnet_parse", arg, NULL, &src)))
		return rc;
	const char *tracker = src.mg.tier_count ? src.mg.tiers[0].urls[0] : "(none)";
	char hex[2 * BT_HASH_LEN + 1];
	bt_hex_encode(hex, src.mg.info_hash, BT_HASH_LEN);
	printf("Tracker URL: ");
	bt_cli_put_safe(stdout, tracker);
	printf("\nInfo Hash: %s\n", hex);
	bt_source_deinit(&src);
	return BT_EXIT_OK;
}

struct mhs {
	struct bt_session *session;
	bool done;
	uint8_t peer_id[BT_PEER_ID_LEN];
	uint8_t ut_metadata;
	char reason[512];
};

static void stop_session(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bt_session_stop(arg);
}

static void on_peer_extended(void *arg, const uint8_t *peer_id, const struct bt_ext_handshake *h)
{
	struct mhs *s = arg;
	if (s->done)
		return;
	s->done = true;
	memcpy(s->peer_id, peer_id, BT_PEER_ID_LEN);
	s->ut_metadata = h->ut_metadata;
	/* Not at once: our own extended handshake, queued in this loop pass, goes out first. */
	struct timeval tv = {0, 100000};
	event_base_once(bt_session_base(s->session), -1, EV_TIMEOUT, stop_session, s->session, &tv);
}

static int ignore_piece(void *arg, uint32_t piece, const uint8_t *data, struct bt_err *err)
{
	(void)arg, (void)piece, (void)data, (void)err;
	return 0;
}

static void ignore_complete(void *arg)
{
	(void)arg;
}

static void on_failed(void *arg, const char *reason)
{
	struct mhs *s = arg;
	snprintf(s->reason, sizeof s->reason, "%s", reason);
	bt_session_stop(s->session);
}

/* The metadata is not wanted here: the torrent is stopped before any could be used. */
static int ignore_metadata(void *arg, const struct bt_metadata *md, struct bt_err *err)
{
	(void)arg, (void)md, (void)err;
	return 0;
}

static int run_handshake(int argc, char **argv)
{
	enum { OPT_PEER = 256 };
	static const struct option opts[] = {
		{"peer", required_argument, NULL, OPT_PEER},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *cmd = "magnet_handshake";
	char **peer_args = NULL;
	size_t npeers = 0;
	int c, rc = 0;
	while ((c = bt_cli_getopt(argc, argv, ":h", opts)) != -1) {
		if (c == 'h') {
			fputs(handshake_help, stdout);
			free(peer_args);
			return BT_EXIT_OK;
		}
		if (c != OPT_PEER) {
			free(peer_args);
			return BT_EXIT_USAGE;
		}
		peer_args = bt_xreallocarray(peer_args, npeers + 1, sizeof *peer_args);
		peer_args[npeers++] = optarg;
	}
	if (argc - optind != 1) {
		free(peer_args);
		return bt_cli_usage_error(cmd, "expected a magnet link");
	}
	struct sockaddr_storage *addrs = bt_xcalloc(npeers ? npeers : 1, sizeof *addrs);
	socklen_t *lens = bt_xcalloc(npeers ? npeers : 1, sizeof *lens);
	for (size_t i = 0; i < npeers && !rc; i++)
		rc = bt_cli_resolve_peer(cmd, peer_args[i], &addrs[i], &lens[i]);
	free(peer_args);
	struct bt_source src = {0};
	if (!rc && !bt_magnet_is(argv[optind]))
		rc = bt_cli_usage_error(cmd, "'%.40s' is not a magnet link", argv[optind]);
	if (!rc)
		rc = bt_source_load(cmd, argv[optind], NULL, &src);
	struct mhs s = {0};
	struct bt_err err;
	if (!rc && !(s.session = bt_session_new(&err))) {
		bt_cli_error(cmd, "%s", err.msg);
		rc = BT_EXIT_FAILURE;
	}
	if (rc) {
		bt_source_deinit(&src);
		free(addrs);
		free(lens);
		return rc;
	}
	bt_source_add_magnet_peers(&src, &addrs, &lens, &npeers);
	struct bt_torrent_opts topts = {
		.max_peers = 1, .use_trackers = true, .course_handshake = true};
	struct bt_torrent_events ev = {.piece_verified = ignore_piece,
				       .complete = ignore_complete,
				       .failed = on_failed,
				       .metadata = ignore_metadata,
				       .peer_extended = on_peer_extended};
	struct bt_torrent *t = bt_torrent_new_magnet(s.session, src.mg.info_hash, src.mg.tiers,
						     src.mg.tier_count, &topts, &ev, &s);
	for (size_t i = 0; i < npeers; i++)
		bt_torrent_add_peer(t, (const struct sockaddr *)&addrs[i], lens[i]);
	bt_torrent_start(t);
	enum bt_session_end end = BT_SESSION_STOPPED;
	if (!s.done && !s.reason[0])
		end = bt_session_run(s.session, 30);
	bt_torrent_stop(t);
	if (!bt_torrent_stopped(t) && end != BT_SESSION_INTERRUPTED)
		bt_session_run(s.session, 2);
	bt_torrent_free(t);
	bt_session_free(s.session);
	bt_source_deinit(&src);
	free(addrs);
	free(lens);
	if (s.done) {
		char hex[2 * BT_PEER_ID_LEN + 1];
		bt_hex_encode(hex, s.peer_id, BT_PEER_ID_LEN);
		printf("Peer ID: %s\nPeer Metadata Extension ID: %u\n", hex, s.ut_metadata);
		return BT_EXIT_OK;
	}
	bt_cli_error(cmd, "%s",
		     s.reason[0]		     ? s.reason
		     : end == BT_SESSION_INTERRUPTED ? "interrupted"
						     : "no peer answered within 30 s");
	return BT_EXIT_FAILURE;
}

static int run_info(int argc, char **argv)
{
	return bt_cmd_info.run(argc, argv);
}

const struct bt_cli_command bt_cmd_magnet_parse = {
	.name = "magnet_parse",
	.summary = "show a magnet link's tracker and info hash",
	.help = parse_help,
	.run = run_parse,
};

const struct bt_cli_command bt_cmd_magnet_handshake = {
	.name = "magnet_handshake",
	.summary = "extension handshake with a magnet's peer: its id and ut_metadata id",
	.help = handshake_help,
	.run = run_handshake,
};

const struct bt_cli_command bt_cmd_magnet_info = {
	.name = "magnet_info",
	.summary = "fetch a magnet's metadata and show it as 'info' does",
	.help = "Usage: torrent magnet_info [--json] <magnet>\n"
		"\n"
		"The same as 'torrent info <magnet>': fetches the magnet's metadata from its "
		"peers\n"
		"(BEP 9) and prints it; see 'torrent info --help' for the format.\n",
	.run = run_info,
};
