/* cli/config.c -- the client config file; see config.h for the format and the env rules. */
#include "cli/config.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/jsonutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define CONFIG_MAX_BYTES (16u << 20)
#define CERT_MAX_BYTES (1u << 20)

int config_readonly(void)
{
    const char *url = getenv("KONTENA_URL");
    return url && *url;
}

const char *config_home(void)
{
    const char *home = getenv("HOME");
    struct passwd *pw;

    if (home && *home)
        return home;
    pw = getpwuid(getuid());
    return pw && pw->pw_dir ? pw->pw_dir : "/";
}

void config_set_str(char **field, const char *value)
{
    char *old = *field;

    *field = value ? xstrdup(value) : NULL;
    free(old);
}

static void server_free(struct server *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->url);
    free(s->grid);
    free(s->username);
    free(s->token);
    free(s->token_id);
    free(s->refresh_token);
    json_decref(s->extra);
    free(s);
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nservers; i++)
        server_free(cfg->servers[i]);
    free(cfg->servers);
    server_free(cfg->env_server);
    json_decref(cfg->extra);
    free(cfg->current_server);
    free(cfg->path);
    free(cfg);
}

/* URLs compare equal when they differ only by trailing slashes. */
static int url_eq(const char *a, const char *b)
{
    size_t la, lb;

    if (!a || !b)
        return 0;
    la = strlen(a);
    lb = strlen(b);
    while (la && a[la - 1] == '/')
        la--;
    while (lb && b[lb - 1] == '/')
        lb--;
    return la == lb && strncmp(a, b, la) == 0;
}

struct server *config_find(const struct config *cfg, const char *name)
{
    for (size_t i = 0; name && i < cfg->nservers; i++)
        if (cfg->servers[i]->name && !strcmp(cfg->servers[i]->name, name))
            return cfg->servers[i];
    return NULL;
}

struct server *config_find_url(const struct config *cfg, const char *url)
{
    for (size_t i = 0; i < cfg->nservers; i++)
        if (url_eq(cfg->servers[i]->url, url))
            return cfg->servers[i];
    return NULL;
}

char *config_unique_name(const struct config *cfg, const char *base)
{
    char *name = xstrdup(base);

    for (int n = 2; config_find(cfg, name); n++) {
        free(name);
        name = xasprintf("%s-%d", base, n);
    }
    return name;
}

static struct server *server_new(const char *name, const char *url)
{
    struct server *s = xcalloc(1, sizeof(*s));

    s->name = xstrdup(name);
    s->url = url ? xstrdup(url) : NULL;
    s->extra = json_object();
    return s;
}

struct server *config_add(struct config *cfg, const char *name, const char *url)
{
    char *unique = config_unique_name(cfg, name);
    struct server *s = server_new(unique, url);

    free(unique);
    cfg->servers = xrealloc(cfg->servers, (cfg->nservers + 1) * sizeof(*cfg->servers));
    cfg->servers[cfg->nservers++] = s;
    return s;
}

void config_remove(struct config *cfg, struct server *s)
{
    for (size_t i = 0; i < cfg->nservers; i++) {
        if (cfg->servers[i] != s)
            continue;
        if (cfg->current_server && s->name && !strcmp(cfg->current_server, s->name))
            FREE_AND_NULL(cfg->current_server);
        memmove(&cfg->servers[i], &cfg->servers[i + 1],
                (cfg->nservers - i - 1) * sizeof(*cfg->servers));
        cfg->nservers--;
        server_free(s);
        return;
    }
}

void config_set_current(struct config *cfg, const struct server *s)
{
    config_set_str(&cfg->current_server, s ? s->name : NULL);
}

struct server *config_master(struct config *cfg)
{
    const char *url = getenv("KONTENA_URL"), *name = getenv("KONTENA_MASTER");
    struct server *s;

    if (name && !*name)
        name = NULL;
    if (url && *url) {
        for (size_t i = 0; i < cfg->nservers; i++) {
            s = cfg->servers[i];
            if (url_eq(s->url, url) && (!name || (s->name && !strcmp(s->name, name))))
                return s;
        }
        s = config_find_url(cfg, url);
        if (s)
            return s;
        if (!cfg->env_server)
            cfg->env_server = server_new(name ? name : "default", url);
        return cfg->env_server;
    }
    if (name)
        return config_find(cfg, name);
    return config_find(cfg, cfg->current_server);
}

const char *config_token(const struct server *s)
{
    const char *t = getenv("KONTENA_TOKEN");

    if (!s)
        return NULL;
    return t && *t ? t : s->token;
}

const char *config_grid(const struct server *s)
{
    const char *g = getenv("KONTENA_GRID");

    if (g && *g)
        return g;
    return s ? s->grid : NULL;
}

/* A string member, or NULL when absent, null or not a string. */
static const char *const server_keys[] = {"name",  "url",      "grid",          "username",
                                          "token", "token_id", "refresh_token", "token_expires_at"};

static struct server *server_from_json(const json_t *o)
{
    struct server *s = server_new(jstr(o, "name") ? jstr(o, "name") : "default", jstr(o, "url"));
    json_t *exp = json_object_get(o, "token_expires_at");

    config_set_str(&s->grid, jstr(o, "grid"));
    config_set_str(&s->username, jstr(o, "username"));
    config_set_str(&s->token, jstr(o, "token"));
    config_set_str(&s->token_id, jstr(o, "token_id"));
    config_set_str(&s->refresh_token, jstr(o, "refresh_token"));
    s->token_expires_at = json_is_integer(exp) ? (int64_t)json_integer_value(exp) : 0;
    json_object_update(s->extra, (json_t *)o);
    for (size_t i = 0; i < ARRAY_SIZE(server_keys); i++)
        json_object_del(s->extra, server_keys[i]);
    return s;
}

static enum status from_json(struct config *cfg, json_t *root, struct err *e)
{
    json_t *servers = json_object_get(root, "servers"), *old = json_object_get(root, "server");
    json_t *item;
    size_t i;

    if (!json_is_object(root))
        return err_set(e, ST_INVALID, "cannot parse config '%s': not a JSON object", cfg->path);
    config_set_str(&cfg->current_server, jstr(root, "current_server"));
    json_object_update(cfg->extra, root);
    json_object_del(cfg->extra, "current_server");
    json_object_del(cfg->extra, "servers");
    json_object_del(cfg->extra, "server");

    if (!servers && json_is_object(old)) {
        /* The old single-server form: {"server": {"url", "token", "grid", ...}}. */
        struct server *s = server_from_json(old);
        config_set_str(&s->name, jstr(old, "name") ? jstr(old, "name") : "default");
        cfg->servers = xrealloc(cfg->servers, sizeof(*cfg->servers));
        cfg->servers[cfg->nservers++] = s;
        if (!cfg->current_server)
            config_set_str(&cfg->current_server, s->name);
        return ST_OK;
    }
    if (servers && !json_is_array(servers))
        return err_set(e, ST_INVALID, "cannot parse config '%s': 'servers' is not a list",
                       cfg->path);
    json_array_foreach(servers, i, item)
    {
        struct server *s;
        char *unique;

        if (!json_is_object(item))
            continue;
        s = server_from_json(item);
        unique = config_unique_name(cfg, s->name);
        free(s->name);
        s->name = unique;
        cfg->servers = xrealloc(cfg->servers, (cfg->nservers + 1) * sizeof(*cfg->servers));
        cfg->servers[cfg->nservers++] = s;
    }
    return ST_OK;
}

static char *default_path(void)
{
    const char *p = getenv("KONTENA_CONFIG");

    if (p && *p)
        return xstrdup(p);
    return xasprintf("%s/.kontena_client.json", config_home());
}

enum status config_load(const char *path, struct config **out, struct err *e)
{
    struct config *cfg = xcalloc(1, sizeof(*cfg));
    json_error_t jerr;
    json_t *root = NULL;
    enum status st = ST_OK;
    FILE *f;

    *out = NULL;
    cfg->path = path ? xstrdup(path) : default_path();
    cfg->extra = json_object();
    f = fopen(cfg->path, "r");
    if (!f) {
        if (errno == ENOENT)
            goto out;
        st = err_set(e, ST_IO, "cannot read config '%s': %s", cfg->path, strerror(errno));
        goto out;
    }
    root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    fclose(f);
    if (!root) {
        st = err_set(e, ST_INVALID, "cannot parse config '%s': %s (line %d)", cfg->path, jerr.text,
                     jerr.line);
        goto out;
    }
    st = from_json(cfg, root, e);
out:
    json_decref(root);
    if (st != ST_OK) {
        config_free(cfg);
        return st;
    }
    *out = cfg;
    return ST_OK;
}

static json_t *jstr_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *server_to_json(const struct server *s)
{
    json_t *o = json_object();

    json_object_set_new(o, "name", jstr_or_null(s->name));
    json_object_set_new(o, "url", jstr_or_null(s->url));
    json_object_set_new(o, "grid", jstr_or_null(s->grid));
    json_object_set_new(o, "username", jstr_or_null(s->username));
    json_object_set_new(o, "token", jstr_or_null(s->token));
    if (s->token_id)
        json_object_set_new(o, "token_id", json_string(s->token_id));
    json_object_set_new(o, "token_expires_at", json_integer((json_int_t)s->token_expires_at));
    json_object_set_new(o, "refresh_token", jstr_or_null(s->refresh_token));
    json_object_update_missing(o, s->extra);
    return o;
}

json_t *config_to_json(const struct config *cfg)
{
    json_t *root = json_object(), *servers = json_array();

    json_object_set_new(root, "current_server", jstr_or_null(cfg->current_server));
    for (size_t i = 0; i < cfg->nservers; i++)
        json_array_append_new(servers, server_to_json(cfg->servers[i]));
    json_object_set_new(root, "servers", servers);
    json_object_update_missing(root, cfg->extra);
    return root;
}

/* Write data to path through a temporary file in the same directory and rename(2), so a
 * reader sees either the old or the new file, never a partial one. */
static enum status write_atomic(const char *path, const char *data, size_t len, mode_t mode,
                                struct err *e)
{
    char *tmp = xasprintf("%s.XXXXXX", path);
    enum status st = ST_OK;
    size_t done = 0;
    int fd;

    fd = mkstemp(tmp);
    if (fd == -1) {
        st = err_set(e, ST_IO, "cannot write '%s': %s", path, strerror(errno));
        goto out;
    }
    if (fchmod(fd, mode) == -1) {
        st = err_set(e, ST_IO, "cannot chmod '%s': %s", tmp, strerror(errno));
        goto fail;
    }
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            st = err_set(e, ST_IO, "cannot write '%s': %s", tmp, strerror(errno));
            goto fail;
        }
        done += (size_t)n;
    }
    if (fsync(fd) == -1) {
        st = err_set(e, ST_IO, "cannot write '%s': %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) == -1) {
        fd = -1;
        st = err_set(e, ST_IO, "cannot write '%s': %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) == -1) {
        st = err_set(e, ST_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        goto fail;
    }
    goto out;
fail:
    if (fd != -1)
        close(fd);
    unlink(tmp);
out:
    free(tmp);
    return st;
}

enum status config_save(const struct config *cfg, struct err *e)
{
    json_t *root;
    char *text;
    struct buf b = BUF_INIT;
    enum status st;

    if (config_readonly())
        return ST_OK;
    root = config_to_json(cfg);
    text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (!text)
        return err_set(e, ST_INVALID, "cannot encode config");
    if (buf_puts(&b, text) != ST_OK || buf_puts(&b, "\n") != ST_OK)
        BUG_ON("uncapped buffer refused an append");
    free(text);
    st = write_atomic(cfg->path, b.ptr, b.len, 0600, e);
    buf_release(&b);
    return st;
}

char *config_url_host(const char *url)
{
    const char *p = strstr(url, "://"), *end, *at;

    p = p ? p + 3 : url;
    end = p + strcspn(p, "/?#");
    at = memchr(p, '@', (size_t)(end - p));
    if (at)
        p = at + 1;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close)
            return NULL;
        p++;
        end = close;
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (colon)
            end = colon;
    }
    if (end == p)
        return NULL;
    return xstrndup(p, (size_t)(end - p));
}

/* The explicit port of a URL ("9292"), or NULL. Caller frees. */
static char *url_port(const char *url)
{
    const char *p = strstr(url, "://"), *end, *at, *colon;

    p = p ? p + 3 : url;
    end = p + strcspn(p, "/?#");
    at = memchr(p, '@', (size_t)(end - p));
    if (at)
        p = at + 1;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close)
            return NULL;
        p = close + 1;
    }
    colon = memchr(p, ':', (size_t)(end - p));
    if (!colon || colon + 1 >= end || strspn(colon + 1, "0123456789") != (size_t)(end - colon - 1))
        return NULL;
    return xstrndup(colon + 1, (size_t)(end - colon - 1));
}

char *config_cert_path(const char *url)
{
    char *host = config_url_host(url), *port, *path;

    if (!host)
        return NULL;
    port = url_port(url);
    if (port)
        path = xasprintf("%s/.kontena/certs/%s_%s.pem", config_home(), host, port);
    else
        path = xasprintf("%s/.kontena/certs/%s.pem", config_home(), host);
    free(port);
    free(host);
    return path;
}

char *config_cert_path_host(const char *url)
{
    char *host = config_url_host(url), *path;

    if (!host)
        return NULL;
    path = xasprintf("%s/.kontena/certs/%s.pem", config_home(), host);
    free(host);
    return path;
}

static enum status mkdir_0700(const char *path, struct err *e)
{
    if (mkdir(path, 0700) == -1 && errno != EEXIST)
        return err_set(e, ST_IO, "cannot create '%s': %s", path, strerror(errno));
    return ST_OK;
}

enum status config_install_cert(const char *url, const char *src, struct err *e)
{
    char *dir = xasprintf("%s/.kontena", config_home()), *certs = NULL, *dst = NULL;
    struct buf pem;
    enum status st;
    char chunk[4096];
    size_t n;
    FILE *f;

    buf_init(&pem, CERT_MAX_BYTES);
    f = fopen(src, "r");
    if (!f) {
        st = err_set(e, ST_IO, "cannot read '%s': %s", src, strerror(errno));
        goto out;
    }
    st = ST_OK;
    while (st == ST_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        st = buf_append(&pem, chunk, n);
    fclose(f);
    if (st != ST_OK) {
        st = err_set(e, ST_INVALID, "cannot read '%s': larger than %u bytes", src, CERT_MAX_BYTES);
        goto out;
    }
    if (!pem.ptr || !strstr(pem.ptr, "-----BEGIN CERTIFICATE-----")) {
        st = err_set(e, ST_INVALID, "'%s' is not a PEM certificate", src);
        goto out;
    }
    dst = config_cert_path(url);
    if (!dst) {
        st = err_set(e, ST_INVALID, "no host in master URL '%s'", url);
        goto out;
    }
    certs = xasprintf("%s/certs", dir);
    st = mkdir_0700(dir, e);
    if (st == ST_OK)
        st = mkdir_0700(certs, e);
    if (st == ST_OK)
        st = write_atomic(dst, pem.ptr, pem.len, 0600, e);
out:
    buf_release(&pem);
    free(dst);
    free(certs);
    free(dir);
    return st;
}
