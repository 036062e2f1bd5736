/* Stacks, services and deploy records of kontena-apiserver over HTTP, against a real etcd and
 * a real API server per test. What the server stored is checked in etcd directly: a stack is
 * written completely or not at all. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/api_fixture.h"
#include "tests/support/http.h"

TestSuite(stacks, .init = api_fixture_setup, .fini = api_fixture_teardown, .timeout = 90);

static char *tok;             /* admin token */
static struct http_reply rep; /* last reply, released by the next call */

/* JSON written with single quotes for readability: 'x' -> "x". */
static char *jq(const char *s)
{
    char *out = xstrdup(s);
    for (char *p = out; *p; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

/* method path [body-format ...]: sends with `tok`, leaves the reply in rep. */
static long call_as(const char *token, const char *method, const char *path, const char *fmt,
                    ...)
{
    char *u = xasprintf("%s%s", api.url, path), *body = NULL, *raw = NULL;
    va_list ap;

    http_reply_release(&rep);
    memset(&rep, 0, sizeof(rep));
    if (fmt) {
        va_start(ap, fmt);
        if (vasprintf(&raw, fmt, ap) < 0)
            cr_assert_fail("vasprintf");
        va_end(ap);
        body = jq(raw);
        free(raw);
    }
    cr_assert_eq(http_do(method, u, token, body, (size_t)-1, NULL, &rep), 0, "%s %s", method, path);
    free(u);
    free(body);
    return rep.status;
}

#define CALL(m, p, ...) call_as(tok, m, p, __VA_ARGS__)
#define EXPECT(code, m, p, ...)                                                                    \
    do {                                                                                           \
        long got_ = CALL(m, p, __VA_ARGS__);                                                       \
        cr_assert_eq(got_, code, "%s %s -> %ld %s", m, p, got_, rep.body);                       \
    } while (0)

static json_t *jget(const char *path) /* dotted path into rep.json */
{
    char buf[256], *save = NULL, *part;
    json_t *cur = rep.json;

    snprintf(buf, sizeof(buf), "%s", path);
    for (part = strtok_r(buf, ".", &save); part && cur; part = strtok_r(NULL, ".", &save)) {
        if (json_is_array(cur))
            cur = json_array_get(cur, (size_t)atoi(part));
        else
            cur = json_object_get(cur, part);
    }
    return cur;
}

static const char *jgs(const char *path)
{
    const char *s = json_string_value(jget(path));
    return s ? s : "(none)";
}

static long long jgi(const char *path)
{
    return (long long)json_integer_value(jget(path));
}

static char *login(const char *user, const char *pw)
{
    char *t;
    cr_assert_eq(call_as(NULL, "POST", "/oauth2/token",
                         "{'grant_type':'password','username':'%s','password':'%s'}", user, pw),
                 201, "login %s: %s", user, rep.body);
    t = xstrdup(json_string_value(json_object_get(rep.json, "access_token")));
    return t;
}

static int64_t etcd_count(const char *prefix)
{
    struct etcd_opts o = {.endpoints = etcd.endpoint};
    struct etcd *c = etcd_create(&o, NULL);
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX, .count_only = 1};
    struct etcd_range_result res = {0};
    int64_t n;

    cr_assert_not_null(c);
    cr_assert_eq(etcd_range(c, prefix, &ro, &res, NULL), ST_OK);
    n = res.count;
    etcd_range_result_release(&res);
    etcd_destroy(c);
    return n;
}

static void etcd_put_str(const char *key, const char *value)
{
    struct etcd_opts o = {.endpoints = etcd.endpoint};
    struct etcd *c = etcd_create(&o, NULL);
    cr_assert_eq(etcd_put(c, key, value, strlen(value), 0, NULL, NULL, NULL), ST_OK);
    etcd_destroy(c);
}

static void setup_grid(void)
{
    tok = login("admin", api.admin_password);
    EXPECT(201, "POST", "/v1/grids", "{'name':'grd'}");
}

static void finish(void)
{
    http_reply_release(&rep);
    memset(&rep, 0, sizeof(rep));
    FREE_AND_NULL(tok);
}

/* A stack "web" of redis + app (app links redis). */
#define WEB_STACK                                                                                  \
    "{'name':'web','stack':'test/web','version':'1.0.0','source':'...','labels':['a=b'],"          \
    "'variables':{'x':1},'metadata':{'tags':['t1']},'expose':'app','services':["                   \
    "{'name':'redis','image':'redis:3-alpine','stateful':true},"                                  \
    "{'name':'app','image':'nginx:latest','instances':2,'links':[{'name':'redis','alias':'db'}]," \
    "'ports':[{'node_port':80,'container_port':80}],'env':['A=1','B=2']}]}"

/* ---- install, show, list ---- */

API_TEST(stacks, install_writes_stack_and_services_and_shows_them)
{
    setup_grid();
    EXPECT(201, "POST", "/v1/grids/grd/stacks", WEB_STACK);
    cr_assert_str_eq(jgs("id"), "grd/web");
    cr_assert_str_eq(jgs("state"), "initialized");
    cr_assert_eq(jgi("revision"), 1);
    cr_assert_str_eq(jgs("expose"), "app");
    cr_assert_eq(json_array_size(jget("services")), 2);
    cr_assert(json_is_null(jget("parent")));
    cr_assert_eq(etcd_count("/kontena/stacks/grd/web"), 1);
    cr_assert_eq(etcd_count("/kontena/services/grd/web/"), 2);

    EXPECT(200, "GET", "/v1/stacks/grd/web", NULL);
    cr_assert_str_eq(jgs("stack"), "test/web");
    cr_assert_str_eq(jgs("labels.0"), "a=b");
    cr_assert_str_eq(jgs("metadata.tags.0"), "t1");
    {
        json_t *svcs = jget("services"), *s;
        size_t i;
        int seen = 0;
        json_array_foreach(svcs, i, s)
        {
            const char *n = json_string_value(json_object_get(s, "name"));
            if (strcmp(n, "app") == 0) {
                json_t *l = json_array_get(json_object_get(s, "links"), 0);
                cr_assert_str_eq(json_string_value(json_object_get(l, "id")), "grd/web/redis");
                cr_assert_str_eq(json_string_value(json_object_get(l, "alias")), "db");
                cr_assert_str_eq(json_string_value(json_object_get(s, "dns")),
                                 "app.web.grd.kontena.local");
                cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "initialized");
                cr_assert_eq(json_integer_value(json_object_get(s, "revision")), 1);
                cr_assert(json_is_null(json_object_get(s, "stack_revision")));
                cr_assert_str_eq(json_string_value(json_object_get(
                                     json_array_get(json_object_get(s, "ports"), 0), "ip")),
                                 "0.0.0.0");
                seen++;
            }
        }
        cr_assert_eq(seen, 1);
    }
    EXPECT(200, "GET", "/v1/grids/grd/stacks", NULL);
    cr_assert_eq(json_array_size(jget("stacks")), 1);
    cr_assert_str_eq(jgs("stacks.0.name"), "web");
    EXPECT(200, "GET", "/v1/services/grd/web/redis", NULL);
    cr_assert_str_eq(jgs("id"), "grd/web/redis");
    cr_assert_str_eq(jgs("stack.id"), "grd/web");
    cr_assert_str_eq(jgs("strategy"), "ha");
    cr_assert_eq(jgi("stop_grace_period"), 10);
    cr_assert_str_eq(jgs("net"), "bridge");
    cr_assert_eq(jgi("instance_counts.total"), 0);
    cr_assert(json_real_value(jget("deploy_opts.min_health")) > 0.79);

    EXPECT(409, "POST", "/v1/grids/grd/stacks", WEB_STACK);
    cr_assert_str_eq(jgs("error.name"), "web already exists");
    EXPECT(404, "GET", "/v1/stacks/grd/nope", NULL);
    cr_assert_str_eq(jgs("error"), "Stack not found");
    finish();
}

API_TEST(stacks, bad_stacks_are_422_and_leave_nothing_in_etcd)
{
    setup_grid();
    /* Missing link: one bad service, the other fine. */
    EXPECT(422, "POST", "/v1/grids/grd/stacks",
           "{'name':'s1','stack':'t/s1','services':[{'name':'ok','image':'busybox'},"
           "{'name':'redis','image':'redis','links':[{'name':'foo','alias':'foo'}]}]}");
    cr_assert_str_eq(jgs("error.services.redis.links"), "service redis has missing links: foo");
    cr_assert_eq(etcd_count("/kontena/stacks/"), 0);
    cr_assert_eq(etcd_count("/kontena/services/"), 0);
    /* Recursive links. */
    EXPECT(422, "POST", "/v1/grids/grd/stacks",
           "{'name':'s1','stack':'t/s1','services':["
           "{'name':'a','image':'x','links':[{'name':'b'}]},"
           "{'name':'b','image':'x','links':[{'name':'a'}]}]}");
    cr_assert(strstr(jgs("error.services.a.links"), "has recursive links: a -> b -> a"), "%s",
              rep.body);
    /* Expose, FQDN, stateful + volumes_from, health check, cpu_shares, stop signal. */
    EXPECT(422, "POST", "/v1/grids/grd/stacks",
           "{'name':'s1','stack':'t/s1','expose':'nope','services':["
           "{'name':'a-very-long-service-name-that-goes-on-and-on','image':'x','instances':10},"
           "{'name':'st','image':'x','stateful':true,'volumes_from':['a-%%s']},"
           "{'name':'hc','image':'x','health_check':{'protocol':'http','port':80,'timeout':30,"
           "'interval':10}},"
           "{'name':'cs','image':'x','cpu_shares':2000,'stop_signal':'KILLME',"
           "'stop_grace_period':'12'},"
           "{'name':'vol','image':'x','volumes':['a:b'],'env':['NOEQUALS']}]}");
    cr_assert_str_eq(jgs("error.expose"), "nope is not defined in the services array");
    cr_assert(strstr(jgs("error.services.a-very-long-service-name-that-goes-on-and-on.name"),
                     "is over limit (64)"),
              "%s", rep.body);
    cr_assert_str_eq(jgs("error.services.st.volumes_from"), "Cannot combine stateful & volumes_from");
    cr_assert_str_eq(jgs("error.services.hc.health_check"), "Interval has to be bigger than timeout");
    cr_assert_not_null(jget("error.services.cs.cpu_shares"));
    cr_assert_not_null(jget("error.services.cs.stop_signal"));
    cr_assert_not_null(jget("error.services.cs.stop_grace_period"));
    cr_assert_str_eq(jgs("error.services.vol.volumes"), "Volume definition 'a:b' not in right format");
    cr_assert_str_eq(jgs("error.services.vol.env"), "Env[0] isn't in the right format");
    /* Cross-stack links, volumes, parents, empty stacks. */
    EXPECT(422, "POST", "/v1/grids/grd/stacks",
           "{'name':'s1','stack':'t/s1','parent':{'name':'-ghost'},"
           "'volumes':[{'name':'data','external':'gone'}],'services':["
           "{'name':'a','image':'x','links':[{'name':'other/db'}]}]}");
    cr_assert_str_eq(jgs("error.services.a.links"), "Link other/db points to non-existing stack");
    cr_assert_str_eq(jgs("error.volumes.data.external"), "External volume gone not found");
    cr_assert_str_eq(jgs("error.parent"), "Parent stack name -ghost is not valid");
    EXPECT(422, "POST", "/v1/grids/grd/stacks", "{'name':'s1','stack':'t/s1','services':[]}");
    cr_assert_str_eq(jgs("error.services"), "stack does not specify any services");
    EXPECT(422, "POST", "/v1/grids/grd/stacks", "{'name':'-x','stack':'t','services':[]}");
    cr_assert_not_null(jget("error.name"));
    cr_assert_eq(etcd_count("/kontena/stacks/"), 0);
    cr_assert_eq(etcd_count("/kontena/services/"), 0);
    finish();
}

API_TEST(stacks, durations_and_external_volumes_are_normalised)
{
    setup_grid();
    etcd_put_str("/kontena/volumes/grd/realvol", "{\"name\":\"realvol\"}");
    EXPECT(201, "POST", "/v1/grids/grd/stacks",
           "{'name':'s1','stack':'t/s1','volumes':[{'name':'data','external':'realvol'}],"
           "'services':[{'name':'a','image':'x','stop_grace_period':'1m30s','stop_signal':'SIGINT',"
           "'volumes':['data:/data:ro','/tmp:/tmp','/anon'],'memory':'512m',"
           "'health_check':{'protocol':'http','port':8080},"
           "'deploy_opts':{'interval':'2h','min_health':0.5},"
           "'hooks':{'post_start':[{'name':'h','cmd':'echo hi','instances':1}]}}]}");
    EXPECT(200, "GET", "/v1/services/grd/s1/a", NULL);
    cr_assert_eq(jgi("stop_grace_period"), 90);
    cr_assert_eq(jgi("memory"), 512LL * 1024 * 1024);
    cr_assert_str_eq(jgs("health_check.uri"), "/");
    cr_assert_eq(jgi("health_check.timeout"), 10);
    cr_assert_eq(jgi("health_check.interval"), 60);
    cr_assert_eq(jgi("health_check.initial_delay"), 10);
    cr_assert_eq(jgi("deploy_opts.interval"), 7200);
    cr_assert_str_eq(jgs("hooks.0.type"), "post_start");
    cr_assert_str_eq(jgs("hooks.0.instances"), "1");
    /* A named volume the stack does not declare. */
    EXPECT(422, "POST", "/v1/grids/grd/stacks",
           "{'name':'s2','stack':'t/s2','services':[{'name':'a','image':'x','volumes':['nope:/x']}]}");
    cr_assert_not_null(jget("error.services.a.volumes"));
    finish();
}

/* ---- upgrade, deploy ---- */

API_TEST(stacks, upgrade_bumps_revision_only_on_change_and_deploy_applies_it)
{
    setup_grid();
    EXPECT(201, "POST", "/v1/grids/grd/stacks", WEB_STACK);
    EXPECT(200, "PUT", "/v1/stacks/grd/web", WEB_STACK);
    cr_assert_eq(jgi("revision"), 1, "same spec: same revision");

    EXPECT(200, "POST", "/v1/stacks/grd/web/deploy", NULL);
    cr_assert_str_eq(jgs("stack_id"), "grd/web");
    cr_assert_str_eq(jgs("state"), "created");
    cr_assert_eq(json_array_size(jget("service_deploys")), 2);
    cr_assert_str_eq(jgs("service_deploys.0.service_id"), "grd/web/redis", "linked first");
    cr_assert_str_eq(jgs("service_deploys.0.reason"), "waiting for the scheduler");
    cr_assert_str_eq(jgs("service_deploys.0.state"), "created");
    {
        char *id = xstrdup(jgs("id")), *dep = xstrdup(jgs("service_deploys.1.id")), *p;
        cr_assert_eq(strlen(id), 25, "id %s", id);
        p = xasprintf("/v1/stacks/grd/web/deploys/%s", id);
        EXPECT(200, "GET", p, NULL);
        cr_assert_str_eq(jgs("state"), "created");
        free(p);
        p = xasprintf("/v1/services/grd/web/app/deploys/%s", dep);
        EXPECT(200, "GET", p, NULL);
        cr_assert_eq(jgi("instance_count"), 2);
        free(p);
        p = xasprintf("/v1/services/grd/web/redis/deploys/%s", dep);
        EXPECT(404, "GET", p, NULL);
        free(p);
        free(id);
        free(dep);
    }
    cr_assert_eq(etcd_count("/kontena/deploys/grd/"), 2);
    cr_assert_eq(etcd_count("/kontena/stack_deploys/grd/"), 1);
    EXPECT(200, "GET", "/v1/services/grd/web/app", NULL);
    cr_assert_str_eq(jgs("state"), "running");
    cr_assert_eq(jgi("revision"), 1, "no change: same service revision");
    cr_assert_eq(jgi("stack_revision"), 1);
    EXPECT(200, "GET", "/v1/stacks/grd/web", NULL);
    cr_assert_str_eq(jgs("state"), "deploying", "deploys wait for the scheduler");

    /* Upgrade: app changes image, a new service "worker" appears, redis stays. */
    EXPECT(200, "PUT", "/v1/stacks/grd/web",
           "{'stack':'test/web','version':'1.1.0','services':["
           "{'name':'redis','image':'redis:3-alpine','stateful':true},"
           "{'name':'app','image':'nginx:1.13','instances':2,'links':[{'name':'redis','alias':'db'}],"
           "'ports':[{'node_port':80,'container_port':80}],'env':['A=1','B=2']},"
           "{'name':'worker','image':'busybox'}]}");
    cr_assert_eq(jgi("revision"), 2);
    cr_assert_str_eq(jgs("labels.0"), "a=b", "labels kept when not given");
    cr_assert_eq(etcd_count("/kontena/services/grd/web/"), 3);
    EXPECT(200, "GET", "/v1/services/grd/web/app", NULL);
    cr_assert_str_eq(jgs("image"), "nginx:latest", "upgrade does not touch live services");
    EXPECT(200, "POST", "/v1/stacks/grd/web/deploy", NULL);
    cr_assert_eq(json_array_size(jget("service_deploys")), 3);
    EXPECT(200, "GET", "/v1/services/grd/web/app", NULL);
    cr_assert_str_eq(jgs("image"), "nginx:1.13");
    cr_assert_eq(jgi("revision"), 2);
    cr_assert_eq(jgi("stack_revision"), 2);
    EXPECT(200, "GET", "/v1/services/grd/web/redis", NULL);
    cr_assert_eq(jgi("revision"), 1, "redis did not change");
    cr_assert_eq(jgi("stack_revision"), 2);

    /* Drop worker from the revision: the deploy removes its key. */
    EXPECT(200, "PUT", "/v1/stacks/grd/web", WEB_STACK);
    cr_assert_eq(jgi("revision"), 3);
    EXPECT(200, "POST", "/v1/stacks/grd/web/deploy", NULL);
    cr_assert_eq(etcd_count("/kontena/services/grd/web/"), 2);

    /* Stop / restart. */
    EXPECT(200, "POST", "/v1/stacks/grd/web/stop", NULL);
    EXPECT(200, "GET", "/v1/stacks/grd/web", NULL);
    cr_assert_str_eq(jgs("services.0.state"), "stopped");
    EXPECT(200, "POST", "/v1/stacks/grd/web/restart", NULL);
    EXPECT(200, "GET", "/v1/services/grd/web/redis", NULL);
    cr_assert_eq(jgi("restart_generation"), 1);
    EXPECT(200, "PATCH", "/v1/stacks/grd/web", "{'labels':['x=y']}");
    cr_assert_str_eq(jgs("labels.0"), "x=y");
    cr_assert_eq(jgi("revision"), 3);
    EXPECT(422, "PATCH", "/v1/stacks/grd/web", "{'labels':['Bad Label']}");
    finish();
}

API_TEST(stacks, cross_stack_links_guard_removal)
{
    setup_grid();
    EXPECT(201, "POST", "/v1/grids/grd/stacks", WEB_STACK);
    EXPECT(201, "POST", "/v1/grids/grd/stacks",
           "{'name':'front','stack':'t/front','parent':{'name':'web'},'services':["
           "{'name':'lb','image':'haproxy','links':[{'name':'web/app','alias':'app'}]}]}");
    cr_assert_str_eq(jgs("parent.id"), "grd/web");
    EXPECT(200, "GET", "/v1/stacks/grd/web", NULL);
    cr_assert_str_eq(jgs("children.0.id"), "grd/front");
    /* Upgrade that drops app (linked from front) is refused. */
    EXPECT(422, "PUT", "/v1/stacks/grd/web",
           "{'stack':'test/web','services':[{'name':'redis','image':'redis'}]}");
    cr_assert_str_eq(jgs("error.stack"),
                     "Cannot delete service that is linked to another service (front/lb)");
    /* Removal: children first, and links from other stacks. */
    EXPECT(422, "DELETE", "/v1/stacks/grd/web", NULL);
    cr_assert_str_eq(jgs("error.stack"), "Stack has dependencies that must be removed first: front");
    EXPECT(422, "DELETE", "/v1/services/grd/web/app", NULL);
    cr_assert_str_eq(jgs("error.service"),
                     "Cannot delete service that is linked to another service (front/lb)");
    /* Another stack (not a child) linking in blocks the removal too. */
    EXPECT(201, "POST", "/v1/grids/grd/stacks",
           "{'name':'other','stack':'t/o','services':[{'name':'c','image':'x',"
           "'links':[{'name':'web/redis'}]}]}");
    EXPECT(200, "POST", "/v1/stacks/grd/front/deploy", NULL);
    EXPECT(200, "DELETE", "/v1/stacks/grd/front", NULL);
    cr_assert_eq(etcd_count("/kontena/services/grd/front/"), 0);
    cr_assert_eq(etcd_count("/kontena/deploys/grd/"), 0, "its deploy records went too");
    cr_assert_eq(etcd_count("/kontena/stack_deploys/grd/"), 0);
    EXPECT(422, "DELETE", "/v1/stacks/grd/web", NULL);
    cr_assert_str_eq(jgs("error.stack"),
                     "Cannot delete service that is linked from another stack (other/c)");
    EXPECT(200, "DELETE", "/v1/stacks/grd/other", NULL);
    EXPECT(200, "DELETE", "/v1/stacks/grd/web", NULL);
    EXPECT(404, "GET", "/v1/stacks/grd/web", NULL);
    cr_assert_eq(etcd_count("/kontena/stacks/grd/"), 0);
    cr_assert_eq(etcd_count("/kontena/services/grd/"), 0);
    finish();
}

/* ---- stack-less services ---- */

API_TEST(stacks, service_create_update_env_and_deploy)
{
    setup_grid();
    EXPECT(201, "POST", "/v1/grids/grd/services",
           "{'name':'db','image':'postgres:9','stateful':true,'env':['PW=secret','X=1'],"
           "'volumes':['/var/lib/pg']}");
    cr_assert_str_eq(jgs("id"), "grd/null/db");
    cr_assert_str_eq(jgs("stack.name"), "null");
    cr_assert_str_eq(jgs("dns"), "db.grd.kontena.local");
    cr_assert_str_eq(jgs("state"), "initialized");
    cr_assert_eq(jgi("revision"), 1);
    EXPECT(409, "POST", "/v1/grids/grd/services", "{'name':'db','image':'postgres:9'}");
    EXPECT(422, "POST", "/v1/grids/grd/services",
           "{'name':'web','image':'nginx','links':[{'name':'nope'}]}");
    cr_assert_str_eq(jgs("error.links"), "Service null/nope does not exist");
    EXPECT(201, "POST", "/v1/grids/grd/services",
           "{'name':'web','image':'nginx','links':[{'name':'db','alias':'database'}]}");
    cr_assert_str_eq(jgs("links.0.id"), "grd/null/db");
    cr_assert_str_eq(jgs("links.0.name"), "db");

    /* Update: env merge rule, no change -> same revision, force -> +1. */
    EXPECT(200, "PUT", "/v1/services/grd/null/db", "{'env':['PW=','X=2']}");
    cr_assert_str_eq(jgs("env.0"), "PW=secret");
    cr_assert_str_eq(jgs("env.1"), "X=2");
    cr_assert_eq(jgi("revision"), 2);
    EXPECT(200, "PUT", "/v1/services/grd/null/db", "{'image':'postgres:9'}");
    cr_assert_eq(jgi("revision"), 2, "no real change");
    EXPECT(200, "PUT", "/v1/services/grd/null/db", "{'force':true}");
    cr_assert_eq(jgi("revision"), 3);
    EXPECT(422, "PUT", "/v1/services/grd/null/db", "{'volumes':['/var/lib/pg','/new']}");
    cr_assert(strstr(jgs("error.volumes"), "Adding a new anonymous volume (/new)"), "%s", rep.body);
    EXPECT(422, "PUT", "/v1/services/grd/null/db", "{'health_check':{'protocol':'tcp'}}");
    cr_assert_not_null(jget("error.health_check"));

    /* Envs. */
    EXPECT(200, "POST", "/v1/services/grd/null/db/envs", "{'env':'X=3'}");
    EXPECT(422, "POST", "/v1/services/grd/null/db/envs", "{'env':'nope'}");
    cr_assert_str_eq(jgs("env"), "Env isn't in the right format", "bare error hash");
    EXPECT(200, "DELETE", "/v1/services/grd/null/db/envs/PW", NULL);
    EXPECT(200, "GET", "/v1/services/grd/null/db", NULL);
    cr_assert_eq(json_array_size(jget("env")), 1);
    cr_assert_str_eq(jgs("env.0"), "X=3");
    cr_assert_eq(jgi("revision"), 5);

    /* Deploy, force, scale, stop/start/restart. */
    EXPECT(200, "POST", "/v1/services/grd/null/db/deploy", NULL);
    cr_assert_str_eq(jgs("state"), "created");
    cr_assert_str_eq(jgs("service_id"), "grd/null/db");
    EXPECT(200, "GET", "/v1/services/grd/null/db", NULL);
    cr_assert_str_eq(jgs("state"), "running");
    cr_assert_eq(jgi("revision"), 5);
    EXPECT(200, "POST", "/v1/services/grd/null/db/deploy", "{'force':true}");
    EXPECT(200, "POST", "/v1/services/grd/null/db/scale", "{'instances':3}");
    cr_assert_eq(jgi("instance_count"), 3);
    EXPECT(200, "GET", "/v1/services/grd/null/db", NULL);
    cr_assert_eq(jgi("revision"), 6, "force bumps, scale does not");
    cr_assert_eq(jgi("instances"), 3);
    EXPECT(422, "POST", "/v1/services/grd/null/db/scale", "{'instances':'x'}");
    EXPECT(200, "POST", "/v1/services/grd/null/db/stop", NULL);
    EXPECT(200, "GET", "/v1/services/grd/null/db", NULL);
    cr_assert_str_eq(jgs("state"), "stopped");
    EXPECT(200, "POST", "/v1/services/grd/null/db/start", NULL);
    EXPECT(200, "POST", "/v1/services/grd/null/db/restart", NULL);
    EXPECT(200, "GET", "/v1/services/grd/null/db", NULL);
    cr_assert_str_eq(jgs("state"), "running");
    cr_assert_eq(jgi("restart_generation"), 1);
    EXPECT(200, "GET", "/v1/services/grd/null/db/instances", NULL);
    cr_assert_eq(json_array_size(jget("instances")), 0);

    /* Listing: newest update first; a stack filter. */
    EXPECT(200, "GET", "/v1/grids/grd/services", NULL);
    cr_assert_eq(json_array_size(jget("services")), 2);
    cr_assert_str_eq(jgs("services.0.name"), "db");
    EXPECT(200, "GET", "/v1/grids/grd/services?stack=null", NULL);
    cr_assert_eq(json_array_size(jget("services")), 2);
    EXPECT(200, "GET", "/v1/grids/grd/services?stack=other", NULL);
    cr_assert_eq(json_array_size(jget("services")), 0);

    /* Removal: linked services are refused. */
    EXPECT(422, "DELETE", "/v1/services/grd/null/db", NULL);
    cr_assert_str_eq(jgs("error.service"),
                     "Cannot delete service that is linked to another service (web)");
    EXPECT(200, "DELETE", "/v1/services/grd/null/web", NULL);
    EXPECT(200, "DELETE", "/v1/services/grd/null/db", NULL);
    EXPECT(404, "GET", "/v1/services/grd/null/db", NULL);
    cr_assert_eq(etcd_count("/kontena/services/grd/"), 0);
    cr_assert_eq(etcd_count("/kontena/deploys/grd/"), 0);
    finish();
}

/* ---- grid removal, access, audit ---- */

API_TEST(stacks, forced_grid_removal_cleans_everything)
{
    setup_grid();
    EXPECT(201, "POST", "/v1/grids/grd/stacks", WEB_STACK);
    EXPECT(200, "POST", "/v1/stacks/grd/web/deploy", NULL);
    EXPECT(201, "POST", "/v1/grids/grd/services", "{'name':'solo','image':'x'}");
    EXPECT(422, "DELETE", "/v1/grids/grd", NULL);
    EXPECT(200, "DELETE", "/v1/grids/grd?force=true", NULL);
    cr_assert_eq(etcd_count("/kontena/stacks/grd/"), 0);
    cr_assert_eq(etcd_count("/kontena/services/grd/"), 0);
    cr_assert_eq(etcd_count("/kontena/deploys/grd/"), 0);
    cr_assert_eq(etcd_count("/kontena/stack_deploys/grd/"), 0);
    finish();
}

API_TEST(stacks, non_members_get_404_and_mutations_are_audited)
{
    char *other;

    setup_grid();
    EXPECT(201, "POST", "/v1/grids/grd/stacks", WEB_STACK);
    EXPECT(201, "POST", "/v1/users", "{'email':'bob@example.com','password':'bob-password-1'}");
    other = login("bob@example.com", "bob-password-1");
    cr_assert_eq(call_as(other, "GET", "/v1/stacks/grd/web", NULL), 404);
    cr_assert_eq(call_as(other, "GET", "/v1/grids/grd/stacks", NULL), 404);
    cr_assert_eq(call_as(other, "GET", "/v1/services/grd/web/app", NULL), 404);
    cr_assert_eq(call_as(other, "POST", "/v1/grids/grd/services", "{'name':'x','image':'y'}"), 404);
    cr_assert_eq(call_as(other, "DELETE", "/v1/stacks/grd/web", NULL), 404);
    cr_assert_eq(call_as(other, "POST", "/v1/stacks/grd/web/deploy", NULL), 404);
    cr_assert_eq(etcd_count("/kontena/stacks/grd/web"), 1);
    free(other);

    EXPECT(200, "POST", "/v1/stacks/grd/web/deploy", NULL);
    EXPECT(200, "GET", "/v1/grids/grd/audit_log", NULL);
    {
        json_t *logs = jget("logs"), *l;
        size_t i;
        int stack = 0, deploy = 0;
        json_array_foreach(logs, i, l)
        {
            const char *t = json_string_value(json_object_get(l, "resource_type"));
            const char *id = json_string_value(json_object_get(l, "resource_id"));
            if (t && strcmp(t, "Stack") == 0 && strcmp(id, "grd/web") == 0)
                stack++;
            if (t && strcmp(t, "Deploy") == 0 && strcmp(id, "grd/web") == 0)
                deploy++;
        }
        cr_assert(stack >= 1, "%s", rep.body);
        cr_assert(deploy >= 1, "%s", rep.body);
    }
    finish();
}

API_TEST(stacks, garbage_bodies_never_crash_the_server)
{
    static const char *paths[] = {"/v1/grids/grd/stacks",          "/v1/grids/grd/services",
                                  "/v1/services/grd/null/s/envs",  "/v1/services/grd/null/s/scale",
                                  "/v1/services/grd/null/s",       "/v1/stacks/grd/st",
                                  "/v1/stacks/grd/st"};
    static const char *methods[] = {"POST", "POST", "POST", "POST", "PUT", "PUT", "PATCH"};
    static const char *pieces[] = {"{", "}", "[", "]", "'name'", ":", ",", "null", "1e999", "'s'",
                                   "-1", "'services'", "'links'", "'image'", "true", "'ports'",
                                   "{'name':'s','image':'x'", "'health_check'", "'env'",
                                   "'volumes'", "'a:b'", "'hooks'", "{'pre_start':", "0.5"};
    unsigned seed = 7;

    setup_grid();
    EXPECT(201, "POST", "/v1/grids/grd/services", "{'name':'s','image':'x'}");
    EXPECT(201, "POST", "/v1/grids/grd/stacks",
           "{'name':'st','stack':'t/st','services':[{'name':'a','image':'x'}]}");
    for (int i = 0; i < 350; i++) {
        char body[512] = "";
        size_t len = 0;
        int n = 1 + rand_r(&seed) % 14;
        for (int k = 0; k < n; k++)
            len += (size_t)snprintf(body + len, sizeof(body) - len, "%s",
                                    pieces[rand_r(&seed) % (sizeof(pieces) / sizeof(pieces[0]))]);
        CALL(methods[i % 7], paths[i % 7], "%s", body);
        cr_assert(rep.status >= 200 && rep.status < 500, "%s %s %s -> %ld %s", methods[i % 7],
                  paths[i % 7], body, rep.status, rep.body);
    }
    finish();
}
