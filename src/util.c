#include "bt/util.h"

#include <sys/time.h>
#include <time.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Is p[i] inside a UTF-8 sequence (a continuation byte), where a cut would split a character? */
static bool is_continuation(const char *p, size_t i)
{
	return ((unsigned char)p[i] & 0xc0) == 0x80;
}

void bt_err_fit(char *out, size_t n, const char *msg)
{
	size_t len = strlen(msg);
	if (n == 0)
		return;
	if (len < n) {
		memcpy(out, msg, len + 1);
		return;
	}
	static const char ellipsis[] = "\xe2\x80\xa6"; /* U+2026 */
	if (n <= sizeof ellipsis + 8) { /* too small to be worth shortening in the middle */
		memcpy(out, msg, n - 1);
		out[n - 1] = '\0';
		return;
	}
	size_t room = n - 1 - (sizeof ellipsis - 1);
	/* A third for the start, the rest for the end, where the reason is. */
	size_t head = room / 3, tail = room - head;
	while (head > 0 && is_continuation(msg, head))
		head--;
	size_t from = len - tail;
	while (from < len && is_continuation(msg, from))
		from++;
	memcpy(out, msg, head);
	memcpy(out + head, ellipsis, sizeof ellipsis - 1);
	memcpy(out + head + sizeof ellipsis - 1, msg + from, len - from + 1);
}

int bt_err_set(struct bt_err *err, int code, const char *fmt, ...)
{
	/* (fmt is never NULL; saying so spares a false warning under UBSan's null checks.) */
	if (!err || !fmt)
		return code;
	va_list ap;
	va_start(ap, fmt);
	va_list again;
	va_copy(again, ap);
	int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof err->msg) {
		char *whole = bt_xmalloc((size_t)n + 1);
		vsnprintf(whole, (size_t)n + 1, fmt, again);
		bt_err_fit(err->msg, sizeof err->msg, whole);
		free(whole);
	}
	va_end(again);
	return code;
}

void bt_oom(void)
{
	fputs("torrent: out of memory\n", stderr);
	abort();
}

void *bt_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		bt_oom();
	return p;
}

void *bt_xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (!p)
		bt_oom();
	return p;
}

void *bt_xreallocarray(void *p, size_t count, size_t size)
{
	if (size && count > SIZE_MAX / size)
		bt_oom();
	size_t n = count * size;
	void *q = realloc(p, n ? n : 1);
	if (!q)
		bt_oom();
	return q;
}

char *bt_xstrdup(const char *s)
{
	return bt_xstrndup(s, strlen(s));
}

char *bt_xstrndup(const char *s, size_t n)
{
	char *p = bt_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void bt_buf_init(struct bt_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void bt_buf_deinit(struct bt_buf *b)
{
	free(b->data);
	bt_buf_init(b);
}

void bt_buf_reserve(struct bt_buf *b, size_t extra)
{
	if (extra >= SIZE_MAX - b->len)
		bt_oom();
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = bt_xreallocarray(b->data, cap, 1);
	b->cap = cap;
}

void bt_buf_add(struct bt_buf *b, const void *p, size_t n)
{
	bt_buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void bt_buf_addc(struct bt_buf *b, char c)
{
	bt_buf_add(b, &c, 1);
}

void bt_buf_adds(struct bt_buf *b, const char *s)
{
	bt_buf_add(b, s, strlen(s));
}

void bt_buf_printf(struct bt_buf *b, const char *fmt, ...)
{
	/* Most output is short: format once into a stack buffer, and only retry when it is not. */
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof small) {
		bt_buf_add(b, small, (size_t)n);
		return;
	}
	bt_buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

uint8_t *bt_buf_steal(struct bt_buf *b, size_t *len_out)
{
	bt_buf_reserve(b, 0);
	b->data[b->len] = '\0';
	uint8_t *p = b->data;
	if (len_out)
		*len_out = b->len;
	bt_buf_init(b);
	return p;
}

void bt_hex_encode(char *out, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int bt_hex_decode(uint8_t *out, const char *hex, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hex_value(hex[2 * i]);
		int lo = hi < 0 ? -1 : hex_value(hex[2 * i + 1]);
		if (lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return hex[2 * n] == '\0' ? 0 : -EINVAL;
}

int bt_read_file(const char *path, size_t max_len, uint8_t **data_out, size_t *len_out,
		 struct bt_err *err)
{
	bool is_stdin = strcmp(path, "-") == 0;
	const char *shown = is_stdin ? "standard input" : path;
	int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bt_err_set(err, -errno, "cannot open '%s': %s", shown, strerror(errno));

	struct stat st;
	if (fstat(fd, &st) != 0)
		st.st_mode = 0;
	if (S_ISDIR(st.st_mode)) {
		if (!is_stdin)
			close(fd);
		return bt_err_set(err, -EISDIR, "cannot read '%s': %s", shown, strerror(EISDIR));
	}

	/* A regular file's size is known: refuse it before reading a byte if it is too large. */
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_len) {
		if (!is_stdin)
			close(fd);
		return bt_err_set(err, -EFBIG,
				  "'%s' is larger than the limit of %zu bytes (%lld bytes)", shown,
				  max_len, (long long)st.st_size);
	}
	struct bt_buf b;
	bt_buf_init(&b);
	/* Read it in one allocation (plus one byte to see EOF). */
	if (S_ISREG(st.st_mode) && st.st_size > 0)
		bt_buf_reserve(&b, (size_t)st.st_size + 1);
	int rc = 0;
	for (;;) {
		if (b.cap - b.len < 2)
			bt_buf_reserve(&b, 65536);
		/* From a pipe, read no more than one byte past the limit. */
		size_t want = b.cap - b.len - 1;
		if (want > max_len + 1 - b.len)
			want = max_len + 1 - b.len;
		ssize_t n = read(fd, b.data + b.len, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = bt_err_set(err, -errno, "cannot read '%s': %s", shown,
					strerror(errno));
			break;
		}
		if (n == 0)
			break;
		b.len += (size_t)n;
		if (b.len > max_len) {
			rc = bt_err_set(err, -EFBIG, "'%s' is larger than the limit of %zu bytes",
					shown, max_len);
			break;
		}
	}
	if (!is_stdin)
		close(fd);
	if (rc) {
		bt_buf_deinit(&b);
		return rc;
	}
	*data_out = bt_buf_steal(&b, len_out);
	return 0;
}

void bt_sockaddr_format(const struct sockaddr *sa, char *out, size_t n)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
		snprintf(out, n, "%s:%u", host, ntohs(s4->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
		snprintf(out, n, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		snprintf(out, n, "?");
	}
}

unsigned bt_sockaddr_from_ip(const char *ip, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		return sizeof *s4;
	}
	if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		return sizeof *s6;
	}
	return 0;
}

double bt_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct timeval *bt_timeval(struct timeval *tv, double seconds)
{
	if (!(seconds > 0))
		seconds = 0;
	tv->tv_sec = (time_t)seconds;
	tv->tv_usec = (suseconds_t)((seconds - (double)tv->tv_sec) * 1e6);
	return tv;
}

int bt_split_host_port(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *h = s, *h_end, *p;
	if (s[0] == '[') {
		h = s + 1;
		h_end = strchr(h, ']');
		if (!h_end || h_end[1] != ':')
			return -EINVAL;
		p = h_end + 2;
	} else {
		h_end = strrchr(s, ':');
		/* An IPv6 address must be bracketed: its own colons would be ambiguous. */
		if (!h_end || memchr(s, ':', (size_t)(h_end - s)))
			return -EINVAL;
		p = h_end + 1;
	}
	size_t n = (size_t)(h_end - h), digits = strspn(p, "0123456789");
	if (n == 0 || n >= hostlen || digits == 0 || digits > 5 || p[digits] != '\0')
		return -EINVAL;
	unsigned long v = strtoul(p, NULL, 10);
	if (v < 1 || v > 65535)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (uint16_t)v;
	return 0;
}

int bt_url_host_port(const char *url, char *host, size_t host_len, char *port, size_t port_len)
{
	const char *p = strstr(url, "://");
	if (!p)
		return -EINVAL;
	p += 3;
	const char *end = p + strcspn(p, "/?#");
	for (const char *at = end; at > p; at--)
		if (at[-1] == '@') {
			p = at;
			break;
		}
	const char *h = p, *h_end, *colon;
	if (*p == '[') {
		h = p + 1;
		h_end = memchr(h, ']', (size_t)(end - h));
		if (!h_end || (h_end + 1 < end && h_end[1] != ':'))
			return -EINVAL;
		colon = h_end + 1 < end ? h_end + 1 : NULL;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		h_end = colon ? colon : end;
	}
	if (h_end == h || (size_t)(h_end - h) >= host_len || port_len == 0)
		return -EINVAL;
	size_t plen = colon ? (size_t)(end - colon - 1) : 0;
	if (plen) {
		if (plen >= port_len || strspn(colon + 1, "0123456789") < plen)
			return -EINVAL;
		long pv = strtol(colon + 1, NULL, 10);
		if (pv <= 0 || pv > 65535)
			return -EINVAL;
		memcpy(port, colon + 1, plen);
	}
	port[plen] = '\0';
	memcpy(host, h, (size_t)(h_end - h));
	host[h_end - h] = '\0';
	return 0;
}
