/*
 * progress: pure formatting of what long commands show while they work and when they end:
 * byte counts and rates in binary (IEC) units through one formatter, an ETA, the one-line
 * progress display and its JSON form, each file's share of the verified pieces, the upload
 * summary, and the cut of a line to a terminal's width (by display columns, never splitting a
 * UTF-8 character). No I/O: the command decides where and how often to print.
 *
 * A JSON progress line carries the files whose verified bytes changed since the last line
 * (the caller keeps what it said and picks them, at most BT_PROGRESS_JSON_FILES a line), so a
 * torrent of thousands of files does not make every line long; a reader that applies each
 * line's entries holds every file's state.
 */
#ifndef BT_PROGRESS_H
#define BT_PROGRESS_H

#include "bt/bitfield.h"
#include "bt/metainfo.h"
#include "bt/util.h"

#include <stddef.h>
#include <stdint.h>

/* Files listed in one JSON progress line at most; the others wait for the next lines. */
#define BT_PROGRESS_JSON_FILES 64

/* One file's entry in a JSON progress line. */
struct bt_progress_file {
	size_t index;	  /* from 1, pad files not counted: the number `info` shows */
	const char *path; /* borrowed */
	uint64_t size, done;
	uint64_t prefix; /* bytes from the file's start all verified: what a player may read */
	bool selected;
};

struct bt_progress {
	uint64_t done, total; /* bytes */
	double rate;	      /* bytes/s */
	double elapsed;	      /* seconds */
	size_t peers, unchoking;
	const char *name; /* the torrent's, when several are shown; NULL otherwise */
	/* Before the first byte, what the job waits for ("waiting for trackers", "connecting to 3
	 * peers", "fetching metadata"): shown instead of the rate and ETA. NULL once data flows. */
	const char *phase;
	/* With the DHT on (dht): the nodes it knows and the peers it gave this torrent. */
	bool dht;
	size_t dht_nodes;
	uint64_t dht_peers;
	/* With web seeds (webseeds > 0): the URLs, those fetching now, and the bytes they sent
	 * (counted in done once verified, and shown apart). */
	size_t webseeds, webseeds_active;
	uint64_t webseed_bytes;
	/* JSON only: the files this line reports (files_on: a "files" array, even empty), and
	 * how many changed files wait for a later line (files_pending). */
	bool files_on;
	const struct bt_progress_file *files;
	size_t nfiles, files_pending;
};

/* "1.5 MiB", "512 B", "3.2 GiB" */
void bt_format_bytes(char *out, size_t n, double bytes);
/* "12.3 MiB/s" */
void bt_format_rate(char *out, size_t n, double bytes_per_s);
/* "42s", "3m05s", "2h01m", or "--" when unknown */
void bt_format_eta(char *out, size_t n, double seconds);

/* " 42.0%  420.0 MiB of 1.0 GiB  312.5 MiB/s  ETA 2s  peers 8 (8 unchoking)" (then
 * " + web seeds 1 (1 active, 12.0 MiB)" with web seeds, and "  DHT 120 nodes, 3 peers" with the
 * DHT on), or with a phase "connecting to 3 peers   0.0%  0 B of 1.0 GiB" */
void bt_progress_line(char *out, size_t n, const struct bt_progress *p);
/* {"done":..,"total":..,"percent":..,"rate":..,"eta":..,"peers":..,"unchoking":..,"elapsed":..}
 * plus "phase":".." when there is one, "dht_nodes":..,"dht_peers":.. with the DHT on,
 * "webseeds":..,"webseeds_active":..,"webseed_bytes":.. with web seeds, and with files_on
 * "files":[{"index":..,"path":..,"size":..,"done":..,"prefix":..,"selected":..},..] (then
 * "files_pending":.. when some wait). */
void bt_progress_json(struct bt_buf *out, const struct bt_progress *p);

/* "checking  37%  (120 of 320 pieces)": the recheck of data already on disk. */
void bt_progress_checking_line(char *out, size_t n, uint32_t done, uint32_t total);

/*
 * For each of m's files, in one walk over the pieces that overlap it: the bytes covered by
 * pieces set in have (done_out, file_count entries; a pad file counts as done) and, unless
 * prefix_out is NULL, the bytes from its start up to the first piece not in have (a pad file,
 * or an empty one, counts as whole).
 */
void bt_progress_files(const struct bt_metainfo *m, const struct bt_bitfield *have,
		       uint64_t *done_out, uint64_t *prefix_out);
/*
 * Picks the files for one JSON line: of the count files (done_now[i] against said[i], what the
 * lines said last, UINT64_MAX for never), at most max changed ones, going round from *cursor so
 * that files changing every second do not keep the others out forever. Writes their indexes
 * into picked_out, updates said and *cursor, and returns how many; *pending_out gets how many
 * changed files were left for later.
 */
size_t bt_progress_files_changed(const uint64_t *done_now, uint64_t *said, size_t count,
				 size_t *cursor, size_t max, size_t *picked_out,
				 size_t *pending_out);
/* "complete              1.0 MiB  dir/a.bin" or "incomplete  37.5%     1.0 MiB  dir/a.bin"
 * (done of length); verbose adds the bytes done: "incomplete  37.5%  384.0 KiB of 1.0 MiB  ...".
 */
void bt_progress_file_line(char *out, size_t n, const char *path, uint64_t done, uint64_t length,
			   bool verbose);
/* "uploaded 20.0 MiB to 3 peers in 12 s, ratio 1.00" (ratio of uploaded to size). */
void bt_progress_upload_line(char *out, size_t n, uint64_t uploaded, size_t peers, double seconds,
			     uint64_t size);

/* The display columns of a UTF-8 line (a wide East Asian character counts two). */
size_t bt_progress_columns(const char *line);
/* Cuts line in place to at most cols display columns, at a character boundary. */
void bt_progress_fit(char *line, size_t cols);

#endif
