/* aurora_options: the aurora_auth plugin's plugin_opt_* settings and its libcurl setup
 * (the options are listed in aurora_auth.c's header comment). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aurora_plugin.h"

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

void plugin_free(struct plugin *p)
{
	if(!p) return;
	if(p->curl) curl_easy_cleanup(p->curl);
	curl_slist_free_all(p->headers);
	free(p->user_url);
	free(p->superuser_url);
	free(p->acl_url);
	if(p->shared){
		redis_close(p->shared);
		free(p->shared);
	}
	cache_free(p->cache);
	cache_free(p->kinds);
	plugin_tokens_free(p);
	acl_free(&p->cert_rules);
	abuf_free(&p->body);
	abuf_free(&p->answer);
	abuf_free(&p->key);
	free(p);
}

bool plugin_configure(struct plugin *p, struct mosquitto_opt *opts, int count)
{
	const char *host = "127.0.0.1";
	const char *user_uri = "/mqtt/user", *superuser_uri = "/mqtt/superuser";
	const char *acl_uri = "/mqtt/acl", *cert_acl_file = NULL, *ca_file = NULL;
	long port = 0, timeout_s = 5, timeout_ms = -1, retry_ms = 1000;
	long auth_ttl = 30, acl_ttl = 30, max_entries = 100000;
	long max_user = 1024, max_password = 8192, max_response = 4096;
	bool tls = false, disable_superuser = false, ok = true, shared = false;
	const char *cache_host = "127.0.0.1";
	long cache_port = 6379, cache_db = 0, cache_timeout_ms = 100, cache_retry_ms = 1000;
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
		else if(!strcmp(k, "cache_host")) cache_host = v;
		else if(!strcmp(k, "cache_port")) ok = parse_long(k, v, 1, 65535, &cache_port);
		else if(!strcmp(k, "cache_db")) ok = parse_long(k, v, 0, 1000000, &cache_db);
		else if(!strcmp(k, "cache_timeout_ms")) ok = parse_long(k, v, 1, 60000, &cache_timeout_ms);
		else if(!strcmp(k, "cache_retry_after_ms")){
			ok = parse_long(k, v, 0, 600000, &cache_retry_ms);
		}else if(!strcmp(k, "cache_type")){
			if(!strcmp(v, "memory")) shared = false;
			else if(!strcmp(v, "redis")) shared = true;
			else{
				mosquitto_log_printf(MOSQ_LOG_ERR,
						LOG_PREFIX "plugin_opt_cache_type '%s' is not memory or redis", v);
				ok = false;
			}
		}
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
	if(shared && p->cache_on){
		p->shared = malloc(sizeof(*p->shared));
		if(!p->shared) return false;
		redis_init(p->shared, cache_host, cache_port, cache_db, cache_timeout_ms, cache_retry_ms);
		if(!p->shared->host) return false;
	}
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
	curl_easy_setopt(p->curl, CURLOPT_WRITEFUNCTION, plugin_on_answer);
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
			"acl %ld s%s%s:%ld); certificate clients: %s",
			p->user_url, p->superuser_url ? p->superuser_url : "(no superuser check)",
			p->acl_url, p->params == PARAMS_JSON ? "json" : "form", p->timeout_ms,
			p->cache_on ? "on" : "off", auth_ttl, acl_ttl,
			p->shared ? ", shared in redis at " : "", p->shared ? cache_host : "",
			p->shared ? cache_port : 0L,
			p->have_cert_rules ? cert_acl_file : "asked like everyone");
	return true;
}
