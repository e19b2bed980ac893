#include "bt/cli.h"

#include "bt/dht_net.h"
#include "bt/session.h"

#include "bt/log.h"
#include "bt/metainfo.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void vreport(const char *command, const char *suffix, const char *fmt, va_list ap)
{
	fprintf(stderr, "torrent: %s: ", command);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "%s\n", suffix);
}

void bt_cli_error(const char *command, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(command, "", fmt, ap);
	va_end(ap);
}

int bt_cli_usage_error(const char *command, const char *fmt, ...)
{
	char suffix[64];
	snprintf(suffix, sizeof suffix, " (see 'torrent %s --help')", command);
	va_list ap;
	va_start(ap, fmt);
	vreport(command, suffix, fmt, ap);
	va_end(ap);
	return BT_EXIT_USAGE;
}

void bt_cli_put_safe(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
}

int bt_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
	opterr = 0;
	int c = getopt_long(argc, argv, shortopts, longopts, NULL);
	if (c == '?' || c == ':') {
		const char *arg = argv[optind - 1];
		if (c == ':')
			bt_cli_usage_error(argv[0], "option '%s' needs a value", arg);
		else if (optopt && strncmp(arg, "--", 2) != 0)
			bt_cli_usage_error(argv[0], "unknown option '-%c'", optopt);
		else
			bt_cli_usage_error(argv[0], "unknown option '%s'", arg);
		return '?';
	}
	return c;
}

int bt_cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	size_t n = strspn(s, "0123456789");
	if (n == 0 || s[n] || n > 9)
		return -1;
	unsigned long v = strtoul(s, NULL, 10);
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int bt_cli_parse_seconds(const char *s, double min, double max, double *out)
{
	size_t n = strspn(s, "0123456789");
	if (n == 0 || n > 9)
		return -1;
	if (s[n] == '.') {
		size_t f = strspn(s + n + 1, "0123456789");
		if (f == 0)
			return -1;
		n += 1 + f;
	}
	if (s[n])
		return -1;
	double v = strtod(s, NULL);
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int bt_cli_load_torrent(const char *command, const char *path, struct bt_metainfo *m)
{
	struct bt_err err;
	if (bt_meta_load_file(m, path, &err)) {
		bt_cli_error(command, "%s", err.msg);
		return BT_EXIT_USAGE;
	}
	return 0;
}

void bt_cli_warn_renamed(const char *command, const struct bt_metainfo *m)
{
	if (!m->renamed)
		return;
	const char *orig = m->orig_name, *now = m->name;
	for (size_t i = 0; !orig && i < m->file_count; i++) {
		orig = m->files[i].orig_path;
		now = m->files[i].path;
	}
	struct bt_buf shown;
	bt_buf_init(&shown);
	bt_meta_sanitize(&shown, (const uint8_t *)orig, strlen(orig), true);
	char more[64] = "";
	if (m->renamed > 1)
		snprintf(more, sizeof more, " (and %zu more names)", m->renamed - 1);
	bt_log(BT_LOG_WARN, command, "renamed '%s' to '%s' for the file system%s",
	       (char *)shown.data, now, more);
	bt_buf_deinit(&shown);
}

/* Resolves "host:port" or "[v6]:port" (once, before anything is written or started). */
int bt_cli_resolve_peer(const char *cmd, const char *arg, struct sockaddr_storage *out,
			socklen_t *len_out)
{
	char host[256], port[8];
	uint16_t pv;
	if (bt_split_host_port(arg, host, sizeof host, &pv))
		return bt_cli_usage_error(cmd, "--peer wants HOST:PORT or [IPv6]:PORT, not '%s'",
					  arg);
	snprintf(port, sizeof port, "%u", pv);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		bt_cli_error(cmd, "--peer %s: %s", arg, gai_strerror(rc));
		return BT_EXIT_FAILURE;
	}
	memcpy(out, res->ai_addr, res->ai_addrlen);
	*len_out = (socklen_t)res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/*
 * Optimal string alignment distance: Levenshtein plus the swap of two neighbours, the typo
 * people make most ("downlaod"). Words longer than the row are never close to a command name.
 */
static size_t edit_distance(const char *a, const char *b)
{
	enum { MAX = 64 };
	size_t la = strlen(a), lb = strlen(b);
	if (la >= MAX || lb >= MAX)
		return SIZE_MAX;
	size_t d[MAX][MAX];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1];
			size_t best = d[i - 1][j - 1] + cost;
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb];
}

int bt_cli_nearest(const char *word, const char *const *names, size_t n)
{
	size_t len = strlen(word), best = SIZE_MAX;
	int found = -1;
	for (size_t i = 0; i < n; i++) {
		size_t d = edit_distance(word, names[i]);
		if (d < best) {
			best = d;
			found = (int)i;
		}
	}
	if (found < 0 || best > 2 || 2 * best >= len)
		return -1;
	return found;
}

int bt_cli_start_dht(const char *cmd, struct bt_session *s, const char *const *given, size_t n,
		     uint16_t port)
{
	/* --dht-bootstrap, else $TORRENT_DHT_BOOTSTRAP ("none", or host:port,host:port), else the
	 * default routers. */
	static const char *const none[1] = {NULL};
	const char *env = getenv("TORRENT_DHT_BOOTSTRAP");
	char *copy = NULL;
	const char **list = NULL;
	size_t count = 0;
	bool defaults = !n && !env;
	if (!n && env && strcmp(env, "none") != 0) {
		copy = bt_xstrdup(env);
		for (char *save = NULL, *tok = strtok_r(copy, ", ", &save); tok;
		     tok = strtok_r(NULL, ", ", &save)) {
			list = bt_xreallocarray(list, count + 1, sizeof *list);
			list[count++] = tok;
		}
	}
	char *state_dir = bt_dht_state_dir();
	struct bt_session_dht_opts o = {
		.routers = defaults ? NULL
			   : n	    ? given
			   : list   ? list
				    : none,
		.nrouters = n ? n : count,
		.state_dir = state_dir,
		.port = port,
	};
	struct bt_err err;
	int rc = bt_session_enable_dht(s, &o, &err);
	if (rc)
		bt_cli_error(cmd, "warning: %s; going on without the DHT", err.msg);
	free(state_dir);
	free(list);
	free(copy);
	return rc;
}
