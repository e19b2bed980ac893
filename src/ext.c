#include "bt/ext.h"

#include "bt/bencode.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static const struct bt_benc_limits ext_limits = {
	.max_depth = BT_EXT_MAX_DEPTH,
	/* Every value takes at least two bytes, so the payload cap bounds the nodes already. */
	.max_nodes = BT_EXT_MAX_HANDSHAKE,
};

/* An integer value for key in lo..hi, or false (absent, not an integer, out of range). */
static bool int_in(const struct bt_benc_node *d, const char *key, int64_t lo, int64_t hi,
		   int64_t *out)
{
	const struct bt_benc_node *v = bt_benc_dict_get(d, key);
	int64_t x;
	if (!v || v->type != BT_BENC_INT || bt_benc_int(v, &x) || x < lo || x > hi)
		return false;
	*out = x;
	return true;
}

/*
 * The version string ends up in logs and on the terminal: only printable ASCII is kept, so no
 * peer can send escape sequences or bidi tricks through it.
 */
static void copy_version(char out[64], const struct bt_benc_node *v)
{
	size_t n = 0;
	if (v && v->type == BT_BENC_STR)
		for (; n < v->str_len && n < 63; n++)
			out[n] = v->str[n] >= 0x20 && v->str[n] < 0x7f ? (char)v->str[n] : '?';
	out[n] = '\0';
}

int bt_ext_handshake_parse(struct bt_ext_handshake *out, const uint8_t *p, size_t len,
			   struct bt_err *err)
{
	memset(out, 0, sizeof *out);
	if (len > BT_EXT_MAX_HANDSHAKE)
		return bt_err_set(err, -EMSGSIZE,
				  "extension handshake: %zu bytes, more than the limit of %d", len,
				  BT_EXT_MAX_HANDSHAKE);
	struct bt_benc_doc doc;
	struct bt_err perr;
	enum bt_benc_result r = bt_benc_parse(&doc, p, len, &ext_limits, NULL, &perr);
	if (r != BT_BENC_OK)
		return bt_err_set(err, -EINVAL, "extension handshake: %s",
				  r == BT_BENC_NEED_MORE ? "truncated bencode" : perr.msg);
	const struct bt_benc_node *root = bt_benc_root(&doc);
	if (root->type != BT_BENC_DICT) {
		bt_benc_doc_deinit(&doc);
		return bt_err_set(err, -EINVAL, "extension handshake: not a dictionary");
	}
	int64_t x;
	const struct bt_benc_node *m = bt_benc_dict_get(root, "m");
	if (m && m->type == BT_BENC_DICT) {
		if (int_in(m, "ut_metadata", 0, 255, &x))
			out->ut_metadata = (uint8_t)x;
		if (int_in(m, "ut_pex", 0, 255, &x))
			out->ut_pex = (uint8_t)x;
	}
	if (int_in(root, "metadata_size", 1, BT_METADATA_MAX_SIZE, &x))
		out->metadata_size = x;
	if (int_in(root, "p", 1, UINT16_MAX, &x))
		out->port = (uint16_t)x;
	if (int_in(root, "reqq", 1, UINT32_MAX, &x))
		out->reqq = (uint32_t)x;
	if (int_in(root, "upload_only", INT64_MIN, INT64_MAX, &x))
		out->upload_only = x != 0;
	copy_version(out->version, bt_benc_dict_get(root, "v"));
	const struct bt_benc_node *ip = bt_benc_dict_get(root, "yourip");
	if (ip && ip->type == BT_BENC_STR && (ip->str_len == 4 || ip->str_len == 16)) {
		out->yourip.family = ip->str_len == 4 ? 4 : 6;
		memcpy(out->yourip.addr, ip->str, ip->str_len);
	}
	bt_benc_doc_deinit(&doc);
	return 0;
}

void bt_ext_handshake_encode(struct bt_buf *out, const struct bt_ext_handshake_out *ours)
{
	/* Keys in byte order, as canonical bencode wants. */
	bt_benc_begin_dict(out);
	bt_benc_put_cstr(out, "m");
	bt_benc_begin_dict(out);
	if (ours->ut_metadata) {
		bt_benc_put_cstr(out, "ut_metadata");
		bt_benc_put_int(out, BT_EXT_ID_UT_METADATA);
	}
	if (ours->ut_pex) {
		bt_benc_put_cstr(out, "ut_pex");
		bt_benc_put_int(out, BT_EXT_ID_UT_PEX);
	}
	bt_benc_end(out);
	if (ours->metadata_size > 0) {
		bt_benc_put_cstr(out, "metadata_size");
		bt_benc_put_int(out, ours->metadata_size);
	}
	if (ours->port) {
		bt_benc_put_cstr(out, "p");
		bt_benc_put_int(out, ours->port);
	}
	if (ours->reqq) {
		bt_benc_put_cstr(out, "reqq");
		bt_benc_put_int(out, ours->reqq);
	}
	if (ours->upload_only) {
		bt_benc_put_cstr(out, "upload_only");
		bt_benc_put_int(out, 1);
	}
	if (ours->version) {
		bt_benc_put_cstr(out, "v");
		bt_benc_put_cstr(out, ours->version);
	}
	struct bt_peer_addr a;
	if (ours->yourip && bt_peer_addr_from_sockaddr(ours->yourip, &a)) {
		bt_benc_put_cstr(out, "yourip");
		bt_benc_put_str(out, a.addr, a.family == 4 ? 4 : 16);
	}
	bt_benc_end(out);
}

int bt_ext_md_parse(struct bt_ext_md_msg *out, const uint8_t *p, size_t len, struct bt_err *err)
{
	memset(out, 0, sizeof *out);
	struct bt_benc_doc doc;
	struct bt_err perr;
	size_t used;
	enum bt_benc_result r = bt_benc_parse(&doc, p, len, &ext_limits, &used, &perr);
	if (r != BT_BENC_OK)
		return bt_err_set(err, -EINVAL, "ut_metadata: %s",
				  r == BT_BENC_NEED_MORE ? "truncated bencode" : perr.msg);
	const struct bt_benc_node *root = bt_benc_root(&doc);
	int rc = 0;
	int64_t type = 0, piece = 0, total = 0;
	/* No index past what the largest size allows: a piece number is never absurd below. */
	int64_t max_piece = BT_METADATA_MAX_SIZE / BT_METADATA_BLOCK - 1;
	if (root->type != BT_BENC_DICT)
		rc = bt_err_set(err, -EINVAL, "ut_metadata: not a dictionary");
	else if (!int_in(root, "msg_type", BT_EXT_MD_REQUEST, BT_EXT_MD_REJECT, &type))
		rc = bt_err_set(err, -EINVAL, "ut_metadata: msg_type missing or not 0, 1 or 2");
	else if (!int_in(root, "piece", 0, max_piece, &piece))
		rc = bt_err_set(err, -EINVAL, "ut_metadata: piece missing or not in 0..%" PRId64,
				max_piece);
	else if (type == BT_EXT_MD_DATA &&
		 !int_in(root, "total_size", 1, BT_METADATA_MAX_SIZE, &total))
		rc = bt_err_set(err, -EINVAL,
				"ut_metadata: data without a total_size in 1..%" PRId64,
				BT_METADATA_MAX_SIZE);
	else if (type == BT_EXT_MD_DATA && (len == used || len - used > BT_METADATA_BLOCK))
		rc = bt_err_set(err, -EINVAL, "ut_metadata: data block of %zu bytes (1 to %d)",
				len - used, BT_METADATA_BLOCK);
	else if (type != BT_EXT_MD_DATA && len != used)
		rc = bt_err_set(err, -EINVAL, "ut_metadata: %zu bytes after a %s", len - used,
				type == BT_EXT_MD_REQUEST ? "request" : "reject");
	bt_benc_doc_deinit(&doc);
	if (rc)
		return rc;
	out->type = (int)type;
	out->piece = (uint32_t)piece;
	if (type == BT_EXT_MD_DATA) {
		out->total_size = total;
		out->data = p + used;
		out->data_len = len - used;
	}
	return 0;
}

void bt_ext_md_encode(struct bt_buf *out, int type, uint32_t piece, int64_t total_size,
		      const uint8_t *data, size_t len)
{
	bt_benc_begin_dict(out);
	bt_benc_put_cstr(out, "msg_type");
	bt_benc_put_int(out, type);
	bt_benc_put_cstr(out, "piece");
	bt_benc_put_int(out, piece);
	if (type == BT_EXT_MD_DATA) {
		bt_benc_put_cstr(out, "total_size");
		bt_benc_put_int(out, total_size);
	}
	bt_benc_end(out);
	if (type == BT_EXT_MD_DATA && len)
		bt_buf_add(out, data, len);
}
