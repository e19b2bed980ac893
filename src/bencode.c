#include "bt/bencode.h"

#include "bt/json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct open_container {
	uint32_t node;
	uint32_t children;
};

struct parser {
	const uint8_t *p;
	size_t len;
	size_t pos;
	struct bt_benc_doc *doc;
	size_t cap;
	size_t max_nodes;
	struct bt_err *err;
};

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Names a byte for an error message: 'x' when printable, else its hex value. */
static const char *describe_byte(uint8_t c, char buf[8])
{
	if (c >= 0x20 && c < 0x7f && c != '\'')
		snprintf(buf, 8, "'%c'", c);
	else
		snprintf(buf, 8, "0x%02x", c);
	return buf;
}

static enum bt_benc_result unexpected(struct parser *ps, size_t at)
{
	char b[8];
	bt_err_set(ps->err, -EINVAL, "unexpected %s at offset %zu", describe_byte(ps->p[at], b),
		   at);
	return BT_BENC_BAD;
}

static enum bt_benc_result end_of_input(struct parser *ps)
{
	bt_err_set(ps->err, -EINVAL, "unexpected end of input at offset %zu", ps->len);
	return BT_BENC_NEED_MORE;
}

static enum bt_benc_result bad(struct parser *ps, const char *what, size_t at)
{
	bt_err_set(ps->err, -EINVAL, "%s at offset %zu", what, at);
	return BT_BENC_BAD;
}

static struct bt_benc_node *add_node(struct parser *ps, enum bt_benc_type type, size_t at)
{
	struct bt_benc_doc *doc = ps->doc;
	if (doc->count >= ps->max_nodes) {
		bt_err_set(ps->err, -E2BIG, "more than %zu values at offset %zu", ps->max_nodes,
			   at);
		return NULL;
	}
	if (doc->count == ps->cap) {
		ps->cap = ps->cap ? ps->cap * 2 : 16;
		doc->nodes = bt_xreallocarray(doc->nodes, ps->cap, sizeof *doc->nodes);
	}
	struct bt_benc_node *n = &doc->nodes[doc->count++];
	memset(n, 0, sizeof *n);
	n->type = type;
	n->raw = ps->p + at;
	n->span = 1;
	return n;
}

/* Parses "i<digits>e" at ps->pos. */
static enum bt_benc_result parse_int(struct parser *ps)
{
	size_t start = ps->pos, j = start + 1;
	if (j < ps->len && ps->p[j] == '-')
		j++;
	size_t digits = j;
	while (j < ps->len && is_digit(ps->p[j])) {
		if (j == digits + 1 && ps->p[digits] == '0')
			return bad(ps, "leading zero in integer", start);
		j++;
	}
	if (j == ps->len)
		return end_of_input(ps);
	if (ps->p[j] != 'e')
		return unexpected(ps, j);
	if (j == digits)
		return bad(ps, "integer without digits", start);
	if (ps->p[start + 1] == '-' && ps->p[digits] == '0')
		return bad(ps, "negative zero", start);
	struct bt_benc_node *n = add_node(ps, BT_BENC_INT, start);
	if (!n)
		return BT_BENC_BAD;
	n->str = ps->p + start + 1;
	n->str_len = j - start - 1;
	n->raw_len = j + 1 - start;
	ps->pos = j + 1;
	return BT_BENC_OK;
}

/* Parses "<length>:<bytes>" at ps->pos, which holds a digit. */
static enum bt_benc_result parse_str(struct parser *ps)
{
	size_t start = ps->pos, j = start, slen = 0;
	while (j < ps->len && is_digit(ps->p[j])) {
		if (j == start + 1 && ps->p[start] == '0')
			return bad(ps, "leading zero in string length", start);
		unsigned d = ps->p[j] - '0';
		if (slen > (SIZE_MAX - d) / 10)
			return bad(ps, "string length too large", start);
		slen = slen * 10 + d;
		j++;
	}
	if (j == ps->len)
		return end_of_input(ps);
	if (ps->p[j] != ':')
		return unexpected(ps, j);
	j++;
	if (slen > ps->len - j) {
		bt_err_set(ps->err, -EINVAL,
			   "string of length %zu at offset %zu runs past the end of input", slen,
			   start);
		return BT_BENC_NEED_MORE;
	}
	struct bt_benc_node *n = add_node(ps, BT_BENC_STR, start);
	if (!n)
		return BT_BENC_BAD;
	n->str = ps->p + j;
	n->str_len = slen;
	n->raw_len = j + slen - start;
	ps->pos = j + slen;
	return BT_BENC_OK;
}

static int compare_key_nodes(const void *a, const void *b)
{
	const struct bt_benc_node *x = *(const struct bt_benc_node *const *)a;
	const struct bt_benc_node *y = *(const struct bt_benc_node *const *)b;
	size_t n = x->str_len < y->str_len ? x->str_len : y->str_len;
	int c = memcmp(x->str, y->str, n);
	if (c)
		return c;
	return x->str_len < y->str_len ? -1 : x->str_len > y->str_len;
}

/*
 * Two values under one key would let two readers of the same bytes (and the same info hash)
 * see different torrents, so a repeated key is an error. Sorted dicts (nearly all real ones)
 * are checked in one pass; others are sorted first.
 */
static bool has_duplicate_key(struct parser *ps, const struct bt_benc_node *d)
{
	const struct bt_benc_node **keys = bt_xreallocarray(NULL, d->count, sizeof *keys);
	const struct bt_benc_node *k = d + 1;
	bool sorted = true;
	for (uint32_t i = 0; i < d->count; i++, k = bt_benc_skip(k + 1)) {
		keys[i] = k;
		if (i && compare_key_nodes(&keys[i - 1], &keys[i]) >= 0)
			sorted = false;
	}
	const struct bt_benc_node *dup = NULL;
	if (!sorted) {
		qsort(keys, d->count, sizeof *keys, compare_key_nodes);
		for (uint32_t i = 1; i < d->count && !dup; i++)
			if (compare_key_nodes(&keys[i - 1], &keys[i]) == 0)
				dup = keys[i - 1]->raw < keys[i]->raw ? keys[i] : keys[i - 1];
	}
	free(keys);
	if (dup)
		bt_err_set(ps->err, -EINVAL, "duplicate dictionary key '%.*s' at offset %zu",
			   (int)(dup->str_len > 64 ? 64 : dup->str_len), (const char *)dup->str,
			   (size_t)(dup->raw - ps->p));
	return dup != NULL;
}

static enum bt_benc_result parse_value(struct parser *ps, struct open_container *stack,
				       unsigned max_depth)
{
	unsigned depth = 0;
	for (;;) {
		if (ps->pos == ps->len)
			return end_of_input(ps);
		uint8_t c = ps->p[ps->pos];
		struct open_container *top = depth ? &stack[depth - 1] : NULL;
		bool in_dict = top && ps->doc->nodes[top->node].type == BT_BENC_DICT;

		if (top && c == 'e') {
			struct bt_benc_node *n = &ps->doc->nodes[top->node];
			if (in_dict && top->children % 2)
				return bad(ps, "dictionary key without a value", ps->pos);
			n->count = in_dict ? top->children / 2 : top->children;
			n->span = (uint32_t)(ps->doc->count - top->node);
			n->raw_len = (size_t)(ps->p + ps->pos + 1 - n->raw);
			if (in_dict && n->count > 1 && has_duplicate_key(ps, n))
				return BT_BENC_BAD;
			ps->pos++;
			if (--depth == 0)
				return BT_BENC_OK;
			stack[depth - 1].children++;
			continue;
		}
		if (in_dict && top->children % 2 == 0 && !is_digit(c)) {
			char b[8];
			bt_err_set(ps->err, -EINVAL,
				   "dictionary key is not a string: unexpected %s at offset %zu",
				   describe_byte(c, b), ps->pos);
			return BT_BENC_BAD;
		}

		enum bt_benc_result r;
		if (c == 'l' || c == 'd') {
			if (depth == max_depth) {
				bt_err_set(ps->err, -E2BIG, "nesting deeper than %u at offset %zu",
					   max_depth, ps->pos);
				return BT_BENC_BAD;
			}
			size_t idx = ps->doc->count;
			if (!add_node(ps, c == 'l' ? BT_BENC_LIST : BT_BENC_DICT, ps->pos))
				return BT_BENC_BAD;
			stack[depth].node = (uint32_t)idx;
			stack[depth].children = 0;
			depth++;
			ps->pos++;
			continue;
		} else if (c == 'i') {
			r = parse_int(ps);
		} else if (is_digit(c)) {
			r = parse_str(ps);
		} else {
			return unexpected(ps, ps->pos);
		}
		if (r != BT_BENC_OK)
			return r;
		if (depth == 0)
			return BT_BENC_OK;
		stack[depth - 1].children++;
	}
}

enum bt_benc_result bt_benc_parse(struct bt_benc_doc *doc, const uint8_t *p, size_t len,
				  const struct bt_benc_limits *limits, size_t *consumed_out,
				  struct bt_err *err)
{
	unsigned max_depth = limits ? limits->max_depth : BT_BENC_DEFAULT_DEPTH;
	size_t max_nodes = limits ? limits->max_nodes : BT_BENC_DEFAULT_NODES;
	if (max_depth > BT_BENC_DEPTH_CAP)
		max_depth = BT_BENC_DEPTH_CAP;
	if (max_nodes > UINT32_MAX)
		max_nodes = UINT32_MAX;

	doc->nodes = NULL;
	doc->count = 0;
	struct parser ps = {
		.p = p,
		.len = len,
		.doc = doc,
		.max_nodes = max_nodes,
		.err = err,
	};
	struct open_container *stack = bt_xmalloc(sizeof *stack * (max_depth + 1));
	enum bt_benc_result r = parse_value(&ps, stack, max_depth);
	free(stack);

	if (r == BT_BENC_OK && !consumed_out && ps.pos != len)
		r = bad(&ps, "trailing data after the value", ps.pos);
	if (r != BT_BENC_OK) {
		bt_benc_doc_deinit(doc);
		return r;
	}
	if (consumed_out)
		*consumed_out = ps.pos;
	return BT_BENC_OK;
}

void bt_benc_doc_deinit(struct bt_benc_doc *doc)
{
	free(doc->nodes);
	doc->nodes = NULL;
	doc->count = 0;
}

const struct bt_benc_node *bt_benc_dict_get(const struct bt_benc_node *d, const char *key)
{
	if (!d || d->type != BT_BENC_DICT)
		return NULL;
	size_t n = strlen(key);
	const struct bt_benc_node *k = bt_benc_first(d);
	for (uint32_t i = 0; i < d->count; i++) {
		const struct bt_benc_node *v = k + 1;
		if (k->str_len == n && memcmp(k->str, key, n) == 0)
			return v;
		k = bt_benc_skip(v);
	}
	return NULL;
}

const struct bt_benc_node *bt_benc_list_at(const struct bt_benc_node *l, size_t i)
{
	if (!l || l->type != BT_BENC_LIST || i >= l->count)
		return NULL;
	const struct bt_benc_node *e = bt_benc_first(l);
	while (i--)
		e = bt_benc_skip(e);
	return e;
}

int bt_benc_int(const struct bt_benc_node *n, int64_t *out)
{
	if (!n || n->type != BT_BENC_INT)
		return -EINVAL;
	bool neg = n->str[0] == '-';
	uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
	for (size_t i = neg; i < n->str_len; i++) {
		unsigned d = n->str[i] - '0';
		if (v > (limit - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

bool bt_benc_str_eq(const struct bt_benc_node *n, const char *s)
{
	size_t sl = strlen(s);
	return n && n->type == BT_BENC_STR && n->str_len == sl && memcmp(n->str, s, sl) == 0;
}

void bt_benc_put_int(struct bt_buf *out, int64_t v)
{
	bt_buf_printf(out, "i%" PRId64 "e", v);
}

void bt_benc_put_str(struct bt_buf *out, const void *p, size_t n)
{
	bt_buf_printf(out, "%zu:", n);
	bt_buf_add(out, p, n);
}

void bt_benc_put_cstr(struct bt_buf *out, const char *s)
{
	bt_benc_put_str(out, s, strlen(s));
}

void bt_benc_begin_list(struct bt_buf *out)
{
	bt_buf_addc(out, 'l');
}

void bt_benc_begin_dict(struct bt_buf *out)
{
	bt_buf_addc(out, 'd');
}

void bt_benc_end(struct bt_buf *out)
{
	bt_buf_addc(out, 'e');
}

struct pair {
	const struct bt_benc_node *key;
	size_t order;
};

static int compare_keys(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	size_t n = x->key->str_len < y->key->str_len ? x->key->str_len : y->key->str_len;
	int c = memcmp(x->key->str, y->key->str, n);
	if (c)
		return c;
	if (x->key->str_len != y->key->str_len)
		return x->key->str_len < y->key->str_len ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Recursion depth is bounded by the parser's depth cap. */
void bt_benc_encode(struct bt_buf *out, const struct bt_benc_node *n)
{
	switch (n->type) {
	case BT_BENC_INT:
	case BT_BENC_STR:
		bt_buf_add(out, n->raw, n->raw_len);
		return;
	case BT_BENC_LIST: {
		bt_benc_begin_list(out);
		const struct bt_benc_node *e = bt_benc_first(n);
		for (uint32_t i = 0; i < n->count; i++, e = bt_benc_skip(e))
			bt_benc_encode(out, e);
		bt_benc_end(out);
		return;
	}
	case BT_BENC_DICT: {
		struct pair *pairs = bt_xreallocarray(NULL, n->count, sizeof *pairs);
		const struct bt_benc_node *k = bt_benc_first(n);
		for (uint32_t i = 0; i < n->count; i++, k = bt_benc_skip(k + 1))
			pairs[i] = (struct pair){.key = k, .order = i};
		qsort(pairs, n->count, sizeof *pairs, compare_keys);
		bt_benc_begin_dict(out);
		for (uint32_t i = 0; i < n->count; i++) {
			bt_buf_add(out, pairs[i].key->raw, pairs[i].key->raw_len);
			bt_benc_encode(out, pairs[i].key + 1);
		}
		bt_benc_end(out);
		free(pairs);
		return;
	}
	}
}

void bt_benc_to_json(struct bt_buf *out, const struct bt_benc_node *n)
{
	switch (n->type) {
	case BT_BENC_INT:
		bt_buf_add(out, n->str, n->str_len);
		return;
	case BT_BENC_STR:
		bt_json_put_bytes(out, n->str, n->str_len);
		return;
	case BT_BENC_LIST:
	case BT_BENC_DICT: {
		bool dict = n->type == BT_BENC_DICT;
		bt_buf_addc(out, dict ? '{' : '[');
		const struct bt_benc_node *e = bt_benc_first(n);
		uint32_t children = dict ? n->count * 2 : n->count;
		for (uint32_t i = 0; i < children; i++, e = bt_benc_skip(e)) {
			if (i)
				bt_buf_addc(out, dict && i % 2 ? ':' : ',');
			bt_benc_to_json(out, e);
		}
		bt_buf_addc(out, dict ? '}' : ']');
		return;
	}
	}
}
