#include "bt/cli.h"
#include "bt/maketorrent.h"
#include "bt/metainfo.h"
#include "bt/progress.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char help[] =
	"Usage: torrent create -o <out.torrent> [options] <file-or-directory>\n"
	"\n"
	"Makes a v1 .torrent of a file or a directory and prints its info hash. A directory's\n"
	"files are taken recursively in sorted order; hidden ones (names starting with '.') only\n"
	"with --include-hidden; symbolic links are left out. The data is hashed once (SHA-1),\n"
	"with a progress line on a terminal.\n"
	"\n"
	"Options:\n"
	"  -o, --output PATH      the .torrent to write (required; not overwritten without\n"
	"                         --force)\n"
	"  -a, --announce URL     a tracker, one tier per option; 'URL1,URL2' puts several\n"
	"                         trackers in one tier (repeatable); http://, https:// or\n"
	"                         udp://. Without -a the torrent has no tracker (a note\n"
	"                         says so): peers find it through DHT and --peer only\n"
	"  -l, --piece-length N   bytes per piece, a power of two from 16384 to 67108864; a\n"
	"                         K or M suffix is allowed (default: from the total size,\n"
	"                         16 KiB to 16 MiB, about 1000-2000 pieces)\n"
	"  -p, --private          set the private flag (BEP 27)\n"
	"  -c, --comment TEXT     a comment\n"
	"  -w, --web-seed URL     a web seed (BEP 19, repeatable)\n"
	"  -n, --name NAME        the torrent's name (default: the last part of the path)\n"
	"      --include-hidden   include hidden files and directories\n"
	"      --no-date          leave out the creation date (the same input then always gives\n"
	"                         the same file)\n"
	"      --force            overwrite an existing output file\n"
	"  -q, --quiet            no progress line, no note\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 created, 1 the data could not be read or the output written, 2 bad "
	"usage.\n";

struct progress_state {
	bool show;
};

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
	struct progress_state *p = arg;
	if (!p->show)
		return;
	char d[32], t[32];
	bt_format_bytes(d, sizeof d, (double)done);
	bt_format_bytes(t, sizeof t, (double)total);
	fprintf(stderr, "\rhashing %5.1f%%  %s of %s\033[K", total ? 100.0 * done / total : 100.0,
		d, t);
}

static int parse_size(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (end == s || errno || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	if (!strcmp(end, "K") || !strcmp(end, "KiB") || !strcmp(end, "k"))
		v <<= 10;
	else if (!strcmp(end, "M") || !strcmp(end, "MiB"))
		v <<= 20;
	else if (*end)
		return -1;
	if (v < (16u << 10) || v > (64u << 20) || (v & (v - 1)))
		return -1;
	*out = (int64_t)v;
	return 0;
}

static int write_atomically(const char *path, const struct bt_buf *b, bool force)
{
	struct stat st;
	if (!force && lstat(path, &st) == 0) {
		bt_cli_error("create", "'%s' exists; use --force to overwrite it", path);
		return BT_EXIT_FAILURE;
	}
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0) {
		bt_cli_error("create", "cannot create '%s': %s", tmp, strerror(errno));
		return BT_EXIT_FAILURE;
	}
	size_t off = 0;
	while (off < b->len) {
		ssize_t n = write(fd, b->data + off, b->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			bt_cli_error("create", "%s: %s", tmp, strerror(errno));
			close(fd);
			unlink(tmp);
			return BT_EXIT_FAILURE;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
		bt_cli_error("create", "%s: %s", path, strerror(errno));
		unlink(tmp);
		return BT_EXIT_FAILURE;
	}
	return BT_EXIT_OK;
}

/*
 * The URLs of one -a tier ('URL1,URL2') that we could not announce to: only http, https and
 * udp trackers exist for this client (and for most others), so a torrent naming another
 * scheme would be made with a tracker nobody reaches. Returns the first such URL's start and
 * its length in len_out, or NULL.
 */
static const char *bad_tracker(const char *tier, size_t *len_out)
{
	static const char *const schemes[] = {"http://", "https://", "udp://"};
	for (const char *u = tier;;) {
		size_t len = strcspn(u, ",");
		bool ok = false;
		for (size_t i = 0; i < sizeof schemes / sizeof schemes[0] && !ok; i++) {
			size_t n = strlen(schemes[i]);
			ok = len > n && strncasecmp(u, schemes[i], n) == 0;
		}
		if (!ok) {
			*len_out = len;
			return u;
		}
		if (!u[len])
			return NULL;
		u += len + 1;
	}
}

static int run(int argc, char **argv)
{
	enum { OPT_HIDDEN = 256, OPT_NO_DATE, OPT_FORCE };
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},
		{"announce", required_argument, NULL, 'a'},
		{"piece-length", required_argument, NULL, 'l'},
		{"private", no_argument, NULL, 'p'},
		{"comment", required_argument, NULL, 'c'},
		{"web-seed", required_argument, NULL, 'w'},
		{"name", required_argument, NULL, 'n'},
		{"include-hidden", no_argument, NULL, OPT_HIDDEN},
		{"no-date", no_argument, NULL, OPT_NO_DATE},
		{"force", no_argument, NULL, OPT_FORCE},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct bt_make_opts mo = {0};
	const char *output = NULL;
	bool force = false, quiet = false;
	int c, rc = BT_EXIT_OK;
	while ((c = bt_cli_getopt(argc, argv, ":o:a:l:pc:w:n:qh", opts)) != -1) {
		switch (c) {
		case 'o':
			output = optarg;
			break;
		case 'a':
			mo.trackers = bt_xreallocarray(mo.trackers, mo.tracker_count + 1,
						       sizeof *mo.trackers);
			mo.trackers[mo.tracker_count++] = optarg;
			break;
		case 'l':
			if (parse_size(optarg, &mo.piece_length))
				rc = bt_cli_usage_error("create",
							"--piece-length wants a power of two from "
							"16K to 64M, not '%s'",
							optarg);
			break;
		case 'p':
			mo.is_private = true;
			break;
		case 'c':
			mo.comment = optarg;
			break;
		case 'w':
			mo.web_seeds = bt_xreallocarray(mo.web_seeds, mo.web_seed_count + 1,
							sizeof *mo.web_seeds);
			mo.web_seeds[mo.web_seed_count++] = optarg;
			break;
		case 'n':
			mo.name = optarg;
			break;
		case OPT_HIDDEN:
			mo.include_hidden = true;
			break;
		case OPT_NO_DATE:
			mo.no_date = true;
			break;
		case OPT_FORCE:
			force = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			fputs(help, stdout);
			rc = -1;
			break;
		default:
			rc = BT_EXIT_USAGE;
			break;
		}
		if (rc)
			break;
	}
	if (!rc && argc - optind != 1)
		rc = bt_cli_usage_error("create", "expected one file or directory");
	if (!rc && !output)
		rc = bt_cli_usage_error("create", "-o <out.torrent> is required");
	for (size_t i = 0; !rc && i < mo.tracker_count; i++) {
		size_t len;
		const char *bad = bad_tracker(mo.trackers[i], &len);
		if (!mo.trackers[i][0] || mo.trackers[i][0] == ',')
			rc = bt_cli_usage_error("create", "--announce wants a URL");
		else if (bad)
			rc = bt_cli_usage_error("create",
						"cannot announce to '%.*s': a tracker URL must "
						"start with http://, https:// or udp://",
						(int)len, bad);
	}
	if (rc) {
		free(mo.trackers);
		free(mo.web_seeds);
		return rc < 0 ? BT_EXIT_OK : rc;
	}
	mo.path = argv[optind];
	struct progress_state ps = {.show = !quiet && isatty(STDERR_FILENO)};
	mo.progress = on_progress;
	mo.progress_arg = &ps;

	struct bt_buf out;
	bt_buf_init(&out);
	struct bt_err err;
	int mr = bt_make_torrent(&mo, &out, &err);
	if (ps.show)
		fputc('\n', stderr);
	if (mr) {
		bt_cli_error("create", "%s", err.msg);
		rc = mr == -EINVAL || mr == -ENOENT ? BT_EXIT_USAGE : BT_EXIT_FAILURE;
	} else {
		rc = write_atomically(output, &out, force);
	}
	if (!rc) {
		struct bt_metainfo m;
		if (bt_meta_parse(&m, out.data, out.len, &err) == 0) {
			char hex[41], pl[32];
			bt_hex_encode(hex, m.info_hash, BT_HASH_LEN);
			bt_format_bytes(pl, sizeof pl, (double)m.piece_length);
			printf("Created %s: info hash %s, %u piece%s of %s.\n", output, hex,
			       m.piece_count, m.piece_count == 1 ? "" : "s", pl);
			bt_meta_deinit(&m);
			if (!mo.tracker_count && !quiet)
				fprintf(stderr,
					"torrent: create: note: %s has no tracker (add one with -a "
					"URL); peers can still find each other through DHT and "
					"--peer\n",
					output);
		} else {
			bt_cli_error("create", "internal error: the new torrent does not parse: %s",
				     err.msg);
			rc = BT_EXIT_FAILURE;
		}
	}
	bt_buf_deinit(&out);
	free(mo.trackers);
	free(mo.web_seeds);
	return rc;
}

const struct bt_cli_command bt_cmd_create = {
	.name = "create",
	.summary = "make a .torrent from a file or directory",
	.help = help,
	.run = run,
};
