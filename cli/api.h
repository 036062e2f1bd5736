/* cli/api.h -- blocking JSON-over-HTTP(S) client for the master's API (libcurl).
 *
 * Every request carries Accept and Content-Type application/json, User-Agent
 * kontena-cli/<version> and, when a token is set, Authorization: Bearer <token>. Reply bodies
 * are capped at API_MAX_REPLY bytes. Timeouts: connect EXCON_CONNECT_TIMEOUT seconds
 * (default 10), whole request EXCON_READ_TIMEOUT (default 30).
 *
 * TLS: the system CAs are trusted, plus ~/.kontena/certs/<master host>.pem when that file
 * exists (how the original CLI trusted a master's self-signed certificate).
 * SSL_IGNORE_ERRORS=true turns verification off.
 *
 * Errors: a request that fails returns a status other than ST_OK and keeps a message for
 * api_error(), formatted as the original CLI did (cli.md §1.2, without " [error] "):
 *   "404 : Grid x not found (/v1/grids/x)"
 *   "403 : Invalid token (/v1/user)"                 (error_description wins over error)
 *   "422 : Unprocessable Entity:\n\tgrid: grid 'x' still has 2 nodes"
 *   "cannot connect to https://...: Connection refused"
 */
#ifndef CLI_API_H
#define CLI_API_H

#include <jansson.h>
#include <stddef.h>

#include "common/err.h"

#define API_MAX_REPLY (16u << 20)

struct api;

/* A client for the master at url ("https://host:9292", trailing slashes ignored). token may
 * be NULL. debug prints one line per request and per reply to stderr. */
struct api *api_create(const char *url, const char *token, int debug);
void api_destroy(struct api *a); /* NULL is fine */
void api_set_token(struct api *a, const char *token);
const char *api_url(const struct api *a); /* without trailing slash; borrowed */

/* Send method path (starting with "/", query included) with body (borrowed, may be NULL).
 * On a 2xx reply *out gets the parsed body (new reference; an empty body gives {}).
 * Otherwise *out is NULL and the status tells what happened: ST_NOTFOUND (404),
 * ST_DENIED (401/403), ST_CONFLICT (409), ST_INVALID (400/422 and other 4xx, or a reply
 * over the cap or not JSON), ST_RETRY (cannot connect, timeout), ST_IO (5xx and the rest). */
enum status api_call(struct api *a, const char *method, const char *path, const json_t *body,
                     json_t **out) WARN_UNUSED_RESULT;
enum status api_get(struct api *a, const char *path, json_t **out) WARN_UNUSED_RESULT;

/* Stream a GET: fn gets each piece of a 2xx reply's body as it arrives (any split) and
 * returns 0 to go on, anything else to stop (api_stream() then returns ST_OK). No overall
 * timeout (a follow stream never ends on its own); idle_s seconds without a byte (> 0;
 * keep-alives count) break it. Returns ST_OK when the reply ended or fn stopped it;
 * ST_RETRY when the master could not be reached or the stream broke midway; else the
 * status of a non-2xx reply as api_call() maps it, with api_error() set. */
typedef int api_stream_fn(const char *data, size_t len, void *arg);
enum status api_stream(struct api *a, const char *path, long idle_s, api_stream_fn *fn,
                       void *arg) WARN_UNUSED_RESULT;

/* The last failure's message (borrowed, valid until the next call) and HTTP status (0 when no
 * reply arrived). */
const char *api_error(const struct api *a);
long api_status(const struct api *a);
/* X-Kontena-Version of the last reply that had one, or NULL. */
const char *api_server_version(const struct api *a);

/* The error message for a reply with this status and body, as api_error() gives it; caller
 * frees. Exposed for tests. */
char *api_format_error(long status, const char *body, size_t len, const char *path);
/* The standard reason phrase of an HTTP status ("Unprocessable Entity"). */
const char *api_reason(long status);

#endif
