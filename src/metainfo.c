#include "metainfo_internal.h"

#include "bt/bencode.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BAD(...) bt_err_set(err, -EINVAL, __VA_ARGS__)

/* Where the source of an info dict lives, which decides what m keeps and how it is read. */
enum source {
	SRC_COPY,   /* the caller's: copied (or spilled) */
	SRC_OWNED,  /* a buffer m takes over (bt_meta_parse_owned): kept unless spilled */
	SRC_MAPPED, /* a mapped file: copied or spilled, its pages dropped as they are spilled */
	/* A mapped file of the caller's holding exactly the info dict (bt_meta_parse_info_fd):
	 * copied, or if it must spill, the file itself becomes the spill file. */
	SRC_FILE,
};

static char *node_strdup(const struct bt_benc_node *n)
{
	return bt_xstrndup((const char *)n->str, n->str_len);
}

/* An optional string value: NULL when absent or not a string. */
static char *opt_string(const struct bt_benc_node *d, const char *key)
{
	const struct bt_benc_node *v = bt_benc_dict_get(d, key);
	return v && v->type == BT_BENC_STR ? node_strdup(v) : NULL;
}

/*
 * The length of the valid UTF-8 sequence at p[0..n) (1 to 4), or 0 if p[0] does not start one
 * (a stray continuation byte, an overlong form, a surrogate, past U+10FFFF, cut short).
 */
static size_t utf8_len(const uint8_t *p, size_t n, uint32_t *cp_out)
{
	uint8_t c = p[0];
	size_t len;
	uint8_t lo = 0x80, hi = 0xbf;
	if (c < 0x80) {
		*cp_out = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		lo = c == 0xe0 ? 0xa0 : 0x80;
		hi = c == 0xed ? 0x9f : 0xbf;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf;
	} else {
		return 0;
	}
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	uint32_t cp = c & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if (i > 1 && (p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	*cp_out = cp;
	return len;
}

/*
 * Characters a name on disk must not hold, as libtorrent filters them: control characters (they
 * garble terminals and listings) and the bidi marks and overrides that make a name display as
 * another ("exe.txt" shown for "txt.exe").
 */
static bool unfit_for_disk(uint32_t cp)
{
	return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x200e ||
	       cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

size_t bt_meta_sanitize(struct bt_buf *out, const uint8_t *p, size_t n, bool escape)
{
	size_t changed = 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len = utf8_len(p + i, n - i, &cp);
		if (len == 0 || unfit_for_disk(cp)) {
			for (size_t k = 0; escape && k < (len ? len : 1); k++)
				bt_buf_printf(out, "\\x%02x", p[i + k]);
			if (!escape)
				bt_buf_addc(out, '_');
			changed++;
			i += len ? len : 1;
		} else {
			bt_buf_add(out, p + i, len);
			i += len;
		}
	}
	return changed;
}

/* Notes that the disk name of `raw` differs from it: keeps the original beside it. */
static char *disk_name(struct bt_metainfo *m, const uint8_t *raw, size_t n, char **orig_out)
{
	struct bt_buf b;
	bt_buf_init(&b);
	if (bt_meta_sanitize(&b, raw, n, false)) {
		*orig_out = bt_xstrndup((const char *)raw, n);
		m->renamed++;
	}
	size_t len;
	char *s = (char *)bt_buf_steal(&b, &len);
	return s ? s : bt_xstrdup("");
}

bool bt_meta_component_ok(const uint8_t *p, size_t n)
{
	if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
		return false;
	return !memchr(p, '/', n) && !memchr(p, '\0', n);
}

/* Explains why a path component was refused, for an error naming `where`. */
static int bad_component(const struct bt_benc_node *c, const char *where, struct bt_err *err)
{
	if (c->type != BT_BENC_STR)
		return BAD("%s: path component is not a string", where);
	if (c->str_len == 0)
		return BAD("%s: empty path component is not allowed", where);
	if (memchr(c->str, '\0', c->str_len))
		return BAD("%s: NUL byte in path component is not allowed", where);
	if (memchr(c->str, '/', c->str_len))
		return BAD("%s: '/' in path component is not allowed", where);
	return BAD("%s: '%.*s' is not allowed in a path", where, (int)c->str_len,
		   (const char *)c->str);
}

/* Names file i for an error message ("info.files[3]"), or the info dict itself when i < 0. */
static const char *label(char buf[32], int64_t i)
{
	if (i < 0)
		return "info";
	snprintf(buf, 32, "info.files[%" PRId64 "]", i);
	return buf;
}

static int get_length(const struct bt_benc_node *d, int64_t index, int64_t *out, struct bt_err *err)
{
	char b[32];
	const struct bt_benc_node *v = bt_benc_dict_get(d, "length");
	if (!v)
		return BAD("%s: missing 'length'", label(b, index));
	if (v->type != BT_BENC_INT)
		return BAD("%s.length: not an integer", label(b, index));
	if (bt_benc_int(v, out) || *out < 0)
		return BAD("%s.length: %.*s is out of range", label(b, index), (int)v->str_len,
			   (const char *)v->str);
	return 0;
}

static int add_length(struct bt_metainfo *m, int64_t length, struct bt_err *err)
{
	if (length > INT64_MAX - m->total_length)
		return BAD("info: total length overflows");
	m->total_length += length;
	return 0;
}

static int compare_paths(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Two files at one path, or a file where another file's directory must be, cannot both be
 * written: refuse such a torrent rather than let one file overwrite another.
 */
static int check_path_clashes(const struct bt_metainfo *m, struct bt_err *err)
{
	char **paths = bt_xcalloc(m->file_count, sizeof *paths);
	size_t n = 0;
	for (size_t i = 0; i < m->file_count; i++)
		if (!m->files[i].pad)
			paths[n++] = m->files[i].path;
	qsort(paths, n, sizeof *paths, compare_paths);
	int rc = 0;
	for (size_t i = 1; i < n && !rc; i++)
		if (strcmp(paths[i - 1], paths[i]) == 0)
			rc = BAD("info.files: two files at '%.200s'", paths[i]);
	for (size_t i = 0; i < n && !rc; i++) {
		for (const char *slash = strchr(paths[i], '/'); slash && !rc;
		     slash = strchr(slash + 1, '/')) {
			char *key = bt_xstrndup(paths[i], (size_t)(slash - paths[i]));
			if (bsearch(&key, paths, n, sizeof *paths, compare_paths))
				rc = BAD("info.files: '%.200s' is both a file and a directory",
					 key);
			free(key);
		}
	}
	free(paths);
	return rc;
}

static int parse_files(struct bt_metainfo *m, const struct bt_benc_node *files, struct bt_err *err)
{
	if (files->type != BT_BENC_LIST)
		return BAD("info.files: not a list");
	if (files->count == 0)
		return BAD("info.files: empty list");
	m->multi_file = true;
	m->files = bt_xcalloc(files->count, sizeof *m->files);
	const struct bt_benc_node *f = bt_benc_first(files);
	struct bt_buf path, raw;
	bt_buf_init(&path);
	bt_buf_init(&raw);
	int rc = 0;
	for (uint32_t i = 0; i < files->count; i++, f = bt_benc_skip(f)) {
		char where[32];
		if (f->type != BT_BENC_DICT) {
			rc = BAD("%s: not a dictionary", label(where, i));
			break;
		}
		struct bt_meta_file *mf = &m->files[m->file_count];
		if ((rc = get_length(f, i, &mf->length, err)))
			break;
		const struct bt_benc_node *pl = bt_benc_dict_get(f, "path");
		if (!pl || pl->type != BT_BENC_LIST || pl->count == 0) {
			rc = BAD("%s.path: %s", label(where, i),
				 pl ? "not a non-empty list" : "missing");
			break;
		}
		path.len = 0;
		raw.len = 0;
		const struct bt_benc_node *c = bt_benc_first(pl);
		for (uint32_t j = 0; j < pl->count && !rc; j++, c = bt_benc_skip(c)) {
			if (c->type != BT_BENC_STR || !bt_meta_component_ok(c->str, c->str_len)) {
				char cw[96];
				snprintf(cw, sizeof cw, "%s.path[%" PRIu32 "]", label(where, i), j);
				rc = bad_component(c, cw, err);
				break;
			}
			if (j) {
				bt_buf_addc(&path, '/');
				bt_buf_addc(&raw, '/');
			}
			bt_buf_add(&raw, c->str, c->str_len);
			/* The raw component was checked: sanitising adds no '/', NUL or "..". */
			bt_meta_sanitize(&path, c->str, c->str_len, false);
		}
		if (rc)
			break;
		const struct bt_benc_node *attr = bt_benc_dict_get(f, "attr");
		mf->pad =
			attr && attr->type == BT_BENC_STR && memchr(attr->str, 'p', attr->str_len);
		mf->path = bt_xstrndup((const char *)path.data, path.len);
		if (raw.len != path.len || memcmp(raw.data, path.data, path.len) != 0) {
			mf->orig_path = bt_xstrndup((const char *)raw.data, raw.len);
			m->renamed++;
		}
		mf->offset = m->total_length;
		m->file_count++;
		if ((rc = add_length(m, mf->length, err)))
			break;
	}
	bt_buf_deinit(&path);
	bt_buf_deinit(&raw);
	return rc ? rc : check_path_clashes(m, err);
}

static void add_tier(struct bt_metainfo *m, char **urls, size_t count)
{
	m->tiers = bt_xreallocarray(m->tiers, m->tier_count + 1, sizeof *m->tiers);
	m->tiers[m->tier_count++] = (struct bt_meta_tier){.urls = urls, .count = count};
}

/*
 * Trackers are advisory: malformed entries in announce-list (not a list, not a string, empty)
 * are skipped rather than making the whole torrent unusable, as other clients do.
 */
static void parse_trackers(struct bt_metainfo *m, const struct bt_benc_node *root)
{
	const struct bt_benc_node *a = bt_benc_dict_get(root, "announce");
	if (a && a->type == BT_BENC_STR && a->str_len)
		m->announce = node_strdup(a);

	const struct bt_benc_node *al = bt_benc_dict_get(root, "announce-list");
	if (al && al->type == BT_BENC_LIST) {
		const struct bt_benc_node *t = bt_benc_first(al);
		for (uint32_t i = 0; i < al->count; i++, t = bt_benc_skip(t)) {
			if (t->type != BT_BENC_LIST || t->count == 0)
				continue;
			char **urls = bt_xcalloc(t->count, sizeof *urls);
			size_t n = 0;
			const struct bt_benc_node *u = bt_benc_first(t);
			for (uint32_t j = 0; j < t->count; j++, u = bt_benc_skip(u))
				if (u->type == BT_BENC_STR && u->str_len)
					urls[n++] = node_strdup(u);
			if (n)
				add_tier(m, urls, n);
			else
				free(urls);
		}
	}
	if (m->tier_count == 0 && m->announce) {
		char **urls = bt_xcalloc(1, sizeof *urls);
		urls[0] = bt_xstrdup(m->announce);
		add_tier(m, urls, 1);
	}

	const struct bt_benc_node *ws = bt_benc_dict_get(root, "url-list");
	if (ws && ws->type == BT_BENC_STR && ws->str_len) {
		m->web_seeds = bt_xcalloc(1, sizeof *m->web_seeds);
		m->web_seeds[m->web_seed_count++] = node_strdup(ws);
	} else if (ws && ws->type == BT_BENC_LIST && ws->count) {
		m->web_seeds = bt_xcalloc(ws->count, sizeof *m->web_seeds);
		const struct bt_benc_node *u = bt_benc_first(ws);
		for (uint32_t j = 0; j < ws->count; j++, u = bt_benc_skip(u))
			if (u->type == BT_BENC_STR && u->str_len)
				m->web_seeds[m->web_seed_count++] = node_strdup(u);
	}

	/* BEP 5's `nodes` of a trackerless torrent: [host, port] pairs, kept as "host:port". */
	const struct bt_benc_node *nodes = bt_benc_dict_get(root, "nodes");
	if (nodes && nodes->type == BT_BENC_LIST && nodes->count) {
		size_t cap = nodes->count < BT_META_MAX_NODES ? nodes->count : BT_META_MAX_NODES;
		m->dht_nodes = bt_xcalloc(cap, sizeof *m->dht_nodes);
		const struct bt_benc_node *e = bt_benc_first(nodes);
		for (uint32_t j = 0; j < nodes->count && m->dht_node_count < cap;
		     j++, e = bt_benc_skip(e)) {
			if (e->type != BT_BENC_LIST || e->count != 2)
				continue;
			const struct bt_benc_node *host = bt_benc_first(e),
						  *port = bt_benc_skip(host);
			int64_t p;
			if (host->type != BT_BENC_STR || !host->str_len || host->str_len > 253 ||
			    memchr(host->str, '\0', host->str_len) || bt_benc_int(port, &p) ||
			    p < 1 || p > 65535)
				continue;
			struct bt_buf b;
			bt_buf_init(&b);
			bool v6 = memchr(host->str, ':', host->str_len) != NULL;
			bt_buf_printf(&b, "%s%.*s%s:%d", v6 ? "[" : "", (int)host->str_len,
				      (const char *)host->str, v6 ? "]" : "", (int)p);
			m->dht_nodes[m->dht_node_count++] = (char *)bt_buf_steal(&b, NULL);
		}
	}
}

static int parse_info(struct bt_metainfo *m, const struct bt_benc_node *info, struct bt_err *err)
{
	int64_t version = 1;
	const struct bt_benc_node *mv = bt_benc_dict_get(info, "meta version");
	if (mv && (bt_benc_int(mv, &version) || version < 1))
		return BAD("info.meta version: not a positive integer");
	if (version > 2)
		return bt_err_set(err, -ENOTSUP, "info.meta version %" PRId64 " is not supported",
				  version);
	const struct bt_benc_node *pieces = bt_benc_dict_get(info, "pieces");
	if (version == 2 && !pieces)
		return bt_err_set(err, -ENOTSUP,
				  "v2-only torrents (BEP 52) are not supported yet; a hybrid "
				  "v1+v2 torrent would work");
	m->hybrid = version == 2;

	const struct bt_benc_node *name = bt_benc_dict_get(info, "name");
	if (!name)
		return BAD("info: missing 'name'");
	if (name->type != BT_BENC_STR)
		return BAD("info.name: not a string");
	if (!bt_meta_component_ok(name->str, name->str_len))
		return bad_component(name, "info.name", err);
	m->name = disk_name(m, name->str, name->str_len, &m->orig_name);

	const struct bt_benc_node *pl = bt_benc_dict_get(info, "piece length");
	if (!pl)
		return BAD("info: missing 'piece length'");
	if (pl->type != BT_BENC_INT)
		return BAD("info.piece length: not an integer");
	if (bt_benc_int(pl, &m->piece_length) || m->piece_length <= 0 ||
	    m->piece_length > BT_META_MAX_PIECE_LENGTH)
		return BAD("info.piece length: %.*s is out of range (1 to %" PRId64 ")",
			   (int)pl->str_len, (const char *)pl->str, BT_META_MAX_PIECE_LENGTH);

	const struct bt_benc_node *length = bt_benc_dict_get(info, "length");
	const struct bt_benc_node *files = bt_benc_dict_get(info, "files");
	int rc;
	if (length && files)
		return BAD("info: has both 'length' and 'files'");
	if (!length && !files)
		return BAD("info: has neither 'length' nor 'files'");
	if (files) {
		if ((rc = parse_files(m, files, err)))
			return rc;
	} else {
		m->files = bt_xcalloc(1, sizeof *m->files);
		if ((rc = get_length(info, -1, &m->files[0].length, err)))
			return rc;
		m->files[0].path = bt_xstrdup(m->name);
		if (m->orig_name)
			m->files[0].orig_path = bt_xstrdup(m->orig_name);
		m->file_count = 1;
		m->total_length = m->files[0].length;
	}
	if (m->total_length == 0)
		return BAD("info: the torrent holds no data (total length 0)");

	if (!pieces)
		return BAD("info: missing 'pieces'");
	if (pieces->type != BT_BENC_STR)
		return BAD("info.pieces: not a string");
	if (pieces->str_len % BT_SHA1_LEN)
		return BAD("info.pieces: length %zu is not a multiple of %d", pieces->str_len,
			   BT_SHA1_LEN);
	uint64_t need = ((uint64_t)m->total_length - 1) / (uint64_t)m->piece_length + 1;
	if (need > BT_META_MAX_PIECES)
		return BAD("info: %" PRId64 " bytes in pieces of %" PRId64 " make %" PRIu64
			   " pieces, more than the limit of %d",
			   m->total_length, m->piece_length, need, BT_META_MAX_PIECES);
	if (pieces->str_len / BT_SHA1_LEN != need)
		return BAD("info.pieces: holds %zu hashes, but %" PRId64
			   " bytes in pieces of %" PRId64 " need %" PRIu64,
			   pieces->str_len / BT_SHA1_LEN, m->total_length, m->piece_length, need);
	m->piece_count = (uint32_t)need;
	/* info_raw already holds the hashes: point into it rather than keep a second copy. */
	m->piece_hashes = m->info_raw + (pieces->str - info->raw);

	const struct bt_benc_node *priv = bt_benc_dict_get(info, "private");
	int64_t pv = 0;
	m->is_private = priv && bt_benc_int(priv, &pv) == 0 && pv == 1;
	return 0;
}

/*
 * The part shared by a whole .torrent and a bare info dict (BEP 9): checks the info dict, hashes
 * exactly its bytes, and keeps them: in memory (a copy, or the owned buffer they are in), or in
 * a spill file when the piece hashes are large. On failure m is deinitialised.
 */
static int load_info(struct bt_metainfo *m, const struct bt_benc_node *info, enum source src,
		     int fd, struct bt_err *err)
{
	/* While checking, info_raw points at the source; what m keeps is decided after. */
	m->info_raw = (uint8_t *)info->raw;
	m->info_len = info->raw_len;
	int rc = parse_info(m, info, err);
	size_t hashes_off = rc ? 0 : (size_t)(m->piece_hashes - m->info_raw);
	if (!rc && (size_t)m->piece_count * BT_SHA1_LEN > BT_META_SPILL_HASHES) {
		m->info_raw = NULL;
		m->piece_hashes = NULL;
		rc = src == SRC_FILE
			     ? bt_meta_spill_adopt(m, fd, info->raw, info->raw_len, hashes_off, err)
			     : bt_meta_spill_write(m, info->raw, info->raw_len, hashes_off,
						   src == SRC_MAPPED, err);
	} else if (!rc) {
		bt_sha1(info->raw, info->raw_len, m->info_hash);
		if (m->hybrid)
			bt_sha256(info->raw, info->raw_len, m->info_hash_v2);
		if (src != SRC_OWNED) {
			m->info_raw = bt_xmalloc(info->raw_len);
			memcpy(m->info_raw, info->raw, info->raw_len);
			m->piece_hashes = m->info_raw + hashes_off;
		}
	}
	if (rc) {
		if (m->info_raw == info->raw)
			m->info_raw = NULL; /* the source is not m's to free */
		bt_meta_deinit(m);
	}
	return rc;
}

/* src is SRC_OWNED: info_raw points into p until the caller makes it m's (bt_meta_parse_owned). */
static int parse_torrent(struct bt_metainfo *m, const uint8_t *p, size_t len, enum source src,
			 struct bt_err *err)
{
	memset(m, 0, sizeof *m);
	struct bt_benc_doc doc;
	struct bt_err perr;
	if (bt_benc_parse(&doc, p, len, NULL, NULL, &perr) != BT_BENC_OK)
		return bt_err_set(err, -EINVAL, "bencode: %s", perr.msg);

	int rc = 0;
	const struct bt_benc_node *root = bt_benc_root(&doc);
	const struct bt_benc_node *info = bt_benc_dict_get(root, "info");
	if (root->type != BT_BENC_DICT)
		rc = BAD("the top level is not a dictionary");
	else if (!info)
		rc = BAD("missing 'info' dictionary");
	else if (info->type != BT_BENC_DICT)
		rc = BAD("'info' is not a dictionary");
	if (!rc)
		rc = load_info(m, info, src, -1, err);
	if (rc) {
		bt_benc_doc_deinit(&doc);
		return rc;
	}

	parse_trackers(m, root);
	const struct bt_benc_node *cd = bt_benc_dict_get(root, "creation date");
	m->has_creation_date = cd && bt_benc_int(cd, &m->creation_date) == 0;
	m->created_by = opt_string(root, "created by");
	m->comment = opt_string(root, "comment");
	bt_benc_doc_deinit(&doc);
	return 0;
}

int bt_meta_parse(struct bt_metainfo *m, const uint8_t *p, size_t len, struct bt_err *err)
{
	return parse_torrent(m, p, len, SRC_COPY, err);
}

int bt_meta_parse_owned(struct bt_metainfo *m, uint8_t *p, size_t len, struct bt_err *err)
{
	int rc = parse_torrent(m, p, len, SRC_OWNED, err);
	if (rc || !m->info_raw) {
		free(p); /* failed, or spilled */
		return rc;
	}
	/*
	 * Everything else is parsed (and copied out): slide the info dict to the front of the
	 * buffer and give the rest back, so a large torrent's hashes are never held twice.
	 */
	size_t hashes = (size_t)(m->piece_hashes - m->info_raw);
	memmove(p, m->info_raw, m->info_len);
	m->info_raw = bt_xreallocarray(p, m->info_len, 1);
	m->piece_hashes = m->info_raw + hashes;
	return 0;
}

/* A bare info dict from info[0..len) (a mapping of fd when src is SRC_FILE), with trackers. */
static int parse_bare(struct bt_metainfo *m, const uint8_t *info, size_t len, enum source src,
		      int fd, const struct bt_meta_tier *tiers, size_t tier_count,
		      struct bt_err *err)
{
	memset(m, 0, sizeof *m);
	if (len > BT_META_MAX_FILE_SIZE)
		return BAD("info: %zu bytes, more than the limit of %zu", len,
			   BT_META_MAX_FILE_SIZE);
	struct bt_benc_doc doc;
	struct bt_err perr;
	if (bt_benc_parse(&doc, info, len, NULL, NULL, &perr) != BT_BENC_OK)
		return bt_err_set(err, -EINVAL, "info: bencode: %s", perr.msg);
	const struct bt_benc_node *root = bt_benc_root(&doc);
	int rc = root->type != BT_BENC_DICT ? BAD("'info' is not a dictionary")
					    : load_info(m, root, src, fd, err);
	bt_benc_doc_deinit(&doc);
	if (rc)
		return rc;
	for (size_t i = 0; i < tier_count; i++) {
		char **urls = bt_xcalloc(tiers[i].count ? tiers[i].count : 1, sizeof *urls);
		size_t n = 0;
		for (size_t j = 0; j < tiers[i].count; j++)
			if (tiers[i].urls[j] && tiers[i].urls[j][0])
				urls[n++] = bt_xstrdup(tiers[i].urls[j]);
		if (n)
			add_tier(m, urls, n);
		else
			free(urls);
	}
	return 0;
}

int bt_meta_parse_info(struct bt_metainfo *m, const uint8_t *info, size_t len,
		       const struct bt_meta_tier *tiers, size_t tier_count, struct bt_err *err)
{
	return parse_bare(m, info, len, SRC_COPY, -1, tiers, tier_count, err);
}

int bt_meta_parse_info_fd(struct bt_metainfo *m, int fd, size_t len,
			  const struct bt_meta_tier *tiers, size_t tier_count, struct bt_err *err)
{
	memset(m, 0, sizeof *m);
	if (len == 0 || len > BT_META_MAX_FILE_SIZE)
		return BAD("info: %zu bytes, not within 1 to %zu", len, BT_META_MAX_FILE_SIZE);
	/* A mapping past the end of the file faults (SIGBUS): check it is all there first. */
	struct stat st;
	if (fstat(fd, &st))
		return bt_err_set(err, -errno, "info: cannot stat its temporary file: %s",
				  strerror(errno));
	if ((uint64_t)st.st_size < len)
		return bt_err_set(
			err, -EIO,
			"info: its temporary file holds %lld bytes, not the %zu of the dict",
			(long long)st.st_size, len);
	/* Mapped, as a large .torrent is: only the pages the parser and the hash touch are
	 * resident, and the hash gives them back as it goes. */
	void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		return bt_err_set(err, -errno, "info: cannot map its temporary file: %s",
				  strerror(errno));
	int rc = parse_bare(m, map, len, SRC_FILE, fd, tiers, tier_count, err);
	munmap(map, len);
	return rc;
}

int bt_meta_parse_info_of(struct bt_metainfo *m, const struct bt_metainfo *src,
			  const struct bt_meta_tier *tiers, size_t tier_count, struct bt_err *err)
{
	if (src->info_raw)
		return bt_meta_parse_info(m, src->info_raw, src->info_len, tiers, tier_count, err);
	if (!src->spill) {
		memset(m, 0, sizeof *m);
		return BAD("info: the metainfo holds no info dict");
	}
	/* The spill file is the dict: m maps it and shares it (neither writes to it again),
	 * rather than read 20 MiB back into memory and write a second file. */
	return bt_meta_parse_info_fd(m, bt_meta_spill_fd(src->spill), src->info_len, tiers,
				     tier_count, err);
}

/* rc, with err's message prefixed by the path (a parse error says where, not in which file). */
static int in_file(const char *path, int rc, struct bt_err *err)
{
	if (rc && err) {
		char msg[BT_ERR_MAX];
		memcpy(msg, err->msg, sizeof msg);
		bt_err_set(err, rc, "%s: %s", path, msg);
	}
	return rc;
}

int bt_meta_load_file(struct bt_metainfo *m, const char *path, struct bt_err *err)
{
	memset(m, 0, sizeof *m);
	struct stat st;
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size <= BT_META_SPILL_HASHES ||
	    (uint64_t)st.st_size > BT_META_MAX_FILE_SIZE) {
		/* Small files, pipes and every error: read whole, with bt_read_file's messages. */
		if (fd >= 0)
			close(fd);
		uint8_t *data;
		size_t len;
		int rc = bt_read_file(path, BT_META_MAX_FILE_SIZE, &data, &len, err);
		return rc ? rc : in_file(path, bt_meta_parse_owned(m, data, len, err), err);
	}
	/*
	 * Mapped, a large file costs memory only for the pages touched: the parser skips over the
	 * piece hashes, and spilling them gives their pages back as it goes.
	 */
	size_t len = (size_t)st.st_size;
	void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	int e = errno;
	close(fd);
	if (map == MAP_FAILED)
		return bt_err_set(err, -e, "cannot map '%s': %s", path, strerror(e));
	int rc = parse_torrent(m, map, len, SRC_MAPPED, err);
	munmap(map, len);
	return in_file(path, rc, err);
}

/* key and its list of strings. */
static void put_strings(struct bt_buf *out, const char *key, char *const *v, size_t n)
{
	bt_benc_put_cstr(out, key);
	bt_benc_begin_list(out);
	for (size_t i = 0; i < n; i++)
		bt_benc_put_cstr(out, v[i]);
	bt_benc_end(out);
}

int bt_meta_write_torrent(const struct bt_metainfo *m, struct bt_buf *out)
{
	if ((!m->info_raw && !m->spill) || !m->info_len)
		return -EINVAL;
	/* Keys in byte order; the info dict goes in verbatim so its hash cannot change. */
	bt_benc_begin_dict(out);
	const char *announce = bt_meta_tracker(m);
	if (announce) {
		bt_benc_put_cstr(out, "announce");
		bt_benc_put_cstr(out, announce);
	}
	if (m->tier_count) {
		bt_benc_put_cstr(out, "announce-list");
		bt_benc_begin_list(out);
		for (size_t i = 0; i < m->tier_count; i++) {
			bt_benc_begin_list(out);
			for (size_t j = 0; j < m->tiers[i].count; j++)
				bt_benc_put_cstr(out, m->tiers[i].urls[j]);
			bt_benc_end(out);
		}
		bt_benc_end(out);
	}
	if (m->comment) {
		bt_benc_put_cstr(out, "comment");
		bt_benc_put_cstr(out, m->comment);
	}
	if (m->created_by) {
		bt_benc_put_cstr(out, "created by");
		bt_benc_put_cstr(out, m->created_by);
	}
	if (m->has_creation_date) {
		bt_benc_put_cstr(out, "creation date");
		bt_benc_put_int(out, m->creation_date);
	}
	bt_benc_put_cstr(out, "info");
	bt_buf_reserve(out, m->info_len);
	int rc = bt_meta_info_read(m, 0, out->data + out->len, m->info_len);
	if (rc)
		return rc;
	out->len += m->info_len;
	out->data[out->len] = '\0';
	if (m->web_seed_count)
		put_strings(out, "url-list", m->web_seeds, m->web_seed_count);
	bt_benc_end(out);
	return 0;
}

static void free_strings(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void bt_meta_deinit(struct bt_metainfo *m)
{
	free(m->name);
	free(m->orig_name);
	for (size_t i = 0; i < m->file_count; i++) {
		free(m->files[i].path);
		free(m->files[i].orig_path);
	}
	free(m->files);
	free(m->announce);
	for (size_t i = 0; i < m->tier_count; i++)
		free_strings(m->tiers[i].urls, m->tiers[i].count);
	free(m->tiers);
	free_strings(m->web_seeds, m->web_seed_count);
	free_strings(m->dht_nodes, m->dht_node_count);
	free(m->created_by);
	free(m->comment);
	free(m->info_raw);
	bt_meta_spill_free(m->spill);
	memset(m, 0, sizeof *m);
}

const char *bt_meta_tracker(const struct bt_metainfo *m)
{
	if (m->announce)
		return m->announce;
	return m->tier_count ? m->tiers[0].urls[0] : NULL;
}

int64_t bt_meta_piece_size(const struct bt_metainfo *m, uint32_t i)
{
	struct bt_geometry g = bt_meta_geometry(m);
	return bt_geometry_piece_size(&g, i);
}
