#include "bt/plot.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void sample(struct bt_plot *p, double t, uint64_t a, uint64_t b)
{
	bt_plot_begin(p, t);
	bt_plot_add_peer(p, "127.0.0.11:6881", a);
	bt_plot_add_peer(p, "127.0.0.12:6881", b);
	bt_plot_end(p, a + b);
}

static void test_json_line(void **state)
{
	(void)state;
	struct bt_plot p;
	bt_plot_init(&p);
	bt_plot_begin(&p, 0);
	bt_plot_end(&p, 0);
	struct bt_buf b;
	bt_buf_init(&b);
	bt_plot_json_line(&b, &p);
	assert_string_equal((char *)b.data,
			    "{\"t\":0.00,\"rate\":0,\"received\":0,\"peers\":{}}\n");
	sample(&p, 2, 3000, 1000);
	b.len = 0;
	bt_plot_json_line(&b, &p);
	assert_string_equal((char *)b.data,
			    "{\"t\":2.00,\"rate\":2000,\"received\":4000,\"peers\":"
			    "{\"127.0.0.11:6881\":3000,\"127.0.0.12:6881\":1000}}\n");
	bt_buf_deinit(&b);
	bt_plot_deinit(&p);
}

static void test_names_are_json_strings(void **state)
{
	(void)state;
	struct bt_plot p;
	bt_plot_init(&p);
	bt_plot_begin(&p, 1);
	bt_plot_add_peer(&p, "a\"b\\c", 5);
	bt_plot_end(&p, 5);
	struct bt_buf b;
	bt_buf_init(&b);
	bt_plot_json_line(&b, &p);
	assert_non_null(strstr((char *)b.data, "\"a\\\"b\\\\c\":5"));
	bt_buf_deinit(&b);
	bt_plot_deinit(&p);
}

static void test_carry_sum_and_monotonic(void **state)
{
	(void)state;
	struct bt_plot p;
	bt_plot_init(&p);
	sample(&p, 1, 100, 200);
	/* The second peer is gone from this sample: it keeps 200. The first is named twice (two
	 * torrents): summed. */
	bt_plot_begin(&p, 2);
	bt_plot_add_peer(&p, "127.0.0.11:6881", 150);
	bt_plot_add_peer(&p, "127.0.0.11:6881", 50);
	bt_plot_add_peer(&p, "127.0.0.13:6881", 7);
	bt_plot_end(&p, 407);
	assert_int_equal(p.nsamples, 2);
	assert_int_equal(p.ncols, 3);
	const struct bt_plot_sample *s = &p.samples[1];
	assert_int_equal(s->bytes[0], 200);
	assert_int_equal(s->bytes[1], 200);
	assert_int_equal(s->bytes[2], 7);
	assert_true(s->rate > 106 && s->rate < 108);
	/* A count that goes back (a forgotten address found again) and a clock that goes back are
	 * held at what they were. */
	bt_plot_begin(&p, 1.5);
	bt_plot_add_peer(&p, "127.0.0.11:6881", 10);
	bt_plot_end(&p, 10);
	s = &p.samples[2];
	assert_true(s->t == 2.0);
	assert_int_equal(s->bytes[0], 200);
	assert_int_equal(s->received, 407);
	assert_true(s->rate == 0);
	bt_plot_deinit(&p);
}

static void test_thinning_keeps_ends_and_bytes(void **state)
{
	(void)state;
	struct bt_plot p;
	bt_plot_init(&p);
	size_t total = BT_PLOT_MAX_SAMPLES + 10;
	for (size_t i = 0; i < total; i++)
		sample(&p, (double)i, 1000 * i, 10 * i);
	assert_true(p.nsamples <= BT_PLOT_MAX_SAMPLES);
	assert_true(p.nsamples > BT_PLOT_MAX_SAMPLES / 2);
	assert_true(p.samples[0].t == 0);
	assert_true(p.samples[p.nsamples - 1].t == (double)(total - 1));
	assert_int_equal(p.samples[p.nsamples - 1].bytes[0], 1000 * (total - 1));
	for (size_t i = 1; i < p.nsamples; i++)
		assert_true(p.samples[i].t > p.samples[i - 1].t);
	bt_plot_deinit(&p);
}

static void test_svg_one_series_per_peer(void **state)
{
	(void)state;
	struct bt_plot p;
	bt_plot_init(&p);
	sample(&p, 0, 0, 0);
	for (int i = 1; i <= 5; i++) {
		bt_plot_begin(&p, i);
		bt_plot_add_peer(&p, "127.0.0.11:6881", 1000u * i);
		bt_plot_add_peer(&p, "<b&\"x\x1b\xc3\xa9>", 3000u * i);
		bt_plot_add_peer(&p, "127.0.0.99:1", 0); /* connected, sent nothing */
		bt_plot_end(&p, 4000u * i);
	}
	struct bt_buf b;
	bt_buf_init(&b);
	bt_plot_svg(&b, &p, "data & <more>");
	const char *svg = (char *)b.data;
	assert_true(strncmp(svg, "<?xml", 5) == 0);
	assert_non_null(strstr(svg, "</svg>\n"));
	assert_int_equal(count(svg, "<path class=\"peer\""), 2);
	assert_int_equal(count(svg, "<rect class=\"share\""), 2);
	assert_int_equal(count(svg, "class=\"total\""), 1);
	assert_null(strstr(svg, "127.0.0.99"));
	/* Largest first: the escaped name comes before the other. */
	const char *big = strstr(svg, "data-peer=\"&lt;b&amp;&quot;x???&gt;\"");
	const char *small = strstr(svg, "data-peer=\"127.0.0.11:6881\"");
	assert_non_null(big);
	assert_non_null(small);
	assert_true(big < small);
	assert_non_null(strstr(svg, "data &amp; &lt;more&gt;"));
	assert_non_null(strstr(svg, "75.0%"));
	assert_non_null(strstr(svg, "25.0%"));
	assert_null(strstr(svg, "\x1b"));
	/* 4000 B/s at the top: the axis is in KiB/s. */
	assert_non_null(strstr(svg, "KiB/s</text>"));
	bt_buf_deinit(&b);
	bt_plot_deinit(&p);
}

static void test_svg_without_samples(void **state)
{
	(void)state;
	struct bt_plot p;
	bt_plot_init(&p);
	struct bt_buf b;
	bt_buf_init(&b);
	bt_plot_svg(&b, &p, NULL);
	assert_non_null(strstr((char *)b.data, "no samples yet"));
	assert_non_null(strstr((char *)b.data, "</svg>\n"));
	assert_int_equal(count((char *)b.data, "class=\"peer\""), 0);
	bt_buf_deinit(&b);
	bt_plot_deinit(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_line),
		cmocka_unit_test(test_names_are_json_strings),
		cmocka_unit_test(test_carry_sum_and_monotonic),
		cmocka_unit_test(test_thinning_keeps_ends_and_bytes),
		cmocka_unit_test(test_svg_one_series_per_peer),
		cmocka_unit_test(test_svg_without_samples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
