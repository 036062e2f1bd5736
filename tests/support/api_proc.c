#include "tests/support/api_proc.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/xmalloc.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

static int launch(struct api_proc *p)
{
    char listen[64], *log = xasprintf("%s/apiserver.log", p->dir);
    char *cert = xasprintf("%s/master.pem", p->dir);
    char *bin = xasprintf("%s/kontena-apiserver", KONTENA_BIN_DIR);
    char *logs = xasprintf("%s/logs", p->dir);
    const char *argv[24];
    int n = 0, rc = 0;
    char *ping = xasprintf("%s/v1/ping", p->url);

    snprintf(listen, sizeof(listen), "127.0.0.1:%d", p->port);
    argv[n++] = bin;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--etcd-endpoints";
    argv[n++] = p->etcd;
    argv[n++] = "--initial-admin-password";
    argv[n++] = p->admin_password;
    argv[n++] = "--etcd-wait";
    argv[n++] = "20";
    /* No agents' endpoint unless a test asks for one (agent_proc.h sets
     * KONTENA_AGENT_LISTEN to a free loopback port): parallel servers would all try the
     * default 0.0.0.0:9293. */
    if (!getenv("KONTENA_AGENT_LISTEN")) {
        argv[n++] = "--agent-listen";
        argv[n++] = "off";
    }
    /* The log window in the server's own dir, and no /metrics listener (parallel servers
     * would all try 127.0.0.1:9300), unless the test set them in the environment. */
    if (!getenv("KONTENA_LOG_DIR")) {
        argv[n++] = "--log-dir";
        argv[n++] = logs;
    }
    if (!getenv("KONTENA_METRICS_LISTEN")) {
        argv[n++] = "--metrics-listen";
        argv[n++] = "off";
    }
    if (p->insecure_http) {
        argv[n++] = "--insecure-http";
    } else {
        argv[n++] = "--cert-out";
        argv[n++] = cert;
    }
    argv[n] = NULL;
    p->pid = proc_spawn(argv, NULL, log);
    if (p->pid == -1 || proc_wait_http(ping, 200, 20000) == -1) {
        fprintf(stderr, "kontena-apiserver did not come up: see %s\n", log);
        rc = -1;
    }
    free(ping);
    free(bin);
    free(cert);
    free(logs);
    free(log);
    return rc;
}

int api_proc_start(struct api_proc *p, const char *etcd_endpoint, int insecure_http)
{
    memset(p, 0, sizeof(*p));
    p->dir = proc_tempdir("kontena-api");
    if (!p->dir)
        return -1;
    p->etcd = xstrdup(etcd_endpoint);
    p->insecure_http = insecure_http;
    p->port = proc_free_port();
    p->url = xasprintf("%s://127.0.0.1:%d", insecure_http ? "http" : "https", p->port);
    p->admin_password = xstrdup("admin-secret-1");
    return launch(p);
}

int api_proc_stop(struct api_proc *p)
{
    int st = proc_stop(p->pid, SIGTERM, 5000);
    char *log;

    p->pid = 0;
    if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    /* A sanitizer report, a crash or a hang at shutdown: show the server's log. */
    log = xasprintf("%s/apiserver.log", p->dir);
    fprintf(stderr, "kontena-apiserver did not exit cleanly (wait status %d); its log:\n", st);
    {
        FILE *f = fopen(log, "r");
        char line[1024];
        while (f && fgets(line, sizeof(line), f))
            fputs(line, stderr);
        if (f)
            fclose(f);
    }
    free(log);
    return -1;
}

int api_proc_restart(struct api_proc *p)
{
    if (p->pid && api_proc_stop(p) != 0)
        return -1;
    return launch(p);
}

int api_proc_cleanup(struct api_proc *p)
{
    int rc = p->pid ? api_proc_stop(p) : 0;

    if (p->dir && !getenv("KEEP_TEST_DIRS"))
        proc_rmtree(p->dir);
    free(p->dir);
    free(p->etcd);
    free(p->url);
    free(p->admin_password);
    free(p->admin_token);
    memset(p, 0, sizeof(*p));
    return rc;
}

int api_cli_env(struct api_proc *p, const char *const env[], const char *input, char **out,
                char **err, const char *const args[])
{
    const char *argv[64], *envv[32];
    char *bin = xasprintf("%s/kontena", KONTENA_BIN_DIR);
    char *home = xasprintf("HOME=%s", p->dir);
    char *cfg = xasprintf("KONTENA_CONFIG=%s/kontena_client.json", p->dir);
    int n = 0, m = 0, rc;

    argv[n++] = bin;
    for (size_t i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    envv[m++] = home;
    envv[m++] = cfg;
    for (size_t i = 0; env && env[i] && m < 31; i++)
        envv[m++] = env[i];
    envv[m] = NULL;
    rc = proc_run(argv, envv, input, out, err);
    free(bin);
    free(home);
    free(cfg);
    return rc;
}

int api_cli(struct api_proc *p, const char *input, char **out, char **err, ...)
{
    const char *args[64];
    va_list ap;
    int n = 0;

    va_start(ap, err);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < 63;)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return api_cli_env(p, NULL, input, out, err, args);
}

const char *api_proc_admin_token(struct api_proc *p)
{
    struct http_reply r;
    char *body, *url;
    const char *tok;

    if (p->admin_token)
        return p->admin_token;
    body = xasprintf("{\"grant_type\":\"password\",\"username\":\"admin\",\"password\":\"%s\"}",
                     p->admin_password);
    url = xasprintf("%s/oauth2/token", p->url);
    if (http_do("POST", url, NULL, body, (size_t)-1, NULL, &r) != 0) {
        fprintf(stderr, "admin login at %s: no answer\n", url);
    } else {
        tok = json_string_value(json_object_get(r.json, "access_token"));
        if (r.status == 201 && tok)
            p->admin_token = xstrdup(tok);
        else
            fprintf(stderr, "admin login at %s: %ld %s\n", url, r.status, r.body ? r.body : "");
        http_reply_release(&r);
    }
    free(url);
    free(body);
    return p->admin_token;
}
