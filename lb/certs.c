/* lb/certs.c -- SSL_CERTS / SSL_CERT_* into <run-dir>/certs (see certs.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/xmalloc.h"
#include "lb/certs.h"

#include "common/banned.h"

void lb_certs_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void push(char ***v, size_t *n, char *s)
{
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = s;
}

/* Is [s, e) a line "-----END <something>PRIVATE KEY-----"? */
static int end_of_key(const char *s, const char *e)
{
    size_t l = (size_t)(e - s);
    static const char head[] = "-----END ", tail[] = "PRIVATE KEY-----";

    while (l && (s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
        l--;
    return l >= sizeof(head) - 1 + sizeof(tail) - 1 && memcmp(s, head, sizeof(head) - 1) == 0 &&
           memcmp(s + l - (sizeof(tail) - 1), tail, sizeof(tail) - 1) == 0;
}

void lb_certs_split(const char *pem, char ***out, size_t *n)
{
    const char *start = pem, *p = pem;

    *out = NULL;
    *n = 0;
    if (!pem)
        return;
    while (*p) {
        const char *eol = strchr(p, '\n');
        const char *next = eol ? eol + 1 : p + strlen(p);
        if (end_of_key(p, eol ? eol : next)) {
            push(out, n, xasprintf("%.*s%s", (int)(next - start), start, eol ? "" : "\n"));
            start = next;
        }
        p = next;
    }
    /* A tail with something other than blanks in it is reported as a bundle. */
    for (p = start; *p; p++)
        if (*p != '\n' && *p != '\r' && *p != ' ' && *p != '\t') {
            push(out, n, xstrdup(start));
            break;
        }
}

int lb_cert_valid(const char *bundle)
{
    BIO *bio = BIO_new_mem_buf(bundle, -1);
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    int ok = 0;

    if (!bio)
        return 0;
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!x)
        return 0;
    bio = BIO_new_mem_buf(bundle, -1);
    if (bio) {
        k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        ok = k != NULL;
        EVP_PKEY_free(k);
        BIO_free(bio);
    }
    X509_free(x);
    return ok;
}

static enum status write_file(const char *dir, const char *name, const char *data, struct err *e)
{
    char *path = xasprintf("%s/%s", dir, name);
    size_t len = strlen(data), off = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    enum status st = ST_OK;

    if (fd == -1) {
        st = err_set(e, ST_IO, "cannot write '%s': %s", path, strerror(errno));
        goto out;
    }
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w == -1 && errno == EINTR)
            continue;
        if (w == -1) {
            st = err_set(e, ST_IO, "cannot write '%s': %s", path, strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    if (close(fd) == -1 && st == ST_OK)
        st = err_set(e, ST_IO, "cannot write '%s': %s", path, strerror(errno));
out:
    free(path);
    return st;
}

/* A file name for SSL_CERT_<x>: only [A-Za-z0-9_.-] (the variable name always is). */
static int safe_name(const char *s, size_t l)
{
    for (size_t i = 0; i < l; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' || s[i] == '.'))
            return 0;
    return l > 0 && s[0] != '.';
}

enum status lb_certs_write(const char *dir, const char *const *env, size_t n, int *written,
                           char ***warnings, size_t *n_warnings, struct err *e)
{
    DIR *d;
    struct dirent *de;
    enum status st = ST_OK;
    int k = 0;

    *written = 0;
    *warnings = NULL;
    *n_warnings = 0;
    if (mkdir(dir, 0700) == -1 && errno != EEXIST)
        return err_set(e, ST_IO, "cannot create '%s': %s", dir, strerror(errno));
    d = opendir(dir);
    if (!d)
        return err_set(e, ST_IO, "cannot open '%s': %s", dir, strerror(errno));
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".pem") == 0) {
            char *p = xasprintf("%s/%s", dir, de->d_name);
            unlink(p);
            free(p);
        }
    }
    closedir(d);

    for (size_t i = 0; i < n && st == ST_OK; i++) {
        const char *kv = env[i], *eq = kv ? strchr(kv, '=') : NULL;
        size_t nl;
        if (!eq)
            continue;
        nl = (size_t)(eq - kv);
        if (nl == 9 && memcmp(kv, "SSL_CERTS", 9) == 0) {
            char **b;
            size_t nb;
            lb_certs_split(eq + 1, &b, &nb);
            for (size_t j = 0; j < nb && st == ST_OK; j++) {
                if (!lb_cert_valid(b[j])) {
                    push(warnings, n_warnings,
                         xasprintf("SSL_CERTS: bundle %zu skipped: its first certificate or "
                                   "its private key does not parse",
                                   j + 1));
                    continue;
                }
                char *name = xasprintf("cert%d_gen.pem", ++k);
                st = write_file(dir, name, b[j], e);
                free(name);
                if (st == ST_OK)
                    (*written)++;
            }
            lb_certs_free(b, nb);
        } else if (nl > 9 && memcmp(kv, "SSL_CERT_", 9) == 0 &&
                   !(nl == 13 && memcmp(kv, "SSL_CERT_FILE", 13) == 0) &&
                   !(nl == 12 && memcmp(kv, "SSL_CERT_DIR", 12) == 0)) {
            /* SSL_CERT_FILE and SSL_CERT_DIR are OpenSSL's own settings, not bundles. */
            if (!safe_name(kv, nl) || !lb_cert_valid(eq + 1)) {
                push(warnings, n_warnings,
                     xasprintf("%.*s: skipped: its first certificate or its private key does "
                               "not parse",
                               (int)nl, kv));
                continue;
            }
            char *name = xasprintf("%.*s.pem", (int)nl, kv);
            st = write_file(dir, name, eq + 1, e);
            free(name);
            if (st == ST_OK)
                (*written)++;
        }
    }
    return st;
}
