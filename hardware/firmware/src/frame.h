/* The bench's serial framing (hardware/README.md): `@aurora <kind> <compact JSON>\n`.
 * Encoders for the frames this door sends, and a small reader for the ones it receives.
 * Pure: no I/O, so the same code is unit-tested on the host. */
#ifndef AURORA_FRAME_H
#define AURORA_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define AURORA_MAX_LINE 4200

/* 1 if id matches ^[A-Za-z0-9_-]{1,64}$ (seed 001's device id). */
int aurora_valid_id(const char *id);

/* Encoders: return the line length (with its '\n'), or 0 if it does not fit in cap. */
size_t aurora_status(char *out, size_t cap, const char *device_id, const char *version,
                     const char *hash_hex);
size_t aurora_badge(char *out, size_t cap, const char *device_id, const char *uid_hex);

/* A received line: 1 and kind/json set if it is a frame, 0 otherwise (a log line). */
int aurora_parse(const char *line, char *kind, size_t kind_cap, const char **json);

/* Top-level-ish field readers for the compact JSON the bridge sends (no nesting needed
 * for command and attestation_request). 1 if found and it fits, 0 otherwise. */
int aurora_json_string(const char *json, const char *key, char *out, size_t cap);
int aurora_json_uint(const char *json, const char *key, uint32_t *out);

/* Bytes as uppercase hex (badge UIDs, seed 001: "0455AF21"); out needs 2n+1. */
void aurora_hex_upper(const uint8_t *bytes, size_t n, char *out);

#endif
