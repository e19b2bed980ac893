#include "bt/cli.h"

#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <sys/resource.h>

#ifndef BT_VERSION
#define BT_VERSION "unknown"
#endif

static const struct bt_cli_command *const commands[] = {
	&bt_cmd_decode,	  &bt_cmd_info,	  &bt_cmd_peers, &bt_cmd_handshake, &bt_cmd_download_piece,
	&bt_cmd_download, &bt_cmd_create, &bt_cmd_seed,	 &bt_cmd_bench,
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_help(FILE *f)
{
	fputs("Usage: torrent <command> [options] [arguments]\n"
	      "       torrent <command> --help\n"
	      "       torrent --version\n"
	      "\n"
	      "A command-line BitTorrent client.\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-16s %s\n", commands[i]->name, commands[i]->summary);
	fputs("\n"
	      "Options may come before or after the arguments. Results go to standard output;\n"
	      "diagnostics go to standard error, one line each, starting with 'torrent: '.\n"
	      "\n"
	      "Exit status:\n"
	      "  0  success\n"
	      "  1  operational failure (network, peers, disk, verification)\n"
	      "  2  bad usage or invalid input (options, arguments, unreadable or malformed "
	      "files)\n",
	      f);
}

int main(int argc, char **argv)
{
	/*
	 * Socket buffers and piece buffers are allocated and freed all the time at sizes where
	 * glibc would map and unmap them (or trim the heap) each time, a page fault per 4 KiB
	 * touched. Keep freed memory for reuse instead: peak memory is bounded anyway.
	 */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	/*
	 * Descriptors are shared by peers and files (storage keeps at most a quarter of the soft
	 * limit open): raise the soft limit to the hard one, here once for every command.
	 */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	if (argc < 2) {
		fputs("torrent: no command given (see 'torrent --help')\n", stderr);
		return BT_EXIT_USAGE;
	}
	const char *name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
		print_help(stdout);
		return BT_EXIT_OK;
	}
	if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
		printf("torrent %s\n", BT_VERSION);
		return BT_EXIT_OK;
	}
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(name, commands[i]->name) != 0)
			continue;
		int rc = commands[i]->run(argc - 1, argv + 1);
		if (fflush(stdout) != 0 || ferror(stdout)) {
			fprintf(stderr, "torrent: %s: cannot write the output: %s\n", name,
				strerror(errno));
			return rc ? rc : BT_EXIT_FAILURE;
		}
		return rc;
	}
	fprintf(stderr, "torrent: unknown command '%s' (see 'torrent --help')\n", name);
	return BT_EXIT_USAGE;
}
