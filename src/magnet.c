#include "bt/magnet.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define SCHEME	   "magnet:?"
#define SCHEME_LEN 8

enum param { P_XT, P_DN, P_TR, P_WS, P_PE, P_SO, P_UNKNOWN };

/* `numbered`: the magnet convention "xt.1", "tr.2" for repeated parameters is accepted. */
static const struct {
	const char *name;
	bool numbered;
} params[P_UNKNOWN] = {
	[P_XT] = {"xt", true}, [P_DN] = {"dn", true},	 [P_TR] = {"tr", true},
	[P_WS] = {"ws", true}, [P_PE] = {"x.pe", false}, [P_SO] = {"so", false},
};

struct parser {
	struct bt_magnet *m;
	const char *uri;
	struct bt_err *err;
	bool has_v1;
	size_t seen[P_UNKNOWN]; /* occurrences so far: "tr #3" and the caps */
	char label[48];		/* names the parameter in messages: "xt", "tr #3" */
	size_t tier_cap, ws_cap, peer_cap, select_cap;
};

bool bt_magnet_is(const char *s)
{
	return s && strncasecmp(s, SCHEME, SCHEME_LEN) == 0;
}

static bool is_hex(char c)
{
	return c != '\0' && strchr("0123456789abcdefABCDEF", c) != NULL;
}

static int base32_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* A character of the input, quoted for a one-line message even when it is a control byte. */
static void describe_char(char out[16], char c)
{
	unsigned char u = (unsigned char)c;
	if (u > 0x20 && u < 0x7f && u != '\'')
		snprintf(out, 16, "'%c'", c);
	else
		snprintf(out, 16, "byte 0x%02x", u);
}

static enum param classify(const char *k, size_t n)
{
	for (int i = 0; i < P_UNKNOWN; i++) {
		size_t len = strlen(params[i].name);
		if (n < len || memcmp(k, params[i].name, len) != 0)
			continue;
		if (n == len)
			return (enum param)i;
		if (params[i].numbered && k[len] == '.' && n > len + 1 &&
		    all_digits(k + len + 1, n - len - 1))
			return (enum param)i;
	}
	return P_UNKNOWN;
}

/*
 * Percent-decodes the n bytes at v into a new string. A truncated or non-hex escape, or one that
 * makes a NUL (which would silently cut the value short in C), is an error at its offset in the
 * URI. '+' is left alone: only HTML forms mean a space by it, and URLs keep it.
 */
static char *decode(struct parser *p, const char *v, size_t n)
{
	char *out = bt_xmalloc(n + 1);
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] != '%') {
			out[j++] = v[i];
			continue;
		}
		size_t off = (size_t)(v + i - p->uri);
		char esc[3] = {0};
		uint8_t c;
		if (i + 2 < n)
			memcpy(esc, v + i + 1, 2);
		if (bt_hex_decode(&c, esc, 1) != 0) {
			free(out);
			bt_err_set(p->err, -EINVAL, "magnet: %s: bad percent-escape at offset %zu",
				   p->label, off);
			return NULL;
		}
		if (c == 0) {
			free(out);
			bt_err_set(p->err, -EINVAL, "magnet: %s: %%00 (a NUL byte) at offset %zu",
				   p->label, off);
			return NULL;
		}
		out[j++] = (char)c;
		i += 2;
	}
	out[j] = '\0';
	return out;
}

/* 40 hex digits or 32 base32 characters (RFC 4648, no padding), either case. */
static int parse_btih(struct parser *p, const char *s, uint8_t out[BT_HASH_LEN])
{
	size_t len = strlen(s);
	char what[16];
	if (len == 2 * BT_HASH_LEN) {
		for (size_t i = 0; i < len; i++) {
			if (!is_hex(s[i])) {
				describe_char(what, s[i]);
				return bt_err_set(
					p->err, -EINVAL,
					"magnet: %s: bad hex digit %s at character %zu of "
					"the info hash",
					p->label, what, i + 1);
			}
		}
		return bt_hex_decode(out, s, BT_HASH_LEN);
	}
	if (len == 32) {
		uint32_t acc = 0;
		unsigned bits = 0;
		size_t o = 0;
		for (size_t i = 0; i < len; i++) {
			int v = base32_val(s[i]);
			if (v < 0) {
				describe_char(what, s[i]);
				return bt_err_set(
					p->err, -EINVAL,
					"magnet: %s: bad base32 character %s at character "
					"%zu of the info hash",
					p->label, what, i + 1);
			}
			acc = acc << 5 | (uint32_t)v;
			bits += 5;
			if (bits >= 8) {
				bits -= 8;
				out[o++] = (uint8_t)(acc >> bits);
				acc &= (1u << bits) - 1;
			}
		}
		return 0;
	}
	size_t hex = 0;
	while (hex < len && is_hex(s[hex]))
		hex++;
	if (hex == len)
		return bt_err_set(p->err, -EINVAL,
				  "magnet: %s: info hash has %zu hex digits (want 40, or 32 base32 "
				  "characters)",
				  p->label, len);
	return bt_err_set(p->err, -EINVAL,
			  "magnet: %s: info hash has %zu characters (want 40 hex digits or 32 "
			  "base32 characters)",
			  p->label, len);
}

/* BEP 52 in a magnet: a multihash, of which we know sha2-256 (code 0x12, length 0x20). */
static int parse_btmh(struct parser *p, const char *s, uint8_t out[BT_SHA256_LEN])
{
	if (strlen(s) != 4 + 2 * BT_SHA256_LEN || strncmp(s, "1220", 4) != 0 ||
	    bt_hex_decode(out, s + 4, BT_SHA256_LEN) != 0)
		return bt_err_set(p->err, -EINVAL,
				  "magnet: %s: btmh is not a sha2-256 multihash ('1220' and 64 hex "
				  "digits)",
				  p->label);
	return 0;
}

static int on_xt(struct parser *p, const char *v)
{
	struct bt_magnet *m = p->m;
	/* RFC 8141: the "urn" scheme and the namespace are case-insensitive. */
	bool v1 = strncasecmp(v, "urn:btih:", 9) == 0;
	if (!v1 && strncasecmp(v, "urn:btmh:", 9) != 0)
		return 0; /* urn:sha1:, urn:ed2k:, ... name the content for other networks */
	uint8_t h[BT_SHA256_LEN];
	int rc = v1 ? parse_btih(p, v + 9, h) : parse_btmh(p, v + 9, h);
	if (rc)
		return rc;
	uint8_t *dst = v1 ? m->info_hash : m->info_hash_v2;
	size_t n = v1 ? BT_HASH_LEN : BT_SHA256_LEN;
	bool *have = v1 ? &p->has_v1 : &m->has_v2;
	if (*have && memcmp(h, dst, n) != 0)
		return bt_err_set(p->err, -EINVAL, "magnet: %s: a second, different %s info hash",
				  p->label, v1 ? "btih" : "btmh");
	memcpy(dst, h, n);
	*have = true;
	return 0;
}

/*
 * What is wrong with u as a tracker or web seed URL, or NULL. It needs a scheme and something
 * after "://"; a control character or a space would only break a request line or a printed line.
 */
static const char *url_problem(const char *u)
{
	for (const char *c = u; *c; c++)
		if ((unsigned char)*c <= 0x20 || *c == 0x7f)
			return "a control character or space in the URL";
	size_t s = 0;
	while ((u[s] >= 'a' && u[s] <= 'z') || (u[s] >= 'A' && u[s] <= 'Z') ||
	       (s > 0 &&
		((u[s] >= '0' && u[s] <= '9') || u[s] == '+' || u[s] == '-' || u[s] == '.')))
		s++;
	if (s == 0 || strncmp(u + s, "://", 3) != 0 || u[s + 3] == '\0' || u[s + 3] == '/')
		return "not a URL with a scheme (like udp://host:port/announce)";
	return NULL;
}

/* Room for one more element in an array of count elements of size bytes, capacity *cap. */
static void *grow(void *arr, size_t *cap, size_t count, size_t size)
{
	if (count < *cap)
		return arr;
	*cap = *cap ? 2 * *cap : 8;
	return bt_xreallocarray(arr, *cap, size);
}

/* Takes ownership of v: kept as a URL, or freed with err set. */
static int check_url(struct parser *p, char *v)
{
	const char *why = url_problem(v);
	if (!why)
		return 0;
	free(v);
	return bt_err_set(p->err, -EINVAL, "magnet: %s: %s", p->label, why);
}

static bool has_url(char *const *urls, size_t n, const char *u)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(urls[i], u) == 0)
			return true;
	return false;
}

/* Both take ownership of v. */
static int on_tr(struct parser *p, char *v)
{
	struct bt_magnet *m = p->m;
	if (check_url(p, v))
		return -EINVAL;
	for (size_t i = 0; i < m->tier_count; i++) {
		if (strcmp(m->tiers[i].urls[0], v) == 0) {
			free(v);
			return 0;
		}
	}
	m->tiers = grow(m->tiers, &p->tier_cap, m->tier_count, sizeof *m->tiers);
	struct bt_meta_tier *t = &m->tiers[m->tier_count++];
	t->urls = bt_xmalloc(sizeof *t->urls);
	t->urls[0] = v;
	t->count = 1;
	return 0;
}

static int on_ws(struct parser *p, char *v)
{
	struct bt_magnet *m = p->m;
	if (check_url(p, v))
		return -EINVAL;
	if (has_url(m->web_seeds, m->web_seed_count, v)) {
		free(v);
		return 0;
	}
	m->web_seeds = grow(m->web_seeds, &p->ws_cap, m->web_seed_count, sizeof *m->web_seeds);
	m->web_seeds[m->web_seed_count++] = v;
	return 0;
}

/* Letters, digits, '-' and '.', with a letter somewhere: "1.2.3.4.5" is no name, just bad. */
static bool host_name_like(const char *s, size_t n)
{
	bool letter = false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		letter |= alpha;
		if (!alpha && !(c >= '0' && c <= '9') && c != '-' && c != '.')
			return false;
	}
	return letter;
}

/*
 * "1.2.3.4:5" or "[v6]:5" into a peer address; 1 for a host name we leave alone (resolving
 * belongs to the I/O layers). The address itself is read by the one numeric address parser,
 * bt_sockaddr_from_ip; an IPv4-mapped IPv6 address becomes IPv4, as everywhere else.
 */
static int on_pe(struct parser *p, const char *v)
{
	struct bt_magnet *m = p->m;
	const char *h = v, *h_end, *port;
	bool bracket = v[0] == '[';
	if (bracket) {
		h = v + 1;
		h_end = strchr(h, ']');
		if (!h_end || h_end[1] != ':')
			goto bad;
		port = h_end + 2;
	} else {
		const char *colon = strrchr(v, ':');
		if (!colon)
			goto bad;
		h_end = colon;
		port = colon + 1;
		if (memchr(v, ':', (size_t)(colon - v))) /* IPv6 must be bracketed */
			goto bad;
	}
	size_t plen = strlen(port);
	if (plen == 0 || plen > 5 || !all_digits(port, plen) || atol(port) < 1 ||
	    atol(port) > 65535)
		return bt_err_set(p->err, -EINVAL, "magnet: %s: port must be 1 to 65535", p->label);
	char host[64];
	size_t hlen = (size_t)(h_end - h);
	if (hlen == 0 || hlen >= sizeof host)
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	struct sockaddr_storage ss;
	struct bt_peer_addr a;
	if (!bt_sockaddr_from_ip(host, (uint16_t)atol(port), &ss) ||
	    (bracket && ss.ss_family != AF_INET6) ||
	    !bt_peer_addr_from_sockaddr((const struct sockaddr *)&ss, &a)) {
		if (!bracket && host_name_like(host, hlen)) {
			m->peers_skipped++;
			return 0;
		}
		goto bad;
	}
	for (size_t i = 0; i < m->peer_count; i++)
		if (bt_peer_addr_equal(&m->peers[i], &a))
			return 0;
	m->peers = grow(m->peers, &p->peer_cap, m->peer_count, sizeof *m->peers);
	m->peers[m->peer_count++] = a;
	return 0;
bad:
	return bt_err_set(p->err, -EINVAL, "magnet: %s: not IPv4:PORT or [IPv6]:PORT", p->label);
}

static bool read_index(const char **s, uint32_t *out)
{
	uint64_t v = 0;
	const char *c = *s;
	while (*c >= '0' && *c <= '9' && c - *s < 10)
		v = v * 10 + (uint64_t)(*c++ - '0');
	if (c == *s || (*c >= '0' && *c <= '9') || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	*s = c;
	return true;
}

/* BEP 53: "0,2,4-6". Repeated so= add to the selection. */
static int on_so(struct parser *p, const char *v)
{
	struct bt_magnet *m = p->m;
	const char *s = v;
	for (;;) {
		struct bt_magnet_range r;
		if (!read_index(&s, &r.first))
			goto bad;
		r.last = r.first;
		if (*s == '-' && (s++, !read_index(&s, &r.last)))
			goto bad;
		if (r.last < r.first)
			return bt_err_set(p->err, -EINVAL, "magnet: %s: range %u-%u is backwards",
					  p->label, r.first, r.last);
		if (m->select_count == BT_MAGNET_MAX_RANGES)
			return bt_err_set(p->err, -EINVAL, "magnet: %s: more than %d ranges",
					  p->label, BT_MAGNET_MAX_RANGES);
		m->select = grow(m->select, &p->select_cap, m->select_count, sizeof *m->select);
		m->select[m->select_count++] = r;
		if (*s == '\0')
			return 0;
		if (*s++ != ',')
			goto bad;
	}
bad:
	return bt_err_set(p->err, -EINVAL,
			  "magnet: %s: expected file indexes and ranges like 0,2,4-6 (at character "
			  "%zu)",
			  p->label, (size_t)(s - v) + 1);
}

/* One "key=value" (n bytes at s, no '&' in it). */
static int on_param(struct parser *p, const char *s, size_t n)
{
	const char *eq = memchr(s, '=', n);
	size_t klen = eq ? (size_t)(eq - s) : n;
	enum param kind = classify(s, klen);
	if (kind == P_UNKNOWN)
		return 0;
	static const int caps[P_UNKNOWN] = {[P_TR] = BT_MAGNET_MAX_TRACKERS,
					    [P_WS] = BT_MAGNET_MAX_WEB_SEEDS,
					    [P_PE] = BT_MAGNET_MAX_PEERS};
	static const char *const what[P_UNKNOWN] = {
		[P_TR] = "trackers", [P_WS] = "web seeds", [P_PE] = "peers"};
	size_t nth = ++p->seen[kind];
	/* Counted before anything is decoded, so a flood is refused at the cap, not after it. */
	if (caps[kind] && nth > (size_t)caps[kind])
		return bt_err_set(p->err, -EINVAL, "magnet: %s: more than %d %s", params[kind].name,
				  caps[kind], what[kind]);
	if (caps[kind])
		snprintf(p->label, sizeof p->label, "%s #%zu", params[kind].name, nth);
	else
		snprintf(p->label, sizeof p->label, "%.*s", (int)(klen < 32 ? klen : 32), s);
	if (!eq)
		return bt_err_set(p->err, -EINVAL, "magnet: %s: no '=' and no value", p->label);
	char *v = decode(p, eq + 1, n - klen - 1);
	if (!v)
		return -EINVAL;
	if (*v == '\0' && kind != P_XT) {
		free(v);
		return 0;
	}
	int rc = 0;
	switch (kind) {
	case P_XT:
		rc = on_xt(p, v);
		break;
	case P_DN:
		if (!p->m->name) {
			p->m->name = v;
			v = NULL;
		}
		break;
	case P_TR:
		return on_tr(p, v);
	case P_WS:
		return on_ws(p, v);
	case P_PE:
		rc = on_pe(p, v);
		break;
	case P_SO:
		rc = on_so(p, v);
		break;
	case P_UNKNOWN:
		break;
	}
	free(v);
	return rc;
}

int bt_magnet_parse(struct bt_magnet *m, const char *uri, struct bt_err *err)
{
	memset(m, 0, sizeof *m);
	size_t len = strnlen(uri, BT_MAGNET_MAX_LEN + 1);
	if (len > BT_MAGNET_MAX_LEN)
		return bt_err_set(err, -EINVAL, "magnet: the URI is longer than %d bytes",
				  BT_MAGNET_MAX_LEN);
	if (!bt_magnet_is(uri))
		return bt_err_set(err, -EINVAL,
				  "magnet: not a magnet URI (it must start with 'magnet:?')");
	struct parser p = {.m = m, .uri = uri, .err = err};
	const char *s = uri + SCHEME_LEN, *end = uri + len;
	int rc = 0;
	while (rc == 0) {
		const char *amp = memchr(s, '&', (size_t)(end - s));
		const char *seg_end = amp ? amp : end;
		if (seg_end > s) /* "&&" and a trailing '&' are empty parameters */
			rc = on_param(&p, s, (size_t)(seg_end - s));
		if (!amp)
			break;
		s = amp + 1;
	}
	if (rc == 0 && !p.has_v1)
		rc = m->has_v2 ? bt_err_set(err, -ENOTSUP,
					    "magnet: v2-only (urn:btmh) magnets are not supported")
			       : bt_err_set(err, -EINVAL,
					    "magnet: no xt=urn:btih: parameter (the info hash)");
	if (rc)
		bt_magnet_deinit(m);
	return rc;
}

void bt_magnet_deinit(struct bt_magnet *m)
{
	free(m->name);
	for (size_t i = 0; i < m->tier_count; i++) {
		for (size_t j = 0; j < m->tiers[i].count; j++)
			free(m->tiers[i].urls[j]);
		free(m->tiers[i].urls);
	}
	free(m->tiers);
	for (size_t i = 0; i < m->web_seed_count; i++)
		free(m->web_seeds[i]);
	free(m->web_seeds);
	free(m->peers);
	free(m->select);
	memset(m, 0, sizeof *m);
}

/* Everything but RFC 3986's unreserved characters, so no value can end a parameter early. */
static void encode(struct bt_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			bt_buf_addc(b, (char)c);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			bt_buf_add(b, e, 3);
		}
	}
}

char *bt_magnet_format(const uint8_t info_hash[BT_HASH_LEN], const char *name,
		       const struct bt_meta_tier *tiers, size_t tier_count)
{
	struct bt_buf b;
	bt_buf_init(&b);
	char hex[2 * BT_HASH_LEN + 1];
	bt_hex_encode(hex, info_hash, BT_HASH_LEN);
	bt_buf_printf(&b, SCHEME "xt=urn:btih:%s", hex);
	if (name && *name) {
		bt_buf_adds(&b, "&dn=");
		encode(&b, name);
	}
	/* Only what bt_magnet_parse would take back: distinct, well-formed, within the cap. */
	char *kept[BT_MAGNET_MAX_TRACKERS];
	size_t n = 0;
	for (size_t i = 0; i < tier_count; i++) {
		for (size_t j = 0; j < tiers[i].count && n < BT_MAGNET_MAX_TRACKERS; j++) {
			char *u = tiers[i].urls[j];
			if (!u || !*u || url_problem(u) || has_url(kept, n, u))
				continue;
			kept[n++] = u;
			bt_buf_adds(&b, "&tr=");
			encode(&b, u);
		}
	}
	return (char *)bt_buf_steal(&b, NULL);
}
