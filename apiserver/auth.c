/* apiserver/auth.c -- users, roles, password login, access tokens, and the bearer-token
 * check every authenticated route goes through.
 *
 * Tokens are 32 random bytes as hex, handed out once. etcd keeps only their SHA-256
 * (/kontena/tokens/<sha256>); the token id shown to users is the first 16 hex digits of that
 * digest, so a lookup by id is a prefix range. Expiring tokens sit on an etcd lease that
 * outlives them by a minute, so etcd removes dead tokens itself.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/api.h"
#include "apiserver/store.h"
#include "apiserver/validate.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "common/banned.h"

#define TOKEN_ID_LEN 16
#define MIN_PASSWORD 8
#define MAX_PASSWORD 1024

static const struct {
    const char *name, *description;
} roles[] = {
    {"master_admin", "Master admin"},
    {"grid_admin", "Grid admin"},
    {"user_admin", "Invite and remove users"},
};

static const char *role_description(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(roles); i++)
        if (strcmp(roles[i].name, name) == 0)
            return roles[i].description;
    return NULL;
}

/* --- permissions ------------------------------------------------------------------------- */

int perm_master_admin(const json_t *user)
{
    const char *email = jstr(user, "email");
    return (email && strcmp(email, "admin") == 0) ||
           json_array_has_string(json_object_get(user, "roles"), "master_admin");
}

int perm_user_admin(const json_t *user)
{
    return perm_master_admin(user) ||
           json_array_has_string(json_object_get(user, "roles"), "user_admin");
}

int perm_grid_admin(const json_t *user, const char *grid)
{
    return perm_master_admin(user) ||
           (json_array_has_string(json_object_get(user, "roles"), "grid_admin") &&
            json_array_has_string(json_object_get(user, "grids"), grid));
}

int perm_grid_access(const json_t *user, const char *grid)
{
    return perm_master_admin(user) ||
           json_array_has_string(json_object_get(user, "grids"), grid);
}

/* --- JSON views -------------------------------------------------------------------------- */

json_t *user_view(const json_t *u)
{
    json_t *rl = json_array(), *v;
    size_t i;

    json_array_foreach(json_object_get(u, "roles"), i, v)
    {
        const char *d = role_description(json_string_value(v));
        json_array_append_new(rl, json_pack("{s:O,s:s}", "name", v, "description", d ? d : ""));
    }
    return json_pack("{s:O?,s:O?,s:O?,s:o,s:O?,s:O?}", "id", json_object_get(u, "id"), "email",
                     json_object_get(u, "email"), "name", json_object_get(u, "name"), "roles",
                     rl, "grids", json_object_get(u, "grids"), "created_at",
                     json_object_get(u, "created_at"));
}

/* tok: stored token object; user: its owner (may be NULL); plain: the token when just
 * created (else NULL). */
static json_t *token_view(struct req *r, const json_t *tok, const json_t *user, const char *plain)
{
    json_t *exp = json_null();
    const char *expires_at = jstr(tok, "expires_at");

    if (expires_at) {
        /* Rounded up: a token asked for 600 s shows 600, not 599. */
        int64_t left = (time_iso8601_parse(expires_at) - time_now_us() + 999999) / 1000000;
        exp = json_integer(left > 0 ? left : 0);
    }
    return json_pack("{s:O,s:s,s:s?,s:n,s:O,s:n,s:o,s:O,s:O,s:O,s:O?,s:{s:O?,s:O?,s:O?},s:{s:s}}",
                     "id", json_object_get(tok, "id"), "token_type", "bearer", "access_token",
                     plain, "refresh_token", "access_token_last_four",
                     json_object_get(tok, "last_four"), "refresh_token_last_four", "expires_in",
                     exp, "scopes", json_object_get(tok, "scopes"), "description",
                     json_object_get(tok, "description"), "created_at",
                     json_object_get(tok, "created_at"), "expires_at",
                     json_object_get(tok, "expires_at"), "user", "id",
                     user ? json_object_get(user, "id") : NULL, "email",
                     json_object_get(tok, "user"), "name",
                     user ? json_object_get(user, "name") : NULL, "server", "name",
                     r->api->cfg.server_name);
}

/* --- tokens ------------------------------------------------------------------------------ */

/* Issue a token for user (email). expires_in 0 = never. On success *plain and *tok are
 * fresh. */
static enum status token_issue(struct api *a, const char *email, int64_t expires_in,
                               const char *description, const char *kind, char **plain,
                               json_t **tok, struct err *e)
{
    char sha[65], now[40], exp[40], *key, *val;
    int64_t lease = 0;
    enum status st;

    *plain = crypto_random_hex(32);
    *tok = NULL;
    crypto_sha256_hex(*plain, strlen(*plain), sha);
    time_iso8601_now(now, sizeof(now));
    *tok = json_pack("{s:s%,s:s,s:s,s:s,s:s,s:s,s:s}", "id", sha, (size_t)TOKEN_ID_LEN, "user",
                     email, "scopes", "user", "description", description ? description : "",
                     "created_at", now, "last_four", *plain + 60, "kind", kind);
    if (expires_in > 0) {
        time_iso8601(time_now_us() + expires_in * 1000000, exp, sizeof(exp));
        json_object_set_new(*tok, "expires_at", json_string(exp));
        st = etcd_lease_grant(a->etcd, expires_in + 60, &lease, e);
        if (st != ST_OK)
            goto fail;
    }
    key = key_token(sha);
    val = store_dump(*tok);
    st = etcd_put_if(a->etcd, key, val, strlen(val), 0, lease, NULL, e);
    free(key);
    free(val);
    if (st == ST_OK)
        return ST_OK;
fail:
    FREE_AND_NULL(*plain);
    json_decref(*tok);
    *tok = NULL;
    return st;
}

/* Find a token by its id (16 hex digits) or by the token itself. */
static enum status token_find(struct api *a, const char *id_or_token, json_t **tok, char **key,
                              struct err *e)
{
    char sha[65], *prefix;
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX, .limit = 2};
    struct etcd_range_result res = {0};
    enum status st;
    size_t n = strlen(id_or_token);
    int is_id = n == TOKEN_ID_LEN;

    *tok = NULL;
    *key = NULL;
    for (size_t i = 0; i < n && is_id; i++)
        is_id = isxdigit((unsigned char)id_or_token[i]) && !isupper((unsigned char)id_or_token[i]);
    if (!is_id) {
        int64_t rev;
        crypto_sha256_hex(id_or_token, n, sha);
        *key = key_token(sha);
        st = store_get(a->etcd, *key, tok, &rev, e);
        if (st != ST_OK)
            FREE_AND_NULL(*key);
        return st == ST_NOTFOUND ? err_set(e, ST_NOTFOUND, "Token not found") : st;
    }
    prefix = key_token(id_or_token);
    st = etcd_range(a->etcd, prefix, &o, &res, e);
    free(prefix);
    if (st != ST_OK)
        return st;
    if (res.n != 1) {
        etcd_range_result_release(&res);
        return err_set(e, ST_NOTFOUND, "Token not found");
    }
    *tok = json_loadb(res.kvs[0].value, res.kvs[0].value_len, 0, NULL);
    *key = xstrdup(res.kvs[0].key);
    etcd_range_result_release(&res);
    if (!*tok) {
        FREE_AND_NULL(*key);
        return err_set(e, ST_INVALID, "token record is not JSON");
    }
    return ST_OK;
}

static int token_expired(const json_t *tok)
{
    const char *exp = jstr(tok, "expires_at");
    return exp && time_iso8601_parse(exp) <= time_now_us();
}

static void reply_bad_token(struct req *r, const char *desc)
{
    reply_json(r, 403, json_pack("{s:s,s:s}", "error", "invalid_token", "error_description", desc));
}

/* Read key for auth: on failure fill the reply (missing -> 403 Invalid token) and
 * return NULL. */
static json_t *auth_read(struct req *r, const char *key)
{
    json_t *obj = NULL;
    struct err e = ERR_INIT;
    enum status st = store_get(r->api->etcd, key, &obj, NULL, &e);

    if (st == ST_NOTFOUND)
        reply_bad_token(r, "Invalid token");
    else if (st != ST_OK)
        reply_status(r, st, &e);
    return obj;
}

int auth_authenticate(struct req *r)
{
    const char *h = req_header(r, "Authorization");
    char sha[65], *key;
    json_t *tok, *user = NULL;

    if (!h || strncasecmp(h, "Bearer ", 7) != 0 || strlen(h + 7) == 0 || strlen(h + 7) > 256) {
        reply_bad_token(r, "Invalid token");
        return 0;
    }
    crypto_sha256_hex(h + 7, strlen(h + 7), sha);
    key = key_token(sha);
    tok = auth_read(r, key);
    free(key);
    if (tok && token_expired(tok)) {
        reply_bad_token(r, "Token expired");
    } else if (tok) {
        key = key_user(jstr(tok, "user") ? jstr(tok, "user") : "");
        user = auth_read(r, key);
        free(key);
    }
    json_decref(tok);
    if (!user)
        return 0;
    r->who = xcalloc(1, sizeof(*r->who));
    r->who->user = user;
    r->who->email = jstr(user, "email");
    return 1;
}

void principal_free(struct principal *p)
{
    if (!p)
        return;
    json_decref(p->user);
    free(p);
}

/* Read an optional non-negative integer field; -1 on a wrong type. */
static int64_t opt_nonneg_int(const json_t *obj, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return dflt;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    return json_integer_value(v);
}

/* POST /oauth2/token {grant_type:"password", username, password, expires_in, description} */
static void h_login(struct req *r, char **params)
{
    const char *gt = jstr(r->json, "grant_type"), *username = jstr(r->json, "username"),
               *password = jstr(r->json, "password");
    int64_t expires_in = opt_nonneg_int(r->json, "expires_in", 0);
    json_t *user = NULL, *tok = NULL;
    char *key = NULL, *plain = NULL;
    struct err e = ERR_INIT;
    enum status st;

    (void)params;
    if (!gt || strcmp(gt, "password") != 0) {
        reply_json(r, 400, json_pack("{s:s,s:s}", "error", "unsupported_grant_type",
                                     "error_description", "only grant_type 'password' is supported"));
        return;
    }
    if (!username || !password || expires_in == -1) {
        reply_json(r, 400, json_pack("{s:s,s:s}", "error", "invalid_request", "error_description",
                                     "username and password are required; expires_in must be a "
                                     "non-negative integer"));
        return;
    }
    snprintf(r->audit_name, sizeof(r->audit_name), "%s", username);
    snprintf(r->audit_id, sizeof(r->audit_id), "%s", username);
    key = key_user(username);
    st = valid_email(username) ? store_get(r->api->etcd, key, &user, NULL, &e) : ST_NOTFOUND;
    if (st != ST_OK && st != ST_NOTFOUND) {
        reply_status(r, st, &e);
        goto out;
    }
    /* Hash even for unknown users so that timing does not tell which names exist. */
    st = crypto_password_verify(password,
                                user && jstr(user, "password_hash")
                                    ? jstr(user, "password_hash")
                                    : "scrypt$15$8$1$00000000000000000000000000000000$"
                                      "0000000000000000000000000000000000000000000000000000000000000000",
                                &e);
    if (!user || st != ST_OK) {
        reply_json(r, 403, json_pack("{s:s,s:s}", "error", "invalid_grant", "error_description",
                                     "Invalid username or password"));
        goto out;
    }
    st = token_issue(r->api, username, expires_in, jstr(r->json, "description"), "login", &plain,
                     &tok, &e);
    if (st != ST_OK) {
        reply_status(r, st, &e);
        goto out;
    }
    reply_json(r, 201, token_view(r, tok, user, plain));
    /* The audit entry of a successful login names the user who logged in. */
    r->who = xcalloc(1, sizeof(*r->who));
    r->who->user = json_incref(user);
    r->who->email = jstr(user, "email");
out:
    free(key);
    free(plain);
    json_decref(tok);
    json_decref(user);
}

/* POST /oauth2/authorize {response_type:"token", scope, expires_in, description, user} */
static void h_token_create(struct req *r, char **params)
{
    const char *rt = jstr(r->json, "response_type"), *for_user = jstr(r->json, "user");
    const char *scope = jstr(r->json, "scope");
    int64_t expires_in = opt_nonneg_int(r->json, "expires_in", 0);
    json_t *owner = NULL, *tok = NULL;
    char *plain = NULL, *key = NULL;
    struct err e = ERR_INIT;
    enum status st;

    (void)params;
    if (rt && strcmp(rt, "token") != 0) {
        reply_json(r, 400, json_pack("{s:s,s:s}", "error", "unsupported_response_type",
                                     "error_description", "only response_type 'token' is supported"));
        return;
    }
    if (scope && strcmp(scope, "user") != 0 && strcmp(scope, "user,owner") != 0 &&
        strcmp(scope, "owner") != 0) {
        reply_invalid(r, "scope", "Scope '%s' is not valid: use user or owner", scope);
        return;
    }
    if (expires_in == -1) {
        reply_invalid(r, "expires_in", "Expires in must be a non-negative integer");
        return;
    }
    if (for_user && strcmp(for_user, r->who->email) != 0) {
        if (!perm_master_admin(r->who->user)) {
            reply_error(r, 403, "Operation not allowed");
            return;
        }
        key = key_user(for_user);
        st = store_get(r->api->etcd, key, &owner, NULL, &e);
        free(key);
        if (st == ST_NOTFOUND) {
            reply_error(r, 404, "User not found");
            return;
        } else if (st != ST_OK) {
            reply_status(r, st, &e);
            return;
        }
    } else {
        owner = json_incref(r->who->user);
    }
    st = token_issue(r->api, jstr(owner, "email"), expires_in, jstr(r->json, "description"), "api",
                     &plain, &tok, &e);
    if (st != ST_OK) {
        reply_status(r, st, &e);
    } else {
        snprintf(r->audit_id, sizeof(r->audit_id), "%s", jstr(tok, "id"));
        snprintf(r->audit_name, sizeof(r->audit_name), "%s", jstr(owner, "email"));
        reply_json(r, 201, token_view(r, tok, owner, plain));
    }
    free(plain);
    json_decref(tok);
    json_decref(owner);
}

static void h_token_list(struct req *r, char **params)
{
    json_t *all = NULL, *out = json_array(), *t;
    struct err e = ERR_INIT;
    enum status st;
    size_t i;

    (void)params;
    st = store_list(r->api->etcd, KEY_TOKENS, 1, &all, &e);
    if (st != ST_OK) {
        json_decref(out);
        reply_status(r, st, &e);
        return;
    }
    json_array_foreach(all, i, t)
    {
        const char *u = jstr(t, "user");
        if (u && strcmp(u, r->who->email) == 0 && !token_expired(t))
            json_array_append_new(out, token_view(r, t, r->who->user, NULL));
    }
    json_decref(all);
    reply_json(r, 200, json_pack("{s:o}", "tokens", out));
}

/* Look up a token the caller may see (its own, or any for a master admin). */
static int token_for_caller(struct req *r, const char *id, json_t **tok, char **key)
{
    struct err e = ERR_INIT;
    enum status st = token_find(r->api, id, tok, key, &e);
    const char *u;

    if (st != ST_OK) {
        reply_status(r, st, &e);
        return 0;
    }
    u = jstr(*tok, "user");
    if (!(u && strcmp(u, r->who->email) == 0) && !perm_master_admin(r->who->user)) {
        /* Not revealing other users' token ids. */
        reply_error(r, 404, "Token not found");
        json_decref(*tok);
        FREE_AND_NULL(*key);
        *tok = NULL;
        return 0;
    }
    return 1;
}

static void h_token_show(struct req *r, char **params)
{
    json_t *tok, *owner = NULL;
    char *key;
    const char *u;

    if (!token_for_caller(r, params[0], &tok, &key))
        return;
    u = jstr(tok, "user");
    if (u && strcmp(u, r->who->email) == 0) {
        owner = json_incref(r->who->user);
    } else if (u) { /* a master admin looking at someone else's token */
        char *ukey = key_user(u);
        if (store_get(r->api->etcd, ukey, &owner, NULL, NULL) != ST_OK)
            owner = NULL;
        free(ukey);
    }
    reply_json(r, 200, token_view(r, tok, owner, NULL));
    json_decref(owner);
    json_decref(tok);
    free(key);
}

static void h_token_delete(struct req *r, char **params)
{
    json_t *tok;
    char *key;
    struct err e = ERR_INIT;
    enum status st;

    if (!token_for_caller(r, params[0], &tok, &key))
        return;
    snprintf(r->audit_id, sizeof(r->audit_id), "%s", jstr(tok, "id"));
    snprintf(r->audit_name, sizeof(r->audit_name), "%s", jstr(tok, "user"));
    st = etcd_delete(r->api->etcd, key, NULL, NULL, &e);
    if (st != ST_OK)
        reply_status(r, st, &e);
    else
        reply_json(r, 200, json_object());
    json_decref(tok);
    free(key);
}

/* --- users ------------------------------------------------------------------------------- */

static void h_whoami(struct req *r, char **params)
{
    (void)params;
    reply_json(r, 200, user_view(r->who->user));
}

static void h_users_list(struct req *r, char **params)
{
    json_t *all = NULL, *out, *u;
    struct err e = ERR_INIT;
    enum status st;
    size_t i;

    (void)params;
    if (!perm_user_admin(r->who->user)) {
        reply_error(r, 403, "Operation not allowed");
        return;
    }
    st = store_list(r->api->etcd, KEY_USERS, 1, &all, &e);
    if (st != ST_OK) {
        reply_status(r, st, &e);
        return;
    }
    out = json_array();
    json_array_foreach(all, i, u) json_array_append_new(out, user_view(u));
    json_decref(all);
    reply_json(r, 200, json_pack("{s:o}", "users", out));
}

/* Validate a password; on failure adds a message to errs. */
static void check_password(const char *pw, json_t *errs)
{
    if (!pw)
        json_object_set_new(errs, "password", json_string("Password is required"));
    else if (strlen(pw) < MIN_PASSWORD)
        json_object_set_new(errs, "password",
                            json_sprintf("Password must be at least %d characters", MIN_PASSWORD));
    else if (strlen(pw) > MAX_PASSWORD)
        json_object_set_new(errs, "password", json_string("Password is too long"));
}

static json_t *new_user(const char *email, const char *name, const char *hash, json_t *rl)
{
    char now[40], *id = crypto_random_hex(12);
    json_t *u;

    time_iso8601_now(now, sizeof(now));
    u = json_pack("{s:s,s:s,s:s,s:o,s:[],s:s,s:s,s:s}", "id", id, "email", email, "name",
                  name ? name : email, "roles", rl ? rl : json_array(), "grids",
                  "password_hash", hash, "created_at", now, "updated_at", now);
    free(id);
    return u;
}

static void h_user_create(struct req *r, char **params)
{
    const char *email = jstr(r->json, "email"), *name = jstr(r->json, "name");
    const char *pw = jstr(r->json, "password");
    json_t *rl = json_object_get(r->json, "roles"), *errs = json_object(), *u = NULL, *v;
    char *hash = NULL, *key = NULL;
    struct err e = ERR_INIT;
    enum status st;
    size_t i;

    (void)params;
    if (!perm_user_admin(r->who->user)) {
        json_decref(errs);
        reply_error(r, 403, "Operation not allowed");
        return;
    }
    if (!email)
        json_object_set_new(errs, "email", json_string("Email is required"));
    else if (!valid_email(email))
        json_object_set_new(errs, "email", json_string("Email isn't in the right format"));
    check_password(pw, errs);
    if (json_object_get(r->json, "name") && (!name || strlen(name) > 200))
        json_object_set_new(errs, "name", json_string("Name must be a string of at most 200 characters"));
    if (rl && !json_all_strings(rl)) {
        json_object_set_new(errs, "roles", json_string("Roles must be an array of role names"));
    } else if (rl) {
        json_array_foreach(rl, i, v) if (!role_description(json_string_value(v)))
        {
            json_object_set_new(errs, "roles",
                                json_sprintf("Role '%s' not found", json_string_value(v)));
            break;
        }
        if (json_array_size(rl) && !perm_master_admin(r->who->user))
            json_object_set_new(errs, "roles", json_string("Only a master admin can give roles"));
    }
    if (json_object_size(errs)) {
        reply_invalid_obj(r, errs);
        return;
    }
    json_decref(errs);
    snprintf(r->audit_name, sizeof(r->audit_name), "%s", email);
    snprintf(r->audit_id, sizeof(r->audit_id), "%s", email);
    st = crypto_password_hash(pw, &hash, &e);
    if (st == ST_OK) {
        u = new_user(email, name, hash, rl ? json_deep_copy(rl) : NULL);
        key = key_user(email);
        st = store_create(r->api->etcd, key, u, &e);
    }
    if (st == ST_CONFLICT)
        reply_json(r, 409,
                   json_pack("{s:{s:s+}}", "error", "email", "User already exists: ", email));
    else if (st != ST_OK)
        reply_status(r, st, &e);
    else
        reply_json(r, 201, user_view(u));
    json_decref(u);
    free(hash);
    free(key);
}

/* Number of users other than `except` that are master admins. */
static enum status other_master_admins(struct api *a, const char *except, int *n, struct err *e)
{
    json_t *all = NULL, *u;
    size_t i;
    enum status st = store_list(a->etcd, KEY_USERS, 1, &all, e);

    *n = 0;
    if (st != ST_OK)
        return st;
    json_array_foreach(all, i, u)
    {
        const char *em = jstr(u, "email");
        if (em && strcmp(em, except) != 0 && perm_master_admin(u))
            (*n)++;
    }
    json_decref(all);
    return ST_OK;
}

/* Remove every token that belongs to email. */
static enum status revoke_user_tokens(struct api *a, const char *email, struct err *e)
{
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX};
    struct etcd_range_result res = {0};
    enum status st = etcd_range(a->etcd, KEY_TOKENS, &o, &res, e);

    for (size_t i = 0; st == ST_OK && i < res.n; i++) {
        json_t *t = json_loadb(res.kvs[i].value, res.kvs[i].value_len, 0, NULL);
        const char *u = jstr(t, "user");
        if (u && strcmp(u, email) == 0)
            st = etcd_delete(a->etcd, res.kvs[i].key, NULL, NULL, e);
        json_decref(t);
    }
    etcd_range_result_release(&res);
    return st;
}

static void h_user_delete(struct req *r, char **params)
{
    const char *email = params[0];
    json_t *u = NULL;
    char *key = key_user(email);
    int64_t rev = 0;
    int others = 0;
    struct err e = ERR_INIT;
    enum status st;

    snprintf(r->audit_name, sizeof(r->audit_name), "%s", email);
    snprintf(r->audit_id, sizeof(r->audit_id), "%s", email);
    if (!perm_user_admin(r->who->user)) {
        reply_error(r, 403, "Operation not allowed");
        goto out;
    }
    if (strcmp(email, r->who->email) == 0) {
        reply_json(r, 400, json_pack("{s:{s:s}}", "error", "user", "Cannot remove itself"));
        goto out;
    }
    st = store_get(r->api->etcd, key, &u, &rev, &e);
    if (st == ST_NOTFOUND) {
        reply_error(r, 404, "User not found");
        goto out;
    }
    if (st == ST_OK && perm_master_admin(u)) {
        st = other_master_admins(r->api, email, &others, &e);
        if (st == ST_OK && others == 0) {
            reply_invalid(r, "user", "Cannot remove the last master admin");
            goto out;
        }
    }
    if (st == ST_OK)
        st = etcd_delete_if(r->api->etcd, key, rev, &e);
    if (st == ST_OK)
        st = revoke_user_tokens(r->api, email, &e);
    if (st != ST_OK)
        reply_status(r, st, &e);
    else
        reply_json(r, 200, json_object());
out:
    json_decref(u);
    free(key);
}

struct user_edit {
    const char *role;    /* role to add or remove */
    int add;
    const char *hash;    /* new password hash */
    const char *name;
};

static enum status edit_user(json_t *u, void *arg, struct err *e)
{
    struct user_edit *ed = arg;
    json_t *rl = json_object_get(u, "roles");
    char now[40];

    (void)e;
    if (!json_is_array(rl)) {
        rl = json_array();
        json_object_set_new(u, "roles", rl);
    }
    if (ed->role && ed->add && !json_array_has_string(rl, ed->role))
        json_array_append_new(rl, json_string(ed->role));
    if (ed->role && !ed->add)
        for (size_t i = json_array_size(rl); i-- > 0;)
            if (strcmp(json_string_value(json_array_get(rl, i)), ed->role) == 0)
                json_array_remove(rl, i);
    if (ed->hash)
        json_object_set_new(u, "password_hash", json_string(ed->hash));
    if (ed->name)
        json_object_set_new(u, "name", json_string(ed->name));
    time_iso8601_now(now, sizeof(now));
    json_object_set_new(u, "updated_at", json_string(now));
    return ST_OK;
}

static void update_user(struct req *r, const char *email, struct user_edit *ed, unsigned ok_status)
{
    char *key = key_user(email);
    json_t *u = NULL;
    struct err e = ERR_INIT;
    enum status st = store_update(r->api->etcd, key, edit_user, ed, &u, &e);

    if (st == ST_NOTFOUND)
        reply_error(r, 404, "User not found");
    else if (st != ST_OK)
        reply_status(r, st, &e);
    else
        reply_json(r, ok_status, user_view(u));
    json_decref(u);
    free(key);
}

/* PUT /v1/users/:email {password?, name?}: yourself, or any user as a user admin. */
static void h_user_update(struct req *r, char **params)
{
    const char *pw = jstr(r->json, "password"), *name = jstr(r->json, "name");
    struct user_edit ed = {0};
    json_t *errs = json_object();
    char *hash = NULL;
    struct err e = ERR_INIT;

    snprintf(r->audit_name, sizeof(r->audit_name), "%s", params[0]);
    snprintf(r->audit_id, sizeof(r->audit_id), "%s", params[0]);
    if (strcmp(params[0], r->who->email) != 0 && !perm_user_admin(r->who->user)) {
        json_decref(errs);
        reply_error(r, 403, "Operation not allowed");
        return;
    }
    if (json_object_get(r->json, "password"))
        check_password(pw, errs);
    if (json_object_get(r->json, "name") && (!name || strlen(name) > 200))
        json_object_set_new(errs, "name", json_string("Name must be a string of at most 200 characters"));
    if (json_object_size(errs)) {
        reply_invalid_obj(r, errs);
        return;
    }
    json_decref(errs);
    if (pw && crypto_password_hash(pw, &hash, &e) != ST_OK) {
        reply_status(r, e.st, &e);
        return;
    }
    ed.hash = hash;
    ed.name = name;
    update_user(r, params[0], &ed, 200);
    free(hash);
}

static void h_role_add(struct req *r, char **params)
{
    const char *role = jstr(r->json, "role");
    struct user_edit ed = {.role = role, .add = 1};

    snprintf(r->audit_name, sizeof(r->audit_name), "%s", params[0]);
    snprintf(r->audit_id, sizeof(r->audit_id), "%s", params[0]);
    if (!perm_master_admin(r->who->user)) {
        reply_invalid(r, "current_user", "Operation not allowed");
        r->status = 403;
        return;
    }
    if (!role || !role_description(role)) {
        reply_invalid(r, "role", "Role '%s' not found", role ? role : "");
        return;
    }
    update_user(r, params[0], &ed, 201);
}

static void h_role_remove(struct req *r, char **params)
{
    struct user_edit ed = {.role = params[1], .add = 0};
    int others = 0;
    struct err e = ERR_INIT;

    snprintf(r->audit_name, sizeof(r->audit_name), "%s", params[0]);
    snprintf(r->audit_id, sizeof(r->audit_id), "%s", params[0]);
    if (!perm_master_admin(r->who->user)) {
        reply_error(r, 403, "Operation not allowed");
        return;
    }
    if (!role_description(params[1])) {
        reply_invalid(r, "role", "Role '%s' not found", params[1]);
        return;
    }
    if (strcmp(params[1], "master_admin") == 0 && strcmp(params[0], "admin") != 0) {
        if (other_master_admins(r->api, params[0], &others, &e) != ST_OK) {
            reply_status(r, e.st, &e);
            return;
        }
        if (others == 0) {
            reply_invalid(r, "role", "Cannot remove the role of the last master admin");
            return;
        }
    }
    update_user(r, params[0], &ed, 200);
}

enum status auth_bootstrap_admin(struct api *a, const char *password, struct err *e)
{
    char *hash = NULL, *key = key_user("admin");
    json_t *u = NULL;
    enum status st;

    if (strlen(password) < MIN_PASSWORD) {
        st = err_set(e, ST_INVALID, "initial admin password must be at least %d characters",
                     MIN_PASSWORD);
        goto out;
    }
    st = store_get(a->etcd, key, &u, NULL, e);
    if (st == ST_OK) {
        log_info("msg=\"user 'admin' exists; initial admin password not applied\"");
        goto out;
    }
    if (st != ST_NOTFOUND)
        goto out;
    st = crypto_password_hash(password, &hash, e);
    if (st != ST_OK)
        goto out;
    u = new_user("admin", "admin", hash, json_pack("[s]", "master_admin"));
    st = store_create(a->etcd, key, u, e);
    if (st == ST_CONFLICT) /* another API server created it at the same time */
        st = ST_OK;
    else if (st == ST_OK)
        log_info("msg=\"created user 'admin' (master_admin)\"");
out:
    json_decref(u);
    free(hash);
    free(key);
    return st;
}

const struct route auth_routes[] = {
    {"POST", "/oauth2/token", AUTH_NONE, h_login, "login", "User"},
    {"POST", "/oauth2/authorize", AUTH_TOKEN, h_token_create, "create", "AccessToken"},
    {"GET", "/oauth2/tokens", AUTH_TOKEN, h_token_list, NULL, NULL},
    {"GET", "/oauth2/tokens/:id", AUTH_TOKEN, h_token_show, NULL, NULL},
    {"DELETE", "/oauth2/tokens/:id", AUTH_TOKEN, h_token_delete, "delete", "AccessToken"},
    {"GET", "/v1/user", AUTH_TOKEN, h_whoami, NULL, NULL},
    {"GET", "/v1/users", AUTH_TOKEN, h_users_list, NULL, NULL},
    {"POST", "/v1/users", AUTH_TOKEN, h_user_create, "create", "User"},
    {"PUT", "/v1/users/:email", AUTH_TOKEN, h_user_update, "update", "User"},
    {"DELETE", "/v1/users/:email", AUTH_TOKEN, h_user_delete, "delete", "User"},
    {"POST", "/v1/users/:email/roles", AUTH_TOKEN, h_role_add, "add role", "User"},
    {"DELETE", "/v1/users/:email/roles/:role", AUTH_TOKEN, h_role_remove, "remove role", "User"},
    {NULL, NULL, AUTH_NONE, NULL, NULL, NULL},
};
