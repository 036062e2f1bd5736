/* lb/render.h -- the haproxy configuration of one load balancer, rendered from its etcd keys.
 *
 * Pure functions, no I/O: the same keys and settings always give byte-identical text
 * (backends, upstreams and lines in a fixed order, blank lines dropped), so the caller can
 * compare the text with what is applied and skip a reload when nothing changed.
 *
 * Input: the keys below the LB's root (`/kontena/haproxy/<grid>/<lb path>/`), relative to it,
 * e.g. "services/web-api/balance" or "tcp-services/db-mysql/upstreams/db.mysql-1", with their
 * plain string values (reference networking-lb-health.md §7.2). Every value is re-checked
 * with common/lbenv (keys can be written by hand): a backend with a bad value, a name
 * haproxy would refuse, a tcp port clashing with another one or with the LB's own ports is
 * left out of the configuration and reported in `dropped` (one message each), never
 * rendered. Unknown keys are ignored.
 *
 * Output (reference §7.5 with the deviations listed in docs/internals/lb.md): global,
 * defaults, frontend http-in (when there is an http backend, a certificate or a health
 * URI), one backend (+ userlist) per http service, one listen per tcp service with an
 * external port and at least one upstream, listen stats. Along with the text, the owner
 * of every line (index into `backends`, or -1 for the LB's own sections) so a line number
 * from `haproxy -c` can be traced to a backend.
 */
#ifndef LB_RENDER_H
#define LB_RENDER_H

#include <stddef.h>

#include "common/err.h"

/* One key below the root (relative path) and its value; both borrowed. */
struct lb_kv {
    const char *key;
    const char *value;
};

/* The load balancer's own settings, from its environment (lb_settings_from_env). Strings
 * are owned by the struct. NULL = unset. */
struct lb_settings {
    int http_port;         /* KONTENA_LB_HTTP_PORT, 80 */
    int https_port;        /* KONTENA_LB_HTTPS_PORT, 443 */
    int stats_port;        /* KONTENA_LB_STATS_PORT, 1000 */
    char *run_dir;         /* pidfile, admin socket */
    char *certs_dir;       /* bind ... ssl crt <certs_dir>/ when have_certs */
    int have_certs;        /* at least one certificate was written */
    char *health_uri;      /* KONTENA_LB_HEALTH_URI → monitor-uri */
    char *ssl_ciphers;     /* KONTENA_LB_SSL_CIPHERS or the built-in list */
    char *custom_settings; /* KONTENA_LB_CUSTOM_SETTINGS: lines in defaults */
    char *global_settings; /* KONTENA_LB_GLOBAL_SETTINGS: lines in global */
    int accept_proxy;      /* KONTENA_LB_ACCEPT_PROXY set (any value) */
    int http2;             /* KONTENA_LB_HTTP2 != "false" */
    char *stats_password;  /* STATS_PASSWORD, "secret" */
    char *log_target;      /* SYSLOG_TARGET, or NULL: "stdout format raw local0 info" */
    int drop_privileges;   /* run the workers as nobody/nogroup (when started as root) */
    int maxconn;           /* global maxconn: 100000, or what RLIMIT_NOFILE allows */
};

#define LB_SETTINGS_INIT                                                                           \
    {                                                                                              \
        80, 443, 1000, NULL, NULL, 0, NULL, NULL, NULL, NULL, 0, 1, NULL, NULL, 0, 100000          \
    }

/* Look up an environment variable: return its value (borrowed) or NULL. */
typedef const char *(*lb_getenv_fn)(void *arg, const char *name);

/* Fill s from the environment (get/arg). run_dir is copied; certs_dir becomes
 * <run_dir>/certs. ST_INVALID with a message naming the variable when a value is bad
 * (a port not 1..65535 or two equal ports, lines with control characters, a health URI
 * not starting with '/', a stats password with whitespace or quotes). s must be
 * LB_SETTINGS_INIT; on error it is released. */
enum status lb_settings_from_env(struct lb_settings *s, lb_getenv_fn get, void *arg,
                                 const char *run_dir, struct err *e) WARN_UNUSED_RESULT;
void lb_settings_release(struct lb_settings *s); /* NULL is fine; back to LB_SETTINGS_INIT */

struct lb_render {
    char *text;      /* the configuration, '\n'-terminated lines, no blank line */
    int *line_owner; /* line_owner[i]: backend index of line i+1, -1 for the LB's own */
    size_t n_lines;
    char **backends; /* names of the rendered backends (http and tcp), in order */
    size_t n_backends;
    char **dropped; /* one message per backend left out, e.g.
                     * "backend 'web': balance: 'fast' is not ..." */
    size_t n_dropped;
};

#define LB_RENDER_INIT                                                                             \
    {                                                                                              \
        NULL, NULL, 0, NULL, 0, NULL, 0                                                            \
    }

/* Render kvs[0..n) (any order; duplicates: the last one wins) with settings s into out
 * (LB_RENDER_INIT or released). Backends named in skip[0..n_skip) are left out silently
 * (the caller's list of backends haproxy refused). Never fails. */
void lb_render(const struct lb_settings *s, const struct lb_kv *kvs, size_t n,
               const char *const *skip, size_t n_skip, struct lb_render *out);
void lb_render_release(struct lb_render *r); /* NULL is fine; back to LB_RENDER_INIT */

/* The backend owning line `line` (1-based) of r, or NULL for the LB's own lines or a line
 * out of range. Borrowed from r. */
const char *lb_render_line_backend(const struct lb_render *r, size_t line);

/* Runtime API commands that take a running haproxy from configuration old to new at once
 * (before the seamless reload that makes it final), when the two differ only in server
 * lines: for an added server "add server <b>/<s> <addr> <args>;enable server <b>/<s>;enable
 * health <b>/<s>" (only when its line has "check"), for a removed one "set server <b>/<s>
 * state maint" (no new request goes to it; its connections finish). One line, commands
 * separated by ';', fresh memory. NULL when nothing differs, when anything but server
 * lines differs, or when a server kept its name but changed its line. */
char *lb_render_runtime_cmds(const struct lb_render *old, const struct lb_render *new_r);

#endif
