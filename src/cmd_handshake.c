#include "bt/cli.h"
#include "bt/metainfo.h"
#include "bt/peer.h"
#include "bt/session.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
	"Usage: torrent handshake <file.torrent> <host:port>\n"
	"\n"
	"Connects to one peer, exchanges the BitTorrent handshake for the torrent, and prints\n"
	"the remote peer's id as 'Peer ID: <40 lowercase hex digits>'. Our reserved bytes\n"
	"announce the extension protocol only (00 00 00 00 00 10 00 00). Gives up after 10 s.\n"
	"\n"
	"Exit status: 0 handshake done, 1 the peer could not be reached or refused the torrent,\n"
	"2 bad usage or invalid torrent.\n";

struct hs {
	struct bt_session *session;
	bool done;
	uint8_t peer_id[BT_PEER_ID_LEN];
	char reason[256];
};

static void on_handshake(void *arg, struct bt_peer *p, const struct bt_handshake *h)
{
	(void)p;
	struct hs *s = arg;
	s->done = true;
	memcpy(s->peer_id, h->peer_id, BT_PEER_ID_LEN);
	bt_session_stop(s->session);
}

static void on_closed(void *arg, struct bt_peer *p, const char *reason)
{
	(void)p;
	struct hs *s = arg;
	snprintf(s->reason, sizeof s->reason, "%s", reason);
	bt_session_stop(s->session);
}

static void ignore_choke(void *arg, struct bt_peer *p, bool c)
{
	(void)arg, (void)p, (void)c;
}

static void ignore_has(void *arg, struct bt_peer *p, uint32_t i)
{
	(void)arg, (void)p, (void)i;
}

static uint8_t *no_dest(void *arg, struct bt_peer *p, const struct bt_block *b)
{
	(void)arg, (void)p, (void)b;
	return NULL;
}

static void ignore_block(void *arg, struct bt_peer *p, const struct bt_block *b)
{
	(void)arg, (void)p, (void)b;
}

static int run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;
	while ((c = bt_cli_getopt(argc, argv, ":h", opts)) != -1) {
		if (c == 'h') {
			fputs(help, stdout);
			return BT_EXIT_OK;
		}
		return BT_EXIT_USAGE;
	}
	if (argc - optind != 2)
		return bt_cli_usage_error("handshake", "expected a .torrent file and host:port");
	const char *path = argv[optind], *addr = argv[optind + 1];

	char host[256], port_s[8];
	uint16_t port;
	if (bt_split_host_port(addr, host, sizeof host, &port))
		return bt_cli_usage_error("handshake",
					  "expected host:port (port 1 to 65535), not '%s'", addr);
	snprintf(port_s, sizeof port_s, "%u", port);

	struct bt_metainfo m;
	int rc = bt_cli_load_torrent("handshake", path, &m);
	if (rc)
		return rc;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res;
	int gai = getaddrinfo(host, port_s, &hints, &res);
	if (gai) {
		bt_meta_deinit(&m);
		bt_cli_error("handshake", "%s: %s", addr, gai_strerror(gai));
		return BT_EXIT_FAILURE;
	}
	struct hs s = {0};
	struct bt_err err;
	s.session = bt_session_new(&err);
	if (!s.session) {
		freeaddrinfo(res);
		bt_meta_deinit(&m);
		bt_cli_error("handshake", "%s", err.msg);
		return BT_EXIT_FAILURE;
	}
	struct bt_peer_config cfg = {.geo = bt_meta_geometry(&m)};
	memcpy(cfg.info_hash, m.info_hash, BT_HASH_LEN);
	memcpy(cfg.peer_id, bt_session_peer_id(s.session), BT_PEER_ID_LEN);
	memcpy(cfg.reserved, bt_wire_reserved_ext, 8);
	struct bt_peer_events ev = {.handshake = on_handshake,
				    .choked = ignore_choke,
				    .has = ignore_has,
				    .block_dest = no_dest,
				    .block = ignore_block,
				    .closed = on_closed};
	struct bt_peer *p = bt_peer_connect(bt_session_base(s.session), res->ai_addr,
					    res->ai_addrlen, &cfg, &ev, &s);
	freeaddrinfo(res);
	enum bt_session_end end = bt_session_run(s.session, 0);
	bt_peer_free(p);
	bt_session_free(s.session);
	bt_meta_deinit(&m);
	if (s.done) {
		char hex[41];
		bt_hex_encode(hex, s.peer_id, BT_PEER_ID_LEN);
		printf("Peer ID: %s\n", hex);
		return BT_EXIT_OK;
	}
	bt_cli_error("handshake", "%s: %s", addr,
		     end == BT_SESSION_INTERRUPTED ? "interrupted" : s.reason);
	return BT_EXIT_FAILURE;
}

const struct bt_cli_command bt_cmd_handshake = {
	.name = "handshake",
	.summary = "exchange handshakes with one peer and show its id",
	.help = help,
	.run = run,
};
