/* agent/imagegc.c -- removal of pulled images nothing uses (see imagegc.h). */
#include "agent/imagegc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/docker.h"
#include "agent/reconcile.h"
#include "common/jsonutil.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"

#include "common/banned.h"

struct imagegc {
    char *socket, *node;
    char *grid; /* under mu */
    int64_t interval_ms, grace_ms;
    struct docker *d;
    struct etcd *etcd; /* NULL: no desired instances to protect */
    json_t *unused;    /* {image id: first seen unused, mono ms}; the thread's own */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stop;
    atomic_ullong passes, removed, errors;
};

/* Docker 20.10 shows "<none>:<none>" / "<none>@<none>" for an image without tags / digests. */
static int real_ref(const char *s)
{
    return s && *s && strncmp(s, "<none>", 6) != 0;
}

int imagegc_pullable(const json_t *image)
{
    json_t *x;
    size_t i;

    json_array_foreach(json_object_get(image, "RepoDigests"), i, x)
    {
        if (real_ref(json_string_value(x)))
            return 1;
    }
    return 0;
}

json_t *imagegc_select(const json_t *images, const json_t *containers, const json_t *keep,
                       json_t *unused, int64_t now_ms, int64_t grace_ms)
{
    json_t *used = json_object(), *out = json_array(), *still = json_object(), *x;
    size_t i;
    const char *k;

    json_array_foreach(containers, i, x)
    {
        /* ImageID is what the container runs; Image is the name it was created with (or the
         * id again): either one protects the image. */
        if (jstr(x, "ImageID"))
            json_object_set_new(used, jstr(x, "ImageID"), json_true());
        if (jstr(x, "Image"))
            json_object_set_new(used, jstr(x, "Image"), json_true());
    }
    json_array_foreach(keep, i, x)
    {
        if (json_is_string(x))
            json_object_set_new(used, json_string_value(x), json_true());
    }

    json_array_foreach(images, i, x)
    {
        const char *id = jstr(x, "Id");
        json_t *t, *since;
        size_t j;
        int in_use;

        if (!id || !imagegc_pullable(x))
            continue;
        in_use = json_object_get(used, id) != NULL;
        json_array_foreach(json_object_get(x, "RepoTags"), j, t)
        {
            if (json_is_string(t) && json_object_get(used, json_string_value(t)))
                in_use = 1;
        }
        if (in_use)
            continue;
        since = json_object_get(unused, id);
        if (!json_is_integer(since)) {
            json_object_set_new(still, id, json_integer(now_ms));
            continue;
        }
        json_object_set(still, id, since);
        if (now_ms - json_integer_value(since) >= grace_ms)
            json_array_append(out, x);
    }
    /* Forget what is used again, kept or gone: its grace starts over when it is unused next. */
    json_object_clear(unused);
    json_object_foreach(still, k, x)
    {
        json_object_set(unused, k, x);
    }
    json_decref(still);
    json_decref(used);
    return out;
}

/* Image ids the desired instances of this node name: *out a fresh array. ST_OK with an empty
 * array without etcd; anything else means "do not remove anything this pass". */
static enum status desired_ids(struct imagegc *g, json_t **out, struct err *e)
{
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
    struct etcd_range_result res = {0};
    char *grid, *prefix;
    enum status st;

    *out = json_array();
    if (!g->etcd)
        return ST_OK;
    pthread_mutex_lock(&g->mu);
    grid = g->grid ? xstrdup(g->grid) : NULL;
    pthread_mutex_unlock(&g->mu);
    if (!grid)
        return err_set(e, ST_RETRY, "the node's grid is not known yet");
    prefix = xasprintf(RECONCILE_INSTANCES_PREFIX "%s/%s/", grid, g->node);
    free(grid);
    st = etcd_range(g->etcd, prefix, &ro, &res, e);
    free(prefix);
    for (size_t i = 0; st == ST_OK && i < res.n; i++) {
        json_t *inst = json_loadb(res.kvs[i].value, res.kvs[i].value_len, 0, NULL), *img = NULL;
        const char *name = jstr(json_object_get(inst, "spec"), "image");
        struct err ie = ERR_INIT;
        enum status ist;

        if (name && *name) {
            /* The name as given (a tag, a digest); its id too, for containers made from it. */
            json_array_append_new(*out, json_string(name));
            ist = docker_image_inspect(g->d, name, &img, &ie);
            if (ist == ST_OK && jstr(img, "Id"))
                json_array_append_new(*out, json_string(jstr(img, "Id")));
            else if (ist != ST_OK && ist != ST_NOTFOUND)
                st = err_set(e, ist, "%s", ie.msg);
        }
        json_decref(img);
        json_decref(inst);
    }
    etcd_range_result_release(&res);
    return st;
}

static char *refs_text(const json_t *image)
{
    json_t *arr = json_array(), *x;
    size_t i;
    char *s;

    json_array_foreach(json_object_get(image, "RepoTags"), i, x)
    {
        if (real_ref(json_string_value(x)))
            json_array_append(arr, x);
    }
    json_array_foreach(json_object_get(image, "RepoDigests"), i, x)
    {
        if (real_ref(json_string_value(x)))
            json_array_append(arr, x);
    }
    s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return s;
}

/* Remove one image: by id; an image of several repositories reference by reference (the
 * last one takes the image). */
static enum status remove_image(struct imagegc *g, const json_t *image, struct err *e)
{
    const char *id = jstr(image, "Id");
    enum status st = docker_image_remove(g->d, id, 0, NULL, e);
    const char *lists[] = {"RepoTags", "RepoDigests"};

    if (st != ST_CONFLICT || !strstr(e ? e->msg : "", "multiple repositories"))
        return st;
    for (size_t l = 0; l < 2; l++) {
        json_t *x;
        size_t i;
        json_array_foreach(json_object_get(image, lists[l]), i, x)
        {
            const char *ref = json_string_value(x);
            if (!real_ref(ref))
                continue;
            st = docker_image_remove(g->d, ref, 0, NULL, e);
            if (st == ST_NOTFOUND) /* gone with an earlier reference */
                st = ST_OK;
            if (st != ST_OK)
                return st;
        }
    }
    return ST_OK;
}

static void pass(struct imagegc *g)
{
    json_t *images = NULL, *containers = NULL, *keep = NULL, *doomed = NULL, *x;
    struct err e = ERR_INIT;
    int64_t now = time_mono_ms();
    size_t i;

    atomic_fetch_add(&g->passes, 1);
    if (docker_image_list(g->d, &images, &e) != ST_OK ||
        docker_container_list(g->d, NULL, 1, &containers, &e) != ST_OK) {
        log_warn("msg=\"image cleanup: %s\"", e.msg);
        atomic_fetch_add(&g->errors, 1);
        goto out;
    }
    if (desired_ids(g, &keep, &e) != ST_OK) {
        /* Without the desired instances nothing may go; unused times are kept as they are,
         * so a short etcd outage does not restart every grace. */
        log_warn("msg=\"image cleanup skipped: cannot read the node's instances: %s\"", e.msg);
        atomic_fetch_add(&g->errors, 1);
        goto out;
    }
    doomed = imagegc_select(images, containers, keep, g->unused, now, g->grace_ms);
    json_array_foreach(doomed, i, x)
    {
        const char *id = jstr(x, "Id");
        json_t *since = json_object_get(g->unused, id);
        char *refs = refs_text(x);
        struct err re = ERR_INIT;
        int64_t for_s = (now - json_integer_value(since)) / 1000;

        if (remove_image(g, x, &re) == ST_OK) {
            atomic_fetch_add(&g->removed, 1);
            log_info("image=%s refs=%s msg=\"removed: unused for %llds, can be pulled again\"", id,
                     refs, (long long)for_s);
            json_object_del(g->unused, id);
        } else {
            /* Used meanwhile (Docker refuses), or Docker trouble: decided again next pass. */
            atomic_fetch_add(&g->errors, 1);
            log_warn("image=%s refs=%s msg=\"not removed: %s\"", id, refs, re.msg);
        }
        free(refs);
    }
out:
    json_decref(doomed);
    json_decref(keep);
    json_decref(containers);
    json_decref(images);
}

static void *gc_main(void *arg)
{
    struct imagegc *g = arg;

    for (;;) {
        struct timespec ts;
        int stop;

        pass(g);
        ts = time_deadline(CLOCK_MONOTONIC, g->interval_ms);
        pthread_mutex_lock(&g->mu);
        while (!g->stop && pthread_cond_timedwait(&g->cond, &g->mu, &ts) == 0)
            ;
        stop = g->stop;
        pthread_mutex_unlock(&g->mu);
        if (stop)
            break;
    }
    return NULL;
}

static void gc_free(struct imagegc *g)
{
    docker_destroy(g->d);
    etcd_destroy(g->etcd);
    json_decref(g->unused);
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->mu);
    free(g->socket);
    free(g->node);
    free(g->grid);
    free(g);
}

struct imagegc *imagegc_start(const struct imagegc_opts *o, struct err *e)
{
    struct imagegc *g;
    struct docker_opts dopts;
    pthread_condattr_t ca;

    if (o->etcd_endpoints && (!o->node || !*o->node)) {
        err_set(e, ST_INVALID, "image cleanup needs the node's name");
        return NULL;
    }
    if (o->interval_ms < 0 || o->grace_ms < 0) {
        err_set(e, ST_INVALID, "image cleanup: negative interval or grace");
        return NULL;
    }
    g = xcalloc(1, sizeof(*g));
    g->socket = xstrdup(o->docker_socket ? o->docker_socket : DOCKER_DEFAULT_SOCKET);
    g->node = xstrdup(o->node ? o->node : "");
    g->grid = o->grid ? xstrdup(o->grid) : NULL;
    g->interval_ms = o->interval_ms ? o->interval_ms : IMAGEGC_DEF_INTERVAL_MS;
    g->grace_ms = o->grace_ms ? o->grace_ms : IMAGEGC_DEF_GRACE_MS;
    g->unused = json_object();
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cond, &ca);
    pthread_condattr_destroy(&ca);
    memset(&dopts, 0, sizeof(dopts));
    dopts.socket_path = g->socket;
    dopts.request_timeout_ms = 60000; /* removing a large image takes a while */
    g->d = docker_create(&dopts, e);
    if (g->d && o->etcd_endpoints) {
        /* Short timeouts: a pass must not hold up the agent's shutdown for long while etcd
         * hangs (a stopped etcd answers nothing; a dead one refuses at once). */
        struct etcd_opts eo = {.endpoints = o->etcd_endpoints,
                               .connect_timeout_ms = 1000,
                               .request_timeout_ms = 3000};
        g->etcd = etcd_create(&eo, e);
        if (!g->etcd)
            goto fail;
    }
    if (!g->d)
        goto fail;
    if (pthread_create(&g->thread, NULL, gc_main, g) != 0) {
        err_set(e, ST_IO, "cannot start the image cleanup thread");
        goto fail;
    }
    return g;
fail:
    gc_free(g);
    return NULL;
}

void imagegc_stop(struct imagegc *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->mu);
    docker_cancel(g->d);
    pthread_join(g->thread, NULL);
    gc_free(g);
}

void imagegc_set_grid(struct imagegc *g, const char *grid)
{
    if (!g || !grid)
        return;
    pthread_mutex_lock(&g->mu);
    free(g->grid);
    g->grid = xstrdup(grid);
    pthread_mutex_unlock(&g->mu);
}

void imagegc_counters(struct imagegc *g, struct imagegc_counters *out)
{
    memset(out, 0, sizeof(*out));
    if (!g)
        return;
    out->passes = atomic_load(&g->passes);
    out->removed = atomic_load(&g->removed);
    out->errors = atomic_load(&g->errors);
}
