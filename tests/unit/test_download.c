/*
 * The download job in a temporary directory (also the working directory, for the cases with
 * neither --dir nor -o): names of the final output and its `.part`, refusal to clobber,
 * --force, resume counts, piece and seed jobs, and the `checking` progress, all through
 * bt_download_prepare without any network. Then one whole download over loopback from a
 * seeding job in a child process, and one whose only peer refuses connections. Then what
 * --force never touches, what a run that stored nothing leaves (nothing), a seed of the folder
 * holding <name>, a piece job's --dir, and, with the engine's clock jumped 90 s ahead, that a
 * download with no stall timeout goes on waiting for a connected peer that has nothing.
 */
#include "bt/download.h"

#include "bt/maketorrent.h"
#include "bt/session.h"

#include <event2/event.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define PIECE 16384
/* data.bin: 7 whole pieces and a short eighth. */
#define SINGLE_LEN    (7 * PIECE + 1234)
#define SINGLE_PIECES 8
/* album/: a.bin, c.bin, sub/b.bin in that order, 70007 bytes, 5 pieces. */
#define A_LEN	     20000
#define C_LEN	     7
#define B_LEN	     50000
#define MULTI_PIECES 5

static char tmp[64];
static char old_cwd[4096];

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	remove(path);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof tmp, "/tmp/bt-download-XXXXXX");
	if (!mkdtemp(tmp) || !getcwd(old_cwd, sizeof old_cwd) || chdir(tmp) != 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (chdir(old_cwd) != 0)
		return -1;
	nftw(tmp, remove_one, 16, FTW_PHYS | FTW_DEPTH);
	return 0;
}

static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n ? n : 1);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 2654435761u + seed * 977u) >> 11);
	return p;
}

/* Writes a file, creating its parent directories. */
static void write_file(const char *path, const void *p, size_t n)
{
	char dir[512];
	snprintf(dir, sizeof dir, "%s", path);
	for (char *s = strchr(dir + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		mkdir(dir, 0777);
		*s = '/';
	}
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void write_pattern(const char *path, size_t n, unsigned seed)
{
	uint8_t *p = pattern(n, seed);
	write_file(path, p, n);
	free(p);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	uint8_t *data;
	assert_int_equal(bt_read_file(path, 1 << 24, &data, len, NULL), 0);
	return data;
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void assert_same_file(const char *path, const uint8_t *want, size_t n)
{
	size_t len;
	uint8_t *got = slurp(path, &len);
	assert_int_equal(len, n);
	assert_memory_equal(got, want, n);
	free(got);
}

/* Flips one byte inside piece i of a file holding a single-file torrent's data. */
static void corrupt_piece(const char *path, uint32_t i)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	off_t at = (off_t)i * PIECE + 100;
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0xff;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

/* The source data under src/, and torrents of it with 16 KiB pieces and no trackers. */
static void write_sources(void)
{
	write_pattern("src/data.bin", SINGLE_LEN, 1);
	write_pattern("src/album/a.bin", A_LEN, 2);
	write_pattern("src/album/c.bin", C_LEN, 3);
	write_pattern("src/album/sub/b.bin", B_LEN, 4);
}

static void make_meta(struct bt_metainfo *m, const char *path)
{
	struct bt_make_opts o = {.path = path, .piece_length = PIECE, .no_date = true};
	struct bt_buf b;
	bt_buf_init(&b);
	struct bt_err err;
	assert_int_equal(bt_make_torrent(&o, &b, &err), 0);
	assert_int_equal(bt_meta_parse(m, b.data, b.len, &err), 0);
	bt_buf_deinit(&b);
}

static void make_single(struct bt_metainfo *m)
{
	make_meta(m, "src/data.bin");
	assert_string_equal(m->name, "data.bin");
	assert_false(m->multi_file);
	assert_int_equal(m->piece_count, SINGLE_PIECES);
}

static void make_multi(struct bt_metainfo *m)
{
	make_meta(m, "src/album");
	assert_string_equal(m->name, "album");
	assert_true(m->multi_file);
	assert_int_equal(m->piece_count, MULTI_PIECES);
	assert_string_equal(m->files[0].path, "a.bin");
	assert_string_equal(m->files[1].path, "c.bin");
	assert_string_equal(m->files[2].path, "sub/b.bin");
}

/* Copies the album's source files under root. */
static void copy_album(const char *root)
{
	static const struct {
		const char *rel;
		size_t len;
		unsigned seed;
	} f[] = {{"a.bin", A_LEN, 2}, {"c.bin", C_LEN, 3}, {"sub/b.bin", B_LEN, 4}};
	for (size_t i = 0; i < 3; i++) {
		char path[512];
		snprintf(path, sizeof path, "%s/%s", root, f[i].rel);
		write_pattern(path, f[i].len, f[i].seed);
	}
}

/* What a job reported. */
struct rec {
	struct bt_session *s;
	uint32_t checks[64][2];
	size_t nchecks;
	int changed, stopped;
};

static void on_checking(void *arg, struct bt_download *d, uint32_t done, uint32_t total)
{
	(void)d;
	struct rec *r = arg;
	if (r->nchecks < 64) {
		r->checks[r->nchecks][0] = done;
		r->checks[r->nchecks][1] = total;
	}
	r->nchecks++;
}

static void on_changed(void *arg, struct bt_download *d)
{
	struct rec *r = arg;
	r->changed++;
	if (bt_download_ended(d) && r->s)
		bt_session_stop(r->s);
}

static void on_stopped(void *arg, struct bt_download *d)
{
	(void)d;
	struct rec *r = arg;
	r->stopped++;
}

static const struct bt_download_events events = {
	.checking = on_checking, .changed = on_changed, .stopped = on_stopped};

/* The recheck's progress: at least one report, never going back, ending at the total. */
static void assert_checked(const struct rec *r, uint32_t total)
{
	assert_true(r->nchecks >= 1 && r->nchecks <= 64);
	for (size_t i = 0; i < r->nchecks; i++) {
		assert_int_equal(r->checks[i][1], total);
		assert_true(r->checks[i][0] <= total);
		if (i)
			assert_true(r->checks[i][0] > r->checks[i - 1][0]);
	}
	assert_int_equal(r->checks[r->nchecks - 1][0], total);
}

struct fx {
	struct bt_session *s;
	struct bt_metainfo single, multi;
};

static void fx_init(struct fx *f)
{
	write_sources();
	struct bt_err err;
	f->s = bt_session_new(&err);
	assert_non_null(f->s);
	make_single(&f->single);
	make_multi(&f->multi);
}

static void fx_deinit(struct fx *f)
{
	bt_meta_deinit(&f->single);
	bt_meta_deinit(&f->multi);
	bt_session_free(f->s);
}

static struct bt_download *job(struct fx *f, const struct bt_metainfo *m, struct bt_download_opts o,
			       struct rec *r)
{
	memset(r, 0, sizeof *r);
	o.torrent.use_trackers = false;
	return bt_download_new(f->s, m, &o, &events, r);
}

/* A fresh job that prepares without error and leaves a fresh `.part`, nothing to resume. */
static void expect_names(struct fx *f, const struct bt_metainfo *m, struct bt_download_opts o,
			 const char *final, const char *temp)
{
	/* The first folder of the output, if the job is to make it. */
	char top[256];
	snprintf(top, sizeof top, "%s", final);
	char *slash = strchr(top, '/');
	bool made_top = slash && (*slash = '\0', strcmp(top, ".") != 0) && !exists(top);
	struct rec r;
	struct bt_download *d = job(f, m, o, &r);
	struct bt_err err = {{0}};
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_string_equal(bt_download_final_path(d), final);
	assert_string_equal(bt_download_temp_path(d), temp);
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_NEW);
	assert_false(bt_download_was_complete(d));
	assert_int_equal(bt_download_resumed(d), -1);
	assert_int_equal(r.nchecks, 0);
	assert_false(exists(final));
	assert_true(exists(temp));
	if (m->multi_file) {
		assert_true(is_dir(temp));
		char path[512];
		snprintf(path, sizeof path, "%s/sub/b.bin", temp);
		assert_true(exists(path));
	} else {
		struct stat st;
		assert_int_equal(stat(temp, &st), 0);
		assert_int_equal(st.st_size, m->total_length);
	}
	bt_download_free(d);
	/* Freed with nothing verified stored: the `.part` and the folders the job made are gone. */
	assert_false(exists(temp));
	if (made_top)
		assert_false(exists(top));
}

static void test_names_single(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	expect_names(&f, &f.single, (struct bt_download_opts){.dir = "out"}, "out/data.bin",
		     "out/data.bin.part");
	expect_names(&f, &f.single, (struct bt_download_opts){.output = "x.bin"}, "x.bin",
		     "x.bin.part");
	/* -o wins over --dir. */
	expect_names(&f, &f.single, (struct bt_download_opts){.dir = "unused", .output = "y.bin"},
		     "y.bin", "y.bin.part");
	expect_names(&f, &f.single, (struct bt_download_opts){0}, "data.bin", "data.bin.part");
	/* Missing parents are created, as `mkdir -p` does. */
	expect_names(&f, &f.single, (struct bt_download_opts){.dir = "deep/er/est"},
		     "deep/er/est/data.bin", "deep/er/est/data.bin.part");
	fx_deinit(&f);
}

static void test_names_multi(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	expect_names(&f, &f.multi, (struct bt_download_opts){.dir = "out"}, "out/album",
		     "out/album.part");
	expect_names(&f, &f.multi, (struct bt_download_opts){.output = "o"}, "o/album",
		     "o/album.part");
	expect_names(&f, &f.multi, (struct bt_download_opts){0}, "./album", "./album.part");
	fx_deinit(&f);
}

static void test_complete_final_is_done(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	write_pattern("out/data.bin", SINGLE_LEN, 1);
	struct rec r;
	struct bt_download *d = job(&f, &f.single, (struct bt_download_opts){.dir = "out"}, &r);
	struct bt_err err = {{0}};
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_DONE);
	assert_true(bt_download_ended(d));
	assert_true(bt_download_was_complete(d));
	assert_int_equal(r.changed, 1);
	assert_checked(&r, SINGLE_PIECES);
	assert_false(exists("out/data.bin.part"));
	bt_download_free(d);
	assert_true(exists("out/data.bin"));

	/* A complete multi-file output, found through -o. */
	copy_album("o/album");
	d = job(&f, &f.multi, (struct bt_download_opts){.output = "o"}, &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_DONE);
	assert_true(bt_download_was_complete(d));
	assert_checked(&r, MULTI_PIECES);
	assert_false(exists("o/album.part"));
	bt_download_free(d);

	/* With seeding on, a complete output is served: not DONE yet. */
	d = job(&f, &f.single, (struct bt_download_opts){.dir = "out", .seed = true}, &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_true(bt_download_was_complete(d));
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_NEW);
	assert_false(exists("out/data.bin.part"));
	bt_download_free(d);
	fx_deinit(&f);
}

static void test_incomplete_final_refused_then_forced(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	write_pattern("out/data.bin", SINGLE_LEN, 1);
	corrupt_piece("out/data.bin", 2);
	size_t len;
	uint8_t *before = slurp("out/data.bin", &len);

	struct rec r;
	struct bt_download *d = job(&f, &f.single, (struct bt_download_opts){.dir = "out"}, &r);
	struct bt_err err = {{0}};
	assert_int_equal(bt_download_prepare(d, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "'out/data.bin'"));
	assert_non_null(strstr(err.msg, "use --force"));
	assert_non_null(strstr(err.msg, "7 of 8 pieces match"));
	assert_false(bt_download_was_complete(d));
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_NEW);
	bt_download_free(d);
	/* Untouched, and no `.part` made. */
	assert_same_file("out/data.bin", before, len);
	assert_false(exists("out/data.bin.part"));

	/* --force: the output becomes the `.part` and its good pieces are kept. */
	d = job(&f, &f.single, (struct bt_download_opts){.dir = "out", .force = true}, &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_false(exists("out/data.bin"));
	assert_same_file("out/data.bin.part", before, len);
	assert_int_equal(bt_download_resumed(d), SINGLE_PIECES - 1);
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_NEW);
	/* Progress: the output is checked once; its result stands under the temporary name. */
	assert_true(r.nchecks >= 1);
	assert_int_equal(r.checks[r.nchecks - 1][0], SINGLE_PIECES);
	bt_download_free(d);

	/* --force with both an output and a `.part`: refused, neither touched. */
	write_file("out/data.bin", before, len);
	d = job(&f, &f.single, (struct bt_download_opts){.dir = "out", .force = true}, &r);
	assert_int_equal(bt_download_prepare(d, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "both"));
	assert_non_null(strstr(err.msg, "'out/data.bin'"));
	assert_non_null(strstr(err.msg, "'out/data.bin.part'"));
	bt_download_free(d);
	assert_same_file("out/data.bin", before, len);
	assert_same_file("out/data.bin.part", before, len);
	free(before);

	/* A multi-file output with one wrong file: named, refused. */
	copy_album("m/album");
	write_pattern("m/album/sub/b.bin", B_LEN, 99);
	d = job(&f, &f.multi, (struct bt_download_opts){.dir = "m"}, &r);
	assert_int_equal(bt_download_prepare(d, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "'m/album'"));
	assert_non_null(strstr(err.msg, "use --force"));
	assert_non_null(strstr(err.msg, "1 of 5 pieces match"));
	bt_download_free(d);
	fx_deinit(&f);
}

static void test_part_resumed(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	/* Pieces 0, 3 and 7 (the short last one) right, the others zeros. */
	uint8_t *data = pattern(SINGLE_LEN, 1);
	uint8_t *part = calloc(1, SINGLE_LEN);
	static const uint32_t good[] = {0, 3, 7};
	for (size_t i = 0; i < 3; i++) {
		size_t off = (size_t)good[i] * PIECE;
		size_t n = good[i] == 7 ? 1234 : PIECE;
		memcpy(part + off, data + off, n);
	}
	write_file("out/data.bin.part", part, SINGLE_LEN);
	struct rec r;
	struct bt_download *d = job(&f, &f.single, (struct bt_download_opts){.dir = "out"}, &r);
	struct bt_err err = {{0}};
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_int_equal(bt_download_resumed(d), 3);
	assert_false(bt_download_was_complete(d));
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_NEW);
	assert_checked(&r, SINGLE_PIECES);
	bt_download_free(d);
	/* The kept bytes are still there. */
	assert_same_file("out/data.bin.part", part, SINGLE_LEN);
	free(data);
	free(part);

	/* A `.part` shorter than the torrent: the missing tail is just missing pieces. */
	uint8_t *head = pattern(3 * PIECE + 10, 1);
	write_file("short/data.bin.part", head, 3 * PIECE + 10);
	free(head);
	d = job(&f, &f.single, (struct bt_download_opts){.dir = "short"}, &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_int_equal(bt_download_resumed(d), 3);
	bt_download_free(d);

	/* Multi-file: only sub/b.bin right, which holds pieces 2, 3 and 4 whole. */
	copy_album("mo/album.part");
	write_pattern("mo/album.part/a.bin", A_LEN, 77);
	d = job(&f, &f.multi, (struct bt_download_opts){.output = "mo"}, &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_int_equal(bt_download_resumed(d), 3);
	assert_checked(&r, MULTI_PIECES);
	bt_download_free(d);
	fx_deinit(&f);
}

static void test_piece_job(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	uint8_t *data = pattern(SINGLE_LEN, 1);
	struct rec r;
	struct bt_err err = {{0}};

	/* Nothing there yet: a fresh `.part`, removed if the job ends without the piece. */
	struct bt_download *d =
		job(&f, &f.single,
		    (struct bt_download_opts){
			    .kind = BT_DOWNLOAD_PIECE, .output = "p3.bin", .piece = 3},
		    &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_string_equal(bt_download_final_path(d), "p3.bin");
	assert_string_equal(bt_download_temp_path(d), "p3.bin.part");
	assert_true(exists("p3.bin.part"));
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_NEW);
	bt_download_free(d);
	assert_false(exists("p3.bin.part"));

	/* The output is that piece already: done. Also for the short last piece. */
	write_file("p3.bin", data + 3 * PIECE, PIECE);
	d = job(&f, &f.single,
		(struct bt_download_opts){
			.kind = BT_DOWNLOAD_PIECE, .output = "p3.bin", .piece = 3},
		&r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_DONE);
	assert_true(bt_download_was_complete(d));
	assert_false(exists("p3.bin.part"));
	bt_download_free(d);
	assert_same_file("p3.bin", data + 3 * PIECE, PIECE);

	write_file("p7.bin", data + 7 * PIECE, 1234);
	d = job(&f, &f.single,
		(struct bt_download_opts){
			.kind = BT_DOWNLOAD_PIECE, .output = "p7.bin", .piece = 7},
		&r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_DONE);
	bt_download_free(d);

	/* Another piece's bytes, or the right bytes with one more: refused, named. */
	d = job(&f, &f.single,
		(struct bt_download_opts){
			.kind = BT_DOWNLOAD_PIECE, .output = "p3.bin", .piece = 4},
		&r);
	assert_int_equal(bt_download_prepare(d, &err), -EEXIST);
	assert_string_equal(err.msg, "'p3.bin' exists and is not piece 4; use --force to "
				     "overwrite it");
	bt_download_free(d);
	write_file("long.bin", data + 3 * PIECE, PIECE + 1);
	d = job(&f, &f.single,
		(struct bt_download_opts){
			.kind = BT_DOWNLOAD_PIECE, .output = "long.bin", .piece = 3},
		&r);
	assert_int_equal(bt_download_prepare(d, &err), -EEXIST);
	bt_download_free(d);

	/* --force: a fresh `.part`; the output stays until a verified piece replaces it. */
	d = job(&f, &f.single,
		(struct bt_download_opts){
			.kind = BT_DOWNLOAD_PIECE, .output = "p3.bin", .piece = 4, .force = true},
		&r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_true(exists("p3.bin.part"));
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_NEW);
	bt_download_free(d);
	assert_same_file("p3.bin", data + 3 * PIECE, PIECE);
	free(data);
	fx_deinit(&f);
}

static void test_seed_job(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	struct rec r;
	struct bt_err err = {{0}};

	/* data_path: matching data is accepted, after a check of every piece. */
	struct bt_download *d = job(
		&f, &f.single,
		(struct bt_download_opts){.kind = BT_DOWNLOAD_SEED, .data_path = "src/data.bin"},
		&r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_string_equal(bt_download_final_path(d), "src/data.bin");
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_NEW);
	assert_checked(&r, SINGLE_PIECES);
	bt_download_free(d);

	/* --dir: the data at dir/<name>; neither: <name> in the current directory. */
	d = job(&f, &f.multi, (struct bt_download_opts){.kind = BT_DOWNLOAD_SEED, .dir = "src"},
		&r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_string_equal(bt_download_final_path(d), "src/album");
	assert_checked(&r, MULTI_PIECES);
	bt_download_free(d);
	write_pattern("data.bin", SINGLE_LEN, 1);
	d = job(&f, &f.single, (struct bt_download_opts){.kind = BT_DOWNLOAD_SEED}, &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_string_equal(bt_download_final_path(d), "data.bin");
	bt_download_free(d);

	/* Two pieces corrupted: refused, both named. */
	corrupt_piece("data.bin", 1);
	corrupt_piece("data.bin", 5);
	d = job(&f, &f.single, (struct bt_download_opts){.kind = BT_DOWNLOAD_SEED}, &r);
	assert_int_equal(bt_download_prepare(d, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'data.bin'"));
	assert_non_null(strstr(err.msg, "2 of 8 pieces differ (1, 5)"));
	assert_checked(&r, SINGLE_PIECES);
	bt_download_free(d);

	/* assume_valid skips the check (and so takes the corrupt data as it is). */
	d = job(&f, &f.single,
		(struct bt_download_opts){.kind = BT_DOWNLOAD_SEED, .assume_valid = true}, &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_int_equal(r.nchecks, 0);
	bt_download_free(d);

	/* No data at all: an error naming the path. */
	d = job(&f, &f.single,
		(struct bt_download_opts){.kind = BT_DOWNLOAD_SEED, .data_path = "nothing.bin"},
		&r);
	assert_true(bt_download_prepare(d, &err) < 0);
	assert_non_null(strstr(err.msg, "nothing.bin"));
	bt_download_free(d);
	fx_deinit(&f);
}

/* The recheck of a bigger torrent (enough pieces for several steps of the cursor). */
/* ---- links planted at our names: refused by name, nothing outside the output written ---- */

static struct bt_buf *snap_out;
static const char *snap_skip;

static int snap_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)type, (void)ftw;
	size_t n = snap_skip ? strlen(snap_skip) : 0;
	if (n && strncmp(path, snap_skip, n) == 0 && (path[n] == '\0' || path[n] == '/'))
		return 0;
	bt_buf_printf(snap_out, "%s %o %lld %lld.%09ld\n", path, (unsigned)st->st_mode,
		      (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	return 0;
}

/* Everything under the test directory but `skip` (the output root): path, type, size, mtime. */
static char *snapshot(const char *skip)
{
	struct bt_buf b;
	bt_buf_init(&b);
	snap_out = &b;
	snap_skip = skip;
	assert_int_equal(nftw(".", snap_one, 16, FTW_PHYS), 0);
	bt_buf_addc(&b, '\0');
	return (char *)bt_buf_steal(&b, NULL);
}

/*
 * Prepares a job expected to be refused because of a link: the error names `named` and says
 * "symbolic link", and nothing outside `skip` (the output's own tree; NULL: nowhere) changed.
 */
static void expect_refused(struct fx *f, const struct bt_metainfo *m, struct bt_download_opts o,
			   const char *named, const char *skip)
{
	char *before = snapshot(skip);
	struct rec r;
	struct bt_download *d = job(f, m, o, &r);
	struct bt_err err = {{0}};
	assert_int_equal(bt_download_prepare(d, &err), -ELOOP);
	bt_download_free(d);
	if (!strstr(err.msg, named) || !strstr(err.msg, "symbolic link") || strchr(err.msg, '\n'))
		fail_msg("unexpected error for %s: %s", named, err.msg);
	char *after = snapshot(skip);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void test_planted_links_refused(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	write_file("outside/target.bin", "precious", 8);
	struct timespec old[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
	assert_int_equal(utimensat(AT_FDCWD, "outside/target.bin", old, 0), 0);
	assert_int_equal(mkdir("out", 0777), 0);

	/* <name>.part, a link to a file outside, and one to a name that does not exist yet. */
	assert_int_equal(symlink("../outside/target.bin", "out/data.bin.part"), 0);
	expect_refused(&f, &f.single, (struct bt_download_opts){.dir = "out"}, "out/data.bin.part",
		       NULL);
	assert_int_equal(unlink("out/data.bin.part"), 0);
	assert_int_equal(symlink("../outside/new.bin", "out/data.bin.part"), 0);
	expect_refused(&f, &f.single, (struct bt_download_opts){.dir = "out"}, "out/data.bin.part",
		       NULL);
	assert_false(exists("outside/new.bin"));
	assert_int_equal(unlink("out/data.bin.part"), 0);

	/* <out>.part for -o. */
	assert_int_equal(symlink("outside/target.bin", "o.bin.part"), 0);
	expect_refused(&f, &f.single, (struct bt_download_opts){.output = "o.bin"}, "o.bin.part",
		       NULL);
	assert_int_equal(unlink("o.bin.part"), 0);

	/* A multi-file `.part` that is a link to a directory outside. */
	assert_int_equal(symlink("../outside", "out/album.part"), 0);
	expect_refused(&f, &f.multi, (struct bt_download_opts){.dir = "out"}, "out/album.part",
		       NULL);
	assert_int_equal(unlink("out/album.part"), 0);

	/* A directory inside the `.part` tree, then a file inside it. */
	assert_int_equal(mkdir("out/album.part", 0777), 0);
	assert_int_equal(symlink("../../outside", "out/album.part/sub"), 0);
	expect_refused(&f, &f.multi, (struct bt_download_opts){.dir = "out"}, "out/album.part/sub",
		       "./out");
	assert_int_equal(unlink("out/album.part/sub"), 0);
	assert_int_equal(symlink("../../outside/target.bin", "out/album.part/c.bin"), 0);
	expect_refused(&f, &f.multi, (struct bt_download_opts){.dir = "out"},
		       "out/album.part/c.bin", "./out");
	/* What the failed start made before the link is gone again; the link stays. */
	assert_false(exists("out/album.part/a.bin"));
	assert_false(exists("out/album.part/sub"));
	assert_int_equal(unlink("out/album.part/c.bin"), 0);

	/* --force at a final name that is a link: never overwrite its target. */
	assert_int_equal(symlink("../outside/target.bin", "out/data.bin"), 0);
	expect_refused(&f, &f.single, (struct bt_download_opts){.dir = "out", .force = true},
		       "out/data.bin", NULL);
	assert_int_equal(unlink("out/data.bin"), 0);

	/* download_piece: its `.part` (not truncated through), and its output with --force. */
	assert_int_equal(symlink("outside/target.bin", "p.bin.part"), 0);
	expect_refused(
		&f, &f.single,
		(struct bt_download_opts){.kind = BT_DOWNLOAD_PIECE, .output = "p.bin", .piece = 2},
		"p.bin.part", NULL);
	assert_true(exists("p.bin.part"));
	assert_int_equal(unlink("p.bin.part"), 0);
	assert_int_equal(symlink("outside/target.bin", "p.bin"), 0);
	expect_refused(
		&f, &f.single,
		(struct bt_download_opts){
			.kind = BT_DOWNLOAD_PIECE, .output = "p.bin", .piece = 2, .force = true},
		"p.bin", NULL);
	assert_false(exists("p.bin.part"));

	assert_same_file("outside/target.bin", (const uint8_t *)"precious", 8);
	struct stat st;
	assert_int_equal(stat("outside/target.bin", &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1000000000);
	fx_deinit(&f);
}

/* A `.part` of the wrong kind is refused by name, and left as it is. */
static void test_part_of_wrong_kind(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	write_file("out/album.part", "x", 1);
	struct rec r;
	struct bt_err err = {{0}};
	struct bt_download *d = job(&f, &f.multi, (struct bt_download_opts){.dir = "out"}, &r);
	assert_int_equal(bt_download_prepare(d, &err), -ENOTDIR);
	assert_string_equal(err.msg, "out/album.part: Not a directory");
	bt_download_free(d);
	assert_same_file("out/album.part", (const uint8_t *)"x", 1);

	assert_int_equal(mkdir("out/data.bin.part", 0777), 0);
	d = job(&f, &f.single, (struct bt_download_opts){.dir = "out"}, &r);
	assert_int_equal(bt_download_prepare(d, &err), -EISDIR);
	assert_string_equal(err.msg, "out/data.bin.part: Is a directory");
	bt_download_free(d);
	assert_true(is_dir("out/data.bin.part"));
	fx_deinit(&f);
}

static void test_checking_progress(void **state)
{
	(void)state;
	enum { BIG = 24 << 20 }; /* 1536 pieces: 3 steps of 8 MiB */
	write_pattern("big.bin", BIG, 5);
	struct bt_metainfo m;
	make_meta(&m, "big.bin");
	struct bt_err err;
	struct bt_session *s = bt_session_new(&err);
	assert_non_null(s);
	struct rec r;
	memset(&r, 0, sizeof r);
	struct bt_download_opts o = {.kind = BT_DOWNLOAD_SEED, .data_path = "big.bin"};
	struct bt_download *d = bt_download_new(s, &m, &o, &events, &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	print_message("checking: %zu progress reports for %u pieces\n", r.nchecks, m.piece_count);
	assert_checked(&r, m.piece_count);
	bt_download_free(d);
	bt_session_free(s);
	bt_meta_deinit(&m);
}

/* The seeding side of the end-to-end test, in the child: never returns. */
static void run_seeder(const struct bt_metainfo *m, int port_fd)
{
	struct bt_err err;
	struct bt_session *s = bt_session_new(&err);
	if (!s || bt_session_listen(s, "127.0.0.1", 0, &err) != 0)
		_exit(2);
	struct bt_download_opts o = {.kind = BT_DOWNLOAD_SEED, .data_path = "src/data.bin"};
	o.torrent.use_trackers = false;
	struct bt_download *d = bt_download_new(s, m, &o, NULL, NULL);
	if (bt_download_prepare(d, &err) != 0)
		_exit(3);
	bt_download_start(d);
	uint16_t port = bt_session_listen_port(s);
	if (write(port_fd, &port, sizeof port) != sizeof port)
		_exit(4);
	close(port_fd);
	enum bt_session_end end = bt_session_run(s, 60);
	_exit(end == BT_SESSION_INTERRUPTED && bt_download_state(d) == BT_DOWNLOAD_SEEDING ? 0 : 5);
}

static void stop_child(pid_t pid)
{
	kill(pid, SIGTERM);
	int status = 0;
	for (int i = 0; i < 200; i++) {
		pid_t got = waitpid(pid, &status, WNOHANG);
		if (got == pid) {
			/* It was seeding until the end, and left on the signal. */
			assert_true(WIFEXITED(status));
			assert_int_equal(WEXITSTATUS(status), 0);
			return;
		}
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	fail_msg("the seeder did not stop on SIGTERM");
}

/* Forks a seeder of m (src/data.bin) on 127.0.0.1; returns its pid and port. */
static pid_t start_seeder(const struct bt_metainfo *m, uint16_t *port_out)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		run_seeder(m, fds[1]);
	}
	close(fds[1]);
	ssize_t n = read(fds[0], port_out, sizeof *port_out);
	close(fds[0]);
	if (n != sizeof *port_out) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("the seeder did not start");
	}
	return pid;
}

static void test_end_to_end_from_seeder(void **state)
{
	(void)state;
	write_sources();
	struct bt_metainfo m;
	make_single(&m);
	uint16_t port = 0;
	pid_t pid = start_seeder(&m, &port);

	double t0 = bt_now();
	struct bt_err err;
	struct bt_session *s = bt_session_new(&err);
	assert_non_null(s);
	struct sockaddr_storage peer;
	socklen_t plen = bt_sockaddr_from_ip("127.0.0.1", port, &peer);
	struct bt_download_opts o = {.dir = "got", .peers = &peer, .peer_lens = &plen, .npeers = 1};
	o.torrent.use_trackers = false;
	o.torrent.stall_timeout_s = 10;
	struct rec r;
	memset(&r, 0, sizeof r);
	r.s = s;
	struct bt_download *d = bt_download_new(s, &m, &o, &events, &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	bt_download_start(d);
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_RUNNING);
	enum bt_session_end end = bt_session_run(s, 20);
	print_message("end to end: %s in %.2f s%s%s\n",
		      bt_download_state(d) == BT_DOWNLOAD_DONE ? "done" : "not done", bt_now() - t0,
		      bt_download_reason(d)[0] ? ": " : "", bt_download_reason(d));
	assert_int_equal(end, BT_SESSION_STOPPED);
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_DONE);
	assert_string_equal(bt_download_reason(d), "");
	assert_false(exists("got/data.bin.part"));
	uint8_t *data = pattern(SINGLE_LEN, 1);
	assert_same_file("got/data.bin", data, SINGLE_LEN);
	free(data);
	struct bt_torrent_stats st;
	bt_torrent_get_stats(bt_download_torrent(d), &st);
	assert_int_equal(st.verified_bytes, SINGLE_LEN);
	assert_int_equal(st.pieces_failed, 0);
	/* The job let go of its peers when it was done; no tracker to tell. */
	assert_true(bt_download_stopped(d));
	assert_int_equal(r.stopped, 1);
	bt_download_free(d);
	bt_session_free(s);
	stop_child(pid);
	bt_meta_deinit(&m);
}

/* One magnet job of `kind` against the seeder at port: runs it to its end, returns the job. */
static struct bt_download *run_magnet(struct bt_session *s, const struct bt_metainfo *m,
				      uint16_t port, enum bt_download_kind kind, uint32_t piece,
				      struct rec *r)
{
	static struct sockaddr_storage peer;
	static socklen_t plen;
	plen = bt_sockaddr_from_ip("127.0.0.1", port, &peer);
	struct bt_download_opts o = {.kind = kind,
				     .dir = "got",
				     .output = kind == BT_DOWNLOAD_PIECE ? "got.piece" : NULL,
				     .piece = piece,
				     .peers = &peer,
				     .peer_lens = &plen,
				     .npeers = 1};
	o.torrent.use_trackers = false;
	o.torrent.stall_timeout_s = 10;
	struct bt_download_magnet mg = {.name = "hint"};
	memcpy(mg.info_hash, m->info_hash, BT_HASH_LEN);
	memset(r, 0, sizeof *r);
	r->s = s;
	struct bt_download *d = bt_download_new_magnet(s, &mg, &o, &events, r);
	struct bt_err err;
	/* Nothing is known before the metadata: no names, no metainfo, nothing to prepare. */
	assert_null(bt_download_metainfo(d));
	assert_null(bt_download_final_path(d));
	assert_string_equal(bt_download_name(d), "hint");
	assert_memory_equal(bt_download_info_hash(d), m->info_hash, BT_HASH_LEN);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	bt_download_start(d);
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_METADATA);
	assert_int_equal(bt_session_run(s, 20), BT_SESSION_STOPPED);
	return d;
}

/* A magnet (the info hash and a peer, no metainfo): the metadata comes over BEP 9 from our own
 * seeder, matches the torrent's, and the job goes on to download on the same connection; an
 * INFO job ends with the metadata; a piece index past the end fails once the count is known. */
static void test_magnet_from_seeder(void **state)
{
	(void)state;
	write_sources();
	struct bt_metainfo m;
	make_single(&m);
	uint16_t port;
	pid_t pid = start_seeder(&m, &port);
	struct bt_err err;
	struct bt_session *s = bt_session_new(&err);
	assert_non_null(s);
	struct rec r;

	struct bt_download *d = run_magnet(s, &m, port, BT_DOWNLOAD_INFO, 0, &r);
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_DONE);
	const struct bt_metainfo *got = bt_download_metainfo(d);
	assert_non_null(got);
	assert_int_equal(got->info_len, m.info_len);
	assert_memory_equal(got->info_raw, m.info_raw, m.info_len);
	assert_string_equal(bt_download_name(d), "data.bin");
	assert_false(exists("got"));
	bt_download_free(d);

	d = run_magnet(s, &m, port, BT_DOWNLOAD_TORRENT, 0, &r);
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_DONE);
	assert_string_equal(bt_download_final_path(d), "got/data.bin");
	uint8_t *data = pattern(SINGLE_LEN, 1);
	assert_same_file("got/data.bin", data, SINGLE_LEN);
	free(data);
	struct bt_torrent_stats st;
	bt_torrent_get_stats(bt_download_torrent(d), &st);
	assert_true(st.has_metadata);
	assert_int_equal(st.verified_bytes, SINGLE_LEN);
	bt_download_free(d);

	d = run_magnet(s, &m, port, BT_DOWNLOAD_PIECE, SINGLE_PIECES, &r);
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_FAILED);
	assert_non_null(strstr(bt_download_reason(d), "out of range"));
	assert_false(exists("got.piece"));
	bt_download_free(d);

	bt_session_free(s);
	stop_child(pid);
	bt_meta_deinit(&m);
}

/* The only peer refuses connections: the job fails with a reason and leaves nothing. */
static void test_dead_peer_fails(void **state)
{
	(void)state;
	write_sources();
	struct bt_metainfo m;
	make_single(&m);
	/* A bound socket that never listens: its port refuses connections and stays ours. */
	int hold = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_storage peer;
	socklen_t plen = bt_sockaddr_from_ip("127.0.0.1", 0, &peer);
	assert_int_equal(bind(hold, (struct sockaddr *)&peer, plen), 0);
	assert_int_equal(getsockname(hold, (struct sockaddr *)&peer, &plen), 0);

	struct bt_err err;
	struct bt_session *s = bt_session_new(&err);
	assert_non_null(s);
	struct bt_download_opts o = {.dir = "got", .peers = &peer, .peer_lens = &plen, .npeers = 1};
	o.torrent.use_trackers = false;
	o.torrent.stall_timeout_s = 2;
	struct rec r;
	memset(&r, 0, sizeof r);
	r.s = s;
	struct bt_download *d = bt_download_new(s, &m, &o, &events, &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	double t0 = bt_now();
	bt_download_start(d);
	bt_session_run(s, 15);
	print_message("dead peer: failed after %.2f s: %s\n", bt_now() - t0, bt_download_reason(d));
	assert_int_equal(bt_download_state(d), BT_DOWNLOAD_FAILED);
	assert_true(bt_download_ended(d));
	assert_true(strlen(bt_download_reason(d)) > 0);
	assert_true(bt_now() - t0 < 10);
	bt_download_free(d);
	/* It received nothing: neither the preallocated `.part` nor the folder made for it stay. */
	assert_false(exists("got/data.bin.part"));
	assert_false(exists("got"));
	bt_session_free(s);
	bt_meta_deinit(&m);
	close(hold);
}

/* Prepares a job expected to be refused with code `rc`, its message naming `named`. */
static void expect_refusal(struct fx *f, const struct bt_metainfo *m, struct bt_download_opts o,
			   int rc, const char *named, const char *says)
{
	struct rec r;
	struct bt_download *d = job(f, m, o, &r);
	struct bt_err err = {{0}};
	assert_int_equal(bt_download_prepare(d, &err), rc);
	bt_download_free(d);
	if (!strstr(err.msg, named) || !strstr(err.msg, says) || strchr(err.msg, '\n'))
		fail_msg("unexpected error for %s: %s", named, err.msg);
}

/* --force never moves, truncates or deletes what is not of the torrent's kind. */
static void test_force_spares_other_kinds(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	/* `-o Downloads` for a single-file torrent, Downloads being the user's folder. */
	write_file("Downloads/keep.txt", "mine", 4);
	char *before = snapshot(NULL);
	for (int force = 0; force < 2; force++)
		expect_refusal(&f, &f.single,
			       (struct bt_download_opts){.output = "Downloads", .force = force},
			       -EISDIR, "'Downloads' is a directory", "refusing to touch it");
	char *after = snapshot(NULL);
	assert_string_equal(before, after);
	free(before);
	free(after);
	assert_false(exists("Downloads.part"));
	assert_same_file("Downloads/keep.txt", (const uint8_t *)"mine", 4);

	/* A FIFO at the final name: refused without blocking on it, left a FIFO. */
	assert_int_equal(mkdir("out", 0777), 0);
	assert_int_equal(mkfifo("out/data.bin", 0666), 0);
	expect_refusal(&f, &f.single, (struct bt_download_opts){.dir = "out", .force = true},
		       -EISDIR, "'out/data.bin' is a FIFO", "refusing to touch it");
	struct stat st;
	assert_int_equal(lstat("out/data.bin", &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_false(exists("out/data.bin.part"));
	assert_int_equal(unlink("out/data.bin"), 0);

	/* A multi-file torrent whose folder name is a regular file. */
	write_file("out/album", "file", 4);
	expect_refusal(&f, &f.multi, (struct bt_download_opts){.dir = "out", .force = true},
		       -ENOTDIR, "'out/album' is a regular file", "not this torrent's folder");
	assert_same_file("out/album", (const uint8_t *)"file", 4);
	assert_false(exists("out/album.part"));

	/* A `.part` that is a FIFO: refused by name, left as it is. */
	assert_int_equal(mkfifo("out/data.bin.part", 0666), 0);
	expect_refusal(&f, &f.single, (struct bt_download_opts){.dir = "out"}, -EINVAL,
		       "out/data.bin.part", "not a regular file");
	assert_int_equal(lstat("out/data.bin.part", &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	fx_deinit(&f);
}

/* What a run that stored nothing made is undone; what was there before stays. */
static void test_nothing_left_behind(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	struct rec r;
	struct bt_err err = {{0}};

	/* --force on an output with no good piece: moved to the `.part`, and back when freed. */
	write_pattern("out/data.bin", SINGLE_LEN, 42);
	struct bt_download *d =
		job(&f, &f.single, (struct bt_download_opts){.dir = "out", .force = true}, &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_int_equal(bt_download_resumed(d), 0);
	assert_false(bt_download_keeps_part(d));
	assert_false(exists("out/data.bin"));
	bt_download_free(d);
	assert_false(exists("out/data.bin.part"));
	uint8_t *want = pattern(SINGLE_LEN, 42);
	assert_same_file("out/data.bin", want, SINGLE_LEN);
	free(want);

	/* A multi-file `.part` made in a folder that was there: only what the job made goes. */
	write_file("have/other.txt", "x", 1);
	d = job(&f, &f.multi, (struct bt_download_opts){.dir = "have"}, &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_true(is_dir("have/album.part/sub"));
	bt_download_free(d);
	assert_false(exists("have/album.part"));
	assert_same_file("have/other.txt", (const uint8_t *)"x", 1);

	/* A `.part` with verified pieces (resumed) is kept. */
	write_pattern("keep/data.bin.part", 2 * PIECE, 1);
	d = job(&f, &f.single, (struct bt_download_opts){.dir = "keep"}, &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_int_equal(bt_download_resumed(d), 2);
	assert_true(bt_download_keeps_part(d));
	bt_download_free(d);
	assert_true(exists("keep/data.bin.part"));

	/* The folders made for the output go too; one that was there stays. */
	d = job(&f, &f.multi, (struct bt_download_opts){.dir = "deep/a/b"}, &r);
	assert_int_equal(mkdir("deep", 0777), 0);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	assert_true(is_dir("deep/a/b/album.part"));
	bt_download_free(d);
	assert_false(exists("deep/a"));
	assert_true(is_dir("deep"));
	fx_deinit(&f);
}

/* `seed t.torrent D`: D holding <name> is a save path; D holding the files is the data. */
static void test_seed_folder_as_save_path(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	static const struct {
		bool multi;
		const char *given, *served;
	} cases[] = {
		{false, "src", "src/data.bin"},
		{false, "src/data.bin", "src/data.bin"},
		{true, "src", "src/album"},
		{true, "src/album", "src/album"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct rec r;
		struct bt_err err = {{0}};
		struct bt_download *d = job(&f, cases[i].multi ? &f.multi : &f.single,
					    (struct bt_download_opts){.kind = BT_DOWNLOAD_SEED,
								      .data_path = cases[i].given},
					    &r);
		if (bt_download_prepare(d, &err) != 0)
			fail_msg("seed %s: %s", cases[i].given, err.msg);
		assert_string_equal(bt_download_final_path(d), cases[i].served);
		assert_checked(&r, cases[i].multi ? MULTI_PIECES : SINGLE_PIECES);
		bt_download_free(d);
	}
	/* A folder without the data: the error names where it looked. */
	assert_int_equal(mkdir("empty", 0777), 0);
	expect_refusal(&f, &f.single,
		       (struct bt_download_opts){.kind = BT_DOWNLOAD_SEED, .data_path = "empty"},
		       -ENOENT, "empty/data.bin", "No such file");
	fx_deinit(&f);
}

/* download_piece --dir: the piece beside where the torrent would go. */
static void test_piece_job_dir(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	assert_int_equal(mkdir("pd", 0777), 0);
	struct rec r;
	struct bt_download *d = job(
		&f, &f.single,
		(struct bt_download_opts){.kind = BT_DOWNLOAD_PIECE, .dir = "pd", .piece = 3}, &r);
	assert_string_equal(bt_download_final_path(d), "pd/data.bin.piece3");
	assert_string_equal(bt_download_temp_path(d), "pd/data.bin.piece3.part");
	bt_download_free(d);
	fx_deinit(&f);
}

/*
 * The clock the engine sees (bt_now, through CLOCK_MONOTONIC) jumps forward on demand, so a
 * test can pass minutes in a second. libevent times its events with CLOCK_MONOTONIC_COARSE,
 * which is left alone: the loop's own timers and deadlines keep real time.
 */
static double clock_skew;

int clock_gettime(clockid_t id, struct timespec *ts)
{
	long rc = syscall(SYS_clock_gettime, id, ts);
	if (rc == 0 && id == CLOCK_MONOTONIC && clock_skew > 0) {
		ts->tv_sec += (time_t)clock_skew;
		ts->tv_nsec += (long)((clock_skew - (double)(time_t)clock_skew) * 1e9);
		if (ts->tv_nsec >= 1000000000L) {
			ts->tv_sec++;
			ts->tv_nsec -= 1000000000L;
		}
	}
	return (int)rc;
}

/* A peer that shakes hands, has nothing and sends keep-alives: never returns. */
static void run_silent_peer(int port_fd)
{
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_storage a;
	socklen_t alen = bt_sockaddr_from_ip("127.0.0.1", 0, &a);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, alen) != 0 || listen(ls, 4) != 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &alen) != 0)
		_exit(2);
	uint16_t port = ntohs(((struct sockaddr_in *)&a)->sin_port);
	if (write(port_fd, &port, sizeof port) != sizeof port)
		_exit(3);
	close(port_fd);
	alarm(30); /* in case the parent never stops it */
	for (;;) {
		int c = accept(ls, NULL, NULL);
		if (c < 0)
			_exit(4);
		uint8_t hs[68];
		size_t got = 0;
		while (got < sizeof hs) {
			ssize_t n = read(c, hs + got, sizeof hs - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		if (got < sizeof hs) {
			close(c);
			continue;
		}
		memset(hs + 20, 0, 8);	  /* no extensions */
		memset(hs + 48, 'S', 20); /* our peer id */
		if (write(c, hs, sizeof hs) != sizeof hs) {
			close(c);
			continue;
		}
		static const uint8_t keepalive[4];
		uint8_t sink[4096];
		while (write(c, keepalive, sizeof keepalive) == sizeof keepalive) {
			usleep(100000);
			while (recv(c, sink, sizeof sink, MSG_DONTWAIT) > 0)
				;
		}
		close(c);
	}
}

static void jump_clock(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	clock_skew += 90;
}

/*
 * A download whose only peer is connected but has nothing, while 90 s pass in one jump: with
 * the default (no stall timeout) it is still waiting; with a 30 s stall timeout it fails,
 * which shows the jump is seen.
 */
static void run_waiting(const struct bt_metainfo *m, uint16_t port, double stall,
			enum bt_download_state *state_out, char *reason, size_t n)
{
	struct bt_err err;
	struct bt_session *s = bt_session_new(&err);
	assert_non_null(s);
	struct sockaddr_storage peer;
	socklen_t plen = bt_sockaddr_from_ip("127.0.0.1", port, &peer);
	struct bt_download_opts o = {
		.dir = "wait", .peers = &peer, .peer_lens = &plen, .npeers = 1};
	o.torrent.use_trackers = false;
	o.torrent.stall_timeout_s = stall;
	struct rec r;
	memset(&r, 0, sizeof r);
	r.s = s;
	struct bt_download *d = bt_download_new(s, m, &o, &events, &r);
	assert_int_equal(bt_download_prepare(d, &err), 0);
	bt_download_start(d);
	struct event *jump = evtimer_new(bt_session_base(s), jump_clock, NULL);
	struct timeval tv = {1, 500000};
	evtimer_add(jump, &tv);
	bt_session_run(s, 3.5);
	event_free(jump);
	clock_skew = 0;
	*state_out = bt_download_state(d);
	snprintf(reason, n, "%s", bt_download_reason(d));
	bt_download_stop(d);
	bt_download_free(d);
	bt_session_free(s);
}

static void test_waits_past_old_stall_timeout(void **state)
{
	(void)state;
	write_sources();
	struct bt_metainfo m;
	make_single(&m);
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		run_silent_peer(fds[1]);
	}
	close(fds[1]);
	uint16_t port = 0;
	ssize_t got = read(fds[0], &port, sizeof port);
	close(fds[0]);
	enum bt_download_state waited, stalled;
	char why_waited[512], why_stalled[512];
	if (got == sizeof port) {
		run_waiting(&m, port, 0, &waited, why_waited, sizeof why_waited);
		run_waiting(&m, port, 30, &stalled, why_stalled, sizeof why_stalled);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	bt_meta_deinit(&m);
	assert_int_equal(got, sizeof port);
	print_message("no stall timeout: %s; 30 s: %s\n", why_waited[0] ? why_waited : "waiting",
		      why_stalled);
	assert_int_equal(waited, BT_DOWNLOAD_RUNNING);
	assert_string_equal(why_waited, "");
	assert_int_equal(stalled, BT_DOWNLOAD_FAILED);
	assert_non_null(strstr(why_stalled, "no data for 30 s"));
	/* Both runs received nothing: nothing of them is left. */
	assert_false(exists("wait"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_names_single, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names_multi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_complete_final_is_done, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incomplete_final_refused_then_forced, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_part_resumed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_piece_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seed_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checking_progress, setup, teardown),
		cmocka_unit_test_setup_teardown(test_planted_links_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_part_of_wrong_kind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_end_to_end_from_seeder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_magnet_from_seeder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_peer_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_force_spares_other_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_left_behind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seed_folder_as_save_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_piece_job_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waits_past_old_stall_timeout, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
