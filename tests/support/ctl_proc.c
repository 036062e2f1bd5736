#include "tests/support/ctl_proc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "tests/support/proc.h"

int ctl_proc_start(struct ctl_proc *p, const char *dir, const char *name, int replica,
                   const char *etcd_endpoint, const char *const extra[])
{
    char *bin = xasprintf("%s/kontena-%s", KONTENA_BIN_DIR, name);
    char listen[64];
    const char *argv[48];
    int n = 0, rc;
    char *url;

    memset(p, 0, sizeof(*p));
    p->name = xstrdup(name);
    p->id = xasprintf("%s-%d", name, replica);
    p->log = xasprintf("%s/%s.log", dir, p->id);
    p->http_port = proc_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", p->http_port);
    argv[n++] = bin;
    argv[n++] = "--etcd-endpoints";
    argv[n++] = etcd_endpoint;
    argv[n++] = "--http-listen";
    argv[n++] = listen;
    argv[n++] = "--id";
    argv[n++] = p->id;
    argv[n++] = "--lease-ttl";
    argv[n++] = "2s";
    for (size_t i = 0; extra && extra[i] && n < 47; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    p->pid = proc_spawn(argv, NULL, p->log);
    free(bin);
    if (p->pid == -1)
        return -1;
    url = ctl_proc_url(p, "/healthz");
    rc = proc_wait_http(url, 200, 10000);
    free(url);
    if (rc != 0)
        proc_dump_file(p->log);
    return rc;
}

char *ctl_proc_url(const struct ctl_proc *p, const char *path)
{
    return xasprintf("http://127.0.0.1:%d%s", p->http_port, path);
}

int ctl_proc_stop(struct ctl_proc *p, int sig)
{
    int st;

    if (p->pid <= 0)
        return -1;
    st = proc_stop(p->pid, sig, 10000);
    p->pid = 0;
    return st;
}

void ctl_proc_cleanup(struct ctl_proc *p)
{
    if (p->pid > 0)
        (void)ctl_proc_stop(p, SIGTERM);
    FREE_AND_NULL(p->name);
    FREE_AND_NULL(p->id);
    FREE_AND_NULL(p->log);
}
#include "common/banned.h"
