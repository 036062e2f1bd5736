/* etcdclient/etcd_kv.c -- KV, transactions, leases and compaction over the JSON gateway.
 *
 * Requests are built with jansson and sent with etcd__post(). Replies follow the gateway's
 * proto3 JSON mapping: bytes are base64, int64 are strings, and zero values (an empty
 * value, count 0, more=false, succeeded=false, TTL 0) are left out entirely, so every
 * missing field reads as zero here.
 */
#include "etcdclient/etcd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/crypto.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd_internal.h"

#include "common/banned.h"

/* --- JSON helpers ------------------------------------------------------------------------- */

int64_t etcd__json_int64(json_t *obj, const char *field)
{
    json_t *v = json_object_get(obj, field);
    const char *s;
    char *end;
    long long n;

    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (!json_is_string(v))
        return 0;
    s = json_string_value(v);
    errno = 0;
    n = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return 0;
    return (int64_t)n;
}

int64_t etcd__header_revision(json_t *reply)
{
    return etcd__json_int64(json_object_get(reply, "header"), "revision");
}

static int json_bool(json_t *obj, const char *field)
{
    return json_is_true(json_object_get(obj, field));
}

json_t *etcd__b64_json(const void *data, size_t len)
{
    char *s = crypto_b64_encode(data, len);
    json_t *j = json_string(s);

    free(s);
    BUG_ON(!j);
    return j;
}

static json_t *int64_json(int64_t n)
{
    char s[32];

    snprintf(s, sizeof(s), "%lld", (long long)n);
    return json_string(s);
}

/* The prefix end as bytes: the prefix without its trailing 0xff bytes, last byte + 1.
 * len 0 means "no end": every key from the start key on (etcd's "\0"). */
static char *prefix_end(const char *prefix, size_t *len)
{
    size_t n = strlen(prefix);
    char *end = xstrndup(prefix, n);

    while (n && (unsigned char)end[n - 1] == 0xff)
        n--;
    if (n)
        end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
    end[n] = '\0';
    *len = n;
    return end;
}

char *etcd_prefix_end(const char *prefix)
{
    size_t len;

    return prefix_end(prefix, &len);
}

void etcd__set_key_range(json_t *req, const char *key, const char *range_end)
{
    static const char zero = '\0';

    if (range_end == ETCD_PREFIX) {
        size_t len;
        char *end = prefix_end(key, &len);
        if (!len) {
            /* Prefix "" (or all 0xff): etcd spells "from key to the end" as range_end "\0",
             * and the empty key as "\0" too. */
            json_object_set_new(req, "range_end", etcd__b64_json(&zero, 1));
            if (!*key)
                json_object_set_new(req, "key", etcd__b64_json(&zero, 1));
        } else {
            json_object_set_new(req, "range_end", etcd__b64_json(end, len));
        }
        free(end);
    } else if (range_end) {
        /* An explicit "" end means "to the end of the keyspace", as in etcd. */
        json_object_set_new(req, "range_end",
                            *range_end ? etcd__b64_json(range_end, strlen(range_end))
                                       : etcd__b64_json(&zero, 1));
    }
    if (!json_object_get(req, "key"))
        json_object_set_new(req, "key", etcd__b64_json(key, strlen(key)));
}

static char *b64_field(json_t *obj, const char *field, size_t *len, int *bad)
{
    json_t *v = json_object_get(obj, field);
    const char *s = json_string_value(v);
    char *out;

    *len = 0;
    if (!s)
        return xstrdup(""); /* omitted: the empty string */
    out = crypto_b64_decode(s, strlen(s), len);
    if (!out) {
        *bad = 1;
        return xstrdup("");
    }
    return out;
}

enum status etcd__kv_from_json(json_t *j, int want_value, struct etcd_kv *kv, struct err *e)
{
    size_t klen;
    int bad = 0;

    memset(kv, 0, sizeof(*kv));
    if (!json_is_object(j))
        return err_set(e, ST_INVALID, "etcd key-value is not an object");
    kv->key = b64_field(j, "key", &klen, &bad);
    if (want_value)
        kv->value = b64_field(j, "value", &kv->value_len, &bad);
    kv->create_revision = etcd__json_int64(j, "create_revision");
    kv->mod_revision = etcd__json_int64(j, "mod_revision");
    kv->version = etcd__json_int64(j, "version");
    kv->lease = etcd__json_int64(j, "lease");
    if (bad || strlen(kv->key) != klen) {
        etcd_kv_release(kv);
        return err_set(e, ST_INVALID, "bad base64 or a NUL byte in an etcd key-value");
    }
    return ST_OK;
}

void etcd_kv_release(struct etcd_kv *kv)
{
    if (!kv)
        return;
    FREE_AND_NULL(kv->key);
    FREE_AND_NULL(kv->value);
    memset(kv, 0, sizeof(*kv));
}

void etcd_range_result_release(struct etcd_range_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        etcd_kv_release(&r->kvs[i]);
    FREE_AND_NULL(r->kvs);
    memset(r, 0, sizeof(*r));
}

/* --- range -------------------------------------------------------------------------------- */

static json_t *range_request(const char *key, const struct etcd_range_opts *o)
{
    json_t *req = json_object();

    etcd__set_key_range(req, key, o ? o->range_end : NULL);
    if (!o)
        return req;
    if (o->limit > 0)
        json_object_set_new(req, "limit", int64_json(o->limit));
    if (o->revision > 0)
        json_object_set_new(req, "revision", int64_json(o->revision));
    if (o->keys_only)
        json_object_set_new(req, "keys_only", json_true());
    if (o->count_only)
        json_object_set_new(req, "count_only", json_true());
    if (o->sort_descend) {
        json_object_set_new(req, "sort_order", json_string("DESCEND"));
        json_object_set_new(req, "sort_target", json_string("KEY"));
    }
    return req;
}

/* Fill out from a RangeResponse (also the response_range of a txn). */
static enum status range_from_json(json_t *reply, int keys_only, struct etcd_range_result *out,
                                   struct err *e)
{
    json_t *kvs = json_object_get(reply, "kvs");
    size_t n = json_array_size(kvs);

    out->revision = etcd__header_revision(reply);
    out->count = etcd__json_int64(reply, "count");
    out->more = json_bool(reply, "more");
    if (!n)
        return ST_OK;
    out->kvs = xcalloc(n, sizeof(*out->kvs));
    for (size_t i = 0; i < n; i++) {
        enum status st = etcd__kv_from_json(json_array_get(kvs, i), !keys_only, &out->kvs[i], e);
        if (st != ST_OK)
            return st; /* the caller releases what was filled */
        out->n++;
    }
    return ST_OK;
}

enum status etcd_range(struct etcd *c, const char *key, const struct etcd_range_opts *o,
                       struct etcd_range_result *out, struct err *e)
{
    json_t *req, *reply = NULL;
    enum status st;

    memset(out, 0, sizeof(*out));
    if (!key)
        return err_set(e, ST_INVALID, "etcd range without a key");
    req = range_request(key, o);
    st = etcd__post(c, "/v3/kv/range", req, &reply, e);
    if (st == ST_OK)
        st = range_from_json(reply, o && o->keys_only, out, e);
    if (st != ST_OK) {
        etcd_range_result_release(out);
        err_wrap(e, "cannot read '%s'", key);
    }
    json_decref(reply);
    json_decref(req);
    return st;
}

enum status etcd_get(struct etcd *c, const char *key, struct etcd_kv *out, int64_t *rev,
                     struct err *e)
{
    struct etcd_range_result r;
    enum status st;

    memset(out, 0, sizeof(*out));
    if (rev)
        *rev = 0;
    st = etcd_range(c, key, NULL, &r, e);
    if (st != ST_OK)
        return st;
    if (rev)
        *rev = r.revision;
    if (r.n == 0) {
        st = err_set(e, ST_NOTFOUND, "key '%s' not found", key);
    } else {
        *out = r.kvs[0]; /* hand the strings over */
        memset(&r.kvs[0], 0, sizeof(r.kvs[0]));
    }
    etcd_range_result_release(&r);
    return st;
}

/* --- put / delete ------------------------------------------------------------------------- */

static json_t *put_request(const char *key, const char *value, size_t len, int64_t lease)
{
    json_t *req = json_object();

    json_object_set_new(req, "key", etcd__b64_json(key, strlen(key)));
    json_object_set_new(req, "value", etcd__b64_json(value ? value : "", value ? len : 0));
    if (lease)
        json_object_set_new(req, "lease", int64_json(lease));
    return req;
}

enum status etcd_put(struct etcd *c, const char *key, const char *value, size_t len, int64_t lease,
                     struct etcd_kv *prev, int64_t *rev, struct err *e)
{
    json_t *req, *reply = NULL, *pkv;
    enum status st;

    if (prev)
        memset(prev, 0, sizeof(*prev));
    if (rev)
        *rev = 0;
    if (!key || !*key)
        return err_set(e, ST_INVALID, "etcd put without a key");
    req = put_request(key, value, len, lease);
    if (prev)
        json_object_set_new(req, "prev_kv", json_true());
    st = etcd__post(c, "/v3/kv/put", req, &reply, e);
    if (st != ST_OK)
        goto out;
    if (rev)
        *rev = etcd__header_revision(reply);
    pkv = json_object_get(reply, "prev_kv");
    if (prev && pkv)
        st = etcd__kv_from_json(pkv, 1, prev, e);
out:
    if (st != ST_OK)
        err_wrap(e, "cannot put '%s'", key);
    json_decref(reply);
    json_decref(req);
    return st;
}

enum status etcd_delete(struct etcd *c, const char *key, const char *range_end, int64_t *deleted,
                        struct err *e)
{
    json_t *req, *reply = NULL;
    enum status st;

    if (deleted)
        *deleted = 0;
    if (!key)
        return err_set(e, ST_INVALID, "etcd delete without a key");
    req = json_object();
    etcd__set_key_range(req, key, range_end);
    st = etcd__post(c, "/v3/kv/deleterange", req, &reply, e);
    if (st == ST_OK && deleted)
        *deleted = etcd__json_int64(reply, "deleted");
    if (st != ST_OK)
        err_wrap(e, "cannot delete '%s'", key);
    json_decref(reply);
    json_decref(req);
    return st;
}

/* --- transactions ------------------------------------------------------------------------- */

/* The builder is the request itself; ops are appended as the gateway wants them. */
struct etcd_txn {
    json_t *compare;
    json_t *success;
    json_t *failure;
};

struct etcd_txn *etcd_txn_new(void)
{
    struct etcd_txn *t = xcalloc(1, sizeof(*t));

    t->compare = json_array();
    t->success = json_array();
    t->failure = json_array();
    BUG_ON(!t->compare || !t->success || !t->failure);
    return t;
}

void etcd_txn_free(struct etcd_txn *t)
{
    if (!t)
        return;
    json_decref(t->compare);
    json_decref(t->success);
    json_decref(t->failure);
    free(t);
}

static const char *cmp_result_name(enum etcd_cmp_result r)
{
    switch (r) {
    case ETCD_CMP_EQUAL:
        return "EQUAL";
    case ETCD_CMP_NOT_EQUAL:
        return "NOT_EQUAL";
    case ETCD_CMP_GREATER:
        return "GREATER";
    case ETCD_CMP_LESS:
        return "LESS";
    }
    BUG_ON(1);
    return NULL;
}

void etcd_txn_cmp(struct etcd_txn *t, const char *key, enum etcd_cmp_target target,
                  enum etcd_cmp_result result, int64_t number)
{
    json_t *c;
    const char *tname = NULL, *field = NULL;

    BUG_ON(target == ETCD_CMP_VALUE); /* etcd_txn_cmp_value() compares values */
    switch (target) {
    case ETCD_CMP_VERSION:
        tname = "VERSION", field = "version";
        break;
    case ETCD_CMP_CREATE:
        tname = "CREATE", field = "create_revision";
        break;
    case ETCD_CMP_MOD:
        tname = "MOD", field = "mod_revision";
        break;
    case ETCD_CMP_VALUE:
        break;
    }
    c = json_object();
    json_object_set_new(c, "key", etcd__b64_json(key, strlen(key)));
    json_object_set_new(c, "target", json_string(tname));
    json_object_set_new(c, "result", json_string(cmp_result_name(result)));
    json_object_set_new(c, field, int64_json(number));
    json_array_append_new(t->compare, c);
}

void etcd_txn_cmp_value(struct etcd_txn *t, const char *key, enum etcd_cmp_result result,
                        const char *value, size_t len)
{
    json_t *c = json_object();

    json_object_set_new(c, "key", etcd__b64_json(key, strlen(key)));
    json_object_set_new(c, "target", json_string("VALUE"));
    json_object_set_new(c, "result", json_string(cmp_result_name(result)));
    json_object_set_new(c, "value", etcd__b64_json(value ? value : "", value ? len : 0));
    json_array_append_new(t->compare, c);
}

static json_t *branch(struct etcd_txn *t, enum etcd_branch b)
{
    return b == ETCD_THEN ? t->success : t->failure;
}

void etcd_txn_put(struct etcd_txn *t, enum etcd_branch b, const char *key, const char *value,
                  size_t len, int64_t lease)
{
    json_array_append_new(branch(t, b),
                          json_pack("{s:o}", "request_put", put_request(key, value, len, lease)));
}

void etcd_txn_delete(struct etcd_txn *t, enum etcd_branch b, const char *key, const char *range_end)
{
    json_t *req = json_object();

    etcd__set_key_range(req, key, range_end);
    json_array_append_new(branch(t, b), json_pack("{s:o}", "request_delete_range", req));
}

void etcd_txn_range(struct etcd_txn *t, enum etcd_branch b, const char *key,
                    const struct etcd_range_opts *o)
{
    json_array_append_new(branch(t, b), json_pack("{s:o}", "request_range", range_request(key, o)));
}

void etcd_txn_result_release(struct etcd_txn_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        etcd_range_result_release(&r->responses[i].range);
    FREE_AND_NULL(r->responses);
    memset(r, 0, sizeof(*r));
}

static enum status txn_responses(json_t *reply, json_t *ops, struct etcd_txn_result *res,
                                 struct err *e)
{
    json_t *resps = json_object_get(reply, "responses");
    size_t n = json_array_size(resps);

    if (n != json_array_size(ops))
        return err_set(e, ST_INVALID, "etcd txn reply has %zu responses for %zu ops", n,
                       json_array_size(ops));
    if (!n)
        return ST_OK;
    res->responses = xcalloc(n, sizeof(*res->responses));
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(resps, i), *op = json_array_get(ops, i), *v;
        struct etcd_txn_response *out = &res->responses[i];

        res->n++;
        if ((v = json_object_get(r, "response_range")) != NULL) {
            int keys_only = json_bool(json_object_get(op, "request_range"), "keys_only");
            out->type = ETCD_RESP_RANGE;
            if (range_from_json(v, keys_only, &out->range, e) != ST_OK)
                return ST_INVALID;
        } else if ((v = json_object_get(r, "response_delete_range")) != NULL) {
            out->type = ETCD_RESP_DELETE;
            out->deleted = etcd__json_int64(v, "deleted");
        } else if (json_object_get(r, "response_put")) {
            out->type = ETCD_RESP_PUT;
        } else {
            return err_set(e, ST_INVALID, "unknown response %zu in etcd txn reply", i);
        }
    }
    return ST_OK;
}

enum status etcd_txn_commit(struct etcd *c, const struct etcd_txn *t, struct etcd_txn_result *res,
                            struct err *e)
{
    json_t *req, *reply = NULL;
    enum status st;

    memset(res, 0, sizeof(*res));
    req = json_pack("{s:O, s:O, s:O}", "compare", t->compare, "success", t->success, "failure",
                    t->failure);
    BUG_ON(!req);
    st = etcd__post(c, "/v3/kv/txn", req, &reply, e);
    if (st != ST_OK)
        goto out;
    res->succeeded = json_bool(reply, "succeeded");
    res->revision = etcd__header_revision(reply);
    st = txn_responses(reply, res->succeeded ? t->success : t->failure, res, e);
    if (st != ST_OK)
        etcd_txn_result_release(res);
out:
    if (st != ST_OK)
        err_wrap(e, "cannot commit etcd txn");
    json_decref(reply);
    json_decref(req);
    return st;
}

/* One compare on mod_revision (or "does not exist"), one op, ST_CONFLICT when lost. */
static enum status cas(struct etcd *c, struct etcd_txn *t, const char *what, const char *key,
                       int64_t mod_rev, int64_t *rev, struct err *e)
{
    struct etcd_txn_result res;
    enum status st;

    if (rev)
        *rev = 0;
    if (mod_rev)
        etcd_txn_cmp(t, key, ETCD_CMP_MOD, ETCD_CMP_EQUAL, mod_rev);
    else
        etcd_txn_cmp(t, key, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
    st = etcd_txn_commit(c, t, &res, e);
    if (st != ST_OK) {
        err_wrap(e, "cannot %s '%s'", what, key);
        return st;
    }
    if (!res.succeeded) {
        st = mod_rev ? err_set(e, ST_CONFLICT, "cannot %s '%s': modified since revision %lld", what,
                               key, (long long)mod_rev)
                     : err_set(e, ST_CONFLICT, "cannot %s '%s': it already exists", what, key);
    } else if (rev) {
        *rev = res.revision;
    }
    etcd_txn_result_release(&res);
    return st;
}

enum status etcd_put_if(struct etcd *c, const char *key, const char *value, size_t len,
                        int64_t mod_rev, int64_t lease, int64_t *rev, struct err *e)
{
    struct etcd_txn *t;
    enum status st;

    if (!key || !*key)
        return err_set(e, ST_INVALID, "etcd put without a key");
    t = etcd_txn_new();
    etcd_txn_put(t, ETCD_THEN, key, value, len, lease);
    st = cas(c, t, "put", key, mod_rev, rev, e);
    etcd_txn_free(t);
    return st;
}

enum status etcd_delete_if(struct etcd *c, const char *key, int64_t mod_rev, struct err *e)
{
    struct etcd_txn *t;
    enum status st;

    if (!key || !*key)
        return err_set(e, ST_INVALID, "etcd delete without a key");
    t = etcd_txn_new();
    etcd_txn_delete(t, ETCD_THEN, key, NULL);
    st = cas(c, t, "delete", key, mod_rev, NULL, e);
    etcd_txn_free(t);
    return st;
}

/* --- leases ------------------------------------------------------------------------------- */

enum status etcd_lease_grant(struct etcd *c, int64_t ttl, int64_t *id, struct err *e)
{
    json_t *req, *reply = NULL;
    enum status st;

    *id = 0;
    if (ttl <= 0)
        return err_set(e, ST_INVALID, "etcd lease ttl %lld is not positive", (long long)ttl);
    req = json_pack("{s:o}", "TTL", int64_json(ttl));
    st = etcd__post(c, "/v3/lease/grant", req, &reply, e);
    if (st == ST_OK) {
        *id = etcd__json_int64(reply, "ID");
        if (!*id)
            st = err_set(e, ST_INVALID, "etcd lease grant reply has no ID");
    }
    if (st != ST_OK)
        err_wrap(e, "cannot grant an etcd lease");
    json_decref(reply);
    json_decref(req);
    return st;
}

enum status etcd_lease_keepalive(struct etcd *c, int64_t id, int64_t *ttl, struct err *e)
{
    json_t *req, *reply = NULL;
    int64_t t = 0;
    enum status st;

    if (ttl)
        *ttl = 0;
    /* /v3/lease/keepalive is a bidirectional stream in gRPC. Through the gateway, one posted
     * message gets one line back ({"result":{..,"TTL":"n"}}), and the stream ends because
     * the request body did: an ordinary request. An expired or revoked lease answers with
     * TTL 0, which the gateway omits. */
    req = json_pack("{s:o}", "ID", int64_json(id));
    st = etcd__post(c, "/v3/lease/keepalive", req, &reply, e);
    if (st == ST_OK) {
        t = etcd__json_int64(reply, "TTL");
        if (t <= 0)
            st = err_set(e, ST_NOTFOUND, "etcd lease %lld not found", (long long)id);
        else if (ttl)
            *ttl = t;
    }
    if (st != ST_OK)
        err_wrap(e, "cannot keep etcd lease %lld alive", (long long)id);
    json_decref(reply);
    json_decref(req);
    return st;
}

enum status etcd_lease_revoke(struct etcd *c, int64_t id, struct err *e)
{
    json_t *req, *reply = NULL;
    enum status st;

    req = json_pack("{s:o}", "ID", int64_json(id));
    st = etcd__post(c, "/v3/lease/revoke", req, &reply, e);
    if (st != ST_OK)
        err_wrap(e, "cannot revoke etcd lease %lld", (long long)id);
    json_decref(reply);
    json_decref(req);
    return st;
}

/* --- maintenance -------------------------------------------------------------------------- */

enum status etcd_compact(struct etcd *c, int64_t rev, struct err *e)
{
    json_t *req, *reply = NULL;
    enum status st;

    req = json_pack("{s:o, s:b}", "revision", int64_json(rev), "physical", 1);
    st = etcd__post(c, "/v3/kv/compaction", req, &reply, e);
    if (st != ST_OK)
        err_wrap(e, "cannot compact etcd at revision %lld", (long long)rev);
    json_decref(reply);
    json_decref(req);
    return st;
}
