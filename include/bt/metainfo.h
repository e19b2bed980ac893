/*
 * metainfo: a .torrent file (BEP 3) turned into a plain struct the rest of the client can trust.
 *
 * Everything here is checked once, at parse time: the piece length is sane, the `pieces` string
 * holds exactly one SHA-1 per piece of the total length, lengths are non-negative and their sum
 * cannot overflow, and every path is relative, made of non-empty components that are neither "."
 * nor ".." and hold no '/' or NUL, so no torrent can make the client write outside its output
 * directory. The info hash is SHA-1 over the raw bytes of the `info` value as they appear in the
 * file. Also understood: multi-file torrents, BEP 12 `announce-list` (with or without
 * `announce`), BEP 19 `url-list`, BEP 27 `private`, BEP 47 pad files, and BEP 52: a hybrid
 * v1+v2 torrent is used through its v1 view, a v2-only one is refused.
 *
 * Names and paths are sanitised for the file system (bt_meta_sanitize): `name` and each file's
 * `path` are what goes on disk, `orig_name` and `orig_path` keep the torrent's own bytes where
 * they differ (for display), and the info hash is of course over the original bytes.
 *
 * The struct owns copies of everything it holds; the input can be freed after parsing.
 *
 * A torrent whose piece hashes run past BT_META_SPILL_HASHES (a 16 GiB torrent of 16 KiB pieces
 * has 20 MiB of them) does not keep its info dict in memory: it is written to an unlinked
 * temporary file of ours (in $TMPDIR, else /tmp), which nobody else can open or change, and read
 * back on demand through a small cache. Then info_raw and piece_hashes are NULL, and the info
 * dict and the hashes are read with bt_meta_info_read / bt_meta_info_at / bt_meta_piece_hash,
 * which work for every torrent and are what callers should use.
 */
#ifndef BT_METAINFO_H
#define BT_METAINFO_H

#include "bt/geometry.h"
#include "bt/hash.h"
#include "bt/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Pieces longer than this are refused as absurd. */
#define BT_META_MAX_PIECE_LENGTH ((int64_t)256 << 20)
/* The largest .torrent file the client reads. */
#define BT_META_MAX_FILE_SIZE ((size_t)64 << 20)
/* More pieces than this are refused (libtorrent's default max_pieces; no real torrent has). */
#define BT_META_MAX_PIECES 0x200000
/* Piece hashes longer than this are spilled to a temporary file rather than held in memory. */
#define BT_META_SPILL_HASHES ((size_t)1 << 20)
/* DHT nodes kept from a torrent's `nodes`. */
#define BT_META_MAX_NODES 64

struct bt_meta_file {
	char *path; /* relative, components joined by '/'; for a single-file torrent, the name */
	char *orig_path; /* the path as the torrent spells it, when sanitising changed it; or NULL
			  */
	int64_t length;
	int64_t offset; /* of its first byte in the torrent's concatenated data */
	bool pad;	/* BEP 47 padding: zeros that are never written to disk */
};

struct bt_meta_spill;

struct bt_meta_tier {
	char **urls;
	size_t count;
};

struct bt_metainfo {
	char *name;	 /* fit for the file system (see bt_meta_sanitize) */
	char *orig_name; /* the name as the torrent spells it, when sanitising changed it; or NULL
			  */
	size_t renamed;	 /* names and paths that sanitising changed */
	uint8_t info_hash[BT_SHA1_LEN];
	bool hybrid; /* BEP 52 v1+v2: info_hash_v2 is set, and the v1 view is what we use */
	uint8_t info_hash_v2[BT_SHA256_LEN];

	int64_t piece_length;
	uint32_t piece_count;
	/* piece_count * 20 bytes inside info_raw; NULL when spilled (see bt_meta_piece_hash) */
	const uint8_t *piece_hashes;
	int64_t total_length; /* of all files, pad files included */

	bool multi_file;
	struct bt_meta_file *files;
	size_t file_count;

	char *announce;		    /* the `announce` key, or NULL */
	struct bt_meta_tier *tiers; /* BEP 12 tiers; one tier of `announce` if no announce-list */
	size_t tier_count;
	char **web_seeds;
	size_t web_seed_count;
	char **dht_nodes; /* BEP 5 `nodes`: "host:port" ("[v6]:port"), at most BT_META_MAX_NODES */
	size_t dht_node_count;

	bool is_private;
	bool has_creation_date;
	int64_t creation_date; /* seconds since the epoch */
	char *created_by;      /* NULL when absent */
	char *comment;	       /* NULL when absent */

	uint8_t *info_raw; /* the info dictionary's bytes, as in the file; NULL when spilled */
	size_t info_len;
	struct bt_meta_spill *spill; /* the spilled info dict's file and cache, or NULL */
};

/*
 * Parses a whole .torrent file. Returns 0, or -EINVAL with err naming the problem and where
 * ("bencode: unexpected 'x' at offset 7", "info.files[2].path: '..' is not allowed"), or
 * -ENOTSUP for a v2-only torrent. On failure m is left zeroed.
 */
int bt_meta_parse(struct bt_metainfo *m, const uint8_t *p, size_t len, struct bt_err *err);
/*
 * bt_meta_parse of a malloc'd buffer that m takes (freed on failure too): the info dict stays in
 * it, moved to its front, rather than copied, so loading a torrent whose hashes run to megabytes
 * holds them once.
 */
int bt_meta_parse_owned(struct bt_metainfo *m, uint8_t *p, size_t len, struct bt_err *err);
/*
 * Reads and parses the .torrent at path ("-": standard input). A large regular file is mapped
 * rather than read, and its info dict spilled (see above) without the whole file ever being
 * resident. Returns 0, or a negative errno with err saying what is wrong and naming the path
 * ("cannot open 'x.torrent': ...", "x.torrent: info.pieces: ...").
 */
int bt_meta_load_file(struct bt_metainfo *m, const char *path, struct bt_err *err);
void bt_meta_deinit(struct bt_metainfo *m);
/*
 * The SHA-1 of piece i, from memory or from the spill file. Returns 0, -EINVAL for a piece out
 * of range, or a negative errno if the spill file cannot be read (out is then zeroed).
 */
int bt_meta_piece_hash(const struct bt_metainfo *m, uint32_t i, uint8_t out[BT_SHA1_LEN]);
/* Copies info dict bytes [off, off + len) to out. Returns 0, -EINVAL if out of range, or -EIO. */
int bt_meta_info_read(const struct bt_metainfo *m, size_t off, uint8_t *out, size_t len);
/*
 * Info dict bytes [off, off + len) (len at most BT_META_INFO_AT_MAX), e.g. a BEP 9 block to
 * send: a pointer into info_raw, or into a buffer of m's that the next call reuses. NULL when
 * out of range or unreadable.
 */
#define BT_META_INFO_AT_MAX 16384
const uint8_t *bt_meta_info_at(const struct bt_metainfo *m, size_t off, size_t len);
/*
 * A metainfo from a bare info dict (as fetched by BEP 9) and a magnet's trackers (copied; empty
 * URLs and tiers skipped), checked exactly as bt_meta_parse checks one. The info hash is SHA-1
 * over exactly these bytes. Returns 0 or -EINVAL / -ENOTSUP with err; on failure m is zeroed.
 */
int bt_meta_parse_info(struct bt_metainfo *m, const uint8_t *info, size_t len,
		       const struct bt_meta_tier *tiers, size_t tier_count, struct bt_err *err);
/*
 * bt_meta_parse_info of the info dict that is the whole of file fd (len bytes), as a magnet's
 * large dict is assembled (bt_metadata): mapped rather than read, and when it must spill, the
 * file becomes m's spill file (m keeps a dup of fd; the caller still owns fd and must not write
 * to it again), so a dict of megabytes is never whole in memory nor copied.
 */
int bt_meta_parse_info_fd(struct bt_metainfo *m, int fd, size_t len,
			  const struct bt_meta_tier *tiers, size_t tier_count, struct bt_err *err);
/*
 * bt_meta_parse_info of src's info dict (from memory, or from its spill file, which m then shares
 * rather than copies), with the given trackers.
 */
int bt_meta_parse_info_of(struct bt_metainfo *m, const struct bt_metainfo *src,
			  const struct bt_meta_tier *tiers, size_t tier_count, struct bt_err *err);
/*
 * Appends a .torrent of m: announce, announce-list, comment, created by, creation date and
 * url-list where known, and the info dict's bytes verbatim, so the file has m's info hash.
 * Returns 0, -EINVAL if m holds no info dict, or -EIO if its spill file cannot be read.
 */
int bt_meta_write_torrent(const struct bt_metainfo *m, struct bt_buf *out);

/*
 * The spill file's helpers, for others that keep an info dict on disk (bt_metadata): a new
 * unlinked temporary file in $TMPDIR (else /tmp) that only we hold, *dir_out naming the
 * directory for messages (returns the descriptor or a negative errno); and whole reads and
 * writes at an offset (0 or a negative errno; -EIO for a file shorter than asked).
 */
int bt_meta_tmpfile(const char **dir_out);
int bt_meta_pread(int fd, uint8_t *p, size_t n, uint64_t off);
int bt_meta_pwrite(int fd, const uint8_t *p, size_t n, uint64_t off);

/* The first tracker URL (`announce`, or the first of the first tier), or NULL. */
const char *bt_meta_tracker(const struct bt_metainfo *m);
/* The length of piece i (the last one may be shorter). */
/* The torrent's piece and block geometry. */
static inline struct bt_geometry bt_meta_geometry(const struct bt_metainfo *m)
{
	return (struct bt_geometry){.piece_count = m->piece_count,
				    .piece_length = m->piece_length,
				    .total_length = m->total_length};
}

int64_t bt_meta_piece_size(const struct bt_metainfo *m, uint32_t i);
/*
 * Appends name (n bytes, one path component or a whole path) to out fit for the file system, as
 * libtorrent does: a control character (C0, DEL, C1), a bidi mark or override (U+200E, U+200F,
 * U+202A to U+202E, U+2066 to U+2069) becomes '_', and so does each byte of an invalid UTF-8
 * sequence. Returns how many were replaced (0: out got name unchanged). With `escape`, each byte
 * of what would be replaced is written as "\xNN" instead, to show the original in a message.
 */
size_t bt_meta_sanitize(struct bt_buf *out, const uint8_t *name, size_t n, bool escape);
/* Checks one path component the way torrent paths are checked. */
bool bt_meta_component_ok(const uint8_t *p, size_t n);

#endif
