/* agent/wg.c -- WireGuard keys (OpenSSL X25519) and wireguard-go's UAPI socket. See wg.h. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/wg.h"
#include "common/buf.h"
#include "common/crypto.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define UAPI_TIMEOUT_S 3
#define UAPI_MAX_REPLY (1u << 20)

/* --- keys ------------------------------------------------------------------------------ */

enum status wg_key_derive(struct wg_key *k, struct err *e)
{
    EVP_PKEY *p = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, k->priv, WG_KEY_LEN);
    size_t n = WG_KEY_LEN;
    int ok;

    if (!p)
        return err_set(e, ST_IO, "cannot load the WireGuard private key (OpenSSL X25519)");
    ok = EVP_PKEY_get_raw_public_key(p, k->pub, &n) == 1 && n == WG_KEY_LEN;
    EVP_PKEY_free(p);
    return ok ? ST_OK : err_set(e, ST_IO, "cannot derive the WireGuard public key");
}

enum status wg_key_generate(struct wg_key *k, struct err *e)
{
    crypto_random_bytes(k->priv, WG_KEY_LEN);
    /* Curve25519 clamping, as `wg genkey` does (X25519 clamps anyway; the stored key is then
     * byte-identical to what wg would make). */
    k->priv[0] &= 248;
    k->priv[31] = (unsigned char)((k->priv[31] & 127) | 64);
    return wg_key_derive(k, e);
}

void wg_key_to_b64(const unsigned char key[WG_KEY_LEN], char out[WG_KEY_B64_LEN + 1])
{
    char *s = crypto_b64_encode(key, WG_KEY_LEN);
    snprintf(out, WG_KEY_B64_LEN + 1, "%s", s);
    free(s);
}

int wg_key_from_b64(const char *s, unsigned char key[WG_KEY_LEN])
{
    size_t n = 0;
    char *raw;

    if (!s || strlen(s) != WG_KEY_B64_LEN || s[WG_KEY_B64_LEN - 1] != '=')
        return -1;
    raw = crypto_b64_decode(s, WG_KEY_B64_LEN, &n);
    if (!raw || n != WG_KEY_LEN) {
        free(raw);
        return -1;
    }
    memcpy(key, raw, WG_KEY_LEN);
    free(raw);
    return 0;
}

void wg_key_to_hex(const unsigned char key[WG_KEY_LEN], char out[2 * WG_KEY_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < WG_KEY_LEN; i++) {
        out[2 * i] = hex[key[i] >> 4];
        out[2 * i + 1] = hex[key[i] & 15];
    }
    out[2 * WG_KEY_LEN] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int wg_key_from_hex(const char *s, unsigned char key[WG_KEY_LEN])
{
    if (!s || strlen(s) != 2 * WG_KEY_LEN)
        return -1;
    for (int i = 0; i < WG_KEY_LEN; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        key[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

void wg_ifname(const char *node, const char *underlay_ip, char out[16])
{
    uint32_t h = 2166136261u; /* FNV-1a over "node@ip" */
    const char *parts[] = {node ? node : "", "@", underlay_ip ? underlay_ip : ""};

    for (size_t i = 0; i < 3; i++)
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
            h = (h ^ *p) * 16777619u;
    snprintf(out, 16, "kwg%08x", (unsigned)h);
}

/* --- UAPI ------------------------------------------------------------------------------ */

enum status wg_uapi(const char *ifname, const char *request, char **reply, struct err *e)
{
    struct sockaddr_un sa;
    struct timeval tv = {.tv_sec = UAPI_TIMEOUT_S};
    struct buf b;
    size_t len = strlen(request), off = 0;
    int fd;
    enum status st = ST_OK;

    if (reply)
        *reply = NULL;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), WG_SOCKET_DIR "/%s.sock", ifname) >=
        sizeof(sa.sun_path))
        return err_set(e, ST_INVALID, "WireGuard device name '%s' is too long", ifname);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_set(e, ST_IO, "cannot make a unix socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int saved = errno;
        close(fd);
        if (saved == ENOENT || saved == ECONNREFUSED)
            return err_set(e, ST_NOTFOUND, "no WireGuard device %s (%s: %s)", ifname, sa.sun_path,
                           strerror(saved));
        return err_set(e, ST_IO, "cannot connect to %s: %s", sa.sun_path, strerror(saved));
    }
    while (off < len) {
        ssize_t n = send(fd, request + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = errno;
            close(fd);
            return err_set(e, ST_IO, "cannot write to %s: %s", sa.sun_path, strerror(saved));
        }
        off += (size_t)n;
    }
    buf_init(&b, UAPI_MAX_REPLY);
    for (;;) {
        char chunk[4096];
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            st = err_set(e, ST_IO, "%s: the reply ended early (%s)", sa.sun_path,
                         n == 0 ? "closed" : strerror(errno));
            break;
        }
        if (buf_append(&b, chunk, (size_t)n) != ST_OK) {
            st = err_set(e, ST_IO, "%s: the reply is too long", sa.sun_path);
            break;
        }
        if (b.len >= 2 && b.ptr[b.len - 1] == '\n' && b.ptr[b.len - 2] == '\n')
            break;
    }
    close(fd);
    if (st == ST_OK) {
        const char *en = strstr(b.ptr, "errno=");
        if (!en || (en != b.ptr && en[-1] != '\n'))
            st = err_set(e, ST_IO, "%s: the reply has no errno line", sa.sun_path);
        else if (atoi(en + 6) != 0)
            st = err_set(e, ST_IO, "WireGuard device %s refused the request: errno=%d", ifname,
                         atoi(en + 6));
    }
    if (st == ST_OK && reply)
        *reply = buf_take(&b);
    buf_release(&b);
    return st;
}

json_t *wg_parse_get(const char *reply)
{
    json_t *out = json_object(), *peers = json_object(), *peer = NULL;
    const char *p = reply ? reply : "";

    json_object_set_new(out, "peers", peers);
    while (*p) {
        const char *nl = strchr(p, '\n'), *eq;
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *line = xstrndup(p, n), *v;

        p += n + (nl ? 1 : 0);
        eq = strchr(line, '=');
        if (!eq) {
            free(line);
            continue;
        }
        line[eq - line] = '\0';
        v = line + (eq - line) + 1;
        if (!strcmp(line, "private_key")) {
            json_object_set_new(out, "private_key", json_string(v));
        } else if (!strcmp(line, "listen_port")) {
            json_object_set_new(out, "listen_port", json_integer(atoi(v)));
        } else if (!strcmp(line, "public_key")) {
            peer = json_pack("{s:[]}", "allowed_ips");
            json_object_set_new(peers, v, peer);
        } else if (peer && !strcmp(line, "endpoint")) {
            json_object_set_new(peer, "endpoint", json_string(v));
        } else if (peer && !strcmp(line, "allowed_ip")) {
            json_array_append_new(json_object_get(peer, "allowed_ips"), json_string(v));
        } else if (peer && !strcmp(line, "last_handshake_time_sec")) {
            json_object_set_new(peer, "last_handshake_time_sec", json_integer(atoll(v)));
        }
        free(line);
    }
    return out;
}
