/*
 * magnet: a magnet URI (BEP 9, BEP 53's `so`, BEP 52's `urn:btmh:`) turned into a plain struct.
 * Pure: no I/O, no name resolution. The front door calls bt_magnet_parse on what the user typed;
 * the torrent takes the info hash, trackers, web seeds and peers from the struct; `info` prints
 * bt_magnet_format for a .torrent.
 *
 * The URI is untrusted input and every part of it is bounded: the whole URI by
 * BT_MAGNET_MAX_LEN, each kind of repeated parameter by its cap below (a URI over a cap is
 * refused, naming the parameter, rather than cut), so memory and time are linear in the input.
 * Every known parameter's value is percent-decoded ('+' stays '+', as RFC 3986 says); a bad
 * escape or a %00 is an error naming the parameter and its offset in the URI. Unknown parameters
 * are ignored, and so are empty values of the optional ones (dn, tr, ws, x.pe, so) and an xt of
 * another namespace (urn:sha1:, urn:ed2k:); two different btih (or btmh) hashes are refused, and
 * of repeated dn the first wins. Parameter names are case-sensitive; `xt`, `dn`, `tr` and `ws`
 * may be numbered (`xt.1`, `tr.2`).
 *
 * What the struct promises on success: info_hash is set (a v2-only magnet is refused); tracker
 * and web seed URLs have a scheme ("scheme://host...") and no control characters or spaces, and
 * appear once each, in the URI's order; peers are numeric addresses with ports 1 to 65535 (a
 * peer given by host name is skipped and counted, as we do not resolve names here); `select`
 * holds ranges with first <= last. `name` is the decoded `dn` as the URI spells it: any bytes but
 * NUL, not sanitised; whoever makes a path from it must sanitise it (bt_meta_sanitize).
 */
#ifndef BT_MAGNET_H
#define BT_MAGNET_H

#include "bt/hash.h"
#include "bt/metainfo.h"
#include "bt/tracker_proto.h"
#include "bt/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BT_MAGNET_MAX_LEN	(64 * 1024) /* longer URIs are refused */
#define BT_MAGNET_MAX_TRACKERS	100	    /* more tr= are refused, naming the parameter */
#define BT_MAGNET_MAX_WEB_SEEDS 100
#define BT_MAGNET_MAX_PEERS	200  /* x.pe */
#define BT_MAGNET_MAX_RANGES	1000 /* so=, all of them together */

/* so=1,3-5 gives {1,1} and {3,5}: file indexes, both ends included. */
struct bt_magnet_range {
	uint32_t first, last;
};

struct bt_magnet {
	uint8_t info_hash[BT_HASH_LEN]; /* v1 (btih), always set on success */
	bool has_v2;			/* a btmh xt too (a hybrid magnet): we use the v1 hash */
	uint8_t info_hash_v2[BT_SHA256_LEN];
	char *name; /* dn, percent-decoded, or NULL */
	/* Each tr= becomes one tier of one URL, in the URI's order, duplicates dropped. */
	struct bt_meta_tier *tiers;
	size_t tier_count;
	char **web_seeds; /* ws= */
	size_t web_seed_count;
	struct bt_peer_addr *peers; /* x.pe= "1.2.3.4:5" or "[v6]:5", duplicates dropped */
	size_t peer_count;
	size_t peers_skipped;		/* x.pe given by host name ("example.org:6881") */
	struct bt_magnet_range *select; /* so=, in the URI's order */
	size_t select_count;
};

/* Whether s starts with "magnet:?" (the scheme in any case): worth handing to bt_magnet_parse. */
bool bt_magnet_is(const char *s);

/*
 * Parses a magnet URI. Returns 0; -EINVAL with err naming the parameter ("magnet: xt: info hash
 * has 39 hex digits", "magnet: tr #3: bad percent-escape at offset 12"), the offset counted in
 * bytes from the start of uri; or -ENOTSUP for a v2-only magnet ("magnet: v2-only (urn:btmh)
 * magnets are not supported"). On failure m is zeroed and owns nothing.
 */
int bt_magnet_parse(struct bt_magnet *m, const char *uri, struct bt_err *err);
/* Frees what m owns and zeroes it; a zeroed m is fine. */
void bt_magnet_deinit(struct bt_magnet *m);

/*
 * The magnet for a torrent, "magnet:?xt=urn:btih:<hex>&dn=...&tr=...", every value
 * percent-encoded (all but RFC 3986's unreserved characters), for `info` to print. Every URL of
 * every tier becomes one tr=, duplicates dropped and at most BT_MAGNET_MAX_TRACKERS of them, so
 * bt_magnet_parse takes the result back. name may be NULL. Caller frees.
 */
char *bt_magnet_format(const uint8_t info_hash[BT_HASH_LEN], const char *name,
		       const struct bt_meta_tier *tiers, size_t tier_count);

#endif
