/* tests/unit/test_vars.c -- stack file variables (cli/stackfile/vars.h, stack-file.md §6).
 *
 * The vars_host below is the interface's own seam: an environment table, an in-memory vault
 * and canned service/certificate lists stand in for the master, and prompts read from a
 * memory stream with interactive = 1.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/stackfile/vars.h"
#include "common/xmalloc.h"

#include "common/banned.h"

TestSuite(vars, .timeout = 60);

/* JSON written with single quotes, to keep the definitions readable (\' is a quote). */
static json_t *J(const char *text)
{
    char *s = xstrdup(text), *w = s;
    json_error_t je;
    json_t *j;

    for (const char *p = text; *p; p++) {
        if (p[0] == '\\' && p[1] == '\'')
            *w++ = *++p;
        else
            *w++ = *p == '\'' ? '"' : *p;
    }
    *w = 0;
    j = json_loads(s, JSON_DECODE_ANY, &je);
    cr_assert_not_null(j, "bad test JSON %s: %s", s, je.text);
    free(s);
    return j;
}

struct th {
    json_t *env;       /* name → string */
    json_t *setenvs;   /* what to: env wrote */
    json_t *vault;     /* name → value */
    json_t *instances; /* "stack/svc" → instances */
    json_t *services;  /* service_list */
    json_t *certs;     /* certificate_list */
    int vault_gets;
    int vault_sealed; /* vault_set fails */
};

static const char *t_getenv(void *ctx, const char *name)
{
    struct th *t = ctx;
    return json_string_value(json_object_get(t->env, name));
}

static int t_setenv(void *ctx, const char *name, const char *value)
{
    struct th *t = ctx;
    json_object_set_new(t->setenvs, name, json_string(value));
    return 0;
}

static json_t *t_vault_get(void *ctx, const char *name)
{
    struct th *t = ctx;
    json_t *j = json_object_get(t->vault, name);
    t->vault_gets++;
    return j ? json_incref(j) : NULL;
}

static enum status t_vault_set(void *ctx, const char *name, const char *value, struct err *e)
{
    struct th *t = ctx;
    if (t->vault_sealed)
        return err_set(e, ST_IO, "vault is sealed");
    json_object_set_new(t->vault, name, json_string(value));
    return ST_OK;
}

static json_t *t_vault_list(void *ctx)
{
    struct th *t = ctx;
    json_t *a = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(t->vault, k, v) json_array_append_new(a, json_string(k));
    return a;
}

static json_t *t_certificate_list(void *ctx)
{
    struct th *t = ctx;
    return json_incref(t->certs);
}

static json_t *t_service_instances(void *ctx, const char *stack, const char *service)
{
    struct th *t = ctx;
    char key[256];
    json_t *j;
    snprintf(key, sizeof(key), "%s/%s", stack, service);
    j = json_object_get(t->instances, key);
    return j ? json_incref(j) : NULL;
}

static json_t *t_service_list(void *ctx)
{
    struct th *t = ctx;
    return json_incref(t->services);
}

static struct th T;
static struct vars_host H;
static char *outbuf;
static size_t outlen;

static void setup(void)
{
    memset(&T, 0, sizeof(T));
    T.env = json_object();
    T.setenvs = json_object();
    T.vault = json_object();
    T.instances = json_object();
    T.services = json_array();
    T.certs = json_array();
    memset(&H, 0, sizeof(H));
    H.ctx = &T;
    H.getenv = t_getenv;
    H.setenv = t_setenv;
    H.vault_get = t_vault_get;
    H.vault_set = t_vault_set;
    H.vault_list = t_vault_list;
    H.certificate_list = t_certificate_list;
    H.service_instances = t_service_instances;
    H.service_list = t_service_list;
    outbuf = NULL;
    outlen = 0;
}

static void teardown(void)
{
    json_decref(T.env);
    json_decref(T.setenvs);
    json_decref(T.vault);
    json_decref(T.instances);
    json_decref(T.services);
    json_decref(T.certs);
    if (H.in)
        fclose(H.in);
    if (H.out)
        fclose(H.out);
    free(outbuf);
}

/* Prompts read `input` and write into outbuf. */
static void answers(const char *input)
{
    H.interactive = 1;
    H.in = fmemopen((void *)input, strlen(input), "r");
    H.out = open_memstream(&outbuf, &outlen);
    cr_assert(H.in && H.out);
}

static const char *printed(void)
{
    fflush(H.out);
    return outbuf ? outbuf : "";
}

static struct vars *mk(const char *defs, const char *builtins)
{
    struct err e = ERR_INIT;
    json_t *d = defs ? J(defs) : NULL, *b = builtins ? J(builtins) : NULL;
    struct vars *v = vars_new(d, b, &e);
    cr_assert_not_null(v, "vars_new: %s", e.msg);
    json_decref(d);
    json_decref(b);
    return v;
}

static void mk_fails(const char *defs, const char *msg)
{
    struct err e = ERR_INIT;
    json_t *d = J(defs);
    struct vars *v = vars_new(d, NULL, &e);
    cr_assert_null(v, "vars_new accepted %s", defs);
    cr_assert_eq(e.st, ST_INVALID);
    cr_assert_str_eq(e.msg, msg);
    json_decref(d);
}

/* Run and expect no hard error; returns the validation errors. */
static json_t *run(struct vars *v)
{
    struct err e = ERR_INIT;
    json_t *errors = NULL;
    enum status st = vars_run(v, &H, &errors, &e);
    cr_assert_eq(st, ST_OK, "vars_run: %s", e.msg);
    cr_assert(json_is_object(errors));
    return errors;
}

static void run_fails(struct vars *v, const char *msg)
{
    struct err e = ERR_INIT;
    json_t *errors = NULL;
    enum status st = vars_run(v, &H, &errors, &e);
    cr_assert_eq(st, ST_INVALID, "vars_run gave %d, expected ST_INVALID and '%s'", st, msg);
    cr_assert_str_eq(e.msg, msg);
    json_decref(errors);
}

static const json_t *val(struct vars *v, const char *name)
{
    const json_t *o = NULL;
    cr_assert(vars_lookup(v, name, &o), "%s not declared", name);
    return o;
}

static void assert_json(const json_t *got, const char *want)
{
    json_t *w = J(want);
    char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
    char *ws = json_dumps(w, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert(json_equal((json_t *)got, w), "got %s, want %s", g, ws);
    free(g);
    free(ws);
    json_decref(w);
}

/* Resolve one definition named x (no hard error) and compare its value. */
static void one(const char *def, const char *want)
{
    char *defs = xasprintf("{'x': %s}", def);
    struct vars *v = mk(defs, NULL);
    json_t *errors = run(v);
    assert_json(val(v, "x"), want);
    json_decref(errors);
    vars_free(v);
    free(defs);
}

/* Resolve one definition named x and compare its validation errors. */
static void one_err(const char *def, const char *want_errors)
{
    char *defs = xasprintf("{'x': %s}", def);
    struct vars *v = mk(defs, NULL);
    json_t *errors = run(v);
    assert_json(errors, want_errors);
    json_decref(errors);
    vars_free(v);
    free(defs);
}

#define TV(name) Test(vars, name, .init = setup, .fini = teardown)

/* ---- required, value, default ------------------------------------------------------------ */

TV(required_by_default)
{
    one_err("{'type': 'string'}", "{'x': {'presence': 'Required value missing'}}");
    one_err("{}", "{'x': {'presence': 'Required value missing'}}");
    one_err("{'type': 'integer'}", "{'x': {'presence': 'Required value missing'}}");
}

TV(required_false_allows_null)
{
    one_err("{'type': 'string', 'required': false}", "{}");
    one("{'type': 'string', 'required': false}", "null");
}

TV(fixed_value_and_default)
{
    one("{'type': 'integer', 'value': 3, 'default': 5}", "3");
    one("{'type': 'integer', 'default': 5}", "5");
    one("{'type': 'string', 'value': null, 'default': 'd'}", "'d'");
}

/* ---- string -------------------------------------------------------------------------------- */

TV(string_conversions)
{
    one("{'value': 12}", "'12'");
    one("{'value': true}", "'true'");
    one("{'value': 1.5}", "'1.5'");
    one("{'value': '  a b  ', 'strip': true}", "'a b'");
    one("{'value': 'abc\\n', 'chomp': true}", "'abc'");
    one("{'value': 'abc', 'upcase': true}", "'ABC'");
    one("{'value': 'ABC', 'downcase': true}", "'abc'");
    one("{'value': 'hELLO', 'capitalize': true}", "'Hello'");
    one("{'value': 'hello', 'encode_64': true}", "'aGVsbG8='");
    one("{'value': 'aGVsbG8=', 'decode_64': true}", "'hello'");
    one("{'value': 'aGVsbG8', 'decode_64': true}", "'hello'");
    one("{'value': 'abc', 'hexdigest': 'md5'}", "'900150983cd24fb0d6963f7d28e17f72'");
    one("{'value': 'abc', 'hexdigest': 'sha1'}", "'a9993e364706816aba3e25717850c26c9cd0d89d'");
    one("{'value': 'abc', 'hexdigest': 'sha256'}",
        "'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'");
}

TV(string_empty_is_nil)
{
    one_err("{'value': '   '}", "{'x': {'presence': 'Required value missing'}}");
    one("{'value': '  ', 'empty_is_nil': false}", "'  '");
}

TV(string_lengths)
{
    one_err("{'value': 'abc', 'min_length': 8}",
            "{'x': {'validate_min_length': 'Too short. Minimum length is 8, length is 3.'}}");
    one_err("{'value': 'abcdef', 'max_length': 4}",
            "{'x': {'validate_max_length': 'Too long. Maximum length is 4, length is 6.'}}");
    one_err("{'value': 'äöü', 'max_length': 3}", "{}");
}

TV(string_bad_base64)
{
    one_err("{'value': '!!!!', 'decode_64': true}", "{'x': {'type': 'Value is not valid base64'}}");
}

/* ---- integer ------------------------------------------------------------------------------- */

TV(integer_conversions)
{
    one("{'type': 'integer', 'value': '42'}", "42");
    one("{'type': 'integer', 'value': ' 1_000 '}", "1000");
    one("{'type': 'integer', 'value': 2.9}", "2");
    one("{'type': 'integer', 'nil_is_zero': true}", "0");
    one_err("{'type': 'integer', 'value': 'abc'}",
            "{'x': {'type': 'Value \\'abc\\' is not an integer'}}");
    one_err("{'type': 'integer', 'value': [1]}",
            "{'x': {'type': 'Value \\'[1]\\' is not an integer'}}");
}

TV(integer_min_max)
{
    one_err("{'type': 'integer', 'value': -1}",
            "{'x': {'validate_min': 'Too small. Minimum value is 0, Value is -1.'}}");
    one_err("{'type': 'integer', 'value': -1, 'min': -5}", "{}");
    one_err("{'type': 'integer', 'value': 0, 'min': 1}",
            "{'x': {'validate_min': 'Too small. Minimum value is 1, Value is 0.'}}");
    one_err("{'type': 'integer', 'value': 11, 'max': 10}",
            "{'x': {'validate_max': 'Too large. Maximum value is 10, Value is 11.'}}");
}

/* ---- boolean ------------------------------------------------------------------------------- */

TV(boolean_conversions)
{
    const char *yes[] = {"'true'", "'YES'", "'1'", "'on'", "'Enabled'", "'enable'", "1", "true"};
    const char *no[] = {"'false'", "'no'", "'0'", "'off'", "'whatever'", "0", "false"};
    char def[128];
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        snprintf(def, sizeof(def), "{'type': 'boolean', 'value': %s}", yes[i]);
        one(def, "true");
    }
    for (size_t i = 0; i < ARRAY_SIZE(no); i++) {
        snprintf(def, sizeof(def), "{'type': 'boolean', 'value': %s}", no[i]);
        one(def, "false");
    }
}

TV(boolean_options)
{
    one("{'type': 'boolean'}", "false"); /* null → nil_is (false): never a presence error */
    one_err("{'type': 'boolean'}", "{}");
    one("{'type': 'boolean', 'nil_is': true}", "true");
    one("{'type': 'boolean', 'value': ' ', 'blank_is': true}", "true");
    one("{'type': 'boolean', 'value': 'si', 'truthy': ['si', 'ja']}", "true");
    one("{'type': 'boolean', 'value': 'yes', 'truthy': ['si']}", "false");
    one("{'type': 'boolean', 'value': 'yes', 'as': 'string'}", "'true'");
    one("{'type': 'boolean', 'value': 'no', 'as': 'string', 'false': 'nope'}", "'nope'");
    one("{'type': 'boolean', 'value': 'yes', 'as': 'integer'}", "1");
    one("{'type': 'boolean', 'value': 'no', 'as': 'integer'}", "0");
    one("{'type': 'boolean', 'value': 'no', 'as': 'true_or_nil', 'required': false}", "null");
}

/* ---- enum ---------------------------------------------------------------------------------- */

TV(enum_forms)
{
    one("{'type': 'enum', 'options': ['a', 'b'], 'value': 'b'}", "'b'");
    one("{'type': 'enum', 'options': [1, 2], 'value': '2'}", "2");
    one("{'type': 'enum', 'options': {'s': 'Small', 'l': 'Large'}, 'value': 'l'}", "'l'");
    one("{'type': 'enum', 'options': [{'value': 'a', 'label': 'A', 'description': 'd'}], "
        "'value': 'a'}",
        "'a'");
    one_err("{'type': 'enum', 'options': ['a', 'b'], 'value': 'c'}",
            "{'x': {'validate_options': 'Value is not one of the options'}}");
    one_err("{'type': 'enum', 'options': ['a'], 'value': 'c', 'can_be_other': true}", "{}");
    one("{'type': 'enum', 'options': ['a'], 'value': 'c', 'can_be_other': true}", "'c'");
}

TV(enum_definition_errors)
{
    mk_fails("{'x': {'type': 'enum'}}", "No options defined for enum x");
    mk_fails("{'x': {'type': 'enum', 'options': []}}", "No options defined for enum x");
    mk_fails("{'x': {'type': 'enum', 'options': [{'value': 'a'}]}}",
             "Variable x: enum option definition requires value and description and can have "
             "label when using hash syntax");
    mk_fails("{'x': {'type': 'enum', 'options': 'abc'}}",
             "Variable x: invalid format for enum option list definition");
    mk_fails("{'x': {'type': 'enum', 'options': [[1]]}}",
             "Variable x: invalid format for enum option list definition");
}

/* ---- uri ----------------------------------------------------------------------------------- */

TV(uri_schemes)
{
    one("{'type': 'uri', 'value': ' https://x.io/a '}", "'https://x.io/a'");
    one_err("{'type': 'uri', 'value': 'ftp://x.io'}",
            "{'x': {'validate_scheme': 'Uri scheme \\'ftp\\' not allowed, allowed schemes: "
            "http, https'}}");
    one_err("{'type': 'uri', 'value': 'ftp://x.io', 'schemes': ['ftp', 'sftp']}", "{}");
    one_err("{'type': 'uri', 'value': 'x.io', 'schemes': ['ftp']}",
            "{'x': {'validate_scheme': 'Uri scheme \\'\\' not allowed, allowed schemes: ftp'}}");
}

/* ---- array --------------------------------------------------------------------------------- */

TV(array_options)
{
    one("{'type': 'array', 'value': 'a,b,c'}", "['a', 'b', 'c']");
    one("{'type': 'array', 'value': 'a b', 'split': ' '}", "['a', 'b']");
    one("{'type': 'array', 'value': 'a,b,'}", "['a', 'b']");
    one("{'type': 'array', 'value': 5}", "[5]");
    one("{'type': 'array', 'value': ['b', 'a', 'b'], 'uniq': true, 'sort': true}", "['a', 'b']");
    one("{'type': 'array', 'value': [3, 1, 2], 'sort': true}", "[1, 2, 3]");
    one("{'type': 'array', 'value': 'a,,b', 'compact': true}", "['a', 'b']");
    one("{'type': 'array', 'value': ['a', 'b'], 'join': ';'}", "'a;b'");
    one("{'type': 'array', 'value': ['a', 'b'], 'join': true}", "'a,b'");
    one("{'type': 'array', 'value': 'a,b,c', 'count': true}", "3");
    one_err("{'type': 'array', 'value': '', 'empty_is_nil': true}",
            "{'x': {'presence': 'Required value missing'}}");
    one("{'type': 'array', 'value': ''}", "[]");
    one_err("{'type': 'array', 'value': {'a': 1}}",
            "{'x': {'type': 'Value is a mapping, not a list'}}");
}

TV(in_option)
{
    one_err("{'type': 'integer', 'value': 5, 'in': [1, 2]}",
            "{'x': {'validate_in': 'Value 5 not in 1, 2'}}");
    one_err("{'value': 'b', 'in': ['a', 'b']}", "{}");
}

/* ---- definition errors --------------------------------------------------------------------- */

TV(definition_errors)
{
    mk_fails("{'x': {'type': 'float'}}", "No handler for type float");
    mk_fails("{'x': {'type': 3}}", "No handler for type 3");
    mk_fails("{'x': {'from': {'magic': 1}}}", "Unknown resolver: magic");
    mk_fails("{'x': {'from': 'magic'}}", "Unknown resolver: magic");
    mk_fails("{'x': {'to': {'disk': 'a'}}}", "Unknown setter: disk");
    mk_fails("{'x': 5}", "Variable x: definition must be a mapping");
    mk_fails("{'x': {'from': {'vault': ''}}}", "Missing or empty vault secret name");
    mk_fails("{'x': {'from': {'vault': null}}}", "Missing or empty vault secret name");
    mk_fails("{'x': {'to': {'vault': ''}}}", "Missing or empty vault secret name");
    mk_fails("{'x': {'min_length': 'a'}}", "Variable x: option min_length must be an integer");
    mk_fails("{'x': {'type': 'integer', 'min': [1]}}", "Variable x: option min must be an integer");
    mk_fails("{'x': {'required': 'no'}}", "Variable x: option required must be true or false");
    mk_fails("{'x': {'in': 'a'}}", "Variable x: option in must be a list");
    mk_fails("{'x': {'hexdigest': 'crc'}}",
             "Variable x: unknown hexdigest 'crc' (md5, sha1, sha256, sha384, sha512)");
    mk_fails("{'x': {'type': 'boolean', 'as': 'float'}}",
             "Variable x: option as must be boolean, string, integer or true_or_nil");
    mk_fails("{'x': {'from': 5}}", "Variable x: invalid format for from");
    mk_fails("{'x': {'from': [5]}}", "Variable x: invalid format for from");
    mk_fails("{'x': {'only_if': 5}}", "Variable x: invalid syntax for condition");
    mk_fails("{'x': {'only_if': {'a': {'around': 1}}}}",
             "Variable x: unknown condition operator 'around'");
    mk_fails("{'x': {'from': {'service_link': {'image': 'x'}}}}",
             "Variable x: service_link: prompt missing");
    mk_fails("{'x': {'from': {'condition': [{'then': 1}]}}}",
             "Variable x: invalid condition definition (no 'if', 'elsif' or 'else')");
    mk_fails("{'x': {'from': {'condition': [{'if': 'a'}]}}}",
             "Variable x: invalid condition definition (no 'then')");
    mk_fails("[1]", "variables must be a mapping");
}

TV(no_definitions)
{
    struct vars *v = mk(NULL, "{'GRID': 'g'}");
    json_t *errors = run(v), *vals = vars_values(v);
    assert_json(vals, "{'GRID': 'g'}");
    json_decref(vals);
    json_decref(errors);
    vars_free(v);
}

/* ---- resolvers ----------------------------------------------------------------------------- */

TV(env_resolver)
{
    json_object_set_new(T.env, "B", json_string("hello"));
    json_object_set_new(T.env, "N", json_string("42"));
    json_object_set_new(T.env, "T", json_string("true"));
    json_object_set_new(T.env, "F", json_string("false"));
    json_object_set_new(T.env, "Z", json_string("nil"));
    json_object_set_new(T.env, "M", json_string("-5"));
    one("{'from': {'env': ['A', 'B']}}", "'hello'");
    one("{'type': 'integer', 'from': {'env': 'N'}}", "42");
    one("{'type': 'string', 'from': {'env': 'N'}}", "'42'");
    one("{'type': 'boolean', 'from': {'env': 'T'}}", "true");
    one("{'type': 'boolean', 'from': {'env': 'F'}, 'default': true}", "false");
    one("{'from': {'env': ['Z', 'B']}}", "'hello'");
    one("{'from': {'env': 'M'}}", "'-5'");
}

TV(env_implicit)
{
    json_object_set_new(T.env, "x", json_string("from-env"));
    json_object_set_new(T.env, "OTHER", json_string("other"));
    one("{'default': 'd'}", "'from-env'");
    one("{'from': {'env': 'OTHER'}, 'default': 'd'}", "'other'");
    json_object_del(T.env, "OTHER");
    /* a listed env resolver replaces the implicit one */
    one("{'from': {'env': 'OTHER'}, 'default': 'd'}", "'d'");
}

TV(env_empty_counts_as_set)
{
    json_object_set_new(T.env, "E", json_string(""));
    one_err("{'from': {'env': 'E'}, 'default': 'd'}",
            "{'x': {'presence': 'Required value missing'}}");
}

TV(file_resolver)
{
    char path[] = "/tmp/test_vars_XXXXXX";
    int fd = mkstemp(path);
    char def[256];
    cr_assert(fd != -1);
    cr_assert_eq(write(fd, "secret\n", 7), 7);
    close(fd);
    snprintf(def, sizeof(def), "{'from': {'file': '%s'}}", path);
    one(def, "'secret\\n'");
    snprintf(def, sizeof(def), "{'from': {'file': '%s'}, 'chomp': true}", path);
    one(def, "'secret'");
    unlink(path);
    snprintf(def, sizeof(def),
             "{'from': {'file': {'path': '%s', 'ignore_errors': true}}, "
             "'default': 'd'}",
             path);
    one(def, "'d'");
    {
        char defs[300], msg[300];
        struct vars *v;
        snprintf(defs, sizeof(defs), "{'x': {'from': {'file': '%s'}}}", path);
        v = mk(defs, NULL);
        snprintf(msg, sizeof(msg),
                 "Resolver 'file' for 'x' : Cannot read file '%s': No such file or directory",
                 path);
        run_fails(v, msg);
        vars_free(v);
    }
}

static void check_charset(const char *def, size_t len, const char *allowed)
{
    char *defs = xasprintf("{'x': %s}", def);
    struct vars *v = mk(defs, NULL);
    json_t *errors = run(v);
    const char *s = json_string_value(val(v, "x"));
    cr_assert_not_null(s, "%s gave no string", def);
    cr_assert_eq(strlen(s), len, "%s: '%s'", def, s);
    cr_assert_eq(strspn(s, allowed), len, "%s: '%s' has chars outside %s", def, s, allowed);
    json_decref(errors);
    vars_free(v);
    free(defs);
}

TV(random_string_charsets)
{
    const char *lower = "abcdefghijklmnopqrstuvwxyz", *upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    char letters[64], alnum[80], b64[96];
    snprintf(letters, sizeof(letters), "%s%s", lower, upper);
    snprintf(alnum, sizeof(alnum), "%s0123456789", letters);
    snprintf(b64, sizeof(b64), "%s+/", alnum);
    check_charset("{'from': {'random_string': 12}}", 12, alnum);
    check_charset("{'from': {'random_string': '7'}}", 7, alnum);
    check_charset("{'from': {'random_string': {'length': 20, 'charset': 'numbers'}}}", 20,
                  "0123456789");
    check_charset("{'from': {'random_string': {'length': 20, 'charset': 'letters'}}}", 20, letters);
    check_charset("{'from': {'random_string': {'length': 20, 'charset': 'downcase'}}}", 20, lower);
    check_charset("{'from': {'random_string': {'length': 20, 'charset': 'upcase'}}}", 20, upper);
    check_charset("{'from': {'random_string': {'length': 20, 'charset': 'hex'}}}", 20,
                  "0123456789abcdef");
    check_charset("{'from': {'random_string': {'length': 20, 'charset': 'hex_upcase'}}}", 20,
                  "0123456789ABCDEF");
    check_charset("{'from': {'random_string': {'length': 20, 'charset': 'base64'}}}", 20, b64);
    check_charset("{'from': {'random_string': {'length': 64, 'charset': 'ascii_printable'}}}", 64,
                  "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
                  "abcdefghijklmnopqrstuvwxyz{|}~");
    check_charset("{'from': {'random_string': {'length': 20, 'charset': 'a-c'}}}", 20, "abc");
    check_charset("{'from': {'random_string': {'length': 20, 'charset': 'X-Z'}}}", 20, "XYZ");
    check_charset("{'from': {'random_string': {'length': 20, 'charset': '0-1'}}}", 20, "01");
    check_charset("{'from': {'random_string': {'length': 20, 'charset': '01'}}}", 20, "01");
    check_charset("{'from': {'random_string': {'length': 20, 'charset': 'x!'}}}", 20, "x!");
}

TV(random_string_errors)
{
    struct vars *v =
        mk("{'x': {'from': {'random_string': {'length': 6, 'charset': 'base64'}}}}", NULL);
    run_fails(v, "Resolver 'random_string' for 'x' : Length must be divisible by 4 when using "
                 "base64");
    vars_free(v);
    v = mk("{'x': {'from': {'random_string': 'abc'}}}", NULL);
    run_fails(v, "Resolver 'random_string' for 'x' : Missing settings for random string.");
    vars_free(v);
    v = mk("{'x': {'from': {'random_string': {'charset': 'hex'}}}}", NULL);
    run_fails(v, "Resolver 'random_string' for 'x' : Invalid settings for random string. "
                 "Required: length, optional: charset. Charsets : numbers, letters, "
                 "alphanumeric, hex, base64, ascii_printable and X-Y range.");
    vars_free(v);
    v = mk("{'x': {'from': {'random_string': 100000000}}}", NULL);
    run_fails(v, "Resolver 'random_string' for 'x' : Invalid length 100000000 for random string "
                 "(0-65536)");
    vars_free(v);
}

TV(random_number_and_uuid)
{
    for (int i = 0; i < 20; i++) {
        struct vars *v = mk("{'n': {'type': 'integer', 'from': {'random_number': "
                            "{'min': 3, 'max': 5}}}, 'u': {'from': 'random_uuid'}}",
                            NULL);
        json_t *errors = run(v);
        json_int_t n = json_integer_value(val(v, "n"));
        const char *u = json_string_value(val(v, "u"));
        cr_assert(n >= 3 && n <= 5);
        cr_assert_eq(strlen(u), 36);
        cr_assert(u[8] == '-' && u[13] == '-' && u[14] == '4' && u[18] == '-' && u[23] == '-');
        cr_assert(strchr("89ab", u[19]));
        json_decref(errors);
        vars_free(v);
    }
    {
        struct vars *v = mk("{'n': {'from': {'random_number': {'min': 3}}}}", NULL);
        run_fails(v, "Resolver 'random_number' for 'n' : Invalid settings for random number. "
                     "Required: min and max (integers)");
        vars_free(v);
    }
}

TV(variable_resolver)
{
    struct vars *v =
        mk("{'a': {'from': {'variable': 'b'}}, 'b': {'type': 'integer', 'value': 4}}", NULL);
    json_t *errors = run(v);
    assert_json(val(v, "a"), "'4'");
    json_decref(errors);
    vars_free(v);
    v = mk("{'a': {'from': {'variable': 'nope'}}}", NULL);
    run_fails(v, "Resolver 'variable' for 'a' : Variable nope not declared");
    vars_free(v);
}

TV(interpolate_resolver)
{
    struct vars *v = mk("{'url': {'from': {'interpolate': 'mysql://$user:${pw}@db/$$x'}}, "
                        "'user': {'value': 'root'}, 'pw': {'value': 'p'}}",
                        NULL);
    json_t *errors = run(v);
    assert_json(val(v, "url"), "'mysql://root:p@db/$$x'");
    json_decref(errors);
    vars_free(v);
    v = mk("{'a': {'from': {'interpolate': 'x-$nope'}}}", NULL);
    run_fails(v, "Resolver 'interpolate' for 'a' : Variable nope not declared");
    vars_free(v);
    v = mk("{'a': {'from': {'interpolate': 'x-$b'}}, 'b': {'required': false}}", NULL);
    run_fails(v, "Resolver 'interpolate' for 'a' : No value for b, note that the order is "
                 "meaningful");
    vars_free(v);
}

TV(evaluate_resolver)
{
    struct vars *v = mk("{'n': {'type': 'integer', 'value': 3}, "
                        "'a': {'type': 'integer', 'from': {'evaluate': '${n} * 2 + 1'}}, "
                        "'b': {'type': 'integer', 'from': {'evaluate': '7/2'}}, "
                        "'c': {'type': 'string', 'from': {'evaluate': '7.0 / 2'}}, "
                        "'d': {'type': 'integer', 'min': -10, 'from': {'evaluate': '-7/2'}}, "
                        "'e': {'type': 'integer', 'from': {'evaluate': '(1 + $n) * (2 - -1)'}}}",
                        NULL);
    json_t *errors = run(v);
    assert_json(errors, "{}");
    assert_json(val(v, "a"), "7");
    assert_json(val(v, "b"), "3");
    assert_json(val(v, "c"), "'3.5'");
    assert_json(val(v, "d"), "-4");
    assert_json(val(v, "e"), "12");
    json_decref(errors);
    vars_free(v);

    v = mk("{'a': {'from': {'evaluate': '1 + system(1)'}}}", NULL);
    run_fails(v, "Resolver 'evaluate' for 'a' : Syntax error: '1+system(1)' does not look like "
                 "a number or a calculation");
    vars_free(v);
    v = mk("{'a': {'from': {'evaluate': '1 +'}}}", NULL);
    run_fails(v, "Resolver 'evaluate' for 'a' : Syntax error: '1+' does not look like a number "
                 "or a calculation");
    vars_free(v);
    v = mk("{'a': {'from': {'evaluate': '1 / 0'}}}", NULL);
    run_fails(v, "Resolver 'evaluate' for 'a' : Cannot evaluate '1/0': divided by 0");
    vars_free(v);
    v = mk("{'a': {'from': {'evaluate': '9223372036854775807 + 1'}}}", NULL);
    run_fails(v, "Resolver 'evaluate' for 'a' : Cannot evaluate '9223372036854775807+1': "
                 "integer overflow");
    vars_free(v);
}

TV(condition_resolver)
{
    const char *defs =
        "{'n': {'type': 'integer', 'from': {'env': 'N'}, 'default': 0}, "
        " 'mode': {'from': {'condition': ["
        "    {'if': {'n': 1}, 'then': 'single'},"
        "    {'elsif': {'n': {'gt': 1}}, 'then': 'multi'},"
        "    {'else': 'none'}]}}, "
        " 'opt': {'required': false, 'from': {'condition': [{'if': {'n': 7}, 'then': 'x'}]}}}";
    const char *cases[][2] = {{"1", "'single'"}, {"3", "'multi'"}, {"0", "'none'"}};
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct vars *v;
        json_t *errors;
        json_object_set_new(T.env, "N", json_string(cases[i][0]));
        v = mk(defs, NULL);
        errors = run(v);
        assert_json(val(v, "mode"), cases[i][1]);
        assert_json(val(v, "opt"), "null");
        json_decref(errors);
        vars_free(v);
    }
}

TV(resolver_order)
{
    /* the first resolver giving a value wins; default comes last */
    json_object_set_new(T.vault, "k", json_string("from-vault"));
    one("{'from': {'vault': 'k', 'random_string': 8}, 'default': 'd'}", "'from-vault'");
    one("{'from': {'vault': 'nope', 'env': 'NOPE'}, 'default': 'd'}", "'d'");
    one("{'from': [{'vault': 'nope'}, {'random_string': {'length': 4, 'charset': '0'}}]}",
        "'0000'");
}

TV(vault_resolver_offline)
{
    H.vault_get = NULL;
    one("{'from': {'vault': 'k'}, 'default': 'd'}", "'d'");
}

TV(master_resolvers_offline)
{
    struct vars *v;
    json_t *errors;
    memset(&H, 0, sizeof(H));
    H.getenv = t_getenv;
    H.ctx = &T;
    answers("1\n1\n1\n");
    v = mk("{'a': {'required': false, 'from': {'vault': 'k'}},"
           " 'b': {'required': false, 'from': {'service_instances': 'web'}},"
           " 'c': {'required': false, 'from': {'service_link': {'prompt': 'Pick'}}},"
           " 'd': {'type': 'array', 'required': false, 'from': 'certificates'},"
           " 'e': {'type': 'array', 'required': false, 'from': 'vault_cert_prompt'}}",
           "{'STACK': 's'}");
    errors = run(v);
    assert_json(errors, "{}");
    for (const char *n = "abcde"; *n; n++) {
        char name[2] = {*n, 0};
        assert_json(val(v, name), "null");
    }
    cr_assert_str_eq(printed(), "");
    json_decref(errors);
    vars_free(v);
}

TV(service_instances_resolver)
{
    struct vars *v;
    json_t *errors;
    json_object_set_new(T.instances, "app/web", json_integer(3));
    v = mk("{'n': {'type': 'integer', 'from': {'service_instances': 'web'}, 'default': 1},"
           " 'm': {'type': 'integer', 'from': {'service_instances': 'db'}, 'default': 1}}",
           "{'STACK': 'app'}");
    errors = run(v);
    assert_json(val(v, "n"), "3");
    assert_json(val(v, "m"), "1");
    json_decref(errors);
    vars_free(v);
}

/* ---- prompts ------------------------------------------------------------------------------- */

TV(prompt_text)
{
    struct vars *v;
    json_t *errors;
    answers("example.com\n\n");
    v = mk("{'domain': {'from': {'prompt': 'Domain name'}},"
           " 'port': {'type': 'integer', 'from': 'prompt', 'default': 80}}",
           NULL);
    errors = run(v);
    assert_json(val(v, "domain"), "'example.com'");
    assert_json(val(v, "port"), "80");
    cr_assert_str_eq(printed(), "Domain name : Enter port : (80) ");
    json_decref(errors);
    vars_free(v);
}

TV(prompt_label_and_echo)
{
    struct vars *v;
    json_t *errors;
    answers("s3cret\n");
    v = mk("{'pw': {'label': 'Password', 'echo': false, 'default': 'hidden', 'from': 'prompt'}}",
           NULL);
    errors = run(v);
    assert_json(val(v, "pw"), "'s3cret'");
    cr_assert_str_eq(printed(), "Enter Password : ");
    json_decref(errors);
    vars_free(v);
}

TV(prompt_echo_off_on_a_terminal)
{
    struct vars *v;
    json_t *errors;
    struct termios tio;
    int m = posix_openpt(O_RDWR | O_NOCTTY), s;
    cr_assert(m != -1);
    cr_assert(grantpt(m) == 0 && unlockpt(m) == 0);
    s = open(ptsname(m), O_RDWR | O_NOCTTY);
    cr_assert(s != -1);
    cr_assert_eq(write(m, "s3cret\n", 7), 7); /* typed ahead: must survive echo-off */
    H.interactive = 1;
    H.in = fdopen(s, "r");
    H.out = open_memstream(&outbuf, &outlen);
    v = mk("{'pw': {'echo': false, 'from': 'prompt'}}", NULL);
    errors = run(v);
    assert_json(val(v, "pw"), "'s3cret'");
    /* the newline is printed only by the echo-off path (the typed Enter was not echoed) */
    cr_assert_str_eq(printed(), "Enter pw : \n");
    cr_assert(tcgetattr(s, &tio) == 0);
    cr_assert(tio.c_lflag & ECHO, "echo was not restored");
    json_decref(errors);
    vars_free(v);
    close(m);
}

TV(prompt_not_interactive)
{
    struct vars *v;
    json_t *errors;
    answers("typed\n");
    H.interactive = 0;
    v = mk("{'a': {'from': 'prompt'}}", NULL);
    errors = run(v);
    assert_json(errors, "{'a': {'presence': 'Required value missing'}}");
    cr_assert_str_eq(printed(), "");
    json_decref(errors);
    vars_free(v);
}

TV(prompt_end_of_input)
{
    struct vars *v;
    json_t *errors;
    answers("");
    v = mk("{'a': {'from': 'prompt', 'default': 'dd'}}", NULL);
    errors = run(v);
    assert_json(val(v, "a"), "'dd'");
    json_decref(errors);
    vars_free(v);
}

TV(prompt_enum)
{
    struct vars *v;
    json_t *errors;
    answers("9\n2\n\n3\nmine\n");
    v = mk("{'size': {'type': 'enum', 'from': 'prompt',"
           "   'options': [{'value': 's', 'label': 'Small', 'description': 'one node'},"
           "               {'value': 'l', 'label': 'Large', 'description': 'Large'}]},"
           " 'db': {'type': 'enum', 'from': {'prompt': 'Database?'}, 'default': 'pg',"
           "   'options': ['my', 'pg']},"
           " 'o': {'type': 'enum', 'from': 'prompt', 'options': ['a', 'b'], 'can_be_other': true}}",
           NULL);
    errors = run(v);
    assert_json(errors, "{}");
    assert_json(val(v, "size"), "'l'");
    assert_json(val(v, "db"), "'pg'");
    assert_json(val(v, "o"), "'mine'");
    cr_assert_str_eq(printed(), "Select size :\n"
                                "  1. Small (one node)\n"
                                "  2. Large\n"
                                "Choose 1-2: Invalid choice '9'\n"
                                "Choose 1-2: "
                                "Database? :\n"
                                "  1. my\n"
                                "  2. pg\n"
                                "Choose 1-2 (2): "
                                "Select o :\n"
                                "  1. a\n"
                                "  2. b\n"
                                "  3. (Other)\n"
                                "Choose 1-3: Enter o : ");
    json_decref(errors);
    vars_free(v);
}

TV(prompt_boolean)
{
    struct vars *v;
    json_t *errors;
    answers("maybe\nn\n\nYES\n");
    v = mk("{'a': {'type': 'boolean', 'from': 'prompt'},"
           " 'b': {'type': 'boolean', 'from': {'prompt': 'Enable HTTPS?'}, 'default': false},"
           " 'c': {'type': 'boolean', 'from': 'prompt', 'as': 'string'}}",
           NULL);
    errors = run(v);
    assert_json(val(v, "a"), "false");
    assert_json(val(v, "b"), "false");
    assert_json(val(v, "c"), "'true'");
    cr_assert_str_eq(printed(), "Enable a : (Y/n) Invalid answer 'maybe', answer y or n\n"
                                "Enable a : (Y/n) Enable HTTPS? : (y/N) Enable c : (Y/n) ");
    json_decref(errors);
    vars_free(v);
}

TV(service_link_resolver)
{
    struct vars *v;
    json_t *errors;
    json_decref(T.services);
    T.services = J("[{'id': 'db/mysql', 'name': 'mysql', 'image': 'mysql:5.7'},"
                   " {'id': 'null/redis', 'name': 'redis', 'image': 'redis:4'},"
                   " {'id': 'web/mysql2', 'name': 'mysql2', 'image': 'mariadb:10'}]");
    answers("2\n2\n");
    v = mk("{'a': {'from': {'service_link': {'prompt': 'Pick a DB', 'name': 'mysql'}}},"
           " 'b': {'required': false, 'from': {'service_link': {'prompt': 'Cache', "
           "'image': 'redis'}}},"
           " 'c': {'required': false, 'from': {'service_link': {'prompt': 'None', "
           "'image': 'nothing'}}}}",
           NULL);
    errors = run(v);
    assert_json(val(v, "a"), "'web/mysql2'");
    assert_json(val(v, "b"), "null");
    assert_json(val(v, "c"), "null");
    cr_assert_str_eq(printed(), "Pick a DB\n"
                                "  1. db/mysql (mysql:5.7)\n"
                                "  2. web/mysql2 (mariadb:10)\n"
                                "Choose 1-2: "
                                "Cache\n"
                                "  1. null/redis (redis:4)\n"
                                "  2. <none>\n"
                                "Choose 1-2: ");
    json_decref(errors);
    vars_free(v);
}

TV(certificate_prompts)
{
    struct vars *v;
    json_t *errors;
    json_decref(T.certs);
    T.certs = J("['a.io', 'b.io', 'c.io']");
    json_object_set_new(T.vault, "web-ssl", json_string("x"));
    json_object_set_new(T.vault, "password", json_string("x"));
    json_object_set_new(T.vault, "MyCert", json_string("x"));
    answers("3, 1\n2\n");
    v = mk("{'certs': {'type': 'array', 'from': 'certificates'},"
           " 'vc': {'type': 'array', 'from': {'vault_cert_prompt': 'Pick certs'}}}",
           NULL);
    errors = run(v);
    assert_json(val(v, "certs"), "['a.io', 'c.io']");
    assert_json(val(v, "vc"), "['MyCert']");
    cr_assert(strstr(printed(), "Select SSL certificates\n  1. a.io\n  2. b.io\n  3. c.io\n"));
    cr_assert(strstr(printed(), "Pick certs\n  1. web-ssl\n  2. MyCert\n"));
    json_decref(errors);
    vars_free(v);
}

/* ---- setters ------------------------------------------------------------------------------- */

TV(setters)
{
    struct vars *v;
    json_t *errors;
    const json_t *o;
    v = mk("{'a': {'type': 'integer', 'value': 5, 'to': {'env': 'A_OUT'}},"
           " 'b': {'value': 'x', 'to': {'env': {'name': 'B_OUT'}, 'vault': 'b-secret'}},"
           " 'c': {'value': 'y', 'to': 'env'},"
           " 'bad': {'type': 'integer', 'value': -1, 'to': {'env': 'BAD_OUT'}},"
           " 'skipped': {'value': 'z', 'only_if': 'nothing', 'to': {'env': 'SKIP_OUT'}}}",
           NULL);
    errors = run(v);
    assert_json(T.setenvs, "{'A_OUT': '5', 'B_OUT': 'x', 'c': 'y'}");
    assert_json(T.vault, "{'b-secret': 'x'}");
    cr_assert(vars_lookup(v, "A_OUT", &o));
    assert_json(o, "5");
    cr_assert(vars_lookup(v, "B_OUT", &o));
    assert_json(o, "'x'");
    cr_assert(vars_lookup(v, "SKIP_OUT", &o));
    assert_json(o, "null");
    cr_assert_not(vars_lookup(v, "NOPE", &o));
    json_decref(errors);
    vars_free(v);
}

TV(setter_failure)
{
    struct vars *v = mk("{'b': {'value': 'x', 'to': {'vault': 'b-secret'}}}", NULL);
    struct err e = ERR_INIT;
    json_t *errors = NULL;
    T.vault_sealed = 1;
    cr_assert_eq(vars_run(v, &H, &errors, &e), ST_IO); /* the master's status is kept */
    cr_assert_str_eq(e.msg, "Setter 'vault' for 'b' : vault is sealed");
    json_decref(errors);
    vars_free(v);
}

TV(setter_offline_vault)
{
    struct vars *v;
    json_t *errors;
    H.vault_set = NULL;
    v = mk("{'b': {'value': 'x', 'to': {'vault': 'b-secret'}}}", NULL);
    errors = run(v);
    assert_json(T.vault, "{}");
    json_decref(errors);
    vars_free(v);
}

/* ---- conditions ---------------------------------------------------------------------------- */

static int skipped(const char *cond_key, const char *cond)
{
    char *defs = xasprintf("{'n': {'type': 'integer', 'value': 5},"
                           " 's': {'value': 'hello world'},"
                           " 'l': {'type': 'array', 'value': 'a,b'},"
                           " 'f': {'type': 'boolean', 'value': false},"
                           " 'fs': {'type': 'boolean', 'value': false, 'as': 'string'},"
                           " 'e': {'required': false},"
                           " 'x': {'value': 'v', '%s': %s}}",
                           cond_key, cond);
    struct vars *v = mk(defs, NULL);
    json_t *errors = run(v);
    const json_t *o = val(v, "x");
    int r = json_is_null(o);
    json_decref(errors);
    vars_free(v);
    free(defs);
    return r;
}

TV(condition_shapes)
{
    cr_assert_not(skipped("only_if", "'n'"));
    cr_assert(skipped("only_if", "'f'"));
    cr_assert(skipped("only_if", "'fs'"));
    cr_assert(skipped("only_if", "'e'"));
    cr_assert(skipped("only_if", "'undeclared'"));
    cr_assert_not(skipped("only_if", "['n', 's']"));
    cr_assert(skipped("only_if", "['n', 'f']"));
    cr_assert_not(skipped("only_if", "{'n': 5, 's': 'hello world'}"));
    cr_assert(skipped("only_if", "{'n': '5'}")); /* type-sensitive */
    cr_assert(skipped("skip_if", "'n'"));
    cr_assert_not(skipped("skip_if", "'f'"));
    cr_assert(skipped("skip_if", "['f', 'n']"));
    cr_assert_not(skipped("skip_if", "['f', 'e']"));
    cr_assert(skipped("skip_if", "{'n': 1, 's': 'hello world'}"));
    cr_assert_not(skipped("skip_if", "{'n': 1, 's': 'x'}"));
}

TV(condition_operators)
{
    struct {
        const char *cond;
        int holds;
    } c[] = {
        {"{'n': {'lt': 6}}", 1},
        {"{'n': {'lt': 5}}", 0},
        {"{'n': {'lte': 5}}", 1},
        {"{'n': {'lte': 4}}", 0},
        {"{'n': {'gt': 4}}", 1},
        {"{'n': {'gt': 5}}", 0},
        {"{'n': {'gte': 5}}", 1},
        {"{'n': {'gte': 6}}", 0},
        {"{'n': {'eq': 5}}", 1},
        {"{'n': {'eq': '5'}}", 0},
        {"{'n': {'ne': 4}}", 1},
        {"{'n': {'ne': 5}}", 0},
        {"{'n': {'gt': 1, 'lte': 5}}", 1},
        {"{'n': {'gt': 1, 'lt': 5}}", 0},
        {"{'s': {'start_with': 'hello'}}", 1},
        {"{'s': {'start_with': 'world'}}", 0},
        {"{'s': {'end_with': 'world'}}", 1},
        {"{'s': {'end_with': 'hello'}}", 0},
        {"{'s': {'contain': 'o w'}}", 1},
        {"{'s': {'contain': 'xyz'}}", 0},
        {"{'l': {'contain': 'b'}}", 1},
        {"{'l': {'contain': 'c'}}", 0},
        {"{'s': {'any_of': ['a', 'hello world']}}", 1},
        {"{'s': {'any_of': ['a']}}", 0},
        {"{'n': {'any_of': '4, 5'}}", 1},
        {"{'n': {'any_of': '4,6'}}", 0},
        {"{'s': {'lt': 5}}", 0},
        {"{'e': {'gt': 1}}", 0},
        {"{'s': {'gt': 'alpha'}}", 1},
    };
    for (size_t i = 0; i < ARRAY_SIZE(c); i++) {
        cr_assert_eq(!skipped("only_if", c[i].cond), c[i].holds, "only_if %s", c[i].cond);
        cr_assert_eq(skipped("skip_if", c[i].cond), c[i].holds, "skip_if %s", c[i].cond);
    }
}

TV(skipped_not_prompted_validated_or_set)
{
    struct vars *v;
    json_t *errors;
    answers("typed\n");
    v = mk("{'on': {'type': 'boolean', 'value': false},"
           " 'x': {'only_if': 'on', 'min_length': 99, 'from': 'prompt', 'to': {'env': 'X'}}}",
           NULL);
    errors = run(v);
    assert_json(errors, "{}");
    assert_json(val(v, "x"), "null");
    assert_json(T.setenvs, "{}");
    cr_assert_str_eq(printed(), "");
    cr_assert_not(vars_truthy(v, "x"));
    json_decref(errors);
    vars_free(v);
}

/* ---- order --------------------------------------------------------------------------------- */

TV(forward_reference_and_prompt_order)
{
    struct vars *v;
    json_t *errors;
    answers("first\nsecond\n");
    v = mk("{'a': {'from': 'prompt'}, 'b': {'from': {'interpolate': '$c!'}},"
           " 'c': {'from': 'prompt'}}",
           NULL);
    errors = run(v);
    assert_json(val(v, "a"), "'first'");
    assert_json(val(v, "c"), "'second'");
    assert_json(val(v, "b"), "'second!'");
    cr_assert_str_eq(printed(), "Enter a : Enter c : ");
    json_decref(errors);
    vars_free(v);
}

TV(cycles)
{
    struct vars *v =
        mk("{'a': {'from': {'variable': 'b'}}, 'b': {'from': {'interpolate': '$a'}}}", NULL);
    run_fails(v, "Variable a depends on itself");
    vars_free(v);
    v = mk("{'a': {'only_if': 'a'}}", NULL);
    run_fails(v, "Variable a depends on itself");
    vars_free(v);
}

TV(deep_chain)
{
    /* longer than the nesting cap: a clear error, not a stack overflow */
    json_t *defs = json_object();
    struct err e = ERR_INIT;
    struct vars *v;
    json_t *errors = NULL;
    for (int i = 0; i < 1000; i++) {
        char n[16], next[16];
        snprintf(n, sizeof(n), "v%d", i);
        snprintf(next, sizeof(next), "v%d", i + 1);
        json_object_set_new(defs, n, json_pack("{s:{s:s}}", "from", "variable", next));
    }
    json_object_set_new(defs, "v1000", json_pack("{s:s}", "value", "end"));
    v = vars_new(defs, NULL, &e);
    cr_assert_not_null(v);
    cr_assert_eq(vars_run(v, &H, &errors, &e), ST_INVALID);
    cr_assert(strstr(e.msg, "too deeply"), "%s", e.msg);
    json_decref(errors);
    json_decref(defs);
    vars_free(v);
}

/* ---- command line, defaults, builtins, stored ---------------------------------------------- */

TV(command_line_values)
{
    struct vars *v = mk("{'n': {'type': 'integer', 'from': 'prompt', 'value': 9},"
                        " 'b': {'type': 'boolean'},"
                        " 'l': {'type': 'array'},"
                        " 's': {'min_length': 3}}",
                        NULL);
    json_t *two = json_string("2"), *yes = json_string("yes"), *list = json_string("a,b"),
           *s = json_string("ab"), *errors;
    answers("");
    vars_set_value(v, "n", two);
    vars_set_value(v, "b", yes);
    vars_set_value(v, "l", list);
    vars_set_value(v, "s", s);
    vars_set_value(v, "unknown", s);
    errors = run(v);
    assert_json(val(v, "n"), "2");
    assert_json(val(v, "b"), "true");
    assert_json(val(v, "l"), "['a', 'b']");
    assert_json(errors,
                "{'s': {'validate_min_length': 'Too short. Minimum length is 3, length is 2.'}}");
    cr_assert_str_eq(printed(), "");
    json_decref(errors);
    json_decref(two);
    json_decref(yes);
    json_decref(list);
    json_decref(s);
    vars_free(v);
}

TV(defaults_from_upgrade)
{
    struct vars *v = mk("{'a': {'default': 'old'}, 'b': {'from': 'prompt', 'default': 'x'}}", NULL);
    json_t *d1 = json_string("stored-a"), *d2 = json_string("stored-b"), *errors;
    answers("\n");
    vars_set_default(v, "a", d1);
    vars_set_default(v, "b", d2);
    errors = run(v);
    assert_json(val(v, "a"), "'stored-a'");
    assert_json(val(v, "b"), "'stored-b'");
    cr_assert_str_eq(printed(), "Enter b : (stored-b) ");
    json_decref(errors);
    json_decref(d1);
    json_decref(d2);
    vars_free(v);
}

TV(builtins_and_stored)
{
    struct vars *v = mk("{'GRID': {'value': 'overridden?'}, 'a': {'value': 'x'},"
                        " 'sec': {'from': {'vault': 's'}, 'required': false},"
                        " 'out': {'value': 'y', 'to': {'vault': 'o'}},"
                        " 'skip': {'only_if': 'nothing'}}",
                        "{'GRID': 'g', 'STACK': 'app', 'PLATFORM': 'g', 'cache': 'app-cache',"
                        " 'PARENT_STACK': 'p'}");
    json_t *errors = run(v), *stored = vars_stored(v), *vals = vars_values(v);
    assert_json(errors, "{}");
    assert_json(val(v, "GRID"), "'g'");
    assert_json(val(v, "cache"), "'app-cache'");
    /* Dependency names are stored (stack-file.md §6.7); GRID, STACK, PLATFORM, PARENT_STACK
     * and vault variables are not. */
    assert_json(stored, "{'cache': 'app-cache', 'a': 'x', 'skip': null}");
    assert_json(vals, "{'GRID': 'g', 'STACK': 'app', 'PLATFORM': 'g', 'cache': 'app-cache',"
                      " 'PARENT_STACK': 'p', 'a': 'x', 'sec': null, 'out': 'y', 'skip': null}");
    cr_assert(vars_truthy(v, "a"));
    cr_assert(vars_truthy(v, "STACK"));
    cr_assert_not(vars_truthy(v, "skip"));
    cr_assert_not(vars_truthy(v, "nope"));
    json_decref(errors);
    json_decref(stored);
    json_decref(vals);
    vars_free(v);
}

TV(truthy_for_services)
{
    struct vars *v = mk("{'f': {'type': 'boolean', 'value': false},"
                        " 'fs': {'value': 'false'}, 't': {'type': 'boolean', 'value': true},"
                        " 'z': {'type': 'integer', 'value': 0}}",
                        NULL);
    json_t *errors = run(v);
    cr_assert_not(vars_truthy(v, "f"));
    cr_assert_not(vars_truthy(v, "fs"));
    cr_assert(vars_truthy(v, "t"));
    cr_assert(vars_truthy(v, "z"));
    json_decref(errors);
    vars_free(v);
}

TV(run_twice)
{
    struct vars *v = mk("{'a': {'from': {'random_string': 8}}}", NULL);
    json_t *e1 = run(v), *e2;
    char *first = xstrdup(json_string_value(val(v, "a")));
    e2 = run(v);
    cr_assert_str_neq(first, json_string_value(val(v, "a")));
    free(first);
    json_decref(e1);
    json_decref(e2);
    vars_free(v);
}

/* ---- the reference's examples -------------------------------------------------------------- */

static const char *ex_12_2 =
    "{'replicas': {'type': 'integer', 'min': 1, 'default': 2, 'from': {'env': 'API_REPLICAS'}},"
    " 'api_key': {'type': 'string',"
    "   'from': {'vault': 'api-api-key', 'random_string': {'length': 32, 'charset': 'hex'}},"
    "   'to': {'vault': 'api-api-key'}}}";

TV(example_12_2)
{
    struct vars *v = mk(ex_12_2, "{'GRID': 'g', 'STACK': 'api', 'PLATFORM': 'g'}");
    json_t *errors = run(v), *stored;
    const char *key = json_string_value(val(v, "api_key"));
    char *first;

    assert_json(errors, "{}");
    assert_json(val(v, "replicas"), "2");
    cr_assert_eq(strlen(key), 32);
    cr_assert_eq(strspn(key, "0123456789abcdef"), 32);
    cr_assert_str_eq(json_string_value(json_object_get(T.vault, "api-api-key")), key);
    stored = vars_stored(v);
    assert_json(stored, "{'replicas': 2}");
    first = xstrdup(key);
    json_decref(stored);
    json_decref(errors);
    vars_free(v);

    /* second install: the key comes back from the vault; API_REPLICAS is read */
    json_object_set_new(T.env, "API_REPLICAS", json_string("5"));
    v = mk(ex_12_2, "{'GRID': 'g', 'STACK': 'api', 'PLATFORM': 'g'}");
    errors = run(v);
    assert_json(val(v, "replicas"), "5");
    cr_assert_str_eq(json_string_value(val(v, "api_key")), first);
    free(first);
    json_decref(errors);
    vars_free(v);

    /* API_REPLICAS=0 fails min: 1 */
    json_object_set_new(T.env, "API_REPLICAS", json_string("0"));
    v = mk(ex_12_2, "{'GRID': 'g', 'STACK': 'api', 'PLATFORM': 'g'}");
    errors = run(v);
    assert_json(errors, "{'replicas': {'validate_min': 'Too small. Minimum value is 1, Value is "
                        "0.'}}");
    json_decref(errors);
    vars_free(v);
}

static const char *ex_12_3 =
    "{'tls': {'type': 'boolean', 'default': false, 'from': {'prompt': 'Enable HTTPS?'}},"
    " 'domain': {'type': 'string', 'only_if': 'tls', 'from': {'prompt': 'Domain name'}},"
    " 'workers': {'type': 'integer', 'value': 3}}";

TV(example_12_3)
{
    struct vars *v = mk(ex_12_3, NULL);
    json_t *w = json_string("2"), *f = json_string("false"), *errors;
    answers("y\nexample.com\n");
    vars_set_value(v, "workers", w);
    vars_set_value(v, "tls", f);
    errors = run(v);
    assert_json(errors, "{}");
    assert_json(val(v, "workers"), "2");
    assert_json(val(v, "tls"), "false");
    assert_json(val(v, "domain"), "null");
    cr_assert_str_eq(printed(), ""); /* domain is skipped and never prompted */
    json_decref(errors);
    vars_free(v);

    /* interactively: yes to HTTPS, then the domain is asked */
    v = mk(ex_12_3, NULL);
    errors = run(v);
    assert_json(val(v, "tls"), "true");
    assert_json(val(v, "domain"), "'example.com'");
    assert_json(val(v, "workers"), "3");
    cr_assert_str_eq(printed(), "Enable HTTPS? : (y/N) Domain name : ");
    json_decref(errors);
    json_decref(w);
    json_decref(f);
    vars_free(v);
}
