#include "bt/hash.h"

#include "bt/util.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>

struct bt_sha1_ctx {
	EVP_MD_CTX *md;
};

static const EVP_MD *fetched(EVP_MD **slot, const char *name)
{
	if (!*slot) {
		*slot = EVP_MD_fetch(NULL, name, NULL);
		if (!*slot)
			bt_oom();
	}
	return *slot;
}

static const EVP_MD *sha1_md(void)
{
	static EVP_MD *md;
	return fetched(&md, "SHA1");
}

static const EVP_MD *sha256_md(void)
{
	static EVP_MD *md;
	return fetched(&md, "SHA256");
}

void bt_sha1(const void *p, size_t n, uint8_t out[BT_SHA1_LEN])
{
	if (!EVP_Digest(p, n, out, NULL, sha1_md(), NULL))
		bt_oom();
}

void bt_sha256(const void *p, size_t n, uint8_t out[BT_SHA256_LEN])
{
	if (!EVP_Digest(p, n, out, NULL, sha256_md(), NULL))
		bt_oom();
}

struct bt_sha1_ctx *bt_sha1_new(void)
{
	struct bt_sha1_ctx *c = bt_xmalloc(sizeof *c);
	c->md = EVP_MD_CTX_new();
	if (!c->md || !EVP_DigestInit_ex(c->md, sha1_md(), NULL))
		bt_oom();
	return c;
}

void bt_sha1_update(struct bt_sha1_ctx *c, const void *p, size_t n)
{
	if (!EVP_DigestUpdate(c->md, p, n))
		bt_oom();
}

void bt_sha1_final(struct bt_sha1_ctx *c, uint8_t out[BT_SHA1_LEN])
{
	if (!EVP_DigestFinal_ex(c->md, out, NULL) || !EVP_DigestInit_ex(c->md, sha1_md(), NULL))
		bt_oom();
}

void bt_sha1_free(struct bt_sha1_ctx *c)
{
	if (!c)
		return;
	EVP_MD_CTX_free(c->md);
	free(c);
}

void bt_random_bytes(void *p, size_t n)
{
	if (RAND_bytes(p, (int)n) != 1)
		bt_oom();
}
