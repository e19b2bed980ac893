/*
 * Parses arbitrary bytes as a magnet URI. For every input accepted, checks what the struct
 * promises (bt/magnet.h): counts within their caps, URLs with a scheme and no control bytes,
 * no duplicates, ports 1 to 65535, ranges in order; and that bt_magnet_format of the result
 * parses back to the same hash, name and trackers.
 */
#include "bt/magnet.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_url(const char *u)
{
	if (!strstr(u, "://"))
		abort();
	for (const char *c = u; *c; c++)
		if ((unsigned char)*c <= 0x20 || *c == 0x7f)
			abort();
}

static void check(const struct bt_magnet *m)
{
	if (m->tier_count > BT_MAGNET_MAX_TRACKERS || m->web_seed_count > BT_MAGNET_MAX_WEB_SEEDS ||
	    m->peer_count > BT_MAGNET_MAX_PEERS || m->select_count > BT_MAGNET_MAX_RANGES)
		abort();
	if (m->name && m->name[0] == '\0')
		abort();
	for (size_t i = 0; i < m->tier_count; i++) {
		if (m->tiers[i].count != 1)
			abort();
		check_url(m->tiers[i].urls[0]);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(m->tiers[i].urls[0], m->tiers[j].urls[0]))
				abort();
	}
	for (size_t i = 0; i < m->web_seed_count; i++) {
		check_url(m->web_seeds[i]);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(m->web_seeds[i], m->web_seeds[j]))
				abort();
	}
	for (size_t i = 0; i < m->peer_count; i++) {
		if ((m->peers[i].family != 4 && m->peers[i].family != 6) || m->peers[i].port == 0)
			abort();
		for (size_t j = 0; j < i; j++)
			if (bt_peer_addr_equal(&m->peers[i], &m->peers[j]))
				abort();
	}
	for (size_t i = 0; i < m->select_count; i++)
		if (m->select[i].first > m->select[i].last)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > BT_MAGNET_MAX_LEN + 16)
		return 0;
	char *uri = malloc(size + 1);
	if (!uri)
		return 0;
	memcpy(uri, data, size);
	uri[size] = '\0';
	struct bt_magnet m;
	struct bt_err err;
	if (bt_magnet_parse(&m, uri, &err) != 0) {
		/* A refusal leaves nothing behind and says why on one line. */
		if (m.name || m.tiers || m.web_seeds || m.peers || m.select || !err.msg[0] ||
		    strchr(err.msg, '\n'))
			abort();
		free(uri);
		return 0;
	}
	check(&m);
	char *again = bt_magnet_format(m.info_hash, m.name, m.tiers, m.tier_count);
	/* A long name can grow past the URI cap when escaped; then there is nothing to compare. */
	if (strlen(again) <= BT_MAGNET_MAX_LEN) {
		struct bt_magnet r;
		if (bt_magnet_parse(&r, again, &err) != 0)
			abort();
		if (memcmp(r.info_hash, m.info_hash, BT_HASH_LEN) != 0 ||
		    (m.name == NULL) != (r.name == NULL) || (m.name && strcmp(m.name, r.name)) ||
		    r.tier_count != m.tier_count)
			abort();
		for (size_t i = 0; i < m.tier_count; i++)
			if (strcmp(r.tiers[i].urls[0], m.tiers[i].urls[0]))
				abort();
		bt_magnet_deinit(&r);
	}
	free(again);
	bt_magnet_deinit(&m);
	free(uri);
	return 0;
}
