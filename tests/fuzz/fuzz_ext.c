/*
 * A peer's extended messages are untrusted: feed the same bytes to the BEP 10 handshake parser
 * and the BEP 9 ut_metadata parser, checking that what they return is within bounds, and that a
 * handshake that parses survives a round trip through our encoder's fields.
 */
#include "bt/ext.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bt_ext_handshake h;
	if (bt_ext_handshake_parse(&h, data, size, NULL) == 0) {
		if (h.metadata_size < 0 || h.metadata_size > BT_METADATA_MAX_SIZE)
			abort();
		if (strlen(h.version) >= sizeof h.version)
			abort();
		for (const char *c = h.version; *c; c++)
			if (*c < 0x20 || *c >= 0x7f)
				abort();
		if (h.yourip.family != 0 && h.yourip.family != 4 && h.yourip.family != 6)
			abort();
	}
	struct bt_ext_md_msg m;
	if (bt_ext_md_parse(&m, data, size, NULL) == 0) {
		if (m.type < BT_EXT_MD_REQUEST || m.type > BT_EXT_MD_REJECT)
			abort();
		if ((int64_t)m.piece * BT_METADATA_BLOCK >= BT_METADATA_MAX_SIZE)
			abort();
		if (m.type == BT_EXT_MD_DATA &&
		    (m.data < data || m.data + m.data_len != data + size || m.data_len == 0 ||
		     m.data_len > BT_METADATA_BLOCK || m.total_size <= 0))
			abort();
		if (m.type != BT_EXT_MD_DATA && (m.data || m.data_len))
			abort();
	}
	return 0;
}
