/* cli/config.h -- the client config file, ~/.kontena_client.json (cli.md §1.4, §1.5).
 *
 *   {
 *     "current_server": "prod",
 *     "servers": [
 *       {"name": "prod", "url": "https://10.0.0.1:9292", "grid": "web", "username": "admin",
 *        "token": "...", "token_id": "...", "token_expires_at": 0, "refresh_token": null}
 *     ]
 *   }
 *
 * The path is $KONTENA_CONFIG or ~/.kontena_client.json. A missing file is an empty config.
 * Keys this CLI does not know (accounts, current_account, per-server extras) are kept and
 * written back unchanged. The old single-server form {"server": {...}} is migrated on load.
 * Server names are unique: duplicates on load are renamed "<name>-2", "<name>-3", ...
 *
 * The environment overrides the file but is never written into it:
 *   KONTENA_URL     the master URL; a configured server with that URL (and the name
 *                   $KONTENA_MASTER, if set) is used, else a temporary one named
 *                   $KONTENA_MASTER or "default". While it is set the file is never written.
 *   KONTENA_MASTER  the current master by name.
 *   KONTENA_TOKEN   the access token for the current master.
 *   KONTENA_GRID    the current grid (a command's own --grid beats it).
 *
 * Saving writes a temporary file next to the config (mode 0600) and renames it into place.
 */
#ifndef CLI_CONFIG_H
#define CLI_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* One master the user has logged into. Every string is owned and may be NULL. */
struct server {
    char *name;
    char *url;
    char *grid;     /* this master's current grid */
    char *username; /* email of the logged-in user */
    char *token;
    char *token_id; /* id of the token at the master, for logout */
    char *refresh_token;
    int64_t token_expires_at; /* Unix time, 0 = never */
    json_t *extra;            /* keys not listed above (owned object) */
};

struct config {
    char *path;
    char *current_server; /* name, or NULL */
    struct server **servers;
    size_t nservers;
    json_t *extra;             /* top-level keys not listed above (owned object) */
    struct server *env_server; /* temporary server for KONTENA_URL, not in servers[] */
};

/* Load the config from path (NULL: $KONTENA_CONFIG or ~/.kontena_client.json). A missing
 * file gives an empty config; an unreadable or malformed one fails with ST_INVALID/ST_IO. */
enum status config_load(const char *path, struct config **out, struct err *e) WARN_UNUSED_RESULT;
/* Write the config atomically with mode 0600. Does nothing while KONTENA_URL is set. */
enum status config_save(const struct config *cfg, struct err *e) WARN_UNUSED_RESULT;
void config_free(struct config *cfg); /* NULL is fine */
/* The config as it would be written, a new reference. */
json_t *config_to_json(const struct config *cfg);

/* Whether KONTENA_URL is set, which turns saving off. */
int config_readonly(void);

/* Lookups; borrowed, NULL when there is none. URLs compare without trailing slashes. */
struct server *config_find(const struct config *cfg, const char *name);
struct server *config_find_url(const struct config *cfg, const char *url);
/* A fresh server entry named `name` (made unique) with this url; owned by cfg. */
struct server *config_add(struct config *cfg, const char *name, const char *url);
/* Remove and free s; clears current_server when it was the current one. */
void config_remove(struct config *cfg, struct server *s);
/* `base` if no server has that name, else "<base>-2", "<base>-3"...; caller frees. */
char *config_unique_name(const struct config *cfg, const char *base);
/* Make s the current master (NULL clears it). */
void config_set_current(struct config *cfg, const struct server *s);

/* The current master by the rules above: KONTENA_URL, KONTENA_MASTER, current_server.
 * Borrowed (may be cfg->env_server), NULL when none is selected. */
struct server *config_master(struct config *cfg);
/* KONTENA_TOKEN if set, else s->token (NULL when s is NULL). Borrowed. */
const char *config_token(const struct server *s);
/* KONTENA_GRID if set, else s->grid. Borrowed, may be NULL. */
const char *config_grid(const struct server *s);

/* Replace *field with a copy of value (NULL clears it). */
void config_set_str(char **field, const char *value);
/* "https://host:1234/x" -> "host" (IPv6 without brackets); caller frees; NULL if no host. */
char *config_url_host(const char *url);
/* The user's home directory (HOME, else the password database). Borrowed. */
const char *config_home(void);
/* ~/.kontena/certs/<host>_<port>.pem for a master URL with an explicit port (so two masters
 * on one host keep their own certificates), else ~/.kontena/certs/<host>.pem; caller frees;
 * NULL if the URL has no host. */
char *config_cert_path(const char *url);
/* ~/.kontena/certs/<host>.pem, the original's name, read when the per-port file is absent. */
char *config_cert_path_host(const char *url);
/* Copy the PEM certificate file `src` to config_cert_path(url), creating ~/.kontena and
 * ~/.kontena/certs with mode 0700. The file must contain a PEM certificate. */
enum status config_install_cert(const char *url, const char *src, struct err *e) WARN_UNUSED_RESULT;

#endif
