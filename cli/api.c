/* cli/api.c -- HTTP client for the master's API; see api.h. */
#include "cli/api.h"

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/config.h"
#include "cli/output.h"
#include "common/buf.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

struct api {
    CURL *h;
    char *url;    /* base URL without trailing slash */
    char *token;  /* NULL: no Authorization header */
    char *cafile; /* extra trusted CA file for this master, NULL if there is none */
    int insecure; /* SSL_IGNORE_ERRORS=true */
    int debug;
    long connect_timeout, timeout; /* seconds */
    long status;                   /* HTTP status of the last reply, 0 if none */
    char *error;                   /* last failure, see api_error() */
    char *server_version;          /* X-Kontena-Version */
    char errbuf[CURL_ERROR_SIZE];
};

static long env_seconds(const char *name, long def)
{
    const char *v = getenv(name);
    char *end;
    long n;

    if (!v || !*v)
        return def;
    n = strtol(v, &end, 10);
    return *end || n <= 0 ? def : n;
}

struct api *api_create(const char *url, const char *token, int debug)
{
    struct api *a = xcalloc(1, sizeof(*a));
    const char *ignore = getenv("SSL_IGNORE_ERRORS");
    size_t len = strlen(url);

    while (len && url[len - 1] == '/')
        len--;
    a->url = xstrndup(url, len);
    a->token = token ? xstrdup(token) : NULL;
    a->debug = debug;
    a->insecure = ignore && !strcmp(ignore, "true");
    a->connect_timeout = env_seconds("EXCON_CONNECT_TIMEOUT", 10);
    a->timeout = env_seconds("EXCON_READ_TIMEOUT", 30);
    a->cafile = config_cert_path(a->url);
    if (a->cafile && access(a->cafile, R_OK) != 0) {
        free(a->cafile);
        a->cafile = config_cert_path_host(a->url);
        if (a->cafile && access(a->cafile, R_OK) != 0)
            FREE_AND_NULL(a->cafile);
    }
    a->h = curl_easy_init();
    BUG_ON(!a->h);
    return a;
}

void api_destroy(struct api *a)
{
    if (!a)
        return;
    curl_easy_cleanup(a->h);
    free(a->url);
    free(a->token);
    free(a->cafile);
    free(a->error);
    free(a->server_version);
    free(a);
}

void api_set_token(struct api *a, const char *token)
{
    config_set_str(&a->token, token);
}

const char *api_url(const struct api *a)
{
    return a->url;
}

const char *api_error(const struct api *a)
{
    return a->error ? a->error : "";
}

long api_status(const struct api *a)
{
    return a->status;
}

const char *api_server_version(const struct api *a)
{
    return a->server_version;
}

const char *api_reason(long status)
{
    static const struct {
        long code;
        const char *text;
    } reasons[] = {
        {200, "OK"},
        {201, "Created"},
        {204, "No Content"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {413, "Payload Too Large"},
        {415, "Unsupported Media Type"},
        {422, "Unprocessable Entity"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(reasons); i++)
        if (reasons[i].code == status)
            return reasons[i].text;
    return "Error";
}

char *api_format_error(long status, const char *body, size_t len, const char *path)
{
    json_t *doc = len ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *err = json_object_get(doc, "error");
    const char *desc = json_string_value(json_object_get(doc, "error_description"));
    const char *msg = NULL;
    char *out;

    if (json_is_object(err) || json_is_array(err)) {
        /* Validation errors: the reason phrase and the error object as YAML. */
        struct buf b = BUF_INIT;

        if (buf_printf(&b, "%ld : %s:\n", status, api_reason(status)) != ST_OK)
            BUG_ON("uncapped buffer refused an append");
        yaml_render(err, "\t", &b);
        if (b.len && b.ptr[b.len - 1] == '\n')
            b.ptr[--b.len] = '\0';
        json_decref(doc);
        return buf_take(&b);
    }
    if (desc && *desc)
        msg = desc;
    else if (json_is_string(err))
        msg = json_string_value(err);
    else if (json_is_string(json_object_get(doc, "message")))
        msg = json_string_value(json_object_get(doc, "message"));
    if (msg) {
        out = xasprintf("%ld : %s (%s)", status, msg, path);
    } else if (!doc && len && len < 200 && !memchr(body, '<', len)) {
        /* A short text body ("Access denied"), minus its trailing newline. */
        while (len && (body[len - 1] == '\n' || body[len - 1] == '\r'))
            len--;
        out = xasprintf("%ld : %.*s (%s)", status, (int)len, body, path);
    } else {
        out = xasprintf("%ld : %s (%s)", status, api_reason(status), path);
    }
    json_decref(doc);
    return out;
}

static void set_error(struct api *a, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void set_error(struct api *a, const char *fmt, ...)
{
    va_list ap;
    int n;

    free(a->error);
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    a->error = xmalloc((size_t)(n > 0 ? n : 0) + 1);
    va_start(ap, fmt);
    vsnprintf(a->error, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
    va_end(ap);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;

    return buf_append(b, p, size * nmemb) == ST_OK ? size * nmemb : 0;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    static const char name[] = "x-kontena-version:";
    struct api *a = arg;
    size_t n = size * nmemb;

    if (n > sizeof(name) - 1 && !strncasecmp(p, name, sizeof(name) - 1)) {
        const char *v = p + sizeof(name) - 1, *end = p + n;

        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        free(a->server_version);
        a->server_version = xstrndup(v, (size_t)(end - v));
    }
    return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)arg;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    spinner_tick();
    return 0;
}

/* Trust the master's own CA file in addition to the system CAs: add its certificates to
 * the store curl already filled, as the original CLI added certs/<host>.pem to Ruby's
 * default cert store. */
static CURLcode on_ssl_ctx(CURL *h, void *sslctx, void *arg)
{
    X509_STORE *store = SSL_CTX_get_cert_store((SSL_CTX *)sslctx);
    const char *file = arg;
    BIO *bio;
    X509 *x;

    (void)h;
    bio = BIO_new_file(file, "r");
    if (!bio)
        return CURLE_OK;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_cert(store, x); /* a duplicate is not an error worth reporting */
        X509_free(x);
    }
    ERR_clear_error(); /* the loop ends on "no start line" */
    BIO_free(bio);
    return CURLE_OK;
}

static enum status status_of(long code)
{
    switch (code) {
    case 404:
        return ST_NOTFOUND;
    case 401:
    case 403:
        return ST_DENIED;
    case 409:
        return ST_CONFLICT;
    default:
        return code >= 400 && code < 500 ? ST_INVALID : ST_IO;
    }
}

/* The path without its query string, for error messages. */
static char *path_only(const char *path)
{
    return xstrndup(path, strcspn(path, "?"));
}

/* The request options shared by api_call() and api_stream(): URL, method, TLS, headers.
 * The caller sets the body callback and the timeouts. Returns the header list to free after
 * the transfer; *auth gets the Authorization line to free too. */
static struct curl_slist *setup(struct api *a, const char *method, const char *url, char **auth)
{
    struct curl_slist *hdrs = NULL;

    *auth = NULL;
    curl_easy_reset(a->h);
    curl_easy_setopt(a->h, CURLOPT_URL, url);
    curl_easy_setopt(a->h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(a->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(a->h, CURLOPT_CONNECTTIMEOUT, a->connect_timeout);
    curl_easy_setopt(a->h, CURLOPT_ERRORBUFFER, a->errbuf);
    curl_easy_setopt(a->h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(a->h, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(a->h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(a->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(a->h, CURLOPT_USERAGENT, "kontena-cli/" KONTENA_VERSION);
    if (a->insecure) {
        curl_easy_setopt(a->h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(a->h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (a->cafile) {
        curl_easy_setopt(a->h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
        curl_easy_setopt(a->h, CURLOPT_SSL_CTX_DATA, a->cafile);
    }
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (a->token) {
        *auth = xasprintf("Authorization: Bearer %s", a->token);
        hdrs = curl_slist_append(hdrs, *auth);
    }
    curl_easy_setopt(a->h, CURLOPT_HTTPHEADER, hdrs);
    return hdrs;
}

/* A transfer that failed before a reply: the message and the status for it. */
static enum status transfer_error(struct api *a, CURLcode rc, const char *bare)
{
    const char *why = a->errbuf[0] ? a->errbuf : curl_easy_strerror(rc);

    if (rc == CURLE_WRITE_ERROR) {
        set_error(a, "reply from %s is larger than %u bytes", bare, API_MAX_REPLY);
        return ST_INVALID;
    }
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
        strstr(why, "certificate")) {
        set_error(a,
                  "cannot connect to %s: %s\n"
                  "         (trust the master's certificate with 'kontena master login "
                  "--ca-cert FILE' or set SSL_IGNORE_ERRORS=true)",
                  a->url, why);
        return ST_DENIED;
    }
    set_error(a, "cannot connect to %s: %s", a->url, why);
    return rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_COULDNT_CONNECT ||
                   rc == CURLE_COULDNT_RESOLVE_HOST
               ? ST_RETRY
               : ST_IO;
}

enum status api_call(struct api *a, const char *method, const char *path, const json_t *body,
                     json_t **out)
{
    struct curl_slist *hdrs;
    struct buf reply;
    char *url = xasprintf("%s%s", a->url, path), *auth = NULL, *payload = NULL, *bare;
    enum status st = ST_OK;
    int64_t t0 = time_mono_ms();
    CURLcode rc;

    *out = NULL;
    a->status = 0;
    FREE_AND_NULL(a->error);
    buf_init(&reply, API_MAX_REPLY);
    bare = path_only(path);

    hdrs = setup(a, method, url, &auth);
    curl_easy_setopt(a->h, CURLOPT_TIMEOUT, a->timeout);
    curl_easy_setopt(a->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(a->h, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(a->h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(a->h, CURLOPT_XFERINFOFUNCTION, on_progress);
    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        BUG_ON(!payload);
        curl_easy_setopt(a->h, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(a->h, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    }
    if (a->debug)
        fprintf(stderr, "DEBUG: > %s %s%s\n", method, url, body ? " (json body)" : "");

    a->errbuf[0] = '\0';
    rc = curl_easy_perform(a->h);
    if (rc != CURLE_OK) {
        st = transfer_error(a, rc, bare);
        if (a->debug)
            fprintf(stderr, "DEBUG: < failed after %lld ms: %s\n", (long long)(time_mono_ms() - t0),
                    api_error(a));
        goto out;
    }
    curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &a->status);
    if (a->debug)
        fprintf(stderr, "DEBUG: < %ld %s (%lld ms, %zu bytes)\n", a->status, api_reason(a->status),
                (long long)(time_mono_ms() - t0), reply.len);
    if (a->status < 200 || a->status >= 300) {
        a->error = api_format_error(a->status, reply.ptr, reply.len, bare);
        st = status_of(a->status);
        goto out;
    }
    if (reply.len == 0) {
        *out = json_object();
        goto out;
    }
    *out = json_loadb(reply.ptr, reply.len, 0, NULL);
    if (!*out) {
        set_error(a, "%ld : unparsable reply (%s)", a->status, bare);
        st = ST_INVALID;
    }
out:
    curl_slist_free_all(hdrs);
    free(payload);
    free(auth);
    free(url);
    free(bare);
    buf_release(&reply);
    return st;
}

/* api_stream()'s state during one transfer. */
struct stream {
    struct api *a;
    api_stream_fn *fn;
    void *arg;
    struct buf errbody; /* the body of a reply that is not 2xx, for the error message */
    int stopped;        /* fn asked to stop */
};

static size_t on_stream(char *p, size_t size, size_t nmemb, void *arg)
{
    struct stream *s = arg;
    size_t n = size * nmemb;
    long code = 0;

    curl_easy_getinfo(s->a->h, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code >= 300) {
        /* Keep what fits of an error body: its start is enough for the message. */
        if (buf_append(&s->errbody, p, n) != ST_OK)
            return n;
        return n;
    }
    if (s->fn(p, n, s->arg) != 0) {
        s->stopped = 1;
        return 0;
    }
    return n;
}

enum status api_stream(struct api *a, const char *path, long idle_s, api_stream_fn *fn, void *arg)
{
    struct curl_slist *hdrs;
    struct stream s = {a, fn, arg, BUF_INIT, 0};
    char *url = xasprintf("%s%s", a->url, path), *auth = NULL, *bare = path_only(path);
    enum status st = ST_OK;
    CURLcode rc;

    a->status = 0;
    FREE_AND_NULL(a->error);
    buf_init(&s.errbody, 64u << 10);
    hdrs = setup(a, "GET", url, &auth);
    curl_easy_setopt(a->h, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(a->h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(a->h, CURLOPT_NOPROGRESS, 1L);
    if (idle_s > 0) {
        curl_easy_setopt(a->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(a->h, CURLOPT_LOW_SPEED_TIME, idle_s);
    }
    if (a->debug)
        fprintf(stderr, "DEBUG: > GET %s (stream)\n", url);
    a->errbuf[0] = '\0';
    rc = curl_easy_perform(a->h);
    curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &a->status);
    if (s.stopped) {
        st = ST_OK;
    } else if (a->status != 0 && (a->status < 200 || a->status >= 300)) {
        a->error = api_format_error(a->status, s.errbody.ptr, s.errbody.len, bare);
        st = status_of(a->status);
    } else if (rc != CURLE_OK && a->status != 0) {
        /* The reply had begun: the stream broke (a master restart, an idle timeout). */
        set_error(a, "stream from %s broke: %s", bare,
                  a->errbuf[0] ? a->errbuf : curl_easy_strerror(rc));
        st = ST_RETRY;
    } else if (rc != CURLE_OK) {
        st = transfer_error(a, rc, bare);
    }
    if (a->debug)
        fprintf(stderr, "DEBUG: < stream ended: %ld %s\n", a->status,
                st == ST_OK ? "" : api_error(a));
    curl_slist_free_all(hdrs);
    buf_release(&s.errbody);
    free(auth);
    free(url);
    free(bare);
    return st;
}

enum status api_get(struct api *a, const char *path, json_t **out)
{
    return api_call(a, "GET", path, NULL, out);
}
