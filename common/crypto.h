/* common/crypto.h -- the few OpenSSL operations the platform needs, in one place.
 *
 * Everything returns enum status; output strings are fresh memory the caller frees.
 */
#ifndef COMMON_CRYPTO_H
#define COMMON_CRYPTO_H

#include <stddef.h>

#include "common/err.h"

/* n random bytes into out. Aborts if the RNG fails. */
void crypto_random_bytes(void *out, size_t n);
/* nbytes random bytes as lower-case hex (2*nbytes chars). Aborts if the RNG fails. */
char *crypto_random_hex(size_t nbytes);
/* SHA-256 of data as 64 lower-case hex chars into out[65]. */
void crypto_sha256_hex(const void *data, size_t len, char out[65]);
/* Constant-time string equality (lengths compared first, which leaks only the length). */
int crypto_streq(const char *a, const char *b);

/* Standard base64 (with padding). encode never fails; decode returns NULL on bad input and
 * sets *outlen. The decoded buffer is NUL-terminated for convenience. */
char *crypto_b64_encode(const void *data, size_t len);
char *crypto_b64_decode(const char *s, size_t slen, size_t *outlen);

/* Password hashing with scrypt (N=2^15, r=8, p=1, 16-byte salt). The stored form is
 * "scrypt$15$8$1$<salt hex>$<hash hex>". verify returns ST_OK on match, ST_DENIED on
 * mismatch, ST_INVALID if the stored form is not understood. */
enum status crypto_password_hash(const char *password, char **out, struct err *e);
enum status crypto_password_verify(const char *password, const char *stored, struct err *e);

/* A self-signed EC P-256 server certificate valid for `days`, with subjectAltName
 * DNS:localhost, IP:127.0.0.1, IP:::1 plus `extra_san` (e.g. "DNS:master.example,IP:10.0.0.1",
 * may be NULL). PEMs (key in PKCS#8) and the SHA-256 fingerprint of the DER certificate as
 * hex are returned in fresh memory. */
enum status crypto_selfsigned_cert(const char *cn, const char *extra_san, int days,
                                   char **cert_pem, char **key_pem, char **fingerprint_hex,
                                   struct err *e);
/* SHA-256 fingerprint (hex) of the first certificate in a PEM string. */
enum status crypto_cert_fingerprint(const char *cert_pem, char **fingerprint_hex,
                                    struct err *e);

#endif
