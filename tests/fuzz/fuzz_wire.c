/*
 * A peer's byte stream is untrusted: decode messages back to back from arbitrary bytes (the
 * first two bytes choose the torrent's bitfield size), checking that every message decoded lies
 * inside the input and respects the length rules.
 */
#include "bt/wire.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t bf = bt_load_be16(data) % 4096;
	data += 2;
	size -= 2;
	struct bt_handshake h;
	bt_wire_parse_handshake(data, size, &h, NULL);
	while (size) {
		struct bt_wire_msg m;
		size_t used;
		if (bt_wire_decode(data, size, bf, &m, &used, NULL) != BT_WIRE_OK)
			break;
		if (used < 4 || used > size || used > 4 + BT_WIRE_MAX_EXTENDED)
			abort();
		if (m.payload && (m.payload < data || m.payload + m.payload_len > data + used))
			abort();
		if (m.id == BT_WIRE_PIECE && (m.length == 0 || m.length > BT_BLOCK_SIZE))
			abort();
		if (m.id == BT_WIRE_BITFIELD && m.payload_len != bf)
			abort();
		data += used;
		size -= used;
	}
	return 0;
}
