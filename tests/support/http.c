#include "tests/support/http.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xmalloc.h"

static size_t collect(char *p, size_t sz, size_t n, void *u)
{
    return buf_append(u, p, sz * n) == ST_OK ? sz * n : 0;
}

int http_do(const char *method, const char *url, const char *token, const char *body,
            size_t body_len, const char *extra_header, struct http_reply *out)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct buf b, hb;
    char *auth = NULL;
    CURLcode rc;

    memset(out, 0, sizeof(*out));
    buf_init(&b, 64 << 20);
    buf_init(&hb, 1 << 20);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    if (token) {
        auth = xasprintf("Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    if (extra_header)
        hdrs = curl_slist_append(hdrs, extra_header);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hb);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(body_len == (size_t)-1 ? strlen(body) : body_len));
    }
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    out->len = b.len;
    out->body = buf_take(&b);
    out->headers = buf_take(&hb);
    out->json = json_loadb(out->body, out->len, JSON_DECODE_ANY, NULL);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(auth);
    buf_release(&b);
    buf_release(&hb);
    return rc == CURLE_OK ? 0 : -1;
}

void http_reply_release(struct http_reply *r)
{
    free(r->body);
    free(r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}
