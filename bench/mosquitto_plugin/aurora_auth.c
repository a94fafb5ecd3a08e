/*
 * aurora_auth: a Mosquitto 2 plugin (plugin API v5) that asks an HTTP policy service
 * in mosquitto-go-auth's HTTP backend protocol, so a lab can swap in go-auth unchanged.
 *
 *   plugin /path/aurora_auth.so
 *   plugin_opt_http_host 127.0.0.1          plugin_opt_http_port 8080
 *   plugin_opt_http_getuser_uri /mqtt/user  plugin_opt_http_superuser_uri /mqtt/superuser
 *   plugin_opt_http_aclcheck_uri /mqtt/acl
 *   plugin_opt_http_params_mode json|form   plugin_opt_http_response_mode status|text|json
 *   plugin_opt_http_timeout 5 (s)           plugin_opt_http_timeout_ms 500 (overrides)
 *   plugin_opt_cache true|false             plugin_opt_auth_cache_seconds 30
 *   plugin_opt_acl_cache_seconds 30         plugin_opt_cert_acl_file /path/acl
 *
 * Decisions (DESIGN.md "Policy service"):
 * - Token clients (no client certificate): MOSQ_EVT_BASIC_AUTH posts username,
 *   password (the JWT) and clientid to the user URI; MOSQ_EVT_ACL_CHECK asks the
 *   superuser URI first, then the ACL URI with acc 1 read, 2 write, 4 subscribe.
 *   Any non-2xx denies. Transport errors and timeouts deny too (fail closed), and
 *   for http_retry_after_ms afterwards uncached checks are refused without asking,
 *   so a dead or slow service costs the broker's single thread one timeout, not one
 *   per check.
 * - Certificate clients (mTLS listener, username = certificate CN) never reach the
 *   service: cert_acl_file holds their rules in Mosquitto's acl_file syntax, applied
 *   here because Mosquitto lets an acl_file pre-empt every plugin and never checks
 *   subscriptions against it. Read rules grant a SUBSCRIBE only when they cover the
 *   whole filter, so a device asking for another device's topics, or for the backend's
 *   `$share/ingest/...` group, gets a SUBACK failure instead of stealing messages.
 * - Mosquitto runs plugins on its one thread and checks every delivered message for
 *   read, per subscriber: answers from the service are cached (allow and deny; errors
 *   are not) for auth_cache_seconds / acl_cache_seconds.
 * - Buffers are bounded: a username or password beyond max_username_bytes /
 *   max_password_bytes, or an answer beyond max_response_bytes, is refused with a log
 *   line, never copied.
 */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "aurora_core.h"

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
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_answer(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct plugin *p = userdata;
	size_t n = size * nmemb;
	if(!abuf_append(&p->answer, data, n)){
		p->answer_too_big = true;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	return n;
}

enum verdict { DENY = 0, ALLOW = 1, ERROR = -1 };

/* POST one go-auth request; ALLOW / DENY are answers of the service, ERROR is no answer
 * (transport failure, timeout, 5xx): refused too, but never cached. */
/* The request headers for one check: the base ones, plus `Authorization: Bearer <token>`
 * when the check is a token client's (go-auth's JWT remote mode sends the token so; the
 * body keeps exactly the HTTP backend's fields). NULL when allocation fails. */
static struct curl_slist *headers_for(struct plugin *p, const char *bearer, char **line)
{
	*line = NULL;
	if(!bearer || !*bearer) return p->headers;
	size_t n = strlen(bearer) + sizeof("Authorization: Bearer ");
	*line = malloc(n);
	if(!*line) return NULL;
	snprintf(*line, n, "Authorization: Bearer %s", bearer);
	struct curl_slist *list = NULL;
	for(struct curl_slist *h = p->headers; h; h = h->next){
		struct curl_slist *grown = curl_slist_append(list, h->data);
		if(!grown){
			curl_slist_free_all(list);
			return NULL;
		}
		list = grown;
	}
	struct curl_slist *grown = curl_slist_append(list, *line);
	if(!grown){
		curl_slist_free_all(list);
		return NULL;
	}
	return grown;
}

static enum verdict ask(struct plugin *p, const char *url, const struct field *fields,
		size_t n, const char *what, const char *bearer)
{
	double now = now_s();
	if(now < p->down_until){
		p->refused_while_down++;
		return ERROR;
	}
	if(p->refused_while_down){
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				LOG_PREFIX "asking the policy service again after refusing %lu uncached "
				"checks while it was unreachable",
				p->refused_while_down);
		p->refused_while_down = 0;
	}
	if(!encode_body(&p->body, p->params, fields, n)){
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				LOG_PREFIX "%s check refused: request body would exceed %u bytes", what,
				MAX_BODY_BYTES);
		return DENY;
	}
	abuf_reset(&p->answer);
	p->answer_too_big = false;
	p->last_error[0] = '\0';
	char *auth_line = NULL;
	struct curl_slist *headers = headers_for(p, bearer, &auth_line);
	if(!headers){
		free(auth_line);
		mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "%s check refused: out of memory", what);
		return ERROR;
	}
	curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(p->curl, CURLOPT_URL, url);
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, p->body.data);
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE, (long)p->body.len);
	CURLcode rc = curl_easy_perform(p->curl);
	if(headers != p->headers){
		curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, p->headers);
		curl_slist_free_all(headers);
	}
	free(auth_line);
	if(rc != CURLE_OK){
		const char *reason = p->answer_too_big ? "answer larger than max_response_bytes"
				: (p->last_error[0] ? p->last_error : curl_easy_strerror(rc));
		p->down_until = now_s() + (double)p->retry_after_ms / 1000.0;
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				LOG_PREFIX "%s check refused: policy service %s gave no answer (%s); "
				"refusing uncached checks without asking for %ld ms",
				what, url, reason, p->retry_after_ms);
		return ERROR;
	}
	long status = 0;
	curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &status);
	const char *why = "";
	bool allowed = response_allows(p->response, status, p->answer.data ? p->answer.data : "",
			p->answer.len, &why);
	if(status >= 500){
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				LOG_PREFIX "%s check refused: policy service %s answered %ld", what, url,
				status);
		return ERROR;
	}
	if(!allowed){
		mosquitto_log_printf(MOSQ_LOG_INFO, LOG_PREFIX "%s check denied by %s: %ld, %s", what,
				url, status, why);
	}
	return allowed ? ALLOW : DENY;
}

/* Cached wrapper around ask(). */
static enum verdict decide(struct plugin *p, char kind, const char *const *parts, size_t nparts,
		double ttl_s, const char *url, const struct field *fields, size_t n,
		const char *what, const char *bearer)
{
	bool keyed = p->cache_on && cache_key(&p->key, kind, parts, nparts);
	if(keyed){
		int hit = cache_get(p->cache, p->key.data, p->key.len, now_s());
		if(hit >= 0) return hit ? ALLOW : DENY;
	}
	enum verdict v = ask(p, url, fields, n, what, bearer);
	if(keyed && v != ERROR){
		double now = now_s();
		/* the key buffer was not touched by ask() */
		cache_put(p->cache, p->key.data, p->key.len, v == ALLOW, now + ttl_s, now);
	}
	return v;
}

static bool has_certificate(struct mosquitto *client)
{
	X509 *cert = mosquitto_client_certificate(client);
	if(!cert) return false;
	X509_free(cert);
	return true;
}

static unsigned token_bucket(const char *clientid)
{
	unsigned h = 2166136261u; /* FNV-1a */
	for(const unsigned char *c = (const unsigned char *)clientid; *c; c++){
		h = (h ^ *c) * 16777619u;
	}
	return h % TOKEN_BUCKETS;
}

static const char *token_of(struct plugin *p, const char *clientid)
{
	for(struct token_entry *e = p->tokens[token_bucket(clientid)]; e; e = e->next){
		if(strcmp(e->clientid, clientid) == 0) return e->token;
	}
	return NULL;
}

static void tokens_free(struct plugin *p)
{
	for(unsigned b = 0; b < TOKEN_BUCKETS; b++){
		struct token_entry *e = p->tokens[b];
		while(e){
			struct token_entry *next = e->next;
			free(e->clientid);
			free(e->token);
			free(e);
			e = next;
		}
		p->tokens[b] = NULL;
	}
	p->token_count = 0;
}

/* Keep (or replace) a client's token. Bounded: past max_tokens the table is emptied and
 * refilled as clients log in again (an unknown token client's checks are then denied,
 * failing closed, until it reconnects). */
static bool remember_token(struct plugin *p, const char *clientid, const char *token)
{
	unsigned b = token_bucket(clientid);
	for(struct token_entry *e = p->tokens[b]; e; e = e->next){
		if(strcmp(e->clientid, clientid) == 0){
			char *copy = strdup(token);
			if(!copy) return false;
			free(e->token);
			e->token = copy;
			return true;
		}
	}
	if(p->token_count >= p->max_tokens){
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				LOG_PREFIX "%zu token clients remembered; forgetting them all (raise "
				"plugin_opt_cache_max_entries)", p->token_count);
		tokens_free(p);
	}
	struct token_entry *e = calloc(1, sizeof(*e));
	if(!e) return false;
	e->clientid = strdup(clientid);
	e->token = strdup(token);
	if(!e->clientid || !e->token){
		free(e->clientid);
		free(e->token);
		free(e);
		return false;
	}
	e->next = p->tokens[b];
	p->tokens[b] = e;
	p->token_count++;
	return true;
}

static void remember_kind(struct plugin *p, const char *clientid, bool token)
{
	size_t n = strlen(clientid);
	if(cache_get(p->kinds, clientid, n, 0) != (token ? 1 : 0)){
		cache_put(p->kinds, clientid, n, token, 1e300, 0);
	}
}

/* Is this a token client (asked about at the policy service) rather than a certificate
 * client (the cert ACL file)? A live certificate client shows its certificate. But
 * Mosquitto also checks read access when it queues a message for a persistent session
 * whose client is offline, and an offline session has no certificate to show: the kind
 * recorded when the client was last online decides then. A session restored after a
 * broker restart whose client has not come back is taken as a certificate client, so
 * the backend's and the devices' queues keep filling while they are away. */
static bool client_is_token(struct plugin *p, struct mosquitto *client, const char *clientid)
{
	if(has_certificate(client)){
		remember_kind(p, clientid, false);
		return false;
	}
	return cache_get(p->kinds, clientid, strlen(clientid), 0) == 1;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	(void)event;
	struct plugin *p = userdata;
	struct mosquitto_evt_basic_auth *ed = event_data;
	const char *clientid = mosquitto_client_id(ed->client);
	const char *address = mosquitto_client_address(ed->client);
	if(!clientid) clientid = "";
	if(!ed->username || !ed->password){
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				LOG_PREFIX "connect from %s (client id '%s') refused: no %s; send the "
				"token as the MQTT password",
				address ? address : "?", clientid, ed->username ? "password" : "username");
		return MOSQ_ERR_AUTH;
	}
	size_t ulen = strlen(ed->username), plen = strlen(ed->password);
	if(ulen > p->max_username || plen > p->max_password){
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				LOG_PREFIX "connect from %s (client id '%s') refused: %s of %zu bytes is "
				"over max_%s_bytes %zu",
				address ? address : "?", clientid, ulen > p->max_username ? "username" : "password",
				ulen > p->max_username ? ulen : plen,
				ulen > p->max_username ? "username" : "password",
				ulen > p->max_username ? p->max_username : p->max_password);
		return MOSQ_ERR_AUTH;
	}
	if(p->have_cert_rules && acl_names_user(&p->cert_rules, ed->username)){
		/* Whatever the policy service would say: the backend and the probe prove who
		 * they are with a certificate, never with a password. */
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				LOG_PREFIX "connect of '%s' from %s refused: a certificate identity cannot "
				"log in with a password",
				ed->username, address ? address : "?");
		return MOSQ_ERR_AUTH;
	}
	const char *parts[] = {ed->username, ed->password, clientid};
	struct field fields[] = {
		{"username", ed->username, false},
		{"password", ed->password, false},
		{"clientid", clientid, false},
	};
	enum verdict v = decide(p, 'u', parts, 3, p->auth_ttl_s, p->user_url, fields, 3, "user", NULL);
	if(v != ALLOW){
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				LOG_PREFIX "connect of '%s' (client id '%s') from %s refused by the policy "
				"service%s",
				ed->username, clientid, address ? address : "?",
				v == ERROR ? " (no answer)" : "");
		return MOSQ_ERR_AUTH;
	}
	if(!remember_token(p, clientid, ed->password)){
		mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "out of memory keeping the token of '%s'",
				clientid);
		return MOSQ_ERR_AUTH;
	}
	remember_kind(p, clientid, true);
	return MOSQ_ERR_SUCCESS;
}

static const char *access_name(int access)
{
	switch(access){
		case MOSQ_ACL_READ: return "read";
		case MOSQ_ACL_WRITE: return "write";
		case MOSQ_ACL_SUBSCRIBE: return "subscribe";
		default: return "access";
	}
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	(void)event;
	struct plugin *p = userdata;
	struct mosquitto_evt_acl_check *ed = event_data;
	if(ed->access == MOSQ_ACL_UNSUBSCRIBE) return MOSQ_ERR_SUCCESS;
	const char *username = mosquitto_client_username(ed->client);
	const char *clientid = mosquitto_client_id(ed->client);
	if(!clientid) clientid = "";
	if(!username) return MOSQ_ERR_ACL_DENIED;
	if(p->have_cert_rules && !client_is_token(p, ed->client, clientid)){
		if(acl_allows(&p->cert_rules, username, clientid, ed->topic, ed->access)){
			return MOSQ_ERR_SUCCESS;
		}
		if(ed->access == MOSQ_ACL_SUBSCRIBE){
			/* Publishes are logged by Mosquitto ("Denied PUBLISH"); refused
			 * subscriptions are not, and they are what an attacker tries. */
			mosquitto_log_printf(MOSQ_LOG_NOTICE,
					LOG_PREFIX "certificate client '%s' refused SUBSCRIBE to '%s': no rule "
					"covers that filter",
					username, ed->topic);
		}
		return MOSQ_ERR_ACL_DENIED;
	}
	/* The token goes with every check of a token client, as `Authorization: Bearer`
	 * (go-auth's JWT remote mode; the body stays the HTTP backend's), and into the cache
	 * key, so a client that logs in again with other claims is not judged by old ones. */
	const char *token = token_of(p, clientid);
	if(!token) token = "";
	if(p->superuser_url){
		const char *sparts[] = {username, token};
		struct field sfields[] = {{"username", username, false}};
		if(decide(p, 's', sparts, 2, p->acl_ttl_s, p->superuser_url, sfields, 1, "superuser",
				token) == ALLOW){
			return MOSQ_ERR_SUCCESS;
		}
	}
	char acc[4];
	snprintf(acc, sizeof(acc), "%d", ed->access);
	const char *parts[] = {username, clientid, ed->topic, acc, token};
	struct field fields[] = {
		{"username", username, false},
		{"clientid", clientid, false},
		{"topic", ed->topic, false},
		{"acc", acc, true},
	};
	enum verdict v = decide(p, 'a', parts, 5, p->acl_ttl_s, p->acl_url, fields, 4, "acl", token);
	if(v != ALLOW && ed->access == MOSQ_ACL_SUBSCRIBE){
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				LOG_PREFIX "'%s' refused SUBSCRIBE to '%s' by the policy service%s", username,
				ed->topic, v == ERROR ? " (no answer)" : "");
	}else if(v != ALLOW){
		mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "'%s' refused %s on '%s'%s", username,
				access_name(ed->access), ed->topic, v == ERROR ? " (no answer)" : "");
	}
	return v == ALLOW ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
}

/* ---- options ------------------------------------------------------------------------- */

static bool parse_long(const char *key, const char *value, long min, long max, long *out)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(value, &end, 10);
	if(errno || !end || *end || end == value || v < min || v > max){
		mosquitto_log_printf(MOSQ_LOG_ERR,
				LOG_PREFIX "plugin_opt_%s '%s' is not a whole number from %ld to %ld", key,
				value, min, max);
		return false;
	}
	*out = v;
	return true;
}

static bool parse_bool(const char *key, const char *value, bool *out)
{
	if(strcmp(value, "true") == 0){
		*out = true;
	}else if(strcmp(value, "false") == 0){
		*out = false;
	}else{
		mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "plugin_opt_%s '%s' is not true or false",
				key, value);
		return false;
	}
	return true;
}

static char *make_url(bool tls, const char *host, long port, const char *uri)
{
	size_t n = strlen(host) + strlen(uri) + 32;
	char *url = malloc(n);
	if(url) snprintf(url, n, "%s://%s:%ld%s", tls ? "https" : "http", host, port, uri);
	return url;
}

static void plugin_free(struct plugin *p)
{
	if(!p) return;
	if(p->curl) curl_easy_cleanup(p->curl);
	curl_slist_free_all(p->headers);
	free(p->user_url);
	free(p->superuser_url);
	free(p->acl_url);
	cache_free(p->cache);
	cache_free(p->kinds);
	tokens_free(p);
	acl_free(&p->cert_rules);
	abuf_free(&p->body);
	abuf_free(&p->answer);
	abuf_free(&p->key);
	free(p);
}

static bool configure(struct plugin *p, struct mosquitto_opt *opts, int count)
{
	const char *host = "127.0.0.1";
	const char *user_uri = "/mqtt/user", *superuser_uri = "/mqtt/superuser";
	const char *acl_uri = "/mqtt/acl", *cert_acl_file = NULL, *ca_file = NULL;
	long port = 0, timeout_s = 5, timeout_ms = -1, retry_ms = 1000;
	long auth_ttl = 30, acl_ttl = 30, max_entries = 100000;
	long max_user = 1024, max_password = 8192, max_response = 4096;
	bool tls = false, disable_superuser = false, ok = true;
	p->verify_peer = true;
	p->cache_on = true;
	for(int i = 0; ok && i < count; i++){
		const char *k = opts[i].key, *v = opts[i].value ? opts[i].value : "";
		if(!strcmp(k, "http_host")) host = v;
		else if(!strcmp(k, "http_port")) ok = parse_long(k, v, 1, 65535, &port);
		else if(!strcmp(k, "http_getuser_uri")) user_uri = v;
		else if(!strcmp(k, "http_superuser_uri")) superuser_uri = v;
		else if(!strcmp(k, "http_aclcheck_uri")) acl_uri = v;
		else if(!strcmp(k, "http_with_tls")) ok = parse_bool(k, v, &tls);
		else if(!strcmp(k, "http_verify_peer")) ok = parse_bool(k, v, &p->verify_peer);
		else if(!strcmp(k, "http_ca_file")) ca_file = v;
		else if(!strcmp(k, "http_timeout")) ok = parse_long(k, v, 1, 600, &timeout_s);
		else if(!strcmp(k, "http_timeout_ms")) ok = parse_long(k, v, 1, 600000, &timeout_ms);
		else if(!strcmp(k, "http_retry_after_ms")) ok = parse_long(k, v, 0, 600000, &retry_ms);
		else if(!strcmp(k, "cache")) ok = parse_bool(k, v, &p->cache_on);
		else if(!strcmp(k, "auth_cache_seconds")) ok = parse_long(k, v, 0, 86400, &auth_ttl);
		else if(!strcmp(k, "acl_cache_seconds")) ok = parse_long(k, v, 0, 86400, &acl_ttl);
		else if(!strcmp(k, "cache_max_entries")) ok = parse_long(k, v, 1, 10000000, &max_entries);
		else if(!strcmp(k, "max_username_bytes")) ok = parse_long(k, v, 1, 65535, &max_user);
		else if(!strcmp(k, "max_password_bytes")) ok = parse_long(k, v, 1, 65535, &max_password);
		else if(!strcmp(k, "max_response_bytes")) ok = parse_long(k, v, 16, 1 << 20, &max_response);
		else if(!strcmp(k, "disable_superuser")) ok = parse_bool(k, v, &disable_superuser);
		else if(!strcmp(k, "cert_acl_file")) cert_acl_file = v;
		else if(!strcmp(k, "http_params_mode")){
			if(!strcmp(v, "json")) p->params = PARAMS_JSON;
			else if(!strcmp(v, "form")) p->params = PARAMS_FORM;
			else{
				mosquitto_log_printf(MOSQ_LOG_ERR,
						LOG_PREFIX "plugin_opt_http_params_mode '%s' is not json or form", v);
				ok = false;
			}
		}else if(!strcmp(k, "http_response_mode")){
			if(!strcmp(v, "status")) p->response = RESPONSE_STATUS;
			else if(!strcmp(v, "text")) p->response = RESPONSE_TEXT;
			else if(!strcmp(v, "json")) p->response = RESPONSE_JSON;
			else{
				mosquitto_log_printf(MOSQ_LOG_ERR,
						LOG_PREFIX "plugin_opt_http_response_mode '%s' is not status, text "
						"or json", v);
				ok = false;
			}
		}else{
			/* go-auth has many more options (backends, hashers, ...): not ours. */
			mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "ignoring unknown option plugin_opt_%s",
					k);
		}
	}
	if(!ok) return false;
	if(port == 0){
		mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "plugin_opt_http_port is required");
		return false;
	}
	p->timeout_ms = timeout_ms > 0 ? timeout_ms : timeout_s * 1000;
	p->retry_after_ms = retry_ms;
	p->auth_ttl_s = (double)auth_ttl;
	p->acl_ttl_s = (double)acl_ttl;
	p->max_username = (size_t)max_user;
	p->max_password = (size_t)max_password;
	p->max_response = (size_t)max_response;
	p->user_url = make_url(tls, host, port, user_uri);
	p->acl_url = make_url(tls, host, port, acl_uri);
	if(!disable_superuser && *superuser_uri){
		p->superuser_url = make_url(tls, host, port, superuser_uri);
		if(!p->superuser_url) return false;
	}
	if(!p->user_url || !p->acl_url) return false;
	p->cache = cache_new((size_t)max_entries);
	p->max_tokens = (size_t)max_entries;
	p->kinds = cache_new(1000000);
	if(!p->cache || !p->kinds) return false;
	if(cert_acl_file){
		char err[512];
		if(!acl_load_file(cert_acl_file, &p->cert_rules, err, sizeof(err))){
			mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "plugin_opt_cert_acl_file %s", err);
			return false;
		}
		p->have_cert_rules = true;
	}
	abuf_init(&p->body, MAX_BODY_BYTES);
	abuf_init(&p->answer, p->max_response);
	abuf_init(&p->key, MAX_BODY_BYTES);
	p->curl = curl_easy_init();
	if(!p->curl) return false;
	p->headers = curl_slist_append(NULL, p->params == PARAMS_JSON
			? "Content-Type: application/json"
			: "Content-Type: application/x-www-form-urlencoded");
	/* No "Expect: 100-continue" round trip for larger bodies. */
	p->headers = curl_slist_append(p->headers, "Expect:");
	if(!p->headers) return false;
	curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, p->headers);
	curl_easy_setopt(p->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(p->curl, CURLOPT_WRITEFUNCTION, on_answer);
	curl_easy_setopt(p->curl, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(p->curl, CURLOPT_ERRORBUFFER, p->last_error);
	curl_easy_setopt(p->curl, CURLOPT_TIMEOUT_MS, p->timeout_ms);
	curl_easy_setopt(p->curl, CURLOPT_CONNECTTIMEOUT_MS, p->timeout_ms);
	curl_easy_setopt(p->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(p->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(p->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(p->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(p->curl, CURLOPT_SSL_VERIFYPEER, p->verify_peer ? 1L : 0L);
	curl_easy_setopt(p->curl, CURLOPT_SSL_VERIFYHOST, p->verify_peer ? 2L : 0L);
	if(ca_file && *ca_file) curl_easy_setopt(p->curl, CURLOPT_CAINFO, ca_file);
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
			LOG_PREFIX "asking %s, %s, %s (%s bodies, timeout %ld ms, cache %s: auth %ld s, "
			"acl %ld s); certificate clients: %s",
			p->user_url, p->superuser_url ? p->superuser_url : "(no superuser check)",
			p->acl_url, p->params == PARAMS_JSON ? "json" : "form", p->timeout_ms,
			p->cache_on ? "on" : "off", auth_ttl, acl_ttl,
			p->have_cert_rules ? cert_acl_file : "asked like everyone");
	return true;
}

/* ---- plugin API v5 ------------------------------------------------------------------- */

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		struct mosquitto_opt *options, int option_count)
{
	if(curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return MOSQ_ERR_UNKNOWN;
	struct plugin *p = calloc(1, sizeof(*p));
	if(!p) return MOSQ_ERR_NOMEM;
	p->id = identifier;
	if(!configure(p, options, option_count)){
		plugin_free(p);
		return MOSQ_ERR_INVAL;
	}
	if(mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, p)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, p)){
		plugin_free(p);
		return MOSQ_ERR_UNKNOWN;
	}
	*userdata = p;
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)options;
	(void)option_count;
	struct plugin *p = userdata;
	if(p){
		mosquitto_callback_unregister(p->id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
		mosquitto_callback_unregister(p->id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
		plugin_free(p);
	}
	curl_global_cleanup();
	return MOSQ_ERR_SUCCESS;
}
