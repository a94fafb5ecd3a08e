/*
 * aurora_core: the parts of the aurora_auth Mosquitto plugin that do no I/O.
 *
 * Request bodies in mosquitto-go-auth's HTTP backend protocol, the reading of its
 * answers, MQTT topic matching, the certificate clients' ACL file and the decision
 * cache. Everything here is tested by test_core.c without a broker or a network.
 */
#ifndef AURORA_CORE_H
#define AURORA_CORE_H

#include <stdbool.h>
#include <stddef.h>

/* ---- bounded growable buffer ------------------------------------------------------ */

/* A buffer that grows up to `max` bytes and then refuses: callers see `false`, never
 * an overflow. `data` is always NUL-terminated once anything was appended. */
struct abuf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
};

void abuf_init(struct abuf *b, size_t max);
void abuf_reset(struct abuf *b);
void abuf_free(struct abuf *b);
bool abuf_append(struct abuf *b, const char *s, size_t n);
bool abuf_puts(struct abuf *b, const char *s);

/* ---- go-auth request bodies and answers --------------------------------------------- */

enum params_mode { PARAMS_JSON, PARAMS_FORM };
enum response_mode { RESPONSE_STATUS, RESPONSE_TEXT, RESPONSE_JSON };

/* One request field; `number` fields are written bare in JSON (go-auth's `acc`). */
struct field {
	const char *name;
	const char *value;
	bool number;
};

/* The body go-auth sends: a JSON object or an x-www-form-urlencoded form. */
bool encode_body(struct abuf *out, enum params_mode mode, const struct field *fields, size_t n);

/* Does an HTTP answer allow? Any non-2xx denies; then the response mode decides.
 * `why` is set to a short static reason when it denies. */
bool response_allows(enum response_mode mode, long status, const char *body, size_t len,
		const char **why);

/* ---- topics ------------------------------------------------------------------------ */

/* MQTT matching of a topic name against a filter (+, #; `$` topics never match a
 * leading wildcard). */
bool topic_matches(const char *filter, const char *topic);
/* True when every topic `filter` can match is matched by `rule` too. */
bool filter_covers(const char *rule, const char *filter);
/* True when some topic is matched by both filters. */
bool filters_overlap(const char *a, const char *b);
/* The filter inside `$share/<group>/<filter>`, the argument itself when it is not
 * shared, NULL when the shared form is malformed. */
const char *strip_share(const char *filter);

/* ---- the certificate clients' ACL file (Mosquitto's acl_file syntax) ---------------- */

#define ACL_READ 1
#define ACL_WRITE 2

struct acl_rule {
	char *user;  /* NULL for a `pattern` line (%u / %c substituted) */
	char *topic;
	int access;  /* ACL_READ | ACL_WRITE */
	bool deny;
};

struct acl_rules {
	struct acl_rule *items;
	size_t count;
};

/* Parse the text of an ACL file; on error returns false and writes "line N: ..." to err. */
bool acl_parse(const char *text, struct acl_rules *out, char *err, size_t errlen);
/* Read and parse a file; errors name the file. */
bool acl_load_file(const char *path, struct acl_rules *out, char *err, size_t errlen);
void acl_free(struct acl_rules *rules);
/* May `username` (client id `clientid`) do `access` (MOSQ_ACL_READ 1, WRITE 2,
 * SUBSCRIBE 4) on `topic`? Read rules grant a subscription only when they cover the
 * whole (unshared) filter; a matching deny wins; nothing matching is a deny. */
bool acl_allows(const struct acl_rules *rules, const char *username, const char *clientid,
		const char *topic, int access);

/* True when a `user` line names `username`: a certificate identity (the backend, the
 * probe), which must never log in with a password on the token listener. */
bool acl_names_user(const struct acl_rules *rules, const char *username);

/* ---- decision cache ------------------------------------------------------------------ */

struct cache;

struct cache *cache_new(size_t max_entries);
void cache_free(struct cache *cache);
/* -1 not cached (or expired), 0 cached deny, 1 cached allow. */
int cache_get(struct cache *cache, const char *key, size_t keylen, double now);
/* Remember a decision until `expires`; a full cache drops expired entries, then all. */
void cache_put(struct cache *cache, const char *key, size_t keylen, bool allow, double expires,
		double now);
size_t cache_size(const struct cache *cache);
/* An unambiguous key: the kind, then each part length-prefixed. */
bool cache_key(struct abuf *out, char kind, const char *const *parts, size_t n);

#endif
