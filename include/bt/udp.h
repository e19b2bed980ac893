/*
 * udp: the session's datagram sockets, one per address family (IPv4, IPv6), shared by every
 * protocol that speaks UDP: the UDP tracker (BEP 15) now, the DHT and uTP later. The module owns
 * the sockets and their read events; consumers own no socket. They send with bt_udp_send and
 * receive through a handler they register: a classifier over the datagram's first bytes and a
 * receive callback.
 *
 * Sockets: bt_udp_bind puts them on a given address and port (the session binds them to its TCP
 * listen port once it listens). A family with no socket yet gets one on demand, on an ephemeral
 * port, when something is sent to an address of that family; it leaves from the source address
 * set with bt_udp_set_source if that address is of its family. A bind replaces the family's
 * socket: replies still on their way to the old one are lost (their senders retransmit).
 *
 * Demultiplexing: each datagram read goes to the first registered handler whose classifier
 * accepts it, and is dropped (and counted) when none does. The protocols sharing the port tell
 * themselves apart by their first bytes, and the three classifiers below are disjoint:
 * - a BEP 15 tracker reply starts with its 32-bit big-endian action, 0 to 3: bytes 00 00 00 0x;
 * - a KRPC (DHT) message is a bencoded dictionary: its first byte is 'd' (0x64);
 * - a uTP packet's first byte is type << 4 | version, version 1 and type 0 to 4: 0x01, 0x11,
 *   0x21, 0x31 or 0x41.
 *
 * Reading: on each wake-up at most BT_UDP_MAX_PER_WAKEUP datagrams are read from a socket, so a
 * flood cannot starve the rest of the loop; the read event stays active and the rest are read on
 * the next pass. Datagrams up to 64 KiB are read whole. Single-threaded, on the session's loop.
 * A handler may send, and remove handlers, but must not free the bt_udp or bind it.
 */
#ifndef BT_UDP_H
#define BT_UDP_H

#include "bt/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct bt_udp;

#define BT_UDP_MAX_PER_WAKEUP 64 /* datagrams read from one socket per wake-up */
#define BT_UDP_MAX_HANDLERS   8

/* Whether the datagram could be what its name says (see the demultiplexing rule above). */
bool bt_udp_is_tracker_reply(const uint8_t *data, size_t n);
bool bt_udp_is_krpc(const uint8_t *data, size_t n);
bool bt_udp_is_utp(const uint8_t *data, size_t n);

typedef bool (*bt_udp_match_fn)(const uint8_t *data, size_t n);
/* data and from are borrowed for the call. */
typedef void (*bt_udp_recv_fn)(void *arg, const uint8_t *data, size_t n,
			       const struct sockaddr *from, socklen_t fromlen);

struct bt_udp *bt_udp_new(struct event_base *base);
/* Closes the sockets. Every handler should have been removed (their owners are gone). */
void bt_udp_free(struct bt_udp *u);

/*
 * Datagrams of sockets opened on demand leave from this numeric IPv4 or IPv6 address (NULL or
 * "": the system's choice). Applies to sockets opened after the call. 0 or -EINVAL.
 */
int bt_udp_set_source(struct bt_udp *u, const char *ip);

/*
 * Binds to ip and port (port 0: any). With ip NULL, the IPv4 socket goes to 0.0.0.0:port and the
 * IPv6 one to [::]:port (IPv6 only) when it can; the IPv4 bind must succeed. With an address, only
 * its family's socket is bound, and that address becomes the source for its family. Returns 0,
 * or a negative errno with err saying what failed; on failure the old socket stays.
 */
int bt_udp_bind(struct bt_udp *u, const char *ip, uint16_t port, struct bt_err *err);

/*
 * Sends one datagram to an IPv4 or IPv6 address, opening that family's socket if needed. Returns
 * 0, or a negative errno (-EAGAIN when the socket's buffer is full: the datagram is not sent).
 */
int bt_udp_send(struct bt_udp *u, const void *data, size_t n, const struct sockaddr *to,
		socklen_t tolen);

/* Adds a handler at the end of the list. 0, or -ENOSPC past BT_UDP_MAX_HANDLERS. */
int bt_udp_add_handler(struct bt_udp *u, bt_udp_match_fn match, bt_udp_recv_fn recv, void *arg);
/* Removes the handler added with this recv and arg, if there is one. */
void bt_udp_remove_handler(struct bt_udp *u, bt_udp_recv_fn recv, void *arg);

/* The address a family's socket is bound to (getsockname); -ENOTCONN if it has none yet. */
int bt_udp_local_addr(const struct bt_udp *u, int family, struct sockaddr_storage *out,
		      socklen_t *len_out);

/*
 * The local address a datagram to `to` leaves from: the socket's own address when it is bound to
 * one, else the address the system picks for that destination (asked by connecting a throwaway
 * socket, bound to the source address if one is set). The port is our socket's, or 0 if the
 * family has no socket yet. 0 or a negative errno.
 */
int bt_udp_source_for(const struct bt_udp *u, const struct sockaddr *to, socklen_t tolen,
		      struct sockaddr_storage *out, socklen_t *len_out);

/* Datagrams dropped because no handler wanted them. */
uint64_t bt_udp_dropped(const struct bt_udp *u);

#endif
