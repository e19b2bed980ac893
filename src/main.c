#include "bt/cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <stdbool.h>
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
	      "       torrent <command> --help     (or: torrent help <command>)\n"
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

/*
 * The libraries as loaded at run time, not as compiled against: a bug report needs the versions
 * that actually ran, and a shared library can be upgraded under the binary.
 */
static void print_version(void)
{
	const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
	printf("torrent %s\n", BT_VERSION);
	printf("libevent %s\n", event_get_version());
	printf("libcurl %s (%s)\n", curl->version,
	       curl->ssl_version ? curl->ssl_version : "no TLS");
	printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
}

static const struct bt_cli_command *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(name, commands[i]->name) == 0)
			return commands[i];
	return NULL;
}

static int unknown_command(const char *name)
{
	const char *names[N_COMMANDS];
	for (size_t i = 0; i < N_COMMANDS; i++)
		names[i] = commands[i]->name;
	int near = bt_cli_nearest(name, names, N_COMMANDS);
	fputs("torrent: unknown command '", stderr);
	bt_cli_put_safe(stderr, name);
	if (near >= 0)
		fprintf(stderr, "'; did you mean '%s'?\n", names[near]);
	else
		fputs("' (see 'torrent --help')\n", stderr);
	return BT_EXIT_USAGE;
}

static int run_command(const struct bt_cli_command *cmd, int argc, char **argv)
{
	int rc = cmd->run(argc, argv);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "torrent: %s: cannot write the output: %s\n", cmd->name,
			strerror(errno));
		return rc ? rc : BT_EXIT_FAILURE;
	}
	return rc;
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
	bool general_help = argc == 2 || strcmp(argv[2], "help") == 0 ||
			    strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0;
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 ||
	    (strcmp(name, "help") == 0 && general_help)) {
		print_help(stdout);
		return BT_EXIT_OK;
	}
	if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
		print_version();
		return BT_EXIT_OK;
	}
	if (strcmp(name, "help") == 0) {
		/*
		 * "help CMD" runs the command itself with --help, so the two can never say
		 * different things.
		 */
		if (argc > 3) {
			fputs("torrent: help takes one command (see 'torrent --help')\n", stderr);
			return BT_EXIT_USAGE;
		}
		const struct bt_cli_command *cmd = find_command(argv[2]);
		if (!cmd)
			return unknown_command(argv[2]);
		char *help_argv[] = {(char *)cmd->name, "--help", NULL};
		return run_command(cmd, 2, help_argv);
	}
	const struct bt_cli_command *cmd = find_command(name);
	if (!cmd)
		return unknown_command(name);
	return run_command(cmd, argc - 1, argv + 1);
}
