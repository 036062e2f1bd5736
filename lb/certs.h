/* lb/certs.h -- TLS certificates from the LB's environment into files haproxy loads
 * (reference networking-lb-health.md §7.6).
 *
 *   SSL_CERTS       one or more PEM bundles concatenated; split after every
 *                   "-----END ... PRIVATE KEY-----" line; the k-th valid bundle (k from 1)
 *                   becomes cert<k>_gen.pem
 *   SSL_CERT_<x>    one bundle, written as SSL_CERT_<x>.pem (but SSL_CERT_FILE and
 *                   SSL_CERT_DIR, OpenSSL's own variables, are left alone)
 *
 * A bundle whose first certificate does not parse is skipped with a message. Bundle order:
 * certificate, optional chain, private key last.
 */
#ifndef LB_CERTS_H
#define LB_CERTS_H

#include <stddef.h>

#include "common/err.h"

/* Split pem into bundles (fresh strings in *out, *n of them; the tail after the last
 * private key, if any, is a bundle of its own so it can be reported). */
void lb_certs_split(const char *pem, char ***out, size_t *n);
void lb_certs_free(char **v, size_t n);
/* 1 when the first certificate of bundle parses and a private key follows, else 0. */
int lb_cert_valid(const char *bundle);

/* Write the certificates of env[0..n) ("K=V") into dir (created if missing, mode 0700;
 * every *.pem already there is removed first, so a certificate dropped from the env does
 * not linger). *written gets the number of files written; each skipped bundle adds one
 * message to *warnings (fresh strings, *n_warnings of them; free with lb_certs_free).
 * ST_IO when dir cannot be made or written. */
enum status lb_certs_write(const char *dir, const char *const *env, size_t n, int *written,
                           char ***warnings, size_t *n_warnings, struct err *e) WARN_UNUSED_RESULT;

#endif
