#include "bt/json.h"

#include <string.h>

/*
 * Length of the valid UTF-8 sequence at p (at most n bytes), or 0 if p does not start one.
 * Rejects overlong forms, UTF-16 surrogates and code points past U+10FFFF.
 */
static size_t utf8_sequence(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];
	size_t len;
	uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

void bt_json_put_bytes(struct bt_buf *out, const void *data, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = data;
	bt_buf_reserve(out, n + 2);
	bt_buf_addc(out, '"');
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		size_t len = utf8_sequence(p + i, n - i);
		if (len > 1) {
			bt_buf_add(out, p + i, len);
			i += len;
			continue;
		}
		i++;
		if (len == 0) {
			char esc[] = {'\\', 'u', 'd', 'c', hex[c >> 4], hex[c & 15]};
			bt_buf_add(out, esc, sizeof esc);
		} else if (c == '"' || c == '\\') {
			char esc[] = {'\\', (char)c};
			bt_buf_add(out, esc, 2);
		} else if (c == '\n') {
			bt_buf_add(out, "\\n", 2);
		} else if (c == '\r') {
			bt_buf_add(out, "\\r", 2);
		} else if (c == '\t') {
			bt_buf_add(out, "\\t", 2);
		} else if (c < 0x20 || c == 0x7f) {
			char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			bt_buf_add(out, esc, sizeof esc);
		} else {
			bt_buf_addc(out, (char)c);
		}
	}
	bt_buf_addc(out, '"');
}

void bt_json_put_str(struct bt_buf *out, const char *s)
{
	bt_json_put_bytes(out, s, strlen(s));
}

void bt_json_put_hex(struct bt_buf *out, const uint8_t *p, size_t n)
{
	bt_buf_reserve(out, 2 * n + 2);
	bt_buf_addc(out, '"');
	bt_hex_encode((char *)out->data + out->len, p, n);
	out->len += 2 * n;
	bt_buf_addc(out, '"');
}

void bt_json_key(struct bt_buf *out, int *first, const char *key)
{
	if (!*first)
		bt_buf_addc(out, ',');
	*first = 0;
	bt_json_put_str(out, key);
	bt_buf_addc(out, ':');
}
