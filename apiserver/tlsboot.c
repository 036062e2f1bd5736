/* apiserver/tlsboot.c -- the API's TLS certificate.
 *
 * Given --tls-cert/--tls-key, those files are used. Otherwise the certificate lives in etcd
 * (/kontena/master/tls: {cert, key, fingerprint, created_at}) so that every API server of
 * the cluster, and a restarted one, serves the same certificate and clients that trust it
 * keep trusting it. The first server to start generates it (EC P-256, self-signed, 10 years)
 * and creates the key with a compare on create_revision; a loser reads the winner's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apiserver/api.h"
#include "apiserver/store.h"
#include "common/buf.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "common/banned.h"

static enum status read_file(const char *path, char **out, struct err *e)
{
    struct buf b;
    char chunk[4096];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *out = NULL;
    if (fd == -1)
        return err_set(e, ST_IO, "cannot read '%s': %s", path, strerror(errno));
    buf_init(&b, 1 << 20);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        if (buf_append(&b, chunk, (size_t)n) != ST_OK) {
            close(fd);
            buf_release(&b);
            return err_set(e, ST_INVALID, "cannot read '%s': larger than 1 MiB", path);
        }
    close(fd);
    if (n == -1) {
        buf_release(&b);
        return err_set(e, ST_IO, "cannot read '%s': %s", path, strerror(errno));
    }
    *out = buf_take(&b);
    return ST_OK;
}

static enum status write_file_atomic(const char *path, const char *data, struct err *e)
{
    char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t len = strlen(data), off = 0;
    enum status st = ST_OK;

    if (fd == -1) {
        st = err_set(e, ST_IO, "cannot write '%s': %s", tmp, strerror(errno));
        goto out;
    }
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n == -1) {
            st = err_set(e, ST_IO, "cannot write '%s': %s", tmp, strerror(errno));
            break;
        }
        off += (size_t)n;
    }
    if (close(fd) == -1 && st == ST_OK)
        st = err_set(e, ST_IO, "cannot write '%s': %s", tmp, strerror(errno));
    if (st == ST_OK && rename(tmp, path) == -1)
        st = err_set(e, ST_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (st != ST_OK)
        unlink(tmp);
out:
    free(tmp);
    return st;
}

static enum status from_etcd(struct api *a, struct err *e)
{
    json_t *obj = NULL;
    enum status st;

    for (int attempt = 0; attempt < 3; attempt++) {
        st = store_get(a->etcd, KEY_TLS, &obj, NULL, e);
        if (st == ST_OK) {
            const char *c = json_string_value(json_object_get(obj, "cert"));
            const char *k = json_string_value(json_object_get(obj, "key"));
            if (!c || !k) {
                json_decref(obj);
                return err_set(e, ST_INVALID, "'%s' lacks cert or key", KEY_TLS);
            }
            a->tls_cert_pem = xstrdup(c);
            a->tls_key_pem = xstrdup(k);
            json_decref(obj);
            return ST_OK;
        }
        if (st != ST_NOTFOUND)
            return st;
        {
            char *cert, *key, *fp, now[40];
            st = crypto_selfsigned_cert(a->cfg.server_name, a->cfg.tls_san, 3650, &cert, &key,
                                        &fp, e);
            if (st != ST_OK)
                return st;
            time_iso8601_now(now, sizeof(now));
            obj = json_pack("{s:s,s:s,s:s,s:s}", "cert", cert, "key", key, "fingerprint", fp,
                            "created_at", now);
            st = store_create(a->etcd, KEY_TLS, obj, e);
            json_decref(obj);
            obj = NULL;
            free(cert);
            free(key);
            free(fp);
            if (st == ST_OK)
                log_info("msg=\"generated a self-signed TLS certificate, kept in %s\"", KEY_TLS);
            else if (st != ST_CONFLICT)
                return st;
            /* Read back what is stored (ours or a concurrent winner's). */
        }
    }
    return err_set(e, ST_CONFLICT, "cannot settle the TLS certificate in '%s'", KEY_TLS);
}

enum status tls_bootstrap(struct api *a, struct err *e)
{
    enum status st;

    if (a->cfg.tls_cert_file || a->cfg.tls_key_file) {
        if (!a->cfg.tls_cert_file || !a->cfg.tls_key_file)
            return err_set(e, ST_INVALID, "--tls-cert and --tls-key go together");
        st = read_file(a->cfg.tls_cert_file, &a->tls_cert_pem, e);
        if (st == ST_OK)
            st = read_file(a->cfg.tls_key_file, &a->tls_key_pem, e);
    } else {
        st = from_etcd(a, e);
    }
    if (st != ST_OK)
        return st;
    st = crypto_cert_fingerprint(a->tls_cert_pem, &a->tls_fingerprint, e);
    if (st != ST_OK)
        return err_wrap(e, "cannot use the TLS certificate");
    if (a->cfg.cert_out)
        st = write_file_atomic(a->cfg.cert_out, a->tls_cert_pem, e);
    return st;
}
