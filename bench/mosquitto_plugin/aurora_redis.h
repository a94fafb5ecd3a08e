/* aurora_redis: the shared decision cache in Redis (go-auth's cache_type redis).
 *
 * One blocking connection, every send and receive bounded by timeout_ms: Mosquitto runs
 * plugins on its one thread, so a slow Redis may cost a check timeout_ms, never more.
 * Any failure closes the connection and leaves Redis alone for retry_ms; the caller then
 * decides as if there were no shared cache (asks the policy service). */
#ifndef AURORA_REDIS_H
#define AURORA_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include "aurora_core.h"

struct redis {
	char *host;
	long port;
	long db;
	long timeout_ms;
	long retry_ms;
	int fd;            /* -1: not connected */
	double down_until; /* no attempt before this (monotonic seconds) */
	struct abuf out;
	char in[8192];
	size_t inlen;
	char error[256];   /* the last failure, for the log */
};

/* The shared cache's key for a local cache key: a prefix and the key's SHA-256, so the
 * tokens inside local keys never reach Redis and every key has the same short length.
 * Writes REDIS_KEY_BYTES at most; returns the length, 0 on failure. */
#define REDIS_KEY_PREFIX "aurora_auth:"
#define REDIS_KEY_BYTES (sizeof(REDIS_KEY_PREFIX) + 64)
size_t redis_key_of(const char *key, size_t keylen, char *out);

void redis_init(struct redis *r, const char *host, long port, long db, long timeout_ms,
		long retry_ms);
void redis_close(struct redis *r);

/* The decision stored under key: 1 allow, 0 deny, -1 none (or Redis unavailable: see
 * r->error, non-empty after a failure). On a hit, *ttl_s is the time it has left. */
int redis_get(struct redis *r, const char *key, size_t keylen, double now, double *ttl_s);

/* Store a decision for ttl_ms; false (see r->error) when Redis is unavailable. */
bool redis_put(struct redis *r, const char *key, size_t keylen, bool allow, long ttl_ms,
		double now);

#endif
