/*
 * bencode: the strict BEP 3 parser, a canonical encoder, and the JSON printer behind `decode`.
 *
 * The parser reads a whole value into a flat array of nodes in document order (a "tape"). Nodes
 * borrow from the input: the input must outlive the document. Every node records the raw bytes of
 * its value exactly as they appear, so a torrent's info hash is taken over the original bytes and
 * never over a re-encoding. A container's children follow it directly; `span` counts the nodes of
 * its whole subtree, so the next sibling is `node + node->span` and no pointers need fixing up.
 *
 * The grammar is strict: no leading zeros, no "-0", no empty integers, no negative or overlong
 * string lengths, string keys only, a value for every key, nothing after the root value. The
 * parser never recurses; nesting depth and node count are bounded by `struct bt_benc_limits`, and
 * the node array grows only with the input actually read, so hostile input of any size is safe.
 * Dictionary keys need not be sorted (real torrents have unsorted keys, and their info hash must
 * still come out right), but a key may not appear twice in one dictionary.
 */
#ifndef BT_BENCODE_H
#define BT_BENCODE_H

#include "bt/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bt_benc_type {
	BT_BENC_INT = 1,
	BT_BENC_STR,
	BT_BENC_LIST,
	BT_BENC_DICT,
};

struct bt_benc_node {
	const uint8_t *raw; /* the whole encoded value */
	size_t raw_len;
	const uint8_t *str; /* STR: the payload; INT: the digits as written, sign included */
	size_t str_len;
	uint32_t span;	/* nodes in this subtree, this one included */
	uint32_t count; /* LIST: elements; DICT: key/value pairs (2 * count child nodes) */
	enum bt_benc_type type;
};

struct bt_benc_doc {
	struct bt_benc_node *nodes; /* nodes[0] is the root */
	size_t count;
};

struct bt_benc_limits {
	unsigned max_depth; /* containers nested inside each other; at most BT_BENC_DEPTH_CAP */
	size_t max_nodes;   /* values in the whole document */
};

#define BT_BENC_DEPTH_CAP     1024
#define BT_BENC_DEFAULT_DEPTH 256
#define BT_BENC_DEFAULT_NODES ((size_t)1 << 22)

enum bt_benc_result {
	BT_BENC_OK = 0,
	BT_BENC_NEED_MORE, /* the input ends inside a value: a longer input may parse */
	BT_BENC_BAD,	   /* the input can never parse; err says what and at which offset */
};

/*
 * Parses one value from p[0..len). With consumed_out NULL, bytes after the value are an error;
 * otherwise they are allowed and *consumed_out is the value's length. limits may be NULL for the
 * defaults. On OK the caller owns doc (bt_benc_doc_deinit); otherwise doc is left empty and
 * err (if given) holds a message such as "unexpected 'x' at offset 7".
 */
enum bt_benc_result bt_benc_parse(struct bt_benc_doc *doc, const uint8_t *p, size_t len,
				  const struct bt_benc_limits *limits, size_t *consumed_out,
				  struct bt_err *err);
void bt_benc_doc_deinit(struct bt_benc_doc *doc);

static inline const struct bt_benc_node *bt_benc_root(const struct bt_benc_doc *doc)
{
	return doc->count ? &doc->nodes[0] : NULL;
}

/* The first child of a list or dict (for a dict: its first key), or NULL if it is empty. */
static inline const struct bt_benc_node *bt_benc_first(const struct bt_benc_node *n)
{
	return n->count ? n + 1 : NULL;
}

/* The node after n's subtree: its next sibling when the caller knows there is one. */
static inline const struct bt_benc_node *bt_benc_skip(const struct bt_benc_node *n)
{
	return n + n->span;
}

/* The value for key in dict d, or NULL if d is not a dict or has no such key. */
const struct bt_benc_node *bt_benc_dict_get(const struct bt_benc_node *d, const char *key);
/* The i-th element of list l, or NULL. Linear in i. */
const struct bt_benc_node *bt_benc_list_at(const struct bt_benc_node *l, size_t i);

/* Reads an INT node as int64. Returns 0, -EINVAL if n is not an INT, -ERANGE if it overflows. */
int bt_benc_int(const struct bt_benc_node *n, int64_t *out);
bool bt_benc_str_eq(const struct bt_benc_node *n, const char *s);

/* Canonical encoding (BEP 3): appended to out. Dict keys must be given in sorted order. */
void bt_benc_put_int(struct bt_buf *out, int64_t v);
void bt_benc_put_str(struct bt_buf *out, const void *p, size_t n);
void bt_benc_put_cstr(struct bt_buf *out, const char *s);
void bt_benc_begin_list(struct bt_buf *out);
void bt_benc_begin_dict(struct bt_buf *out);
void bt_benc_end(struct bt_buf *out);
/* Re-encodes a parsed value canonically (dict keys sorted). */
void bt_benc_encode(struct bt_buf *out, const struct bt_benc_node *n);

/*
 * Appends n as one line of JSON (no newline): integers exactly as written, lists as arrays,
 * dicts as objects in document order, byte strings as JSON strings (see bt_json_put_bytes for
 * the lossless rule for bytes that are not UTF-8).
 */
void bt_benc_to_json(struct bt_buf *out, const struct bt_benc_node *n);

#endif
