/* SHA-256 for the wire kernel: OpenSSL's one-shot SHA256() when setup.py found
 * its header (BROKER_OPENSSL), else 0 and the kernel falls back to hashlib. */
#ifndef BROKER_SHA256_SHIM_H
#define BROKER_SHA256_SHIM_H
#include <stddef.h>
#ifdef BROKER_OPENSSL
#include <openssl/sha.h>
/* the low-level calls, not SHA256() or EVP: OpenSSL 3 routes those through a
 * provider fetch per call, which costs more than hashing a small payload */
static inline int broker_sha256(const unsigned char *data, size_t n, unsigned char *out) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, data, n);
    SHA256_Final(out, &ctx);
    return 1;
}
#else
static inline int broker_sha256(const unsigned char *data, size_t n, unsigned char *out) {
    (void)data; (void)n; (void)out;
    return 0;
}
#endif
#endif
