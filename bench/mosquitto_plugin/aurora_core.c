/* aurora_core: pure parts of the aurora_auth plugin (see aurora_core.h). */
#include "aurora_core.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- bounded growable buffer ------------------------------------------------------ */

void abuf_init(struct abuf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void abuf_reset(struct abuf *b)
{
	b->len = 0;
	if(b->data) b->data[0] = '\0';
}

void abuf_free(struct abuf *b)
{
	free(b->data);
	abuf_init(b, b->max);
}

bool abuf_append(struct abuf *b, const char *s, size_t n)
{
	if(n > b->max || b->len > b->max - n) return false;
	if(b->len + n + 1 > b->cap){
		size_t cap = b->cap ? b->cap : 256;
		while(cap < b->len + n + 1) cap *= 2;
		char *grown = realloc(b->data, cap);
		if(!grown) return false;
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

bool abuf_puts(struct abuf *b, const char *s)
{
	return abuf_append(b, s, strlen(s));
}

/* ---- go-auth request bodies -------------------------------------------------------- */

static bool json_string(struct abuf *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	if(!abuf_append(out, "\"", 1)) return false;
	for(const unsigned char *p = (const unsigned char *)s; *p; p++){
		char esc[7];
		size_t n = 0;
		if(*p == '"' || *p == '\\'){
			esc[n++] = '\\';
			esc[n++] = (char)*p;
		}else if(*p < 0x20){
			memcpy(esc, "\\u00", 4);
			n = 4;
			esc[n++] = hex[*p >> 4];
			esc[n++] = hex[*p & 0xf];
		}else{
			/* UTF-8 passes through: Mosquitto has checked it is valid. */
			esc[n++] = (char)*p;
		}
		if(!abuf_append(out, esc, n)) return false;
	}
	return abuf_append(out, "\"", 1);
}

static bool form_escape(struct abuf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for(const unsigned char *p = (const unsigned char *)s; *p; p++){
		if(isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~'){
			if(!abuf_append(out, (const char *)p, 1)) return false;
		}else{
			char esc[3] = {'%', hex[*p >> 4], hex[*p & 0xf]};
			if(!abuf_append(out, esc, 3)) return false;
		}
	}
	return true;
}

bool encode_body(struct abuf *out, enum params_mode mode, const struct field *fields, size_t n)
{
	abuf_reset(out);
	if(mode == PARAMS_FORM){
		for(size_t i = 0; i < n; i++){
			if(i && !abuf_append(out, "&", 1)) return false;
			if(!form_escape(out, fields[i].name) || !abuf_append(out, "=", 1)) return false;
			if(!form_escape(out, fields[i].value)) return false;
		}
		return abuf_append(out, "", 0);
	}
	if(!abuf_append(out, "{", 1)) return false;
	for(size_t i = 0; i < n; i++){
		if(i && !abuf_append(out, ",", 1)) return false;
		if(!json_string(out, fields[i].name) || !abuf_append(out, ":", 1)) return false;
		if(fields[i].number){
			/* Only our own decimal numbers come here (acc); refuse anything else. */
			const char *v = fields[i].value;
			if(!*v) return false;
			for(const char *p = v; *p; p++){
				if(!isdigit((unsigned char)*p)) return false;
			}
			if(!abuf_puts(out, v)) return false;
		}else if(!json_string(out, fields[i].value)){
			return false;
		}
	}
	return abuf_append(out, "}", 1);
}

/* ---- go-auth answers: a minimal JSON reader for {"ok": bool, ...} ------------------ */

static const char *skip_ws(const char *p, const char *end)
{
	while(p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
	return p;
}

/* p at the opening quote; returns the position after the closing quote or NULL. */
static const char *skip_string(const char *p, const char *end)
{
	for(p++; p < end; p++){
		if(*p == '\\'){
			p++;
		}else if(*p == '"'){
			return p + 1;
		}
	}
	return NULL;
}

static const char *skip_value(const char *p, const char *end)
{
	if(p >= end) return NULL;
	if(*p == '"') return skip_string(p, end);
	if(*p == '{' || *p == '['){
		/* Depth counted iteratively: a deeply nested answer cannot exhaust the stack. */
		size_t depth = 0;
		while(p < end){
			if(*p == '"'){
				p = skip_string(p, end);
				if(!p) return NULL;
				continue;
			}
			if(*p == '{' || *p == '['){
				depth++;
			}else if(*p == '}' || *p == ']'){
				if(--depth == 0) return p + 1;
			}
			p++;
		}
		return NULL;
	}
	const char *start = p;
	while(p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n'
			&& *p != '\r' && *p != '\t'){
		p++;
	}
	return p > start ? p : NULL;
}

/* 1: {"ok": true}, 0: ok false or absent, -1: not a JSON object. The last "ok" wins,
 * as in Go's encoding/json, which go-auth uses. */
static int json_ok(const char *body, size_t len)
{
	const char *p = body, *end = body + len;
	int ok = 0;
	p = skip_ws(p, end);
	if(p >= end || *p != '{') return -1;
	p = skip_ws(p + 1, end);
	if(p < end && *p == '}') return skip_ws(p + 1, end) == end ? 0 : -1;
	while(p < end){
		if(*p != '"') return -1;
		const char *key = p + 1;
		const char *after = skip_string(p, end);
		if(!after) return -1;
		bool is_ok = (size_t)(after - key) == 3 && memcmp(key, "ok\"", 3) == 0;
		p = skip_ws(after, end);
		if(p >= end || *p != ':') return -1;
		p = skip_ws(p + 1, end);
		const char *value = p;
		p = skip_value(p, end);
		if(!p) return -1;
		if(is_ok){
			if((size_t)(p - value) == 4 && memcmp(value, "true", 4) == 0){
				ok = 1;
			}else if((size_t)(p - value) == 5 && memcmp(value, "false", 5) == 0){
				ok = 0;
			}else{
				return -1;
			}
		}
		p = skip_ws(p, end);
		if(p < end && *p == ','){
			p = skip_ws(p + 1, end);
			continue;
		}
		if(p < end && *p == '}') return skip_ws(p + 1, end) == end ? ok : -1;
		return -1;
	}
	return -1;
}

bool response_allows(enum response_mode mode, long status, const char *body, size_t len,
		const char **why)
{
	*why = "";
	if(status < 200 || status > 299){
		*why = "non-2xx answer";
		return false;
	}
	switch(mode){
		case RESPONSE_STATUS:
			return true;
		case RESPONSE_TEXT:
			if(len == 2 && memcmp(body, "ok", 2) == 0) return true;
			*why = "body is not \"ok\"";
			return false;
		case RESPONSE_JSON:
			switch(json_ok(body, len)){
				case 1:
					return true;
				case 0:
					*why = "answer says ok false";
					return false;
				default:
					*why = "answer is not a JSON object {\"ok\": bool}";
					return false;
			}
	}
	*why = "unknown response mode";
	return false;
}

/* ---- topics ------------------------------------------------------------------------ */

/* The next level of a topic or filter: [*p, *level_end). Returns false when exhausted. */
static bool next_level(const char **p, const char **level, size_t *n, bool *done)
{
	if(*done) return false;
	*level = *p;
	const char *slash = strchr(*p, '/');
	if(slash){
		*n = (size_t)(slash - *p);
		*p = slash + 1;
	}else{
		*n = strlen(*p);
		*p += *n;
		*done = true;
	}
	return true;
}

static bool level_is(const char *level, size_t n, const char *what)
{
	return n == strlen(what) && memcmp(level, what, n) == 0;
}

bool topic_matches(const char *filter, const char *topic)
{
	if(topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return false;
	const char *f = filter, *t = topic, *fl, *tl;
	size_t fn, tn;
	bool fdone = false, tdone = false;
	for(;;){
		bool has_f = next_level(&f, &fl, &fn, &fdone);
		bool has_t = next_level(&t, &tl, &tn, &tdone);
		if(has_f && level_is(fl, fn, "#")) return true;
		if(!has_f || !has_t) return has_f == has_t;
		if(level_is(fl, fn, "+")) continue;
		if(fn != tn || memcmp(fl, tl, fn) != 0) return false;
	}
}

bool filter_covers(const char *rule, const char *filter)
{
	if(filter[0] == '$' && (rule[0] == '+' || rule[0] == '#')) return false;
	const char *r = rule, *f = filter, *rl, *fl;
	size_t rn, fn;
	bool rdone = false, fdone = false;
	for(;;){
		bool has_r = next_level(&r, &rl, &rn, &rdone);
		bool has_f = next_level(&f, &fl, &fn, &fdone);
		if(has_r && level_is(rl, rn, "#")) return true;
		if(!has_r || !has_f) return has_r == has_f;
		if(level_is(fl, fn, "#")) return false; /* only a rule '#' covers a filter '#' */
		if(level_is(rl, rn, "+")) continue;     /* '+' covers a level and a '+' */
		if(level_is(fl, fn, "+")) return false;
		if(rn != fn || memcmp(rl, fl, rn) != 0) return false;
	}
}

bool filters_overlap(const char *a, const char *b)
{
	const char *pa = a, *pb = b, *la, *lb;
	size_t na, nb;
	bool adone = false, bdone = false;
	for(;;){
		bool has_a = next_level(&pa, &la, &na, &adone);
		bool has_b = next_level(&pb, &lb, &nb, &bdone);
		if((has_a && level_is(la, na, "#")) || (has_b && level_is(lb, nb, "#"))) return true;
		if(!has_a || !has_b) return has_a == has_b;
		if(level_is(la, na, "+") || level_is(lb, nb, "+")) continue;
		if(na != nb || memcmp(la, lb, na) != 0) return false;
	}
}

const char *strip_share(const char *filter)
{
	if(strncmp(filter, "$share/", 7) != 0) return filter;
	const char *group = filter + 7;
	const char *slash = strchr(group, '/');
	if(!slash || slash == group) return NULL;
	for(const char *p = group; p < slash; p++){
		if(*p == '+' || *p == '#') return NULL;
	}
	return slash[1] ? slash + 1 : NULL;
}

/* ---- decision cache ---------------------------------------------------------------- */

struct entry {
	struct entry *next;
	char *key;
	size_t keylen;
	double expires;
	bool allow;
};

struct cache {
	struct entry **buckets;
	size_t nbuckets;
	size_t count;
	size_t max_entries;
};

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for(size_t i = 0; i < n; i++){
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

struct cache *cache_new(size_t max_entries)
{
	struct cache *cache = calloc(1, sizeof(*cache));
	if(!cache) return NULL;
	size_t n = 64;
	while(n < max_entries && n < ((size_t)1 << 24)) n *= 2;
	cache->buckets = calloc(n, sizeof(*cache->buckets));
	if(!cache->buckets){
		free(cache);
		return NULL;
	}
	cache->nbuckets = n;
	cache->max_entries = max_entries ? max_entries : 1;
	return cache;
}

static void drop_entries(struct cache *cache, double now, bool all)
{
	for(size_t i = 0; i < cache->nbuckets; i++){
		struct entry **link = &cache->buckets[i];
		while(*link){
			struct entry *e = *link;
			if(all || e->expires <= now){
				*link = e->next;
				free(e->key);
				free(e);
				cache->count--;
			}else{
				link = &e->next;
			}
		}
	}
}

void cache_free(struct cache *cache)
{
	if(!cache) return;
	drop_entries(cache, 0, true);
	free(cache->buckets);
	free(cache);
}

static struct entry **find(struct cache *cache, const char *key, size_t keylen)
{
	struct entry **link = &cache->buckets[fnv1a(key, keylen) & (cache->nbuckets - 1)];
	while(*link && !((*link)->keylen == keylen && memcmp((*link)->key, key, keylen) == 0)){
		link = &(*link)->next;
	}
	return link;
}

int cache_get(struct cache *cache, const char *key, size_t keylen, double now)
{
	struct entry **link = find(cache, key, keylen);
	struct entry *e = *link;
	if(!e) return -1;
	if(e->expires <= now){
		*link = e->next;
		free(e->key);
		free(e);
		cache->count--;
		return -1;
	}
	return e->allow ? 1 : 0;
}

void cache_put(struct cache *cache, const char *key, size_t keylen, bool allow, double expires,
		double now)
{
	struct entry **link = find(cache, key, keylen);
	if(*link){
		(*link)->allow = allow;
		(*link)->expires = expires;
		return;
	}
	if(cache->count >= cache->max_entries){
		drop_entries(cache, now, false);
		if(cache->count >= cache->max_entries) drop_entries(cache, now, true);
		link = find(cache, key, keylen);
	}
	struct entry *e = malloc(sizeof(*e));
	char *copy = malloc(keylen ? keylen : 1);
	if(!e || !copy){
		free(e);
		free(copy);
		return; /* not cached: the next check asks again */
	}
	memcpy(copy, key, keylen);
	e->key = copy;
	e->keylen = keylen;
	e->allow = allow;
	e->expires = expires;
	e->next = NULL;
	*link = e;
	cache->count++;
}

size_t cache_size(const struct cache *cache)
{
	return cache->count;
}

bool cache_key(struct abuf *out, char kind, const char *const *parts, size_t n)
{
	abuf_reset(out);
	if(!abuf_append(out, &kind, 1)) return false;
	for(size_t i = 0; i < n; i++){
		const char *part = parts[i] ? parts[i] : "";
		char len[24];
		int w = snprintf(len, sizeof(len), "%zu:", strlen(part));
		if(w < 0 || !abuf_append(out, len, (size_t)w) || !abuf_puts(out, part)) return false;
	}
	return true;
}
