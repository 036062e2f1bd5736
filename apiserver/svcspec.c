/* apiserver/svcspec.c -- service spec normalisation, validation, comparison and view.
 *
 * Every field has one parser: it reads the body's value (which may be null), writes the
 * normalised value into the spec or a message into errs. Validation that needs several
 * fields (FQDN length, stateful + volumes_from, stateful anonymous volumes) runs after all
 * of them. Messages follow the original's style ("Env[0] isn't in the right format").
 */
#include "apiserver/svcspec.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/validate.h"
#include "common/reserved_ports.h"
#include "common/specparse.h"
#include "common/xmalloc.h"
#include "common/banned.h"

const char *const svcspec_fields[] = {
    "name",         "image",        "stateful",   "instances",     "strategy",
    "user",         "cmd",          "entrypoint", "env",           "secrets",
    "certificates", "ports",        "links",      "affinity",      "deploy_opts",
    "volumes",      "volumes_from", "cpus",       "cpu_shares",    "memory",
    "memory_swap",  "shm_size",     "privileged", "cap_add",       "cap_drop",
    "net",          "log_driver",   "log_opts",   "devices",       "pid",
    "read_only",    "hooks",        "health_check", "stop_signal", "stop_grace_period",
    NULL,
};

static void fail(json_t *errs, const char *field, const char *fmt, ...) PRINTF_LIKE(3, 4);

static void fail(json_t *errs, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (json_object_get(errs, field)) /* first message per field wins */
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object_set_new(errs, field, json_string(msg));
}

/* "env" -> "Env" for messages. */
static const char *cap(const char *field, char *out, size_t len)
{
    snprintf(out, len, "%s", field);
    out[0] = (char)toupper((unsigned char)out[0]);
    return out;
}

/* --- simple typed fields ------------------------------------------------------------------ */

static void f_string(json_t *spec, const char *field, const json_t *v, json_t *errs)
{
    char c[40];
    if (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
        json_object_set_new(spec, field, json_null());
        return;
    }
    if (!json_is_string(v) || json_string_length(v) > 4096) {
        fail(errs, field, "%s must be a string", cap(field, c, sizeof(c)));
        return;
    }
    json_object_set(spec, field, (json_t *)v);
}

static void f_bool(json_t *spec, const char *field, const json_t *v, json_t *errs)
{
    char c[40];
    if (json_is_null(v)) {
        json_object_set_new(spec, field, json_false());
        return;
    }
    if (!json_is_boolean(v)) {
        fail(errs, field, "%s must be true or false", cap(field, c, sizeof(c)));
        return;
    }
    json_object_set(spec, field, (json_t *)v);
}

static void f_strings(json_t *spec, const char *field, const json_t *v, json_t *errs)
{
    char c[40];
    if (json_is_null(v)) {
        json_object_set_new(spec, field, json_array());
        return;
    }
    if (!json_all_strings(v) || json_array_size(v) > 1000) {
        fail(errs, field, "%s must be an array of strings", cap(field, c, sizeof(c)));
        return;
    }
    json_object_set(spec, field, (json_t *)v);
}

/* Integer within [lo, hi] or null. */
static void f_int(json_t *spec, const char *field, const json_t *v, json_int_t lo, json_int_t hi,
                  json_t *errs)
{
    char c[40];
    if (json_is_null(v)) {
        json_object_set_new(spec, field, json_null());
        return;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        fail(errs, field, "%s must be an integer from %lld to %lld", cap(field, c, sizeof(c)),
             (long long)lo, (long long)hi);
        return;
    }
    json_object_set(spec, field, (json_t *)v);
}

/* Byte sizes: an integer, or "<n>[kmgt][b]" (k = 1024). */
static void f_bytes(json_t *spec, const char *field, const json_t *v, json_t *errs)
{
    char c[40];
    long long n = 0;

    if (!json_is_string(v)) {
        f_int(spec, field, v, 0, (json_int_t)1 << 50, errs);
        return;
    }
    if (spec_parse_memory(json_string_value(v), &n, NULL) != ST_OK || n > (1LL << 50)) {
        fail(errs, field, "%s isn't in the right format", cap(field, c, sizeof(c)));
        return;
    }
    json_object_set_new(spec, field, json_integer((json_int_t)n));
}

static void f_enum(json_t *spec, const char *field, const json_t *v, const char *const *allowed,
                   int nullable, json_t *errs)
{
    char c[40];
    if (json_is_null(v) && nullable) {
        json_object_set_new(spec, field, json_null());
        return;
    }
    if (json_is_string(v))
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(allowed[i], json_string_value(v)) == 0) {
                json_object_set(spec, field, (json_t *)v);
                return;
            }
    fail(errs, field, "%s isn't in the right format", cap(field, c, sizeof(c)));
}

/* --- structured fields -------------------------------------------------------------------- */

static int valid_env(const char *s)
{
    const char *eq = strchr(s, '=');
    return eq && eq != s;
}

static void f_env(json_t *spec, const json_t *v, const json_t *old_env, json_t *errs)
{
    json_t *out, *x;
    size_t i;

    if (json_is_null(v)) {
        json_object_set_new(spec, "env", json_array());
        return;
    }
    if (!json_is_array(v) || json_array_size(v) > 10000) {
        fail(errs, "env", "Env must be an array of KEY=VALUE strings");
        return;
    }
    out = json_array();
    json_array_foreach(v, i, x)
    {
        const char *s = json_string_value(x);
        size_t klen;
        if (!s || !valid_env(s)) {
            fail(errs, "env", "Env[%zu] isn't in the right format", i);
            break;
        }
        if (strlen(s) > SVCSPEC_ENV_MAX) {
            fail(errs, "env", "Env[%zu] is too large at %zu bytes (limit %d)", i, strlen(s),
                 SVCSPEC_ENV_MAX);
            break;
        }
        klen = (size_t)(strchr(s, '=') - s);
        if (s[klen + 1] == '\0' && old_env) {
            /* Merge rule: "KEY=" keeps the previous value of KEY. */
            size_t k;
            json_t *o;
            const char *keep = NULL;
            json_array_foreach(old_env, k, o)
            {
                const char *os = json_string_value(o);
                if (os && strncmp(os, s, klen + 1) == 0)
                    keep = os;
            }
            json_array_append_new(out, json_string(keep ? keep : s));
        } else {
            json_array_append(out, x);
        }
    }
    json_object_set_new(spec, "env", out);
}

/* "[ip:]node:container[/proto]" into a port object; NULL when malformed. */
static json_t *port_from_string(const char *s)
{
    struct spec_port p;

    if (spec_parse_port(s, &p, NULL) != ST_OK)
        return NULL;
    return json_pack("{s:s,s:s,s:i,s:i}", "ip", p.ip, "protocol", p.protocol, "node_port",
                     p.node_port, "container_port", p.container_port);
}

static int valid_ipv4(const char *s)
{
    struct in_addr a;
    return inet_pton(AF_INET, s, &a) == 1;
}

static void f_ports(json_t *spec, const json_t *v, json_t *errs)
{
    json_t *out, *x;
    size_t i;

    if (json_is_null(v)) {
        json_object_set_new(spec, "ports", json_array());
        return;
    }
    if (!json_is_array(v) || json_array_size(v) > 1000) {
        fail(errs, "ports", "Ports must be an array");
        return;
    }
    out = json_array();
    json_array_foreach(v, i, x)
    {
        json_t *p = NULL, *np, *cp;
        const char *ip, *proto;
        if (json_is_string(x))
            p = port_from_string(json_string_value(x));
        else if (json_is_object(x))
            p = json_pack("{s:O?,s:O?,s:O?,s:O?}", "ip", json_object_get(x, "ip"), "protocol",
                          json_object_get(x, "protocol"), "node_port",
                          json_object_get(x, "node_port"), "container_port",
                          json_object_get(x, "container_port"));
        if (!p) {
            fail(errs, "ports", "Ports[%zu] isn't in the right format", i);
            break;
        }
        if (json_is_null(json_object_get(p, "ip")))
            json_object_set_new(p, "ip", json_string("0.0.0.0"));
        if (json_is_null(json_object_get(p, "protocol")))
            json_object_set_new(p, "protocol", json_string("tcp"));
        ip = jstr(p, "ip");
        proto = jstr(p, "protocol");
        np = json_object_get(p, "node_port");
        cp = json_object_get(p, "container_port");
        if (!ip || !valid_ipv4(ip) || !proto ||
            (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0) || !json_is_integer(np) ||
            !json_is_integer(cp) || json_integer_value(np) < 1 ||
            json_integer_value(np) > 65535 || json_integer_value(cp) < 1 ||
            json_integer_value(cp) > 65535) {
            json_decref(p);
            fail(errs, "ports", "Ports[%zu] isn't in the right format", i);
            break;
        }
        if (reserved_port_user((int)json_integer_value(np), proto, ip)) {
            fail(errs, "ports", "Ports[%zu]: node port %d/%s on %s is reserved: %s uses it",
                 i, (int)json_integer_value(np), proto, ip,
                 reserved_port_user((int)json_integer_value(np), proto, ip));
            json_decref(p);
            break;
        }
        json_array_append_new(out, p);
    }
    json_object_set_new(spec, "ports", out);
}

static void f_links(json_t *spec, const json_t *v, json_t *errs)
{
    json_t *out, *x;
    size_t i;

    if (json_is_null(v)) {
        json_object_set_new(spec, "links", json_array());
        return;
    }
    if (!json_is_array(v) || json_array_size(v) > 1000) {
        fail(errs, "links", "Links must be an array of {name, alias}");
        return;
    }
    out = json_array();
    json_array_foreach(v, i, x)
    {
        const char *name = jstr(x, "name"), *alias = jstr(x, "alias");
        if (!name)
            name = jstr(x, "id");
        if (!json_is_object(x) || !name || !name[0] || strlen(name) > 200 ||
            (json_object_get(x, "alias") && !json_is_null(json_object_get(x, "alias")) &&
             (!alias || !alias[0] || strlen(alias) > 200))) {
            fail(errs, "links", "Links[%zu] isn't in the right format", i);
            break;
        }
        json_array_append_new(out, json_pack("{s:s,s:s}", "name", name, "alias",
                                             alias ? alias : name));
    }
    json_object_set_new(spec, "links", out);
}

/* [{<key>: string required, <opt>: string default}], plus type "env". */
static void f_mappings(json_t *spec, const char *field, const json_t *v, const char *key,
                       const char *opt, const char *opt_default, json_t *errs)
{
    json_t *out, *x;
    size_t i;
    char c[40];

    if (json_is_null(v)) {
        json_object_set_new(spec, field, json_array());
        return;
    }
    if (!json_is_array(v) || json_array_size(v) > 1000) {
        fail(errs, field, "%s must be an array", cap(field, c, sizeof(c)));
        return;
    }
    out = json_array();
    json_array_foreach(v, i, x)
    {
        const char *k = jstr(x, key), *o = jstr(x, opt), *type = jstr(x, "type");
        if (!o)
            o = opt_default;
        if (!k || !k[0] || !o || !o[0] || (type && strcmp(type, "env") != 0)) {
            fail(errs, field, "%s[%zu] isn't in the right format", cap(field, c, sizeof(c)), i);
            break;
        }
        json_array_append_new(out, json_pack("{s:s,s:s,s:s}", key, k, opt, o, "type", "env"));
    }
    json_object_set_new(spec, field, out);
}

static int valid_affinity(const char *s)
{
    struct spec_affinity a;
    int ok = spec_parse_affinity(s, &a, NULL) == ST_OK;

    if (ok)
        spec_affinity_release(&a);
    return ok;
}

static void f_affinity(json_t *spec, const json_t *v, json_t *errs)
{
    json_t *x;
    size_t i;

    f_strings(spec, "affinity", v, errs);
    if (json_object_get(errs, "affinity"))
        return;
    json_array_foreach(json_object_get(spec, "affinity"), i, x) if (!valid_affinity(json_string_value(x)))
    {
        fail(errs, "affinity", "Affinity '%s' isn't in the right format", json_string_value(x));
        return;
    }
}

/* "<n>", "<n>min", "<n>h", "<n>d" or an integer -> seconds; -1 when malformed. */
static int64_t interval_secs(const json_t *v)
{
    long long n = 0;

    if (json_is_integer(v))
        return json_integer_value(v) >= 0 ? json_integer_value(v) : -1;
    if (!json_is_string(v) || spec_parse_interval(json_string_value(v), &n, NULL) != ST_OK ||
        n < 0 || n > 1000000000LL)
        return -1;
    return n;
}

static void f_deploy_opts(json_t *spec, const json_t *v, const json_t *old, json_t *errs)
{
    json_t *d = old ? json_deep_copy(old) : json_pack("{s:n,s:f,s:n}", "wait_for_port",
                                                       "min_health", 0.8, "interval");
    json_t *x;

    if (json_is_null(v) && !old) {
        json_object_set_new(spec, "deploy_opts", d);
        return;
    }
    if (!json_is_object(v) && !json_is_null(v)) {
        json_decref(d);
        fail(errs, "deploy_opts", "Deploy_opts must be an object");
        return;
    }
    if ((x = json_object_get(v, "wait_for_port"))) {
        if (!json_is_null(x) && (!json_is_integer(x) || json_integer_value(x) < 1 ||
                                 json_integer_value(x) > 65535))
            fail(errs, "deploy_opts", "Wait_for_port must be a port number from 1 to 65535");
        else
            json_object_set(d, "wait_for_port", x);
    }
    if ((x = json_object_get(v, "min_health"))) {
        if (json_is_null(x))
            json_object_set_new(d, "min_health", json_real(0.8));
        else if (!json_is_number(x) || json_number_value(x) < 0 || json_number_value(x) > 1)
            fail(errs, "deploy_opts", "Min_health must be a number from 0.0 to 1.0");
        else
            json_object_set_new(d, "min_health", json_real(json_number_value(x)));
    }
    if ((x = json_object_get(v, "interval"))) {
        int64_t secs = json_is_null(x) ? 0 : interval_secs(x);
        if (secs < 0)
            fail(errs, "deploy_opts", "Interval isn't in the right format");
        else
            json_object_set_new(d, "interval", secs ? json_integer(secs) : json_null());
    }
    json_object_set_new(spec, "deploy_opts", d);
}

static void f_health_check(json_t *spec, const json_t *v, const json_t *old, json_t *errs)
{
    static const struct {
        const char *name;
        json_int_t def, lo, hi;
    } nums[] = {{"timeout", 10, 1, 86400}, {"interval", 60, 1, 86400},
                {"initial_delay", 10, 0, 86400}};
    json_t *h, *x;
    const char *proto, *uri;

    if (json_is_null(v)) {
        json_object_set_new(spec, "health_check", json_null());
        return;
    }
    if (!json_is_object(v)) {
        fail(errs, "health_check", "Health_check must be an object");
        return;
    }
    h = json_is_object(old) ? json_deep_copy(old) : json_object();
    json_object_update(h, (json_t *)v);
    proto = jstr(h, "protocol");
    if (!proto) {
        json_decref(h);
        if (json_object_get(v, "protocol") && !json_is_null(json_object_get(v, "protocol")))
            fail(errs, "health_check", "Protocol must be http or tcp");
        else
            json_object_set_new(spec, "health_check", json_null());
        return;
    }
    if (strcmp(proto, "http") != 0 && strcmp(proto, "tcp") != 0) {
        json_decref(h);
        fail(errs, "health_check", "Protocol must be http or tcp");
        return;
    }
    x = json_object_get(h, "port");
    if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 65535) {
        json_decref(h);
        fail(errs, "health_check", "Port must be a port number from 1 to 65535");
        return;
    }
    x = json_object_get(h, "uri");
    uri = json_string_value(x);
    if (json_is_null(x) || !x)
        json_object_set_new(h, "uri", json_string("/"));
    else if (!uri || uri[0] != '/' || strlen(uri) > 2048) {
        json_decref(h);
        fail(errs, "health_check", "Uri isn't in the right format");
        return;
    }
    for (size_t i = 0; i < ARRAY_SIZE(nums); i++) {
        x = json_object_get(h, nums[i].name);
        if (!x || json_is_null(x)) {
            json_object_set_new(h, nums[i].name, json_integer(nums[i].def));
        } else if (!json_is_integer(x) || json_integer_value(x) < nums[i].lo ||
                   json_integer_value(x) > nums[i].hi) {
            char c[40];
            json_decref(h);
            fail(errs, "health_check", "%s must be an integer from %lld to %lld",
                 cap(nums[i].name, c, sizeof(c)), (long long)nums[i].lo, (long long)nums[i].hi);
            return;
        }
    }
    if (json_integer_value(json_object_get(h, "interval")) <
        json_integer_value(json_object_get(h, "timeout"))) {
        json_decref(h);
        fail(errs, "health_check", "Interval has to be bigger than timeout");
        return;
    }
    /* Keep only the known keys. */
    json_object_set_new(spec, "health_check",
                        json_pack("{s:s,s:O,s:O,s:O,s:O,s:O}", "protocol", proto, "port",
                                  json_object_get(h, "port"), "uri", json_object_get(h, "uri"),
                                  "timeout", json_object_get(h, "timeout"), "interval",
                                  json_object_get(h, "interval"), "initial_delay",
                                  json_object_get(h, "initial_delay")));
    json_decref(h);
}

static json_t *hook_item(const json_t *x, const char *type)
{
    const char *name = jstr(x, "name"), *cmd = jstr(x, "cmd");
    json_t *inst = json_object_get(x, "instances"), *one = json_object_get(x, "oneshot");
    char num[32];
    const char *instances = "*";

    if (!json_is_object(x) || !name || !cmd || !name[0] || !cmd[0] ||
        (one && !json_is_null(one) && !json_is_boolean(one)))
        return NULL;
    if (json_is_integer(inst)) {
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(inst));
        instances = num;
    } else if (json_is_string(inst)) {
        instances = json_string_value(inst);
        if (strcmp(instances, "*") != 0 && strspn(instances, "0123456789,") != strlen(instances))
            return NULL;
    } else if (inst && !json_is_null(inst)) {
        return NULL;
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:b}", "name", name, "type", type, "cmd", cmd,
                     "instances", instances, "oneshot", json_is_true(one));
}

/* Input {pre_start: [...], post_start: [...], pre_stop: [...]} (pre_build is the CLI's) or
 * the stored list [{name, type, cmd, instances, oneshot}]; stored as the list. */
static void f_hooks(json_t *spec, const json_t *v, json_t *errs)
{
    static const char *const types[] = {"pre_start", "post_start", "pre_stop", NULL};
    json_t *out = json_array(), *x, *list;
    const char *type;
    size_t i;

    if (json_is_null(v)) {
        json_object_set_new(spec, "hooks", out);
        return;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            json_t *h = NULL;
            type = jstr(x, "type");
            for (size_t t = 0; type && types[t]; t++)
                if (strcmp(types[t], type) == 0)
                    h = hook_item(x, type);
            if (!h) {
                fail(errs, "hooks", "Hooks[%zu] isn't in the right format", i);
                break;
            }
            json_array_append_new(out, h);
        }
    } else if (json_is_object(v)) {
        json_object_foreach((json_t *)v, type, list)
        {
            int known = strcmp(type, "pre_build") == 0;
            for (size_t t = 0; types[t]; t++)
                known |= strcmp(types[t], type) == 0;
            if (!known) {
                fail(errs, "hooks", "Invalid hook %s", type);
                break;
            }
            if (strcmp(type, "pre_build") == 0 || json_is_null(list))
                continue;
            if (!json_is_array(list)) {
                fail(errs, "hooks", "Hooks %s must be an array", type);
                break;
            }
            json_array_foreach(list, i, x)
            {
                json_t *h = hook_item(x, type);
                if (!h) {
                    fail(errs, "hooks", "Hooks %s[%zu] isn't in the right format", type, i);
                    break;
                }
                json_array_append_new(out, h);
            }
        }
    } else {
        fail(errs, "hooks", "Hooks must be an object");
    }
    json_object_set_new(spec, "hooks", out);
}

int64_t svcspec_duration(const char *s)
{
    double secs = 0;

    if (spec_parse_duration(s, &secs, NULL) != ST_OK || secs < 0 || secs > 1e9)
        return -1;
    return (int64_t)secs;
}

static void f_stop_grace(json_t *spec, const json_t *v, json_t *errs)
{
    int64_t secs;

    if (json_is_null(v)) {
        json_object_set_new(spec, "stop_grace_period", json_integer(10));
        return;
    }
    secs = json_is_integer(v)   ? (json_integer_value(v) >= 0 ? json_integer_value(v) : -1)
           : json_is_string(v) ? svcspec_duration(json_string_value(v))
                               : -1;
    if (secs < 0 || secs > 1000000000) {
        fail(errs, "stop_grace_period", "Stop_grace_period isn't in the right format");
        return;
    }
    json_object_set_new(spec, "stop_grace_period", json_integer(secs));
}

/* Volume string of networking-lb-health.md §9.1. Sets *kind to 'a' (anonymous), 'b' (bind)
 * or 'n' (named) and name[] to the volume name of a named volume. 0 when valid. */
static int parse_volume(const char *s, char *kind, char *name, size_t name_len, char *path,
                        size_t path_len)
{
    const char *c1 = strchr(s, ':'), *c2;

    if (!*s || strlen(s) > 4096)
        return -1;
    if (!c1) {
        if (s[0] != '/')
            return -1;
        *kind = 'a';
        snprintf(path, path_len, "%s", s);
        return 0;
    }
    if (c1 == s || c1[1] != '/')
        return -1;
    c2 = strchr(c1 + 1, ':');
    snprintf(path, path_len, "%.*s", (int)(c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1)), c1 + 1);
    if (c2 && c2[1] == '\0')
        return -1;
    *kind = s[0] == '/' ? 'b' : 'n';
    snprintf(name, name_len, "%.*s", (int)(c1 - s), s);
    return 0;
}

static void f_volumes(json_t *spec, const json_t *v, const json_t *old,
                      const struct svcspec_ctx *ctx, json_t *errs)
{
    json_t *x;
    size_t i;

    f_strings(spec, "volumes", v, errs);
    if (json_object_get(errs, "volumes"))
        return;
    json_array_foreach(json_object_get(spec, "volumes"), i, x)
    {
        const char *s = json_string_value(x);
        char kind, name[256] = "", path[4097];
        if (parse_volume(s, &kind, name, sizeof(name), path, sizeof(path)) != 0) {
            fail(errs, "volumes", "Volume definition '%s' not in right format", s);
            return;
        }
        if (kind == 'n' && ctx->stack_volumes) {
            size_t k;
            json_t *sv;
            int found = 0;
            json_array_foreach(ctx->stack_volumes, k, sv) found |=
                jstr(sv, "name") && strcmp(jstr(sv, "name"), name) == 0;
            if (!found) {
                fail(errs, "volumes", "Volume %s not found in the stack's volumes", name);
                return;
            }
        }
        if (kind == 'a' && old && json_is_true(json_object_get(old, "stateful")) &&
            !json_array_has_string(json_object_get(old, "volumes"), s)) {
            fail(errs, "volumes",
                 "Adding a new anonymous volume (%s) to a stateful service is not supported", s);
            return;
        }
    }
}

static void f_log_opts(json_t *spec, const json_t *v, json_t *errs)
{
    const char *k;
    json_t *x;

    if (json_is_null(v)) {
        json_object_set_new(spec, "log_opts", json_object());
        return;
    }
    if (!json_is_object(v)) {
        fail(errs, "log_opts", "Log_opts must be an object of strings");
        return;
    }
    json_object_foreach((json_t *)v, k, x) if (!json_is_string(x))
    {
        fail(errs, "log_opts", "Log_opts must be an object of strings");
        return;
    }
    json_object_set(spec, "log_opts", (json_t *)v);
}

/* --- the whole spec ----------------------------------------------------------------------- */

/* Value of field in body; if absent: the old value (update) or null (create). */
static const json_t *pick(const json_t *body, const json_t *old, const char *field, int *given)
{
    json_t *v = json_object_get(body, field);
    *given = v != NULL;
    if (v)
        return v;
    v = old ? json_object_get(old, field) : NULL;
    return v ? v : json_null();
}

json_t *svcspec_build(const json_t *body, const json_t *old, const struct svcspec_ctx *ctx,
                      json_t *errs)
{
    static const char *const strategies[] = {"ha", "daemon", "random", NULL};
    static const char *const pids[] = {"host", NULL};
    json_t *spec = json_object(), *v;
    const char *name, *net;
    int given;
    char fqdn[512];

    /* Name and stateful are set at create only. */
    if (old) {
        json_object_set(spec, "name", json_object_get(old, "name"));
        json_object_set(spec, "stateful", json_object_get(old, "stateful"));
    } else {
        name = jstr(body, "name");
        if (!name)
            fail(errs, "name", "Name is required");
        else if (!valid_name(name, 1, 64))
            fail(errs, "name", "Name must be 1 to 64 word characters or dashes, not starting "
                               "with a dash");
        json_object_set_new(spec, "name", json_string(name ? name : ""));
        f_bool(spec, "stateful", pick(body, NULL, "stateful", &given), errs);
    }

    v = (json_t *)pick(body, old, "image", &given);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 1024)
        fail(errs, "image", "Image is required");
    else
        json_object_set(spec, "image", v);

    v = json_object_get(body, "instances");
    if (!v || json_is_null(v))
        v = json_object_get(body, "container_count");
    if (!v || (json_is_null(v) && old))
        v = old ? json_object_get(old, "instances") : NULL;
    if (!v || json_is_null(v))
        json_object_set_new(spec, "instances", json_integer(1));
    else
        f_int(spec, "instances", v, 0, 10000, errs);

    v = (json_t *)pick(body, old, "strategy", &given);
    if (json_is_null(v))
        json_object_set_new(spec, "strategy", json_string("ha"));
    else
        f_enum(spec, "strategy", v, strategies, 0, errs);

    f_string(spec, "user", pick(body, old, "user", &given), errs);
    f_strings(spec, "cmd", pick(body, old, "cmd", &given), errs);
    if (json_array_size(json_object_get(spec, "cmd")) == 0)
        json_object_set_new(spec, "cmd", json_null());
    f_string(spec, "entrypoint", pick(body, old, "entrypoint", &given), errs);
    f_env(spec, pick(body, old, "env", &given), old ? json_object_get(old, "env") : NULL, errs);
    f_mappings(spec, "secrets", pick(body, old, "secrets", &given), "secret", "name", NULL, errs);
    f_mappings(spec, "certificates", pick(body, old, "certificates", &given), "subject", "name",
               "SSL_CERTS", errs);
    f_ports(spec, pick(body, old, "ports", &given), errs);
    v = (json_t *)pick(body, old, "links", &given);
    if (given)
        f_links(spec, v, errs);
    else
        json_object_set_new(spec, "links", json_is_array(v) ? json_deep_copy(v) : json_array());
    f_affinity(spec, pick(body, old, "affinity", &given), errs);
    v = json_object_get(body, "deploy_opts");
    f_deploy_opts(spec, v ? v : json_null(), old ? json_object_get(old, "deploy_opts") : NULL,
                  errs);
    f_volumes(spec, pick(body, old, "volumes", &given), old, ctx, errs);
    f_strings(spec, "volumes_from", pick(body, old, "volumes_from", &given), errs);
    v = (json_t *)pick(body, old, "cpus", &given);
    if (!json_is_null(v) && (!json_is_number(v) || json_number_value(v) < 0 ||
                             json_number_value(v) > 1024))
        fail(errs, "cpus", "Cpus must be a number from 0 to 1024");
    else
        json_object_set(spec, "cpus", v);
    f_int(spec, "cpu_shares", pick(body, old, "cpu_shares", &given), 0, 1024, errs);
    f_bytes(spec, "memory", pick(body, old, "memory", &given), errs);
    f_bytes(spec, "memory_swap", pick(body, old, "memory_swap", &given), errs);
    f_bytes(spec, "shm_size", pick(body, old, "shm_size", &given), errs);
    f_bool(spec, "privileged", pick(body, old, "privileged", &given), errs);
    f_strings(spec, "cap_add", pick(body, old, "cap_add", &given), errs);
    f_strings(spec, "cap_drop", pick(body, old, "cap_drop", &given), errs);

    v = (json_t *)pick(body, old, "net", &given);
    net = json_string_value(v);
    if (json_is_null(v))
        json_object_set_new(spec, "net", json_string("bridge"));
    else if (net && (strcmp(net, "bridge") == 0 || strcmp(net, "host") == 0 ||
                     (strncmp(net, "container:", 10) == 0 && net[10] && strlen(net) < 256)))
        json_object_set(spec, "net", v);
    else
        fail(errs, "net", "Net must be bridge, host or container:<name>");

    f_string(spec, "log_driver", pick(body, old, "log_driver", &given), errs);
    f_log_opts(spec, pick(body, old, "log_opts", &given), errs);
    f_strings(spec, "devices", pick(body, old, "devices", &given), errs);
    f_enum(spec, "pid", pick(body, old, "pid", &given), pids, 1, errs);
    f_bool(spec, "read_only", pick(body, old, "read_only", &given), errs);
    f_hooks(spec, pick(body, old, "hooks", &given), errs);
    v = json_object_get(body, "health_check");
    if (v)
        f_health_check(spec, v, old ? json_object_get(old, "health_check") : NULL, errs);
    else
        json_object_set(spec, "health_check",
                        old && json_object_get(old, "health_check")
                            ? json_object_get(old, "health_check")
                            : json_null());
    v = (json_t *)pick(body, old, "stop_signal", &given);
    if (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
        json_object_set_new(spec, "stop_signal", json_null());
    else if (!json_is_string(v) || !spec_valid_stop_signal(json_string_value(v)))
        fail(errs, "stop_signal", "Stop_signal isn't in the right format");
    else
        json_object_set(spec, "stop_signal", v);
    f_stop_grace(spec, pick(body, old, "stop_grace_period", &given), errs);

    /* Checks across fields. */
    if (json_is_true(json_object_get(spec, "stateful")) &&
        json_array_size(json_object_get(spec, "volumes_from")) > 0)
        fail(errs, "volumes_from", "Cannot combine stateful & volumes_from");
    name = jstr(spec, "name");
    if (name && name[0] && json_is_integer(json_object_get(spec, "instances"))) {
        long long n = (long long)json_integer_value(json_object_get(spec, "instances"));
        if (strcmp(ctx->stack, "null") == 0)
            snprintf(fqdn, sizeof(fqdn), "%s-%lld.%s.kontena.local", name, n, ctx->grid);
        else
            snprintf(fqdn, sizeof(fqdn), "%s-%lld.%s.%s.kontena.local", name, n, ctx->stack,
                     ctx->grid);
        if (strlen(fqdn) > SVCSPEC_FQDN_MAX)
            fail(errs, "name", "Total grid service name length %zu is over limit (%d): %s",
                 strlen(fqdn), SVCSPEC_FQDN_MAX, fqdn);
    }
    return spec;
}

int svcspec_changed(const json_t *a, const json_t *b)
{
    for (size_t i = 0; svcspec_fields[i]; i++) {
        json_t *x = json_object_get(a, svcspec_fields[i]), *y = json_object_get(b, svcspec_fields[i]);
        if (!x)
            x = json_null();
        if (!y)
            y = json_null();
        if (!json_equal(x, y))
            return 1;
    }
    return 0;
}

void svcspec_copy_fields(json_t *dst, const json_t *src)
{
    for (size_t i = 0; svcspec_fields[i]; i++) {
        json_t *v = json_object_get(src, svcspec_fields[i]);
        json_object_set_new(dst, svcspec_fields[i], v ? json_deep_copy(v) : json_null());
    }
}

int svcspec_link_target(const char *name, const char *grid, const char *own_stack, char *stack,
                        size_t stack_len, char *svc, size_t svc_len)
{
    const char *s1 = strchr(name, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    const char *st = own_stack, *sv = name;
    size_t stl = strlen(own_stack);

    if (s2) { /* grid/stack/svc: only our own grid */
        if ((size_t)(s1 - name) != strlen(grid) || strncmp(name, grid, strlen(grid)) != 0 ||
            strchr(s2 + 1, '/'))
            return -1;
        st = s1 + 1;
        stl = (size_t)(s2 - s1 - 1);
        sv = s2 + 1;
    } else if (s1) {
        st = name;
        stl = (size_t)(s1 - name);
        sv = s1 + 1;
    }
    if (stl == 0 || stl >= stack_len || !*sv || strlen(sv) >= svc_len)
        return -1;
    snprintf(stack, stack_len, "%.*s", (int)stl, st);
    snprintf(svc, svc_len, "%s", sv);
    if (!valid_name(stack, 1, 64) || !valid_name(svc, 1, 64))
        return -1;
    return 0;
}

json_t *svcspec_view(const json_t *svc, const json_t *grid_default_affinity,
                     const json_t *counts)
{
    json_t *v = json_deep_copy(svc);
    const char *grid = jstr(svc, "grid"), *stack = jstr(svc, "stack"), *name = jstr(svc, "name");
    char *sid;

    if (!grid || !stack || !name)
        return v;
    sid = xasprintf("%s/%s", grid, stack);
    json_object_set_new(v, "grid", json_pack("{s:s}", "id", grid));
    json_object_set_new(v, "stack", json_pack("{s:s,s:s}", "id", sid, "name", stack));
    if (strcmp(stack, "null") == 0)
        json_object_set_new(v, "dns", json_sprintf("%s.%s.kontena.local", name, grid));
    else
        json_object_set_new(v, "dns", json_sprintf("%s.%s.%s.kontena.local", name, stack, grid));
    if (json_array_size(json_object_get(v, "affinity")) == 0 && json_is_array(grid_default_affinity))
        json_object_set_new(v, "affinity", json_deep_copy(grid_default_affinity));
    json_object_set_new(v, "instance_counts",
                        json_pack("{s:I,s:I}", "total",
                                  json_integer_value(json_object_get(counts, "total")), "running",
                                  json_integer_value(json_object_get(counts, "running"))));
    if (json_is_null(json_object_get(v, "health_check")))
        json_object_del(v, "health_check");
    /* Counted over the service's instances by their observed health; null without a
     * health check. */
    if (json_is_object(json_object_get(v, "health_check")))
        json_object_set_new(v, "health_status",
                            json_pack("{s:I,s:I,s:I}", "healthy",
                                      json_integer_value(json_object_get(counts, "healthy")),
                                      "unhealthy",
                                      json_integer_value(json_object_get(counts, "unhealthy")),
                                      "total", json_integer_value(json_object_get(counts, "total"))));
    else
        json_object_set_new(v, "health_status", json_null());
    json_object_del(v, "deploy_id");
    free(sid);
    return v;
}
