/* aurora_resp: the few Redis (RESP2) messages the shared decision cache needs, pure.
 * Tested by test_core.c; the socket is in aurora_redis.c. */
#ifndef AURORA_RESP_H
#define AURORA_RESP_H

#include <stdbool.h>
#include <stddef.h>

#include "aurora_core.h"

/* A bulk string in a Redis reply longer than this is refused as malformed: the cache's
 * values are one byte, so a long one is not our data. */
#define RESP_MAX_BULK 4096

enum resp_kind { RESP_SIMPLE, RESP_ERROR, RESP_INTEGER, RESP_BULK, RESP_NIL };

struct resp_reply {
	enum resp_kind kind;
	long long integer;  /* RESP_INTEGER */
	const char *data;   /* RESP_SIMPLE, RESP_ERROR, RESP_BULK: into the parsed buffer */
	size_t len;
};

/* Append a command (an array of bulk strings) to out; false when out is full. */
bool resp_command(struct abuf *out, const char *const *args, const size_t *lens, size_t n);

/* Parse the reply at the start of buf: bytes it takes, 0 when incomplete, -1 when
 * malformed (arrays, too long, a bad length or type byte). */
long resp_parse(const char *buf, size_t len, struct resp_reply *out);

#endif
