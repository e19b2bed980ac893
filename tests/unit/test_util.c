#include "bt/util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static void test_big_endian(void **state)
{
	(void)state;
	uint8_t b[8];
	bt_store_be16(b, 0x1234);
	assert_int_equal(b[0], 0x12);
	assert_int_equal(b[1], 0x34);
	assert_int_equal(bt_load_be16(b), 0x1234);
	bt_store_be32(b, 0xdeadbeef);
	assert_memory_equal(b, "\xde\xad\xbe\xef", 4);
	assert_int_equal(bt_load_be32(b), 0xdeadbeef);
	bt_store_be64(b, 0x0102030405060708ull);
	assert_memory_equal(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	assert_true(bt_load_be64(b) == 0x0102030405060708ull);
}

static void test_buf_grows_and_terminates(void **state)
{
	(void)state;
	struct bt_buf b;
	bt_buf_init(&b);
	for (int i = 0; i < 10000; i++)
		bt_buf_printf(&b, "%d,", i % 10);
	assert_int_equal(b.len, 20000);
	assert_int_equal(b.data[b.len], '\0');
	assert_memory_equal(b.data, "0,1,2,", 6);
	bt_buf_add(&b, "\0x", 2);
	assert_int_equal(b.len, 20002);
	size_t n;
	uint8_t *p = bt_buf_steal(&b, &n);
	assert_int_equal(n, 20002);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(p);
	p = bt_buf_steal(&b, &n); /* an empty buffer still gives a valid string */
	assert_int_equal(n, 0);
	assert_string_equal((char *)p, "");
	free(p);
}

static void test_hex(void **state)
{
	(void)state;
	char out[9];
	bt_hex_encode(out, (const uint8_t *)"\x00\x9f\xab\xff", 4);
	assert_string_equal(out, "009fabff");
	uint8_t back[4];
	assert_int_equal(bt_hex_decode(back, "009FabFF", 4), 0);
	assert_memory_equal(back, "\x00\x9f\xab\xff", 4);
	assert_int_equal(bt_hex_decode(back, "009fabfg", 4), -EINVAL);
	assert_int_equal(bt_hex_decode(back, "009fab", 4), -EINVAL);
	assert_int_equal(bt_hex_decode(back, "009fabff00", 4), -EINVAL);
}

static void test_err_set(void **state)
{
	(void)state;
	struct bt_err err;
	assert_int_equal(bt_err_set(&err, -EINVAL, "bad %s at %d", "x", 7), -EINVAL);
	assert_string_equal(err.msg, "bad x at 7");
	assert_int_equal(bt_err_set(NULL, -EIO, "ignored"), -EIO);
	char longer[600];
	memset(longer, 'a', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	bt_err_set(&err, -1, "%s", longer);
	assert_int_equal(strlen(err.msg), BT_ERR_MAX - 1);
}

/* A path too long for the message is shortened in the middle: the reason at the end survives. */
static void test_err_keeps_reason(void **state)
{
	(void)state;
	char path[4200];
	size_t n = 0;
	n += (size_t)snprintf(path + n, sizeof path - n, "/tmp/start");
	while (n < 4000)
		n += (size_t)snprintf(path + n, sizeof path - n, "/d\xc3\xa9j\xc3\xa0");
	snprintf(path + n, sizeof path - n, "/file-at-the-end");
	struct bt_err err;
	assert_int_equal(bt_err_set(&err, -ENAMETOOLONG, "cannot create '%s': %s", path,
				    strerror(ENAMETOOLONG)),
			 -ENAMETOOLONG);
	/* Up to 3 bytes are lost to a cut moved to a character's boundary. */
	assert_in_range(strlen(err.msg), BT_ERR_MAX - 4, BT_ERR_MAX - 1);
	assert_true(strncmp(err.msg, "cannot create '/tmp/start", 25) == 0);
	const char *end = "/file-at-the-end': File name too long";
	assert_string_equal(err.msg + strlen(err.msg) - strlen(end), end);
	assert_non_null(strstr(err.msg, "\xe2\x80\xa6"));
	/* Cut between characters: every byte is in a whole UTF-8 sequence. */
	for (const unsigned char *p = (const unsigned char *)err.msg; *p;) {
		int len = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : 0;
		assert_true(len > 0);
		for (int i = 1; i < len; i++)
			assert_int_equal(p[i] & 0xc0, 0x80);
		p += len;
	}

	/* Exactly at the limit: untouched. */
	char fits[BT_ERR_MAX];
	memset(fits, 'x', sizeof fits - 1);
	fits[sizeof fits - 1] = '\0';
	bt_err_set(&err, -1, "%s", fits);
	assert_string_equal(err.msg, fits);
	char small[12];
	bt_err_fit(small, sizeof small, "0123456789abcdef");
	assert_string_equal(small, "0123456789a");
}

/* A regular file over the limit is refused by its size, before it is read. */
static void test_read_file_size_first(void **state)
{
	(void)state;
	char path[] = "/tmp/bt-test-util-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	/* Sparse: reading it whole would take minutes. */
	assert_int_equal(ftruncate(fd, (off_t)1 << 40), 0);
	close(fd);
	uint8_t *got;
	size_t len;
	struct bt_err err;
	assert_int_equal(bt_read_file(path, 1000, &got, &len, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "1099511627776 bytes"));
	unlink(path);
}

/* From standard input (a pipe), reading stops one byte past the limit. */
static void test_read_file_pipe_stops(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	char data[5000];
	memset(data, 'z', sizeof data);
	assert_int_equal(write(p[1], data, sizeof data), (ssize_t)sizeof data);
	int saved = dup(STDIN_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(p[0], STDIN_FILENO), STDIN_FILENO);
	uint8_t *got;
	size_t len;
	struct bt_err err;
	assert_int_equal(bt_read_file("-", 1000, &got, &len, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "standard input"));
	assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
	close(saved);
	int left = 0;
	assert_int_equal(ioctl(p[0], FIONREAD, &left), 0);
	assert_int_equal(left, (int)sizeof data - 1001);
	close(p[0]);
	close(p[1]);
}

static void test_read_file(void **state)
{
	(void)state;
	char path[] = "/tmp/bt-test-util-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	uint8_t data[200000];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 7);
	assert_int_equal(write(fd, data, sizeof data), (ssize_t)sizeof data);
	close(fd);

	uint8_t *got;
	size_t len;
	struct bt_err err;
	assert_int_equal(bt_read_file(path, sizeof data, &got, &len, &err), 0);
	assert_int_equal(len, sizeof data);
	assert_memory_equal(got, data, sizeof data);
	free(got);

	assert_int_equal(bt_read_file(path, sizeof data - 1, &got, &len, &err), -EFBIG);
	assert_non_null(strstr(err.msg, path));
	unlink(path);
	assert_int_equal(bt_read_file(path, 100, &got, &len, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "No such file"));
	assert_int_equal(bt_read_file("/tmp", 100, &got, &len, &err), -EISDIR);
}

static void test_sockaddr(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	char out[64];
	assert_int_equal(bt_sockaddr_from_ip("127.0.0.11", 6881, &ss), sizeof(struct sockaddr_in));
	bt_sockaddr_format((struct sockaddr *)&ss, out, sizeof out);
	assert_string_equal(out, "127.0.0.11:6881");
	assert_int_equal(bt_sockaddr_from_ip("::1", 80, &ss), sizeof(struct sockaddr_in6));
	bt_sockaddr_format((struct sockaddr *)&ss, out, sizeof out);
	assert_string_equal(out, "[::1]:80");
	assert_int_equal(bt_sockaddr_from_ip("localhost", 1, &ss), 0);
	assert_int_equal(bt_sockaddr_from_ip("1.2.3", 1, &ss), 0);
	bt_sockaddr_format((struct sockaddr *)&ss, out, sizeof out); /* family 0 */
	assert_string_equal(out, "?");
}

static void test_split_host_port(void **state)
{
	(void)state;
	char host[64];
	uint16_t port;
	assert_int_equal(bt_split_host_port("127.0.0.1:6881", host, sizeof host, &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 6881);
	assert_int_equal(bt_split_host_port("[::1]:1", host, sizeof host, &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 1);
	assert_int_equal(bt_split_host_port("router.example:65535", host, sizeof host, &port), 0);
	assert_string_equal(host, "router.example");
	static const char *const bad[] = {
		"",	    ":80",    "host",	 "host:", "host:0", "host:65536", "host:+80",
		"host:8 0", "::1:80", "[::1]80", "[::1",  "[]:80",  "host:123456"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(bt_split_host_port(bad[i], host, sizeof host, &port), -EINVAL);
	assert_int_equal(bt_split_host_port("a-very-long-host-name-indeed:80", host, 8, &port),
			 -EINVAL);
}

/* A URL's authority: user info skipped, brackets removed, the port "" when not given. */
static void test_url_host_port(void **state)
{
	(void)state;
	char host[64], port[8];
	assert_int_equal(
		bt_url_host_port("udp://[::1]:6969/announce", host, sizeof host, port, sizeof port),
		0);
	assert_string_equal(host, "::1");
	assert_string_equal(port, "6969");
	assert_int_equal(bt_url_host_port("udp://tracker.example:80?x", host, sizeof host, port,
					  sizeof port),
			 0);
	assert_string_equal(host, "tracker.example");
	assert_string_equal(port, "80");
	assert_int_equal(
		bt_url_host_port("https://u:p@w@h.example/x", host, sizeof host, port, sizeof port),
		0);
	assert_string_equal(host, "h.example");
	assert_string_equal(port, "");
	assert_int_equal(bt_url_host_port("http://h:?q", host, sizeof host, port, sizeof port), 0);
	assert_string_equal(host, "h");
	assert_string_equal(port, "");
	const char *bad[] = {"h/x",	     "http:///x",    "http://h:0/",   "http://h:65536/",
			     "http://h:8x/", "http://[::1/", "http://[::1]x", "http://[]/"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(bt_url_host_port(bad[i], host, sizeof host, port, sizeof port),
				 -EINVAL);
	/* Too long for the buffers. */
	assert_int_equal(bt_url_host_port("http://h.example/", host, 5, port, sizeof port),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_big_endian),
		cmocka_unit_test(test_buf_grows_and_terminates),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_err_set),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_err_keeps_reason),
		cmocka_unit_test(test_read_file_size_first),
		cmocka_unit_test(test_read_file_pipe_stops),
		cmocka_unit_test(test_sockaddr),
		cmocka_unit_test(test_split_host_port),
		cmocka_unit_test(test_url_host_port),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
