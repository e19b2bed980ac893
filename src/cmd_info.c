#include "bt/cli.h"
#include "bt/json.h"
#include "bt/metainfo.h"
#include "bt/source.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char help[] =
	"Usage: torrent info [--json] <torrent>\n"
	"       torrent magnet_info <magnet>\n"
	"\n"
	"Shows what a torrent describes: a .torrent file, an http(s):// URL of one, or a magnet\n"
	"link, whose metadata is first fetched from its peers (its trackers and x.pe addresses,\n"
	"BEP 9). The first lines are always, in this order:\n"
	"  Tracker URL: <the announce URL, or the first of announce-list; '(none)' if "
	"trackerless>\n"
	"  Length: <total bytes of all files>\n"
	"  Info Hash: <40 lowercase hex digits: SHA-1 of the info dictionary as stored>\n"
	"  Piece Length: <bytes>\n"
	"  Piece Hashes:\n"
	"  <one 40-digit hash per line, in piece order>\n"
	"then the name, the size in binary units (KiB = 1024 bytes) beside the exact count, piece\n"
	"count, private flag, creation date, creator, comment, every tracker tier, web seeds, and\n"
	"the file list: each file's number (from 1, as --select counts them), size and path.\n"
	"Hybrid v1+v2 torrents (BEP 52) are shown through "
	"their\n"
	"v1 view; v2-only torrents are refused as not supported yet.\n"
	"\n"
	"Options:\n"
	"  --json      print everything as one JSON object (strings as in 'torrent decode "
	"--help')\n"
	"  -h, --help  show this help\n"
	"\n"
	"Exit status: 0 success, 1 a magnet's metadata could not be fetched, 2 bad usage,\n"
	"unreadable file or invalid torrent or magnet.\n";

static void print_hex_line(const char *label, const uint8_t *p, size_t n)
{
	char hex[2 * BT_SHA256_LEN + 1];
	bt_hex_encode(hex, p, n);
	printf("%s%s\n", label, hex);
}

static void print_labelled(const char *label, const char *value)
{
	fputs(label, stdout);
	bt_cli_put_safe(stdout, value);
	fputc('\n', stdout);
}

static void format_date(int64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) && strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm))
		return;
	snprintf(out, n, "out of range");
}

/* Three significant digits in binary units: "1.00 GiB", "12.0 MiB", "512 KiB", "40 B". */
static void human_size(char *out, size_t n, int64_t bytes)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)bytes;
	size_t u = 0;
	while (v >= 1024 && u + 1 < sizeof units / sizeof units[0])
		v /= 1024, u++;
	if (u == 0)
		snprintf(out, n, "%" PRId64 " B", bytes);
	else
		snprintf(out, n, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
}

/* Piece i's hash; false, having said why, if it cannot be read back (a spilled torrent). */
static bool piece_hash(const char *cmd, const struct bt_metainfo *m, uint32_t i,
		       uint8_t out[BT_SHA1_LEN])
{
	int rc = bt_meta_piece_hash(m, i, out);
	if (rc)
		bt_cli_error(cmd,
			     "piece %" PRIu32 ": cannot read its hash back from our temporary "
			     "file: %s",
			     i, strerror(-rc));
	return rc == 0;
}

static int print_text(const char *cmd, const struct bt_metainfo *m)
{
	const char *tracker = bt_meta_tracker(m);
	print_labelled("Tracker URL: ", tracker ? tracker : "(none)");
	printf("Length: %" PRId64 "\n", m->total_length);
	print_hex_line("Info Hash: ", m->info_hash, BT_SHA1_LEN);
	printf("Piece Length: %" PRId64 "\n", m->piece_length);
	puts("Piece Hashes:");
	uint8_t h[BT_SHA1_LEN];
	for (uint32_t i = 0; i < m->piece_count; i++) {
		if (!piece_hash(cmd, m, i, h))
			return BT_EXIT_FAILURE;
		print_hex_line("", h, BT_SHA1_LEN);
	}

	print_labelled("Name: ", m->orig_name ? m->orig_name : m->name);
	printf("Piece Count: %" PRIu32 "\n", m->piece_count);
	char total[32], piece[32];
	human_size(total, sizeof total, m->total_length);
	human_size(piece, sizeof piece, m->piece_length);
	printf("Size: %s (%" PRId64 " bytes) in %" PRIu32 " piece%s of %s\n", total,
	       m->total_length, m->piece_count, m->piece_count == 1 ? "" : "s", piece);
	printf("Private: %s\n", m->is_private ? "yes" : "no");
	if (m->has_creation_date) {
		char date[64];
		format_date(m->creation_date, date, sizeof date);
		printf("Creation Date: %s (%" PRId64 ")\n", date, m->creation_date);
	}
	if (m->created_by)
		print_labelled("Created By: ", m->created_by);
	if (m->comment)
		print_labelled("Comment: ", m->comment);
	if (m->tier_count) {
		puts("Trackers:");
		for (size_t t = 0; t < m->tier_count; t++) {
			printf("  tier %zu:", t + 1);
			for (size_t u = 0; u < m->tiers[t].count; u++) {
				fputc(' ', stdout);
				bt_cli_put_safe(stdout, m->tiers[t].urls[u]);
			}
			fputc('\n', stdout);
		}
	}
	if (m->web_seed_count) {
		puts("Web Seeds:");
		for (size_t i = 0; i < m->web_seed_count; i++)
			print_labelled("  ", m->web_seeds[i]);
	}
	if (m->multi_file) {
		size_t pads = 0;
		for (size_t i = 0; i < m->file_count; i++)
			pads += m->files[i].pad;
		printf("Files: %zu", m->file_count - pads);
		if (pads)
			printf(" (and %zu pad files)", pads);
		fputs(" (number, size, bytes, path)\n", stdout);
		/* Pad files are not the user's: they get no number, so the numbers match what a
		 * user counts in this list. */
		size_t number = 0;
		for (size_t i = 0; i < m->file_count; i++) {
			if (m->files[i].pad)
				continue;
			char size[32];
			human_size(size, sizeof size, m->files[i].length);
			printf("  %3zu  %10s  %14" PRId64 "  ", ++number, size, m->files[i].length);
			bt_cli_put_safe(stdout, m->files[i].orig_path ? m->files[i].orig_path
								      : m->files[i].path);
			fputc('\n', stdout);
		}
	}
	if (m->hybrid) {
		print_hex_line("Info Hash v2: ", m->info_hash_v2, BT_SHA256_LEN);
		puts("Note: this is a hybrid v1+v2 torrent (BEP 52); shown and used through its v1 "
		     "view.");
	}
	return 0;
}

static void json_strings(struct bt_buf *b, char *const *v, size_t n)
{
	bt_buf_addc(b, '[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			bt_buf_addc(b, ',');
		bt_json_put_str(b, v[i]);
	}
	bt_buf_addc(b, ']');
}

static void json_opt_str(struct bt_buf *b, int *first, const char *key, const char *v)
{
	bt_json_key(b, first, key);
	if (v)
		bt_json_put_str(b, v);
	else
		bt_buf_adds(b, "null");
}

static int print_json(const char *cmd, const struct bt_metainfo *m)
{
	struct bt_buf b;
	bt_buf_init(&b);
	int first = 1;
	bt_buf_addc(&b, '{');
	json_opt_str(&b, &first, "tracker", bt_meta_tracker(m));
	bt_json_key(&b, &first, "length");
	bt_buf_printf(&b, "%" PRId64, m->total_length);
	bt_json_key(&b, &first, "info_hash");
	bt_json_put_hex(&b, m->info_hash, BT_SHA1_LEN);
	bt_json_key(&b, &first, "piece_length");
	bt_buf_printf(&b, "%" PRId64, m->piece_length);
	bt_json_key(&b, &first, "piece_hashes");
	bt_buf_addc(&b, '[');
	uint8_t h[BT_SHA1_LEN];
	for (uint32_t i = 0; i < m->piece_count; i++) {
		if (!piece_hash(cmd, m, i, h)) {
			bt_buf_deinit(&b);
			return BT_EXIT_FAILURE;
		}
		if (i)
			bt_buf_addc(&b, ',');
		bt_json_put_hex(&b, h, BT_SHA1_LEN);
		/* A million pieces make 43 MB of JSON: written as it grows, not held whole. */
		if (b.len >= 65536) {
			fwrite(b.data, 1, b.len, stdout);
			b.len = 0;
		}
	}
	bt_buf_addc(&b, ']');
	json_opt_str(&b, &first, "name", m->orig_name ? m->orig_name : m->name);
	bt_json_key(&b, &first, "piece_count");
	bt_buf_printf(&b, "%" PRIu32, m->piece_count);
	bt_json_key(&b, &first, "private");
	bt_buf_adds(&b, m->is_private ? "true" : "false");
	bt_json_key(&b, &first, "creation_date");
	if (m->has_creation_date)
		bt_buf_printf(&b, "%" PRId64, m->creation_date);
	else
		bt_buf_adds(&b, "null");
	json_opt_str(&b, &first, "created_by", m->created_by);
	json_opt_str(&b, &first, "comment", m->comment);
	bt_json_key(&b, &first, "trackers");
	bt_buf_addc(&b, '[');
	for (size_t t = 0; t < m->tier_count; t++) {
		if (t)
			bt_buf_addc(&b, ',');
		json_strings(&b, m->tiers[t].urls, m->tiers[t].count);
	}
	bt_buf_addc(&b, ']');
	bt_json_key(&b, &first, "web_seeds");
	json_strings(&b, m->web_seeds, m->web_seed_count);
	bt_json_key(&b, &first, "multi_file");
	bt_buf_adds(&b, m->multi_file ? "true" : "false");
	bt_json_key(&b, &first, "files");
	bt_buf_addc(&b, '[');
	for (size_t i = 0; i < m->file_count; i++) {
		const struct bt_meta_file *f = &m->files[i];
		bt_buf_adds(&b, i ? ",{" : "{");
		int ffirst = 1;
		json_opt_str(&b, &ffirst, "path", f->orig_path ? f->orig_path : f->path);
		bt_json_key(&b, &ffirst, "length");
		bt_buf_printf(&b, "%" PRId64, f->length);
		bt_json_key(&b, &ffirst, "offset");
		bt_buf_printf(&b, "%" PRId64, f->offset);
		bt_json_key(&b, &ffirst, "pad");
		bt_buf_adds(&b, f->pad ? "true" : "false");
		bt_buf_addc(&b, '}');
	}
	bt_buf_addc(&b, ']');
	bt_json_key(&b, &first, "hybrid");
	bt_buf_adds(&b, m->hybrid ? "true" : "false");
	bt_json_key(&b, &first, "info_hash_v2");
	if (m->hybrid)
		bt_json_put_hex(&b, m->info_hash_v2, BT_SHA256_LEN);
	else
		bt_buf_adds(&b, "null");
	bt_buf_adds(&b, "}\n");
	fwrite(b.data, 1, b.len, stdout);
	bt_buf_deinit(&b);
	return 0;
}

static int run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool json = false;
	int c;
	while ((c = bt_cli_getopt(argc, argv, ":h", opts)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(help, stdout);
			return BT_EXIT_OK;
		default:
			return BT_EXIT_USAGE;
		}
	}
	const char *cmd = argv[0];
	if (argc - optind != 1)
		return bt_cli_usage_error(cmd, "expected one .torrent file, URL or magnet link");
	/* A magnet's metadata is fetched from its peers first (magnet_info is this command). */
	struct bt_source src;
	int rc = bt_source_load(cmd, argv[optind], NULL, &src);
	if (!rc)
		rc = bt_source_fetch_metainfo(cmd, &src, NULL, NULL, 0, 0);
	if (!rc) {
		rc = json ? print_json(cmd, &src.m) : print_text(cmd, &src.m);
	}
	bt_source_deinit(&src);
	return rc;
}

const struct bt_cli_command bt_cmd_info = {
	.name = "info",
	.summary = "show what a torrent (.torrent file, URL or magnet) describes",
	.help = help,
	.run = run,
};
