/* bench_sched -- CPU cost of placement alone (controllers/sched), no etcd: 1,000 nodes in 3
 * zones, 100 ha services × 100 instances placed one service after another (each plan sees
 * the instances placed before it, as the scheduler's snapshots do), then the steady state:
 * a fresh snapshot with all 10,000 instances, one replan and one mismatch check per
 * service. Prints placements per second; timings are printed, never asserted.
 *
 *   build/tests/bench/bench_sched [nodes] [services] [instances]
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/xmalloc.h"
#include "controllers/sched/sched.h"

#include "common/banned.h"

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall time, and CPU time of this process: on a shared, loaded machine the CPU figure is
 * the one that says what the code costs. */
static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

static double cpu_s(void)
{
    return clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

static int arg(int argc, char **argv, int i, int def)
{
    if (argc <= i)
        return def;
    long v = strtol(argv[i], NULL, 10);
    return v > 0 && v <= 100000 ? (int)v : def;
}

static struct sched_grid *make_grid(int nodes, uint64_t seed)
{
    struct sched_grid *g = sched_grid_new(seed);
    for (int i = 1; i <= nodes; i++) {
        char name[32], az[16];
        snprintf(name, sizeof(name), "node-%d", i);
        snprintf(az, sizeof(az), "az=zone-%d", i % 3);
        json_t *n =
            json_pack("{s:s,s:i,s:[s],s:s,s:i,s:I}", "name", name, "node_number", i, "labels", az,
                      "availability", "active", "cpus", 8, "mem_total", (json_int_t)16 << 30);
        sched_grid_add_node(g, n, 1);
        json_decref(n);
    }
    return g;
}

int main(int argc, char **argv)
{
    int nodes = arg(argc, argv, 1, 1000), services = arg(argc, argv, 2, 100),
        instances = arg(argc, argv, 3, 100);
    struct sched_service *svc = xcalloc((size_t)services, sizeof(*svc));
    int **placed = xcalloc((size_t)services, sizeof(*placed));
    struct sched_grid *g;
    long total = 0, failed = 0, mismatches = 0;
    double t0, t1, t2, t3, c0, c1, c2, c3;

    for (int k = 0; k < services; k++) {
        char name[32];
        snprintf(name, sizeof(name), "svc-%d", k);
        json_t *j =
            json_pack("{s:s,s:s,s:s,s:s,s:i,s:I}", "grid", "bench", "stack", "bench", "name", name,
                      "strategy", "ha", "instances", instances, "memory", (json_int_t)256 << 20);
        if (sched_service_from_json(&svc[k], j, NULL, NULL) != ST_OK) {
            fprintf(stderr, "bench_sched: cannot build service %s\n", name);
            return 1;
        }
        json_decref(j);
    }

    /* Cold: every service placed from nothing, on one snapshot that grows. */
    g = make_grid(nodes, 1);
    t0 = now_s();
    c0 = cpu_s();
    for (int k = 0; k < services; k++) {
        struct sched_plan p;
        if (sched_plan(g, &svc[k], &p, NULL) != ST_OK)
            return 1;
        placed[k] = xcalloc((size_t)p.n + 1, sizeof(int));
        for (int i = 0; i < p.n; i++) {
            placed[k][i] = p.node[i];
            total++;
            if (p.node[i] < 0) {
                failed++;
                continue;
            }
            char *c = sched_container_name("bench", svc[k].name, i + 1);
            sched_grid_add_instance(g, sched_grid_node_name(g, p.node[i]), svc[k].id, i + 1, c,
                                    NULL, 0);
            free(c);
        }
        sched_plan_release(&p);
    }
    t1 = now_s();
    c1 = cpu_s();

    /* Steady state: a fresh snapshot of everything, then one replan + mismatch each. */
    struct sched_grid *g2 = make_grid(nodes, 2);
    for (int k = 0; k < services; k++)
        for (int i = 0; i < instances; i++) {
            if (placed[k][i] < 0)
                continue;
            char *c = sched_container_name("bench", svc[k].name, i + 1);
            sched_grid_add_instance(g2, sched_grid_node_name(g, placed[k][i]), svc[k].id, i + 1, c,
                                    NULL, 0);
            free(c);
        }
    t2 = now_s();
    c2 = cpu_s();
    for (int k = 0; k < services; k++) {
        struct sched_plan p;
        if (sched_plan(g2, &svc[k], &p, NULL) != ST_OK)
            return 1;
        sched_plan_release(&p);
        mismatches += sched_mismatch(g2, &svc[k], NULL, 0);
    }
    t3 = now_s();
    c3 = cpu_s();

    printf("bench_sched: %d nodes, %d services x %d instances (ha, 3 zones)\n", nodes, services,
           instances);
    printf("  cold placement:  %ld instances in %.3f s wall, %.3f s CPU = %.0f placements/s "
           "(CPU: %.0f/s; %ld unplaced)\n",
           total, t1 - t0, c1 - c0, (double)total / (t1 - t0), (double)total / (c1 - c0), failed);
    printf("  snapshot build:  %.3f s wall, %.3f s CPU for %d nodes + %ld instances\n", t2 - t1,
           c2 - c1, nodes, total);
    printf("  replan+mismatch: %d services in %.3f s wall, %.3f s CPU = %.0f placements/s "
           "(CPU: %.0f/s; %ld mismatches)\n",
           services, t3 - t2, c3 - c2, 2.0 * (double)total / (t3 - t2),
           2.0 * (double)total / (c3 - c2), mismatches);

    /* With filters: 10 services × instances publishing a port each, with a hard label rule,
     * a soft one and a regex self anti-affinity, over the full grid g2. */
    {
        long placed_f = 0, failed_f = 0;
        double t4 = now_s(), c4 = cpu_s();
        for (int k = 0; k < 10; k++) {
            struct sched_service fs;
            struct sched_plan p;
            char name[32], anti[48];
            snprintf(name, sizeof(name), "filtered-%d", k);
            snprintf(anti, sizeof(anti), "service!=/^%s$/", name);
            json_t *j = json_pack("{s:s,s:s,s:s,s:i,s:[{s:i,s:i}],s:[s,s,s]}", "grid", "bench",
                                  "stack", "bench", "name", name, "instances", instances, "ports",
                                  "node_port", 8000 + k, "container_port", 80, "affinity",
                                  "label!=az=zone-0", "label==~az=zone-1", anti);
            if (sched_service_from_json(&fs, j, NULL, NULL) != ST_OK)
                return 1;
            json_decref(j);
            if (sched_plan(g2, &fs, &p, NULL) != ST_OK)
                return 1;
            for (int i = 0; i < p.n; i++) {
                placed_f++;
                if (p.node[i] < 0) {
                    failed_f++;
                    continue;
                }
                char *c = sched_container_name("bench", fs.name, i + 1);
                int port = 8000 + k;
                sched_grid_add_instance(g2, sched_grid_node_name(g2, p.node[i]), fs.id, i + 1, c,
                                        &port, 1);
                free(c);
            }
            sched_plan_release(&p);
            sched_service_release(&fs);
        }
        double t5 = now_s(), c5 = cpu_s();
        printf("  with filters:    %ld instances in %.3f s wall, %.3f s CPU = %.0f placements/s "
               "(CPU: %.0f/s; %ld unplaced)\n",
               placed_f, t5 - t4, c5 - c4, (double)placed_f / (t5 - t4),
               (double)placed_f / (c5 - c4), failed_f);
    }

    for (int k = 0; k < services; k++) {
        free(placed[k]);
        sched_service_release(&svc[k]);
    }
    free(placed);
    free(svc);
    sched_grid_free(g);
    sched_grid_free(g2);
    return 0;
}
