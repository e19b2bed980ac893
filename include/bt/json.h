/*
 * json: the few pieces of a JSON writer that `decode`, `info --json` and later commands share.
 * Pure; appends to a struct bt_buf.
 *
 * Byte strings are written losslessly even when they are not UTF-8 (a torrent's `pieces`, a
 * peer id): valid UTF-8 sequences are copied as text, and each byte that is not part of a valid
 * sequence is written as the escape \udcXX (XX its value), the "surrogateescape" rule of Python
 * and of many file-name APIs. Valid UTF-8 never encodes a lone surrogate, so the mapping is
 * one-to-one: in Python, json.loads(s).encode("utf-8", "surrogateescape") gives the bytes back.
 */
#ifndef BT_JSON_H
#define BT_JSON_H

#include "bt/util.h"

#include <stddef.h>
#include <stdint.h>

/* Appends p[0..n) as a quoted JSON string under the rule above. */
void bt_json_put_bytes(struct bt_buf *out, const void *p, size_t n);
void bt_json_put_str(struct bt_buf *out, const char *s);
/* Appends a quoted string of 2*n lowercase hex digits. */
void bt_json_put_hex(struct bt_buf *out, const uint8_t *p, size_t n);
/* Appends "key": with a comma before it unless it is the first member (*first tracks that). */
void bt_json_key(struct bt_buf *out, int *first, const char *key);

#endif
