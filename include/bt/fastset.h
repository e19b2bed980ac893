/*
 * fastset: the allowed-fast set of BEP 6, the pieces a peer may download from us while we choke
 * it. The set is a function of the peer's IPv4 address (its /24, so one host cannot collect
 * more sets by opening connections from its neighbours' addresses), the info hash and the
 * piece count, so both sides compute the same one and a peer gains nothing by reconnecting.
 * Pure: no I/O; the peer module (its one caller) sends the result as ALLOWED_FAST messages.
 */
#ifndef BT_FASTSET_H
#define BT_FASTSET_H

#include "bt/util.h"

#include <stddef.h>
#include <stdint.h>

/* The set we give a peer: BEP 6 suggests 10, as libtorrent and Transmission send. */
#define BT_FASTSET_K 10

/*
 * Writes the first min(k, piece_count) pieces of the allowed-fast set for a peer at `ipv4`
 * (network byte order, 4 bytes) into out[0..k), in the order the BEP's algorithm yields them,
 * without repeats. Returns how many were written (0 for piece_count 0).
 */
size_t bt_fastset_generate(const uint8_t info_hash[BT_HASH_LEN], const uint8_t ipv4[4],
			   uint32_t piece_count, size_t k, uint32_t *out);

#endif
