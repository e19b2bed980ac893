/*
 * `bench`: a local swarm that anyone can start. Random data in a temporary directory, a torrent
 * of it, N `torrent seed` processes of our own on 127.0.0.11, .12, ..., and one
 * `torrent download` from all of them; then a table of what it cost. Every process it starts it
 * stops by PID, and it removes every file it made, on Ctrl-C too.
 */
#include "bt/cli.h"
#include "bt/hash.h"
#include "bt/json.h"
#include "bt/maketorrent.h"
#include "bt/progress.h"
#include "bt/ratelimit.h"

#include <jansson.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SEEDERS 64
#define BASE_PORT   17011

static const char help[] =
	"Usage: torrent bench [options]\n"
	"\n"
	"Builds a local swarm and downloads from it: random data and a torrent of it in a\n"
	"temporary directory, N seeders that are 'torrent seed' processes on 127.0.0.11,\n"
	"127.0.0.12, ..., and one 'torrent download' using --peer for each (no tracker). The\n"
	"download is verified against the data, then a table shows size, wall time, MiB/s,\n"
	"time to first byte, the peers that sent data, CPU seconds (downloader and seeders\n"
	"apart), the downloader's peak memory and each seeder's share of the bytes. Everything\n"
	"started is stopped and every file made is removed, on Ctrl-C too. All traffic stays on\n"
	"127.0.0.0/8. Sizes and rates are in binary units (KiB = 1024 bytes, MiB/s).\n"
	"\n"
	"Options:\n"
	"  -s, --size SIZE          data to download (default 1GiB; K, M, G suffixes)\n"
	"  -n, --seeders N          seeders (default 8, at most 64)\n"
	"  -l, --piece-length SIZE  piece length (default 1MiB)\n"
	"      --json               print the result as one JSON object\n"
	"      --plot FILE.svg      draw the download's throughput over time, per seeder, and\n"
	"                           each seeder's share (see 'torrent download --help')\n"
	"      --stats FILE         the same numbers as JSON lines, one per second\n"
	"      --keep               keep the temporary directory (its path is printed)\n"
	"  -h, --help               show this help\n"
	"\n"
	"Exit status: 0 the download completed and verified, 1 it did not, 2 bad usage.\n";

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

struct bench {
	uint64_t size;
	int64_t piece_length;
	unsigned seeders;
	bool json, keep;
	const char *plot_path, *stats_path; /* passed on to the downloader */
	char dir[512];
	char data[600], torrent[600], out[600];
	pid_t seed_pids[MAX_SEEDERS];
	unsigned nseeds;
	double seed_cpu_before[MAX_SEEDERS];
};

/* Random bytes, fast (xoshiro256**): the point is data no compressor or cache can fake. */
static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static int make_data(struct bench *b, struct bt_err *err)
{
	uint64_t s[4];
	bt_random_bytes(s, sizeof s);
	int fd = open(b->data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return bt_err_set(err, -errno, "%s: %s", b->data, strerror(errno));
	enum { CHUNK = 1 << 20 };
	uint64_t *buf = bt_xmalloc(CHUNK);
	int rc = 0;
	for (uint64_t done = 0; done < b->size && !rc && !interrupted;) {
		for (size_t i = 0; i < CHUNK / 8; i++) {
			uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
			s[2] ^= s[0];
			s[3] ^= s[1];
			s[1] ^= s[2];
			s[0] ^= s[3];
			s[2] ^= t;
			s[3] = rotl(s[3], 45);
			buf[i] = r;
		}
		size_t n = b->size - done < CHUNK ? (size_t)(b->size - done) : CHUNK;
		if (write(fd, buf, n) != (ssize_t)n)
			rc = bt_err_set(err, -errno, "%s: %s", b->data, strerror(errno));
		done += n;
	}
	free(buf);
	close(fd);
	return rc;
}

static pid_t spawn(char *const argv[], int stderr_fd)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (stderr_fd >= 0)
			dup2(stderr_fd, STDERR_FILENO);
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, STDOUT_FILENO);
		signal(SIGINT, SIG_IGN); /* the bench stops its children itself, by PID */
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	return pid;
}

static double process_cpu(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	unsigned long utime = 0, stime = 0;
	/* After the command name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime. */
	if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
			&stime) == 2)
		return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
	return 0;
}

static bool wait_listening(unsigned i, double deadline)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)(BASE_PORT + i))};
	sin.sin_addr.s_addr = htonl(0x7f00000b + i);
	while (bt_now() < deadline && !interrupted) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int ok = connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
		close(fd);
		if (ok)
			return true;
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	return false;
}

static void stop_seeders(struct bench *b)
{
	for (unsigned i = 0; i < b->nseeds; i++)
		kill(b->seed_pids[i], SIGTERM);
	double deadline = bt_now() + 5;
	for (unsigned i = 0; i < b->nseeds; i++) {
		while (waitpid(b->seed_pids[i], NULL, WNOHANG) == 0) {
			if (bt_now() > deadline) {
				kill(b->seed_pids[i], SIGKILL);
				waitpid(b->seed_pids[i], NULL, 0);
				break;
			}
			struct timespec ts = {0, 10 * 1000000};
			nanosleep(&ts, NULL);
		}
	}
	b->nseeds = 0;
}

static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(p);
}

/* What the downloader's JSON lines said: its progress objects and its summary. */
struct summary {
	bool seen;
	double first_byte;
	uint64_t received;
	uint64_t peer_bytes[MAX_SEEDERS];
	size_t peers_max;  /* the most peers connected at once */
	size_t peers_used; /* peers that sent at least one byte */
};

static uint64_t get_u64(const json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));
	return v > 0 ? (uint64_t)v : 0;
}

static double get_num(const json_t *o, const char *key, double dflt)
{
	const json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : dflt;
}

static void parse_summary(const json_t *o, struct summary *s, unsigned seeders)
{
	s->seen = true;
	s->first_byte = get_num(o, "first_byte", -1);
	s->received = get_u64(o, "received");
	/* The seeders are let go once the download is done: the progress lines may never have
	 * shown them all, the summary's count has. */
	size_t most = (size_t)get_u64(o, "peers_max");
	if (most > s->peers_max)
		s->peers_max = most;
	size_t i;
	const json_t *peer;
	json_array_foreach(json_object_get(o, "peers"), i, peer)
	{
		uint64_t bytes = get_u64(peer, "bytes");
		const char *addr = json_string_value(json_object_get(peer, "address"));
		s->peers_used += bytes > 0;
		for (unsigned k = 0; addr && k < seeders; k++) {
			char name[32];
			snprintf(name, sizeof name, "127.0.0.%u:%u", 11 + k, BASE_PORT + k);
			if (strcmp(addr, name) == 0)
				s->peer_bytes[k] = bytes;
		}
	}
}

/*
 * One line of the downloader's stderr: a progress object is redrawn as our line, the summary
 * kept; anything else (an error or a warning) is passed on as it is, so a failing downloader
 * says why.
 */
static void take_line(const char *line, struct summary *s, unsigned seeders, double elapsed,
		      bool tty)
{
	json_t *o = line[0] == '{' ? json_loads(line, 0, NULL) : NULL;
	if (!json_is_object(o)) {
		json_decref(o);
		if (tty)
			fputs("\r\033[K", stderr);
		fprintf(stderr, "%s\n", line);
		return;
	}
	const char *event = json_string_value(json_object_get(o, "event"));
	if (event && strcmp(event, "summary") == 0) {
		parse_summary(o, s, seeders);
	} else if (json_object_get(o, "done")) {
		struct bt_progress p = {.done = get_u64(o, "done"),
					.total = get_u64(o, "total"),
					.rate = get_num(o, "rate", 0),
					.elapsed = elapsed,
					.peers = (size_t)get_u64(o, "peers"),
					.unchoking = (size_t)get_u64(o, "unchoking")};
		if (p.peers > s->peers_max)
			s->peers_max = p.peers;
		if (tty) {
			char text[200];
			bt_progress_line(text, sizeof text, &p);
			fprintf(stderr, "\rtorrent: bench: downloading %s\033[K", text);
		}
	}
	json_decref(o);
}

static bool files_equal(const char *a, const char *b)
{
	int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
	bool same = fa >= 0 && fb >= 0;
	enum { CHUNK = 1 << 20 };
	char *x = bt_xmalloc(CHUNK), *y = bt_xmalloc(CHUNK);
	while (same) {
		ssize_t n = read(fa, x, CHUNK), m = read(fb, y, CHUNK);
		if (n != m || n < 0 || memcmp(x, y, (size_t)(n > 0 ? n : 0)) != 0)
			same = false;
		if (n <= 0)
			break;
	}
	free(x);
	free(y);
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return same;
}

static int run_bench(struct bench *b)
{
	bool tty = isatty(STDERR_FILENO) && !b->json;
	struct bt_err err;
	snprintf(b->dir, sizeof b->dir, "%s/torrent-bench-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(b->dir)) {
		bt_cli_error("bench", "cannot make a temporary directory: %s", strerror(errno));
		return BT_EXIT_FAILURE;
	}
	snprintf(b->data, sizeof b->data, "%s/data.bin", b->dir);
	snprintf(b->torrent, sizeof b->torrent, "%s/data.torrent", b->dir);
	snprintf(b->out, sizeof b->out, "%s/out.bin", b->dir);
	int rc = BT_EXIT_FAILURE;
	char size_text[32];
	bt_format_bytes(size_text, sizeof size_text, (double)b->size);
	if (!b->json)
		fprintf(stderr, "torrent: bench: making %s of random data and its torrent in %s\n",
			size_text, b->dir);
	struct bt_buf tbuf;
	bt_buf_init(&tbuf);
	struct bt_make_opts mo = {
		.path = b->data, .piece_length = b->piece_length, .no_date = true};
	if (make_data(b, &err) || (!interrupted && bt_make_torrent(&mo, &tbuf, &err))) {
		bt_cli_error("bench", "%s", err.msg);
		goto out;
	}
	if (interrupted)
		goto out;
	int tfd = open(b->torrent, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (tfd < 0 || write(tfd, tbuf.data, tbuf.len) != (ssize_t)tbuf.len) {
		bt_cli_error("bench", "%s: %s", b->torrent, strerror(errno));
		if (tfd >= 0)
			close(tfd);
		goto out;
	}
	close(tfd);

	if (!b->json)
		fprintf(stderr, "torrent: bench: starting %u seeders on 127.0.0.11..127.0.0.%u\n",
			b->seeders, 10 + b->seeders);
	for (unsigned i = 0; i < b->seeders && !interrupted; i++) {
		char ip[32], port[16];
		snprintf(ip, sizeof ip, "127.0.0.%u", 11 + i);
		snprintf(port, sizeof port, "%u", BASE_PORT + i);
		char *argv[] = {"torrent",
				"seed",
				"--listen",
				ip,
				"-p",
				port,
				"--no-tracker",
				"--no-dht",
				"--assume-valid",
				"-q",
				b->torrent,
				b->data,
				NULL};
		b->seed_pids[b->nseeds++] = spawn(argv, -1);
	}
	double deadline = bt_now() + 15;
	for (unsigned i = 0; i < b->seeders; i++) {
		if (!wait_listening(i, deadline)) {
			if (!interrupted)
				bt_cli_error("bench", "seeder %u did not start listening", i + 1);
			goto out;
		}
		b->seed_cpu_before[i] = process_cpu(b->seed_pids[i]);
	}

	/* The downloader: its JSON progress comes through a pipe. */
	char **argv = bt_xcalloc(15 + 2 * (size_t)b->seeders, sizeof *argv);
	char(*peers)[32] = bt_xcalloc(b->seeders, sizeof *peers);
	size_t a = 0;
	argv[a++] = "torrent";
	argv[a++] = "download";
	argv[a++] = "--no-tracker";
	/* A local swarm: nothing goes to the DHT. */
	argv[a++] = "--no-dht";
	argv[a++] = "--progress=json";
	/* Our own seeders: if they stop sending, the run is broken, not slow. */
	argv[a++] = "--stall-timeout";
	argv[a++] = "60";
	argv[a++] = "-o";
	argv[a++] = b->out;
	if (b->plot_path) {
		argv[a++] = "--plot";
		argv[a++] = (char *)b->plot_path;
	}
	if (b->stats_path) {
		argv[a++] = "--stats";
		argv[a++] = (char *)b->stats_path;
	}
	for (unsigned i = 0; i < b->seeders; i++) {
		snprintf(peers[i], sizeof peers[i], "127.0.0.%u:%u", 11 + i, BASE_PORT + i);
		argv[a++] = "--peer";
		argv[a++] = peers[i];
	}
	argv[a++] = b->torrent;
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) != 0)
		bt_oom();
	double t0 = bt_now();
	pid_t dl = spawn(argv, pipefd[1]);
	close(pipefd[1]);
	free(argv);
	struct summary sum = {.first_byte = -1};
	struct bt_buf line;
	bt_buf_init(&line);
	int status = 0;
	struct rusage ru = {0};
	for (;;) {
		struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
		int pr = poll(&pfd, 1, 200);
		if (interrupted) {
			kill(dl, SIGTERM);
			wait4(dl, &status, 0, &ru);
			break;
		}
		if (pr <= 0)
			continue;
		char chunk[4096];
		ssize_t n = read(pipefd[0], chunk, sizeof chunk);
		if (n <= 0) {
			wait4(dl, &status, 0, &ru);
			break;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (chunk[i] != '\n') {
				bt_buf_addc(&line, chunk[i]);
				continue;
			}
			if (line.len)
				take_line((char *)line.data, &sum, b->seeders, bt_now() - t0, tty);
			line.len = 0;
		}
	}
	double wall = bt_now() - t0;
	close(pipefd[0]);
	bt_buf_deinit(&line);
	free(peers);
	if (tty)
		fputc('\n', stderr);
	double seed_cpu = 0;
	for (unsigned i = 0; i < b->seeders; i++)
		seed_cpu += process_cpu(b->seed_pids[i]) - b->seed_cpu_before[i];
	stop_seeders(b);
	if (interrupted)
		goto out;
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && files_equal(b->data, b->out);
	double user = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
	double sys = (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	double cpu = user + sys;
	double bps = (double)b->size / wall;
	if (b->json) {
		printf("{\"size\":%llu,\"piece_length\":%lld,\"seeders\":%u,\"verified\":%s,"
		       "\"wall_s\":%.3f,\"mib_per_s\":%.1f,\"first_byte_s\":%.3f,"
		       "\"peers_connected\":%zu,\"peers_used\":%zu,"
		       "\"cpu_s\":%.3f,\"cpu_user_s\":%.3f,\"cpu_system_s\":%.3f,"
		       "\"seeders_cpu_s\":%.3f,\"peak_rss_kib\":%ld,\"peers\":[",
		       (unsigned long long)b->size, (long long)b->piece_length, b->seeders,
		       ok ? "true" : "false", wall, bps / (1 << 20), sum.first_byte, sum.peers_max,
		       sum.peers_used, cpu, user, sys, seed_cpu, ru.ru_maxrss);
		for (unsigned i = 0; i < b->seeders; i++)
			printf("%s{\"address\":\"127.0.0.%u:%u\",\"bytes\":%llu}", i ? "," : "",
			       11 + i, BASE_PORT + i, (unsigned long long)sum.peer_bytes[i]);
		printf("]}\n");
	} else {
		char pl[32], rate[32];
		bt_format_bytes(pl, sizeof pl, (double)b->piece_length);
		bt_format_rate(rate, sizeof rate, bps);
		printf("size            %s (%u seeders, pieces of %s)\n", size_text, b->seeders,
		       pl);
		printf("verified        %s\n", ok ? "yes, byte for byte" : "NO");
		printf("wall time       %.2f s\n", wall);
		printf("throughput      %s\n", rate);
		printf("first byte      %.3f s\n", sum.first_byte);
		printf("peers           %zu connected, %zu sent data (of %u seeders)\n",
		       sum.peers_max, sum.peers_used, b->seeders);
		printf("CPU, download   %.2f s (%.2f s per GiB; user %.2f s, system %.2f s)\n", cpu,
		       cpu / ((double)b->size / (1 << 30)), user, sys);
		printf("CPU, seeders    %.2f s in all\n", seed_cpu);
		printf("peak memory     %.1f MiB (downloader)\n", ru.ru_maxrss / 1024.0);
		printf("share per seeder:\n");
		for (unsigned i = 0; i < b->seeders; i++)
			printf("  127.0.0.%-3u %5.1f%%\n", 11 + i,
			       sum.received
				       ? 100.0 * (double)sum.peer_bytes[i] / (double)sum.received
				       : 0.0);
	}
	if (!ok)
		bt_cli_error("bench", "the download %s",
			     WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "differs from the data"
									   : "failed");
	rc = ok ? BT_EXIT_OK : BT_EXIT_FAILURE;
out:
	stop_seeders(b);
	if (interrupted) {
		bt_cli_error("bench", "interrupted");
		rc = BT_EXIT_FAILURE;
	}
	bt_buf_deinit(&tbuf);
	if (b->keep)
		fprintf(stderr, "torrent: bench: kept %s\n", b->dir);
	else
		nftw(b->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}

static int run(int argc, char **argv)
{
	enum { OPT_JSON = 256, OPT_KEEP, OPT_PLOT, OPT_STATS };
	static const struct option opts[] = {
		{"size", required_argument, NULL, 's'},
		{"seeders", required_argument, NULL, 'n'},
		{"piece-length", required_argument, NULL, 'l'},
		{"json", no_argument, NULL, OPT_JSON},
		{"keep", no_argument, NULL, OPT_KEEP},
		{"plot", required_argument, NULL, OPT_PLOT},
		{"stats", required_argument, NULL, OPT_STATS},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct bench b = {.size = 1ull << 30, .piece_length = 1 << 20, .seeders = 8};
	int c;
	double v;
	unsigned long n;
	while ((c = bt_cli_getopt(argc, argv, ":s:n:l:h", opts)) != -1) {
		switch (c) {
		case 's':
			if (bt_rate_parse(optarg, &v) || v < 16384 || v > 64.0 * (1ull << 30))
				return bt_cli_usage_error(
					"bench", "--size wants 16K to 64G, not '%s'", optarg);
			b.size = (uint64_t)v;
			break;
		case 'n':
			if (bt_cli_parse_uint(optarg, 1, MAX_SEEDERS, &n))
				return bt_cli_usage_error("bench",
							  "--seeders wants 1 to %d, not '%s'",
							  MAX_SEEDERS, optarg);
			b.seeders = (unsigned)n;
			break;
		case 'l':
			if (bt_rate_parse(optarg, &v) || v < 16384 || v > (64 << 20) ||
			    ((uint64_t)v & ((uint64_t)v - 1)))
				return bt_cli_usage_error(
					"bench",
					"--piece-length wants a power of two from "
					"16K to 64M, not '%s'",
					optarg);
			b.piece_length = (int64_t)v;
			break;
		case OPT_JSON:
			b.json = true;
			break;
		case OPT_KEEP:
			b.keep = true;
			break;
		case OPT_PLOT:
			b.plot_path = optarg;
			break;
		case OPT_STATS:
			b.stats_path = optarg;
			break;
		case 'h':
			fputs(help, stdout);
			return BT_EXIT_OK;
		default:
			return BT_EXIT_USAGE;
		}
	}
	if (argc != optind)
		return bt_cli_usage_error("bench", "takes no arguments");
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	return run_bench(&b);
}

const struct bt_cli_command bt_cmd_bench = {
	.name = "bench",
	.summary = "download from a local swarm of our own seeders and show the cost",
	.help = help,
	.run = run,
};
