/*
 * Tracker replies are untrusted input. The first byte chooses how the rest is read: as an HTTP
 * announce body, or as a UDP datagram answering a connect or an announce (IPv4 or IPv6). Every
 * parsed peer must have a non-zero port and a known family.
 */
#include "bt/tracker_proto.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct bt_announce_reply *r)
{
	for (size_t i = 0; i < r->peer_count; i++) {
		char s[BT_PEER_ADDR_STRLEN];
		if (r->peers[i].port == 0 || (r->peers[i].family != 4 && r->peers[i].family != 6))
			abort();
		bt_peer_addr_format(&r->peers[i], s);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	uint8_t mode = data[0] % 4;
	data++;
	size--;
	struct bt_announce_reply r;
	if (mode == 0) {
		if (bt_tracker_parse_http(data, size, &r, NULL) == 0) {
			check(&r);
			bt_announce_reply_deinit(&r);
		}
		return 0;
	}
	uint32_t tid = size >= 8 ? bt_load_be32(data + 4) : 0;
	uint64_t cid;
	enum bt_udp_result res;
	if (mode == 1) {
		res = bt_udp_parse_reply(data, size, tid, BT_UDP_CONNECT, false, &cid, &r);
		if (res == BT_UDP_FAILED)
			bt_announce_reply_deinit(&r);
		return 0;
	}
	res = bt_udp_parse_reply(data, size, tid, BT_UDP_ANNOUNCE, mode == 3, &cid, &r);
	if (res == BT_UDP_OK)
		check(&r);
	if (res != BT_UDP_IGNORE)
		bt_announce_reply_deinit(&r);
	return 0;
}
