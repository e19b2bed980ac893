#include "bt/bitfield.h"

#include "bt/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bt_bitfield_init(struct bt_bitfield *b, uint32_t nbits)
{
	b->bits = bt_xcalloc(bt_bitfield_bytes(nbits) ? bt_bitfield_bytes(nbits) : 1, 1);
	b->nbits = nbits;
	b->count = 0;
}

void bt_bitfield_deinit(struct bt_bitfield *b)
{
	free(b->bits);
	memset(b, 0, sizeof *b);
}

void bt_bitfield_set(struct bt_bitfield *b, uint32_t i)
{
	uint8_t mask = (uint8_t)(0x80 >> (i & 7));
	if (!(b->bits[i >> 3] & mask)) {
		b->bits[i >> 3] |= mask;
		b->count++;
	}
}

void bt_bitfield_clear(struct bt_bitfield *b, uint32_t i)
{
	uint8_t mask = (uint8_t)(0x80 >> (i & 7));
	if (b->bits[i >> 3] & mask) {
		b->bits[i >> 3] &= (uint8_t)~mask;
		b->count--;
	}
}

void bt_bitfield_set_all(struct bt_bitfield *b)
{
	size_t n = bt_bitfield_bytes(b->nbits);
	memset(b->bits, 0xff, n);
	if (b->nbits & 7)
		b->bits[n - 1] = (uint8_t)(0xff << (8 - (b->nbits & 7)));
	b->count = b->nbits;
}

int bt_bitfield_import(struct bt_bitfield *b, const uint8_t *p, size_t n)
{
	if (n != bt_bitfield_bytes(b->nbits))
		return -EINVAL;
	if ((b->nbits & 7) && (p[n - 1] & (0xff >> (b->nbits & 7))))
		return -EINVAL;
	memcpy(b->bits, p, n);
	uint32_t count = 0;
	for (size_t i = 0; i < n; i++)
		count += (uint32_t)__builtin_popcount(p[i]);
	b->count = count;
	return 0;
}
