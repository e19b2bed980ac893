/*
 * hash: SHA-1 (piece and info hashes) and SHA-256 (BEP 52 info hashes) through OpenSSL 3's EVP
 * interface; the SHA1_Init family is deprecated there. Digest implementations are fetched once
 * and kept for the life of the process, which saves a provider lookup per piece.
 */
#ifndef BT_HASH_H
#define BT_HASH_H

#include <stddef.h>
#include <stdint.h>

#define BT_SHA1_LEN   20
#define BT_SHA256_LEN 32

void bt_sha1(const void *p, size_t n, uint8_t out[BT_SHA1_LEN]);
void bt_sha256(const void *p, size_t n, uint8_t out[BT_SHA256_LEN]);

/* Fills p with n cryptographically random bytes (OpenSSL's generator). */
void bt_random_bytes(void *p, size_t n);

/* Incremental SHA-1 for data that arrives in parts. */
struct bt_sha1_ctx;
struct bt_sha1_ctx *bt_sha1_new(void);
void bt_sha1_update(struct bt_sha1_ctx *c, const void *p, size_t n);
/* Writes the digest and resets the context for the next message. */
void bt_sha1_final(struct bt_sha1_ctx *c, uint8_t out[BT_SHA1_LEN]);
void bt_sha1_free(struct bt_sha1_ctx *c);

#endif
