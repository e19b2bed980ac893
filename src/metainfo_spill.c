/*
 * The on-disk info dict (see include/bt/metainfo.h and metainfo_internal.h): writing a large
 * torrent's info dict to an unlinked temporary file, and reading it and its piece hashes back.
 */
#include "metainfo_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Hashes per cache block: 204 * 20 = 4080 bytes, so that no hash straddles two blocks. */
#define SPILL_BLOCK_HASHES 204
/*
 * Cached blocks: verification goes piece by piece, mostly in order, so a few blocks serve it;
 * one more keeps a block that serving peers' requests touches from evicting the current one.
 */
#define SPILL_BLOCKS 4
/* Spilling hashes and writes this much at a time; a mapped source drops its pages after each. */
#define SPILL_CHUNK ((size_t)1 << 20)

struct bt_meta_spill {
	int fd;			   /* unlinked: closing it is all the clean-up there is */
	size_t hashes_off;	   /* of the `pieces` string's bytes in the info dict */
	int64_t tag[SPILL_BLOCKS]; /* the block each slot holds, or -1 */
	unsigned next; /* the slot to reuse next (round robin: the order is mostly linear) */
	uint8_t block[SPILL_BLOCKS][SPILL_BLOCK_HASHES * BT_SHA1_LEN];
	uint8_t *at; /* bt_meta_info_at's buffer, allocated at its first use */
};

int bt_meta_pwrite(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
		off += (size_t)w;
	}
	return 0;
}

int bt_meta_pread(int fd, uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO; /* 0: the file is shorter than we wrote it */
		p += r;
		n -= (size_t)r;
		off += (size_t)r;
	}
	return 0;
}

int bt_meta_tmpfile(const char **dir_out)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !dir[0])
		dir = "/tmp";
	*dir_out = dir;
	int fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* Not every file system has O_TMPFILE: a named file, unlinked at once. */
	size_t n = strlen(dir) + sizeof "/torrent-info-XXXXXX";
	char *path = bt_xmalloc(n);
	snprintf(path, n, "%s/torrent-info-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	int rc = fd < 0 ? -errno : 0;
	if (fd >= 0)
		unlink(path);
	free(path);
	return fd >= 0 ? fd : rc;
}

/*
 * Hashes the info dict a chunk at a time, writing each chunk to fd when `write` (else fd holds
 * the dict already); from a mapping, each chunk's pages are given back once done, so the dict
 * is never all resident. Then makes m->spill of fd.
 */
static int spill_to(struct bt_metainfo *m, int fd, bool write, const uint8_t *raw, size_t len,
		    size_t hashes_off, bool mapped, const char *dir, struct bt_err *err)
{
	if (m->hybrid)
		bt_sha256(raw, len, m->info_hash_v2); /* no incremental SHA-256: rare enough */
	struct bt_sha1_ctx *h = bt_sha1_new();
	long page = sysconf(_SC_PAGESIZE);
	uintptr_t mask = page > 0 ? (uintptr_t)page - 1 : 4095;
	int rc = 0;
	for (size_t off = 0; off < len && !rc; off += SPILL_CHUNK) {
		size_t n = len - off < SPILL_CHUNK ? len - off : SPILL_CHUNK;
		bt_sha1_update(h, raw + off, n);
		if (write)
			rc = bt_meta_pwrite(fd, raw + off, n, off);
		uintptr_t a = ((uintptr_t)(raw + off) + mask) & ~mask,
			  b = (uintptr_t)(raw + off + n) & ~mask;
		if (mapped && b > a)
			madvise((void *)a, b - a, MADV_DONTNEED);
	}
	bt_sha1_final(h, m->info_hash);
	bt_sha1_free(h);
	if (rc) {
		close(fd);
		return bt_err_set(err, rc,
				  "info: cannot write %zu bytes to a temporary file in '%s': %s",
				  len, dir, strerror(-rc));
	}
	struct bt_meta_spill *s = bt_xcalloc(1, sizeof *s);
	s->fd = fd;
	s->hashes_off = hashes_off;
	for (int k = 0; k < SPILL_BLOCKS; k++)
		s->tag[k] = -1;
	m->spill = s;
	return 0;
}

int bt_meta_spill_write(struct bt_metainfo *m, const uint8_t *raw, size_t len, size_t hashes_off,
			bool mapped, struct bt_err *err)
{
	const char *dir;
	int fd = bt_meta_tmpfile(&dir);
	if (fd < 0)
		return bt_err_set(err, fd,
				  "info: cannot make a temporary file in '%s' for %u "
				  "piece hashes: %s",
				  dir, m->piece_count, strerror(-fd));
	return spill_to(m, fd, true, raw, len, hashes_off, mapped, dir, err);
}

int bt_meta_spill_adopt(struct bt_metainfo *m, int fd, const uint8_t *raw, size_t len,
			size_t hashes_off, struct bt_err *err)
{
	int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (own < 0)
		return bt_err_set(err, -errno, "info: cannot keep its temporary file: %s",
				  strerror(errno));
	return spill_to(m, own, false, raw, len, hashes_off, true, "", err);
}

int bt_meta_spill_fd(const struct bt_meta_spill *s)
{
	return s->fd;
}

void bt_meta_spill_free(struct bt_meta_spill *s)
{
	if (!s)
		return;
	close(s->fd);
	free(s->at);
	free(s);
}

int bt_meta_info_read(const struct bt_metainfo *m, size_t off, uint8_t *out, size_t len)
{
	if (off > m->info_len || len > m->info_len - off)
		return -EINVAL;
	if (m->info_raw) {
		memcpy(out, m->info_raw + off, len);
		return 0;
	}
	return m->spill ? bt_meta_pread(m->spill->fd, out, len, off) : -EINVAL;
}

const uint8_t *bt_meta_info_at(const struct bt_metainfo *m, size_t off, size_t len)
{
	if (off > m->info_len || len > m->info_len - off)
		return NULL;
	if (m->info_raw)
		return m->info_raw + off;
	if (!m->spill || len > BT_META_INFO_AT_MAX)
		return NULL;
	struct bt_meta_spill *s = m->spill;
	if (!s->at)
		s->at = bt_xmalloc(BT_META_INFO_AT_MAX);
	return bt_meta_pread(s->fd, s->at, len, off) ? NULL : s->at;
}

int bt_meta_piece_hash(const struct bt_metainfo *m, uint32_t i, uint8_t out[BT_SHA1_LEN])
{
	if (i < m->piece_count && m->piece_hashes) {
		memcpy(out, m->piece_hashes + (size_t)i * BT_SHA1_LEN, BT_SHA1_LEN);
		return 0;
	}
	memset(out, 0, BT_SHA1_LEN);
	if (i >= m->piece_count || !m->spill)
		return -EINVAL;
	struct bt_meta_spill *s = m->spill;
	int64_t blk = i / SPILL_BLOCK_HASHES;
	int slot = -1;
	for (int k = 0; k < SPILL_BLOCKS && slot < 0; k++)
		if (s->tag[k] == blk)
			slot = k;
	if (slot < 0) {
		slot = (int)s->next;
		s->next = (s->next + 1) % SPILL_BLOCKS;
		uint32_t first = (uint32_t)blk * SPILL_BLOCK_HASHES;
		uint32_t n = m->piece_count - first < SPILL_BLOCK_HASHES ? m->piece_count - first
									 : SPILL_BLOCK_HASHES;
		s->tag[slot] = -1;
		int rc = bt_meta_pread(s->fd, s->block[slot], (size_t)n * BT_SHA1_LEN,
				       s->hashes_off + (size_t)first * BT_SHA1_LEN);
		if (rc)
			return rc;
		s->tag[slot] = blk;
	}
	memcpy(out, s->block[slot] + (size_t)(i % SPILL_BLOCK_HASHES) * BT_SHA1_LEN, BT_SHA1_LEN);
	return 0;
}
