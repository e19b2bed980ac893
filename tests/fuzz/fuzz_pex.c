/*
 * A peer's ut_pex messages are untrusted: every entry the parser yields must lie inside the
 * input, and a message that parses must survive a round trip through our encoder unchanged.
 */
#include "bt/pex.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bt_pex_msg m;
	if (bt_pex_parse(&m, data, size, NULL) != 0)
		return 0;
	size_t na = bt_pex_added_count(&m), nd = bt_pex_dropped_count(&m);
	if (na * 6 > size || nd * 6 > size)
		abort();
	struct bt_pex_peer *added = calloc(na ? na : 1, sizeof *added);
	struct bt_peer_addr *dropped = calloc(nd ? nd : 1, sizeof *dropped);
	if (!added || !dropped)
		abort();
	for (size_t i = 0; i < na; i++) {
		bt_pex_added(&m, i, &added[i]);
		if (added[i].addr.family != 4 && added[i].addr.family != 6)
			abort();
	}
	for (size_t i = 0; i < nd; i++)
		bt_pex_dropped(&m, i, &dropped[i]);
	struct bt_buf b;
	bt_buf_init(&b);
	bt_pex_encode(&b, added, na, dropped, nd);
	struct bt_pex_msg again;
	/* Our own encoding of what fitted in size bytes can grow only by its flags and keys. */
	if (b.len <= BT_PEX_MAX_MESSAGE) {
		if (bt_pex_parse(&again, b.data, b.len, NULL) != 0 ||
		    bt_pex_added_count(&again) != na || bt_pex_dropped_count(&again) != nd)
			abort();
		for (size_t i = 0; i < na; i++) {
			struct bt_pex_peer p;
			bt_pex_added(&again, i, &p);
			if (!bt_peer_addr_equal(&p.addr, &added[i].addr) ||
			    p.flags != added[i].flags)
				abort();
		}
	}
	bt_buf_deinit(&b);
	free(added);
	free(dropped);
	return 0;
}
