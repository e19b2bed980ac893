#include "bt/krpc.h"

#include "bt/bencode.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/*
 * A KRPC message nests three deep (message, arguments, `values` list); extensions we ignore may
 * nest a little more, but nothing legitimate comes near these limits, and they keep the tape of a
 * hostile 8 KiB datagram small.
 */
static const struct bt_benc_limits krpc_limits = {.max_depth = 16, .max_nodes = 1024};

/*
 * Looks up an optional key of the given type. Returns 0 with *out NULL when the key is absent,
 * or -EINVAL naming the key ("a.port") when it is there with another type.
 */
static int get_typed(const struct bt_benc_node *d, const char *prefix, const char *key,
		     enum bt_benc_type type, const struct bt_benc_node **out, struct bt_err *err)
{
	static const char *const names[] = {
		[BT_BENC_INT] = "an integer",
		[BT_BENC_STR] = "a string",
		[BT_BENC_LIST] = "a list",
		[BT_BENC_DICT] = "a dictionary",
	};
	const struct bt_benc_node *v = bt_benc_dict_get(d, key);
	*out = NULL;
	if (!v)
		return 0;
	if (v->type != type)
		return bt_err_set(err, -EINVAL, "krpc: %s%s is not %s", prefix, key, names[type]);
	*out = v;
	return 0;
}

/* Like get_typed, but an absent key is an error too. */
static int get_required(const struct bt_benc_node *d, const char *prefix, const char *key,
			enum bt_benc_type type, const struct bt_benc_node **out, struct bt_err *err)
{
	int rc = get_typed(d, prefix, key, type, out, err);
	if (rc == 0 && !*out)
		return bt_err_set(err, -EINVAL, "krpc: missing %s%s", prefix, key);
	return rc;
}

/* A 20-byte id or hash. With required false, an absent key leaves *has false. */
static int get_hash(const struct bt_benc_node *d, const char *prefix, const char *key,
		    bool required, bool *has, uint8_t out[BT_HASH_LEN], struct bt_err *err)
{
	const struct bt_benc_node *v;
	int rc = required ? get_required(d, prefix, key, BT_BENC_STR, &v, err)
			  : get_typed(d, prefix, key, BT_BENC_STR, &v, err);
	if (rc < 0 || !v)
		return rc;
	if (v->str_len != BT_HASH_LEN)
		return bt_err_set(err, -EINVAL, "krpc: %s%s is %zu bytes", prefix, key, v->str_len);
	memcpy(out, v->str, BT_HASH_LEN);
	*has = true;
	return 0;
}

/* An unknown method's target or info_hash is taken only when it is a 20-byte string. */
static void take_hash_if_valid(const struct bt_benc_node *d, const char *key, bool *has,
			       uint8_t out[BT_HASH_LEN])
{
	const struct bt_benc_node *v = bt_benc_dict_get(d, key);
	if (v && v->type == BT_BENC_STR && v->str_len == BT_HASH_LEN) {
		memcpy(out, v->str, BT_HASH_LEN);
		*has = true;
	}
}

static int get_token(const struct bt_benc_node *d, const char *prefix, bool required,
		     struct bt_krpc_msg *out, struct bt_err *err)
{
	const struct bt_benc_node *v;
	int rc = required ? get_required(d, prefix, "token", BT_BENC_STR, &v, err)
			  : get_typed(d, prefix, "token", BT_BENC_STR, &v, err);
	if (rc < 0 || !v)
		return rc;
	if (v->str_len > BT_KRPC_MAX_TOKEN)
		return bt_err_set(err, -EINVAL, "krpc: %stoken is %zu bytes (limit %d)", prefix,
				  v->str_len, BT_KRPC_MAX_TOKEN);
	memcpy(out->token, v->str, v->str_len);
	out->token_len = v->str_len;
	return 0;
}

/* Reads a compact address: 4 or 16 bytes of address, then a big-endian port. */
static void take_addr(struct bt_peer_addr *a, const uint8_t *p, int family)
{
	size_t alen = family == 6 ? 16 : 4;
	memset(a, 0, sizeof *a);
	a->family = (uint8_t)family;
	memcpy(a->addr, p, alen);
	a->port = bt_load_be16(p + alen);
}

static int get_nodes(const struct bt_benc_node *r, const char *key, int family,
		     struct bt_krpc_node *nodes, size_t *count, struct bt_err *err)
{
	size_t step = family == 6 ? BT_KRPC_NODE6_LEN : BT_KRPC_NODE4_LEN;
	const struct bt_benc_node *v;
	int rc = get_typed(r, "r.", key, BT_BENC_STR, &v, err);
	if (rc < 0 || !v)
		return rc;
	if (v->str_len % step)
		return bt_err_set(err, -EINVAL, "krpc: r.%s is %zu bytes, not a multiple of %zu",
				  key, v->str_len, step);
	for (size_t off = 0; off < v->str_len && *count < BT_KRPC_MAX_NODES; off += step) {
		struct bt_krpc_node *n = &nodes[*count];
		take_addr(&n->addr, v->str + off + BT_HASH_LEN, family);
		/* A node at port 0 cannot be contacted: skip it, as libtorrent does. */
		if (n->addr.port == 0)
			continue;
		memcpy(n->id, v->str + off, BT_HASH_LEN);
		(*count)++;
	}
	return 0;
}

static int get_values(const struct bt_benc_node *r, struct bt_krpc_msg *out, struct bt_err *err)
{
	const struct bt_benc_node *l;
	int rc = get_typed(r, "r.", "values", BT_BENC_LIST, &l, err);
	if (rc < 0 || !l)
		return rc;
	const struct bt_benc_node *e = bt_benc_first(l);
	for (uint32_t i = 0; i < l->count && out->value_count < BT_KRPC_MAX_VALUES;
	     i++, e = bt_benc_skip(e)) {
		/* One bad entry says nothing about the others: skip it and keep reading. */
		if (e->type != BT_BENC_STR || (e->str_len != 6 && e->str_len != 18))
			continue;
		struct bt_peer_addr *a = &out->values[out->value_count];
		take_addr(a, e->str, e->str_len == 18 ? 6 : 4);
		if (a->port == 0)
			continue;
		out->value_count++;
	}
	return 0;
}

static int get_want(const struct bt_benc_node *a, struct bt_krpc_msg *out, struct bt_err *err)
{
	const struct bt_benc_node *l;
	int rc = get_typed(a, "a.", "want", BT_BENC_LIST, &l, err);
	if (rc < 0 || !l)
		return rc;
	const struct bt_benc_node *e = bt_benc_first(l);
	for (uint32_t i = 0; i < l->count; i++, e = bt_benc_skip(e)) {
		if (bt_benc_str_eq(e, "n4"))
			out->want_n4 = true;
		else if (bt_benc_str_eq(e, "n6"))
			out->want_n6 = true;
	}
	return 0;
}

static int get_port(const struct bt_benc_node *a, struct bt_krpc_msg *out, struct bt_err *err)
{
	const struct bt_benc_node *v;
	int64_t n = 0;
	int rc = get_typed(a, "a.", "implied_port", BT_BENC_INT, &v, err);
	if (rc < 0)
		return rc;
	if (v && bt_benc_int(v, &n) == 0 && n != 0)
		out->implied_port = true;
	/* With implied_port the source port counts, so `port` may be absent or 0 (BEP 5). */
	rc = out->implied_port ? get_typed(a, "a.", "port", BT_BENC_INT, &v, err)
			       : get_required(a, "a.", "port", BT_BENC_INT, &v, err);
	if (rc < 0 || !v)
		return rc;
	if (bt_benc_int(v, &n) < 0 || n < 0 || n > UINT16_MAX)
		return bt_err_set(err, -EINVAL, "krpc: a.port %.*s is out of range",
				  (int)v->str_len, (const char *)v->str);
	if (n == 0 && !out->implied_port)
		return bt_err_set(err, -EINVAL, "krpc: a.port is 0");
	out->port = (uint16_t)n;
	return 0;
}

static int parse_query(const struct bt_benc_node *root, struct bt_krpc_msg *out, struct bt_err *err)
{
	const struct bt_benc_node *q, *a;
	int rc = get_required(root, "", "q", BT_BENC_STR, &q, err);
	if (rc == 0)
		rc = get_required(root, "", "a", BT_BENC_DICT, &a, err);
	if (rc == 0)
		rc = get_hash(a, "a.", "id", true, &out->has_id, out->id, err);
	if (rc == 0)
		rc = get_want(a, out, err);
	if (rc < 0)
		return rc;
	if (bt_benc_str_eq(q, "ping")) {
		out->method = BT_KRPC_PING;
	} else if (bt_benc_str_eq(q, "find_node")) {
		out->method = BT_KRPC_FIND_NODE;
		rc = get_hash(a, "a.", "target", true, &out->has_target, out->target, err);
	} else if (bt_benc_str_eq(q, "get_peers")) {
		out->method = BT_KRPC_GET_PEERS;
		rc = get_hash(a, "a.", "info_hash", true, &out->has_info_hash, out->info_hash, err);
	} else if (bt_benc_str_eq(q, "announce_peer")) {
		out->method = BT_KRPC_ANNOUNCE_PEER;
		rc = get_hash(a, "a.", "info_hash", true, &out->has_info_hash, out->info_hash, err);
		if (rc == 0)
			rc = get_port(a, out, err);
		if (rc == 0)
			rc = get_token(a, "a.", true, out, err);
	} else {
		/*
		 * BEP 5 asks that an unknown method carrying a target be answered like
		 * find_node; what its keys mean is not ours to judge, so a malformed one is
		 * simply not taken.
		 */
		out->method = BT_KRPC_OTHER;
		take_hash_if_valid(a, "target", &out->has_target, out->target);
		take_hash_if_valid(a, "info_hash", &out->has_info_hash, out->info_hash);
	}
	return rc;
}

static int parse_response(const struct bt_benc_node *root, struct bt_krpc_msg *out,
			  struct bt_err *err)
{
	const struct bt_benc_node *r;
	int rc = get_required(root, "", "r", BT_BENC_DICT, &r, err);
	if (rc == 0)
		rc = get_hash(r, "r.", "id", true, &out->has_id, out->id, err);
	if (rc == 0)
		rc = get_nodes(r, "nodes", 4, out->nodes, &out->node_count, err);
	if (rc == 0)
		rc = get_nodes(r, "nodes6", 6, out->nodes6, &out->node6_count, err);
	if (rc == 0)
		rc = get_values(r, out, err);
	if (rc == 0)
		rc = get_token(r, "r.", false, out, err);
	return rc;
}

static int parse_error(const struct bt_benc_node *root, struct bt_krpc_msg *out, struct bt_err *err)
{
	const struct bt_benc_node *e;
	int rc = get_required(root, "", "e", BT_BENC_LIST, &e, err);
	if (rc < 0)
		return rc;
	const struct bt_benc_node *code = bt_benc_list_at(e, 0), *msg = bt_benc_list_at(e, 1);
	int64_t n;
	if (!code || !msg || code->type != BT_BENC_INT || msg->type != BT_BENC_STR)
		return bt_err_set(err, -EINVAL, "krpc: e is not [code, message]");
	if (bt_benc_int(code, &n) < 0 || n < INT_MIN || n > INT_MAX)
		return bt_err_set(err, -EINVAL, "krpc: e code %.*s is out of range",
				  (int)code->str_len, (const char *)code->str);
	out->error_code = (int)n;
	/* The message ends up in logs: keep it one printable line. */
	size_t len =
		msg->str_len < sizeof out->error_msg - 1 ? msg->str_len : sizeof out->error_msg - 1;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = msg->str[i];
		out->error_msg[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	out->error_msg[len] = '\0';
	return 0;
}

/* The keys every message has, and the optional ones any message may carry. */
static int parse_common(const struct bt_benc_node *root, struct bt_krpc_msg *out,
			struct bt_err *err)
{
	const struct bt_benc_node *y, *t, *ip, *ro;
	int rc = get_required(root, "", "y", BT_BENC_STR, &y, err);
	if (rc < 0)
		return rc;
	if (bt_benc_str_eq(y, "q"))
		out->type = BT_KRPC_QUERY;
	else if (bt_benc_str_eq(y, "r"))
		out->type = BT_KRPC_RESPONSE;
	else if (bt_benc_str_eq(y, "e"))
		out->type = BT_KRPC_ERROR;
	else
		return bt_err_set(err, -EINVAL, "krpc: y is not q, r or e");
	rc = get_required(root, "", "t", BT_BENC_STR, &t, err);
	if (rc < 0)
		return rc;
	if (t->str_len > BT_KRPC_MAX_TID)
		return bt_err_set(err, -EINVAL, "krpc: t is %zu bytes (limit %d)", t->str_len,
				  BT_KRPC_MAX_TID);
	memcpy(out->tid, t->str, t->str_len);
	out->tid_len = t->str_len;

	rc = get_typed(root, "", "ip", BT_BENC_STR, &ip, err);
	if (rc < 0)
		return rc;
	if (ip && (ip->str_len == 6 || ip->str_len == 18))
		take_addr(&out->ip, ip->str, ip->str_len == 18 ? 6 : 4);
	rc = get_typed(root, "", "ro", BT_BENC_INT, &ro, err);
	if (rc < 0)
		return rc;
	int64_t n;
	out->read_only = ro && bt_benc_int(ro, &n) == 0 && n == 1;
	return 0;
}

int bt_krpc_parse(struct bt_krpc_msg *out, const uint8_t *p, size_t len, struct bt_err *err)
{
	memset(out, 0, sizeof *out);
	out->method = BT_KRPC_OTHER;
	/* Judged before parsing, so a flood of 64 KiB datagrams costs nothing but this test. */
	if (len > BT_KRPC_MAX_DATAGRAM)
		return bt_err_set(err, -EINVAL, "krpc: datagram of %zu bytes (limit %d)", len,
				  BT_KRPC_MAX_DATAGRAM);
	if (!bt_krpc_is(p, len))
		return bt_err_set(err, -EINVAL, "krpc: not a bencoded dictionary");

	struct bt_benc_doc doc;
	struct bt_err berr = {{0}};
	enum bt_benc_result br = bt_benc_parse(&doc, p, len, &krpc_limits, NULL, &berr);
	if (br == BT_BENC_NEED_MORE)
		return bt_err_set(err, -EINVAL, "krpc: truncated after %zu bytes", len);
	if (br != BT_BENC_OK)
		return bt_err_set(err, -EINVAL, "krpc: bad bencode: %s", berr.msg);

	const struct bt_benc_node *root = bt_benc_root(&doc);
	/* The first byte was 'd', so the root is a dictionary. */
	int rc = parse_common(root, out, err);
	if (rc == 0 && out->type == BT_KRPC_QUERY)
		rc = parse_query(root, out, err);
	else if (rc == 0 && out->type == BT_KRPC_RESPONSE)
		rc = parse_response(root, out, err);
	else if (rc == 0)
		rc = parse_error(root, out, err);
	bt_benc_doc_deinit(&doc);

	if (rc < 0) {
		/* Keep only what lets the caller answer a malformed query with error 203. */
		enum bt_krpc_type type = out->type;
		uint8_t tid[BT_KRPC_MAX_TID];
		size_t tid_len = out->tid_len;
		memcpy(tid, out->tid, tid_len);
		memset(out, 0, sizeof *out);
		out->method = BT_KRPC_OTHER;
		out->type = type;
		memcpy(out->tid, tid, tid_len);
		out->tid_len = tid_len;
	}
	return rc;
}

bool bt_krpc_is(const uint8_t *p, size_t len)
{
	return len > 0 && p[0] == 'd';
}

static void put_compact(struct bt_buf *b, const struct bt_peer_addr *a)
{
	uint8_t port[2];
	bt_buf_add(b, a->addr, a->family == 6 ? 16 : 4);
	bt_store_be16(port, a->port);
	bt_buf_add(b, port, 2);
}

/* The keys after the body, in sorted order: t, v, y; then the message's end. */
static void put_tail(struct bt_buf *b, const uint8_t *tid, size_t tid_len, const char *y)
{
	bt_benc_put_cstr(b, "t");
	bt_benc_put_str(b, tid, tid_len);
	bt_benc_put_cstr(b, "v");
	bt_benc_put_cstr(b, BT_KRPC_VERSION);
	bt_benc_put_cstr(b, "y");
	bt_benc_put_cstr(b, y);
	bt_benc_end(b);
}

static void begin_query(struct bt_buf *b, const uint8_t id[BT_HASH_LEN])
{
	bt_benc_begin_dict(b);
	bt_benc_put_cstr(b, "a");
	bt_benc_begin_dict(b);
	bt_benc_put_cstr(b, "id");
	bt_benc_put_str(b, id, BT_HASH_LEN);
}

static void end_query(struct bt_buf *b, const char *method, const uint8_t *tid, size_t tid_len)
{
	bt_benc_end(b);
	bt_benc_put_cstr(b, "q");
	bt_benc_put_cstr(b, method);
	put_tail(b, tid, tid_len, "q");
}

static void put_want(struct bt_buf *b, bool want_n4, bool want_n6)
{
	if (!want_n4 && !want_n6)
		return;
	bt_benc_put_cstr(b, "want");
	bt_benc_begin_list(b);
	if (want_n4)
		bt_benc_put_cstr(b, "n4");
	if (want_n6)
		bt_benc_put_cstr(b, "n6");
	bt_benc_end(b);
}

void bt_krpc_put_ping(struct bt_buf *b, const uint8_t *tid, size_t tid_len,
		      const uint8_t id[BT_HASH_LEN])
{
	begin_query(b, id);
	end_query(b, "ping", tid, tid_len);
}

void bt_krpc_put_find_node(struct bt_buf *b, const uint8_t *tid, size_t tid_len,
			   const uint8_t id[BT_HASH_LEN], const uint8_t target[BT_HASH_LEN],
			   bool want_n4, bool want_n6)
{
	begin_query(b, id);
	bt_benc_put_cstr(b, "target");
	bt_benc_put_str(b, target, BT_HASH_LEN);
	put_want(b, want_n4, want_n6);
	end_query(b, "find_node", tid, tid_len);
}

void bt_krpc_put_get_peers(struct bt_buf *b, const uint8_t *tid, size_t tid_len,
			   const uint8_t id[BT_HASH_LEN], const uint8_t info_hash[BT_HASH_LEN],
			   bool want_n4, bool want_n6)
{
	begin_query(b, id);
	bt_benc_put_cstr(b, "info_hash");
	bt_benc_put_str(b, info_hash, BT_HASH_LEN);
	put_want(b, want_n4, want_n6);
	end_query(b, "get_peers", tid, tid_len);
}

void bt_krpc_put_announce_peer(struct bt_buf *b, const uint8_t *tid, size_t tid_len,
			       const uint8_t id[BT_HASH_LEN], const uint8_t info_hash[BT_HASH_LEN],
			       uint16_t port, bool implied_port, const uint8_t *token,
			       size_t token_len)
{
	begin_query(b, id);
	if (implied_port) {
		bt_benc_put_cstr(b, "implied_port");
		bt_benc_put_int(b, 1);
	}
	bt_benc_put_cstr(b, "info_hash");
	bt_benc_put_str(b, info_hash, BT_HASH_LEN);
	bt_benc_put_cstr(b, "port");
	bt_benc_put_int(b, port);
	bt_benc_put_cstr(b, "token");
	bt_benc_put_str(b, token, token_len);
	end_query(b, "announce_peer", tid, tid_len);
}

/* Writes `key` and one string of the nodes of the given family (the others are left out). */
static void put_nodes(struct bt_buf *b, const char *key, const struct bt_krpc_node *nodes,
		      size_t count, int family)
{
	size_t n = 0;
	for (size_t i = 0; i < count; i++)
		n += nodes[i].addr.family == family;
	if (n == 0)
		return;
	bt_benc_put_cstr(b, key);
	bt_buf_printf(b, "%zu:", n * (family == 6 ? BT_KRPC_NODE6_LEN : BT_KRPC_NODE4_LEN));
	for (size_t i = 0; i < count; i++) {
		if (nodes[i].addr.family != family)
			continue;
		bt_buf_add(b, nodes[i].id, BT_HASH_LEN);
		put_compact(b, &nodes[i].addr);
	}
}

void bt_krpc_put_reply(struct bt_buf *b, const uint8_t *tid, size_t tid_len,
		       const uint8_t id[BT_HASH_LEN], const struct bt_krpc_reply *r)
{
	static const struct bt_krpc_reply none;
	if (!r)
		r = &none;
	bt_benc_begin_dict(b);
	const struct bt_peer_addr *ip = r->requester_ip;
	if (ip && (ip->family == 4 || ip->family == 6)) {
		bt_benc_put_cstr(b, "ip");
		bt_buf_printf(b, "%d:", ip->family == 6 ? 18 : 6);
		put_compact(b, ip);
	}
	bt_benc_put_cstr(b, "r");
	bt_benc_begin_dict(b);
	bt_benc_put_cstr(b, "id");
	bt_benc_put_str(b, id, BT_HASH_LEN);
	put_nodes(b, "nodes", r->nodes, r->node_count, 4);
	put_nodes(b, "nodes6", r->nodes6, r->node6_count, 6);
	if (r->token) {
		bt_benc_put_cstr(b, "token");
		bt_benc_put_str(b, r->token, r->token_len);
	}
	if (r->values && r->value_count) {
		bt_benc_put_cstr(b, "values");
		bt_benc_begin_list(b);
		for (size_t i = 0; i < r->value_count; i++) {
			const struct bt_peer_addr *a = &r->values[i];
			if (a->family != 4 && a->family != 6)
				continue;
			bt_buf_printf(b, "%d:", a->family == 6 ? 18 : 6);
			put_compact(b, a);
		}
		bt_benc_end(b);
	}
	bt_benc_end(b);
	put_tail(b, tid, tid_len, "r");
}

void bt_krpc_put_error(struct bt_buf *b, const uint8_t *tid, size_t tid_len, int code,
		       const char *msg)
{
	bt_benc_begin_dict(b);
	bt_benc_put_cstr(b, "e");
	bt_benc_begin_list(b);
	bt_benc_put_int(b, code);
	bt_benc_put_cstr(b, msg ? msg : "");
	bt_benc_end(b);
	put_tail(b, tid, tid_len, "e");
}
