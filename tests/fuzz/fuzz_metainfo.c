/*
 * Parses arbitrary bytes as a .torrent file. For every input accepted, checks what the rest of
 * the client relies on: pieces cover the total length exactly, files tile the data in order,
 * and no path can escape the output directory.
 */
#include "bt/metainfo.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_path(const char *path)
{
	if (path[0] == '/' || path[0] == '\0')
		abort();
	for (const char *c = path; *c;) {
		const char *slash = strchr(c, '/');
		size_t n = slash ? (size_t)(slash - c) : strlen(c);
		if (!bt_meta_component_ok((const uint8_t *)c, n))
			abort();
		c += n + (slash != NULL);
		if (slash && *c == '\0')
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bt_metainfo m;
	struct bt_err err;
	if (bt_meta_parse(&m, data, size, &err) != 0)
		return 0;
	if (m.piece_length <= 0 || m.total_length <= 0 || m.piece_count == 0)
		abort();
	int64_t covered = (int64_t)(m.piece_count - 1) * m.piece_length +
			  bt_meta_piece_size(&m, m.piece_count - 1);
	if (covered != m.total_length || bt_meta_piece_size(&m, m.piece_count - 1) <= 0)
		abort();
	int64_t offset = 0;
	for (size_t i = 0; i < m.file_count; i++) {
		if (m.files[i].offset != offset || m.files[i].length < 0)
			abort();
		offset += m.files[i].length;
		check_path(m.files[i].path);
	}
	if (offset != m.total_length)
		abort();
	check_path(m.name);
	/* The hashes live inside the stored info bytes (or, spilled, can be read back); every
	 * piece has a sane size. */
	uint8_t h[20];
	if (!m.piece_hashes) {
		if (m.info_raw || (m.piece_count && bt_meta_piece_hash(&m, m.piece_count - 1, h)))
			abort();
	} else if (m.piece_hashes < m.info_raw ||
		   m.piece_hashes + (size_t)m.piece_count * 20 > m.info_raw + m.info_len) {
		abort();
	}
	for (uint32_t i = 0; i < m.piece_count; i++) {
		int64_t ps = bt_meta_piece_size(&m, i);
		if (ps <= 0 || ps > m.piece_length)
			abort();
	}
	/* No two files that are written share a path, and none sits where a directory must be. */
	for (size_t i = 0; i < m.file_count; i++) {
		for (size_t j = i + 1; j < m.file_count && !m.files[i].pad; j++) {
			if (m.files[j].pad)
				continue;
			const char *a = m.files[i].path, *b = m.files[j].path;
			size_t la = strlen(a), lb = strlen(b);
			if (!strcmp(a, b) || (la < lb && !strncmp(a, b, la) && b[la] == '/') ||
			    (lb < la && !strncmp(a, b, lb) && a[lb] == '/'))
				abort();
		}
	}
	bt_meta_deinit(&m);
	return 0;
}
