/* agent/wg.h -- the node's WireGuard device for the encrypted overlay (--overlay).
 *
 * These kernels have no WireGuard module (and no ESP), so the device is userspace
 * `wireguard-go` (Debian package), configured through its UAPI socket
 * /var/run/wireguard/<ifname>.sock with the cross-platform text protocol
 * (https://www.wireguard.com/xplatform/): no `wg` binary is needed. Keys are Curve25519
 * (OpenSSL X25519); the private key never leaves the agent and the device; the public key is
 * published through the master (node key `wireguard_public_key`, base64 as `wg` prints it).
 *
 * The device outlives the agent (like vxlan0 and the containers): a restarted agent finds it,
 * reads its private key back over UAPI, and so keeps its public key.
 * See docs/internals/overlay.md ("Encryption").
 */
#ifndef AGENT_WG_H
#define AGENT_WG_H

#include <jansson.h>

#include "common/err.h"

#define WG_PORT 51820
#define WG_KEY_LEN 32
#define WG_KEY_B64_LEN 44 /* base64 of 32 bytes, with its one '=' */
#define WG_SOCKET_DIR "/var/run/wireguard"

struct wg_key {
    unsigned char priv[WG_KEY_LEN];
    unsigned char pub[WG_KEY_LEN];
};

/* A fresh key pair. */
enum status wg_key_generate(struct wg_key *k, struct err *e) WARN_UNUSED_RESULT;
/* k->pub from k->priv. */
enum status wg_key_derive(struct wg_key *k, struct err *e) WARN_UNUSED_RESULT;

/* 32 bytes <-> base64 (44 characters + NUL) and lower-case hex (64 + NUL). The parsers
 * return 0, or -1 when s is not exactly one encoded key. */
void wg_key_to_b64(const unsigned char key[WG_KEY_LEN], char out[WG_KEY_B64_LEN + 1]);
int wg_key_from_b64(const char *s, unsigned char key[WG_KEY_LEN]);
void wg_key_to_hex(const unsigned char key[WG_KEY_LEN], char out[2 * WG_KEY_LEN + 1]);
int wg_key_from_hex(const char *s, unsigned char key[WG_KEY_LEN]);

/* The device name for a node: "kwg" + 8 hex digits of a hash of node name and underlay
 * address. wireguard-go's UAPI sockets share one directory across network namespaces, so
 * several hosts on one machine (tests) need different names. Fits IFNAMSIZ. */
void wg_ifname(const char *node, const char *underlay_ip, char out[16]);

/* One UAPI exchange on ifname's socket: send `request` (ending in a blank line), read the
 * reply up to its blank line. ST_NOTFOUND when there is no socket (no device), ST_IO on
 * errno != 0 in the reply or a broken exchange. *reply (may be NULL) gets the text. */
enum status wg_uapi(const char *ifname, const char *request, char **reply,
                    struct err *e) WARN_UNUSED_RESULT;

/* Parse a `get=1` reply into {private_key: hex, listen_port: n, peers: {<pub hex>:
 * {endpoint: "ip:port", allowed_ips: ["a/32", ...], last_handshake_time_sec: n}}}. */
json_t *wg_parse_get(const char *reply);

#endif
