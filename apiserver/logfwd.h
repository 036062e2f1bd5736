/* apiserver/logfwd.h -- forwarding stored log lines to a grid's syslog server.
 *
 * A grid with logs {"forwarder": "syslog", "opts": {"syslog-address": "udp://host:port" |
 * "tcp://host:port"}} gets every line this apiserver stores for it sent as RFC 5424:
 *
 *   <PRI>1 <created_at, µs> <node> <stack>.<service> <instance or -> <stdout|stderr> - <data>
 *
 * (facility user; severity info for stdout, err for stderr; unmanaged containers use their
 * name as APP-NAME). UDP: one datagram per line; TCP: octet-counting framing (RFC 6587).
 * logfwd_line() never blocks: lines go to a bounded queue (LOGFWD_QUEUE_MAX lines or
 * LOGFWD_QUEUE_BYTES) drained by one sender thread; a full queue drops the line (counted).
 * The grids' settings are re-read from etcd every LOGFWD_REFRESH_MS and on logfwd_kick().
 * docs/internals/logs.md.
 */
#ifndef APISERVER_LOGFWD_H
#define APISERVER_LOGFWD_H

#include <stddef.h>

#include "apiserver/logstore.h"

#define LOGFWD_QUEUE_MAX 20000
#define LOGFWD_QUEUE_BYTES (8u << 20)
#define LOGFWD_REFRESH_MS 2000
#define LOGFWD_MSG_MAX 8192 /* longer messages are cut (rsyslog's default maximum) */

struct api;
struct logfwd;

/* Start the sender thread. */
struct logfwd *logfwd_start(struct api *a);
/* Stop it (queued lines are sent for at most about a second). NULL is fine. */
void logfwd_stop(struct logfwd *f);
/* Queue a stored line of grid for its forwarder, if the grid has one. Any thread. */
void logfwd_line(struct logfwd *f, const char *grid, const struct log_item *it,
                 const char *created_at);
/* Re-read the grids' settings now (after a grid was created or updated). NULL is fine. */
void logfwd_kick(struct logfwd *f);

/* Whether addr is "udp://host:port" or "tcp://host:port" (port 1..65535, host 1..253
 * characters of [A-Za-z0-9.-:] or an IPv6 literal in brackets). 1 if so; else 0 with why. */
int logfwd_address_ok(const char *addr, char *why, size_t whylen);
/* The RFC 5424 message for a line (without framing) into out; returns its length. */
size_t logfwd_format(char *out, size_t cap, const struct log_item *it, const char *created_at);

#endif
