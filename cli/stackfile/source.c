/* cli/stackfile/source.c -- where a stack file comes from (stack-file.md §1): a local file,
 * a stack registry name, or an http(s) URL. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/stackfile/pipeline.h"
#include "common/buf.h"
#include "common/xmalloc.h"

#include "common/banned.h"

/* File.expand_path: absolute, "." and ".." folded lexically, "~/" is $HOME. */
static char *expand_path(const char *path, const char *dir)
{
    char *joined, *out;
    char cwd[4096];
    size_t n = 0;

    if (path[0] == '/') {
        joined = xstrdup(path);
    } else if (path[0] == '~' && (path[1] == '/' || !path[1]) && getenv("HOME")) {
        joined = xasprintf("%s/%s", getenv("HOME"), path + 1);
    } else {
        if (!dir) {
            if (!getcwd(cwd, sizeof(cwd)))
                snprintf(cwd, sizeof(cwd), ".");
            dir = cwd;
        }
        joined = xasprintf("%s/%s", dir, path);
    }
    out = xmalloc(strlen(joined) + 2);
    for (const char *p = joined; *p;) {
        const char *seg = p;
        size_t len;
        while (*p && *p != '/')
            p++;
        len = (size_t)(p - seg);
        if (*p)
            p++;
        if (len == 0 || (len == 1 && seg[0] == '.'))
            continue;
        if (len == 2 && seg[0] == '.' && seg[1] == '.') {
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
            continue;
        }
        out[n++] = '/';
        memcpy(out + n, seg, len);
        n += len;
    }
    if (n == 0)
        out[n++] = '/';
    out[n] = '\0';
    free(joined);
    return out;
}

static char *dir_of(const char *abs)
{
    const char *slash = strrchr(abs, '/');
    if (!slash || slash == abs)
        return xstrdup("/");
    return xstrndup(abs, (size_t)(slash - abs));
}

static char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return xstrdup(slash && slash[1] ? slash + 1 : path);
}

/* Text read from a file or fetched must not hold NUL bytes: the pipeline works on C
 * strings, and YAML does not allow them anyway. */
static enum status check_text(const char *src, const struct buf *b, struct err *e)
{
    if (b->len && memchr(b->ptr, '\0', b->len))
        return err_set(e, ST_INVALID, "cannot read stack file '%s': it contains NUL bytes", src);
    return ST_OK;
}

static enum status read_file(const char *path, struct buf *b, struct err *e)
{
    FILE *f = fopen(path, "rb");
    char chunk[8192];
    size_t n;
    enum status st = ST_OK;

    if (!f)
        return err_set(e, ST_IO, "cannot read stack file '%s': %s", path, strerror(errno));
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(b, chunk, n) != ST_OK) {
            st = err_set(e, ST_INVALID, "cannot read stack file '%s': larger than %u bytes", path,
                         SF_MAX_FILE);
            break;
        }
    }
    if (st == ST_OK && ferror(f))
        st = err_set(e, ST_IO, "cannot read stack file '%s': %s", path, strerror(errno));
    fclose(f);
    return st;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    if (buf_append(b, data, size * nmemb) != ST_OK)
        return 0; /* over the cap: curl aborts the transfer */
    return size * nmemb;
}

static enum status http_get(const char *url, const char *accept, struct buf *b, struct err *e)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = NULL;
    char ebuf[CURL_ERROR_SIZE] = "";
    long code = 0;
    CURLcode rc;
    enum status st = ST_OK;

    if (!c)
        return err_set(e, ST_IO, "cannot fetch '%s': curl_easy_init failed", url);
    if (accept) {
        char *h = xasprintf("Accept: %s", accept);
        hdr = curl_slist_append(hdr, h);
        free(h);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kontena-cli/" KONTENA_VERSION);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    rc = curl_easy_perform(c);
    if (rc == CURLE_WRITE_ERROR) {
        st = err_set(e, ST_INVALID, "cannot fetch '%s': larger than %u bytes", url, SF_MAX_FILE);
    } else if (rc != CURLE_OK) {
        st = err_set(e, ST_IO, "cannot fetch '%s': %s", url, *ebuf ? ebuf : curl_easy_strerror(rc));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (code == 404)
            st = err_set(e, ST_NOTFOUND, "cannot fetch '%s': not found (HTTP 404)", url);
        else if (code >= 400)
            st = err_set(e, ST_IO, "cannot fetch '%s': HTTP %ld", url, code);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return st;
}

/* ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(:.*)?$ */
static int registry_name(const char *s)
{
    const char *p = s;
    size_t n;

    for (int part = 0; part < 2; part++) {
        n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
        if (n == 0)
            return 0;
        p += n;
        if (part == 0) {
            if (*p != '/')
                return 0;
            p++;
        }
    }
    return *p == '\0' || *p == ':';
}

static void fill(struct sf_source *out, char *abs, char *dir, const char *registry, struct buf *b)
{
    const char *q;
    char *path;

    out->abs = abs;
    /* The basename of a URL is that of its path, without query or fragment. */
    q = strstr(abs, "://");
    if (q) {
        path = xstrndup(abs, strcspn(abs, "?#"));
        out->base = base_of(path);
        free(path);
    } else {
        out->base = base_of(abs);
    }
    out->dir = dir;
    out->registry = xstrdup(registry);
    out->len = b->len;
    out->text = buf_take(b);
}

enum status sf__source_read(const char *src, const char *refdir, int no_network,
                            struct sf_source *out, struct err *e)
{
    struct buf b;
    struct stat sb;
    char *abs;
    enum status st;

    memset(out, 0, sizeof(*out));
    buf_init(&b, SF_MAX_FILE);
    if (!*src)
        return err_set(e, ST_NOTFOUND, "Not found: no such file %s or invalid uri scheme", src);

    /* 1. A local file. */
    abs = expand_path(src, refdir);
    if (stat(abs, &sb) == 0 && S_ISREG(sb.st_mode)) {
        st = read_file(abs, &b, e);
        if (st == ST_OK)
            st = check_text(src, &b, e);
        if (st != ST_OK) {
            free(abs);
            buf_release(&b);
            return st;
        }
        fill(out, abs, dir_of(abs), "file://", &b);
        return ST_OK;
    }
    free(abs);

    /* 2. A stack registry name. There is no public registry any more: only one named by
     * KONTENA_STACK_REGISTRY_URL is used. */
    if (registry_name(src)) {
        const char *reg = getenv("KONTENA_STACK_REGISTRY_URL");
        if (!reg || !*reg || no_network)
            return err_set(e, ST_NOTFOUND,
                           "Not found: no such file %s, and no stack registry is configured to "
                           "pull it from (the stack registry is not supported unless "
                           "KONTENA_STACK_REGISTRY_URL is set)",
                           src);
        const char *colon = strchr(src, ':');
        char *name = colon ? xstrndup(src, (size_t)(colon - src)) : xstrdup(src);
        size_t rl = strlen(reg);
        char *url =
            colon && colon[1]
                ? xasprintf("%.*s/stack/%s/version/%s",
                            (int)(rl && reg[rl - 1] == '/' ? rl - 1 : rl), reg, name, colon + 1)
                : xasprintf("%.*s/stack/%s", (int)(rl && reg[rl - 1] == '/' ? rl - 1 : rl), reg,
                            name);
        free(name);
        st = http_get(url, "application/yaml", &b, e);
        free(url);
        if (st == ST_OK)
            st = check_text(src, &b, e);
        if (st != ST_OK) {
            buf_release(&b);
            return st;
        }
        fill(out, xstrdup(src), expand_path(".", NULL), reg, &b);
        return ST_OK;
    }

    /* 3. A URL. */
    if (!no_network && (strncmp(src, "http://", 7) == 0 || strncmp(src, "https://", 8) == 0)) {
        st = http_get(src, NULL, &b, e);
        if (st == ST_OK)
            st = check_text(src, &b, e);
        if (st != ST_OK) {
            buf_release(&b);
            return st;
        }
        fill(out, xstrdup(src), expand_path(".", NULL), "file://", &b);
        return ST_OK;
    }
    return err_set(e, ST_NOTFOUND, "Not found: no such file %s or invalid uri scheme", src);
}

void sf__source_mem(const char *path, const char *text, size_t len, struct sf_source *out)
{
    char *abs = expand_path(path, NULL);

    memset(out, 0, sizeof(*out));
    out->abs = abs;
    out->base = base_of(abs);
    out->dir = dir_of(abs);
    out->registry = xstrdup("file://");
    out->text = xstrndup(text, len); /* stops at a NUL byte, as a C string would */
    out->len = strlen(out->text);
}

void sf__source_release(struct sf_source *s)
{
    if (!s)
        return;
    FREE_AND_NULL(s->abs);
    FREE_AND_NULL(s->base);
    FREE_AND_NULL(s->dir);
    FREE_AND_NULL(s->registry);
    FREE_AND_NULL(s->text);
    s->len = 0;
}
