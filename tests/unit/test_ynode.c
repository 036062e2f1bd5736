/* Unit tests for cli/stackfile/ynode.c: YAML 1.1 typing as Psych did it, positions,
 * anchors and merge keys, caps, syntax errors and the Psych-style emitter. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/stackfile/ynode.h"
#include "common/xmalloc.h"

static struct ynode *parse(const char *text)
{
    struct ynode *n = NULL;
    struct err e = ERR_INIT;
    enum status st = ynode_parse(text, strlen(text), &n, &e);
    cr_assert_eq(st, ST_OK, "parse of <%s> failed: %s", text, e.msg);
    return n;
}

/* The value of "v: <text>" as a node; the caller frees the returned document root. */
static const struct ynode *scalar_of(const char *text, struct ynode **doc)
{
    char *y = xasprintf("v: %s\n", text);
    *doc = parse(y);
    free(y);
    const struct ynode *v = ynode_get(*doc, "v");
    cr_assert_not_null(v);
    return v;
}

static void expect_type(const char *text, enum yscalar t, const char *cls)
{
    struct ynode *doc;
    const struct ynode *v = scalar_of(text, &doc);
    cr_expect_eq(v->stype, t, "<%s>: type %d, expected %d", text, v->stype, t);
    cr_expect_str_eq(ynode_class(v), cls, "<%s>", text);
    ynode_free(doc);
}

static long long int_of(const char *text)
{
    struct ynode *doc;
    const struct ynode *v = scalar_of(text, &doc);
    cr_assert_eq(v->stype, YS_INT, "<%s> is not an integer", text);
    long long r = v->ival;
    ynode_free(doc);
    return r;
}

Test(ynode, psych_booleans_and_nulls)
{
    const char *t[] = {"yes", "Yes", "YES", "true", "True", "on", "ON"};
    const char *f[] = {"no", "No", "false", "FALSE", "off", "Off"};
    for (size_t i = 0; i < ARRAY_SIZE(t); i++)
        expect_type(t[i], YS_BOOL, "TrueClass");
    for (size_t i = 0; i < ARRAY_SIZE(f); i++)
        expect_type(f[i], YS_BOOL, "FalseClass");
    expect_type("~", YS_NULL, "NilClass");
    expect_type("null", YS_NULL, "NilClass");
    expect_type("NULL", YS_NULL, "NilClass");
    expect_type("", YS_NULL, "NilClass");
    /* Not booleans in Psych. */
    expect_type("y", YS_STR, "String");
    expect_type("n", YS_STR, "String");
    expect_type("yess", YS_STR, "String");
    expect_type("'yes'", YS_STR, "String");
    expect_type("\"true\"", YS_STR, "String");
    expect_type("!!str on", YS_STR, "String");
}

Test(ynode, psych_numbers)
{
    cr_expect_eq(int_of("42"), 42);
    cr_expect_eq(int_of("-7"), -7);
    cr_expect_eq(int_of("+3"), 3);
    cr_expect_eq(int_of("0"), 0);
    cr_expect_eq(int_of("1_000"), 1000);
    cr_expect_eq(int_of("1,000"), 1000);
    cr_expect_eq(int_of("0x1F"), 31);
    cr_expect_eq(int_of("0b101"), 5);
    cr_expect_eq(int_of("017"), 15);
    /* Base 60, the port-mapping trap. */
    cr_expect_eq(int_of("22:22"), 1342);
    cr_expect_eq(int_of("1:00:00"), 3600);
    expect_type("80:80", YS_STR, "String"); /* 80 is not a base-60 digit pair */
    expect_type("\"22:22\"", YS_STR, "String");
    expect_type("08", YS_STR, "String");
    expect_type("1e3", YS_STR, "String"); /* Psych's FLOAT needs a dot */
    expect_type("1.0", YS_FLOAT, "Float");
    expect_type(".5", YS_FLOAT, "Float");
    expect_type("1.5e+3", YS_FLOAT, "Float");
    expect_type(".inf", YS_FLOAT, "Float");
    expect_type("-.Inf", YS_FLOAT, "Float");
    expect_type(".nan", YS_FLOAT, "Float");
    expect_type(".", YS_STR, "String");
    expect_type("1.2.3", YS_STR, "String");
    expect_type("0.3.0", YS_STR, "String");
    expect_type("!!float 1", YS_FLOAT, "Float");
    expect_type("2018-01-01", YS_STR, "String");
    expect_type("redis:4-alpine", YS_STR, "String");
    expect_type("-foo", YS_STR, "String");

    struct ynode *doc;
    const struct ynode *v = scalar_of("1.5e+3", &doc);
    cr_expect_eq(v->fval, 1500.0);
    ynode_free(doc);
    v = scalar_of("99999999999999999999999", &doc);
    cr_expect_eq(v->stype, YS_INT);
    ynode_free(doc);
}

Test(ynode, positions_are_one_based)
{
    struct ynode *doc = parse("stack: a/b\nservices:\n  web:\n    image: nginx\n");
    const struct ynode *svcs = ynode_get(doc, "services");
    cr_assert_not_null(svcs);
    const struct ynode *k = ynode_key(svcs, "web");
    cr_expect_eq(k->line, 3);
    cr_expect_eq(k->col, 3);
    const struct ynode *img = ynode_get(ynode_get(svcs, "web"), "image");
    cr_expect_eq(img->line, 4);
    cr_expect_eq(img->col, 12);
    cr_expect_str_eq(img->text, "nginx");
    cr_expect_eq(ynode_key(doc, "stack")->line, 1);
    ynode_free(doc);
}

Test(ynode, anchors_aliases_and_merge_keys)
{
    struct ynode *doc = parse("data:\n"
                              "  base: &base\n"
                              "    image: redis\n"
                              "    instances: 2\n"
                              "  extra: &extra\n"
                              "    stateful: true\n"
                              "    instances: 9\n"
                              "services:\n"
                              "  a:\n"
                              "    <<: *base\n"
                              "    instances: 3\n"
                              "  b:\n"
                              "    <<: [*base, *extra]\n"
                              "  c: *base\n"
                              "  d:\n"
                              "    instances: 1\n"
                              "    <<: *base\n");
    const struct ynode *s = ynode_get(doc, "services");
    const struct ynode *a = ynode_get(s, "a");
    cr_expect_str_eq(ynode_get(a, "image")->text, "redis");
    cr_expect_eq(ynode_get(a, "instances")->ival, 3, "a later explicit key wins");
    cr_expect_eq(a->len, 2);
    const struct ynode *b = ynode_get(s, "b");
    cr_expect_eq(ynode_get(b, "instances")->ival, 2, "earlier merge sources win");
    cr_expect_eq(ynode_get(b, "stateful")->bval, 1);
    cr_expect_str_eq(ynode_get(ynode_get(s, "c"), "image")->text, "redis");
    /* Psych's merge! overwrites keys set before the merge key. */
    cr_expect_eq(ynode_get(ynode_get(s, "d"), "instances")->ival, 2);
    ynode_free(doc);
}

Test(ynode, merge_of_non_mapping_is_a_plain_key)
{
    struct ynode *doc = parse("a:\n  <<: 5\n  '<<': {x: 1}\n");
    const struct ynode *a = ynode_get(doc, "a");
    cr_expect_eq(a->len, 1);
    cr_expect_eq(ynode_get(a, "<<")->kind, YN_MAP, "quoted << is an ordinary key");
    ynode_free(doc);
}

Test(ynode, duplicate_keys_last_wins_in_first_place)
{
    struct ynode *doc = parse("a: 1\nb: 2\na: 3\n");
    cr_expect_eq(doc->len, 2);
    cr_expect_str_eq(doc->keys[0]->text, "a");
    cr_expect_eq(doc->vals[0]->ival, 3);
    ynode_free(doc);
}

Test(ynode, anchor_redefined_and_merged_away)
{
    /* The anchored mapping is merged (its shell freed) before the alias is used. */
    struct ynode *doc = parse("a:\n  <<: &m {x: 1}\nb: *m\nc: &m 2\nd: *m\ne: &k k\ne: 3\nf: *k\n");
    cr_expect_eq(ynode_get(ynode_get(doc, "b"), "x")->ival, 1);
    cr_expect_eq(ynode_get(doc, "d")->ival, 2);
    cr_expect_str_eq(ynode_get(doc, "f")->text, "k");
    ynode_free(doc);
}

Test(ynode, undefined_alias_and_syntax_errors)
{
    struct ynode *n = NULL;
    struct err e = ERR_INIT;
    const char *t = "a: *nope\n";
    cr_expect_eq(ynode_parse(t, strlen(t), &n, &e), ST_INVALID);
    cr_expect(strstr(e.msg, "undefined alias nope"), "%s", e.msg);
    cr_expect_null(n);

    t = "stack: a\nservices:\n  web:\n    image: [a\n  x: 1\n";
    cr_expect_eq(ynode_parse(t, strlen(t), &n, &e), ST_INVALID);
    cr_expect_eq(strncmp(e.msg, "(5:", 3), 0, "line is 1-based: %s", e.msg);
    cr_expect_null(n);

    t = "a: b\n c: d\n";
    cr_expect_eq(ynode_parse(t, strlen(t), &n, &e), ST_INVALID);
    cr_expect_str_eq(e.msg, "(2:3) mapping values are not allowed in this context");
}

Test(ynode, billion_laughs_fails_cleanly)
{
    const char *t = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                    "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    struct ynode *n = NULL;
    struct err e = ERR_INIT;
    cr_expect_eq(ynode_parse(t, strlen(t), &n, &e), ST_INVALID);
    cr_expect(strstr(e.msg, "too large"), "%s", e.msg);
    cr_expect_null(n);
}

Test(ynode, deep_nesting_fails_cleanly)
{
    char *t = xmalloc(20001);
    memset(t, '[', 20000);
    t[20000] = '\0';
    struct ynode *n = NULL;
    struct err e = ERR_INIT;
    cr_expect_eq(ynode_parse(t, strlen(t), &n, &e), ST_INVALID);
    cr_expect_null(n);
    free(t);
}

Test(ynode, empty_document_and_liquid_output_tags)
{
    struct ynode *n = parse("");
    cr_expect(ynode_is_null(n));
    ynode_free(n);
    n = parse("# only a comment\n");
    cr_expect(ynode_is_null(n));
    ynode_free(n);
    /* The pre-Liquid parse must accept {{ x }} as a value (a flow mapping as a key). */
    n = parse("stack: a/b\nlinks:\n  - {{ lb }}\ncert: {{certificate}}\n");
    cr_expect_str_eq(ynode_get(n, "stack")->text, "a/b");
    cr_expect_eq(ynode_get(n, "links")->vals[0]->kind, YN_MAP);
    json_t *j = ynode_to_json(n);
    cr_expect_not_null(json_object_get(j, "cert"));
    json_decref(j);
    ynode_free(n);
    /* Only the first document counts. */
    n = parse("a: 1\n---\nb: [\n");
    cr_expect_eq(ynode_get(n, "a")->ival, 1);
    ynode_free(n);
}

Test(ynode, to_json_types_and_order)
{
    struct ynode *n = parse("z: 1\na: [yes, ~, 1.5, '1', x]\n5: five\nm: {k: v}\n");
    json_t *j = ynode_to_json(n);
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    cr_expect_str_eq(
        s, "{\"z\":1,\"a\":[true,null,1.5,\"1\",\"x\"],\"5\":\"five\",\"m\":{\"k\":\"v\"}}");
    free(s);
    json_decref(j);
    ynode_free(n);
}

Test(ynode, dup_is_deep)
{
    struct ynode *n = parse("a: {b: [1, 2]}\n");
    struct ynode *c = ynode_dup(n);
    ynode_free(n);
    cr_expect_eq(ynode_get(ynode_get(c, "a"), "b")->vals[1]->ival, 2);
    ynode_free(c);
}

static void expect_dump(const char *json, const char *yaml)
{
    json_error_t je;
    json_t *j = json_loads(json, JSON_DECODE_ANY, &je);
    cr_assert_not_null(j, "%s", je.text);
    char *y = yaml_dump(j);
    cr_expect_str_eq(y, yaml);
    /* And it reads back as the same value. */
    struct ynode *n = NULL;
    struct err e = ERR_INIT;
    cr_assert_eq(ynode_parse(y, strlen(y), &n, &e), ST_OK, "%s", e.msg);
    json_t *back = ynode_to_json(n);
    cr_expect(json_equal(j, back), "round trip of %s", json);
    json_decref(back);
    ynode_free(n);
    free(y);
    json_decref(j);
}

Test(ynode, dump_like_psych)
{
    expect_dump("{\"stack\":\"a/b\",\"services\":{\"web\":{\"image\":\"nginx:latest\","
                "\"ports\":[\"80:80\",\"22:22\"],\"instances\":2,\"stateful\":false,"
                "\"cpus\":1.0,\"x\":null,\"volumes\":[\"/data\"],\"e\":[],\"m\":{}}}}",
                "---\n"
                "stack: a/b\n"
                "services:\n"
                "  web:\n"
                "    image: nginx:latest\n"
                "    ports:\n"
                "    - 80:80\n"
                "    - '22:22'\n"
                "    instances: 2\n"
                "    stateful: false\n"
                "    cpus: 1.0\n"
                "    x:\n"
                "    volumes:\n"
                "    - \"/data\"\n"
                "    e: []\n"
                "    m: {}\n");
    expect_dump("[\"yes\",\"1.0\",\"\",\"null\",\"12\",\"a: b\",\"line1\\nline2\"]", "---\n"
                                                                                     "- 'yes'\n"
                                                                                     "- '1.0'\n"
                                                                                     "- ''\n"
                                                                                     "- 'null'\n"
                                                                                     "- '12'\n"
                                                                                     "- 'a: b'\n"
                                                                                     "- |-\n"
                                                                                     "  line1\n"
                                                                                     "  line2\n");
    expect_dump("[{\"a\":[{\"b\":{\"c\":\"d\"}}]}]", "---\n"
                                                     "- a:\n"
                                                     "  - b:\n"
                                                     "      c: d\n");
}
