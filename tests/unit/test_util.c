#include "bt/util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_big_endian), cmocka_unit_test(test_buf_grows_and_terminates),
		cmocka_unit_test(test_hex),	   cmocka_unit_test(test_err_set),
		cmocka_unit_test(test_read_file),  cmocka_unit_test(test_sockaddr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
