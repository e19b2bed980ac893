#include "bt/tracker_proto.h"

#include "bt/bencode.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bt_peer_addr_format(const struct bt_peer_addr *a, char *out)
{
	char host[INET6_ADDRSTRLEN];
	if (a->family == 6) {
		inet_ntop(AF_INET6, a->addr, host, sizeof host);
		snprintf(out, BT_PEER_ADDR_STRLEN, "[%s]:%u", host, a->port);
	} else {
		inet_ntop(AF_INET, a->addr, host, sizeof host);
		snprintf(out, BT_PEER_ADDR_STRLEN, "%s:%u", host, a->port);
	}
}

bool bt_peer_addr_equal(const struct bt_peer_addr *a, const struct bt_peer_addr *b)
{
	size_t n = a->family == 6 ? 16 : 4;
	return a->family == b->family && a->port == b->port && memcmp(a->addr, b->addr, n) == 0;
}

unsigned bt_peer_addr_to_sockaddr(const struct bt_peer_addr *a, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof *out);
	if (a->family == 4) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)out;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a->addr, 4);
		s4->sin_port = htons(a->port);
		return sizeof *s4;
	}
	if (a->family == 6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, a->addr, 16);
		s6->sin6_port = htons(a->port);
		return sizeof *s6;
	}
	return 0;
}

bool bt_peer_addr_from_sockaddr(const struct sockaddr *sa, struct bt_peer_addr *out)
{
	memset(out, 0, sizeof *out);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		out->family = 4;
		memcpy(out->addr, &s4->sin_addr, 4);
		out->port = ntohs(s4->sin_port);
		return true;
	}
	if (sa->sa_family != AF_INET6)
		return false;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		out->family = 4;
		memcpy(out->addr, s6->sin6_addr.s6_addr + 12, 4);
	} else {
		out->family = 6;
		memcpy(out->addr, &s6->sin6_addr, 16);
	}
	out->port = ntohs(s6->sin6_port);
	return true;
}

bool bt_ipv6_is_global(const uint8_t addr[16])
{
	/* 2000::/3, less the documentation prefix 2001:db8::/32 (RFC 3849). */
	if ((addr[0] & 0xe0) != 0x20)
		return false;
	return !(addr[0] == 0x20 && addr[1] == 0x01 && addr[2] == 0x0d && addr[3] == 0xb8);
}

void bt_announce_reply_deinit(struct bt_announce_reply *r)
{
	free(r->failure);
	free(r->warning);
	free(r->peers);
	memset(r, 0, sizeof *r);
}

static void reply_init(struct bt_announce_reply *r)
{
	memset(r, 0, sizeof *r);
	r->interval = r->min_interval = r->complete = r->incomplete = -1;
}

static void url_encode(struct bt_buf *b, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			bt_buf_addc(b, (char)c);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			bt_buf_add(b, e, 3);
		}
	}
}

static const char *const event_names[] = {NULL, "completed", "started", "stopped"};

char *bt_tracker_http_url(const char *announce, const struct bt_announce_req *req)
{
	struct bt_buf b;
	bt_buf_init(&b);
	size_t base = strcspn(announce, "#");
	bt_buf_add(&b, announce, base);
	const char *q = memchr(announce, '?', base);
	if (!q)
		bt_buf_addc(&b, '?');
	else if (base > 0 && announce[base - 1] != '?' && announce[base - 1] != '&')
		bt_buf_addc(&b, '&');
	bt_buf_adds(&b, "info_hash=");
	url_encode(&b, req->info_hash, BT_HASH_LEN);
	bt_buf_adds(&b, "&peer_id=");
	url_encode(&b, req->peer_id, BT_PEER_ID_LEN);
	bt_buf_printf(&b,
		      "&port=%u&uploaded=%" PRId64 "&downloaded=%" PRId64 "&left=%" PRId64
		      "&compact=1",
		      req->port, req->uploaded, req->downloaded, req->left);
	if (req->event > BT_TRACKER_EVENT_NONE && req->event <= BT_TRACKER_EVENT_STOPPED)
		bt_buf_printf(&b, "&event=%s", event_names[req->event]);
	if (req->numwant >= 0)
		bt_buf_printf(&b, "&numwant=%" PRId32, req->numwant);
	bt_buf_printf(&b, "&key=%08" PRIx32, req->key);
	if (req->has_ipv6) {
		char text[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, req->ipv6, text, sizeof text);
		bt_buf_adds(&b, "&ipv6=");
		url_encode(&b, (const uint8_t *)text, strlen(text));
	}
	return (char *)bt_buf_steal(&b, NULL);
}

char *bt_tracker_scrape_url(const char *announce, const uint8_t info_hash[BT_HASH_LEN])
{
	size_t base = strcspn(announce, "#");
	size_t path_end = strcspn(announce, "?#");
	const char *auth = strstr(announce, "://");
	const char *path = auth && (size_t)(auth - announce) < path_end
				   ? memchr(auth + 3, '/', path_end - (size_t)(auth + 3 - announce))
				   : NULL;
	if (!path)
		return NULL; /* no path at all: nothing named "announce" to replace */
	const char *last = path;
	for (const char *p = path; p < announce + path_end; p++)
		if (*p == '/')
			last = p;
	static const char word[] = "announce";
	if ((size_t)(announce + path_end - (last + 1)) < sizeof word - 1 ||
	    memcmp(last + 1, word, sizeof word - 1) != 0)
		return NULL;
	struct bt_buf b;
	bt_buf_init(&b);
	bt_buf_add(&b, announce, (size_t)(last + 1 - announce));
	bt_buf_adds(&b, "scrape");
	const char *rest = last + sizeof word;
	bt_buf_add(&b, rest, (size_t)(announce + base - rest));
	if (path_end == base)
		bt_buf_addc(&b, '?');
	else if (announce[base - 1] != '?' && announce[base - 1] != '&')
		bt_buf_addc(&b, '&');
	bt_buf_adds(&b, "info_hash=");
	url_encode(&b, info_hash, BT_HASH_LEN);
	return (char *)bt_buf_steal(&b, NULL);
}

static void add_peer(struct bt_announce_reply *r, size_t *cap, const struct bt_peer_addr *a)
{
	if (r->peer_count == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		r->peers = bt_xreallocarray(r->peers, *cap, sizeof *r->peers);
	}
	r->peers[r->peer_count++] = *a;
}

/* Adds entries of 6 (IPv4) or 18 (IPv6) bytes: address, then port, in network order. */
static void add_compact(struct bt_announce_reply *r, size_t *cap, const uint8_t *p, size_t n,
			int family)
{
	size_t alen = family == 6 ? 16 : 4, step = alen + 2;
	for (; n >= step; p += step, n -= step) {
		struct bt_peer_addr a = {.family = (uint8_t)family};
		memcpy(a.addr, p, alen);
		a.port = bt_load_be16(p + alen);
		if (a.port == 0)
			r->bad_peers++;
		else
			add_peer(r, cap, &a);
	}
	if (n)
		r->bad_peers++;
}

static bool parse_dict_peer(const struct bt_benc_node *d, struct bt_peer_addr *a)
{
	const struct bt_benc_node *ip = bt_benc_dict_get(d, "ip");
	const struct bt_benc_node *port = bt_benc_dict_get(d, "port");
	int64_t pv;
	if (!ip || ip->type != BT_BENC_STR || ip->str_len >= INET6_ADDRSTRLEN ||
	    memchr(ip->str, '\0', ip->str_len) || !port || bt_benc_int(port, &pv) || pv <= 0 ||
	    pv > 65535)
		return false;
	char host[INET6_ADDRSTRLEN];
	memcpy(host, ip->str, ip->str_len);
	host[ip->str_len] = '\0';
	a->port = (uint16_t)pv;
	if (inet_pton(AF_INET, host, a->addr) == 1) {
		a->family = 4;
		return true;
	}
	if (inet_pton(AF_INET6, host, a->addr) == 1) {
		a->family = 6;
		return true;
	}
	return false; /* a host name, or garbage: we do not resolve names from trackers */
}

static int64_t opt_int(const struct bt_benc_node *d, const char *key)
{
	int64_t v;
	if (bt_benc_int(bt_benc_dict_get(d, key), &v) || v < 0)
		return -1;
	return v;
}

static char *opt_str(const struct bt_benc_node *d, const char *key)
{
	const struct bt_benc_node *v = bt_benc_dict_get(d, key);
	if (!v || v->type != BT_BENC_STR)
		return NULL;
	return bt_xstrndup((const char *)v->str, v->str_len);
}

int bt_tracker_parse_http(const uint8_t *body, size_t len, struct bt_announce_reply *reply,
			  struct bt_err *err)
{
	reply_init(reply);
	struct bt_benc_limits lim = {.max_depth = 16, .max_nodes = (size_t)1 << 20};
	struct bt_benc_doc doc;
	struct bt_err perr;
	size_t used;
	/* Some trackers end the body with a newline: bytes after the dictionary are ignored. */
	if (bt_benc_parse(&doc, body, len, &lim, &used, &perr) != BT_BENC_OK)
		return bt_err_set(err, -EINVAL, "reply is not bencoded: %s", perr.msg);
	const struct bt_benc_node *root = bt_benc_root(&doc);
	int rc = 0;
	if (root->type != BT_BENC_DICT) {
		rc = bt_err_set(err, -EINVAL, "reply is not a bencoded dictionary");
		goto out;
	}
	if ((reply->failure = opt_str(root, "failure reason")))
		goto out;
	reply->warning = opt_str(root, "warning message");
	reply->interval = opt_int(root, "interval");
	reply->min_interval = opt_int(root, "min interval");
	reply->complete = opt_int(root, "complete");
	reply->incomplete = opt_int(root, "incomplete");

	size_t cap = 0;
	const struct bt_benc_node *peers = bt_benc_dict_get(root, "peers");
	if (peers && peers->type == BT_BENC_STR) {
		add_compact(reply, &cap, peers->str, peers->str_len, 4);
	} else if (peers && peers->type == BT_BENC_LIST) {
		const struct bt_benc_node *e = bt_benc_first(peers);
		for (uint32_t i = 0; i < peers->count; i++, e = bt_benc_skip(e)) {
			struct bt_peer_addr a;
			if (e->type == BT_BENC_DICT && parse_dict_peer(e, &a))
				add_peer(reply, &cap, &a);
			else
				reply->bad_peers++;
		}
	} else if (peers) {
		rc = bt_err_set(err, -EINVAL, "'peers' is neither a string nor a list");
		goto out;
	}
	const struct bt_benc_node *peers6 = bt_benc_dict_get(root, "peers6");
	if (peers6 && peers6->type == BT_BENC_STR)
		add_compact(reply, &cap, peers6->str, peers6->str_len, 6);
	if (!peers && !peers6)
		rc = bt_err_set(err, -EINVAL, "reply has neither 'failure reason' nor 'peers'");
out:
	bt_benc_doc_deinit(&doc);
	if (rc)
		bt_announce_reply_deinit(reply);
	return rc;
}

void bt_scrape_reply_deinit(struct bt_scrape_reply *r)
{
	free(r->failure);
	memset(r, 0, sizeof *r);
	r->complete = r->incomplete = r->downloaded = -1;
}

static int scrape_count(const struct bt_benc_node *d, const char *key, int64_t *out,
			struct bt_err *err)
{
	const struct bt_benc_node *v = bt_benc_dict_get(d, key);
	if (!v)
		return bt_err_set(err, -EINVAL, "the entry for this torrent has no '%s'", key);
	if (bt_benc_int(v, out) || *out < 0)
		return bt_err_set(err, -EINVAL, "'%s' is not a non-negative integer", key);
	return 0;
}

int bt_tracker_parse_scrape(const uint8_t *body, size_t len, const uint8_t info_hash[BT_HASH_LEN],
			    struct bt_scrape_reply *reply, struct bt_err *err)
{
	memset(reply, 0, sizeof *reply);
	reply->complete = reply->incomplete = reply->downloaded = -1;
	struct bt_benc_limits lim = {.max_depth = 16, .max_nodes = (size_t)1 << 20};
	struct bt_benc_doc doc;
	struct bt_err perr;
	size_t used;
	if (bt_benc_parse(&doc, body, len, &lim, &used, &perr) != BT_BENC_OK)
		return bt_err_set(err, -EINVAL, "scrape reply is not bencoded: %s", perr.msg);
	const struct bt_benc_node *root = bt_benc_root(&doc);
	const struct bt_benc_node *files, *entry = NULL;
	int rc = 0;
	if (root->type != BT_BENC_DICT) {
		rc = bt_err_set(err, -EINVAL, "scrape reply is not a bencoded dictionary");
		goto out;
	}
	if ((reply->failure = opt_str(root, "failure reason")))
		goto out;
	files = bt_benc_dict_get(root, "files");
	if (!files || files->type != BT_BENC_DICT) {
		rc = bt_err_set(err, -EINVAL, "scrape reply has no 'files' dictionary");
		goto out;
	}
	/* Keys are raw 20-byte hashes (NULs allowed), so the lookup compares lengths and bytes. */
	const struct bt_benc_node *k = bt_benc_first(files);
	for (uint32_t i = 0; i < files->count && !entry; i++) {
		const struct bt_benc_node *v = bt_benc_skip(k);
		if (k->str_len == BT_HASH_LEN && memcmp(k->str, info_hash, BT_HASH_LEN) == 0)
			entry = v;
		k = bt_benc_skip(v);
	}
	if (!entry) {
		rc = bt_err_set(err, -EINVAL, "scrape reply does not list this torrent");
		goto out;
	}
	if (entry->type != BT_BENC_DICT) {
		rc = bt_err_set(err, -EINVAL, "scrape entry for this torrent is not a dictionary");
		goto out;
	}
	if ((rc = scrape_count(entry, "complete", &reply->complete, err)) ||
	    (rc = scrape_count(entry, "incomplete", &reply->incomplete, err)) ||
	    (rc = scrape_count(entry, "downloaded", &reply->downloaded, err)))
		goto out;
out:
	bt_benc_doc_deinit(&doc);
	if (rc)
		bt_scrape_reply_deinit(reply);
	return rc;
}

void bt_udp_connect_request(uint8_t out[BT_UDP_CONNECT_LEN], uint32_t transaction_id)
{
	bt_store_be64(out, BT_UDP_PROTOCOL_ID);
	bt_store_be32(out + 8, BT_UDP_CONNECT);
	bt_store_be32(out + 12, transaction_id);
}

void bt_udp_announce_request(uint8_t out[BT_UDP_ANNOUNCE_LEN], uint64_t connection_id,
			     uint32_t transaction_id, const struct bt_announce_req *req)
{
	bt_store_be64(out, connection_id);
	bt_store_be32(out + 8, BT_UDP_ANNOUNCE);
	bt_store_be32(out + 12, transaction_id);
	memcpy(out + 16, req->info_hash, BT_HASH_LEN);
	memcpy(out + 36, req->peer_id, BT_PEER_ID_LEN);
	bt_store_be64(out + 56, (uint64_t)req->downloaded);
	bt_store_be64(out + 64, (uint64_t)req->left);
	bt_store_be64(out + 72, (uint64_t)req->uploaded);
	bt_store_be32(out + 80, (uint32_t)req->event);
	bt_store_be32(out + 84, 0); /* IP address: the sender's */
	bt_store_be32(out + 88, req->key);
	bt_store_be32(out + 92, (uint32_t)req->numwant);
	bt_store_be16(out + 96, req->port);
}

enum bt_udp_result bt_udp_parse_reply(const uint8_t *p, size_t n, uint32_t transaction_id,
				      enum bt_udp_action expected, bool ipv6,
				      uint64_t *connection_id_out, struct bt_announce_reply *reply)
{
	if (n < 8 || bt_load_be32(p + 4) != transaction_id)
		return BT_UDP_IGNORE;
	uint32_t action = bt_load_be32(p);
	if (action == BT_UDP_ERROR) {
		if (reply) {
			reply_init(reply);
			reply->failure = bt_xstrndup((const char *)p + 8, n - 8);
		}
		return BT_UDP_FAILED;
	}
	if (action != (uint32_t)expected)
		return BT_UDP_IGNORE;
	if (expected == BT_UDP_CONNECT) {
		if (n < 16)
			return BT_UDP_IGNORE;
		*connection_id_out = bt_load_be64(p + 8);
		return BT_UDP_OK;
	}
	if (expected != BT_UDP_ANNOUNCE || n < 20)
		return BT_UDP_IGNORE;
	reply_init(reply);
	reply->interval = bt_load_be32(p + 8);
	reply->incomplete = bt_load_be32(p + 12);
	reply->complete = bt_load_be32(p + 16);
	size_t cap = 0;
	add_compact(reply, &cap, p + 20, n - 20, ipv6 ? 6 : 4);
	return BT_UDP_OK;
}

void bt_udp_scrape_request(uint8_t out[BT_UDP_SCRAPE_LEN], uint64_t connection_id,
			   uint32_t transaction_id, const uint8_t info_hash[BT_HASH_LEN])
{
	bt_store_be64(out, connection_id);
	bt_store_be32(out + 8, BT_UDP_SCRAPE);
	bt_store_be32(out + 12, transaction_id);
	memcpy(out + 16, info_hash, BT_HASH_LEN);
}

enum bt_udp_result bt_udp_parse_scrape(const uint8_t *p, size_t n, uint32_t transaction_id,
				       struct bt_scrape_reply *reply)
{
	memset(reply, 0, sizeof *reply);
	reply->complete = reply->incomplete = reply->downloaded = -1;
	if (n < 8 || bt_load_be32(p + 4) != transaction_id)
		return BT_UDP_IGNORE;
	uint32_t action = bt_load_be32(p);
	if (action == BT_UDP_ERROR) {
		reply->failure = bt_xstrndup((const char *)p + 8, n - 8);
		return BT_UDP_FAILED;
	}
	if (action != BT_UDP_SCRAPE || n < 20)
		return BT_UDP_IGNORE;
	/* BEP 15 orders them seeders, completed, leechers. */
	reply->complete = bt_load_be32(p + 8);
	reply->downloaded = bt_load_be32(p + 12);
	reply->incomplete = bt_load_be32(p + 16);
	return BT_UDP_OK;
}
