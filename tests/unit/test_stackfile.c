/* Tests for the stack file pipeline (cli/stackfile/stackfile.c, subst.c, source.c): the data
 * driven corpus of tests/stackfiles/ (format in tests/stackfiles/README.md) and direct tests
 * of the trickier rules of stack-file.md §1, §2, §5 and §7. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/stackfile/pipeline.h"
#include "cli/stackfile/stackfile.h"
#include "common/xmalloc.h"

/* ---------------------------------------------------------------------------------------
 * Helpers.
 */

static char *corpus_dir(void)
{
    char *d = xstrdup(__FILE__); /* .../tests/unit/test_stackfile.c */
    char *slash = strrchr(d, '/');
    *slash = '\0';
    slash = strrchr(d, '/');
    *slash = '\0';
    char *out = xasprintf("%s/stackfiles", d);
    free(d);
    char real[PATH_MAX];
    if (realpath(out, real)) {
        free(out);
        out = xstrdup(real);
    }
    return out;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *s = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&s, &n);
    char chunk[4096];
    size_t r;
    while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, r, m);
    fclose(f);
    fclose(m);
    return s;
}

/* s with every occurrence of from replaced by to. */
static char *replace_all(const char *s, const char *from, const char *to)
{
    char *out = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&out, &n);
    size_t fl = strlen(from);
    const char *p = s, *q;
    while ((q = strstr(p, from)) != NULL) {
        fwrite(p, 1, (size_t)(q - p), m);
        fputs(to, m);
        p = q + fl;
    }
    fputs(p, m);
    fclose(m);
    return out;
}

/* Strings of v with the corpus directory written as $DIR (in place). */
static void normalise(json_t *v, const char *dir)
{
    size_t i;
    const char *k;
    json_t *x;

    if (json_is_string(v)) {
        char *r = replace_all(json_string_value(v), dir, "$DIR");
        json_string_set(v, r);
        free(r);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) normalise(x, dir);
    } else if (json_is_object(v)) {
        json_object_foreach(v, k, x) normalise(x, dir);
    }
}

/* The environment a case sees (vars_host.getenv / setenv): only what its .args set. */
static const char *env_get(void *ctx, const char *name)
{
    return json_string_value(json_object_get(ctx, name));
}

static int env_set(void *ctx, const char *name, const char *value)
{
    json_object_set_new(ctx, name, json_string(value));
    return 0;
}

struct case_opts {
    struct stackfile_opts o;
    struct vars_host host;
    json_t *values, *defaults, *env;
    char *name, *grid, *platform;
};

static void case_opts_release(struct case_opts *c)
{
    json_decref(c->values);
    json_decref(c->defaults);
    json_decref(c->env);
    free(c->name);
    free(c->grid);
    free(c->platform);
}

static void kv_into(json_t *obj, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq) {
        json_object_set_new(obj, kv, json_string(""));
        return;
    }
    char *k = xstrndup(kv, (size_t)(eq - kv));
    json_object_set_new(obj, k, json_string(eq + 1));
    free(k);
}

/* Read <case>.args: -v k=v, --default k=v, --env K=V, -n name, --grid g, --platform p,
 * --skip-dependencies. */
static int case_opts_read(struct case_opts *c, const char *args_path, char **why)
{
    memset(c, 0, sizeof(*c));
    c->values = json_object();
    c->defaults = json_object();
    c->env = json_object();
    c->host.ctx = c->env;
    c->host.getenv = env_get;
    c->host.setenv = env_set;
    c->o.host = &c->host;
    c->o.no_network = 1;
    c->o.values = c->values;
    c->o.defaults = c->defaults;

    char *text = slurp(args_path);
    if (!text)
        return 1;
    int ok = 1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!*line || *line == '#')
            continue;
        if (strncmp(line, "-v ", 3) == 0) {
            kv_into(c->values, line + 3);
        } else if (strncmp(line, "--default ", 10) == 0) {
            kv_into(c->defaults, line + 10);
        } else if (strncmp(line, "--env ", 6) == 0) {
            kv_into(c->env, line + 6);
        } else if (strncmp(line, "-n ", 3) == 0) {
            c->name = xstrdup(line + 3);
        } else if (strncmp(line, "--grid ", 7) == 0) {
            c->grid = xstrdup(line + 7);
        } else if (strncmp(line, "--platform ", 11) == 0) {
            c->platform = xstrdup(line + 11);
        } else if (strcmp(line, "--skip-dependencies") == 0) {
            c->o.skip_dependencies = 1;
        } else {
            *why = xasprintf("bad line in %s: %s", args_path, line);
            ok = 0;
            break;
        }
    }
    free(text);
    c->o.name = c->name;
    c->o.grid = c->grid;
    c->o.platform = c->platform;
    return ok;
}

/* All findings of sf and its children (children first), one per line:
 * "<file>: <path> (line <n>): <message>". */
static void findings_lines(const struct stackfile *sf, int notes, FILE *m)
{
    size_t i;
    json_t *f;

    for (size_t c = 0; c < sf->nchildren; c++)
        findings_lines(sf->children[c], notes, m);
    json_array_foreach(notes ? sf->notifications : sf->errors, i, f)
    {
        fprintf(m, "%s: %s (line %d): %s\n", json_string_value(json_object_get(f, "file")),
                json_string_value(json_object_get(f, "path")),
                (int)json_integer_value(json_object_get(f, "line")),
                json_string_value(json_object_get(f, "message")));
    }
}

static char *findings_text(const struct stackfile *sf, int notes, const char *dir)
{
    char *s = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&s, &n);
    findings_lines(sf, notes, m);
    fclose(m);
    char *r = replace_all(s, dir, "$DIR");
    free(s);
    return r;
}

static json_t *payload_for_compare(const struct stackfile *sf, const char *dir)
{
    if (!sf->payload)
        return json_null();
    json_t *p = json_deep_copy(sf->payload);
    json_object_del(p, "source");
    normalise(p, dir);
    return p;
}

static void children_payloads(const struct stackfile *sf, json_t *into, const char *dir)
{
    for (size_t c = 0; c < sf->nchildren; c++) {
        children_payloads(sf->children[c], into, dir);
        json_object_set_new(into, sf->children[c]->name, payload_for_compare(sf->children[c], dir));
    }
}

static int same_text(const char *what, const char *expected, const char *actual, FILE *report)
{
    if (strcmp(expected, actual) == 0)
        return 1;
    fprintf(report, "  %s differ\n  --- expected\n%s  --- actual\n%s", what, expected, actual);
    return 0;
}

/* The top-level keys the expectation names are compared exactly; others are not compared
 * (so a case may pin only "services", or the whole payload). */
static int same_json(const char *what, const char *expected_path, json_t *actual, FILE *report)
{
    json_error_t je;
    json_t *exp = json_load_file(expected_path, JSON_DECODE_ANY, &je);
    if (!exp) {
        fprintf(report, "  cannot read %s: %s (line %d)\n", expected_path, je.text, je.line);
        return 0;
    }
    int ok;
    if (json_is_object(exp) && json_is_object(actual)) {
        const char *k;
        json_t *v;
        ok = 1;
        json_object_foreach(exp, k, v)
        {
            json_t *a = json_object_get(actual, k);
            if (!a || !json_equal(v, a))
                ok = 0;
        }
    } else {
        ok = json_equal(exp, actual);
    }
    if (!ok) {
        char *a = json_dumps(actual, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fprintf(report, "  %s differs from %s; actual:\n%s\n", what, expected_path, a);
        free(a);
    }
    json_decref(exp);
    return ok;
}

/* Run one case; returns 1 when it passes, else writes why to report. */
static int run_case(const char *dir, const char *name, FILE *report)
{
    char *yml = xasprintf("%s/%s.yml", dir, name);
    char *args = xasprintf("%s/%s.args", dir, name);
    char *exp_json = xasprintf("%s/%s.json", dir, name);
    char *exp_children = xasprintf("%s/%s.children.json", dir, name);
    char *exp_errors = xasprintf("%s/%s.errors", dir, name);
    char *exp_notes = xasprintf("%s/%s.notes", dir, name);
    char *exp_stdout = xasprintf("%s/%s.stdout", dir, name);
    char *why = NULL, *errors_want = slurp(exp_errors), *notes_want = slurp(exp_notes);
    char *stdout_want = slurp(exp_stdout), *msg = NULL;
    size_t msglen = 0;
    struct case_opts c;
    struct stackfile *sf = NULL;
    struct err e = ERR_INIT;
    int ok = 1;

    if (!case_opts_read(&c, args, &why)) {
        fprintf(report, "  %s\n", why);
        ok = 0;
        goto out;
    }
    if (access(exp_json, R_OK) != 0 && !errors_want && !getenv("STACKFILE_PRINT")) {
        fprintf(report, "  neither %s.json nor %s.errors\n", name, name);
        ok = 0;
        goto out;
    }
    char *rel = xasprintf("%s.yml", name);
    FILE *m = open_memstream(&msg, &msglen);
    c.o.source = rel;
    c.o.msg = m;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)) || chdir(dir) != 0) {
        fprintf(report, "  cannot chdir to %s\n", dir);
        ok = 0;
        fclose(m);
        free(rel);
        goto out;
    }
    enum status st = stackfile_load(&c.o, &sf, &e);
    if (chdir(cwd) != 0)
        ok = 0;
    fclose(m);
    free(rel);

    if (getenv("STACKFILE_PRINT")) { /* writing a new case: show what it gives */
        if (st != ST_OK) {
            fprintf(stderr, "=== %s: error: %s\n", name, e.msg);
        } else {
            char *t = findings_text(sf, 0, dir), *nt = findings_text(sf, 1, dir);
            json_t *p = payload_for_compare(sf, dir), *all = json_object();
            children_payloads(sf, all, dir);
            char *pj = json_dumps(p, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            char *cj = json_dumps(all, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            fprintf(stderr, "=== %s\n--- errors\n%s--- notes\n%s--- messages\n%s--- payload\n%s\n",
                    name, t, nt, msg ? msg : "", pj);
            if (sf->nchildren)
                fprintf(stderr, "--- children\n%s\n", cj);
            free(t);
            free(nt);
            free(pj);
            free(cj);
            json_decref(p);
            json_decref(all);
        }
    }
    if (st != ST_OK) {
        char *line = xasprintf("error: %s\n", e.msg);
        char *got = replace_all(line, dir, "$DIR");
        free(line);
        if (!errors_want) {
            fprintf(report, "  hard failure, expected success: %s", got);
            ok = 0;
        } else {
            ok &= same_text("errors", errors_want, got, report);
        }
        free(got);
        goto out;
    }
    char *errs = findings_text(sf, 0, dir);
    ok &= same_text("errors", errors_want ? errors_want : "", errs, report);
    free(errs);
    if (notes_want) {
        char *notes = findings_text(sf, 1, dir);
        ok &= same_text("notifications", notes_want, notes, report);
        free(notes);
    }
    if (access(exp_json, R_OK) == 0) {
        json_t *p = payload_for_compare(sf, dir);
        ok &= same_json("payload", exp_json, p, report);
        json_decref(p);
    }
    if (access(exp_children, R_OK) == 0) {
        json_t *all = json_object();
        children_payloads(sf, all, dir);
        ok &= same_json("children's payloads", exp_children, all, report);
        json_decref(all);
    }
    if (stdout_want)
        ok &= same_text("messages", stdout_want, msg ? msg : "", report);
out:
    stackfile_free(sf);
    case_opts_release(&c);
    free(msg);
    free(why);
    free(errors_want);
    free(notes_want);
    free(stdout_want);
    free(yml);
    free(args);
    free(exp_json);
    free(exp_children);
    free(exp_errors);
    free(exp_notes);
    free(exp_stdout);
    return ok;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

Test(stackfile_corpus, every_case, .timeout = 120)
{
    char *dir = corpus_dir();
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s", dir);
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".yml") == 0) {
            names = xrealloc(names, (n + 1) * sizeof(*names));
            names[n++] = xstrndup(de->d_name, l - 4);
        }
    }
    closedir(d);
    qsort(names, n, sizeof(*names), by_name);

    const char *only = getenv("STACKFILE_CASE"); /* run one case: STACKFILE_CASE=name */
    size_t failed = 0, ran = 0;
    for (size_t i = 0; i < n; i++) {
        if (only && strcmp(only, names[i]) != 0)
            continue;
        char *report = NULL;
        size_t rl = 0;
        FILE *m = open_memstream(&report, &rl);
        ran++;
        if (!run_case(dir, names[i], m)) {
            fclose(m);
            cr_log_error("case %s failed:\n%s", names[i], report);
            fprintf(stderr, "case %s failed:\n%s\n", names[i], report);
            failed++;
        } else {
            fclose(m);
        }
        free(report);
        free(names[i]);
    }
    free(names);
    free(dir);
    cr_expect(ran >= 40 || only, "only %zu cases in the corpus", ran);
    cr_expect_eq(failed, 0, "%zu of %zu stack file cases failed", failed, ran);
}

/* ---------------------------------------------------------------------------------------
 * Direct tests.
 */

static int fixed_lookup(void *arg, const char *name, const json_t **val)
{
    *val = json_object_get(arg, name);
    return *val != NULL;
}

static char *subst(const char *text, const char *vars_json, struct err *e, char **warnings)
{
    json_t *vars = json_loads(vars_json, 0, NULL);
    char *out = NULL, *w = NULL;
    size_t wl = 0;
    FILE *m = open_memstream(&w, &wl);
    enum status st = sf__subst(text, "kontena.yml", fixed_lookup, vars, m, &out, e);
    fclose(m);
    json_decref(vars);
    if (warnings)
        *warnings = w;
    else
        free(w);
    return st == ST_OK ? out : NULL;
}

Test(subst, pattern_and_braces)
{
    struct err e = ERR_INIT;
    char *out = subst("a: ${x} $x ${x $x} $$x $$$x ${y}z $\n", "{\"x\":\"1\",\"y\":2}", &e, NULL);
    cr_assert_not_null(out, "%s", e.msg);
    cr_expect_str_eq(out, "a: 1 1 1 1 $$x $$$x 2z $\n");
    free(out);
    char *d = sf__dollars("$$x $$$x $$$$ $");
    cr_expect_str_eq(d, "$x $$x $$ $");
    free(d);
}

Test(subst, quoting_of_values)
{
    struct err e = ERR_INIT;
    char *out = subst("- ${a}\n- ${b}\n- ${c}\n- ${d}\n- ${e}\n- ${f}\n",
                      "{\"a\":\"x\\ny\",\"b\":\"it's\",\"c\":\"p|q\",\"d\":true,\"e\":[1,\"s\"],"
                      "\"f\":1.5}",
                      &e, NULL);
    cr_assert_not_null(out, "%s", e.msg);
    cr_expect_str_eq(out, "- \"x\\ny\"\n- \"it's\"\n- \"p|q\"\n- true\n- [1, \"s\"]\n- 1.5\n");
    free(out);
}

Test(subst, empty_values_warn)
{
    struct err e = ERR_INIT;
    char *w = NULL;
    char *out = subst("a: ${n}${s}\n", "{\"n\":null,\"s\":\"\"}", &e, &w);
    cr_assert_not_null(out);
    cr_expect_str_eq(out, "a: \n");
    cr_expect_str_eq(w, "Value for n is not set. Substituting with an empty string.\n"
                        "Value for s is not set. Substituting with an empty string.\n");
    free(out);
    free(w);
}

Test(subst, resolver_lines_untouched_and_undeclared_line_is_one_based)
{
    struct err e = ERR_INIT;
    char *out = subst("x:\n  interpolate: ${nope}\n    evaluate: ${nope} * 2\n", "{}", &e, NULL);
    cr_assert_not_null(out, "%s", e.msg);
    cr_expect_str_eq(out, "x:\n  interpolate: ${nope}\n    evaluate: ${nope} * 2\n");
    free(out);
    out = subst("a: 1\nb: 2\nc: ${nope}\r\n", "{}", &e, NULL);
    cr_expect_null(out);
    cr_expect_str_eq(e.msg, "Undeclared variable 'nope' in kontena.yml:3 -- c: ${nope}");
}

Test(subst, ruby_inspect)
{
    json_t *v = json_pack("{s:[s,i,n,b], s:s}", "a", "q\"\\\t", 1, 0, "b", "\x01");
    char *s = sf__ruby_inspect(v);
    cr_expect_str_eq(s, "{\"a\"=>[\"q\\\"\\\\\\t\", 1, nil, false], \"b\"=>\"\\u0001\"}");
    free(s);
    json_decref(v);
}

static struct stackfile *load_text(const char *text, struct stackfile_opts *o, struct err *e)
{
    struct stackfile *sf = NULL;
    char *dir = corpus_dir();
    char *path = xasprintf("%s/inline.yml", dir);
    if (!o->msg)
        o->msg = stderr;
    o->no_network = 1;
    enum status st = stackfile_load_text(o, path, text, strlen(text), &sf, e);
    free(path);
    free(dir);
    return st == ST_OK ? sf : NULL;
}

Test(stackfile, missing_file_is_not_found)
{
    struct stackfile_opts o = {.source = "/nonexistent/foo.yml", .no_network = 1};
    struct stackfile *sf = NULL;
    struct err e = ERR_INIT;
    cr_expect_eq(stackfile_load(&o, &sf, &e), ST_NOTFOUND);
    cr_expect_str_eq(e.msg, "Not found: no such file /nonexistent/foo.yml or invalid uri scheme");
    cr_expect_null(sf);
}

Test(stackfile, registry_name_without_registry)
{
    struct stackfile_opts o = {.source = "kontena/redis:1.0.0"};
    struct stackfile *sf = NULL;
    struct err e = ERR_INIT;
    unsetenv("KONTENA_STACK_REGISTRY_URL");
    cr_expect_eq(stackfile_load(&o, &sf, &e), ST_NOTFOUND);
    cr_expect(strstr(e.msg, "no such file kontena/redis:1.0.0"), "%s", e.msg);
    cr_expect(strstr(e.msg, "KONTENA_STACK_REGISTRY_URL"), "%s", e.msg);
}

Test(stackfile, yaml_error_after_substitution_names_the_line)
{
    struct stackfile_opts o = {0};
    struct err e = ERR_INIT;
    struct stackfile *sf = load_text("stack: a/b\nservices:\n  web:\n    image: [x\n", &o, &e);
    cr_expect_null(sf);
    cr_expect_eq(strncmp(e.msg, "Error while parsing inline.yml : (", 34), 0, "%s", e.msg);
}

Test(stackfile, variables_only_know_builtins_in_internal_parse)
{
    /* ${other} inside variables: becomes "" there (no warning), so `default` is "x-". */
    struct stackfile_opts o = {.name = "nm", .grid = "g1"};
    struct err e = ERR_INIT;
    char *w = NULL;
    size_t wl = 0;
    o.msg = open_memstream(&w, &wl);
    struct stackfile *sf =
        load_text("stack: a/b\nvariables:\n  other:\n    type: string\n    value: o\n"
                  "  v:\n    type: string\n    default: ${STACK}-${GRID}-${PLATFORM}-${other}\n"
                  "services:\n  web:\n    image: x\n    environment:\n      - V=${v}\n",
                  &o, &e);
    fclose(o.msg);
    cr_assert_not_null(sf, "%s", e.msg);
    json_t *env =
        json_object_get(json_array_get(json_object_get(sf->payload, "services"), 0), "env");
    cr_expect_str_eq(json_string_value(json_array_get(env, 0)), "V=nm-g1-g1-");
    cr_expect_str_eq(w ? w : "", "", "no warning from the internal parse");
    free(w);
    stackfile_free(sf);
}

Test(stackfile, payload_skeleton)
{
    struct stackfile_opts o = {0};
    struct err e = ERR_INIT;
    struct stackfile *sf =
        load_text("stack: acme/web:1.2.3\nservices:\n  web:\n    image: x\n", &o, &e);
    cr_assert_not_null(sf, "%s", e.msg);
    cr_expect_str_eq(sf->name, "web");
    cr_expect_str_eq(sf->stack, "acme/web");
    cr_expect_str_eq(sf->version, "1.2.3");
    const char *keys[] = {"stack",     "version",  "name",    "labels",       "registry",
                          "expose",    "services", "volumes", "dependencies", "source",
                          "variables", "metadata", "parent"};
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(sf->payload, k, v)
    {
        cr_assert_lt(i, ARRAY_SIZE(keys));
        cr_expect_str_eq(k, keys[i], "payload key %zu", i);
        i++;
    }
    cr_expect_eq(i, ARRAY_SIZE(keys));
    cr_expect_str_eq(json_string_value(json_object_get(sf->payload, "source")), sf->raw);
    cr_expect(json_is_null(json_object_get(sf->payload, "parent")));
    cr_expect(stackfile_valid(sf));
    stackfile_free(sf);
}

Test(stackfile, depends_cycle_is_a_hard_error)
{
    struct stackfile_opts o = {.source = "deps/cycle-a.yml", .no_network = 1, .msg = stderr};
    struct stackfile *sf = NULL;
    struct err e = ERR_INIT;
    char *dir = corpus_dir();
    char cwd[PATH_MAX];
    cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
    cr_assert_eq(chdir(dir), 0);
    enum status st = stackfile_load(&o, &sf, &e);
    cr_assert_eq(chdir(cwd), 0);
    free(dir);
    cr_expect_eq(st, ST_INVALID);
    cr_expect(strstr(e.msg, "depends on itself"), "%s", e.msg);
    cr_expect_null(sf);
}

Test(stackfile, findings_render_like_the_original)
{
    json_t *l = json_array();
    sf_finding(l, "", 0, "Required value missing", "variables", "lb", "presence", NULL);
    sf_finding(l, "invalid.yml", 7, "key not expected", "services", "redis", "omg", NULL);
    char *y = stackfile_findings_yaml(l);
    cr_expect_str_eq(y, "- variables:\n"
                        "    lb:\n"
                        "      presence: Required value missing\n"
                        "- invalid.yml:\n"
                        "  - services:\n"
                        "      redis:\n"
                        "        omg: key not expected (line 7)\n");
    free(y);
    json_decref(l);
}

/* A one-connection HTTP server on loopback (a forked child): answers GET want_path with
 * body, anything else with 404. Returns its port; *pid is the child. */
static int serve_once(const char *want_path, const char *body, pid_t *pid)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    cr_assert_neq(fd, -1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *pid = fork();
    cr_assert_neq(*pid, -1);
    if (*pid == 0) {
        int c = accept(fd, NULL, NULL);
        char req[4096] = "";
        ssize_t n = c == -1 ? -1 : read(c, req, sizeof(req) - 1);
        if (n > 0) {
            char *want = xasprintf("GET %s HTTP/", want_path);
            char *reply = strncmp(req, want, strlen(want)) == 0
                              ? xasprintf("HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
                                          "Connection: close\r\n\r\n%s",
                                          strlen(body), body)
                              : xstrdup("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                        "Connection: close\r\n\r\n");
            if (write(c, reply, strlen(reply)) < 0)
                _exit(1);
        }
        _exit(0);
    }
    close(fd);
    return ntohs(a.sin_port);
}

static const char *served = "stack: acme/served:1.0.0\nservices:\n  web:\n    image: nginx\n";

Test(stackfile, url_source_is_fetched)
{
    pid_t pid;
    int port = serve_once("/stacks/served.yml", served, &pid);
    char *url = xasprintf("http://127.0.0.1:%d/stacks/served.yml", port);
    struct stackfile_opts o = {.source = url, .msg = stderr};
    struct stackfile *sf = NULL;
    struct err e = ERR_INIT;
    cr_assert_eq(stackfile_load(&o, &sf, &e), ST_OK, "%s", e.msg);
    cr_expect_str_eq(sf->source, url);
    cr_expect_str_eq(sf->name, "served");
    cr_expect_str_eq(json_string_value(json_object_get(sf->payload, "registry")), "file://");
    stackfile_free(sf);
    waitpid(pid, NULL, 0);
    free(url);
}

Test(stackfile, registry_name_is_pulled_from_the_configured_registry)
{
    pid_t pid;
    int port = serve_once("/stack/acme/served/version/1.0.0", served, &pid);
    char *reg = xasprintf("http://127.0.0.1:%d/", port);
    setenv("KONTENA_STACK_REGISTRY_URL", reg, 1);
    struct stackfile_opts o = {.source = "acme/served:1.0.0", .msg = stderr};
    struct stackfile *sf = NULL;
    struct err e = ERR_INIT;
    cr_assert_eq(stackfile_load(&o, &sf, &e), ST_OK, "%s", e.msg);
    cr_expect_str_eq(sf->source, "acme/served:1.0.0");
    cr_expect_str_eq(sf->version, "1.0.0");
    cr_expect_str_eq(json_string_value(json_object_get(sf->payload, "registry")), reg);
    stackfile_free(sf);
    waitpid(pid, NULL, 0);
    unsetenv("KONTENA_STACK_REGISTRY_URL");
    free(reg);
}

Test(stackfile, url_not_found_is_an_error)
{
    pid_t pid;
    int port = serve_once("/other", served, &pid);
    char *url = xasprintf("http://127.0.0.1:%d/missing.yml", port);
    struct stackfile_opts o = {.source = url, .msg = stderr};
    struct stackfile *sf = NULL;
    struct err e = ERR_INIT;
    cr_expect_eq(stackfile_load(&o, &sf, &e), ST_NOTFOUND);
    cr_expect(strstr(e.msg, "not found (HTTP 404)"), "%s", e.msg);
    cr_expect_null(sf);
    waitpid(pid, NULL, 0);
    free(url);
}

Test(stackfile, child_errors_make_the_tree_invalid)
{
    struct stackfile_opts o = {
        .source = "depends-child-errors.yml", .no_network = 1, .msg = stderr};
    struct stackfile *sf = NULL;
    struct err e = ERR_INIT;
    char *dir = corpus_dir();
    char cwd[PATH_MAX];
    cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
    cr_assert_eq(chdir(dir), 0);
    enum status st = stackfile_load(&o, &sf, &e);
    cr_assert_eq(chdir(cwd), 0);
    free(dir);
    cr_assert_eq(st, ST_OK, "%s", e.msg);
    cr_expect_eq(json_array_size(sf->errors), 0);
    cr_expect_not_null(sf->payload, "the parent itself is valid");
    cr_assert_eq(sf->nchildren, 1);
    cr_expect_str_eq(sf->children[0]->name, "parent-bad");
    cr_expect_str_eq(sf->children[0]->dep_name, "bad");
    cr_expect_null(sf->children[0]->payload);
    cr_expect_not(stackfile_valid(sf));
    stackfile_free(sf);
}
