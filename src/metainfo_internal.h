/*
 * metainfo_internal: what the files of the metainfo module share: metainfo.c (parsing a .torrent
 * or a bare info dict, checking it, keeping its info dict in memory) and metainfo_spill.c (the
 * info dict of a torrent whose piece hashes run past BT_META_SPILL_HASHES, kept in an unlinked
 * temporary file instead and read back through a small cache). Not for any other module.
 */
#ifndef BT_METAINFO_INTERNAL_H
#define BT_METAINFO_INTERNAL_H

#include "bt/metainfo.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Writes the info dict raw[0..len) to a new spill file, setting m->info_hash (and
 * m->info_hash_v2 for a hybrid) on the way, and makes m->spill of it; hashes_off is where the
 * `pieces` string's bytes start in it. `mapped`: raw is a mapping whose pages may be dropped as
 * they are written. Returns 0, or a negative errno with err naming the temporary directory.
 */
int bt_meta_spill_write(struct bt_metainfo *m, const uint8_t *raw, size_t len, size_t hashes_off,
			bool mapped, struct bt_err *err);
/*
 * bt_meta_spill_write for an info dict that is already the whole of file fd, mapped at raw: the
 * file becomes the spill file (m keeps a dup of fd; the caller keeps fd) rather than be copied,
 * and the dict is hashed from the mapping, whose pages are given back as it goes.
 */
int bt_meta_spill_adopt(struct bt_metainfo *m, int fd, const uint8_t *raw, size_t len,
			size_t hashes_off, struct bt_err *err);
/* The spill file's descriptor: the whole info dict, from offset 0. */
int bt_meta_spill_fd(const struct bt_meta_spill *s);
/* Closes the spill file and frees its cache; NULL is a no-op. */
void bt_meta_spill_free(struct bt_meta_spill *s);

#endif
