/* aurora_plugin: what the aurora_auth plugin's files share (see aurora_auth.c). */
#ifndef AURORA_PLUGIN_H
#define AURORA_PLUGIN_H

#include <curl/curl.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "aurora_core.h"
#include "aurora_redis.h"

#define LOG_PREFIX "aurora_auth: "
#define MAX_BODY_BYTES (1u << 20)
#define TOKEN_BUCKETS 4096u

/* client id -> the token it logged in with. Mosquitto's ACL event carries no password,
 * but the policy service decides a token client's checks by its token (go-auth's JWT
 * mode sends it on every check too), so the plugin keeps it from MOSQ_EVT_BASIC_AUTH. */
struct token_entry {
	struct token_entry *next;
	char *clientid;
	char *token;
};

struct plugin {
	mosquitto_plugin_id_t *id;
	CURL *curl;
	struct curl_slist *headers;
	char *user_url;
	char *superuser_url;
	char *acl_url;
	enum params_mode params;
	enum response_mode response;
	long timeout_ms;
	long retry_after_ms;
	bool verify_peer;
	char *ca_file;
	bool cache_on;
	double auth_ttl_s;
	double acl_ttl_s;
	size_t max_username;
	size_t max_password;
	size_t max_response;
	struct cache *cache;
	/* client id -> 1 token client, 0 certificate client (see client_is_token) */
	struct cache *kinds;
	struct token_entry *tokens[TOKEN_BUCKETS];
	size_t token_count;
	size_t max_tokens;
	bool have_cert_rules;
	struct acl_rules cert_rules;
	double down_until;
	unsigned long refused_while_down;
	char last_error[CURL_ERROR_SIZE];
	struct abuf body;
	struct abuf answer;
	struct abuf key;
	bool answer_too_big;
	/* go-auth's cache_type redis: decisions shared between brokers (NULL: memory only) */
	struct redis *shared;
	bool shared_down;  /* a failure was logged; the next success logs the recovery */
};

/* aurora_options.c: read plugin_opt_* into p and set up libcurl; false (logged) on error. */
bool plugin_configure(struct plugin *p, struct mosquitto_opt *opts, int count);
void plugin_free(struct plugin *p);

/* aurora_auth.c: libcurl's write callback (bounded by max_response_bytes) and the token
 * table's cleanup. */
size_t plugin_on_answer(char *data, size_t size, size_t nmemb, void *userdata);
void plugin_tokens_free(struct plugin *p);

#endif
