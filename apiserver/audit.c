/* apiserver/audit.c -- the audit trail.
 *
 * One key per entry: /kontena/audit/<microseconds, 16 digits>-<8 hex>, so keys sort by time
 * and a listing is a descending range with a limit. Grid-scoped listings page backwards
 * through the same range and keep the entries of that grid (bounded scan, see audit_list).
 * Writing an entry never fails the request it describes: a failure is logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/api.h"
#include "apiserver/store.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "common/banned.h"

#define AUDIT_PAGE 500
#define AUDIT_MAX_SCAN 50000

void audit_record(struct req *r)
{
    int64_t now = time_now_us();
    char ts[40], *rnd = crypto_random_hex(4), *key, *val;
    const char *ua = req_header(r, "User-Agent");
    json_t *err = json_object_get(r->reply, "error"), *entry;
    const char *reason = NULL;
    struct err e = ERR_INIT;

    if (json_is_string(err))
        reason = json_string_value(err);
    else if (json_is_object(err))
        reason = "validation failed";
    time_iso8601(now, ts, sizeof(ts));
    key = xasprintf(KEY_AUDIT "%016lld-%s", (long long)now, rnd);
    entry = json_pack("{s:s,s:s,s:s?,s:s,s:s,s:s,s:s,s:s,s:i,s:s?,s:s,s:s,s:s}", "id",
                      key + strlen(KEY_AUDIT), "time", ts, "grid",
                      r->audit_grid[0] ? r->audit_grid : NULL, "resource_type",
                      r->audit_type ? r->audit_type : "", "resource_id", r->audit_id,
                      "resource_name", r->audit_name, "event_name", r->audit_event,
                      "event_status", r->status >= 200 && r->status < 300 ? "success" : "error",
                      "status_code", (int)r->status, "reason", reason, "source_ip", r->source_ip,
                      "user_agent", ua ? ua : "", "method", r->method);
    json_object_set_new(entry, "path", json_string(r->path));
    if (r->who)
        json_object_set_new(entry, "user_identity",
                            json_pack("{s:O?,s:s}", "id", json_object_get(r->who->user, "id"),
                                      "email", r->who->email));
    else
        json_object_set_new(entry, "user_identity", json_null());
    val = store_dump(entry);
    if (etcd_put(r->api->etcd, key, val, strlen(val), 0, NULL, NULL, &e) != ST_OK)
        log_error("key=%s msg=\"cannot write audit entry: %s\"", key, e.msg);
    free(val);
    free(key);
    free(rnd);
    json_decref(entry);
}

enum status audit_list(struct api *a, const char *grid, int64_t limit, json_t **out,
                       struct err *e)
{
    char *end = etcd_prefix_end(KEY_AUDIT);
    json_t *newest_first = json_array();
    int64_t scanned = 0;
    enum status st = ST_OK;

    *out = NULL;
    while ((int64_t)json_array_size(newest_first) < limit && scanned < AUDIT_MAX_SCAN) {
        struct etcd_range_opts o = {.range_end = end, .sort_descend = 1};
        struct etcd_range_result res = {0};

        o.limit = grid ? AUDIT_PAGE : limit - (int64_t)json_array_size(newest_first);
        st = etcd_range(a->etcd, KEY_AUDIT, &o, &res, e);
        if (st != ST_OK)
            break;
        for (size_t i = 0; i < res.n && (int64_t)json_array_size(newest_first) < limit; i++) {
            json_t *entry = json_loadb(res.kvs[i].value, res.kvs[i].value_len, 0, NULL);
            const char *g = json_string_value(json_object_get(entry, "grid"));
            if (entry && (!grid || (g && strcmp(g, grid) == 0)))
                json_array_append(newest_first, entry);
            json_decref(entry);
        }
        scanned += (int64_t)res.n;
        if (res.n > 0) {
            /* The next page ends (exclusively) at the oldest key seen. */
            free(end);
            end = xstrdup(res.kvs[res.n - 1].key);
        }
        if (!res.more || res.n == 0) {
            etcd_range_result_release(&res);
            break;
        }
        etcd_range_result_release(&res);
    }
    free(end);
    if (st != ST_OK) {
        json_decref(newest_first);
        return st;
    }
    /* Chronological order, as the original listed them. */
    *out = json_array();
    for (size_t i = json_array_size(newest_first); i-- > 0;)
        json_array_append(*out, json_array_get(newest_first, i));
    json_decref(newest_first);
    return ST_OK;
}
