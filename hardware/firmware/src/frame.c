#include "frame.h"

#include <stdio.h>
#include <string.h>

int aurora_valid_id(const char *id)
{
    size_t n = 0;
    for (; id[n] != '\0'; n++) {
        char c = id[n];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-';
        if (!ok || n >= 64) return 0;
    }
    return n >= 1;
}

static size_t finish(int n, size_t cap)
{
    return (n > 0 && (size_t)n < cap) ? (size_t)n : 0;
}

size_t aurora_status(char *out, size_t cap, const char *device_id, const char *version,
                     const char *hash_hex)
{
    int n = snprintf(out, cap,
                     "@aurora status {\"device_type\":\"access_control_node\","
                     "\"board_family\":\"stm32f405\",\"firmware_stack\":\"c_baremetal\","
                     "\"firmware_version\":\"%s\",\"firmware_hash\":\"%s\","
                     "\"device_id\":\"%s\"}\n",
                     version, hash_hex, device_id);
    return finish(n, cap);
}

size_t aurora_badge(char *out, size_t cap, const char *device_id, const char *uid_hex)
{
    int n = snprintf(out, cap,
                     "@aurora badge_event {\"device_id\":\"%s\",\"uid\":\"%s\","
                     "\"event\":\"badge_read\"}\n",
                     device_id, uid_hex);
    return finish(n, cap);
}

int aurora_parse(const char *line, char *kind, size_t kind_cap, const char **json)
{
    static const char marker[] = "@aurora ";
    if (strncmp(line, marker, sizeof marker - 1) != 0) return 0;
    const char *p = line + sizeof marker - 1;
    size_t k = 0;
    while (p[k] != '\0' && p[k] != ' ') k++;
    if (k == 0 || k >= kind_cap || p[k] != ' ') return 0;
    memcpy(kind, p, k);
    kind[k] = '\0';
    *json = p + k + 1;
    return **json == '{';
}

static const char *value_of(const char *json, const char *key)
{
    char pattern[40];
    int n = snprintf(pattern, sizeof pattern, "\"%s\"", key);
    if (n <= 0 || (size_t)n >= sizeof pattern) return NULL;
    const char *p = json;
    while ((p = strstr(p, pattern)) != NULL) {
        const char *q = p + n;
        while (*q == ' ') q++;
        if (*q == ':') {
            q++;
            while (*q == ' ') q++;
            return q;
        }
        p += n;
    }
    return NULL;
}

int aurora_json_string(const char *json, const char *key, char *out, size_t cap)
{
    const char *v = value_of(json, key);
    if (v == NULL || *v != '"') return 0;
    v++;
    size_t k = 0;
    for (; v[k] != '"'; k++) {
        if (v[k] == '\0' || v[k] == '\\' || k + 1 >= cap) return 0; /* no escapes expected */
        out[k] = v[k];
    }
    out[k] = '\0';
    return 1;
}

int aurora_json_uint(const char *json, const char *key, uint32_t *out)
{
    const char *v = value_of(json, key);
    if (v == NULL || *v < '0' || *v > '9') return 0;
    uint32_t value = 0;
    for (; *v >= '0' && *v <= '9'; v++) {
        if (value > 429496728u) return 0; /* would overflow */
        value = value * 10u + (uint32_t)(*v - '0');
    }
    *out = value;
    return 1;
}

void aurora_hex_upper(const uint8_t *bytes, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}
