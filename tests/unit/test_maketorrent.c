#include "bt/maketorrent.h"

#include "bt/hash.h"
#include "bt/metainfo.h"
#include "bt/storage.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[64];

static void write_random(const char *rel, size_t n, unsigned seed)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	for (char *s = strchr(path + strlen(dir) + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		mkdir(path, 0777);
		*s = '/';
	}
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	for (size_t i = 0; i < n; i++)
		fputc((int)((i * 2654435761u + seed) >> 13), f);
	fclose(f);
}

static int rm(const char *p, const struct stat *s, int flag, struct FTW *ftw)
{
	(void)s, (void)flag, (void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/bt-make-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	nftw(dir, rm, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* Every piece of the torrent must hash right against the data on disk. */
static void verify_against_disk(const struct bt_metainfo *m, const char *root)
{
	struct bt_storage *st;
	struct bt_err err;
	assert_int_equal(bt_storage_open(&st, m, root, BT_STORAGE_READONLY, &err), 0);
	uint8_t *buf = malloc((size_t)m->piece_length);
	for (uint32_t i = 0; i < m->piece_count; i++) {
		uint32_t len = (uint32_t)bt_meta_piece_size(m, i);
		assert_int_equal(bt_storage_read(st, i, 0, buf, len, &err), 0);
		uint8_t d[20];
		bt_sha1(buf, len, d);
		assert_memory_equal(d, m->piece_hashes + (size_t)i * 20, 20);
	}
	free(buf);
	bt_storage_free(st);
}

static void test_directory(void **state)
{
	(void)state;
	write_random("album/b.bin", 70000, 1);
	write_random("album/a/z.bin", 1000003, 2);
	write_random("album/a-b.bin", 5, 3);
	write_random("album/empty", 0, 4);
	write_random("album/.hidden/x", 10, 5);
	char root[128];
	snprintf(root, sizeof root, "%s/album", dir);
	char *trackers[] = {"http://t1/a", "udp://t2:1,http://t3/a"};
	struct bt_make_opts o = {.path = root,
				 .trackers = trackers,
				 .tracker_count = 2,
				 .comment = "c",
				 .no_date = true};
	struct bt_buf out;
	bt_buf_init(&out);
	struct bt_err err;
	assert_int_equal(bt_make_torrent(&o, &out, &err), 0);
	struct bt_metainfo m;
	assert_int_equal(bt_meta_parse(&m, out.data, out.len, &err), 0);
	assert_string_equal(m.name, "album");
	assert_int_equal(m.file_count, 4);		 /* the hidden one left out */
	assert_string_equal(m.files[0].path, "a/z.bin"); /* component order: "a/" before "a-b" */
	assert_string_equal(m.files[1].path, "a-b.bin");
	assert_string_equal(m.files[2].path, "b.bin");
	assert_string_equal(m.files[3].path, "empty");
	assert_int_equal(m.total_length, 1070008);
	assert_int_equal(m.piece_length, bt_make_piece_length(1070008));
	assert_int_equal(m.piece_length, 16384);
	assert_int_equal(m.tier_count, 2);
	assert_int_equal(m.tiers[1].count, 2);
	assert_string_equal(m.tiers[1].urls[1], "http://t3/a");
	assert_string_equal(m.comment, "c");
	assert_false(m.has_creation_date);
	verify_against_disk(&m, root);
	bt_meta_deinit(&m);

	/* The same tree gives the same bytes (with no date); hidden files when asked. */
	struct bt_buf again;
	bt_buf_init(&again);
	assert_int_equal(bt_make_torrent(&o, &again, &err), 0);
	assert_int_equal(again.len, out.len);
	assert_memory_equal(again.data, out.data, out.len);
	bt_buf_deinit(&again);
	bt_buf_init(&again);
	o.include_hidden = true;
	o.is_private = true;
	o.piece_length = 1 << 20;
	assert_int_equal(bt_make_torrent(&o, &again, &err), 0);
	assert_int_equal(bt_meta_parse(&m, again.data, again.len, &err), 0);
	assert_int_equal(m.file_count, 5);
	assert_string_equal(m.files[0].path, ".hidden/x");
	assert_true(m.is_private);
	assert_int_equal(m.piece_count, 2);
	verify_against_disk(&m, root);
	bt_meta_deinit(&m);
	bt_buf_deinit(&again);
	bt_buf_deinit(&out);
}

static void test_single_file_and_errors(void **state)
{
	(void)state;
	write_random("one.iso", 300000, 9);
	char path[128];
	snprintf(path, sizeof path, "%s/one.iso", dir);
	struct bt_make_opts o = {.path = path, .name = "renamed.iso"};
	struct bt_buf out;
	bt_buf_init(&out);
	struct bt_err err;
	assert_int_equal(bt_make_torrent(&o, &out, &err), 0);
	struct bt_metainfo m;
	assert_int_equal(bt_meta_parse(&m, out.data, out.len, &err), 0);
	assert_false(m.multi_file);
	assert_string_equal(m.name, "renamed.iso");
	assert_null(bt_meta_tracker(&m));
	assert_true(m.has_creation_date);
	verify_against_disk(&m, path);
	bt_meta_deinit(&m);
	bt_buf_deinit(&out);

	bt_buf_init(&out);
	snprintf(path, sizeof path, "%s/missing", dir);
	o = (struct bt_make_opts){.path = path};
	assert_int_equal(bt_make_torrent(&o, &out, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "missing: No such file or directory"));
	write_random("emptydir/.x", 1, 1);
	snprintf(path, sizeof path, "%s/emptydir", dir);
	o.path = path;
	assert_int_equal(bt_make_torrent(&o, &out, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no files to put in a torrent"));
	write_random("zeros/a", 0, 1);
	snprintf(path, sizeof path, "%s/zeros", dir);
	o.path = path;
	assert_int_equal(bt_make_torrent(&o, &out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "holds no data"));
	o.name = "..";
	assert_int_equal(bt_make_torrent(&o, &out, &err), -EINVAL);
	bt_buf_deinit(&out);
}

static void test_piece_length_choice(void **state)
{
	(void)state;
	assert_int_equal(bt_make_piece_length(1), 16384);
	assert_int_equal(bt_make_piece_length(32ull << 20), 16384);
	assert_int_equal(bt_make_piece_length(1ull << 30), 1 << 19);
	assert_int_equal(bt_make_piece_length(1ull << 40), 16 << 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_single_file_and_errors, setup, teardown),
		cmocka_unit_test(test_piece_length_choice),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
