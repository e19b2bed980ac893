#include "bt/pex.h"

#include "bt/bencode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct bt_benc_limits pex_limits = {
	/* libtorrent nests nothing in a PEX dict; a little depth costs nothing. */
	.max_depth = 8,
	.max_nodes = BT_PEX_MAX_MESSAGE,
};

/*
 * The compact string under key, whose length must be a multiple of entry; absent (or not a
 * string) reads as empty. Returns false for a bad length.
 */
static bool slice(const struct bt_benc_node *d, const char *key, size_t entry,
		  const uint8_t **p_out, size_t *n_out)
{
	const struct bt_benc_node *v = bt_benc_dict_get(d, key);
	*p_out = NULL;
	*n_out = 0;
	if (!v || v->type != BT_BENC_STR)
		return true;
	if (v->str_len % entry)
		return false;
	*p_out = v->str;
	*n_out = v->str_len / entry;
	return true;
}

static void flags_of(const struct bt_benc_node *d, const char *key, const uint8_t **p_out,
		     size_t *n_out)
{
	const struct bt_benc_node *v = bt_benc_dict_get(d, key);
	bool ok = v && v->type == BT_BENC_STR;
	*p_out = ok ? v->str : NULL;
	*n_out = ok ? v->str_len : 0;
}

int bt_pex_parse(struct bt_pex_msg *out, const uint8_t *p, size_t len, struct bt_err *err)
{
	memset(out, 0, sizeof *out);
	if (len > BT_PEX_MAX_MESSAGE)
		return bt_err_set(err, -EMSGSIZE, "ut_pex: %zu bytes, more than the limit of %d",
				  len, BT_PEX_MAX_MESSAGE);
	struct bt_benc_doc doc;
	struct bt_err perr;
	enum bt_benc_result r = bt_benc_parse(&doc, p, len, &pex_limits, NULL, &perr);
	if (r != BT_BENC_OK)
		return bt_err_set(err, -EINVAL, "ut_pex: %s",
				  r == BT_BENC_NEED_MORE ? "truncated bencode" : perr.msg);
	const struct bt_benc_node *root = bt_benc_root(&doc);
	const char *bad = NULL;
	if (root->type != BT_BENC_DICT)
		bad = "not a dictionary";
	else if (!slice(root, "added", 6, &out->added4, &out->n_added4))
		bad = "`added` is not a list of 6-byte entries";
	else if (!slice(root, "added6", 18, &out->added6, &out->n_added6))
		bad = "`added6` is not a list of 18-byte entries";
	else if (!slice(root, "dropped", 6, &out->dropped4, &out->n_dropped4))
		bad = "`dropped` is not a list of 6-byte entries";
	else if (!slice(root, "dropped6", 18, &out->dropped6, &out->n_dropped6))
		bad = "`dropped6` is not a list of 18-byte entries";
	if (!bad) {
		flags_of(root, "added.f", &out->added4_f, &out->n_added4_f);
		flags_of(root, "added6.f", &out->added6_f, &out->n_added6_f);
	}
	/* The slices point into p, not into the parse tree: the tree can go now. */
	bt_benc_doc_deinit(&doc);
	if (bad) {
		memset(out, 0, sizeof *out);
		return bt_err_set(err, -EINVAL, "ut_pex: %s", bad);
	}
	return 0;
}

size_t bt_pex_added_count(const struct bt_pex_msg *m)
{
	return m->n_added4 + m->n_added6;
}

static void compact(const uint8_t *p, int family, struct bt_peer_addr *out)
{
	size_t n = family == 4 ? 4 : 16;
	memset(out, 0, sizeof *out);
	out->family = (uint8_t)family;
	memcpy(out->addr, p, n);
	out->port = (uint16_t)(p[n] << 8 | p[n + 1]);
}

void bt_pex_added(const struct bt_pex_msg *m, size_t i, struct bt_pex_peer *out)
{
	if (i < m->n_added4) {
		compact(m->added4 + i * 6, 4, &out->addr);
		out->flags = i < m->n_added4_f ? m->added4_f[i] : 0;
		return;
	}
	i -= m->n_added4;
	compact(m->added6 + i * 18, 6, &out->addr);
	out->flags = i < m->n_added6_f ? m->added6_f[i] : 0;
}

size_t bt_pex_dropped_count(const struct bt_pex_msg *m)
{
	return m->n_dropped4 + m->n_dropped6;
}

void bt_pex_dropped(const struct bt_pex_msg *m, size_t i, struct bt_peer_addr *out)
{
	if (i < m->n_dropped4)
		compact(m->dropped4 + i * 6, 4, out);
	else
		compact(m->dropped6 + (i - m->n_dropped4) * 18, 6, out);
}

static void put_compact(struct bt_buf *b, const struct bt_peer_addr *a)
{
	uint8_t port[2] = {(uint8_t)(a->port >> 8), (uint8_t)a->port};
	bt_buf_add(b, a->addr, a->family == 4 ? 4 : 16);
	bt_buf_add(b, port, 2);
}

/* Appends key and a string of the family's entries (and their flags, if flags). */
static void put_list(struct bt_buf *out, const char *key, int family, const struct bt_pex_peer *a,
		     size_t n, const struct bt_peer_addr *d, size_t nd, bool flags)
{
	struct bt_buf s;
	bt_buf_init(&s);
	for (size_t i = 0; i < n; i++)
		if (a[i].addr.family == family) {
			if (flags)
				bt_buf_add(&s, &a[i].flags, 1);
			else
				put_compact(&s, &a[i].addr);
		}
	for (size_t i = 0; i < nd; i++)
		if (d[i].family == family)
			put_compact(&s, &d[i]);
	bt_benc_put_cstr(out, key);
	bt_benc_put_str(out, s.data, s.len);
	bt_buf_deinit(&s);
}

void bt_pex_encode(struct bt_buf *out, const struct bt_pex_peer *added, size_t n_added,
		   const struct bt_peer_addr *dropped, size_t n_dropped)
{
	/* Keys in byte order: "added" < "added.f" < "added6" < "added6.f" < "dropped" < ... */
	bt_benc_begin_dict(out);
	put_list(out, "added", 4, added, n_added, NULL, 0, false);
	put_list(out, "added.f", 4, added, n_added, NULL, 0, true);
	put_list(out, "added6", 6, added, n_added, NULL, 0, false);
	put_list(out, "added6.f", 6, added, n_added, NULL, 0, true);
	put_list(out, "dropped", 4, NULL, 0, dropped, n_dropped, false);
	put_list(out, "dropped6", 6, NULL, 0, dropped, n_dropped, false);
	bt_benc_end(out);
}

void bt_pex_sender_init(struct bt_pex_sender *s)
{
	memset(s, 0, sizeof *s);
}

void bt_pex_sender_deinit(struct bt_pex_sender *s)
{
	free(s->told);
	memset(s, 0, sizeof *s);
}

static bool in_addrs(const struct bt_peer_addr *a, size_t n, const struct bt_peer_addr *x)
{
	for (size_t i = 0; i < n; i++)
		if (bt_peer_addr_equal(&a[i], x))
			return true;
	return false;
}

static bool in_peers(const struct bt_pex_peer *a, size_t n, const struct bt_peer_addr *x)
{
	for (size_t i = 0; i < n; i++)
		if (bt_peer_addr_equal(&a[i].addr, x))
			return true;
	return false;
}

/*
 * The lists are a torrent's connections (tens, a few hundred at most) and what one peer was
 * told: quadratic scans stay cheap at once a minute per peer.
 */
bool bt_pex_sender_poll(struct bt_pex_sender *s, const struct bt_pex_peer *current, size_t n,
			const struct bt_peer_addr *recipient, double now, struct bt_buf *out)
{
	if (s->started && now < s->next_at)
		return false;
	struct bt_pex_peer added[BT_PEX_MAX_ADDED];
	struct bt_peer_addr dropped[BT_PEX_MAX_DROPPED];
	size_t na = 0, nd = 0;
	for (size_t i = 0; i < n && na < BT_PEX_MAX_ADDED; i++) {
		const struct bt_pex_peer *c = &current[i];
		if ((c->addr.family != 4 && c->addr.family != 6) || c->addr.port == 0 ||
		    (recipient && bt_peer_addr_equal(&c->addr, recipient)) ||
		    in_addrs(s->told, s->n_told, &c->addr) || in_peers(added, na, &c->addr))
			continue;
		added[na++] = *c;
	}
	for (size_t i = 0; i < s->n_told && nd < BT_PEX_MAX_DROPPED; i++)
		if (!in_peers(current, n, &s->told[i]))
			dropped[nd++] = s->told[i];
	if (na == 0 && nd == 0)
		return false;
	bt_pex_encode(out, added, na, dropped, nd);
	size_t kept = 0;
	for (size_t i = 0; i < s->n_told; i++)
		if (!in_addrs(dropped, nd, &s->told[i]))
			s->told[kept++] = s->told[i];
	s->n_told = kept;
	if (s->n_told + na > s->cap) {
		s->cap = s->n_told + na + 16;
		s->told = bt_xreallocarray(s->told, s->cap, sizeof *s->told);
	}
	for (size_t i = 0; i < na; i++)
		s->told[s->n_told++] = added[i].addr;
	s->started = true;
	s->next_at = now + BT_PEX_INTERVAL_S;
	return true;
}

int bt_pex_receiver_on_message(struct bt_pex_receiver *r, double now)
{
	bool too_soon = r->seen && now - r->last_at < BT_PEX_MIN_GAP_S;
	r->last_at = now;
	r->seen = true;
	return too_soon ? -EBUSY : 0;
}
