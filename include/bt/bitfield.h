/*
 * bitfield: a set of piece indices as BitTorrent sends it (bit 7 of byte 0 is piece 0), with a
 * running count. Import from the wire is strict: the length must be exactly what the piece
 * count needs and the spare bits at the end must be zero (BEP 3).
 */
#ifndef BT_BITFIELD_H
#define BT_BITFIELD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bt_bitfield {
	uint8_t *bits;
	uint32_t nbits;
	uint32_t count; /* bits set */
};

static inline size_t bt_bitfield_bytes(uint32_t nbits)
{
	return ((size_t)nbits + 7) / 8;
}

void bt_bitfield_init(struct bt_bitfield *b, uint32_t nbits);
void bt_bitfield_deinit(struct bt_bitfield *b);

static inline bool bt_bitfield_get(const struct bt_bitfield *b, uint32_t i)
{
	return i < b->nbits && (b->bits[i >> 3] & (0x80 >> (i & 7)));
}

/* Sets or clears bit i (which must be < nbits); keeps count right. */
void bt_bitfield_set(struct bt_bitfield *b, uint32_t i);
void bt_bitfield_clear(struct bt_bitfield *b, uint32_t i);
void bt_bitfield_set_all(struct bt_bitfield *b);

static inline bool bt_bitfield_full(const struct bt_bitfield *b)
{
	return b->count == b->nbits;
}

/* Replaces the contents with wire bytes. Returns 0, or -EINVAL for a wrong length or spare bits. */
int bt_bitfield_import(struct bt_bitfield *b, const uint8_t *p, size_t n);

#endif
