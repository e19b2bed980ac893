#include "bt/fastset.h"

#include "bt/hash.h"

#include <stdbool.h>
#include <string.h>

size_t bt_fastset_generate(const uint8_t info_hash[BT_HASH_LEN], const uint8_t ipv4[4],
			   uint32_t piece_count, size_t k, uint32_t *out)
{
	if (k > piece_count)
		k = piece_count;
	/* x = (ip & 0xffffff00) || info hash; then x = SHA-1(x), each hash giving five indices. */
	uint8_t x[BT_SHA1_LEN > 4 + BT_HASH_LEN ? BT_SHA1_LEN : 4 + BT_HASH_LEN];
	size_t xlen = 4 + BT_HASH_LEN;
	memcpy(x, ipv4, 3);
	x[3] = 0;
	memcpy(x + 4, info_hash, BT_HASH_LEN);
	size_t n = 0;
	while (n < k) {
		uint8_t h[BT_SHA1_LEN];
		bt_sha1(x, xlen, h);
		memcpy(x, h, sizeof h);
		xlen = sizeof h;
		for (size_t i = 0; i < 5 && n < k; i++) {
			uint32_t index = bt_load_be32(h + 4 * i) % piece_count;
			bool seen = false;
			for (size_t j = 0; j < n && !seen; j++)
				seen = out[j] == index;
			if (!seen)
				out[n++] = index;
		}
	}
	return n;
}
