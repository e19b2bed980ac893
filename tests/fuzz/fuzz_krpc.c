/*
 * A DHT datagram is untrusted: parse arbitrary bytes, check that what was kept respects every
 * cap, then re-encode what parsed with our own encoders and check that it parses back to the
 * same message (so the parser and the encoders agree on everything the DHT core relies on).
 */
#include "bt/krpc.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_nodes(const struct bt_krpc_node *a, const struct bt_krpc_node *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(a[i].id, b[i].id, BT_HASH_LEN) != 0 ||
		    !bt_peer_addr_equal(&a[i].addr, &b[i].addr))
			return false;
	return true;
}

static bool same(const struct bt_krpc_msg *a, const struct bt_krpc_msg *b)
{
	if (a->type != b->type || a->method != b->method || a->tid_len != b->tid_len ||
	    memcmp(a->tid, b->tid, a->tid_len) != 0 || a->has_id != b->has_id ||
	    memcmp(a->id, b->id, BT_HASH_LEN) != 0 || a->has_target != b->has_target ||
	    memcmp(a->target, b->target, BT_HASH_LEN) != 0 ||
	    a->has_info_hash != b->has_info_hash ||
	    memcmp(a->info_hash, b->info_hash, BT_HASH_LEN) != 0 || a->port != b->port ||
	    a->implied_port != b->implied_port || a->token_len != b->token_len ||
	    memcmp(a->token, b->token, a->token_len) != 0 || a->want_n4 != b->want_n4 ||
	    a->want_n6 != b->want_n6 || a->node_count != b->node_count ||
	    a->node6_count != b->node6_count || a->value_count != b->value_count ||
	    a->error_code != b->error_code || strcmp(a->error_msg, b->error_msg) != 0)
		return false;
	if (!same_nodes(a->nodes, b->nodes, a->node_count) ||
	    !same_nodes(a->nodes6, b->nodes6, a->node6_count))
		return false;
	for (size_t i = 0; i < a->value_count; i++)
		if (!bt_peer_addr_equal(&a->values[i], &b->values[i]))
			return false;
	return a->type != BT_KRPC_RESPONSE || a->ip.family == b->ip.family;
}

static void reencode(struct bt_buf *b, const struct bt_krpc_msg *m)
{
	if (m->type == BT_KRPC_ERROR) {
		bt_krpc_put_error(b, m->tid, m->tid_len, m->error_code, m->error_msg);
	} else if (m->type == BT_KRPC_RESPONSE) {
		struct bt_krpc_reply r = {
			.nodes = m->nodes,
			.node_count = m->node_count,
			.nodes6 = m->nodes6,
			.node6_count = m->node6_count,
			.values = m->values,
			.value_count = m->value_count,
			.token = m->token_len ? m->token : NULL,
			.token_len = m->token_len,
			.requester_ip = m->ip.family ? &m->ip : NULL,
		};
		bt_krpc_put_reply(b, m->tid, m->tid_len, m->id, &r);
	} else if (m->method == BT_KRPC_PING) {
		bt_krpc_put_ping(b, m->tid, m->tid_len, m->id);
	} else if (m->method == BT_KRPC_FIND_NODE) {
		bt_krpc_put_find_node(b, m->tid, m->tid_len, m->id, m->target, m->want_n4,
				      m->want_n6);
	} else if (m->method == BT_KRPC_GET_PEERS) {
		bt_krpc_put_get_peers(b, m->tid, m->tid_len, m->id, m->info_hash, m->want_n4,
				      m->want_n6);
	} else if (m->method == BT_KRPC_ANNOUNCE_PEER) {
		bt_krpc_put_announce_peer(b, m->tid, m->tid_len, m->id, m->info_hash, m->port,
					  m->implied_port, m->token, m->token_len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct bt_krpc_msg m, back;
	struct bt_err err;
	if (bt_krpc_parse(&m, data, size, &err) < 0) {
		if (m.tid_len > BT_KRPC_MAX_TID || err.msg[0] == '\0')
			abort();
		return 0;
	}
	if (m.tid_len > BT_KRPC_MAX_TID || m.token_len > BT_KRPC_MAX_TOKEN ||
	    m.node_count > BT_KRPC_MAX_NODES || m.node6_count > BT_KRPC_MAX_NODES ||
	    m.value_count > BT_KRPC_MAX_VALUES || !memchr(m.error_msg, 0, sizeof m.error_msg))
		abort();
	if (m.type == BT_KRPC_QUERY && m.method == BT_KRPC_OTHER)
		return 0;
	struct bt_buf b;
	bt_buf_init(&b);
	reencode(&b, &m);
	/* A reply with 100 IPv6 values is legitimately larger than a datagram we accept. */
	if (b.len <= BT_KRPC_MAX_DATAGRAM &&
	    (bt_krpc_parse(&back, b.data, b.len, &err) < 0 || !same(&m, &back)))
		abort();
	bt_buf_deinit(&b);
	return 0;
}
