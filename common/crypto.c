#include "common/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/xmalloc.h"
#include "common/banned.h"

#define SCRYPT_LOG2N 15
#define SCRYPT_R 8
#define SCRYPT_P 1
#define SALT_LEN 16
#define HASH_LEN 32

static void to_hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int from_hex(const char *in, size_t hexlen, unsigned char *out)
{
    for (size_t i = 0; i < hexlen / 2; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = in[2 * i + k];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else
                return -1;
        }
        out[i] = (unsigned char)v;
    }
    return 0;
}

void crypto_random_bytes(void *out, size_t n)
{
    if (RAND_bytes(out, (int)n) != 1) {
        fprintf(stderr, "fatal: the random number generator failed\n");
        abort();
    }
}

char *crypto_random_hex(size_t nbytes)
{
    unsigned char *raw = xmalloc(nbytes);
    char *out = xmalloc(2 * nbytes + 1);

    crypto_random_bytes(raw, nbytes);
    to_hex(raw, nbytes, out);
    free(raw);
    return out;
}

void crypto_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    to_hex(md, 32, out);
}

int crypto_streq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

char *crypto_b64_encode(const void *data, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

char *crypto_b64_decode(const char *s, size_t slen, size_t *outlen)
{
    unsigned char *out;
    int n;
    size_t pad = 0;

    if (slen % 4 != 0)
        return NULL;
    out = xmalloc(slen / 4 * 3 + 1);
    n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)slen);
    if (n == -1) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts padding bytes as output: take them back off. */
    if (slen >= 1 && s[slen - 1] == '=')
        pad++;
    if (slen >= 2 && s[slen - 2] == '=')
        pad++;
    n -= (int)pad;
    out[n] = '\0';
    if (outlen)
        *outlen = (size_t)n;
    return (char *)out;
}

static int scrypt(const char *pw, const unsigned char *salt, size_t saltlen, int log2n,
                  uint32_t r, uint32_t p, unsigned char *out, size_t outlen)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
    EVP_KDF_CTX *c = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    uint64_t n = 1ull << log2n, maxmem = 256ull << 20;
    OSSL_PARAM ps[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)pw, strlen(pw)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end()};
    int rc = (c && EVP_KDF_derive(c, out, outlen, ps) == 1) ? 0 : -1;

    EVP_KDF_CTX_free(c);
    EVP_KDF_free(kdf);
    return rc;
}

enum status crypto_password_hash(const char *password, char **out, struct err *e)
{
    unsigned char salt[SALT_LEN], hash[HASH_LEN];
    char salthex[2 * SALT_LEN + 1], hashhex[2 * HASH_LEN + 1];

    *out = NULL;
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return err_set(e, ST_IO, "cannot hash password: no random bytes");
    if (scrypt(password, salt, sizeof(salt), SCRYPT_LOG2N, SCRYPT_R, SCRYPT_P, hash,
               sizeof(hash)) == -1)
        return err_set(e, ST_IO, "cannot hash password: scrypt failed");
    to_hex(salt, sizeof(salt), salthex);
    to_hex(hash, sizeof(hash), hashhex);
    *out = xasprintf("scrypt$%d$%d$%d$%s$%s", SCRYPT_LOG2N, SCRYPT_R, SCRYPT_P, salthex, hashhex);
    return ST_OK;
}

enum status crypto_password_verify(const char *password, const char *stored, struct err *e)
{
    int log2n, r, p, off = 0;
    char salthex[2 * SALT_LEN + 1], hashhex[2 * HASH_LEN + 1];
    unsigned char salt[SALT_LEN], want[HASH_LEN], got[HASH_LEN];

    if (sscanf(stored, "scrypt$%d$%d$%d$%32[0-9a-f]$%64[0-9a-f]%n", &log2n, &r, &p, salthex,
               hashhex, &off) != 5 ||
        stored[off] != '\0' || strlen(salthex) != 2 * SALT_LEN ||
        strlen(hashhex) != 2 * HASH_LEN || log2n < 10 || log2n > 20 || r < 1 || r > 32 ||
        p < 1 || p > 16)
        return err_set(e, ST_INVALID, "stored password hash is not in a known format");
    from_hex(salthex, 2 * SALT_LEN, salt);
    from_hex(hashhex, 2 * HASH_LEN, want);
    if (scrypt(password, salt, sizeof(salt), log2n, (uint32_t)r, (uint32_t)p, got,
               sizeof(got)) == -1)
        return err_set(e, ST_IO, "cannot check password: scrypt failed");
    if (CRYPTO_memcmp(got, want, sizeof(got)) != 0)
        return err_set(e, ST_DENIED, "wrong password");
    return ST_OK;
}

static char *bio_string(BIO *b)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    return xstrndup(data, (size_t)n);
}

static char *x509_fingerprint(X509 *x)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char *out = xmalloc(65);

    X509_digest(x, EVP_sha256(), md, &mdlen);
    to_hex(md, 32, out);
    return out;
}

enum status crypto_selfsigned_cert(const char *cn, const char *extra_san, int days,
                                   char **cert_pem, char **key_pem, char **fingerprint_hex,
                                   struct err *e)
{
    enum status st = ST_IO;
    EVP_PKEY *pkey = NULL;
    X509 *x = NULL;
    BIGNUM *bn = NULL;
    BIO *cb = NULL, *kb = NULL;
    X509_NAME *nm;
    X509V3_CTX v3;
    char *san = NULL;

    *cert_pem = *key_pem = NULL;
    if (fingerprint_hex)
        *fingerprint_hex = NULL;
    san = extra_san && *extra_san
              ? xasprintf("DNS:localhost,IP:127.0.0.1,IP:::1,%s", extra_san)
              : xstrdup("DNS:localhost,IP:127.0.0.1,IP:::1");
    const struct {
        int nid;
        const char *val;
    } ext[] = {{NID_subject_alt_name, san},
               {NID_basic_constraints, "critical,CA:FALSE"},
               {NID_subject_key_identifier, "hash"},
               {NID_ext_key_usage, "serverAuth"}};

    pkey = EVP_EC_gen("P-256");
    x = X509_new();
    bn = BN_new();
    if (!pkey || !x || !bn || !BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
        !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) || !X509_set_version(x, X509_VERSION_3) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 86400L * days) || !X509_set_pubkey(x, pkey)) {
        err_set(e, ST_IO, "cannot create certificate: key or fields failed");
        goto out;
    }
    nm = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_set_issuer_name(x, nm)) {
        err_set(e, ST_IO, "cannot create certificate: bad common name '%s'", cn);
        goto out;
    }
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    for (size_t i = 0; i < ARRAY_SIZE(ext); i++) {
        X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &v3, ext[i].nid, ext[i].val);
        if (!ex) {
            err_set(e, ST_INVALID, "cannot create certificate: bad extension '%s'", ext[i].val);
            goto out;
        }
        X509_add_ext(x, ex, -1);
        X509_EXTENSION_free(ex);
    }
    if (!X509_sign(x, pkey, EVP_sha256())) {
        err_set(e, ST_IO, "cannot create certificate: signing failed");
        goto out;
    }
    cb = BIO_new(BIO_s_mem());
    kb = BIO_new(BIO_s_mem());
    if (!cb || !kb || !PEM_write_bio_X509(cb, x) ||
        !PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL)) {
        err_set(e, ST_IO, "cannot create certificate: PEM encoding failed");
        goto out;
    }
    *cert_pem = bio_string(cb);
    *key_pem = bio_string(kb);
    if (fingerprint_hex)
        *fingerprint_hex = x509_fingerprint(x);
    st = ST_OK;
out:
    BIO_free(cb);
    BIO_free(kb);
    BN_free(bn);
    X509_free(x);
    EVP_PKEY_free(pkey);
    free(san);
    return st;
}

enum status crypto_cert_fingerprint(const char *cert_pem, char **fingerprint_hex, struct err *e)
{
    BIO *b = BIO_new_mem_buf(cert_pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

    *fingerprint_hex = NULL;
    BIO_free(b);
    if (!x)
        return err_set(e, ST_INVALID, "cannot read certificate: not a PEM certificate");
    *fingerprint_hex = x509_fingerprint(x);
    X509_free(x);
    return ST_OK;
}
