#include "bt/source.h"

#include "bt/cli.h"
#include "bt/http.h"
#include "bt/session.h"
#include "bt/tracker_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static bool is_url(const char *arg)
{
	return strncasecmp(arg, "http://", 7) == 0 || strncasecmp(arg, "https://", 8) == 0;
}

bool bt_source_is_link(const char *arg)
{
	return bt_magnet_is(arg) || is_url(arg);
}

struct fetch {
	struct bt_session *session;
	bool done;
	int error;
	long status;
	uint8_t *body;
	size_t len;
	char message[256];
};

static void on_fetched(const struct bt_http_response *res, void *arg)
{
	struct fetch *f = arg;
	f->done = true;
	f->error = res->error;
	f->status = res->status;
	if (res->error)
		snprintf(f->message, sizeof f->message, "%s", res->message);
	else if (res->len) {
		f->body = bt_xmalloc(res->len);
		memcpy(f->body, res->body, res->len);
		f->len = res->len;
	}
	bt_session_stop(f->session);
}

/* GETs a .torrent through the session's HTTP client, capped like a file on disk. */
static int load_url(const char *cmd, const char *url, struct bt_session *session,
		    struct bt_metainfo *m)
{
	struct fetch f = {.session = session};
	struct bt_http_opts o = {.max_body = BT_META_MAX_FILE_SIZE, .timeout_ms = 60000};
	struct bt_http_req *req = bt_http_get(bt_session_http(session), url, &o, on_fetched, &f);
	if (!req) {
		bt_cli_error(cmd, "%s: not an http:// or https:// URL", url);
		return BT_EXIT_USAGE;
	}
	enum bt_session_end end = bt_session_run(session, 0);
	if (!f.done) {
		bt_http_cancel(req);
		bt_cli_error(cmd, "%s: %s", url,
			     end == BT_SESSION_INTERRUPTED ? "interrupted" : "no reply");
		return BT_EXIT_FAILURE;
	}
	if (f.error) {
		bt_cli_error(cmd, "%s: %s", url, f.message);
		return BT_EXIT_FAILURE;
	}
	if (f.status != 200) {
		free(f.body);
		bt_cli_error(cmd, "%s: HTTP status %ld", url, f.status);
		return BT_EXIT_FAILURE;
	}
	struct bt_err err;
	int rc = bt_meta_parse_owned(m, f.body, f.len, &err);
	if (rc) {
		bt_cli_error(cmd, "%s: %s", url, err.msg);
		return BT_EXIT_USAGE;
	}
	return 0;
}

int bt_source_load(const char *cmd, const char *arg, struct bt_session *session,
		   struct bt_source *out)
{
	memset(out, 0, sizeof *out);
	out->arg = arg;
	if (bt_magnet_is(arg)) {
		struct bt_err err;
		if (bt_magnet_parse(&out->mg, arg, &err)) {
			bt_cli_error(cmd, "%s", err.msg);
			return BT_EXIT_USAGE;
		}
		out->is_magnet = true;
		return 0;
	}
	int rc;
	if (is_url(arg)) {
		struct bt_err err;
		struct bt_session *own = NULL;
		if (!session && !(session = own = bt_session_new(&err))) {
			bt_cli_error(cmd, "%s", err.msg);
			return BT_EXIT_FAILURE;
		}
		rc = load_url(cmd, arg, session, &out->m);
		bt_session_free(own);
	} else {
		rc = bt_cli_load_torrent(cmd, arg, &out->m);
	}
	out->has_meta = rc == 0;
	return rc;
}

void bt_source_deinit(struct bt_source *src)
{
	bt_meta_deinit(&src->m);
	if (src->is_magnet)
		bt_magnet_deinit(&src->mg);
	memset(src, 0, sizeof *src);
}

const uint8_t *bt_source_info_hash(const struct bt_source *src)
{
	return src->is_magnet ? src->mg.info_hash : src->m.info_hash;
}

struct bt_download_magnet bt_source_job_magnet(const struct bt_source *src)
{
	struct bt_download_magnet j = {.name = src->mg.name,
				       .tiers = src->mg.tiers,
				       .tier_count = src->mg.tier_count,
				       .web_seeds = src->mg.web_seeds,
				       .web_seed_count = src->mg.web_seed_count};
	memcpy(j.info_hash, src->mg.info_hash, BT_HASH_LEN);
	return j;
}

void bt_source_add_magnet_peers(const struct bt_source *src, struct sockaddr_storage **addrs,
				socklen_t **lens, size_t *n)
{
	if (!src->is_magnet || !src->mg.peer_count)
		return;
	*addrs = bt_xreallocarray(*addrs, *n + src->mg.peer_count, sizeof **addrs);
	*lens = bt_xreallocarray(*lens, *n + src->mg.peer_count, sizeof **lens);
	for (size_t i = 0; i < src->mg.peer_count; i++) {
		socklen_t len = bt_peer_addr_to_sockaddr(&src->mg.peers[i], &(*addrs)[*n]);
		if (len)
			(*lens)[(*n)++] = len;
	}
}

struct info_run {
	struct bt_session *session;
};

static void on_info_changed(void *arg, struct bt_download *d)
{
	struct info_run *r = arg;
	if (bt_download_ended(d))
		bt_session_stop(r->session);
}

int bt_source_fetch_metainfo(const char *cmd, struct bt_source *src,
			     const struct sockaddr_storage *peers, const socklen_t *lens,
			     size_t npeers, double timeout_s)
{
	if (src->has_meta)
		return 0;
	struct bt_err err;
	struct info_run r = {0};
	if (!(r.session = bt_session_new(&err))) {
		bt_cli_error(cmd, "%s", err.msg);
		return BT_EXIT_FAILURE;
	}
	/* A magnet without trackers can be opened through the DHT. */
	bt_cli_start_dht(cmd, r.session, NULL, 0, 0);
	struct sockaddr_storage *addrs = NULL;
	socklen_t *alens = NULL;
	size_t n = 0;
	if (npeers) {
		addrs = bt_xcalloc(npeers, sizeof *addrs);
		alens = bt_xcalloc(npeers, sizeof *alens);
		memcpy(addrs, peers, npeers * sizeof *addrs);
		memcpy(alens, lens, npeers * sizeof *alens);
		n = npeers;
	}
	bt_source_add_magnet_peers(src, &addrs, &alens, &n);
	struct bt_download_opts o = {
		.kind = BT_DOWNLOAD_INFO,
		.peers = addrs,
		.peer_lens = alens,
		.npeers = n,
		/* A query, not a download: it gives up when no metadata comes. */
		.torrent = {.use_trackers = true,
			    .stall_timeout_s = 30,
			    /* The course's magnet_info: its exact reserved bytes. */
			    .course_handshake = !strncmp(cmd, "magnet_", 7)}};
	struct bt_download_magnet mg = bt_source_job_magnet(src);
	static const struct bt_download_events ev = {.changed = on_info_changed};
	struct bt_download *d = bt_download_new_magnet(r.session, &mg, &o, &ev, &r);
	bt_download_start(d);
	enum bt_session_end end = BT_SESSION_STOPPED;
	if (!bt_download_ended(d))
		end = bt_session_run(r.session, timeout_s);
	int rc = 0;
	const struct bt_metainfo *m = bt_download_metainfo(d);
	if (m && bt_download_state(d) == BT_DOWNLOAD_DONE) {
		if (bt_meta_parse_info_of(&src->m, m, src->mg.tiers, src->mg.tier_count, &err)) {
			bt_cli_error(cmd, "%s", err.msg);
			rc = BT_EXIT_FAILURE;
		} else {
			src->has_meta = true;
			/* `info` lists the magnet's ws= as the torrent's web seeds. */
			size_t nws = src->mg.web_seed_count;
			src->m.web_seeds = nws ? bt_xcalloc(nws, sizeof *src->m.web_seeds) : NULL;
			for (size_t i = 0; i < nws; i++)
				src->m.web_seeds[i] = bt_xstrdup(src->mg.web_seeds[i]);
			src->m.web_seed_count = nws;
		}
	} else {
		const char *why = bt_download_state(d) == BT_DOWNLOAD_FAILED ? bt_download_reason(d)
				  : end == BT_SESSION_INTERRUPTED	     ? "interrupted"
									     : "timed out";
		bt_cli_error(cmd, "fetching the metadata: %s", why);
		rc = BT_EXIT_FAILURE;
	}
	bt_download_stop(d);
	if (!bt_download_stopped(d) && end != BT_SESSION_INTERRUPTED)
		bt_session_run(r.session, 2);
	bt_download_free(d);
	bt_session_free(r.session);
	free(addrs);
	free(alens);
	return rc;
}

int bt_source_save_torrent(const char *cmd, const struct bt_metainfo *m, const char *path)
{
	struct bt_buf b;
	bt_buf_init(&b);
	int rc = bt_meta_write_torrent(m, &b);
	char *tmp = NULL;
	int fd = -1;
	if (rc) {
		bt_cli_error(cmd, "%s: cannot encode the torrent", path);
		goto out;
	}
	size_t n = strlen(path);
	tmp = bt_xmalloc(n + 5);
	memcpy(tmp, path, n);
	memcpy(tmp + n, ".tmp", 5);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666);
	rc = fd < 0 ? -errno : 0;
	for (size_t off = 0; !rc && off < b.len;) {
		ssize_t w = write(fd, b.data + off, b.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = w < 0 ? -errno : -EIO;
		else
			off += (size_t)w;
	}
	if (!rc && fsync(fd) != 0)
		rc = -errno;
	if (fd >= 0 && close(fd) != 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) != 0)
		rc = -errno;
	if (rc) {
		bt_cli_error(cmd, "%s: %s", path, strerror(-rc));
		if (fd >= 0)
			unlink(tmp);
	}
out:
	free(tmp);
	bt_buf_deinit(&b);
	return rc ? BT_EXIT_FAILURE : 0;
}
