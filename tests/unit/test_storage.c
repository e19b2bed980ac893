#include "bt/storage.h"

#include "bt/metainfo.h"
#include "bt/util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- fixtures: every test gets its own mkdtemp directory, removed afterwards ---- */

static int make_writable(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_D || type == FTW_DNR)
		chmod(path, 0700);
	return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

static int setup_dir(void **state)
{
	char tmpl[] = "/tmp/bt_storage_test_XXXXXX";
	if (!mkdtemp(tmpl))
		return -1;
	*state = bt_xstrdup(tmpl);
	return 0;
}

static int teardown_dir(void **state)
{
	char *dir = *state;
	/* A test may leave a directory unwritable (that is what it tests); undo that first. */
	nftw(dir, make_writable, 16, FTW_PHYS);
	nftw(dir, remove_one, 16, FTW_PHYS | FTW_DEPTH);
	free(dir);
	return 0;
}

/* ---- helpers ---- */

#define HASH20 "AAAAAAAAAAAAAAAAAAAA"

static char *join(const char *dir, const char *rel)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_printf(&b, "%s/%s", dir, rel);
	return (char *)bt_buf_steal(&b, NULL);
}

/* Dummy piece hashes: storage never checks them, the parser only counts them. */
static void add_pieces(struct bt_buf *b, int64_t total, int64_t piece_length)
{
	int64_t count = (total + piece_length - 1) / piece_length;
	bt_buf_printf(b, "6:pieces%lld:", (long long)count * 20);
	for (int64_t i = 0; i < count; i++)
		bt_buf_adds(b, HASH20);
}

static void parse_single(struct bt_metainfo *m, const char *name, int64_t length,
			 int64_t piece_length)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_printf(&b, "d4:infod6:lengthi%llde4:name%zu:%s12:piece lengthi%llde",
		      (long long)length, strlen(name), name, (long long)piece_length);
	add_pieces(&b, length, piece_length);
	bt_buf_adds(&b, "ee");
	struct bt_err err = {""};
	if (bt_meta_parse(m, b.data, b.len, &err))
		fail_msg("parse: %s", err.msg);
	bt_buf_deinit(&b);
}

struct tfile {
	const char *path; /* components separated by '/' */
	int64_t length;
	bool pad;
};

static void parse_multi(struct bt_metainfo *m, const struct tfile *files, size_t n,
			int64_t piece_length)
{
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_adds(&b, "d4:infod5:filesl");
	int64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		bt_buf_addc(&b, 'd');
		if (files[i].pad)
			bt_buf_adds(&b, "4:attr1:p");
		bt_buf_printf(&b, "6:lengthi%llde4:pathl", (long long)files[i].length);
		for (const char *c = files[i].path; *c;) {
			size_t len = strcspn(c, "/");
			bt_buf_printf(&b, "%zu:%.*s", len, (int)len, c);
			c += len + (c[len] == '/');
		}
		bt_buf_adds(&b, "ee");
		total += files[i].length;
	}
	bt_buf_printf(&b, "e4:name4:root12:piece lengthi%llde", (long long)piece_length);
	add_pieces(&b, total, piece_length);
	bt_buf_adds(&b, "ee");
	struct bt_err err = {""};
	if (bt_meta_parse(m, b.data, b.len, &err))
		fail_msg("parse: %s", err.msg);
	bt_buf_deinit(&b);
}

/* A hand-filled metainfo for the pure mapping tests: no parsing, no hashes. */
static void fill_meta(struct bt_metainfo *m, struct bt_meta_file *files, size_t n,
		      int64_t piece_length)
{
	memset(m, 0, sizeof *m);
	int64_t off = 0;
	for (size_t i = 0; i < n; i++) {
		files[i].offset = off;
		off += files[i].length;
	}
	m->files = files;
	m->file_count = n;
	m->multi_file = true;
	m->total_length = off;
	m->piece_length = piece_length;
	m->piece_count = (uint32_t)((off + piece_length - 1) / piece_length);
}

/* Never zero, and different at neighbouring offsets, so misplaced or zeroed bytes show. */
static uint8_t *pattern(size_t n)
{
	uint8_t *p = bt_xmalloc(n);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i % 251 + 1);
	return p;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	uint8_t *data;
	struct bt_err err = {""};
	if (bt_read_file(path, 1 << 24, &data, len, &err))
		fail_msg("%s", err.msg);
	return data;
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static int64_t file_size(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return -1;
	return st.st_size;
}

static void expect_msg(const struct bt_err *err, const char *path, const char *reason)
{
	char want[BT_ERR_MAX];
	snprintf(want, sizeof want, "%s: %s", path, reason);
	assert_string_equal(err->msg, want);
}

/* ---- mapping ---- */

#define MAX_SEGS 16

struct seg_log {
	struct bt_segment segs[MAX_SEGS];
	size_t count;
	size_t stop_at; /* return 7 from this call (1-based); 0 never */
};

static int log_seg(const struct bt_segment *seg, void *arg)
{
	struct seg_log *l = arg;
	assert_true(l->count < MAX_SEGS);
	l->segs[l->count++] = *seg;
	return l->count == l->stop_at ? 7 : 0;
}

static void expect_seg(const struct seg_log *l, size_t k, size_t file, int64_t file_offset,
		       int64_t length, int64_t data_offset)
{
	assert_true(k < l->count);
	const struct bt_segment *s = &l->segs[k];
	if (s->file != file || s->file_offset != file_offset || s->length != length ||
	    s->data_offset != data_offset)
		fail_msg("segment %zu: got file %zu at %lld, %lld bytes, data %lld; want file %zu "
			 "at %lld, %lld bytes, data %lld",
			 k, s->file, (long long)s->file_offset, (long long)s->length,
			 (long long)s->data_offset, file, (long long)file_offset, (long long)length,
			 (long long)data_offset);
}

/*
 * 0      5      8            12      22
 * |  a   |  b   |  pad (4)   |   c    |   with empty files at 0, 5 (twice), 8 and 22.
 */
static struct bt_meta_file map_files[] = {
	{.path = "empty0", .length = 0},
	{.path = "a", .length = 5},
	{.path = "e1", .length = 0},
	{.path = "e2", .length = 0},
	{.path = "b", .length = 3},
	{.path = "e3", .length = 0},
	{.path = ".pad/4", .length = 4, .pad = true},
	{.path = "c", .length = 10},
	{.path = "e4", .length = 0},
};
enum { A = 1, B = 4, PAD = 6, C = 7 };

static void test_map_across_files(void **state)
{
	(void)state;
	struct bt_metainfo m;
	fill_meta(&m, map_files, sizeof map_files / sizeof map_files[0], 8);
	assert_int_equal(m.total_length, 22);

	/* From inside a, across the empty files, b, the pad, into c. */
	struct seg_log l = {.count = 0};
	assert_int_equal(bt_storage_map(&m, 3, 13, log_seg, &l), 0);
	assert_int_equal(l.count, 4);
	expect_seg(&l, 0, A, 3, 2, 0);
	expect_seg(&l, 1, B, 0, 3, 2);
	expect_seg(&l, 2, PAD, 0, 4, 5);
	expect_seg(&l, 3, C, 0, 4, 9);

	/* The whole torrent: empty files at the start and end never show. */
	l.count = 0;
	assert_int_equal(bt_storage_map(&m, 0, 22, log_seg, &l), 0);
	assert_int_equal(l.count, 4);
	expect_seg(&l, 0, A, 0, 5, 0);
	expect_seg(&l, 3, C, 0, 10, 12);

	/* The callback's first non-zero return stops the walk and is returned. */
	l = (struct seg_log){.stop_at = 2};
	assert_int_equal(bt_storage_map(&m, 0, 22, log_seg, &l), 7);
	assert_int_equal(l.count, 2);
}

static void test_map_exact_boundaries(void **state)
{
	(void)state;
	struct bt_metainfo m;
	fill_meta(&m, map_files, sizeof map_files / sizeof map_files[0], 8);
	struct seg_log l = {.count = 0};

	/* Starting exactly where b starts (three files start at 5: e1, e2, b). */
	assert_int_equal(bt_storage_map(&m, 5, 3, log_seg, &l), 0);
	assert_int_equal(l.count, 1);
	expect_seg(&l, 0, B, 0, 3, 0);

	/* Ending exactly where a ends. */
	l.count = 0;
	assert_int_equal(bt_storage_map(&m, 0, 5, log_seg, &l), 0);
	assert_int_equal(l.count, 1);
	expect_seg(&l, 0, A, 0, 5, 0);

	/* The last byte of a, then the first of b. */
	l.count = 0;
	assert_int_equal(bt_storage_map(&m, 4, 2, log_seg, &l), 0);
	assert_int_equal(l.count, 2);
	expect_seg(&l, 0, A, 4, 1, 0);
	expect_seg(&l, 1, B, 0, 1, 1);

	/* The very last byte, and the pad alone. */
	l.count = 0;
	assert_int_equal(bt_storage_map(&m, 21, 1, log_seg, &l), 0);
	assert_int_equal(l.count, 1);
	expect_seg(&l, 0, C, 9, 1, 0);
	l.count = 0;
	assert_int_equal(bt_storage_map(&m, 8, 4, log_seg, &l), 0);
	assert_int_equal(l.count, 1);
	expect_seg(&l, 0, PAD, 0, 4, 0);

	/* Empty ranges call nothing, even at the very end; ranges outside the torrent fail. */
	l.count = 0;
	assert_int_equal(bt_storage_map(&m, 22, 0, log_seg, &l), 0);
	assert_int_equal(bt_storage_map(&m, 5, 0, log_seg, &l), 0);
	assert_int_equal(l.count, 0);
	assert_int_equal(bt_storage_map(&m, 22, 1, log_seg, &l), -EINVAL);
	assert_int_equal(bt_storage_map(&m, 0, 23, log_seg, &l), -EINVAL);
	assert_int_equal(bt_storage_map(&m, -1, 2, log_seg, &l), -EINVAL);
	assert_int_equal(bt_storage_map(&m, 1, -1, log_seg, &l), -EINVAL);
	assert_int_equal(bt_storage_map(&m, 1, INT64_MAX, log_seg, &l), -EINVAL);
	assert_int_equal(l.count, 0);
}

static void test_map_last_short_piece(void **state)
{
	(void)state;
	/* 7 + 20 + 9 = 36 bytes in pieces of 16: the last piece is 4 bytes, all in "c". */
	const struct tfile files[] = {{"a", 7, false}, {"b", 20, false}, {"c", 9, false}};
	struct bt_metainfo m;
	parse_multi(&m, files, 3, 16);
	assert_int_equal(m.piece_count, 3);
	int64_t last = bt_meta_piece_size(&m, 2);
	assert_int_equal(last, 4);

	struct seg_log l = {.count = 0};
	assert_int_equal(bt_storage_map(&m, 2 * m.piece_length, last, log_seg, &l), 0);
	assert_int_equal(l.count, 1);
	expect_seg(&l, 0, 2, 5, 4, 0);

	l.count = 0;
	assert_int_equal(bt_storage_map(&m, 16, 16, log_seg, &l), 0);
	assert_int_equal(l.count, 2);
	expect_seg(&l, 0, 1, 9, 11, 0);
	expect_seg(&l, 1, 2, 0, 5, 11);
	bt_meta_deinit(&m);
}

struct first_seg {
	struct bt_segment seg;
	int calls;
};

static int keep_first(const struct bt_segment *seg, void *arg)
{
	struct first_seg *f = arg;
	if (f->calls++ == 0)
		f->seg = *seg;
	return 0;
}

static int check_contiguous(const struct bt_segment *seg, void *arg)
{
	int64_t *next = arg;
	if (seg->data_offset != *next || seg->file_offset != 0 ||
	    seg->length != (int64_t)(seg->file % 3))
		return -1;
	*next += seg->length;
	return 0;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_map_many_files_is_fast(void **state)
{
	(void)state;
	/* 150,000 files of 0, 1, 2, 0, 1, 2, ... bytes: file 3k+1 holds byte 3k, file 3k+2 bytes
	 * 3k+1 and 3k+2. A linear scan from the first file would take about 10^10 steps here. */
	enum { N = 150000, CALLS = 200000 };
	struct bt_meta_file *files = bt_xcalloc(N, sizeof *files);
	for (size_t i = 0; i < N; i++)
		files[i].length = (int64_t)(i % 3);
	struct bt_metainfo m;
	fill_meta(&m, files, N, 1 << 14);
	assert_int_equal(m.total_length, N);

	double t0 = now_seconds();
	uint64_t x = 12345;
	for (int k = 0; k < CALLS; k++) {
		x = x * 6364136223846793005u + 1442695040888963407u;
		int64_t at = (int64_t)((x >> 33) % N);
		struct first_seg f = {.calls = 0};
		assert_int_equal(bt_storage_map(&m, at, 1, keep_first, &f), 0);
		size_t want_file = (size_t)(at / 3 * 3) + (at % 3 == 0 ? 1 : 2);
		int64_t want_off = at % 3 == 2 ? 1 : 0;
		if (f.calls != 1 || f.seg.file != want_file || f.seg.file_offset != want_off)
			fail_msg("byte %lld: %d calls, file %zu at %lld; want file %zu at %lld",
				 (long long)at, f.calls, f.seg.file, (long long)f.seg.file_offset,
				 want_file, (long long)want_off);
	}
	double took = now_seconds() - t0;
	if (took > 2.0)
		fail_msg("%d lookups took %.2f s", CALLS, took);

	/* And one walk over everything is contiguous and skips every empty file. */
	int64_t next = 0;
	assert_int_equal(bt_storage_map(&m, 0, N, check_contiguous, &next), 0);
	assert_int_equal(next, N);
	free(files);
}

/* ---- files on disk ---- */

/* Every 32 MiB written to a file, its writeback is started beside the caller. */
static void test_writeback_started_early(void **state)
{
	const char *dir = *state;
	struct bt_metainfo m;
	const int64_t piece = 1 << 20, total = 72 << 20;
	parse_single(&m, "big.bin", total, piece);
	char *root = join(dir, "big.bin");
	uint8_t *data = pattern((size_t)piece);
	struct bt_err err = {""};
	struct bt_storage *s = NULL;
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), 0);
	bt_storage_set_flush_after(s, 1e9); /* the sizes alone, however slow the writes */
	assert_int_equal(bt_storage_writebacks(s), 0);
	for (uint32_t i = 0; i < 31; i++)
		assert_int_equal(bt_storage_write_piece(s, i, data, &err), 0);
	assert_int_equal(bt_storage_writebacks(s), 0); /* under 32 MiB: nothing asked yet */
	for (uint32_t i = 31; i < 72; i++)
		assert_int_equal(bt_storage_write_piece(s, i, data, &err), 0);
	/* Two requests (at 32 and 64 MiB), carried out by the thread soon after. */
	for (int k = 0; k < 500 && bt_storage_writebacks(s) < 2; k++)
		usleep(10000);
	assert_int_equal(bt_storage_writebacks(s), 2);
	assert_int_equal(bt_storage_sync(s, &err), 0);
	bt_storage_free(s);
	assert_int_equal(file_size(root), total);
	free(data);
	free(root);
	bt_meta_deinit(&m);
}

/* At the rates of a slow swarm, a while without a request is enough: the final fsync then has
 * only that while's worth left, not up to 32 MiB. */
static void test_writeback_after_a_while(void **state)
{
	const char *dir = *state;
	struct bt_metainfo m;
	const int64_t piece = 64 << 10;
	parse_single(&m, "slow.bin", 4 * piece, piece);
	char *root = join(dir, "slow.bin");
	uint8_t *data = pattern((size_t)piece);
	struct bt_err err = {""};
	struct bt_storage *s = NULL;
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), 0);
	bt_storage_set_flush_after(s, 0.5);
	assert_int_equal(bt_storage_write_piece(s, 0, data, &err), 0);
	assert_int_equal(bt_storage_write_piece(s, 1, data, &err), 0);
	usleep(50000);
	assert_int_equal(bt_storage_writebacks(s), 0); /* neither 32 MiB nor 0.5 s yet */
	usleep(550000);
	assert_int_equal(bt_storage_write_piece(s, 2, data, &err), 0);
	/* Right after a request: the clock started again, no second one. */
	assert_int_equal(bt_storage_write_piece(s, 3, data, &err), 0);
	for (int k = 0; k < 500 && bt_storage_writebacks(s) < 1; k++)
		usleep(10000);
	assert_int_equal(bt_storage_sync(s, &err), 0);
	assert_int_equal(bt_storage_writebacks(s), 1);
	bt_storage_free(s);
	free(data);
	free(root);
	bt_meta_deinit(&m);
}

static void test_single_file_roundtrip(void **state)
{
	const char *dir = *state;
	struct bt_metainfo m;
	parse_single(&m, "file.bin", 40, 16); /* pieces of 16, 16, 8 */
	char *root = join(dir, "x/y/file.bin");
	uint8_t *data = pattern(40);
	struct bt_err err = {""};

	struct bt_storage *s = NULL;
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), 0);
	assert_non_null(s);
	assert_int_equal(file_size(root), 40); /* created at full length, parents made */
	/* Out of order, as pieces arrive. */
	assert_int_equal(bt_storage_write_piece(s, 2, data + 32, &err), 0);
	assert_int_equal(bt_storage_write_piece(s, 0, data, &err), 0);
	assert_int_equal(bt_storage_write_piece(s, 1, data + 16, &err), 0);
	assert_int_equal(bt_storage_sync(s, &err), 0);
	bt_storage_free(s);

	size_t len;
	uint8_t *disk = slurp(root, &len);
	assert_int_equal(len, 40);
	assert_memory_equal(disk, data, 40);
	free(disk);

	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_READONLY, &err), 0);
	uint8_t buf[16];
	assert_int_equal(bt_storage_read(s, 2, 0, buf, 8, &err), 0);
	assert_memory_equal(buf, data + 32, 8);
	assert_int_equal(bt_storage_read(s, 1, 3, buf, 13, &err), 0);
	assert_memory_equal(buf, data + 19, 13);
	assert_int_equal(bt_storage_read(s, 0, 0, buf, 16, &err), 0);
	assert_memory_equal(buf, data, 16);
	bt_storage_free(s);

	free(data);
	free(root);
	bt_meta_deinit(&m);
}

/*
 * Offsets: empty 0 | a/b/one 0..7 | a/two (empty) 7 | three 7..27 | .pad/0 27..32 |
 * c/d/e/four 32..41 | z/last-empty 41. Pieces of 8: 6 pieces, the last one byte.
 */
static const struct tfile multi_files[] = {
	{"first-empty", 0, false},  {"a/b/one", 7, false}, {"a/two", 0, false},
	{"three", 20, false},	    {".pad/0", 5, true},   {"c/d/e/four", 9, false},
	{"z/last-empty", 0, false},
};
enum { MULTI_TOTAL = 41 };

static void test_multi_file_roundtrip(void **state)
{
	const char *dir = *state;
	struct bt_metainfo m;
	parse_multi(&m, multi_files, sizeof multi_files / sizeof multi_files[0], 8);
	assert_int_equal(m.total_length, MULTI_TOTAL);
	assert_int_equal(m.piece_count, 6);
	char *root = join(dir, "out/root");
	uint8_t *data = pattern(MULTI_TOTAL); /* non-zero in the pad range too */
	struct bt_err err = {""};

	struct bt_storage *s = NULL;
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), 0);
	for (uint32_t i = 0; i < m.piece_count; i++)
		assert_int_equal(bt_storage_write_piece(s, i, data + i * 8, &err), 0);
	assert_int_equal(bt_storage_sync(s, &err), 0);
	bt_storage_free(s);

	/* Each file holds exactly its slice. */
	static const struct {
		const char *rel;
		size_t off, len;
	} expect[] = {
		{"first-empty", 0, 0}, {"a/b/one", 0, 7},     {"a/two", 7, 0},
		{"three", 7, 20},      {"c/d/e/four", 32, 9}, {"z/last-empty", 41, 0},
	};
	for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
		char *p = join(root, expect[i].rel);
		size_t len;
		uint8_t *disk = slurp(p, &len);
		if (len != expect[i].len || memcmp(disk, data + expect[i].off, len) != 0)
			fail_msg("%s: %zu bytes, or not the torrent's", p, len);
		free(disk);
		free(p);
	}
	/* The pad file, and even its directory, never reach the disk. */
	char *pad = join(root, ".pad");
	assert_int_equal(file_size(pad), -1);
	assert_int_equal(errno, ENOENT);
	free(pad);

	/* Read back with READONLY: the pad reads as zeros although non-zero bytes were given. */
	uint8_t *want = pattern(MULTI_TOTAL);
	memset(want + 27, 0, 5);
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_READONLY, &err), 0);
	uint8_t got[MULTI_TOTAL];
	memset(got, 0xee, sizeof got);
	for (uint32_t i = 0; i < m.piece_count; i++) {
		uint32_t n = (uint32_t)bt_meta_piece_size(&m, i);
		assert_int_equal(bt_storage_read(s, i, 0, got + i * 8, n, &err), 0);
	}
	assert_memory_equal(got, want, MULTI_TOTAL);
	/* A block inside a piece, across one file's end into the next. */
	uint8_t blk[4];
	assert_int_equal(bt_storage_read(s, 0, 5, blk, 3, &err), 0);
	assert_memory_equal(blk, data + 5, 3);
	assert_int_equal(bt_storage_read(s, 3, 2, blk, 4, &err), 0);
	assert_memory_equal(blk, want + 26, 4);
	assert_int_equal(bt_storage_sync(s, &err), 0);
	bt_storage_free(s);

	/* READONLY does not need the empty files (nothing is ever read from them). */
	char *empty = join(root, "a/two");
	assert_int_equal(unlink(empty), 0);
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_READONLY, &err), 0);
	bt_storage_free(s);
	free(empty);

	free(want);
	free(data);
	free(root);
	bt_meta_deinit(&m);
}

static void test_selection_side_file(void **state)
{
	const char *dir = *state;
	struct bt_metainfo m;
	parse_multi(&m, multi_files, sizeof multi_files / sizeof multi_files[0], 8);
	char *root = join(dir, "sel/root");
	char *parts = join(dir, "sel/root.parts");
	uint8_t *data = pattern(MULTI_TOTAL);
	memset(data + 27, 0, 5); /* the pad's bytes, as a real piece holds them */
	struct bt_err err = {""};

	/* Only "three" (bytes 7..27, pieces 0 to 3, its first shared with a/b/one). */
	bool sel[7] = {false, false, false, true, false, false, false};
	struct bt_storage_select ss = {.files = sel, .parts = parts};
	struct bt_storage *s = NULL;
	assert_int_equal(bt_storage_open_select(&s, &m, root, BT_STORAGE_CREATE, &ss, &err), 0);
	for (uint32_t i = 0; i < 4; i++)
		assert_int_equal(bt_storage_write_piece(s, i, data + i * 8, &err), 0);
	assert_int_equal(bt_storage_sync(s, &err), 0);
	bt_storage_free(s);
	char *one = join(root, "a/b/one"), *four = join(root, "c/d/e/four");
	assert_int_equal(file_size(one), -1);
	assert_int_equal(file_size(four), -1);
	assert_true(file_size(parts) > 0);

	/* Every written piece reads back whole, the unselected bytes from the side file. */
	assert_int_equal(bt_storage_open_select(&s, &m, root, BT_STORAGE_READONLY, &ss, &err), 0);
	uint8_t got[32];
	for (uint32_t i = 0; i < 4; i++)
		assert_int_equal(bt_storage_read(s, i, 0, got + i * 8, 8, &err), 0);
	assert_memory_equal(got, data, 32);
	bt_storage_free(s);

	/* Selecting everything later: a/b/one is created holding its bytes from the side file. */
	struct bt_storage_select all = {.files = NULL, .parts = parts};
	assert_int_equal(bt_storage_open_select(&s, &m, root, BT_STORAGE_CREATE, &all, &err), 0);
	bt_storage_free(s);
	size_t len;
	uint8_t *disk = slurp(one, &len);
	assert_int_equal(len, 7);
	assert_memory_equal(disk, data, 7);
	free(disk);
	assert_int_equal(file_size(four), 9); /* created, its bytes never stored anywhere */

	free(one);
	free(four);
	free(data);
	free(parts);
	free(root);
	bt_meta_deinit(&m);
}

static void test_many_files_share_directories(void **state)
{
	const char *dir = *state;
	/* 600 files over 3 levels: the remembered directory must not skip a new sibling. */
	enum { N = 600 };
	struct tfile files[N];
	char names[N][32];
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof names[i], "d%d/e%d/f%d", i / 100, i / 10 % 3, i);
		files[i] = (struct tfile){names[i], 1 + i % 2, false};
	}
	struct bt_metainfo m;
	parse_multi(&m, files, N, 64);
	char *root = join(dir, "r/");
	struct bt_err err = {""};
	struct bt_storage *s = NULL;
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), 0);
	bt_storage_free(s);
	for (int i = 0; i < N; i++) {
		char *p = join(dir, "r");
		char *q = join(p, names[i]);
		if (file_size(q) != files[i].length)
			fail_msg("%s: size %lld", q, (long long)file_size(q));
		free(q);
		free(p);
	}
	free(root);
	bt_meta_deinit(&m);
}

static void test_zero_length_file_created(void **state)
{
	const char *dir = *state;
	const struct tfile files[] = {{"sub/empty", 0, false}, {"data", 3, false}};
	struct bt_metainfo m;
	parse_multi(&m, files, 2, 16);
	char *root = join(dir, "t");
	struct bt_err err = {""};
	struct bt_storage *s = NULL;
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), 0);
	bt_storage_free(s);
	char *p = join(root, "sub/empty");
	assert_int_equal(file_size(p), 0);
	free(p);
	free(root);
	bt_meta_deinit(&m);
}

static void test_only_pads_still_makes_root(void **state)
{
	const char *dir = *state;
	const struct tfile files[] = {{".pad/3", 3, true}};
	struct bt_metainfo m;
	parse_multi(&m, files, 1, 16);
	char *root = join(dir, "p/q");
	struct bt_err err = {""};
	struct bt_storage *s = NULL;
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), 0);
	uint8_t buf[3] = {1, 2, 3};
	assert_int_equal(bt_storage_write_piece(s, 0, buf, &err), 0);
	assert_int_equal(bt_storage_read(s, 0, 0, buf, 3, &err), 0);
	assert_memory_equal(buf, "\0\0\0", 3);
	bt_storage_free(s);
	struct stat st;
	assert_int_equal(stat(root, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	char *pad = join(root, ".pad");
	assert_int_equal(file_size(pad), -1);
	free(pad);
	free(root);
	bt_meta_deinit(&m);
}

static void test_missing_file_is_named(void **state)
{
	const char *dir = *state;
	struct bt_metainfo m;
	parse_multi(&m, multi_files, sizeof multi_files / sizeof multi_files[0], 8);
	char *root = join(dir, "root");
	char *a = join(root, "a");
	assert_int_equal(mkdir(root, 0777), 0);
	assert_int_equal(mkdir(a, 0777), 0);
	free(a);
	struct bt_err err = {""};
	struct bt_storage *s = (struct bt_storage *)&err; /* not NULL: open must reset it */

	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_READONLY, &err), -ENOENT);
	assert_null(s);
	char *p = join(root, "a/b/one");
	expect_msg(&err, p, "No such file or directory");

	/* A trailing '/' on root is the same directory, and messages show no "//". */
	char *slashed = join(root, "");
	assert_int_equal(bt_storage_open(&s, &m, slashed, BT_STORAGE_READONLY, &err), -ENOENT);
	expect_msg(&err, p, "No such file or directory");
	free(slashed);

	/* Without CREATE, read-write opening does not create either. */
	assert_int_equal(bt_storage_open(&s, &m, root, 0, &err), -ENOENT);
	expect_msg(&err, p, "No such file or directory");
	assert_int_equal(file_size(p), -1);
	free(p);

	/* The first file present, a later one missing: that one is named. */
	char *one = join(root, "a/b");
	assert_int_equal(mkdir(one, 0777), 0);
	free(one);
	p = join(root, "a/b/one");
	write_file(p, "1234567", 7);
	free(p);
	p = join(root, "three");
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_READONLY, &err), -ENOENT);
	expect_msg(&err, p, "No such file or directory");
	free(p);

	/* Single-file: root is the file. */
	struct bt_metainfo m1;
	parse_single(&m1, "f", 3, 16);
	p = join(dir, "nope.bin");
	assert_int_equal(bt_storage_open(&s, &m1, p, BT_STORAGE_READONLY, &err), -ENOENT);
	expect_msg(&err, p, "No such file or directory");
	free(p);
	bt_meta_deinit(&m1);

	free(root);
	bt_meta_deinit(&m);
}

static void test_unwritable_directory_is_named(void **state)
{
	const char *dir = *state;
	char *ro = join(dir, "ro");
	assert_int_equal(mkdir(ro, 0555), 0);
	/* Root ignores directory permissions: run the checks as nobody (the saved uid lets us
	 * come back). */
	bool dropped = geteuid() == 0;
	if (dropped) {
		assert_int_equal(chmod(dir, 0755), 0);
		assert_int_equal(setegid(65534), 0);
		assert_int_equal(seteuid(65534), 0);
	}
	struct bt_err err = {""};
	struct bt_storage *s = NULL;

	/* Multi-file: the directory that cannot be made is named. */
	const struct tfile files[] = {{"sub/f", 3, false}};
	struct bt_metainfo m;
	parse_multi(&m, files, 1, 16);
	char *root = join(ro, "out");
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), -EACCES);
	expect_msg(&err, root, "Permission denied");
	assert_null(s);
	bt_meta_deinit(&m);
	free(root);

	/* Single-file straight in the read-only directory: the file is named. */
	parse_single(&m, "f", 3, 16);
	root = join(ro, "f.bin");
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), -EACCES);
	expect_msg(&err, root, "Permission denied");
	bt_meta_deinit(&m);
	free(root);
	free(ro);
	if (dropped) {
		assert_int_equal(seteuid(0), 0);
		assert_int_equal(setegid(0), 0);
	}
}

static void test_not_a_directory_or_file(void **state)
{
	const char *dir = *state;
	struct bt_err err = {""};
	struct bt_storage *s = NULL;

	/* A regular file where the torrent needs a directory. */
	const struct tfile files[] = {{"x/a/b", 3, false}};
	struct bt_metainfo m;
	parse_multi(&m, files, 1, 16);
	char *root = join(dir, "root");
	char *x = join(root, "x");
	assert_int_equal(mkdir(root, 0777), 0);
	write_file(x, "not a dir", 9);
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), -ENOTDIR);
	expect_msg(&err, x, "Not a directory");
	free(x);
	free(root);
	bt_meta_deinit(&m);

	/* A directory where the torrent needs a file, for writing and for reading. */
	parse_single(&m, "f", 3, 16);
	root = join(dir, "isdir");
	assert_int_equal(mkdir(root, 0777), 0);
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), -EISDIR);
	expect_msg(&err, root, "Is a directory");
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_READONLY, &err), -EINVAL);
	expect_msg(&err, root, "not a regular file");
	free(root);

	/* A FIFO must be refused, not block the open forever waiting for a writer. */
	root = join(dir, "fifo");
	assert_int_equal(mkfifo(root, 0600), 0);
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_READONLY, &err), -EINVAL);
	expect_msg(&err, root, "not a regular file");
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), -EINVAL);
	expect_msg(&err, root, "not a regular file");
	free(root);
	bt_meta_deinit(&m);
}

static void test_existing_longer_file_left_alone(void **state)
{
	const char *dir = *state;
	struct bt_metainfo m;
	parse_single(&m, "f", 40, 16);
	char *root = join(dir, "long.bin");
	uint8_t old[100];
	memset(old, 'x', sizeof old);
	write_file(root, old, sizeof old);
	uint8_t *data = pattern(40);
	struct bt_err err = {""};
	struct bt_storage *s = NULL;

	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), 0);
	assert_int_equal(file_size(root), 100);
	assert_int_equal(bt_storage_write_piece(s, 2, data + 32, &err), 0);
	bt_storage_free(s);

	size_t len;
	uint8_t *disk = slurp(root, &len);
	assert_int_equal(len, 100);
	assert_memory_equal(disk, old, 32);
	assert_memory_equal(disk + 32, data + 32, 8);
	assert_memory_equal(disk + 40, old, 60);
	free(disk);
	free(data);
	free(root);
	bt_meta_deinit(&m);
}

static void test_existing_shorter_file(void **state)
{
	const char *dir = *state;
	struct bt_metainfo m;
	parse_single(&m, "f", 40, 16);
	char *root = join(dir, "short.bin");
	uint8_t old[10];
	memset(old, 'y', sizeof old);
	write_file(root, old, sizeof old);
	struct bt_err err = {""};
	struct bt_storage *s = NULL;

	/* READONLY and plain opens never resize; reading past the end gives zeros. */
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_READONLY, &err), 0);
	uint8_t buf[16], want[16] = {0};
	memset(buf, 0xee, sizeof buf);
	memset(want, 'y', 10);
	assert_int_equal(bt_storage_read(s, 0, 0, buf, 16, &err), 0);
	assert_memory_equal(buf, want, 16);
	memset(buf, 0xee, sizeof buf);
	assert_int_equal(bt_storage_read(s, 2, 0, buf, 8, &err), 0);
	assert_memory_equal(buf, want + 10, 6);
	bt_storage_free(s);
	assert_int_equal(bt_storage_open(&s, &m, root, 0, &err), 0);
	bt_storage_free(s);
	assert_int_equal(file_size(root), 10);

	/* CREATE grows it to the full length and keeps what it held. */
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), 0);
	bt_storage_free(s);
	size_t len;
	uint8_t *disk = slurp(root, &len);
	assert_int_equal(len, 40);
	assert_memory_equal(disk, want, 16);
	uint8_t zeros[24] = {0};
	assert_memory_equal(disk + 16, zeros, 24);
	free(disk);
	free(root);
	bt_meta_deinit(&m);
}

static void test_preallocates_where_supported(void **state)
{
	const char *dir = *state;
	enum { LEN = 1 << 20 };
	/* Does this file system do fallocate at all? If not, a sparse file is the right result. */
	char *probe = join(dir, "probe");
	int fd = open(probe, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	bool supported = fallocate(fd, 0, 0, LEN) == 0;
	close(fd);
	free(probe);
	if (!supported)
		skip();

	struct bt_metainfo m;
	parse_single(&m, "f", LEN, 1 << 18);
	char *root = join(dir, "big.bin");
	struct bt_err err = {""};
	struct bt_storage *s = NULL;
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), 0);
	bt_storage_free(s);
	struct stat st;
	assert_int_equal(stat(root, &st), 0);
	assert_int_equal(st.st_size, LEN);
	if ((int64_t)st.st_blocks * 512 < LEN)
		fail_msg("only %lld bytes allocated: not preallocated",
			 (long long)st.st_blocks * 512);
	free(root);
	bt_meta_deinit(&m);
}

/*
 * A file-size limit makes the kernel refuse to grow files, safely and at once, the way a full
 * disk would (a real ENOSPC would mean filling a shared disk). Its errno is EFBIG.
 */
static void test_growth_failure_is_named(void **state)
{
	const char *dir = *state;
	struct rlimit old;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
	struct rlimit lim = {.rlim_cur = 48 << 10, .rlim_max = old.rlim_max};
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

	struct bt_metainfo m;
	parse_single(&m, "f", 128 << 10, 32 << 10);
	char *root = join(dir, "big.bin");
	struct bt_err err = {""};
	struct bt_storage *s = NULL;
	int rc = bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err);
	char got_open[BT_ERR_MAX];
	snprintf(got_open, sizeof got_open, "%s", err.msg);

	/* Writing: the first pwrite stops short at the limit, the next one fails. */
	int wrc = -1;
	struct bt_storage *w = NULL;
	uint8_t *data = pattern(32 << 10);
	write_file(root, "", 0);
	if (bt_storage_open(&w, &m, root, 0, &err) == 0) {
		wrc = bt_storage_write_piece(w, 1, data, &err);
		bt_storage_free(w);
	}
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, old_handler);

	assert_int_equal(rc, -EFBIG);
	assert_null(s);
	snprintf(err.msg, sizeof err.msg, "%s", got_open);
	expect_msg(&err, root, "File too large");
	/* The write's error was the last one set. */
	assert_int_equal(wrc, -EFBIG);
	assert_int_equal(file_size(root), 48 << 10);
	size_t len;
	uint8_t *disk = slurp(root, &len);
	assert_memory_equal(disk + (32 << 10), data, 16 << 10); /* the short write's bytes */
	free(disk);
	free(data);
	free(root);
	bt_meta_deinit(&m);
}

/* ---- links: nothing at or below root is followed when writing ---- */

/* A listing of everything under a directory (path, type, size, mtime), for before/after. */
static struct bt_buf *snap_out;
static const char *snap_skip; /* a path whose subtree is left out, or NULL */

static int snap_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)type;
	(void)ftw;
	size_t n = snap_skip ? strlen(snap_skip) : 0;
	if (n && strncmp(path, snap_skip, n) == 0 && (path[n] == '\0' || path[n] == '/'))
		return 0;
	bt_buf_printf(snap_out, "%s %o %lld %lld.%09ld\n", path, (unsigned)st->st_mode,
		      (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	return 0;
}

/* The listing of dir, leaving out `skip` (the output root, which may change). */
static char *snapshot(const char *dir, const char *skip)
{
	struct bt_buf b;
	bt_buf_init(&b);
	snap_out = &b;
	snap_skip = skip;
	assert_int_equal(nftw(dir, snap_one, 16, FTW_PHYS), 0);
	bt_buf_addc(&b, '\0');
	return (char *)bt_buf_steal(&b, NULL);
}

static void expect_link_refused(const struct bt_err *err, const char *path)
{
	expect_msg(err, path, "a symbolic link; refusing to follow it");
}

/*
 * A link planted at root (single- and multi-file), at a directory inside the tree and at a
 * file inside it: each open is refused naming the link, and the walk of the whole test
 * directory (but root) is the same afterwards: the targets keep their content and mtime,
 * nothing is created beside them.
 */
static void test_planted_links_refused(void **state)
{
	const char *dir = *state;
	char *outside = join(dir, "outside");
	char *target = join(dir, "outside/target.bin");
	assert_int_equal(mkdir(outside, 0777), 0);
	write_file(target, "precious", 8);
	struct timespec old[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
	assert_int_equal(utimensat(AT_FDCWD, target, old, 0), 0);
	char *root = join(dir, "root.part");
	struct bt_err err = {""};
	struct bt_storage *s = NULL;
	static const int modes[] = {BT_STORAGE_CREATE, 0};

	/* Single-file: root is a link to a file outside. */
	struct bt_metainfo m1;
	parse_single(&m1, "f", 100, 16);
	assert_int_equal(symlink(target, root), 0);
	char *before = snapshot(dir, NULL);
	for (size_t k = 0; k < 2; k++) {
		assert_int_equal(bt_storage_open(&s, &m1, root, modes[k], &err), -ELOOP);
		assert_null(s);
		expect_link_refused(&err, root);
	}
	char *after = snapshot(dir, NULL);
	assert_string_equal(before, after);
	free(before);
	free(after);
	/* Read-only, root is the user's own path and is followed (seeding what they point at). */
	assert_int_equal(bt_storage_open(&s, &m1, root, BT_STORAGE_READONLY, &err), 0);
	bt_storage_free(s);
	assert_int_equal(unlink(root), 0);
	bt_meta_deinit(&m1);

	/* Multi-file: root a link to a directory outside. */
	struct bt_metainfo m;
	parse_multi(&m, multi_files, sizeof multi_files / sizeof multi_files[0], 8);
	assert_int_equal(symlink(outside, root), 0);
	before = snapshot(dir, NULL);
	for (size_t k = 0; k < 2; k++) {
		assert_int_equal(bt_storage_open(&s, &m, root, modes[k], &err), -ELOOP);
		expect_link_refused(&err, root);
	}
	after = snapshot(dir, NULL);
	assert_string_equal(before, after);
	free(before);
	free(after);
	assert_int_equal(unlink(root), 0);

	/* A directory inside the tree ("a", holding a/b/one) is a link outside. */
	assert_int_equal(mkdir(root, 0777), 0);
	char *a = join(root, "a");
	assert_int_equal(symlink(outside, a), 0);
	before = snapshot(dir, root);
	for (size_t k = 0; k < 2; k++) {
		assert_int_equal(bt_storage_open(&s, &m, root, modes[k], &err), -ELOOP);
		expect_link_refused(&err, a);
	}
	/* Reading too: a link inside a multi-file root is refused even for the user's data. */
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_READONLY, &err), -ELOOP);
	expect_link_refused(&err, a);
	after = snapshot(dir, root);
	assert_string_equal(before, after);
	free(before);
	free(after);
	assert_int_equal(unlink(a), 0);

	/* A deeper directory (a/b) and then a file (three) inside the tree. */
	assert_int_equal(mkdir(a, 0777), 0);
	char *ab = join(root, "a/b");
	assert_int_equal(symlink(outside, ab), 0);
	before = snapshot(dir, root);
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), -ELOOP);
	expect_link_refused(&err, ab);
	after = snapshot(dir, root);
	assert_string_equal(before, after);
	free(before);
	free(after);
	assert_int_equal(unlink(ab), 0);

	char *three = join(root, "three");
	assert_int_equal(symlink(target, three), 0);
	before = snapshot(dir, root);
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), -ELOOP);
	expect_link_refused(&err, three);
	/* The failed start removed the files it had made before reaching the link. */
	char *one = join(root, "a/b/one");
	assert_int_equal(file_size(one), -1);
	free(one);
	after = snapshot(dir, root);
	assert_string_equal(before, after);
	free(before);
	free(after);

	size_t len;
	uint8_t *got = slurp(target, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(got, "precious", 8);
	free(got);
	struct stat st;
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1000000000);
	free(three);
	free(ab);
	free(a);
	bt_meta_deinit(&m);
	free(root);
	free(target);
	free(outside);
}

/* An existing root of the wrong kind is refused, naming it. */
static void test_root_of_wrong_kind(void **state)
{
	const char *dir = *state;
	struct bt_metainfo m;
	parse_multi(&m, multi_files, sizeof multi_files / sizeof multi_files[0], 8);
	char *root = join(dir, "file.part");
	write_file(root, "x", 1);
	struct bt_err err = {""};
	struct bt_storage *s = NULL;
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err), -ENOTDIR);
	expect_msg(&err, root, "Not a directory");
	assert_int_equal(file_size(root), 1);
	free(root);
	bt_meta_deinit(&m);
}

/*
 * A start that fails part-way (a file too large for RLIMIT_FSIZE, late in the list) removes
 * the files and directories it made, and nothing that was there before.
 */
static void test_failed_create_removes_what_it_made(void **state)
{
	const char *dir = *state;
	const struct tfile files[] = {
		{"one", 100, false}, {"d/two", 100, false}, {"d/e/f/big", 128 << 10, false}};
	struct bt_metainfo m;
	parse_multi(&m, files, 3, 16 << 10);
	struct rlimit old;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
	struct rlimit lim = {.rlim_cur = 48 << 10, .rlim_max = old.rlim_max};
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

	/* A fresh root: nothing of it is left. */
	char *root = join(dir, "fresh.part");
	struct bt_err err = {""};
	struct bt_storage *s = NULL;
	int rc1 = bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err);
	char msg1[BT_ERR_MAX];
	snprintf(msg1, sizeof msg1, "%s", err.msg);
	bool gone = file_size(root) == -1;

	/* A root that existed with a file and a directory of its own: those stay. */
	char *root2 = join(dir, "old.part");
	char *keep = join(root2, "keep.txt");
	char *d = join(root2, "d");
	assert_int_equal(mkdir(root2, 0777), 0);
	assert_int_equal(mkdir(d, 0777), 0);
	write_file(keep, "k", 1);
	int rc2 = bt_storage_open(&s, &m, root2, BT_STORAGE_CREATE, &err);
	char *after = snapshot(root2, NULL);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, old_handler);

	assert_int_equal(rc1, -EFBIG);
	assert_true(gone);
	char *big = join(root, "d/e/f/big");
	snprintf(err.msg, sizeof err.msg, "%s", msg1);
	expect_msg(&err, big, "File too large");
	free(big);
	assert_int_equal(rc2, -EFBIG);
	struct bt_buf want;
	bt_buf_init(&want);
	struct stat st;
	assert_int_equal(stat(root2, &st), 0);
	/* Just root, d and keep.txt (nftw lists in directory order: compare line counts). */
	size_t lines = 0;
	for (const char *c = after; *c; c++)
		lines += *c == '\n';
	assert_int_equal(lines, 3);
	assert_non_null(strstr(after, keep));
	assert_int_equal(file_size(keep), 1);
	assert_true(strstr(after, "/d/") == NULL);
	bt_buf_deinit(&want);
	free(after);
	free(d);
	free(keep);
	free(root2);
	free(root);
	bt_meta_deinit(&m);
}

static int count_fds(void)
{
	int n = 0;
	char path[64];
	for (int fd = 0; fd < 4096; fd++) {
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		struct stat st;
		n += lstat(path, &st) == 0;
	}
	return n;
}

/*
 * 3,000 files under a soft RLIMIT_NOFILE of 256: created, every piece written and read back
 * (also after reopening read-only), with never more than a quarter of the limit open.
 */
static void test_more_files_than_descriptors(void **state)
{
	const char *dir = *state;
	enum { NFILES = 3000, PIECE_LEN = 4096 };
	struct tfile *files = bt_xcalloc(NFILES, sizeof *files);
	char(*names)[32] = bt_xcalloc(NFILES, sizeof *names);
	int64_t total = 0;
	for (size_t i = 0; i < NFILES; i++) {
		snprintf(names[i], sizeof names[i], "d%02zu/f%04zu", i / 100, i);
		files[i].path = names[i];
		files[i].length = 500 + (int64_t)(i % 7) * 300; /* pieces span several files */
		total += files[i].length;
	}
	struct bt_metainfo m;
	parse_multi(&m, files, NFILES, PIECE_LEN);
	uint8_t *data = pattern((size_t)total);

	struct rlimit old;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	struct rlimit lim = {.rlim_cur = 256, .rlim_max = old.rlim_max};
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
	int base = count_fds();

	char *root = join(dir, "many.part");
	struct bt_err err = {""};
	struct bt_storage *s = NULL;
	int rc = bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, &err);
	if (rc)
		fail_msg("open: %s", err.msg);
	int peak = count_fds() - base;
	for (uint32_t i = 0; i < m.piece_count; i++) {
		rc = bt_storage_write_piece(s, i, data + (size_t)i * PIECE_LEN, &err);
		if (rc)
			fail_msg("write %u: %s", i, err.msg);
	}
	int after_writes = count_fds() - base;
	assert_int_equal(bt_storage_sync(s, &err), 0);
	assert_int_equal(bt_storage_trim(s, &err), 0);
	uint8_t *back = bt_xmalloc((size_t)total);
	for (uint32_t i = 0; i < m.piece_count; i++) {
		uint32_t len = (uint32_t)bt_meta_piece_size(&m, i);
		rc = bt_storage_read(s, i, 0, back + (size_t)i * PIECE_LEN, len, &err);
		if (rc)
			fail_msg("read %u: %s", i, err.msg);
	}
	assert_memory_equal(back, data, (size_t)total);
	bt_storage_free(s);

	/* Read-only, backwards (every read a reopen past the cache). */
	memset(back, 0, (size_t)total);
	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_READONLY, &err), 0);
	for (uint32_t i = m.piece_count; i-- > 0;) {
		uint32_t len = (uint32_t)bt_meta_piece_size(&m, i);
		assert_int_equal(bt_storage_read(s, i, 0, back + (size_t)i * PIECE_LEN, len, &err),
				 0);
	}
	int readonly_open = count_fds() - base;
	bt_storage_free(s);
	setrlimit(RLIMIT_NOFILE, &old);
	assert_memory_equal(back, data, (size_t)total);
	/* 64 files (256 / 4) and a directory or two. */
	assert_true(peak <= 64 + 3);
	assert_true(after_writes <= 64 + 3);
	assert_true(readonly_open <= 64 + 3);
	char *last = join(root, "d29/f2999");
	assert_int_equal(file_size(last), files[NFILES - 1].length);
	free(last);
	free(back);
	free(root);
	free(data);
	bt_meta_deinit(&m);
	free(names);
	free(files);
}

static void test_bad_arguments(void **state)
{
	const char *dir = *state;
	struct bt_metainfo m;
	parse_single(&m, "f", 40, 16);
	char *root = join(dir, "f.bin");
	struct bt_err err = {""};
	struct bt_storage *s = NULL;

	assert_int_equal(
		bt_storage_open(&s, &m, root, BT_STORAGE_CREATE | BT_STORAGE_READONLY, &err),
		-EINVAL);
	assert_int_equal(bt_storage_open(&s, &m, root, 4, &err), -EINVAL);
	assert_int_equal(bt_storage_open(&s, &m, "", BT_STORAGE_CREATE, &err), -EINVAL);
	assert_string_equal(err.msg, "storage: empty output path");
	assert_int_equal(file_size(root), -1);

	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_CREATE, NULL), 0);
	uint8_t buf[16] = {0};
	assert_int_equal(bt_storage_read(s, 3, 0, buf, 1, &err), -EINVAL);
	assert_int_equal(bt_storage_read(s, 2, 0, buf, 9, &err), -EINVAL); /* the last is 8 */
	assert_int_equal(bt_storage_read(s, 1, 15, buf, 2, &err), -EINVAL);
	assert_int_equal(bt_storage_read(s, 1, UINT32_MAX, buf, 2, &err), -EINVAL);
	assert_int_equal(bt_storage_read(s, 1, 16, buf, 0, &err), 0);
	assert_int_equal(bt_storage_write_piece(s, 3, buf, &err), -EINVAL);
	bt_storage_free(s);

	assert_int_equal(bt_storage_open(&s, &m, root, BT_STORAGE_READONLY, &err), 0);
	assert_int_equal(bt_storage_write_piece(s, 0, buf, &err), -EBADF);
	assert_string_equal(err.msg, "storage: opened read-only");
	bt_storage_free(s);

	bt_storage_free(NULL);
	free(root);
	bt_meta_deinit(&m);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_across_files),
		cmocka_unit_test(test_map_exact_boundaries),
		cmocka_unit_test(test_map_last_short_piece),
		cmocka_unit_test(test_map_many_files_is_fast),
		T(test_writeback_started_early),
		T(test_writeback_after_a_while),
		T(test_single_file_roundtrip),
		T(test_multi_file_roundtrip),
		T(test_selection_side_file),
		T(test_many_files_share_directories),
		T(test_zero_length_file_created),
		T(test_only_pads_still_makes_root),
		T(test_missing_file_is_named),
		T(test_unwritable_directory_is_named),
		T(test_not_a_directory_or_file),
		T(test_planted_links_refused),
		T(test_root_of_wrong_kind),
		T(test_failed_create_removes_what_it_made),
		T(test_more_files_than_descriptors),
		T(test_existing_longer_file_left_alone),
		T(test_existing_shorter_file),
		T(test_preallocates_where_supported),
		T(test_growth_failure_is_named),
		T(test_bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
