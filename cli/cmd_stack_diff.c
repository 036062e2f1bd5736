/* cli/cmd_stack_diff.c -- what `stack apply` would change: the installed stack as the master
 * shows it against the install body the stack file gives (stack-file.md §11), key by key.
 *
 * The two sides are not in the same form: the master shows normalised service JSON
 * (master-api.md §4.4: links with ids, defaults filled in, durations in seconds), the file
 * gives what the user wrote. So the comparison is loose where the master fills in:
 *  - a value the file leaves null is not compared (the master keeps or defaults it);
 *  - empty values are equal to each other ([], {}, "", false, null, missing);
 *  - inside objects only the keys the file gives are compared;
 *  - numbers compare by value (1 == 1.0);
 *  - links, stop_grace_period and hooks are brought to one form first.
 * Only the fields the master stores for a service are compared (name, build and
 * external_links are the CLI's business). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/jsonutil.h"
#include "common/specparse.h"
#include "common/xmalloc.h"

#include "common/banned.h"

/* Service fields the master stores (apiserver/svcspec.c), minus the name. */
static const char *const fields[] = {
    "image",      "stateful",     "instances",   "strategy",          "user",    "cmd",
    "entrypoint", "env",          "secrets",     "certificates",      "ports",   "links",
    "affinity",   "deploy_opts",  "volumes",     "volumes_from",      "cpus",    "cpu_shares",
    "memory",     "memory_swap",  "shm_size",    "privileged",        "cap_add", "cap_drop",
    "net",        "log_driver",   "log_opts",    "devices",           "pid",     "read_only",
    "hooks",      "health_check", "stop_signal", "stop_grace_period",
};

/* Stack fields compared. */
static const char *const stack_fields[] = {"stack",    "version", "expose", "variables",
                                           "metadata", "volumes", "labels"};

static int is_empty(const json_t *v)
{
    return !v || json_is_null(v) || json_is_false(v) ||
           (json_is_array(v) && json_array_size(v) == 0) ||
           (json_is_object(v) && json_object_size(v) == 0) ||
           (json_is_string(v) && json_string_length(v) == 0);
}

static int loose_equal(const json_t *old, const json_t *new)
{
    if (is_empty(old) && is_empty(new))
        return 1;
    if (!old || !new)
        return 0;
    if (json_is_number(old) && json_is_number(new))
        return json_number_value(old) == json_number_value(new);
    if (json_is_object(old) && json_is_object(new)) {
        const char *k;
        json_t *v;

        json_object_foreach((json_t *)new, k, v)
        {
            if (!json_is_null(v) && !loose_equal(json_object_get(old, k), v))
                return 0;
        }
        return 1;
    }
    if (json_is_array(old) && json_is_array(new)) {
        if (json_array_size(old) != json_array_size(new))
            return 0;
        for (size_t i = 0; i < json_array_size(new); i++)
            if (!loose_equal(json_array_get(old, i), json_array_get(new, i)))
                return 0;
        return 1;
    }
    return json_equal((json_t *)old, (json_t *)new);
}

static char *show(const json_t *v)
{
    char *s;

    if (!v)
        return xstrdup("null");
    s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    return s ? s : xstrdup("?");
}

static void add_line(json_t *out, char sign, const char *path, const json_t *old, const json_t *new)
{
    char *a = show(old), *b = show(new), *line;

    if (sign == '~')
        line = xasprintf("~ %s: %s → %s", path, a, b);
    else
        line = xasprintf("%c %s: %s", sign, path, sign == '+' ? b : a);
    json_array_append_new(out, json_string(line));
    free(line);
    free(a);
    free(b);
}

/* Key-level differences between old and new at path. */
static void diff_value(const char *path, const json_t *old, const json_t *new, json_t *out)
{
    if (!new || json_is_null(new) || loose_equal(old, new))
        return;
    if (json_is_object(new) && (json_is_object(old) || is_empty(old))) {
        const char *k;
        json_t *v;

        json_object_foreach((json_t *)new, k, v)
        {
            char *p = xasprintf("%s.%s", path, k);
            diff_value(p, json_object_get(old, k), v, out);
            free(p);
        }
        return;
    }
    if (json_is_array(new) && (json_is_array(old) || is_empty(old))) {
        size_t lo = json_array_size(old), ln = json_array_size(new);

        for (size_t i = 0; i < (lo > ln ? lo : ln); i++) {
            char *p = xasprintf("%s[%zu]", path, i);

            if (i < lo && i < ln) {
                if (!loose_equal(json_array_get(old, i), json_array_get(new, i)))
                    add_line(out, '~', p, json_array_get(old, i), json_array_get(new, i));
            } else if (i < ln) {
                add_line(out, '+', p, NULL, json_array_get(new, i));
            } else {
                add_line(out, '-', p, json_array_get(old, i), NULL);
            }
            free(p);
        }
        return;
    }
    add_line(out, '~', path, old, new);
}

/* Links in the file's form: [{name: "svc" (same stack) | "stack/svc", alias}]. */
static json_t *links_of_old(const json_t *links, const char *own_stack)
{
    json_t *out = json_array(), *l;
    size_t i;

    json_array_foreach(links, i, l)
    {
        const char *id = jstr(l, "id"), *s1 = id ? strchr(id, '/') : NULL;
        const char *rel = s1 ? s1 + 1 : (jstr(l, "name") ? jstr(l, "name") : "");
        size_t n = strlen(own_stack);
        char *name;

        if (!strncmp(rel, own_stack, n) && rel[n] == '/')
            rel += n + 1;
        name = xstrdup(rel);
        json_array_append_new(out, json_pack("{s:s, s:s}", "name", name, "alias",
                                             jstr(l, "alias") ? jstr(l, "alias") : name));
        free(name);
    }
    return out;
}

static json_t *links_of_new(const json_t *links, const char *own_stack)
{
    json_t *out = json_array(), *l;
    size_t i, n = strlen(own_stack);

    json_array_foreach(links, i, l)
    {
        const char *name = jstr(l, "name") ? jstr(l, "name") : "";

        if (!strncmp(name, own_stack, n) && name[n] == '/')
            name += n + 1;
        json_array_append_new(out, json_pack("{s:s, s:s}", "name", name, "alias",
                                             jstr(l, "alias") ? jstr(l, "alias") : name));
    }
    return out;
}

/* Hooks as the master shows them: [{name, type, cmd, oneshot}], from the file's
 * {pre_start: [...], ...}. A list is kept as it is. */
static json_t *hooks_of_new(const json_t *hooks)
{
    static const char *const types[] = {"pre_start", "post_start", "pre_stop"};
    json_t *out, *h;
    size_t i;

    if (!json_is_object(hooks))
        return json_incref((json_t *)hooks);
    out = json_array();
    for (size_t t = 0; t < ARRAY_SIZE(types); t++)
        json_array_foreach(json_object_get(hooks, types[t]), i, h)
        {
            json_t *x = json_deep_copy(h);

            json_object_set_new(x, "type", json_string(types[t]));
            json_object_del(x, "instances"); /* shown by the master in its own form */
            json_array_append_new(out, x);
        }
    return out;
}

/* The new spec's value of field brought to the master's form; new reference or NULL. */
static json_t *normal_new(const char *field, const json_t *v, const char *own_stack)
{
    double secs;

    if (!v)
        return NULL;
    if (!strcmp(field, "links"))
        return links_of_new(v, own_stack);
    if (!strcmp(field, "hooks"))
        return hooks_of_new(v);
    if (!strcmp(field, "stop_grace_period") && json_is_string(v) &&
        spec_parse_duration(json_string_value(v), &secs, NULL) == ST_OK)
        return json_integer((json_int_t)secs);
    return json_incref((json_t *)v);
}

static json_t *normal_old(const char *field, const json_t *v, const char *own_stack)
{
    if (!v)
        return NULL;
    if (!strcmp(field, "links"))
        return links_of_old(v, own_stack);
    return json_incref((json_t *)v);
}

static const json_t *find_service(const json_t *list, const char *name)
{
    json_t *s;
    size_t i;

    json_array_foreach(list, i, s)
    {
        if (jstr(s, "name") && !strcmp(jstr(s, "name"), name))
            return s;
    }
    return NULL;
}

void stack_diff(const json_t *installed, const json_t *payload, json_t *out)
{
    const char *own = jstr(installed, "name") ? jstr(installed, "name") : "";
    const json_t *old_svcs = json_object_get(installed, "services");
    const json_t *new_svcs = json_object_get(payload, "services");
    json_t *s;
    size_t i;

    for (size_t k = 0; k < ARRAY_SIZE(stack_fields); k++) {
        const char *f = stack_fields[k];

        diff_value(f, json_object_get(installed, f), json_object_get(payload, f), out);
    }
    if (!json_equal(json_object_get(installed, "source"), json_object_get(payload, "source")) &&
        json_is_string(json_object_get(payload, "source")))
        json_array_append_new(out, json_string("~ source: the stack file's text changed"));
    json_array_foreach(new_svcs, i, s)
    {
        const char *name = jstr(s, "name") ? jstr(s, "name") : "";
        const json_t *old = find_service(old_svcs, name);

        if (!old) {
            char *line = xasprintf("+ %s: new service, image %s", name,
                                   jstr(s, "image") ? jstr(s, "image") : "-");
            json_array_append_new(out, json_string(line));
            free(line);
            continue;
        }
        for (size_t k = 0; k < ARRAY_SIZE(fields); k++) {
            json_t *a = normal_old(fields[k], json_object_get(old, fields[k]), own);
            json_t *b = normal_new(fields[k], json_object_get(s, fields[k]), own);
            char *path = xasprintf("%s.%s", name, fields[k]);

            diff_value(path, a, b, out);
            free(path);
            json_decref(a);
            json_decref(b);
        }
    }
    json_array_foreach(old_svcs, i, s)
    {
        const char *name = jstr(s, "name") ? jstr(s, "name") : "";

        if (!find_service(new_svcs, name)) {
            char *line = xasprintf("- %s: service removed", name);
            json_array_append_new(out, json_string(line));
            free(line);
        }
    }
}
