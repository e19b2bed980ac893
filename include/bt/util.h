/*
 * util: the bottom of the house. Allocation that never returns NULL (it aborts on out-of-memory,
 * which a BitTorrent client cannot recover from anyway), big-endian loads and stores for wire
 * formats, a growable byte buffer, hex encoding, and struct bt_err, the optional one-line human
 * message that fallible functions fill in beside their negative errno-style return code.
 * Everything here is pure and thread-agnostic; every other module may include it.
 */
#ifndef BT_UTIL_H
#define BT_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BT_ERR_MAX 256

/* An info hash (SHA-1 of the info dictionary, BEP 3) and a peer id are both 20 bytes. */
#define BT_HASH_LEN    20
#define BT_PEER_ID_LEN 20

/* A human-readable reason for a failure. Functions taking a `struct bt_err *` accept NULL. */
struct bt_err {
	char msg[BT_ERR_MAX];
};

#if defined(__GNUC__)
#define BT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define BT_NORETURN	__attribute__((noreturn))
#else
#define BT_PRINTF(f, a)
#define BT_NORETURN
#endif

/*
 * Sets err->msg (if err is non-NULL) and returns `code`, so callers can `return bt_err_set(...)`.
 * A message longer than BT_ERR_MAX - 1 bytes is shortened in the middle (bt_err_fit), so both its
 * start and its end, where the reason is ("...: File name too long"), survive a long path.
 */
int bt_err_set(struct bt_err *err, int code, const char *fmt, ...) BT_PRINTF(3, 4);
/*
 * Copies msg into out (n bytes, NUL included); if it does not fit, keeps its first third and its
 * end with "…" (U+2026) between them, cutting only between UTF-8 characters.
 */
void bt_err_fit(char *out, size_t n, const char *msg);

void *bt_xmalloc(size_t n);
void *bt_xcalloc(size_t count, size_t size);
/* Reallocates to count * size bytes, aborting on multiplication overflow or out-of-memory. */
void *bt_xreallocarray(void *p, size_t count, size_t size);
char *bt_xstrdup(const char *s);
/* Copies n bytes and appends a NUL. */
char *bt_xstrndup(const char *s, size_t n);
BT_NORETURN void bt_oom(void);

static inline uint16_t bt_load_be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t bt_load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t bt_load_be64(const uint8_t *p)
{
	return (uint64_t)bt_load_be32(p) << 32 | bt_load_be32(p + 4);
}

static inline void bt_store_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void bt_store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void bt_store_be64(uint8_t *p, uint64_t v)
{
	bt_store_be32(p, (uint32_t)(v >> 32));
	bt_store_be32(p + 4, (uint32_t)v);
}

/*
 * A growable byte buffer. `data` is always NUL-terminated (the NUL is not counted in `len`), so
 * text built in it can be printed directly. Embedded: bt_buf_init / bt_buf_deinit.
 */
struct bt_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

void bt_buf_init(struct bt_buf *b);
void bt_buf_deinit(struct bt_buf *b);
void bt_buf_reserve(struct bt_buf *b, size_t extra);
void bt_buf_add(struct bt_buf *b, const void *p, size_t n);
void bt_buf_addc(struct bt_buf *b, char c);
void bt_buf_adds(struct bt_buf *b, const char *s);
void bt_buf_printf(struct bt_buf *b, const char *fmt, ...) BT_PRINTF(2, 3);
/* Takes the bytes out of the buffer (caller frees) and leaves the buffer empty. */
uint8_t *bt_buf_steal(struct bt_buf *b, size_t *len_out);

/* Writes 2*n lowercase hex digits and a NUL into out (which holds 2*n + 1 bytes). */
void bt_hex_encode(char *out, const uint8_t *p, size_t n);
/* Parses exactly 2*n hex digits (either case). Returns 0 or -EINVAL. */
int bt_hex_decode(uint8_t *out, const char *hex, size_t n);

/* Seconds on the monotonic clock: the one time source for timeouts, rates and schedules. */
double bt_now(void);

struct timeval;
/* Fills tv with a duration in seconds (negative counts as 0); returns tv, for event_add. */
struct timeval *bt_timeval(struct timeval *tv, double seconds);

struct sockaddr;
struct sockaddr_storage;

/* Writes "1.2.3.4:5" or "[::1]:5" for an IPv4 or IPv6 socket address ("?" otherwise). */
void bt_sockaddr_format(const struct sockaddr *sa, char *out, size_t n);
/* Fills ss from a numeric IPv4 or IPv6 address and a port; returns its length, or 0. */
unsigned bt_sockaddr_from_ip(const char *ip, uint16_t port, struct sockaddr_storage *ss);

/*
 * Reads a whole file ("-" means standard input) of at most max_len bytes into a new buffer.
 * Returns 0, or a negative errno with a message naming the path; -EFBIG if it is larger, known
 * before reading for a regular file (its size), after max_len + 1 bytes from a pipe.
 */
int bt_read_file(const char *path, size_t max_len, uint8_t **data_out, size_t *len_out,
		 struct bt_err *err);

/*
 * Splits "host:port" or "[v6]:port" into host (brackets removed; shorter than hostlen) and port
 * (decimal, 1 to 65535). An IPv6 address must be bracketed. 0 or -EINVAL. The one parser of
 * host:port arguments (--peer, handshake, DHT routers).
 */
int bt_split_host_port(const char *s, char *host, size_t hostlen, uint16_t *port);
/*
 * Splits a URL's authority, "scheme://[user@]host[:port]/...", into host (an IPv6 address
 * without its brackets) and port, "" when the URL gives none (the scheme's default). User info
 * ends at the authority's last '@'. 0, or -EINVAL for no "://", an empty host, an unclosed
 * bracket, anything but ':' after one, a port that is not 1 to 65535, or a part too long for
 * its buffer. The one parser of URL authorities (UDP trackers, web seeds' servers).
 */
int bt_url_host_port(const char *url, char *host, size_t host_len, char *port, size_t port_len);

#endif
