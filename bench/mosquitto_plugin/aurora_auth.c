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
#include <errno.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aurora_plugin.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

size_t plugin_on_answer(char *data, size_t size, size_t nmemb, void *userdata)
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
/* One log line when the shared cache fails, one when it works again. */
static void shared_status(struct plugin *p)
{
	if(p->shared->error[0] && !p->shared_down){
		p->shared_down = true;
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				LOG_PREFIX "shared cache at %s:%ld unavailable (%s); deciding without it, "
				"trying again in %ld ms", p->shared->host, p->shared->port, p->shared->error,
				p->shared->retry_ms);
	}else if(!p->shared->error[0] && p->shared_down && p->shared->fd >= 0){
		p->shared_down = false;
		mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "shared cache at %s:%ld is back",
				p->shared->host, p->shared->port);
	}
}

static enum verdict decide(struct plugin *p, char kind, const char *const *parts, size_t nparts,
		double ttl_s, const char *url, const struct field *fields, size_t n,
		const char *what, const char *bearer)
{
	bool keyed = p->cache_on && cache_key(&p->key, kind, parts, nparts);
	char shared_key[REDIS_KEY_BYTES];
	size_t shared_len = 0;
	if(keyed){
		double now = now_s();
		int hit = cache_get(p->cache, p->key.data, p->key.len, now);
		if(hit >= 0) return hit ? ALLOW : DENY;
		if(p->shared && (shared_len = redis_key_of(p->key.data, p->key.len, shared_key)) > 0){
			double left = 0.0;
			hit = redis_get(p->shared, shared_key, shared_len, now, &left);
			shared_status(p);
			if(hit >= 0){
				/* Never longer than this broker's own TTL, nor than the shared entry. */
				cache_put(p->cache, p->key.data, p->key.len, hit == 1,
						now + (left < ttl_s ? left : ttl_s), now);
				return hit ? ALLOW : DENY;
			}
		}
	}
	enum verdict v = ask(p, url, fields, n, what, bearer);
	if(keyed && v != ERROR){
		double now = now_s();
		/* the key buffer was not touched by ask() */
		cache_put(p->cache, p->key.data, p->key.len, v == ALLOW, now + ttl_s, now);
		if(shared_len > 0){
			redis_put(p->shared, shared_key, shared_len, v == ALLOW, (long)(ttl_s * 1000.0), now);
			shared_status(p);
		}
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

void plugin_tokens_free(struct plugin *p)
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
		plugin_tokens_free(p);
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
	if(!plugin_configure(p, options, option_count)){
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
