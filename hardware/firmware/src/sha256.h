/* SHA-256 (FIPS 180-4), small and portable: the measured-boot hash of the image. */
#ifndef AURORA_SHA256_H
#define AURORA_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[8];
    uint64_t length_bits;
    uint8_t block[64];
    size_t used;
} sha256_ctx;

void sha256_init(sha256_ctx *ctx);
void sha256_update(sha256_ctx *ctx, const uint8_t *data, size_t n);
void sha256_final(sha256_ctx *ctx, uint8_t digest[32]);
/* digest as 64 lowercase hex characters and a NUL */
void sha256_hex(const uint8_t digest[32], char out[65]);

#endif
