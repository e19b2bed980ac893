/*
 * Parses arbitrary bytes as bencode. For every input that parses, checks the document's
 * invariants: spans add up, the JSON printer and canonical encoder run, and re-encoding is
 * stable (encoding the canonical form again gives the same bytes).
 */
#include "bt/bencode.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bt_benc_limits lim = {.max_depth = 64, .max_nodes = 1 << 16};
	struct bt_benc_doc doc;
	size_t consumed;
	if (bt_benc_parse(&doc, data, size, &lim, &consumed, NULL) == BT_BENC_OK) {
		if (consumed > size || doc.nodes[0].span != doc.count ||
		    doc.nodes[0].raw_len != consumed)
			abort();
		bt_benc_doc_deinit(&doc);
	}
	if (bt_benc_parse(&doc, data, size, &lim, NULL, NULL) != BT_BENC_OK)
		return 0;
	struct bt_buf json, canon, again;
	bt_buf_init(&json);
	bt_buf_init(&canon);
	bt_buf_init(&again);
	bt_benc_to_json(&json, bt_benc_root(&doc));
	bt_benc_encode(&canon, bt_benc_root(&doc));

	struct bt_benc_doc doc2;
	if (bt_benc_parse(&doc2, canon.data, canon.len, &lim, NULL, NULL) != BT_BENC_OK)
		abort();
	bt_benc_encode(&again, bt_benc_root(&doc2));
	if (again.len != canon.len || memcmp(again.data, canon.data, canon.len) != 0)
		abort();
	if (doc2.count != doc.count)
		abort();
	bt_benc_doc_deinit(&doc2);
	bt_buf_deinit(&json);
	bt_buf_deinit(&canon);
	bt_buf_deinit(&again);
	bt_benc_doc_deinit(&doc);
	return 0;
}
