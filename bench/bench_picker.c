/*
 * bench_picker: what choosing pieces costs, per piece started, and the heap the picker holds.
 *
 * Three runs over a picker driven to the end (every block picked, received and passed):
 *   seeder   N pieces of 16 KiB (default 1,048,576: 16 GiB), one seeder, 64 blocks per call
 *   swarm    the same pieces, 8 peers each holding a random half, taking turns, 16 per call
 *   1gib     4,096 pieces of 256 KiB (the 1 GiB benchmark), 8 seeders, 64 blocks per call
 * Printed: wall time, nanoseconds per piece, and the heap bt_picker_new took (mallinfo2). A
 * number to compare builds by (say, before and after a change), never a pass/fail.
 *
 * Usage: bench_picker [--pieces N]
 */
#include "bt/picker.h"

#include "bt/util.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/*
 * Drives a picker of count pieces of plen bytes to the end with npeers peers taking turns
 * (each a seeder, or holding about half the pieces); prints one line.
 */
static void run(const char *name, uint32_t count, int64_t plen, int npeers, bool halves,
		size_t per_call)
{
	struct bt_geometry g;
	if (bt_geometry_init(&g, plen, (int64_t)count * plen)) {
		fprintf(stderr, "bench_picker: bad geometry\n");
		exit(2);
	}
	struct bt_bitfield *peers = bt_xcalloc((size_t)npeers, sizeof *peers);
	for (int k = 0; k < npeers; k++) {
		bt_bitfield_init(&peers[k], count);
		for (uint32_t i = 0; i < count; i++)
			if (!halves || next() & 1)
				bt_bitfield_set(&peers[k], i);
	}
	size_t heap0 = mallinfo2().uordblks + mallinfo2().hblkhd;
	double t0 = now_s();
	struct bt_picker *p = bt_picker_new(&g, NULL, NULL, 42);
	size_t heap = mallinfo2().uordblks + mallinfo2().hblkhd - heap0;
	for (int k = 0; k < npeers; k++)
		bt_picker_add_peer(p, &peers[k]);
	double t1 = now_s();
	struct bt_block *out = bt_xcalloc(per_call, sizeof *out);
	uint64_t calls = 0, idle = 0;
	for (int k = 0; !bt_picker_done(p); k = (k + 1) % npeers) {
		size_t n = bt_picker_pick(p, &peers[k], out, per_call, NULL, NULL);
		calls++;
		if (!n && ++idle > (uint64_t)npeers * 4)
			break; /* pieces nobody has (halves): left undone */
		if (n)
			idle = 0;
		for (size_t j = 0; j < n; j++) {
			bool complete;
			if (bt_picker_received(p, &out[j], &complete) && complete)
				bt_picker_piece_passed(p, out[j].piece);
		}
	}
	double t2 = now_s();
	uint32_t done = count - bt_picker_pieces_left(p);
	printf("%-7s %8u pieces of %4lld KiB, %d peer(s)%s: new+add %.3f s, picking %.3f s, "
	       "%.0f ns per piece, %llu calls; picker heap %.2f MiB (%.2f bytes per piece)\n",
	       name, count, (long long)(plen >> 10), npeers, halves ? " with half each" : "",
	       t1 - t0, t2 - t1, (t2 - t1) * 1e9 / (done ? done : 1), (unsigned long long)calls,
	       (double)heap / (1 << 20), (double)heap / count);
	bt_picker_free(p);
	for (int k = 0; k < npeers; k++)
		bt_bitfield_deinit(&peers[k]);
	free(peers);
	free(out);
}

int main(int argc, char **argv)
{
	uint32_t pieces = 1u << 20;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--pieces") == 0 && i + 1 < argc) {
			pieces = (uint32_t)strtoul(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "usage: bench_picker [--pieces N]\n");
			return 2;
		}
	}
	if (pieces == 0) {
		fprintf(stderr, "bench_picker: --pieces must be at least 1\n");
		return 2;
	}
	run("seeder", pieces, 16 << 10, 1, false, 64);
	run("swarm", pieces, 16 << 10, 8, true, 16);
	run("1gib", 4096, 256 << 10, 8, false, 64);
	return 0;
}
