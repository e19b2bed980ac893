#include "bt/progress.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_bytes_are_iec(void **state)
{
	(void)state;
	char b[32];
	bt_format_bytes(b, sizeof b, 512);
	assert_string_equal(b, "512 B");
	bt_format_bytes(b, sizeof b, 1536);
	assert_string_equal(b, "1.5 KiB");
	bt_format_bytes(b, sizeof b, 20.0 * 1024 * 1024);
	assert_string_equal(b, "20.0 MiB");
	bt_format_bytes(b, sizeof b, 3.0 * 1024 * 1024 * 1024);
	assert_string_equal(b, "3.0 GiB");
	bt_format_rate(b, sizeof b, 2.5 * 1024 * 1024);
	assert_string_equal(b, "2.5 MiB/s");
	bt_format_rate(b, sizeof b, -3);
	assert_string_equal(b, "0 B/s");
}

static void test_line_with_and_without_phase(void **state)
{
	(void)state;
	char line[256];
	struct bt_progress p = {
		.done = 1 << 20, .total = 4 << 20, .rate = 1 << 20, .peers = 2, .unchoking = 1};
	bt_progress_line(line, sizeof line, &p);
	assert_string_equal(line,
			    " 25.0%  1.0 MiB of 4.0 MiB  1.0 MiB/s  ETA 3s  peers 2 (1 unchoking)");
	p.phase = "connecting to 3 peers";
	p.name = "x";
	bt_progress_line(line, sizeof line, &p);
	assert_string_equal(line, "x: connecting to 3 peers  25.0%  1.0 MiB of 4.0 MiB");
}

static void test_json_adds_phase_only_when_set(void **state)
{
	(void)state;
	struct bt_buf b;
	bt_buf_init(&b);
	struct bt_progress p = {.done = 0, .total = 10, .elapsed = 1};
	bt_progress_json(&b, &p);
	assert_null(strstr((char *)b.data, "phase"));
	assert_string_equal((char *)b.data, "{\"done\":0,\"total\":10,\"percent\":0.00,\"rate\":0,"
					    "\"eta\":null,\"peers\":0,\"unchoking\":0,"
					    "\"elapsed\":1.00}");
	bt_buf_deinit(&b);
	bt_buf_init(&b);
	p.phase = "waiting for trackers";
	bt_progress_json(&b, &p);
	assert_non_null(strstr((char *)b.data, ",\"phase\":\"waiting for trackers\"}"));
	bt_buf_deinit(&b);
}

static void test_checking_reaches_100_only_at_the_end(void **state)
{
	(void)state;
	char line[64];
	bt_progress_checking_line(line, sizeof line, 37, 100);
	assert_string_equal(line, "checking 37% (37 of 100 pieces)");
	bt_progress_checking_line(line, sizeof line, 999, 1000);
	assert_string_equal(line, "checking 99% (999 of 1000 pieces)");
	bt_progress_checking_line(line, sizeof line, 1000, 1000);
	assert_string_equal(line, "checking 100% (1000 of 1000 pieces)");
}

static void test_fit_cuts_by_columns(void **state)
{
	(void)state;
	char line[64];
	strcpy(line, "abcdef");
	bt_progress_fit(line, 10);
	assert_string_equal(line, "abcdef");
	bt_progress_fit(line, 3);
	assert_string_equal(line, "abc");
	/* "é" is two bytes and one column: never split. */
	strcpy(line, "caf\xc3\xa9s");
	assert_int_equal(bt_progress_columns(line), 5);
	bt_progress_fit(line, 4);
	assert_string_equal(line, "caf\xc3\xa9");
	bt_progress_fit(line, 3);
	assert_string_equal(line, "caf");
	/* A CJK character is two columns: it does not fit in the one column left. */
	strcpy(line, "ab\xe4\xb8\xad"
		     "c");
	assert_int_equal(bt_progress_columns(line), 5);
	bt_progress_fit(line, 3);
	assert_string_equal(line, "ab");
	strcpy(line, "ab\xe4\xb8\xad"
		     "c");
	bt_progress_fit(line, 4);
	assert_string_equal(line, "ab\xe4\xb8\xad");
	/* A truncated sequence at the end counts as one column and is not read past. */
	strcpy(line, "a\xe4\xb8");
	assert_int_equal(bt_progress_columns(line), 3);
	bt_progress_fit(line, 0);
	assert_string_equal(line, "");
}

/* Three files over pieces of 4 bytes: a (6 bytes), a pad file (2), b (5): pieces 0..3. */
static void test_files_from_verified_pieces(void **state)
{
	(void)state;
	struct bt_meta_file files[] = {
		{.path = "a", .length = 6, .offset = 0},
		{.path = ".pad/2", .length = 2, .offset = 6, .pad = true},
		{.path = "b", .length = 5, .offset = 8},
		{.path = "empty", .length = 0, .offset = 13},
	};
	struct bt_metainfo m = {.piece_length = 4,
				.piece_count = 4,
				.total_length = 13,
				.multi_file = true,
				.files = files,
				.file_count = 4};
	struct bt_bitfield have;
	bt_bitfield_init(&have, 4);
	uint64_t done[4];
	bt_progress_files(&m, &have, done, NULL);
	assert_int_equal(done[0], 0);
	assert_int_equal(done[1], 2); /* pad files count as done */
	assert_int_equal(done[2], 0);
	assert_int_equal(done[3], 0);
	bt_bitfield_set(&have, 1); /* bytes 4..7: a's last 2 and the pad */
	bt_bitfield_set(&have, 3); /* byte 12: b's last */
	bt_progress_files(&m, &have, done, NULL);
	assert_int_equal(done[0], 2);
	assert_int_equal(done[2], 1);
	bt_bitfield_set(&have, 0);
	bt_bitfield_set(&have, 2);
	bt_progress_files(&m, &have, done, NULL);
	assert_int_equal(done[0], 6);
	assert_int_equal(done[2], 5);
	bt_bitfield_deinit(&have);
}

static void test_prefix_stops_at_the_first_gap(void **state)
{
	(void)state;
	/* a: bytes 0..9 (pieces 0-2), b: 10..17 (pieces 2-4), pieces of 4 bytes. */
	struct bt_meta_file files[] = {
		{.path = "a", .length = 10, .offset = 0},
		{.path = "b", .length = 8, .offset = 10},
		{.path = "empty", .length = 0, .offset = 18},
	};
	struct bt_metainfo m = {.piece_length = 4,
				.piece_count = 5,
				.total_length = 18,
				.multi_file = true,
				.files = files,
				.file_count = 3};
	struct bt_bitfield have;
	bt_bitfield_init(&have, 5);
	uint64_t done[3], prefix[3];
	bt_bitfield_set(&have, 1);
	bt_bitfield_set(&have, 3);
	bt_progress_files(&m, &have, done, prefix);
	assert_int_equal(prefix[0], 0); /* piece 0 missing: nothing readable, whatever follows */
	assert_int_equal(prefix[1], 0); /* b starts inside piece 2, missing */
	assert_int_equal(prefix[2], 0); /* an empty file is whole */
	bt_bitfield_set(&have, 0);
	bt_progress_files(&m, &have, done, prefix);
	assert_int_equal(prefix[0], 8); /* up to piece 2 */
	bt_bitfield_set(&have, 2);
	bt_progress_files(&m, &have, done, prefix);
	assert_int_equal(prefix[0], 10);
	assert_int_equal(prefix[1], 6); /* bytes 10..15; piece 4 missing */
	bt_bitfield_set(&have, 4);
	bt_progress_files(&m, &have, done, prefix);
	assert_int_equal(prefix[1], 8);
	bt_bitfield_deinit(&have);
}

static void test_file_and_upload_lines(void **state)
{
	(void)state;
	char line[256];
	bt_progress_file_line(line, sizeof line, "d/a.bin", 1 << 20, 1 << 20, false);
	assert_string_equal(line, "complete              1.0 MiB  d/a.bin");
	bt_progress_file_line(line, sizeof line, "d/a.bin", 384 << 10, 1 << 20, false);
	assert_string_equal(line, "incomplete  37.5%     1.0 MiB  d/a.bin");
	bt_progress_file_line(line, sizeof line, "d/a.bin", 384 << 10, 1 << 20, true);
	assert_string_equal(line, "incomplete  37.5%   384.0 KiB of    1.0 MiB  d/a.bin");
	/* One byte short is not complete, and not shown as 100%. */
	bt_progress_file_line(line, sizeof line, "a", 9999, 10000, false);
	assert_non_null(strstr(line, "incomplete  99.9%"));
	bt_progress_upload_line(line, sizeof line, 20 << 20, 3, 12.2, 20 << 20);
	assert_string_equal(line, "uploaded 20.0 MiB to 3 peers in 12 s, ratio 1.00");
	bt_progress_upload_line(line, sizeof line, 0, 1, 0, 0);
	assert_string_equal(line, "uploaded 0 B to 1 peer in 0 s, ratio 0.00");
}

static void test_line_counts_web_seeds_apart(void **state)
{
	(void)state;
	char line[256];
	struct bt_progress p = {.done = 1 << 20,
				.total = 4 << 20,
				.rate = 1 << 20,
				.peers = 2,
				.unchoking = 1,
				.webseeds = 1,
				.webseeds_active = 1,
				.webseed_bytes = 512 << 10};
	bt_progress_line(line, sizeof line, &p);
	assert_string_equal(line, " 25.0%  1.0 MiB of 4.0 MiB  1.0 MiB/s  ETA 3s  peers 2 (1 "
				  "unchoking) + web seed 1 (1 active, 512.0 KiB)");
	p.webseeds = 2;
	p.webseeds_active = 0;
	bt_progress_line(line, sizeof line, &p);
	assert_non_null(strstr(line, " + web seeds 2 (0 active, 512.0 KiB)"));

	struct bt_buf b;
	bt_buf_init(&b);
	bt_progress_json(&b, &p);
	assert_non_null(strstr((char *)b.data,
			       ",\"webseeds\":2,\"webseeds_active\":0,\"webseed_bytes\":524288}"));
	bt_buf_deinit(&b);
	/* Without web seeds, neither the line nor the object mentions them. */
	p.webseeds = 0;
	bt_progress_line(line, sizeof line, &p);
	assert_null(strstr(line, "web seed"));
	bt_buf_init(&b);
	bt_progress_json(&b, &p);
	assert_null(strstr((char *)b.data, "webseed"));
	bt_buf_deinit(&b);
}

static void test_json_files(void **state)
{
	(void)state;
	struct bt_progress_file files[] = {
		{.index = 1,
		 .path = "d/a \"1\".bin",
		 .size = 100,
		 .done = 64,
		 .prefix = 32,
		 .selected = true},
		{.index = 3, .path = "c.bin", .size = 50, .done = 0, .selected = false},
	};
	struct bt_progress p = {.total = 10, .files_on = true, .files = files, .nfiles = 2};
	struct bt_buf b;
	bt_buf_init(&b);
	bt_progress_json(&b, &p);
	assert_non_null(
		strstr((char *)b.data,
		       ",\"files\":[{\"index\":1,\"path\":\"d/a \\\"1\\\".bin\",\"size\":100,"
		       "\"done\":64,\"prefix\":32,\"selected\":true},{\"index\":3,\"path\":"
		       "\"c.bin\",\"size\":50,\"done\":0,\"prefix\":0,\"selected\":false}]}"));
	bt_buf_deinit(&b);
	/* Nothing changed: an empty array (the reader still sees the key); some left: pending. */
	p.nfiles = 0;
	p.files_pending = 7;
	bt_buf_init(&b);
	bt_progress_json(&b, &p);
	assert_non_null(strstr((char *)b.data, ",\"files\":[],\"files_pending\":7}"));
	bt_buf_deinit(&b);
	p.files_on = false;
	bt_buf_init(&b);
	bt_progress_json(&b, &p);
	assert_null(strstr((char *)b.data, "files"));
	bt_buf_deinit(&b);
}

static void test_files_changed_caps_and_goes_round(void **state)
{
	(void)state;
	enum { N = 5 };
	uint64_t done[N] = {0, 0, 0, 0, 0};
	uint64_t said[N];
	for (size_t i = 0; i < N; i++)
		said[i] = UINT64_MAX;
	size_t cursor = 0, picked[N], pending;
	/* The first lines say every file once, two a line. */
	assert_int_equal(bt_progress_files_changed(done, said, N, &cursor, 2, picked, &pending), 2);
	assert_int_equal(picked[0], 0);
	assert_int_equal(picked[1], 1);
	assert_int_equal(pending, 3);
	/* File 0 changes again, but the files not yet said come first. */
	done[0] = 10;
	assert_int_equal(bt_progress_files_changed(done, said, N, &cursor, 2, picked, &pending), 2);
	assert_int_equal(picked[0], 2);
	assert_int_equal(picked[1], 3);
	assert_int_equal(pending, 2);
	assert_int_equal(bt_progress_files_changed(done, said, N, &cursor, 2, picked, &pending), 2);
	assert_int_equal(picked[0], 4);
	assert_int_equal(picked[1], 0);
	assert_int_equal(pending, 0);
	assert_int_equal(said[0], 10);
	/* Nothing changed: nothing said. */
	assert_int_equal(bt_progress_files_changed(done, said, N, &cursor, 2, picked, &pending), 0);
	assert_int_equal(pending, 0);
	/* Only what changed, whatever the cursor. */
	done[3] = 7;
	assert_int_equal(bt_progress_files_changed(done, said, N, &cursor, 2, picked, &pending), 1);
	assert_int_equal(picked[0], 3);
	assert_int_equal(said[3], 7);
	/* No files at all. */
	cursor = 0;
	assert_int_equal(bt_progress_files_changed(NULL, NULL, 0, &cursor, 2, picked, &pending), 0);
	assert_int_equal(pending, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bytes_are_iec),
		cmocka_unit_test(test_line_with_and_without_phase),
		cmocka_unit_test(test_json_adds_phase_only_when_set),
		cmocka_unit_test(test_checking_reaches_100_only_at_the_end),
		cmocka_unit_test(test_fit_cuts_by_columns),
		cmocka_unit_test(test_files_from_verified_pieces),
		cmocka_unit_test(test_prefix_stops_at_the_first_gap),
		cmocka_unit_test(test_file_and_upload_lines),
		cmocka_unit_test(test_line_counts_web_seeds_apart),
		cmocka_unit_test(test_json_files),
		cmocka_unit_test(test_files_changed_caps_and_goes_round),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
