#include "bt/bencode.h"
#include "bt/cli.h"

#include <stdlib.h>
#include <string.h>

/* The largest input `decode --file` reads. */
#define DECODE_MAX_INPUT ((size_t)256 << 20)

static const char help[] =
	"Usage: torrent decode <bencoded-value>\n"
	"       torrent decode --file <path>     ('-' reads standard input)\n"
	"\n"
	"Prints one bencoded value as one line of JSON.\n"
	"\n"
	"  Integers print exactly as written, however long. Lists become arrays, dictionaries\n"
	"  objects (keys in the order they appear). Byte strings become JSON strings: valid UTF-8\n"
	"  is kept as text, and each byte that is not part of valid UTF-8 is written as the "
	"escape\n"
	"  \\udcXX, XX being the byte's value (the 'surrogateescape' rule), so the output is "
	"always\n"
	"  valid JSON and loses nothing: in Python,\n"
	"  json.loads(out).encode('utf-8', 'surrogateescape') gives back the original bytes.\n"
	"\n"
	"  The grammar is strict (BEP 3): leading zeros, i-0e, ie, bad string lengths, non-string\n"
	"  keys, keys without values and bytes after the value are errors, reported with the byte\n"
	"  offset where they occur. Nesting is limited to 256 levels.\n"
	"\n"
	"Options:\n"
	"  -f, --file PATH   read the value from a file instead of the command line\n"
	"  -h, --help        show this help\n"
	"\n"
	"Exit status: 0 success, 2 bad usage or invalid input.\n";

static int run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"file", required_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *file = NULL;
	int c;
	while ((c = bt_cli_getopt(argc, argv, ":f:h", opts)) != -1) {
		switch (c) {
		case 'f':
			file = optarg;
			break;
		case 'h':
			fputs(help, stdout);
			return BT_EXIT_OK;
		default:
			return BT_EXIT_USAGE;
		}
	}
	int positional = argc - optind;
	if (file ? positional != 0 : positional != 1)
		return bt_cli_usage_error("decode", file ? "--file takes no other argument"
							 : "expected one bencoded value");

	uint8_t *owned = NULL;
	const uint8_t *p;
	size_t len;
	struct bt_err err;
	if (file) {
		if (bt_read_file(file, DECODE_MAX_INPUT, &owned, &len, &err)) {
			bt_cli_error("decode", "%s", err.msg);
			return BT_EXIT_USAGE;
		}
		p = owned;
	} else {
		p = (const uint8_t *)argv[optind];
		len = strlen(argv[optind]);
	}

	struct bt_benc_doc doc;
	int rc = BT_EXIT_OK;
	if (bt_benc_parse(&doc, p, len, NULL, NULL, &err) != BT_BENC_OK) {
		bt_cli_error("decode", "%s", err.msg);
		rc = BT_EXIT_USAGE;
	} else {
		struct bt_buf out;
		bt_buf_init(&out);
		bt_benc_to_json(&out, bt_benc_root(&doc));
		bt_buf_addc(&out, '\n');
		fwrite(out.data, 1, out.len, stdout);
		bt_buf_deinit(&out);
		bt_benc_doc_deinit(&doc);
	}
	free(owned);
	return rc;
}

const struct bt_cli_command bt_cmd_decode = {
	.name = "decode",
	.summary = "print a bencoded value as JSON",
	.help = help,
	.run = run,
};
