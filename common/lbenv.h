/* common/lbenv.h -- a load-balanced service's KONTENA_LB_* settings: parsing and validation.
 *
 * Pure functions, no I/O, safe on any input (fuzzed). One implementation used by
 *   - the API server and the CLI at install time (bad settings → a clear error, nothing
 *     installed; issue 7 point 4),
 *   - kontena-lbconfig, which never writes the keys of a service whose settings are invalid,
 *   - kontena-lb, which re-checks every value it reads from etcd (keys can be written by hand).
 *
 * Behaviour and defaults: reference networking-lb-health.md §7.8; the etcd values these
 * settings become are §7.2 (plain strings, "unset" = key absent). Messages follow
 * common/err.h: the lbenv_check_* functions describe the value only ("'udp' is not a
 * load balancer mode (http or tcp)"); lbenv_parse() prefixes them with the service and the
 * variable ("service 'web': KONTENA_LB_MODE: ...").
 */
#ifndef COMMON_LBENV_H
#define COMMON_LBENV_H

#include <stddef.h>

#include <jansson.h>

#include "common/err.h"

/* Longest value accepted for any one variable or key (custom settings included). */
#define LBENV_MAX_VALUE (64 * 1024)
/* Longest single name (backend, server, virtual host item). */
#define LBENV_MAX_NAME 253

enum lb_mode {
    LB_MODE_HTTP = 0,
    LB_MODE_TCP,
};

/* A backend service's settings, as they go to etcd. Every string is owned by the struct.
 * NULL means "unset" (the key is absent / deleted). */
struct lbenv {
    enum lb_mode mode;        /* KONTENA_LB_MODE, default http */
    char *balance;            /* KONTENA_LB_BALANCE, default "roundrobin" (never NULL) */
    char *virtual_hosts;      /* KONTENA_LB_VIRTUAL_HOSTS as a normalised comma list
                               * ("a.com,*.b.com": items trimmed), NULL when unset/empty */
    char *virtual_path;       /* KONTENA_LB_VIRTUAL_PATH normalised the same way; "/" when
                               * neither hosts nor paths are set (http), else NULL if unset */
    char *keep_virtual_path;  /* "true" / "false" or NULL when unset */
    char *cookie;             /* NULL: no stickiness; "": default cookie; else a full
                               * "cookie ..." line */
    char *basic_auth_secrets; /* userlist lines ("user admin insecure-password x"), NULL
                               * when unset or empty */
    char *custom_settings;    /* newline-separated haproxy lines, NULL when unset or empty */
    int internal_port;        /* KONTENA_LB_INTERNAL_PORT, default 80 */
    int external_port;        /* KONTENA_LB_EXTERNAL_PORT, default 5000 (used in tcp mode) */
};

#define LBENV_INIT                                                                                 \
    {                                                                                              \
        LB_MODE_HTTP, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 80, 5000                           \
    }

/* Free the strings and make lb LBENV_INIT again. NULL is fine. */
void lbenv_release(struct lbenv *lb);

/* Parse the env array env[0..n-1] ("K=V" strings; an entry without '=' is ignored; a later
 * entry overrides an earlier one, as Docker does) of the service called svc (used in
 * messages only, e.g. "web/api"). On success *out (which must be LBENV_INIT or released)
 * holds the settings; on error *out is left released and e says which variable of which
 * service is wrong and why (ST_INVALID). Every value is validated (lbenv_check_*). */
enum status lbenv_parse(struct lbenv *out, const char *const *env, size_t n, const char *svc,
                        struct err *e) WARN_UNUSED_RESULT;
/* The same from a jansson array of strings (NULL or a non-array = empty env; non-string
 * items are ignored). */
enum status lbenv_parse_json(struct lbenv *out, const json_t *env, const char *svc,
                             struct err *e) WARN_UNUSED_RESULT;

/* The value of variable name in env (borrowed from env), or NULL. Last entry wins. */
const char *lbenv_get(const char *const *env, size_t n, const char *name);
const char *lbenv_get_json(const json_t *env, const char *name);

/* Reference §7.1: a service is a load balancer if its image name contains "kontena/lb" or
 * its env has KONTENA_SERVICE_ROLE=lb. image may be NULL. */
int lbenv_is_lb(const char *image, const json_t *env);

/* --- single values (also what kontena-lb re-checks each etcd value with) ----------------- */

/* "http" or "tcp" → *mode. */
enum status lbenv_check_mode(const char *v, enum lb_mode *mode, struct err *e);
/* A haproxy balance algorithm with its arguments: roundrobin, static-rr, leastconn, first,
 * source, random[(<draws>)], uri [len N|depth N|whole|path-only ...], url_param <name>
 * [check_post], hdr(<name>) [use_domain_only], rdp-cookie[(<name>)]. Only what haproxy
 * surely accepts: `hash <expr>` is refused (an expression can only be checked by haproxy
 * itself, and a configuration haproxy refuses stops every change of that load balancer). */
enum status lbenv_check_balance(const char *v, struct err *e);
/* A comma list of DNS names, each optionally starting with "*." (items may carry spaces
 * around them; an empty item is an error). */
enum status lbenv_check_virtual_hosts(const char *v, struct err *e);
/* A comma list of path prefixes, each starting with '/' and made only of
 * [A-Za-z0-9-._~/%:@+=] (no whitespace, quotes, '#', '\\' or regex specials). */
enum status lbenv_check_virtual_paths(const char *v, struct err *e);
/* "true" or "false". */
enum status lbenv_check_keep_virtual_path(const char *v, struct err *e);
/* "" or one line starting with "cookie ". */
enum status lbenv_check_cookie(const char *v, struct err *e);
/* Lines each starting with "user " or "group " (blank lines allowed). */
enum status lbenv_check_basic_auth(const char *v, struct err *e);
/* haproxy lines for one section: no control characters but '\n' and '\t', and no line whose
 * first word opens a new section (global, defaults, frontend, backend, listen, userlist,
 * peers, resolvers, mailers, program, http-errors, ring, cache, crt-store, log-forward). */
enum status lbenv_check_lines(const char *v, struct err *e);
/* Decimal 1..65535 (no sign, no spaces) → *port (may be NULL). */
enum status lbenv_check_port(const char *v, int *port, struct err *e);
/* A backend or server name as haproxy takes it: 1..LBENV_MAX_NAME of [A-Za-z0-9_.:-]. */
enum status lbenv_check_name(const char *v, struct err *e);
/* An upstream value: "<IPv4>:<port>" or "[<IPv6>]:<port>". */
enum status lbenv_check_upstream(const char *v, struct err *e);
/* A health check URI: starts with '/', no whitespace, control characters, quotes or '#'. */
enum status lbenv_check_uri(const char *v, struct err *e);

/* --- grid-level check: ports of the tcp services of one load balancer -------------------- */

/* The load balancer's own listening ports, from its env: http KONTENA_LB_HTTP_PORT (80),
 * https KONTENA_LB_HTTPS_PORT (443), stats KONTENA_LB_STATS_PORT (1000) — the overrides are
 * our extension (kontena-lb). A bad override falls back to the default (kontena-lb refuses
 * to start with it). */
struct lbenv_lb_ports {
    int http, https, stats;
};
void lbenv_lb_ports(const json_t *lb_env, struct lbenv_lb_ports *out);

/* One tcp service balanced by the load balancer. */
struct lbenv_tcp_use {
    const char *service; /* for messages, e.g. "db/mysql" */
    int external_port;
};

/* "port clash" (ST_CONFLICT) when two of uses[0..n-1] have the same external port, or one
 * uses a port of the load balancer itself; the message names both services (or the service
 * and the load balancer's own port), e.g.
 * "port clash on load balancer 'infra/lb': services 'db/a' and 'db/b' both use
 *  KONTENA_LB_EXTERNAL_PORT 5000". lb is the LB's name for messages; ports may be NULL
 * (defaults). */
enum status lbenv_check_port_clash(const char *lb, const struct lbenv_lb_ports *ports,
                                   const struct lbenv_tcp_use *uses, size_t n, struct err *e);

/* --- install-time check of a set of services (API server, CLI) ----------------------------- */

/* svcs: a JSON array of {"id": "<stack>/<svc>" or "<svc>" (used in messages and to match
 * links), "image": "...", "env": ["K=V", ...], "links": ["<id>", ...], "changed": true|false}
 * — for the API server the grid as it would be after the request, for the CLI one stack
 * file. Checks, for every changed service, its KONTENA_LB_* env (lbenv_parse; for a load
 * balancer also KONTENA_LB_HTTP_PORT, _HTTPS_PORT and _STATS_PORT as ports and its
 * KONTENA_LB_CUSTOM_SETTINGS / KONTENA_LB_GLOBAL_SETTINGS as haproxy lines), then the port
 * clashes among the tcp services of each load balancer (the first link to a load balancer
 * counts) that involve a changed service or a changed load balancer. Returns ST_OK,
 * ST_INVALID (bad value) or ST_CONFLICT (port clash) with e's message; *who (may be NULL)
 * gets the id of the changed service at fault (borrowed from svcs). */
enum status lbenv_check_set(const json_t *svcs, const char **who, struct err *e);

#endif
