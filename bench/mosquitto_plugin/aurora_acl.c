/* aurora_acl: the certificate clients' ACL file of the aurora_auth plugin (Mosquitto's
 * acl_file syntax; see aurora_core.h). Pure: tested by test_core.c. */
#include "aurora_core.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the certificate clients' ACL file --------------------------------------------- */

static char *dup_range(const char *s, size_t n)
{
	char *copy = malloc(n + 1);
	if(copy){
		memcpy(copy, s, n);
		copy[n] = '\0';
	}
	return copy;
}

void acl_free(struct acl_rules *rules)
{
	for(size_t i = 0; i < rules->count; i++){
		free(rules->items[i].user);
		free(rules->items[i].topic);
	}
	free(rules->items);
	rules->items = NULL;
	rules->count = 0;
}

static bool acl_add(struct acl_rules *rules, const char *user, const char *topic, int access,
		bool deny)
{
	struct acl_rule *grown = realloc(rules->items, (rules->count + 1) * sizeof(*grown));
	if(!grown) return false;
	rules->items = grown;
	struct acl_rule *rule = &rules->items[rules->count];
	rule->user = user ? strdup(user) : NULL;
	rule->topic = strdup(topic);
	rule->access = access;
	rule->deny = deny;
	if((user && !rule->user) || !rule->topic){
		free(rule->user);
		free(rule->topic);
		return false;
	}
	rules->count++;
	return true;
}

/* Split `line` into at most 3 whitespace-separated words; the last keeps inner spaces
 * (Mosquitto allows spaces in topics). */
static size_t split_words(char *line, char *words[3])
{
	size_t n = 0;
	char *p = line;
	while(n < 3){
		while(*p == ' ' || *p == '\t') p++;
		if(!*p) break;
		words[n++] = p;
		if(n == 3) break;
		while(*p && *p != ' ' && *p != '\t') p++;
		if(*p) *p++ = '\0';
	}
	if(n){
		char *last = words[n - 1];
		size_t len = strlen(last);
		while(len && (last[len - 1] == ' ' || last[len - 1] == '\t')) last[--len] = '\0';
	}
	return n;
}

static bool filter_valid(const char *filter)
{
	if(!*filter) return false;
	for(const char *p = filter; *p; p++){
		if(*p == '#' && (p[1] != '\0' || (p != filter && p[-1] != '/'))) return false;
		if(*p == '+' && ((p != filter && p[-1] != '/') || (p[1] != '\0' && p[1] != '/'))){
			return false;
		}
	}
	return true;
}

bool acl_parse(const char *text, struct acl_rules *out, char *err, size_t errlen)
{
	out->items = NULL;
	out->count = 0;
	char *user = NULL;
	bool ok = true;
	size_t lineno = 0;
	const char *p = text;
	while(ok && *p){
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) : strlen(p);
		lineno++;
		char *line = dup_range(p, n);
		p += n + (eol ? 1 : 0);
		if(!line){
			snprintf(err, errlen, "line %zu: out of memory", lineno);
			ok = false;
			break;
		}
		if(n && line[n - 1] == '\r') line[n - 1] = '\0';
		char *words[3] = {NULL, NULL, NULL};
		size_t count = split_words(line, words);
		if(count == 0 || words[0][0] == '#'){
			free(line);
			continue;
		}
		if(strcmp(words[0], "user") == 0){
			if(count != 2){
				snprintf(err, errlen, "line %zu: 'user' takes one name", lineno);
				ok = false;
			}else{
				free(user);
				user = strdup(words[1]);
				ok = user != NULL;
			}
		}else if(strcmp(words[0], "topic") == 0 || strcmp(words[0], "pattern") == 0){
			bool pattern = words[0][0] == 'p';
			int access = ACL_READ | ACL_WRITE;
			bool deny = false;
			const char *topic = words[1];
			if(count == 3){
				/* rejoin: split_words stopped at 3 words, the topic is the third */
				if(strcmp(words[1], "read") == 0) access = ACL_READ;
				else if(strcmp(words[1], "write") == 0) access = ACL_WRITE;
				else if(strcmp(words[1], "readwrite") == 0) access = ACL_READ | ACL_WRITE;
				else if(strcmp(words[1], "deny") == 0) deny = true;
				else{
					snprintf(err, errlen,
							"line %zu: access '%s' is not read, write, readwrite or deny",
							lineno, words[1]);
					ok = false;
				}
				topic = words[2];
			}else if(count != 2){
				snprintf(err, errlen, "line %zu: '%s' needs a topic", lineno, words[0]);
				ok = false;
			}
			if(ok && !filter_valid(topic)){
				snprintf(err, errlen, "line %zu: '%s' is not a valid topic filter", lineno, topic);
				ok = false;
			}
			if(ok && !pattern && !user){
				snprintf(err, errlen,
						"line %zu: 'topic' before any 'user' line (anonymous clients are not "
						"allowed here)",
						lineno);
				ok = false;
			}
			if(ok && !acl_add(out, pattern ? NULL : user, topic, access, deny)){
				snprintf(err, errlen, "line %zu: out of memory", lineno);
				ok = false;
			}
		}else{
			snprintf(err, errlen, "line %zu: unknown keyword '%s' (user, topic, pattern)", lineno,
					words[0]);
			ok = false;
		}
		free(line);
	}
	free(user);
	if(!ok) acl_free(out);
	return ok;
}

bool acl_load_file(const char *path, struct acl_rules *out, char *err, size_t errlen)
{
	FILE *file = fopen(path, "rb");
	if(!file){
		snprintf(err, errlen, "%s: cannot be opened", path);
		return false;
	}
	struct abuf text;
	abuf_init(&text, 1 << 20);
	char chunk[4096];
	size_t n;
	bool ok = true;
	while(ok && (n = fread(chunk, 1, sizeof(chunk), file)) > 0){
		ok = abuf_append(&text, chunk, n);
	}
	fclose(file);
	if(!ok){
		snprintf(err, errlen, "%s: larger than 1 MiB", path);
		abuf_free(&text);
		return false;
	}
	char inner[400];
	ok = acl_parse(text.data ? text.data : "", out, inner, sizeof(inner));
	if(!ok) snprintf(err, errlen, "%s: %s", path, inner);
	abuf_free(&text);
	return ok;
}

/* `template` with %u / %c replaced; NULL when a value would widen the filter. */
static char *fill_pattern(const char *template, const char *username, const char *clientid)
{
	struct abuf out;
	abuf_init(&out, 65536 * 2);
	for(const char *p = template; *p; p++){
		const char *value = NULL;
		if(p[0] == '%' && (p[1] == 'u' || p[1] == 'c')){
			value = p[1] == 'u' ? username : clientid;
			/* A name with a wildcard or a slash would turn a per-client rule into a
			 * wider one: the rule does not apply (Mosquitto does the same). */
			if(!value || !*value || strpbrk(value, "+#/")){
				abuf_free(&out);
				return NULL;
			}
			if(!abuf_puts(&out, value)){
				abuf_free(&out);
				return NULL;
			}
			p++;
		}else if(!abuf_append(&out, p, 1)){
			abuf_free(&out);
			return NULL;
		}
	}
	return out.data ? out.data : strdup("");
}

bool acl_allows(const struct acl_rules *rules, const char *username, const char *clientid,
		const char *topic, int access)
{
	bool subscribe = access == 4;
	int wanted = subscribe ? ACL_READ : access;
	if(subscribe){
		topic = strip_share(topic);
		if(!topic) return false;
	}
	bool allowed = false;
	for(size_t i = 0; i < rules->count; i++){
		const struct acl_rule *rule = &rules->items[i];
		if(!(rule->deny || (rule->access & wanted))) continue;
		if(rule->user && (!username || strcmp(rule->user, username) != 0)) continue;
		char *filled = NULL;
		const char *filter = rule->topic;
		if(!rule->user){
			filled = fill_pattern(rule->topic, username, clientid);
			if(!filled) continue;
			filter = filled;
		}
		bool hit;
		if(rule->deny){
			hit = subscribe ? filters_overlap(filter, topic) : topic_matches(filter, topic);
		}else{
			hit = subscribe ? filter_covers(filter, topic) : topic_matches(filter, topic);
		}
		free(filled);
		if(hit && rule->deny) return false;
		if(hit) allowed = true;
	}
	return allowed;
}

bool acl_names_user(const struct acl_rules *rules, const char *username)
{
	for(size_t i = 0; i < rules->count; i++){
		if(rules->items[i].user && strcmp(rules->items[i].user, username) == 0) return true;
	}
	return false;
}
