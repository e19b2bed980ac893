/*
 * bench_parse: how long the client takes to turn a large .torrent into a struct bt_metainfo, and
 * how much memory that costs.
 *
 * The torrent is generated in memory, so no disk is in the timed path: a valid v1 torrent with N
 * pieces of 256 KiB and random piece hashes, single-file by default or spread over K files with
 * --files. The same bytes can be written out with --write so that other clients parse exactly
 * what we parse (bench/parse.sh does that); --read PATH parses a file instead of generating one.
 * Two things are timed over R repetitions each: bt_meta_parse (bencode, validation, copies, SHA-1
 * of the info dictionary) and bt_benc_parse alone, so the difference is what metainfo adds on top
 * of the tokenizer. With --read, the first read-and-parse in the fresh process is also timed
 * ("cold"), which is what a command that opens one torrent pays.
 *
 * Memory is reported three ways: the process's peak RSS (getrusage ru_maxrss), how far each
 * phase pushed that peak above where it stood before, and the heap a parsed result keeps alive
 * (mallinfo2, glibc only). The generator sizes its buffer once so that its own high-water mark
 * does not hide the parser's. The numbers are for comparison with other clients in the same run
 * (see parse.sh), never for pass/fail.
 */
#include "bt/bencode.h"
#include "bt/hash.h"
#include "bt/metainfo.h"
#include "bt/util.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define HAVE_MALLINFO2 1
#endif

#define PIECE_LENGTH ((int64_t)256 << 10)

struct options {
	uint32_t pieces;
	uint32_t files; /* 0: single-file torrent */
	uint32_t reps;
	const char *write_path;
	const char *read_path;
	const char *only; /* NULL, "meta" or "benc" */
};

/* The torrent under test, generated or read. */
struct input {
	uint8_t *data;
	size_t len;
	/* Known only for a generated torrent; checked against what the parser finds. */
	bool generated;
	size_t info_off;
	size_t info_len;
	int64_t total_length;
};

struct timing {
	double median;
	double min;
	long rss_before; /* KiB */
	long rss_after;
	size_t held; /* heap bytes the parsed result keeps alive */
};

static const char usage[] =
	"Usage: bench_parse [--pieces N] [--files K] [--reps R] [--only meta|benc]\n"
	"                   [--write PATH] [--read PATH]\n"
	"\n"
	"Generates a v1 torrent with N pieces of 256 KiB (default 100000) and random piece "
	"hashes,\n"
	"single-file, or with K files when --files is given, then times R repetitions (default "
	"20)\n"
	"of bt_benc_parse and of bt_meta_parse on it and reports time, throughput and memory.\n"
	"  --only meta|benc  run one of the two, so that its peak RSS stands alone\n"
	"  --write PATH      also save the torrent, so other clients can parse the same bytes\n"
	"  --read PATH       parse this file instead of generating one; the first read and parse\n"
	"                    in the process is timed on its own as 'cold'\n";

/* xorshift64*: deterministic, so every run and every client sees the same bytes. */
static uint64_t next_random(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_rss_kib(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru))
		return -1;
	return ru.ru_maxrss;
}

static size_t heap_in_use(void)
{
#ifdef HAVE_MALLINFO2
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
#else
	return 0;
#endif
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int64_t total_length_for(uint32_t pieces)
{
	/* The last piece is half full, as in most real torrents. */
	return (int64_t)(pieces - 1) * PIECE_LENGTH + PIECE_LENGTH / 2;
}

/*
 * An upper bound on the encoded size, so the buffer is allocated once: a file entry is
 * "d6:lengthi<at most 19 digits>e4:pathl8:dirNNNNN18:fileNNNNNNNNNN.binee", under 128 bytes.
 */
static size_t size_bound(const struct options *o)
{
	return (size_t)o->pieces * BT_SHA1_LEN + (size_t)o->files * 128 + 4096;
}

static void put_key_str(struct bt_buf *b, const char *key, const char *value)
{
	bt_benc_put_cstr(b, key);
	bt_benc_put_cstr(b, value);
}

static void put_key_int(struct bt_buf *b, const char *key, int64_t value)
{
	bt_benc_put_cstr(b, key);
	bt_benc_put_int(b, value);
}

static void put_files(struct bt_buf *b, uint32_t files, int64_t total)
{
	bt_benc_put_cstr(b, "files");
	bt_benc_begin_list(b);
	int64_t each = total / files;
	for (uint32_t i = 0; i < files; i++) {
		int64_t len = i + 1 < files ? each : total - each * (files - 1);
		char dir[32], file[32];
		snprintf(dir, sizeof dir, "dir%05" PRIu32, i / 1000);
		snprintf(file, sizeof file, "file%010" PRIu32 ".bin", i);
		bt_benc_begin_dict(b);
		put_key_int(b, "length", len);
		bt_benc_put_cstr(b, "path");
		bt_benc_begin_list(b);
		bt_benc_put_cstr(b, dir);
		bt_benc_put_cstr(b, file);
		bt_benc_end(b);
		bt_benc_end(b);
	}
	bt_benc_end(b);
}

static void put_pieces(struct bt_buf *b, uint32_t pieces)
{
	bt_benc_put_cstr(b, "pieces");
	size_t n = (size_t)pieces * BT_SHA1_LEN;
	bt_buf_printf(b, "%zu:", n);
	bt_buf_reserve(b, n);
	uint64_t seed = UINT64_C(0x9e3779b97f4a7c15);
	for (size_t i = 0; i < n; i += 8) {
		uint64_t r = next_random(&seed);
		size_t k = n - i < 8 ? n - i : 8;
		memcpy(b->data + b->len + i, &r, k);
	}
	b->len += n;
	b->data[b->len] = '\0';
}

/* Dictionary keys are written in sorted order, so the output is canonical bencode. */
static void generate(const struct options *o, struct input *in)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_reserve(&b, size_bound(o));
	*in = (struct input){.generated = true, .total_length = total_length_for(o->pieces)};

	bt_benc_begin_dict(&b);
	put_key_str(&b, "announce", "http://127.0.0.1:6969/announce");
	put_key_str(&b, "comment", "bench_parse synthetic torrent");
	put_key_str(&b, "created by", "bench_parse");
	put_key_int(&b, "creation date", 1700000000);
	bt_benc_put_cstr(&b, "info");
	in->info_off = b.len;
	bt_benc_begin_dict(&b);
	if (o->files)
		put_files(&b, o->files, in->total_length);
	else
		put_key_int(&b, "length", in->total_length);
	put_key_str(&b, "name", o->files ? "bench_parse_multi" : "bench_parse_single.bin");
	put_key_int(&b, "piece length", PIECE_LENGTH);
	put_pieces(&b, o->pieces);
	bt_benc_end(&b);
	in->info_len = b.len - in->info_off;
	bt_benc_end(&b);
	in->data = bt_buf_steal(&b, &in->len);
}

/*
 * Reads and parses the file once, timing both together, before anything else has warmed the
 * heap, the page cache of our own code, or OpenSSL's digest lookup.
 */
static int read_cold(const char *path, struct input *in)
{
	*in = (struct input){0};
	struct bt_err err;
	struct bt_metainfo m;
	long rss0 = peak_rss_kib();
	double t0 = now_seconds();
	if (bt_read_file(path, BT_META_MAX_FILE_SIZE, &in->data, &in->len, &err)) {
		fprintf(stderr, "bench_parse: %s\n", err.msg);
		return -1;
	}
	int rc = bt_meta_parse(&m, in->data, in->len, &err);
	double t1 = now_seconds();
	if (rc) {
		fprintf(stderr, "bench_parse: %s: %s\n", path, err.msg);
		return -1;
	}
	char hex[2 * BT_SHA1_LEN + 1];
	bt_hex_encode(hex, m.info_hash, BT_SHA1_LEN);
	printf("torrent: %zu bytes, %" PRIu32 " pieces of %" PRId64 " KiB, %zu file(s), "
	       "info hash %s\n",
	       in->len, m.piece_count, m.piece_length >> 10, m.file_count, hex);
	printf("cold: read and bt_meta_parse, first call in this process: %.4f ms, "
	       "+%ld KiB over the peak RSS before it (%ld KiB)\n",
	       (t1 - t0) * 1e3, peak_rss_kib() - rss0, rss0);
	bt_meta_deinit(&m);
	return 0;
}

static int write_file(const char *path, const struct input *in)
{
	FILE *f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "bench_parse: %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t w = fwrite(in->data, 1, in->len, f);
	if (fclose(f) || w != in->len) {
		fprintf(stderr, "bench_parse: %s: write failed\n", path);
		return -1;
	}
	return 0;
}

/* Checks the result once, outside the timed loop, against what the generator wrote. */
static int check_meta(const struct options *o, const struct input *in, const struct bt_metainfo *m)
{
	if (!in->generated)
		return 0;
	uint8_t want[BT_SHA1_LEN];
	bt_sha1(in->data + in->info_off, in->info_len, want);
	uint32_t files = o->files ? o->files : 1;
	if (memcmp(want, m->info_hash, BT_SHA1_LEN) || m->piece_count != o->pieces ||
	    m->file_count != files || m->total_length != in->total_length) {
		fprintf(stderr,
			"bench_parse: the parsed torrent does not match what was generated\n");
		return -1;
	}
	return 0;
}

static int time_meta(const struct options *o, const struct input *in, double *t, struct timing *out)
{
	out->rss_before = peak_rss_kib();
	for (uint32_t r = 0; r <= o->reps; r++) {
		struct bt_metainfo m;
		struct bt_err err;
		size_t heap0 = heap_in_use();
		double t0 = now_seconds();
		int rc = bt_meta_parse(&m, in->data, in->len, &err);
		double t1 = now_seconds();
		if (rc) {
			fprintf(stderr, "bench_parse: bt_meta_parse: %s\n", err.msg);
			return -1;
		}
		/* Repetition 0 is a warm-up: first-touch page faults, OpenSSL's digest fetch. */
		if (r == 0) {
			out->held = heap_in_use() - heap0;
			if (check_meta(o, in, &m)) {
				bt_meta_deinit(&m);
				return -1;
			}
		} else {
			t[r - 1] = t1 - t0;
		}
		bt_meta_deinit(&m);
	}
	out->rss_after = peak_rss_kib();
	return 0;
}

static int time_benc(const struct options *o, const struct input *in, double *t, struct timing *out)
{
	out->rss_before = peak_rss_kib();
	for (uint32_t r = 0; r <= o->reps; r++) {
		struct bt_benc_doc doc;
		struct bt_err err;
		size_t heap0 = heap_in_use();
		double t0 = now_seconds();
		enum bt_benc_result res = bt_benc_parse(&doc, in->data, in->len, NULL, NULL, &err);
		double t1 = now_seconds();
		if (res != BT_BENC_OK) {
			fprintf(stderr, "bench_parse: bt_benc_parse: %s\n", err.msg);
			return -1;
		}
		if (r == 0)
			out->held = heap_in_use() - heap0;
		else
			t[r - 1] = t1 - t0;
		bt_benc_doc_deinit(&doc);
	}
	out->rss_after = peak_rss_kib();
	return 0;
}

static void summarise(double *t, uint32_t reps, struct timing *out)
{
	qsort(t, reps, sizeof *t, compare_doubles);
	out->median = reps % 2 ? t[reps / 2] : (t[reps / 2 - 1] + t[reps / 2]) / 2;
	out->min = t[0];
}

static void report(const char *name, const struct timing *tm, size_t bytes, uint32_t reps)
{
	printf("%s: median %.4f ms, min %.4f ms, %.1f MB/s at the median (%" PRIu32 " reps)\n",
	       name, tm->median * 1e3, tm->min * 1e3, (double)bytes / tm->median / 1e6, reps);
	printf("%s: peak RSS %ld KiB, +%ld KiB over the peak before this phase; the result holds "
	       "%.1f KiB of heap\n",
	       name, tm->rss_after, tm->rss_after - tm->rss_before, (double)tm->held / 1024);
}

static int parse_u32(const char *s, const char *what, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || end == s || s[0] == '-' || v < 1 || v > UINT32_MAX) {
		fprintf(stderr, "bench_parse: %s: '%s' is not a positive number\n", what, s);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/* Returns 0 to run, 1 when --help was shown, -1 on bad usage. */
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{"pieces", required_argument, NULL, 'p'}, {"files", required_argument, NULL, 'f'},
		{"reps", required_argument, NULL, 'r'},	  {"only", required_argument, NULL, 'o'},
		{"write", required_argument, NULL, 'w'},  {"read", required_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'},	  {0},
	};
	*o = (struct options){.pieces = 100000, .reps = 20};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		int rc = 0;
		switch (c) {
		case 'p':
			rc = parse_u32(optarg, "--pieces", &o->pieces);
			break;
		case 'f':
			rc = parse_u32(optarg, "--files", &o->files);
			break;
		case 'r':
			rc = parse_u32(optarg, "--reps", &o->reps);
			break;
		case 'o':
			if (strcmp(optarg, "meta") && strcmp(optarg, "benc")) {
				fprintf(stderr, "bench_parse: --only takes 'meta' or 'benc'\n");
				rc = -1;
			}
			o->only = optarg;
			break;
		case 'w':
			o->write_path = optarg;
			break;
		case 'R':
			o->read_path = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 1;
		default:
			rc = -1;
			break;
		}
		if (rc)
			return -1;
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return -1;
	}
	/* Every file must hold at least one byte, or the even spread would make empty files. */
	if (o->files > total_length_for(o->pieces)) {
		fprintf(stderr, "bench_parse: more files than bytes\n");
		return -1;
	}
	return 0;
}

static void print_generated(const struct options *o, const struct input *in)
{
	uint8_t ih[BT_SHA1_LEN];
	char hex[2 * BT_SHA1_LEN + 1];
	bt_sha1(in->data + in->info_off, in->info_len, ih);
	bt_hex_encode(hex, ih, sizeof ih);
	printf("torrent: %zu bytes, %" PRIu32 " pieces of %" PRId64 " KiB, %" PRIu32
	       " file(s), info hash %s\n",
	       in->len, o->pieces, PIECE_LENGTH >> 10, o->files ? o->files : 1, hex);
}

int main(int argc, char **argv)
{
	struct options o;
	int rc = parse_options(argc, argv, &o);
	if (rc)
		return rc > 0 ? 0 : 2;

	struct input in;
	if (o.read_path) {
		if (read_cold(o.read_path, &in)) {
			free(in.data);
			return 1;
		}
	} else {
		generate(&o, &in);
		print_generated(&o, &in);
	}
	if (o.write_path && write_file(o.write_path, &in)) {
		free(in.data);
		return 1;
	}
	printf("RSS before the timed phases: %ld KiB\n", peak_rss_kib());

	double *t = bt_xcalloc(o.reps, sizeof *t);
	struct timing meta = {0}, benc = {0};
	/*
	 * bt_benc_parse goes first: bt_meta_parse runs it too, so the second phase's step above the
	 * first one's peak is what metainfo adds, and the process's final peak is its peak.
	 */
	if (!o.only || !strcmp(o.only, "benc")) {
		if ((rc = time_benc(&o, &in, t, &benc)) == 0) {
			summarise(t, o.reps, &benc);
			report("bt_benc_parse", &benc, in.len, o.reps);
		}
	}
	if (!rc && (!o.only || !strcmp(o.only, "meta"))) {
		if ((rc = time_meta(&o, &in, t, &meta)) == 0) {
			summarise(t, o.reps, &meta);
			report("bt_meta_parse", &meta, in.len, o.reps);
		}
	}
	free(t);
	free(in.data);
	return rc ? 1 : 0;
}
