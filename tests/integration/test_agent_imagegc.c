/* tests/integration/test_agent_imagegc.c -- the agent's image cleanup (agent/imagegc.c).
 *
 * Suite `imagegc_select`: the pure decision over Engine API JSON in the shapes the real
 * dockerd (20.10, API 1.41) gave for GET /images/json and /containers/json?all=1: an image
 * built here (RepoDigests null), a dangling one ("<none>@<none>"), pulled ones.
 *
 * Suite `imagegc`: a real kontena-agent (reconcile-only mode, real etcd) on the real dockerd.
 * No registry is reachable from here, so the test serves one itself: a minimal pull-only
 * Docker Registry HTTP API v2 on 127.0.0.1 (dockerd treats 127.0.0.0/8 as an insecure
 * registry), one single-layer image per repository with contents unique to the run. dockerd
 * pulls them through the Engine API like any image, so they carry RepoDigests. Every image
 * is named "127.0.0.1:<port>/<run id>-<what>" and removed by the test at the end.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/imagegc.h"
#include "common/crypto.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/docker_env.h"
#include "tests/support/etcd_proc.h"
#include "tests/support/proc.h"

#include "common/banned.h"

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    docker_env_global_setup();
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    docker_env_global_cleanup();
}

/* --- the decision, over captured JSON --------------------------------------------------- */

#define LB_ID "sha256:7da2466ccbebe2058d6a63c645148dc96700d6ae97d11b768787b8ab8e6205b5"
#define DANGLING_ID "sha256:98c98525dde236ab8c31f64b224668002bcfdee265eb46d77e7d4e0fe475cd4a"
#define PULLED_ID "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define OTHER_ID "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define USED_ID "sha256:3333333333333333333333333333333333333333333333333333333333333333"

/* GET /images/json as dockerd 20.10 answers it (the first two verbatim from this machine). */
static const char images_json[] =
    "[{\"Containers\":-1,\"Created\":1795425837,\"Id\":\"" LB_ID "\","
    "\"Labels\":{\"io.kontena.image.component\":\"lb\"},\"ParentId\":\"\",\"RepoDigests\":null,"
    "\"RepoTags\":[\"kontena/lb:0.1.0\",\"kontena/lb:latest\"],\"SharedSize\":-1,"
    "\"Size\":29738093,\"VirtualSize\":29738093},"
    "{\"Containers\":-1,\"Created\":1795417355,\"Id\":\"" DANGLING_ID "\","
    "\"Labels\":null,\"ParentId\":\"\",\"RepoDigests\":[\"<none>@<none>\"],"
    "\"RepoTags\":[\"<none>:<none>\"],\"SharedSize\":-1,\"Size\":29891485,\"VirtualSize\":29891485}"
    ","
    "{\"Containers\":-1,\"Created\":1795417000,\"Id\":\"" PULLED_ID "\",\"Labels\":null,"
    "\"ParentId\":\"\",\"RepoDigests\":[\"127.0.0.1:5000/web@sha256:"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"],"
    "\"RepoTags\":[\"127.0.0.1:5000/web:latest\"],\"SharedSize\":-1,\"Size\":1024,"
    "\"VirtualSize\":1024},"
    "{\"Containers\":-1,\"Created\":1795417000,\"Id\":\"" OTHER_ID "\",\"Labels\":null,"
    "\"ParentId\":\"\",\"RepoDigests\":[\"127.0.0.1:5000/db@sha256:"
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"],"
    "\"RepoTags\":[],\"SharedSize\":-1,\"Size\":1024,\"VirtualSize\":1024},"
    "{\"Containers\":-1,\"Created\":1795417000,\"Id\":\"" USED_ID "\",\"Labels\":null,"
    "\"ParentId\":\"\",\"RepoDigests\":[\"127.0.0.1:5000/used@sha256:"
    "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"],"
    "\"RepoTags\":[\"127.0.0.1:5000/used:1\"],\"SharedSize\":-1,\"Size\":1024,"
    "\"VirtualSize\":1024}]";

/* GET /containers/json?all=1: one exited container of USED_ID (any owner counts). */
static const char containers_json[] =
    "[{\"Id\":\"0123456789ab\",\"Names\":[\"/someone-else\"],\"Image\":\"127.0.0.1:5000/used:1\","
    "\"ImageID\":\"" USED_ID "\",\"Command\":\"sleep 1\",\"Created\":1795417001,"
    "\"State\":\"exited\",\"Status\":\"Exited (0) 2 hours ago\",\"Labels\":{}}]";

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    cr_assert_not_null(v, "bad test JSON: %s", je.text);
    return v;
}

static int has_id(const json_t *arr, const char *id)
{
    json_t *x;
    size_t i;
    json_array_foreach(arr, i, x)
    {
        const char *got = json_string_value(json_object_get(x, "Id"));
        if (got && !strcmp(got, id))
            return 1;
    }
    return 0;
}

Test(imagegc_select, only_images_with_repo_digests_are_pullable)
{
    json_t *imgs = load(images_json);
    cr_assert_not(imagegc_pullable(json_array_get(imgs, 0)), "built here (RepoDigests null)");
    cr_assert_not(imagegc_pullable(json_array_get(imgs, 1)), "dangling (<none>@<none>)");
    cr_assert(imagegc_pullable(json_array_get(imgs, 2)));
    cr_assert(imagegc_pullable(json_array_get(imgs, 3)), "digest only, no tag");
    cr_assert_not(imagegc_pullable(NULL));
    json_decref(imgs);
}

Test(imagegc_select, unused_pullable_images_go_only_after_their_grace)
{
    json_t *imgs = load(images_json), *cs = load(containers_json), *unused = json_object(), *out;

    out = imagegc_select(imgs, cs, NULL, unused, 1000, 5000);
    cr_assert_eq(json_array_size(out), 0, "nothing before its grace");
    json_decref(out);
    cr_assert_eq(json_integer_value(json_object_get(unused, PULLED_ID)), 1000);
    cr_assert_not_null(json_object_get(unused, OTHER_ID));
    cr_assert_null(json_object_get(unused, USED_ID), "used by an exited container");
    cr_assert_null(json_object_get(unused, LB_ID), "not pullable: never tracked");
    cr_assert_null(json_object_get(unused, DANGLING_ID));

    out = imagegc_select(imgs, cs, NULL, unused, 5999, 5000);
    cr_assert_eq(json_array_size(out), 0, "1 ms before the grace ends");
    json_decref(out);
    out = imagegc_select(imgs, cs, NULL, unused, 6000, 5000);
    cr_assert_eq(json_array_size(out), 2);
    cr_assert(has_id(out, PULLED_ID) && has_id(out, OTHER_ID));
    json_decref(out);
    json_decref(unused);
    json_decref(cs);
    json_decref(imgs);
}

Test(imagegc_select, desired_images_and_images_used_again_are_kept)
{
    json_t *imgs = load(images_json), *none = json_array(), *unused = json_object(), *out;
    json_t *keep = json_pack("[s]", PULLED_ID), *by_name = json_pack("[s]", "127.0.0.1:5000/db");
    json_t *cs =
        json_pack("[{s:s,s:s}]", "Image", "127.0.0.1:5000/web:latest", "ImageID", PULLED_ID);

    json_decref(imagegc_select(imgs, none, keep, unused, 0, 10));
    cr_assert_null(json_object_get(unused, PULLED_ID), "named by a desired instance");
    out = imagegc_select(imgs, none, keep, unused, 100, 10);
    cr_assert_not(has_id(out, PULLED_ID));
    cr_assert(has_id(out, OTHER_ID) && has_id(out, USED_ID));
    json_decref(out);

    /* Unused since 0, then a container uses it at 50: its grace starts over afterwards. */
    json_object_clear(unused);
    json_decref(imagegc_select(imgs, none, NULL, unused, 0, 100));
    json_decref(imagegc_select(imgs, cs, NULL, unused, 50, 100));
    cr_assert_null(json_object_get(unused, PULLED_ID));
    out = imagegc_select(imgs, none, NULL, unused, 120, 100);
    cr_assert_not(has_id(out, PULLED_ID), "unused again only since 120");
    json_decref(out);
    cr_assert_eq(json_integer_value(json_object_get(unused, PULLED_ID)), 120);

    /* A container that names the image by its tag only still protects it. */
    json_decref(cs);
    cs = json_pack("[{s:s}]", "Image", "127.0.0.1:5000/web:latest");
    json_object_clear(unused);
    json_decref(imagegc_select(imgs, cs, NULL, unused, 0, 10));
    out = imagegc_select(imgs, cs, NULL, unused, 100, 10);
    cr_assert_not(has_id(out, PULLED_ID));
    json_decref(out);
    /* An image gone from the list is forgotten. */
    json_decref(imagegc_select(none, none, NULL, unused, 200, 10));
    cr_assert_eq(json_object_size(unused), 0);
    (void)by_name;
    json_decref(by_name);
    json_decref(cs);
    json_decref(keep);
    json_decref(unused);
    json_decref(none);
    json_decref(imgs);
}

Test(imagegc_select, bad_input_never_crashes)
{
    json_t *unused = json_object(), *junk = load("[1,\"x\",{\"Id\":5},{\"RepoDigests\":7},null]");
    json_t *out = imagegc_select(junk, junk, junk, unused, 0, 0);
    cr_assert_eq(json_array_size(out), 0);
    json_decref(out);
    out = imagegc_select(NULL, NULL, NULL, unused, 0, 0);
    cr_assert_eq(json_array_size(out), 0);
    json_decref(out);
    json_decref(junk);
    json_decref(unused);
}

/* --- a pull-only registry on loopback ----------------------------------------------------- */

struct blob {
    char digest[80]; /* "sha256:<hex>" */
    char *data;
    size_t len;
};

#define MAX_REPOS 4

struct repo {
    char name[128];
    struct blob manifest, config, layer;
};

static struct registry {
    int fd, port;
    pthread_t thread;
    volatile int stop;
    struct repo repos[MAX_REPOS];
    size_t n;
} reg = {.fd = -1};

static void blob_set(struct blob *b, char *data, size_t len)
{
    char hex[65];
    crypto_sha256_hex(data, len, hex);
    snprintf(b->digest, sizeof(b->digest), "sha256:%s", hex);
    b->data = data;
    b->len = len;
}

/* A tar archive of one regular file. */
static char *tar_one(const char *name, const char *content, size_t *len)
{
    size_t clen = strlen(content), padded = (clen + 511) / 512 * 512;
    char *t = xcalloc(1, 512 + padded + 1024);
    unsigned sum = 0;

    snprintf(t, 100, "%s", name);
    snprintf(t + 100, 8, "0000644");
    snprintf(t + 108, 8, "0000000");
    snprintf(t + 116, 8, "0000000");
    snprintf(t + 124, 12, "%011o", (unsigned)clen);
    snprintf(t + 136, 12, "%011o", 1767225600u);
    memset(t + 148, ' ', 8);
    t[156] = '0';
    memcpy(t + 257, "ustar", 6);
    memcpy(t + 263, "00", 2);
    for (int i = 0; i < 512; i++)
        sum += (unsigned char)t[i];
    snprintf(t + 148, 8, "%06o", sum);
    t[155] = ' ';
    memcpy(t + 512, content, clen);
    *len = 512 + padded + 1024;
    return t;
}

/* Add repository name with one image whose only file says `what`. */
static void registry_add(const char *name, const char *what)
{
    struct repo *r = &reg.repos[reg.n++];
    size_t len;
    char *content = xasprintf("%s %s\n", docker_env_run_id(), what), *s;
    json_t *cfg, *man;

    cr_assert_leq(reg.n, MAX_REPOS);
    snprintf(r->name, sizeof(r->name), "%s", name);
    s = tar_one("gc.txt", content, &len);
    free(content);
    blob_set(&r->layer, s, len);
    cfg = json_pack("{s:s,s:s,s:{s:{s:s},s:[s]},s:{s:s,s:[s]},s:s}", "architecture", "amd64", "os",
                    "linux", "config", "Labels", DOCKER_ENV_RUN_LABEL, docker_env_run_id(), "Cmd",
                    "/gc.txt", "rootfs", "type", "layers", "diff_ids", r->layer.digest, "created",
                    "2026-01-01T00:00:00Z");
    s = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    blob_set(&r->config, s, strlen(s));
    man = json_pack("{s:i,s:s,s:{s:s,s:i,s:s},s:[{s:s,s:i,s:s}]}", "schemaVersion", 2, "mediaType",
                    "application/vnd.docker.distribution.manifest.v2+json", "config", "mediaType",
                    "application/vnd.docker.container.image.v1+json", "size", (int)r->config.len,
                    "digest", r->config.digest, "layers", "mediaType",
                    "application/vnd.docker.image.rootfs.diff.tar.gzip", "size", (int)r->layer.len,
                    "digest", r->layer.digest);
    s = json_dumps(man, JSON_COMPACT);
    blob_set(&r->manifest, s, strlen(s));
    json_decref(cfg);
    json_decref(man);
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void answer(int fd, int head, int status, const char *type, const struct blob *b)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Docker-Distribution-API-Version: registry/2.0\r\n%s%s%sConnection: close\r\n"
                     "\r\n",
                     status, status == 200 ? "OK" : "Not Found", type, b ? b->len : 0,
                     b ? "Docker-Content-Digest: " : "", b ? b->digest : "", b ? "\r\n" : "");
    send_all(fd, hdr, (size_t)n);
    if (b && !head)
        send_all(fd, b->data, b->len);
}

static void serve(int fd)
{
    char req[4096], method[8], path[1024];
    size_t got = 0;
    int head;

    req[0] = '\0';
    while (got < sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t r;
        if (poll(&p, 1, 5000) <= 0)
            return;
        r = recv(fd, req + got, sizeof(req) - 1 - got, 0);
        if (r <= 0)
            return;
        got += (size_t)r;
        req[got] = '\0';
    }
    if (sscanf(req, "%7s %1023s", method, path) != 2)
        return;
    head = !strcmp(method, "HEAD");
    if (!strcmp(path, "/v2/") || !strcmp(path, "/v2")) {
        static const struct blob empty = {"", (char *)"{}", 2};
        answer(fd, head, 200, "application/json", &empty);
        return;
    }
    for (size_t i = 0; i < reg.n; i++) {
        struct repo *r = &reg.repos[i];
        char *pre = xasprintf("/v2/%s/", r->name);
        size_t pl = strlen(pre);
        int mine = !strncmp(path, pre, pl);
        const char *rest = path + pl;
        free(pre);
        if (!mine)
            continue;
        if (!strncmp(rest, "manifests/", 10)) {
            const char *ref = rest + 10;
            if (!strcmp(ref, "latest") || !strcmp(ref, r->manifest.digest)) {
                answer(fd, head, 200, "application/vnd.docker.distribution.manifest.v2+json",
                       &r->manifest);
                return;
            }
        } else if (!strncmp(rest, "blobs/", 6)) {
            const char *dg = rest + 6;
            if (!strcmp(dg, r->config.digest)) {
                answer(fd, head, 200, "application/octet-stream", &r->config);
                return;
            }
            if (!strcmp(dg, r->layer.digest)) {
                answer(fd, head, 200, "application/octet-stream", &r->layer);
                return;
            }
        }
    }
    answer(fd, head, 404, "application/json", NULL);
}

static void *registry_main(void *arg)
{
    (void)arg;
    while (!reg.stop) {
        struct pollfd p = {reg.fd, POLLIN, 0};
        int c;
        if (poll(&p, 1, 200) <= 0)
            continue;
        c = accept(reg.fd, NULL, NULL);
        if (c == -1)
            continue;
        serve(c);
        close(c);
    }
    return NULL;
}

static void registry_start(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof(a);
    int one = 1;

    reg.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_neq(reg.fd, -1);
    setsockopt(reg.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(reg.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(reg.fd, 16), 0);
    cr_assert_eq(getsockname(reg.fd, (struct sockaddr *)&a, &al), 0);
    reg.port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&reg.thread, NULL, registry_main, NULL), 0);
}

static void registry_stop(void)
{
    if (reg.fd == -1)
        return;
    reg.stop = 1;
    pthread_join(reg.thread, NULL);
    close(reg.fd);
    reg.fd = -1;
    for (size_t i = 0; i < reg.n; i++) {
        free(reg.repos[i].manifest.data);
        free(reg.repos[i].config.data);
        free(reg.repos[i].layer.data);
    }
    reg.n = 0;
}

/* --- the agent on the real dockerd ------------------------------------------------------- */

static struct etcd_proc etcd = ETCD_PROC_INIT;
static struct etcd *ec;
static CURL *dh;
static pid_t agent;
static char *agent_log, *grid;
static char *refs[MAX_REPOS]; /* "127.0.0.1:<port>/<repo>:latest" of what the test pulled */
static size_t n_refs;

static void gc_init(void)
{
    struct etcd_opts o = {0};
    int lock;

    docker_env_require();
    /* One test of this suite at a time on the machine's dockerd: each test's agent removes
     * every pullable image its own node's instances do not name, so under -j2 one test's
     * agent removed the other's "desired" image (seen once in CI under ASan). The lock is
     * held until this test's process exits. */
    lock = open("/tmp/kontena-test-imagegc.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    cr_assert(lock >= 0 && flock(lock, LOCK_EX) == 0, "cannot lock /tmp/kontena-test-imagegc.lock");
    dh = curl_easy_init();
    cr_assert_not_null(dh);
    cr_assert_eq(etcd_proc_start(&etcd), 0, "cannot start etcd");
    o.endpoints = etcd.endpoint;
    ec = etcd_create(&o, NULL);
    cr_assert_not_null(ec);
    grid = docker_env_name("gc");
    registry_start();
}

static void gc_fini(void)
{
    char *label;

    if (agent > 0)
        proc_stop(agent, SIGTERM, 5000);
    agent = 0;
    label = xasprintf("%s", docker_env_run_filter());
    docker_env_remove_containers(label); /* the container test 2 made */
    free(label);
    if (grid) {
        label = xasprintf("io.kontena.grid=%s", grid);
        docker_env_remove_containers(label);
        free(label);
    }
    for (size_t i = 0; i < n_refs; i++) {
        char *p = xasprintf("/images/%s?force=1", refs[i]);
        json_t *out = NULL;
        docker_env_call(dh, "DELETE", p, &out);
        json_decref(out);
        free(p);
        FREE_AND_NULL(refs[i]);
    }
    n_refs = 0;
    registry_stop();
    FREE_AND_NULL(agent_log);
    FREE_AND_NULL(grid);
    etcd_destroy(ec);
    ec = NULL;
    etcd_proc_cleanup(&etcd);
    if (dh)
        curl_easy_cleanup(dh);
    dh = NULL;
}

TestSuite(imagegc, .init = gc_init, .fini = gc_fini, .timeout = 120);

/* Serve repository "<run id>-<what>" and have dockerd pull it; its reference (borrowed). */
static const char *pull(const char *what)
{
    char *repo = docker_env_name(what), *ref, *p;
    json_t *out = NULL, *img = NULL;
    long st;

    registry_add(repo, what);
    ref = xasprintf("127.0.0.1:%d/%s", reg.port, repo);
    p = xasprintf("/images/create?fromImage=%s&tag=latest", ref);
    st = docker_env_call(dh, "POST", p, &out);
    free(p);
    cr_assert_eq(st, 200, "pull of %s: HTTP %ld %s", ref, st,
                 out ? json_dumps(out, JSON_COMPACT) : "");
    json_decref(out);
    refs[n_refs] = xasprintf("%s:latest", ref);
    p = xasprintf("/images/%s/json", refs[n_refs]);
    st = docker_env_call(dh, "GET", p, &img);
    free(p);
    cr_assert_eq(st, 200, "%s was not pulled (HTTP %ld)", refs[n_refs], st);
    cr_assert_gt(json_array_size(json_object_get(img, "RepoDigests")), 0,
                 "a pulled image without RepoDigests: %s", json_dumps(img, JSON_COMPACT));
    json_decref(img);
    free(ref);
    free(repo);
    return refs[n_refs++];
}

static int image_exists(const char *ref)
{
    char *p = xasprintf("/images/%s/json", ref);
    json_t *out = NULL;
    long st = docker_env_call(dh, "GET", p, &out);
    json_decref(out);
    free(p);
    cr_assert(st == 200 || st == 404, "inspect %s: HTTP %ld", ref, st);
    return st == 200;
}

static void start_agent(const char *interval, const char *grace)
{
    char *bin = xasprintf("%s/kontena-agent", KONTENA_BIN_DIR);
    const char *argv[] = {bin,
                          "--etcd-endpoints",
                          etcd.endpoint,
                          "--grid",
                          grid,
                          "--node-name",
                          "node-1",
                          "--docker-socket",
                          docker_env_socket(),
                          "--image-gc-interval",
                          interval,
                          "--image-gc-grace",
                          grace,
                          "--log-level",
                          "debug",
                          NULL};
    agent_log = xasprintf("%s/agent.log", etcd.dir);
    agent = proc_spawn(argv, NULL, agent_log);
    cr_assert_gt(agent, 0, "cannot start kontena-agent");
    free(bin);
}

static void stop_agent_checked(void)
{
    int ws = proc_stop(agent, SIGTERM, 5000);
    agent = 0;
    if (ws == -1 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        proc_dump_file(agent_log);
    cr_assert(ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
              "the agent did not exit cleanly (wait status %d)", ws);
}

static int wait_gone(const char *ref, int timeout_ms)
{
    int64_t end = time_mono_ms() + timeout_ms;
    while (time_mono_ms() < end) {
        if (!image_exists(ref))
            return 1;
        time_sleep_ms(200);
    }
    return !image_exists(ref);
}

Test(imagegc, pulled_unused_image_goes_after_its_grace_imported_ones_stay)
{
    const char *ref = pull("gc-unused");
    char *log;
    int64_t t0;

    start_agent("1", "4");
    t0 = time_mono_ms();
    time_sleep_ms(2500);
    cr_assert(image_exists(ref), "removed before its grace of 4 s");
    cr_assert(wait_gone(ref, 15000), "%s still there 17 s after the agent started", ref);
    cr_assert_geq(time_mono_ms() - t0, 3500, "removed before its grace");
    cr_assert(image_exists(DOCKER_ENV_IMAGE), "the imported test image was removed");
    log = proc_read_file(agent_log);
    cr_assert(log && strstr(log, "msg=\"removed: unused for "), "no removal logged:\n%s",
              log ? log : "");
    cr_assert(strstr(log, ref) != NULL, "the removal line does not name %s", ref);
    free(log);
    stop_agent_checked();
}

static size_t discard(char *p, size_t sz, size_t n, void *u)
{
    (void)p;
    (void)u;
    return sz * n;
}

Test(imagegc, images_of_desired_instances_and_of_containers_stay)
{
    const char *desired = pull("gc-desired"), *used = pull("gc-used"), *control = pull("gc-ctl");
    char *key, *val, *p, *body, *u;

    /* A desired instance of this node that has no container (it waits for its overlay
     * address, which nobody gives it here): its image stays though no container uses it. */
    key = xasprintf("/kontena/instances/%s/node-1/%s.web-1", grid, grid);
    val = xasprintf("{\"service_id\":\"%s/null/web\",\"desired_state\":\"running\",\"revision\":1,"
                    "\"restart_generation\":0,\"spec\":{\"image\":\"%s\","
                    "\"labels\":{\"%s\":\"%s\"}}}",
                    grid, desired, DOCKER_ENV_RUN_LABEL, docker_env_run_id());
    cr_assert_eq(etcd_put(ec, key, val, strlen(val), 0, NULL, NULL, NULL), ST_OK);
    free(key);
    free(val);
    /* A created, never started container (not the agent's) uses the second one. */
    u = docker_env_name("gc-holder");
    body = xasprintf("{\"Image\":\"%s\",\"Labels\":{\"%s\":\"%s\"}}", used, DOCKER_ENV_RUN_LABEL,
                     docker_env_run_id());
    p = xasprintf("/containers/create?name=%s", u);
    {
        /* docker_env_call sends no body: create through curl by hand. */
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        char *url = xasprintf("http://localhost/v1.41%s", p);
        long code = 0;
        curl_easy_reset(dh);
        curl_easy_setopt(dh, CURLOPT_UNIX_SOCKET_PATH, docker_env_socket());
        curl_easy_setopt(dh, CURLOPT_URL, url);
        curl_easy_setopt(dh, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(dh, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(dh, CURLOPT_WRITEFUNCTION, discard);
        cr_assert_eq(curl_easy_perform(dh), CURLE_OK);
        curl_easy_getinfo(dh, CURLINFO_RESPONSE_CODE, &code);
        cr_assert_eq(code, 201, "container create: HTTP %ld", code);
        curl_slist_free_all(h);
        curl_easy_reset(dh);
        free(url);
    }
    free(p);
    free(body);
    free(u);

    start_agent("1", "2");
    cr_assert(wait_gone(control, 15000), "the unused control image %s was not removed", control);
    time_sleep_ms(3000); /* a grace and more after the control went */
    cr_assert(image_exists(desired), "the image of a desired instance was removed");
    cr_assert(image_exists(used), "the image of an existing (created) container was removed");
    {
        char *okey = xasprintf("/kontena/observed/%s/node-1/%s.web-1", grid, grid);
        struct etcd_kv kv = {0};
        cr_assert_eq(etcd_get(ec, okey, &kv, NULL, NULL), ST_OK, "no observed key %s", okey);
        cr_assert(strstr(kv.value, "\"container_id\":null") != NULL,
                  "the desired instance's container was made after all: %s", kv.value);
        etcd_kv_release(&kv);
        free(okey);
    }
    stop_agent_checked();
}
