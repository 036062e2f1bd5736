/* cli/stackhost.c -- struct vars_host for the CLI: what the stack file reader may ask of the
 * outside world (cli/stackfile/vars.h) while a stack file is read by `stack install`,
 * `upgrade`, `apply` and `validate --online`. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/stackfile/vars.h"
#include "common/jsonutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

struct stackhost {
    struct vars_host host; /* first, so the vars_host pointer is the stackhost pointer */
    struct cli *c;
    char *grid;
};

/* `service_instances` resolver: the current instance count of an installed service, so an
 * upgrade keeps a scaled service's size. */
static json_t *service_instances(void *ctx, const char *stack, const char *service)
{
    struct stackhost *h = ctx;
    char *g = cli_escape(h->grid), *s = cli_escape(stack), *n = cli_escape(service);
    char *path = xasprintf("/v1/services/%s/%s/%s", g, s, n);
    json_t *svc = NULL, *out = NULL;

    if (api_get(h->c->api, path, &svc) == ST_OK &&
        json_is_integer(json_object_get(svc, "instances")))
        out = json_incref(json_object_get(svc, "instances"));
    json_decref(svc);
    free(path);
    free(n);
    free(s);
    free(g);
    return out;
}

/* `service_link` resolver: the grid's services as {"id": "stack/svc", name, image}. */
static json_t *service_list(void *ctx)
{
    struct stackhost *h = ctx;
    char *g = cli_escape(h->grid), *path = xasprintf("/v1/grids/%s/services", g);
    json_t *reply = NULL, *svc, *out = json_array();
    size_t i;

    if (api_get(h->c->api, path, &reply) == ST_OK) {
        json_array_foreach(json_object_get(reply, "services"), i, svc)
        {
            const char *stack = jstr(json_object_get(svc, "stack"), "name");
            const char *name = jstr(svc, "name");

            if (!name)
                continue;
            json_array_append_new(out,
                                  json_pack("{s:s++, s:s, s:s?}", "id", stack ? stack : "null", "/",
                                            name, "name", name, "image", jstr(svc, "image")));
        }
    }
    json_decref(reply);
    free(path);
    free(g);
    return out;
}

struct vars_host *stackhost_create(struct cli *c, const char *grid)
{
    struct stackhost *h = xcalloc(1, sizeof(*h));

    h->host.ctx = h;
    h->c = c;
    /* Prompts only when someone can answer them. */
    h->host.interactive = isatty(STDIN_FILENO);
    if (grid && c->api) {
        h->grid = xstrdup(grid);
        h->host.service_instances = service_instances;
        h->host.service_list = service_list;
    }
    /* The master has no vault or certificate API yet: vault_get/vault_set/vault_list and
     * certificate_list stay NULL, so `vault` resolvers give nothing and `to: vault` setters
     * do nothing, as in offline validation. Plug them in when /v1/secrets lands. */
    return &h->host;
}

void stackhost_destroy(struct vars_host *host)
{
    struct stackhost *h = (struct stackhost *)host;

    if (!h)
        return;
    free(h->grid);
    free(h);
}
