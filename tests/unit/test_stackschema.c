/* Unit tests for cli/stackfile/schema.c and convert.c: YAML snippets parsed with
 * ynode_parse, validated with sf_schema_validate and converted with sf_convert on a
 * hand-built sf_ctx; exact messages, key paths and 1-based lines (stack-file.md §3, §4, §9,
 * §11). */
#include <criterion/criterion.h>
#include <glob.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/stackfile/internal.h"
#include "common/xmalloc.h"

struct fx {
    struct sf_ctx cx;
    struct ynode *doc;
    char dir[64];
};

static struct ynode *parse(const char *text)
{
    struct ynode *d = NULL;
    struct err e = ERR_INIT;

    cr_assert_eq(ynode_parse(text, strlen(text), &d, &e), ST_OK, "parse: %s", e.msg);
    return d;
}

/* Read and parse path, as stackfile.c's loader would (no Liquid or ${} here). */
static enum status test_load_doc(struct sf_ctx *cx, const char *path, struct ynode **doc,
                                 char **abs, struct err *e)
{
    FILE *f = fopen(path, "r");
    char buf[8192];
    size_t n;

    (void)cx;
    if (!f)
        return err_set(e, ST_NOTFOUND, "Not found: no such file %s", path);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    *abs = xstrdup(path);
    return ynode_parse(buf, n, doc, e);
}

static void fx_init(struct fx *f, const char *yaml)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/h2-stackschema-%d", (int)getpid());
    f->cx.path = "/tmp/kontena.yml";
    f->cx.base = "kontena.yml";
    f->cx.dir = f->dir;
    f->cx.stack_name = "test";
    f->cx.errors = json_array();
    f->cx.notes = json_array();
    f->cx.load_doc = test_load_doc;
    f->doc = parse(yaml);
}

static void fx_release(struct fx *f)
{
    json_decref(f->cx.errors);
    json_decref(f->cx.notes);
    ynode_free(f->doc);
}

static json_t *validate(struct fx *f, const char *yaml)
{
    fx_init(f, yaml);
    sf_schema_validate(&f->cx, f->doc, 0);
    return f->cx.errors;
}

static char *dump(const json_t *list)
{
    return json_dumps(list, JSON_COMPACT);
}

/* Whether list holds a finding with this path, line and message. */
static int has(const json_t *list, const char *path, int line, const char *msg)
{
    size_t i;
    json_t *x;

    json_array_foreach(list, i, x) {
        if (strcmp(json_string_value(json_object_get(x, "path")), path) == 0 &&
            json_integer_value(json_object_get(x, "line")) == line &&
            strcmp(json_string_value(json_object_get(x, "message")), msg) == 0)
            return 1;
    }
    return 0;
}

#define EXPECT(list, path, line, msg)                                                              \
    do {                                                                                           \
        char *d_ = dump(list);                                                                     \
        cr_expect(has(list, path, line, msg), "missing %s:%d %s in %s", path, line, msg, d_);     \
        free(d_);                                                                                  \
    } while (0)

#define EXPECT_COUNT(list, n)                                                                      \
    do {                                                                                           \
        char *d_ = dump(list);                                                                     \
        cr_expect_eq(json_array_size(list), (size_t)(n), "want %d findings: %s", (int)(n), d_);   \
        free(d_);                                                                                  \
    } while (0)

#define HEAD "stack: acme/test\n"

Test(stackschema, unknown_service_key)
{
    struct fx f;
    json_t *errs = validate(&f, HEAD "services:\n"
                                     "  redis:\n"
                                     "    image: redis\n"
                                     "    omg: 1\n"
                                     "    hostname: x\n");
    EXPECT(errs, "services.redis.omg", 5, "key not expected");
    EXPECT(errs, "services.redis.hostname", 6, "key not expected");
    EXPECT_COUNT(errs, 2);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(errs, 0), "file")),
                     "kontena.yml");
    EXPECT_COUNT(f.cx.notes, 0);
    fx_release(&f);
}

Test(stackschema, exact_types)
{
    struct fx f;
    json_t *errs = validate(&f, HEAD "services:\n"
                                     "  a:\n"
                                     "    image: 5\n"
                                     "    cpus: 1\n"
                                     "    mem_limit: 512\n"
                                     "    command: [sleep, '10']\n"
                                     "    instances: '2'\n"
                                     "    stateful: 'yes'\n"
                                     "    cap_add: NET_ADMIN\n"
                                     "    cpu_shares: 1.5\n"
                                     "    read_only: null\n"
                                     "    entrypoint: ~\n"
                                     "    shm_size: 64m\n"
                                     "    deploy: [ha]\n");
    EXPECT(errs, "services.a.image", 4, "string required");
    EXPECT(errs, "services.a.cpus", 5, "float required");
    EXPECT(errs, "services.a.mem_limit", 6, "string required");
    EXPECT(errs, "services.a.command", 7, "string required");
    EXPECT(errs, "services.a.instances", 8, "integer required");
    EXPECT(errs, "services.a.stateful", 9, "boolean required");
    EXPECT(errs, "services.a.cap_add", 10, "array required");
    EXPECT(errs, "services.a.cpu_shares", 11, "integer required");
    EXPECT(errs, "services.a.deploy", 15, "hash required");
    EXPECT_COUNT(errs, 9);
    fx_release(&f);
}

Test(stackschema, value_from_list_and_regex)
{
    struct fx f;
    json_t *errs = validate(&f, HEAD "services:\n"
                                     "  a:\n"
                                     "    image: x\n"
                                     "    network_mode: container:b\n"
                                     "    deploy:\n"
                                     "      strategy: spread\n"
                                     "      interval: 5m\n"
                                     "      min_health: 1\n"
                                     "      replicas: 2\n"
                                     "    health_check:\n"
                                     "      protocol: udp\n"
                                     "      uri: health\n"
                                     "      timeout: '10'\n"
                                     "    stop_grace_period: '10'\n"
                                     "    stop_signal: TERM\n"
                                     "    mem_limit: 12x\n");
    EXPECT(errs, "services.a.network_mode", 5, "value from list required");
    EXPECT(errs, "services.a.deploy.strategy", 7, "value from list required");
    EXPECT(errs, "services.a.deploy.interval", 8, "does not match regular expression");
    EXPECT(errs, "services.a.deploy.min_health", 9, "float required");
    EXPECT(errs, "services.a.deploy.replicas", 10, "key not expected");
    EXPECT(errs, "services.a.health_check.protocol", 12, "does not match regular expression");
    EXPECT(errs, "services.a.health_check.port", 11, "integer required");
    EXPECT(errs, "services.a.health_check.uri", 13, "does not match regular expression");
    EXPECT(errs, "services.a.health_check.timeout", 14, "integer required");
    EXPECT(errs, "services.a.stop_grace_period", 15, "does not match regular expression");
    EXPECT(errs, "services.a.stop_signal", 16, "is not valid");
    EXPECT(errs, "services.a.mem_limit", 17, "is not valid");
    EXPECT_COUNT(errs, 12);
    fx_release(&f);
}

Test(stackschema, valid_keys_pass)
{
    struct fx f;
    json_t *errs = validate(&f, HEAD "services:\n"
                                     "  a:\n"
                                     "    image: x\n"
                                     "    network_mode: host\n"
                                     "    deploy: {strategy: daemon, interval: 30, "
                                     "min_health: 0.5, wait_for_port: 80}\n"
                                     "    health_check: {protocol: http, port: 80, uri: /h, "
                                     "timeout: 5, interval: 10, initial_delay: 1}\n"
                                     "    stop_grace_period: 1m30s\n"
                                     "    stop_signal: SIGINT\n"
                                     "    memswap_limit: 1g\n"
                                     "    mem_swaplimit: 1g\n"
                                     "    cpus: 1.0\n"
                                     "    logging: {driver: syslog, options: {tag: x}}\n"
                                     "    build: {context: ., dockerfile: D, args: [A=1]}\n"
                                     "    only_if: [a, b]\n"
                                     "    skip_if: {x: 1}\n"
                                     "    depends_on: [b]\n"
                                     "    external_links: [other/c]\n"
                                     "    volumes_from: ['data-%s']\n"
                                     "    read_only: true\n");
    EXPECT_COUNT(errs, 0);
    fx_release(&f);
}

Test(stackschema, ports)
{
    struct fx f;
    json_t *errs = validate(&f, HEAD "services:\n"
                                     "  a:\n"
                                     "    image: x\n"
                                     "    ports:\n"
                                     "      - \"80:80\"\n"
                                     "      - \"80\"\n"
                                     "      - 22:22\n"
                                     "      - \"1.2.3.4:53:53/udp\"\n"
                                     "      - \"8080:80/sctp\"\n");
    EXPECT(errs, "services.a.ports", 7, "is not valid");
    EXPECT(errs, "services.a.ports", 8, "is not valid");
    EXPECT(errs, "services.a.ports", 10, "is not valid");
    EXPECT_COUNT(errs, 3);
    fx_release(&f);
}

Test(stackschema, affinity)
{
    struct fx f;
    json_t *errs = validate(&f, HEAD "services:\n"
                                     "  a:\n"
                                     "    image: x\n"
                                     "    affinity:\n"
                                     "      - node==n1\n"
                                     "      - label!=~az=1\n"
                                     "      - node=n1\n"
                                     "      - host==x\n"
                                     "      - service==/a(/\n"
                                     "      - container==/^web-\\d+$/\n"
                                     "  b:\n"
                                     "    image: x\n"
                                     "    affinity: node==n1\n");
    EXPECT(errs, "services.a.affinity", 8,
           "affinity contains invalid formats: node=n1, host==x, service==/a(/");
    EXPECT(errs, "services.b.affinity", 14, "affinity must be array");
    EXPECT_COUNT(errs, 2);
    fx_release(&f);
}

Test(stackschema, environment)
{
    struct fx f;
    json_t *errs = validate(&f, HEAD "services:\n"
                                     "  ok1:\n"
                                     "    environment: [A=1, B=]\n"
                                     "  ok2:\n"
                                     "    environment: {A: x, B: 1, C: true, D: ~}\n"
                                     "  bad1:\n"
                                     "    environment:\n"
                                     "      - A=1\n"
                                     "      - B\n"
                                     "  bad2:\n"
                                     "    environment: {A: 1.5}\n"
                                     "  bad3:\n"
                                     "    environment: A=1\n"
                                     "  bad4:\n"
                                     "    environment: ['=x']\n"
                                     "    env_file: 5\n");
    EXPECT(errs, "services.bad1.environment", 10, "is not valid");
    EXPECT(errs, "services.bad2.environment", 12, "is not valid");
    EXPECT(errs, "services.bad3.environment", 14, "is not valid");
    EXPECT(errs, "services.bad4.environment", 16, "is not valid");
    EXPECT(errs, "services.bad4.env_file", 17, "is not valid");
    EXPECT_COUNT(errs, 5);
    fx_release(&f);
}

Test(stackschema, links)
{
    struct fx f;
    json_t *errs = validate(&f, HEAD "services:\n"
                                     "  a:\n"
                                     "    image: x\n"
                                     "    links:\n"
                                     "      - b\n"
                                     "      - b:alias\n"
                                     "      - other/c:d\n"
                                     "      - {name: e, alias: f}\n"
                                     "      - 'a:b:c'\n"
                                     "      - 5\n"
                                     "  b:\n"
                                     "    links: ~\n"
                                     "  c:\n"
                                     "    links: b\n"
                                     "    depends_on: [a, 'b c']\n");
    EXPECT(errs, "services.a.links", 10, "is not valid");
    EXPECT(errs, "services.a.links", 11, "is not valid");
    EXPECT(errs, "services.c.links", 15, "is not valid");
    EXPECT(errs, "services.c.depends_on", 16, "is not valid");
    EXPECT_COUNT(errs, 4);
    fx_release(&f);
}

Test(stackschema, volumes)
{
    struct fx f;
    json_t *errs = validate(&f, HEAD "services:\n"
                                     "  a:\n"
                                     "    image: x\n"
                                     "    volumes:\n"
                                     "      - /data\n"
                                     "      - /host:/data:ro\n"
                                     "      - a:b\n"
                                     "      - /a:b\n"
                                     "      - data:/x\n"
                                     "      - nope:/y\n"
                                     "      - /a:/b:c:d\n"
                                     "volumes:\n"
                                     "  data:\n"
                                     "    external: true\n");
    EXPECT(errs, "services.a.volumes./data", 5, "mount point defined 2 times");
    EXPECT(errs, "services.a.volumes.a:b", 8, "volume definition not in right format: a:b");
    EXPECT(errs, "services.a.volumes./a:b", 9, "volume definition not in right format: /a:b");
    EXPECT(errs, "services.a.volumes.nope", 11, "not found in top level volumes list");
    EXPECT(errs, "services.a.volumes./a:/b:c:d", 12,
           "volume definition not in right format: /a:/b:c:d");
    EXPECT_COUNT(errs, 5);
    fx_release(&f);

    errs = validate(&f, HEAD "services:\n"
                             "  a:\n"
                             "    image: x\n"
                             "    volumes: [data:/x]\n");
    EXPECT(errs, "services.a.volumes.data:/x", 5,
           "defines volume name, but file does not contain volumes definitions");
    EXPECT_COUNT(errs, 1);
    fx_release(&f);
}

Test(stackschema, hooks)
{
    struct fx f;
    json_t *errs = validate(&f, HEAD "services:\n"
                                     "  a:\n"
                                     "    image: x\n"
                                     "    hooks:\n"
                                     "      pre_build:\n"
                                     "        - {name: b, cmd: make}\n"
                                     "        - {name: c}\n"
                                     "      post_start:\n"
                                     "        - {name: s, cmd: x, instances: '*', oneshot: true}\n"
                                     "        - {name: t, cmd: x, instances: 'all'}\n"
                                     "        - {name: u, cmd: x, instances: 2, bogus: 1}\n"
                                     "        - {name: v, cmd: x}\n"
                                     "      pre_stop: x\n"
                                     "      post_stop: []\n"
                                     "  b:\n"
                                     "    hooks: [x]\n");
    EXPECT(errs, "services.a.hooks.pre_build.cmd", 8, "string required");
    EXPECT(errs, "services.a.hooks.post_start.instances", 11, "is not valid");
    EXPECT(errs, "services.a.hooks.post_start.bogus", 12, "key not expected");
    EXPECT(errs, "services.a.hooks.post_start.instances", 13, "is not valid");
    EXPECT(errs, "services.a.hooks.pre_stop", 14, "must be an array");
    EXPECT(errs, "services.a.hooks.post_stop", 15, "invalid hook post_stop");
    EXPECT(errs, "services.b.hooks", 17, "must be a mapping, not Array");
    EXPECT_COUNT(errs, 7);
    fx_release(&f);
}

Test(stackschema, secrets_and_certificates_every_item)
{
    struct fx f;
    json_t *errs = validate(&f, HEAD "services:\n"
                                     "  a:\n"
                                     "    image: x\n"
                                     "    secrets:\n"
                                     "      - {secret: s1, name: A, type: env}\n"
                                     "      - {secret: s2, name: 5, type: env}\n"
                                     "      - {secret: s3, type: env, extra: 1}\n"
                                     "      - {secret: s4, name: D, type: env}\n"
                                     "    certificates:\n"
                                     "      - {subject: a.com, name: C}\n"
                                     "      - x\n"
                                     "  b:\n"
                                     "    secrets: {a: b}\n"
                                     "    certificates: x\n");
    /* Quirk fixed: every invalid item is reported, not only the last one. */
    EXPECT(errs, "services.a.secrets.name", 7, "string required");
    EXPECT(errs, "services.a.secrets.name", 8, "string required");
    EXPECT(errs, "services.a.secrets.extra", 8, "key not expected");
    EXPECT(errs, "services.a.certificates.type", 11, "string required");
    EXPECT(errs, "services.a.certificates", 12, "hash required");
    EXPECT(errs, "services.b.secrets", 14, "secrets must be array");
    EXPECT(errs, "services.b.certificates", 15, "certificates must be array");
    EXPECT_COUNT(errs, 7);
    fx_release(&f);
}

Test(stackschema, logging_build_extends)
{
    struct fx f;
    json_t *errs = validate(&f, HEAD "services:\n"
                                     "  a:\n"
                                     "    image: x\n"
                                     "    logging: {driver: 5, options: x, opts: 1}\n"
                                     "    build: 5\n"
                                     "    extends: 5\n"
                                     "  b:\n"
                                     "    build: {dockerfile: D, args: x, ctx: .}\n"
                                     "    extends: {file: f.yml, srv: a}\n"
                                     "  c:\n"
                                     "    extends: {stack: foo/bar, service: a}\n"
                                     "    command: \"echo 'unterminated\"\n");
    EXPECT(errs, "services.a.logging.driver", 5, "string required");
    EXPECT(errs, "services.a.logging.options", 5, "is not valid");
    EXPECT(errs, "services.a.logging.opts", 5, "key not expected");
    EXPECT(errs, "services.a.build", 6, "build must be string or hash");
    EXPECT(errs, "services.a.extends", 7, "extends must be string or hash");
    EXPECT(errs, "services.b.build.context", 9, "string required");
    EXPECT(errs, "services.b.build.args", 9, "is not valid");
    EXPECT(errs, "services.b.build.ctx", 9, "key not expected");
    EXPECT(errs, "services.b.extends.service", 10, "string required");
    EXPECT(errs, "services.b.extends.srv", 10, "key not expected");
    EXPECT(errs, "services.c.extends.stack", 12,
           "extending a service of a registry stack is not supported (use file:)");
    EXPECT(errs, "services.c.command", 13, "unmatched single quote in 'echo 'unterminated'");
    EXPECT_COUNT(errs, 12);
    fx_release(&f);
}

Test(stackschema, top_level)
{
    struct fx f;
    json_t *errs = validate(&f, "stack: acme/My_Stack:1.0\n"
                                "meta: {tags: [a]}\n"
                                "networks: {}\n"
                                "foo: 1\n"
                                "labels: [a=b, Bad=x]\n"
                                "expose: [a]\n"
                                "depends:\n"
                                "  a: {stack: x/y}\n"
                                "  b: {stack: 5, variables: 1, other: 2}\n"
                                "services:\n"
                                "  a:\n"
                                "    image: x\n"
                                "  My_App:\n"
                                "    image: x\n"
                                "  c: [x]\n");
    EXPECT(f.cx.notes, "foo", 4, "unknown top level key");
    EXPECT(f.cx.notes, "networks", 3,
           "Kontena does not support multiple networks yet. You can reference services with "
           "Kontena's internal DNS (service_name.kontena.local)");
    EXPECT(f.cx.notes, "stack", 1,
           "A stack name should only include a-z, 0-9 and - characters and not start with the "
           "- character");
    EXPECT(f.cx.notes, "services.My_App.name", 13,
           "A service name should only include a-z, 0-9 and - characters and not start with "
           "the - character");
    EXPECT_COUNT(f.cx.notes, 4); /* no note for meta: Quirk fixed */
    EXPECT(errs, "labels", 5, "is not valid");
    EXPECT(errs, "expose", 6, "string required");
    EXPECT(errs, "depends.a", 8, "is defined both as service and dependency name");
    EXPECT(errs, "depends.b.stack", 9, "string required");
    EXPECT(errs, "depends.b.variables", 9, "is not valid");
    EXPECT(errs, "depends.b.other", 9, "key not expected");
    EXPECT(errs, "services.c.options", 15, "must be a mapping not Array");
    EXPECT_COUNT(errs, 7);
    fx_release(&f);
}

Test(stackschema, whole_file_checks)
{
    struct fx f;
    json_t *errs = validate(&f, "version: 1.0\n");
    EXPECT(errs, "stack", 0, "Required field missing");
    EXPECT(errs, "file", 0, "does not list any services or volumes");
    EXPECT(f.cx.notes, "file", 0, "does not define any services");
    EXPECT_COUNT(errs, 2);
    fx_release(&f);

    errs = validate(&f, HEAD "services: [a]\nvolumes: x\ndepends: [a]\n");
    EXPECT(errs, "services", 2, "must be a mapping, not Array");
    EXPECT(errs, "volumes", 3, "must be a mapping, not String");
    EXPECT(errs, "depends", 4, "Must be a mapping, not Array");
    EXPECT(errs, "file", 0, "does not list any services or volumes");
    EXPECT_COUNT(errs, 4);
    fx_release(&f);

    /* An extends file needs no stack: */
    fx_init(&f, "services:\n  a:\n    image: x\n");
    sf_schema_validate(&f.cx, f.doc, 1);
    EXPECT_COUNT(f.cx.errors, 0);
    fx_release(&f);
}

Test(stackschema, top_level_volumes)
{
    struct fx f;
    json_t *errs = validate(&f, HEAD "volumes:\n"
                                     "  a: {external: true}\n"
                                     "  b: {external: {name: real}}\n"
                                     "  c: {external: false}\n"
                                     "  d: {driver: local, scope: grid}\n"
                                     "  e: x\n"
                                     "  f: {external: {nm: x}}\n");
    EXPECT(errs, "volumes.c.external", 5, "is not valid");
    EXPECT(errs, "volumes.d.driver", 6, "key not expected");
    EXPECT(errs, "volumes.d.scope", 6, "key not expected");
    EXPECT(errs, "volumes.e.options", 7, "must be a mapping, not String");
    EXPECT(errs, "volumes.f.external", 8, "is not valid");
    EXPECT_COUNT(errs, 5);
    fx_release(&f);
}

/* ---- conversion ---------------------------------------------------------------------- */

static json_t *convert(struct fx *f, const char *yaml, enum status want)
{
    struct err e = ERR_INIT;
    json_t *payload = json_object();

    fx_init(f, yaml);
    sf_schema_validate(&f->cx, f->doc, 0);
    {
        char *d = dump(f->cx.errors);
        cr_assert_eq(json_array_size(f->cx.errors), 0, "schema errors: %s", d);
        free(d);
    }
    cr_assert_eq(sf_convert(&f->cx, f->doc, payload, &e), want, "convert: %s", e.msg);
    return payload;
}

static void expect_json(const json_t *got, const char *want_text)
{
    json_error_t je;
    json_t *want = json_loads(want_text, JSON_DECODE_ANY, &je);
    char *g, *w;

    cr_assert_not_null(want, "bad expected JSON: %s", je.text);
    g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    cr_expect_str_eq(g, w);
    free(g);
    free(w);
    json_decref(want);
}

Test(stackconvert, minimal_service_defaults)
{
    struct fx f;
    json_t *p = convert(&f, HEAD "services:\n  redis:\n    image: redis\n", ST_OK);

    expect_json(p, "{\"expose\":null,\"labels\":[],\"volumes\":[],\"services\":[{"
                   "\"name\":\"redis\",\"image\":\"redis:latest\",\"instances\":null,"
                   "\"env\":null,\"links\":[],\"external_links\":[],\"ports\":[],"
                   "\"volumes\":[],\"volumes_from\":[],\"affinity\":[],\"stateful\":false,"
                   "\"log_driver\":null,\"log_opts\":null,"
                   "\"deploy_opts\":{\"wait_for_port\":null,\"min_health\":null,"
                   "\"interval\":null},\"hooks\":{},"
                   "\"health_check\":{\"port\":null,\"protocol\":null,\"uri\":null,"
                   "\"timeout\":null,\"interval\":null,\"initial_delay\":null},"
                   "\"read_only\":false}]}");
    json_decref(p);
    fx_release(&f);
}

Test(stackconvert, every_key)
{
    struct fx f;
    json_t *p = convert(&f,
                        HEAD "expose: web\n"
                             "labels: [a=b]\n"
                             "services:\n"
                             "  web:\n"
                             "    image: myreg:5000/app\n"
                             "    instances: 2\n"
                             "    command: sh -c 'echo \"a b\"' x\\ y\n"
                             "    entrypoint: /bin/sh\n"
                             "    environment: {A: 1, B: true, C: ~, D: x}\n"
                             "    links: [db, 'other/c:d', {name: e}]\n"
                             "    depends_on: [db, f]\n"
                             "    external_links: [x/y]\n"
                             "    ports: ['80:8080', '1.2.3.4:53:53/udp']\n"
                             "    volumes: [/data, 'v:/v:ro']\n"
                             "    volumes_from: ['d-%s']\n"
                             "    affinity: ['node==n1']\n"
                             "    user: nobody\n"
                             "    stateful: true\n"
                             "    privileged: false\n"
                             "    cap_add: [NET_ADMIN]\n"
                             "    cap_drop: [ALL]\n"
                             "    network_mode: host\n"
                             "    pid: host\n"
                             "    mem_limit: 512m\n"
                             "    memswap_limit: 1g\n"
                             "    shm_size: 64k\n"
                             "    cpus: 0.5\n"
                             "    cpu_shares: 512\n"
                             "    logging: {driver: syslog, options: {tag: t}}\n"
                             "    deploy: {strategy: daemon, wait_for_port: 80, "
                             "min_health: 0.5, interval: 5min}\n"
                             "    hooks:\n"
                             "      post_start: [{name: n, cmd: c, instances: 1}]\n"
                             "    secrets: [{secret: s, name: S, type: env}]\n"
                             "    certificates: [{subject: a.com, name: C, type: env}]\n"
                             "    health_check: {protocol: http, port: 80, uri: /h}\n"
                             "    stop_signal: SIGINT\n"
                             "    stop_grace_period: 1m30s\n"
                             "    read_only: true\n"
                             "volumes:\n"
                             "  v: {external: {name: real}}\n"
                             "  w: {external: true}\n",
                        ST_OK);
    json_t *s = json_array_get(json_object_get(p, "services"), 0);
    expect_json(s,
                "{\"name\":\"web\",\"image\":\"myreg:5000/app\",\"instances\":2,"
                "\"env\":[\"A=1\",\"B=true\",\"C=\",\"D=x\"],"
                "\"links\":[{\"name\":\"db\",\"alias\":\"db\"},"
                "{\"name\":\"other/c\",\"alias\":\"d\"},{\"name\":\"e\",\"alias\":\"e\"},"
                "{\"name\":\"f\",\"alias\":\"f\"}],"
                "\"external_links\":[{\"name\":\"x/y\",\"alias\":\"x/y\"}],"
                "\"ports\":[{\"ip\":\"0.0.0.0\",\"node_port\":80,\"container_port\":8080,"
                "\"protocol\":\"tcp\"},{\"ip\":\"1.2.3.4\",\"node_port\":53,"
                "\"container_port\":53,\"protocol\":\"udp\"}],"
                "\"volumes\":[\"/data\",\"v:/v:ro\"],\"volumes_from\":[\"d-%s\"],"
                "\"cmd\":[\"sh\",\"-c\",\"echo \\\"a b\\\"\",\"x y\"],"
                "\"entrypoint\":\"/bin/sh\",\"affinity\":[\"node==n1\"],\"user\":\"nobody\","
                "\"stateful\":true,\"privileged\":false,\"cap_add\":[\"NET_ADMIN\"],"
                "\"cap_drop\":[\"ALL\"],\"net\":\"host\",\"pid\":\"host\","
                "\"memory\":536870912,\"memory_swap\":1073741824,\"shm_size\":65536,"
                "\"cpus\":0.5,\"cpu_shares\":512,\"log_driver\":\"syslog\","
                "\"log_opts\":{\"tag\":\"t\"},\"strategy\":\"daemon\","
                "\"deploy_opts\":{\"wait_for_port\":80,\"min_health\":0.5,\"interval\":300},"
                "\"hooks\":{\"post_start\":[{\"name\":\"n\",\"cmd\":\"c\",\"instances\":1}]},"
                "\"secrets\":[{\"secret\":\"s\",\"name\":\"S\",\"type\":\"env\"}],"
                "\"certificates\":[{\"subject\":\"a.com\",\"name\":\"C\",\"type\":\"env\"}],"
                "\"health_check\":{\"port\":80,\"protocol\":\"http\",\"uri\":\"/h\","
                "\"timeout\":null,\"interval\":null,\"initial_delay\":null},"
                "\"stop_signal\":\"SIGINT\",\"stop_grace_period\":\"1m30s\","
                "\"read_only\":true}");
    expect_json(json_object_get(p, "volumes"),
                "[{\"name\":\"v\",\"external\":\"real\"},{\"name\":\"w\",\"external\":\"w\"}]");
    cr_expect_str_eq(json_string_value(json_object_get(p, "expose")), "web");
    expect_json(json_object_get(p, "labels"), "[\"a=b\"]");
    EXPECT_COUNT(f.cx.errors, 0);
    json_decref(p);
    fx_release(&f);
}

Test(stackconvert, interval_integer_and_zero)
{
    struct fx f;
    json_t *p = convert(&f, HEAD "services:\n"
                                 "  a: {image: x, deploy: {interval: 30}}\n"
                                 "  b: {image: x, deploy: {interval: '0'}}\n"
                                 "  c: {image: x, deploy: {interval: 2h}, mem_swaplimit: 1k}\n",
                        ST_OK);
    json_t *sv = json_object_get(p, "services");
    expect_json(json_object_get(json_object_get(json_array_get(sv, 0), "deploy_opts"),
                                "interval"),
                "30");
    cr_expect(json_is_null(json_object_get(
        json_object_get(json_array_get(sv, 1), "deploy_opts"), "interval")));
    expect_json(json_object_get(json_object_get(json_array_get(sv, 2), "deploy_opts"),
                                "interval"),
                "7200");
    expect_json(json_object_get(json_array_get(sv, 2), "memory_swap"), "1024");
    json_decref(p);
    fx_release(&f);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "mkdir -p %s", dir);
    cr_assert_eq(system(path), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    cr_assert_not_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void rm_dir(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

Test(stackconvert, env_file_merge_first_wins)
{
    struct fx f;
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/h2-stackschema-%d", (int)getpid());
    write_file(dir, "a.env", "# comment\n\n  A=from-file  \nE=1\nF=a\n");
    write_file(dir, "b.env", "F=b\nG=2\n");
    json_t *p = convert(&f, HEAD "services:\n"
                                 "  a:\n"
                                 "    image: x\n"
                                 "    environment: [A=1, B=2, A=3]\n"
                                 "    env_file: [a.env, b.env]\n"
                                 "    build: {context: sub, args: [X=1=2], dockerfile: D}\n",
                        ST_OK);
    json_t *s = json_array_get(json_object_get(p, "services"), 0);
    expect_json(json_object_get(s, "env"), "[\"A=1\",\"B=2\",\"E=1\",\"F=a\",\"G=2\"]");
    char *want = xasprintf("{\"context\":\"%s/sub\",\"dockerfile\":\"D\",\"args\":{\"X\":\"1=2\"}}",
                           dir);
    expect_json(json_object_get(s, "build"), want);
    free(want);
    json_decref(p);
    fx_release(&f);

    /* An unreadable env_file is a hard failure. */
    p = convert(&f, HEAD "services:\n  a: {image: x, env_file: nope.env}\n", ST_IO);
    json_decref(p);
    fx_release(&f);
    rm_dir(dir);
}

Test(stackconvert, extends_same_file_inherits_everything)
{
    struct fx f;
    json_t *p = convert(&f, HEAD "services:\n"
                                 "  base:\n"
                                 "    image: app\n"
                                 "    command: run it\n"
                                 "    mem_limit: 1m\n"
                                 "    deploy: {strategy: daemon, min_health: 0.2}\n"
                                 "    logging: {driver: none}\n"
                                 "    environment: [A=1, B=1]\n"
                                 "    secrets: [{secret: s1, name: A, type: env},"
                                 " {secret: s2, name: B, type: env}]\n"
                                 "    entrypoint: foo\n"
                                 "    only_if: never\n"
                                 "  child:\n"
                                 "    extends: base\n"
                                 "    environment: {B: 2, C: 3}\n"
                                 "    secrets: [{secret: s2, name: BB, type: env}]\n"
                                 "    instances: 3\n",
                        ST_OK);
    json_t *sv = json_object_get(p, "services");
    /* base is skipped by its only_if (no such variable), child is not: conditions are not
     * inherited. */
    cr_assert_eq(json_array_size(sv), 1);
    json_t *s = json_array_get(sv, 0);
    cr_expect_str_eq(json_string_value(json_object_get(s, "name")), "child");
    cr_expect_str_eq(json_string_value(json_object_get(s, "image")), "app:latest");
    cr_expect_str_eq(json_string_value(json_object_get(s, "entrypoint")), "foo");
    expect_json(json_object_get(s, "cmd"), "[\"run\",\"it\"]");
    expect_json(json_object_get(s, "memory"), "1048576");
    expect_json(json_object_get(s, "strategy"), "\"daemon\"");
    expect_json(json_object_get(s, "deploy_opts"),
                "{\"wait_for_port\":null,\"min_health\":0.2,\"interval\":null}");
    expect_json(json_object_get(s, "log_driver"), "\"none\"");
    expect_json(json_object_get(s, "env"), "[\"B=2\",\"C=3\",\"A=1\"]");
    expect_json(json_object_get(s, "secrets"),
                "[{\"secret\":\"s2\",\"name\":\"BB\",\"type\":\"env\"},"
                "{\"secret\":\"s1\",\"name\":\"A\",\"type\":\"env\"}]");
    expect_json(json_object_get(s, "instances"), "3");
    json_decref(p);
    fx_release(&f);

    /* Not found, and cycles: hard failures. */
    p = convert(&f, HEAD "services:\n  a: {extends: nope}\n", ST_NOTFOUND);
    json_decref(p);
    fx_release(&f);
    p = convert(&f, HEAD "services:\n  a: {extends: b}\n  b: {extends: a}\n", ST_INVALID);
    json_decref(p);
    fx_release(&f);
}

Test(stackconvert, extends_other_file)
{
    struct fx f;
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/h2-stackschema-%d", (int)getpid());
    write_file(dir, "docker-compose.yml",
               "version: '2'\n"
               "services:\n"
               "  web:\n"
               "    image: acme/web:2\n"
               "    entrypoint: foo2\n"
               "    env_file: web.env\n"
               "    environment: [MODE=dev]\n"
               "    ports: ['8080:80']\n");
    write_file(dir, "web.env", "FROM_FILE=1\n");
    write_file(dir, "bad.yml", "services:\n  web:\n    image: x\n    omg: 1\n");
    json_t *p = convert(&f, HEAD "services:\n"
                                 "  web:\n"
                                 "    extends:\n"
                                 "      file: docker-compose.yml\n"
                                 "      service: web\n"
                                 "    instances: 3\n"
                                 "    environment: [MODE=prod]\n",
                        ST_OK);
    json_t *s = json_array_get(json_object_get(p, "services"), 0);
    expect_json(s, "{\"name\":\"web\",\"image\":\"acme/web:2\",\"instances\":3,"
                   "\"env\":[\"MODE=prod\",\"FROM_FILE=1\"],\"links\":[],"
                   "\"external_links\":[],\"ports\":[{\"ip\":\"0.0.0.0\",\"node_port\":8080,"
                   "\"container_port\":80,\"protocol\":\"tcp\"}],\"volumes\":[],"
                   "\"volumes_from\":[],\"entrypoint\":\"foo2\",\"affinity\":[],"
                   "\"stateful\":false,\"log_driver\":null,\"log_opts\":null,"
                   "\"deploy_opts\":{\"wait_for_port\":null,\"min_health\":null,"
                   "\"interval\":null},\"hooks\":{},"
                   "\"health_check\":{\"port\":null,\"protocol\":null,\"uri\":null,"
                   "\"timeout\":null,\"interval\":null,\"initial_delay\":null},"
                   "\"read_only\":false}");
    json_decref(p);
    fx_release(&f);

    /* Errors of the extended file are reported under its basename. */
    p = convert(&f, HEAD "services:\n  web:\n    extends: {file: bad.yml, service: web}\n",
                ST_OK);
    EXPECT(f.cx.errors, "services.web.omg", 4, "key not expected");
    cr_expect_str_eq(
        json_string_value(json_object_get(json_array_get(f.cx.errors, 0), "file")), "bad.yml");
    cr_expect_eq(json_array_size(json_object_get(p, "services")), 0);
    json_decref(p);
    fx_release(&f);

    p = convert(&f, HEAD "services:\n  web:\n    extends: {file: missing.yml, service: web}\n",
                ST_NOTFOUND);
    json_decref(p);
    fx_release(&f);
    rm_dir(dir);
}

Test(stackconvert, image_missing_and_expose)
{
    struct fx f;
    json_t *p = convert(&f, HEAD "expose: nope\n"
                                 "services:\n"
                                 "  a:\n"
                                 "    instances: 1\n",
                        ST_OK);
    EXPECT(f.cx.errors, "services.a.image", 4, "image is missing");
    EXPECT(f.cx.errors, "expose", 2, "nope is not defined in the services array");
    EXPECT_COUNT(f.cx.errors, 2);
    json_decref(p);
    fx_release(&f);
}

Test(stackconvert, only_if_skip_if)
{
    struct fx f;
    struct err e = ERR_INIT;
    json_t *defs = json_loads("{\"tls\": {\"type\": \"boolean\", \"value\": true},"
                              " \"dbg\": {\"type\": \"boolean\", \"value\": false},"
                              " \"db\": {\"type\": \"string\", \"value\": \"galera\"},"
                              " \"n\": {\"type\": \"integer\", \"value\": 2}}",
                              0, NULL);
    json_t *verrs = NULL, *payload = json_object();

    fx_init(&f, HEAD "services:\n"
                     "  a: {image: x, only_if: tls}\n"
                     "  b: {image: x, only_if: dbg}\n"
                     "  c: {image: x, only_if: [tls, db]}\n"
                     "  d: {image: x, only_if: [tls, dbg]}\n"
                     "  e: {image: x, only_if: {db: galera, n: 2}}\n"
                     "  f: {image: x, only_if: {n: '2'}}\n"
                     "  g: {image: x, skip_if: dbg}\n"
                     "  h: {image: x, skip_if: [dbg, tls]}\n"
                     "  i: {image: x, skip_if: {db: mysql}}\n"
                     "  j: {image: x, skip_if: undeclared}\n");
    f.cx.vars = vars_new(defs, NULL, &e);
    cr_assert_not_null(f.cx.vars, "%s", e.msg);
    cr_assert_eq(vars_run(f.cx.vars, NULL, &verrs, &e), ST_OK, "%s", e.msg);
    sf_schema_validate(&f.cx, f.doc, 0);
    EXPECT_COUNT(f.cx.errors, 0);
    cr_assert_eq(sf_convert(&f.cx, f.doc, payload, &e), ST_OK, "%s", e.msg);
    char names[16] = "";
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(payload, "services"), i, s)
        strncat(names, json_string_value(json_object_get(s, "name")), 1);
    /* f: the mapping form is type-sensitive ('2' is not 2). */
    cr_expect_str_eq(names, "acegij");
    json_decref(payload);
    json_decref(verrs);
    json_decref(defs);
    vars_free(f.cx.vars);
    f.cx.vars = NULL;
    fx_release(&f);
}

Test(stackconvert, shell_split)
{
    struct err e = ERR_INIT;
    json_t *w;

    w = sf_shell_split("redis-server --appendonly yes", NULL);
    expect_json(w, "[\"redis-server\",\"--appendonly\",\"yes\"]");
    json_decref(w);
    w = sf_shell_split("  a\\ b 'c d' \"e \\\"f\\\" \\x\" ''  g\\", NULL);
    expect_json(w, "[\"a b\",\"c d\",\"e \\\"f\\\" \\\\x\",\"\",\"g\\\\\"]");
    json_decref(w);
    w = sf_shell_split("", NULL);
    expect_json(w, "[]");
    json_decref(w);
    w = sf_shell_split("a'b'\"c\"d", NULL);
    expect_json(w, "[\"abcd\"]");
    json_decref(w);
    cr_expect_null(sf_shell_split("echo \"x", &e));
    cr_expect_str_eq(e.msg, "unmatched double quote in 'echo \"x'");
}

/* ---- corpus: tests/stackfiles/svc-*.yml ------------------------------------------------
 * Each case: svc-X.yml; svc-X.errors / svc-X.notes hold the expected findings, one per line
 * as "<file>: <path> (line N): <message>" (no file = none expected); svc-X.json the expected
 * payload part built by sf_convert (services, volumes, expose, labels) when the file is
 * valid. Files next to a case live in svc-X.d/. */


static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = xmalloc((size_t)n + 1);
    buf[fread(buf, 1, (size_t)n, f)] = '\0';
    fclose(f);
    return buf;
}

static char *format_findings(const json_t *list)
{
    char *out = xstrdup("");
    size_t i;
    json_t *x;

    json_array_foreach(list, i, x) {
        char *n = xasprintf("%s%s: %s (line %d): %s\n", out,
                            json_string_value(json_object_get(x, "file")),
                            json_string_value(json_object_get(x, "path")),
                            (int)json_integer_value(json_object_get(x, "line")),
                            json_string_value(json_object_get(x, "message")));
        free(out);
        out = n;
    }
    return out;
}

static int corpus_case(const char *yml)
{
    char *dir = xstrdup(yml), *base = xstrdup(yml), *stem = xstrndup(yml, strlen(yml) - 4);
    char *text = slurp(yml), *path, *want, *got;
    struct sf_ctx cx;
    struct ynode *doc = NULL;
    struct err e = ERR_INIT;
    json_t *payload = json_object();
    int ok = 1;

    memset(&cx, 0, sizeof(cx));
    cx.path = yml;
    cx.base = basename(base);
    cx.dir = dirname(dir);
    cx.stack_name = "test";
    cx.errors = json_array();
    cx.notes = json_array();
    cx.load_doc = test_load_doc;
    cr_assert_eq(ynode_parse(text, strlen(text), &doc, &e), ST_OK, "%s: %s", yml, e.msg);
    sf_schema_validate(&cx, doc, 0);
    if (json_array_size(cx.errors) == 0)
        cr_expect_eq(sf_convert(&cx, doc, payload, &e), ST_OK, "%s: %s", yml, e.msg);

    const char *kinds[] = {"errors", "notes"};
    json_t *lists[] = {cx.errors, cx.notes};
    for (int k = 0; k < 2; k++) {
        path = xasprintf("%s.%s", stem, kinds[k]);
        want = slurp(path);
        got = format_findings(lists[k]);
        if (strcmp(want ? want : "", got) != 0) {
            cr_log_error("%s: %s differ\n--- want\n%s--- got\n%s", yml, kinds[k],
                         want ? want : "", got);
            ok = 0;
        }
        free(want);
        free(got);
        free(path);
    }
    path = xasprintf("%s.json", stem);
    want = slurp(path);
    if (want) {
        json_t *w = json_loads(want, 0, NULL);
        if (!w || !json_equal(w, payload)) {
            got = json_dumps(payload, JSON_INDENT(2));
            cr_log_error("%s: payload differs, got\n%s", yml, got);
            free(got);
            ok = 0;
        }
        json_decref(w);
        free(want);
    }
    free(path);
    json_decref(payload);
    json_decref(cx.errors);
    json_decref(cx.notes);
    ynode_free(doc);
    free(text);
    free(stem);
    free(dir);
    free(base);
    return ok;
}

Test(stackcorpus, svc_cases)
{
    char *src = xstrdup(__FILE__);
    char *pattern = xasprintf("%s/../stackfiles/svc-*.yml", dirname(src));
    glob_t g;
    int failed = 0;

    cr_assert_eq(glob(pattern, 0, NULL, &g), 0, "no corpus at %s", pattern);
    cr_expect_geq(g.gl_pathc, 20);
    for (size_t i = 0; i < g.gl_pathc; i++)
        failed += !corpus_case(g.gl_pathv[i]);
    cr_expect_eq(failed, 0, "%d corpus cases failed", failed);
    globfree(&g);
    free(pattern);
    free(src);
}
