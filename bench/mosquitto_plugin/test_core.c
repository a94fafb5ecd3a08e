/* Tests of aurora_core (no broker, no network). `make test` runs them; pytest runs make. */
#include "aurora_core.h"
#include "aurora_resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond) do { \
	checks++; \
	if(!(cond)){ \
		failures++; \
		fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
	} \
} while(0)

static void test_json_body(void)
{
	struct abuf b;
	abuf_init(&b, 4096);
	struct field f[] = {
		{"username", "svc \"x\"\\", false},
		{"clientid", "c\n1", false},
		{"topic", "caf\xc3\xa9/+", false},
		{"acc", "4", true},
	};
	CHECK(encode_body(&b, PARAMS_JSON, f, 4));
	CHECK(strcmp(b.data, "{\"username\":\"svc \\\"x\\\"\\\\\",\"clientid\":\"c\\u000a1\","
			"\"topic\":\"caf\xc3\xa9/+\",\"acc\":4}") == 0);
	struct field bad[] = {{"acc", "4; drop", true}};
	CHECK(!encode_body(&b, PARAMS_JSON, bad, 1));
	abuf_free(&b);
}

static void test_form_body(void)
{
	struct abuf b;
	abuf_init(&b, 4096);
	struct field f[] = {
		{"username", "a b&c=d", false},
		{"topic", "$share/g/x/#", false},
		{"acc", "1", true},
	};
	CHECK(encode_body(&b, PARAMS_FORM, f, 3));
	CHECK(strcmp(b.data, "username=a%20b%26c%3Dd&topic=%24share%2Fg%2Fx%2F%23&acc=1") == 0);
	abuf_free(&b);
}

static void test_bounded_buffer(void)
{
	struct abuf b;
	abuf_init(&b, 16);
	CHECK(abuf_puts(&b, "0123456789"));
	CHECK(!abuf_puts(&b, "0123456789"));  /* would be 20 > 16: refused, unchanged */
	CHECK(b.len == 10 && strcmp(b.data, "0123456789") == 0);
	CHECK(abuf_puts(&b, "012345"));
	CHECK(!abuf_append(&b, "x", 1));
	CHECK(!abuf_append(&b, "x", (size_t)-1));  /* no size_t overflow */
	/* A body that would not fit is refused, not truncated. */
	char big[64];
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	struct field f[] = {{"password", big, false}};
	CHECK(!encode_body(&b, PARAMS_JSON, f, 1));
	abuf_free(&b);
}

static void test_responses(void)
{
	const char *why;
	CHECK(response_allows(RESPONSE_STATUS, 200, "", 0, &why));
	CHECK(response_allows(RESPONSE_STATUS, 204, "", 0, &why));
	CHECK(!response_allows(RESPONSE_STATUS, 403, "", 0, &why));
	CHECK(!response_allows(RESPONSE_STATUS, 301, "", 0, &why));
	CHECK(!response_allows(RESPONSE_STATUS, 500, "", 0, &why));
	CHECK(response_allows(RESPONSE_TEXT, 200, "ok", 2, &why));
	CHECK(!response_allows(RESPONSE_TEXT, 200, "okay", 4, &why));
	CHECK(!response_allows(RESPONSE_TEXT, 403, "ok", 2, &why));
	const char *j1 = "{\"ok\": true, \"error\": \"\"}";
	CHECK(response_allows(RESPONSE_JSON, 200, j1, strlen(j1), &why));
	const char *j2 = "{\"ok\":false,\"error\":\"no\"}";
	CHECK(!response_allows(RESPONSE_JSON, 200, j2, strlen(j2), &why));
	/* "ok" inside a string value is not the key */
	const char *j3 = "{\"error\":\"\\\"ok\\\": true\"}";
	CHECK(!response_allows(RESPONSE_JSON, 200, j3, strlen(j3), &why));
	/* the last key wins (Go's encoding/json) */
	const char *j4 = "{\"ok\":true,\"x\":{\"ok\":[1,{\"a\":\"}\"}]},\"ok\":false}";
	CHECK(!response_allows(RESPONSE_JSON, 200, j4, strlen(j4), &why));
	const char *j5 = "{\"ok\":false,\"ok\":true}";
	CHECK(response_allows(RESPONSE_JSON, 200, j5, strlen(j5), &why));
	const char *bad[] = {"", "ok", "{", "{\"ok\":tru}", "{\"ok\":true", "{\"ok\":true}x",
		"[{\"ok\":true}]", "{\"ok\":\"true\"}", "{\"ok\" true}"};
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++){
		CHECK(!response_allows(RESPONSE_JSON, 200, bad[i], strlen(bad[i]), &why));
	}
	/* deeply nested answers are walked without recursion */
	size_t depth = 100000;
	char *deep = malloc(depth * 2 + 32);
	size_t n = 0;
	n += (size_t)sprintf(deep, "{\"x\":");
	for(size_t i = 0; i < depth; i++) deep[n++] = '[';
	for(size_t i = 0; i < depth; i++) deep[n++] = ']';
	n += (size_t)sprintf(deep + n, ",\"ok\":true}");
	CHECK(response_allows(RESPONSE_JSON, 200, deep, n, &why));
	free(deep);
}

static void test_topics(void)
{
	CHECK(topic_matches("aurora/sensors/+/telemetry", "aurora/sensors/d1/telemetry"));
	CHECK(!topic_matches("aurora/sensors/+/telemetry", "aurora/sensors/d1/status"));
	CHECK(topic_matches("aurora/#", "aurora"));
	CHECK(topic_matches("aurora/#", "aurora/a/b"));
	CHECK(topic_matches("#", "a/b"));
	CHECK(!topic_matches("#", "$SYS/x"));
	CHECK(!topic_matches("+/x", "$SYS/x"));
	CHECK(topic_matches("a/+", "a/"));
	CHECK(!topic_matches("a/+", "a"));
	CHECK(!topic_matches("a/b", "a/b/c"));

	CHECK(filter_covers("aurora/#", "aurora/sensors/+/telemetry"));
	CHECK(filter_covers("#", "a/#"));
	CHECK(filter_covers("a/+/c", "a/+/c"));
	CHECK(filter_covers("a/+/c", "a/b/c"));
	CHECK(!filter_covers("a/b/c", "a/+/c"));
	CHECK(!filter_covers("a/+", "a/#"));
	CHECK(!filter_covers("a/+/c", "a/+/#"));
	CHECK(filter_covers("aurora/access/d1/command", "aurora/access/d1/command"));
	CHECK(!filter_covers("aurora/access/d1/command", "aurora/access/+/command"));
	CHECK(!filter_covers("#", "$SYS/#"));

	CHECK(filters_overlap("a/+/c", "a/b/#"));
	CHECK(filters_overlap("a/#", "a"));
	CHECK(!filters_overlap("a/b", "a/c"));
	CHECK(!filters_overlap("a/+", "a/b/c"));

	CHECK(strcmp(strip_share("$share/ingest/aurora/x"), "aurora/x") == 0);
	CHECK(strcmp(strip_share("aurora/x"), "aurora/x") == 0);
	CHECK(strip_share("$share/ingest") == NULL);
	CHECK(strip_share("$share//x") == NULL);
	CHECK(strip_share("$share/g+/x") == NULL);
	CHECK(strip_share("$share/g/") == NULL);
}

/* The bench's ACL file (bench.services.config.mosquitto_acl). */
static const char *BENCH_ACL =
	"# generated\n"
	"\n"
	"user aurora-backend-a\n"
	"topic read aurora/#\n"
	"topic write aurora/access/+/command\n"
	"topic write aurora/attestation/+/request\n"
	"\n"
	"user bench-probe\n"
	"topic read #\n"
	"topic write aurora/#\n"
	"\n"
	"pattern write aurora/sensors/%u/#\n"
	"pattern write aurora/access/%u/badge_event\n"
	"pattern write aurora/attestation/%u/response\n"
	"pattern read aurora/access/%u/command\n"
	"pattern read aurora/attestation/%u/request\r\n";

static void test_acl(void)
{
	struct acl_rules r;
	char err[256];
	CHECK(acl_parse(BENCH_ACL, &r, err, sizeof(err)));
	CHECK(r.count == 10);
	const char *dev = "stm32f401-door-03", *be = "aurora-backend-a";
	/* devices: own topics only */
	CHECK(acl_allows(&r, dev, dev, "aurora/sensors/stm32f401-door-03/telemetry", 2));
	CHECK(!acl_allows(&r, dev, dev, "aurora/sensors/other/telemetry", 2));
	CHECK(acl_allows(&r, dev, dev, "aurora/access/stm32f401-door-03/command", 1));
	CHECK(!acl_allows(&r, dev, dev, "aurora/sensors/stm32f401-door-03/telemetry", 1));
	CHECK(acl_allows(&r, dev, dev, "aurora/access/stm32f401-door-03/command", 4));
	CHECK(acl_allows(&r, dev, dev, "aurora/attestation/stm32f401-door-03/request", 4));
	/* the $share steal of issue #11 and its variants */
	CHECK(!acl_allows(&r, dev, dev, "$share/ingest/aurora/sensors/+/telemetry", 4));
	CHECK(!acl_allows(&r, dev, dev, "aurora/sensors/+/telemetry", 4));
	CHECK(!acl_allows(&r, dev, dev, "aurora/access/+/command", 4));
	CHECK(!acl_allows(&r, dev, dev, "#", 4));
	CHECK(!acl_allows(&r, dev, dev, "$share/x/aurora/access/stm32f401-door-03/command/#", 4));
	/* a username with wildcards never widens a pattern */
	CHECK(!acl_allows(&r, "+", "+", "aurora/access/+/command", 4));
	CHECK(!acl_allows(&r, "#", "c", "aurora/sensors/#", 2));
	/* the backend's shared subscription and its commands */
	CHECK(acl_allows(&r, be, be, "$share/ingest/aurora/sensors/+/telemetry", 4));
	CHECK(acl_allows(&r, be, be, "aurora/access/d1/command", 2));
	CHECK(!acl_allows(&r, be, be, "aurora/sensors/d1/telemetry", 2));
	CHECK(!acl_allows(&r, be, be, "$share/ingest", 4));
	CHECK(acl_allows(&r, "bench-probe", "p", "#", 4));
	CHECK(!acl_allows(&r, "stranger", "s", "aurora/x", 1));
	CHECK(acl_names_user(&r, "aurora-backend-a") && acl_names_user(&r, "bench-probe"));
	CHECK(!acl_names_user(&r, dev));
	acl_free(&r);

	CHECK(acl_parse("user a\ntopic deny a/secret\ntopic read a/#\n", &r, err, sizeof(err)));
	CHECK(acl_allows(&r, "a", "c", "a/public", 1));
	CHECK(!acl_allows(&r, "a", "c", "a/secret", 1));
	CHECK(!acl_allows(&r, "a", "c", "a/#", 4));  /* would include a/secret */
	acl_free(&r);

	CHECK(!acl_parse("user a\ntopic sometimes a/b\n", &r, err, sizeof(err)));
	CHECK(strstr(err, "line 2") && strstr(err, "sometimes"));
	CHECK(!acl_parse("topic read a/b\n", &r, err, sizeof(err)));
	CHECK(strstr(err, "line 1"));
	CHECK(!acl_parse("user a\ntopic read a/#/b\n", &r, err, sizeof(err)));
	CHECK(strstr(err, "not a valid topic filter"));
	CHECK(!acl_parse("group a\n", &r, err, sizeof(err)));
	CHECK(strstr(err, "unknown keyword"));
	CHECK(!acl_load_file("/nonexistent/acl", &r, err, sizeof(err)));
	CHECK(strstr(err, "/nonexistent/acl"));
}

static void test_cache(void)
{
	struct cache *c = cache_new(4);
	struct abuf k;
	abuf_init(&k, 1024);
	const char *p1[] = {"u", "t/x"};
	const char *p2[] = {"u:1", "t/x"};   /* length prefixes keep these two apart */
	const char *p3[] = {"u", "1:t/x"};
	CHECK(cache_key(&k, 'a', p1, 2));
	char *k1 = strdup(k.data);
	size_t l1 = k.len;
	CHECK(cache_key(&k, 'a', p2, 2));
	char *k2 = strdup(k.data);
	size_t l2 = k.len;
	CHECK(cache_key(&k, 'a', p3, 2));
	CHECK(!(k.len == l2 && memcmp(k.data, k2, l2) == 0));
	CHECK(!(l1 == l2 && memcmp(k1, k2, l1) == 0));

	CHECK(cache_get(c, k1, l1, 0.0) == -1);
	cache_put(c, k1, l1, true, 10.0, 0.0);
	cache_put(c, k2, l2, false, 10.0, 0.0);
	CHECK(cache_get(c, k1, l1, 5.0) == 1);
	CHECK(cache_get(c, k2, l2, 5.0) == 0);
	CHECK(cache_get(c, k1, l1, 10.0) == -1);  /* expired at its TTL */
	CHECK(cache_size(c) == 1);
	/* bounded: a full cache drops expired entries, then everything */
	char key[8];
	for(int i = 0; i < 10; i++){
		snprintf(key, sizeof(key), "k%d", i);
		cache_put(c, key, strlen(key), true, 100.0, 20.0);
		CHECK(cache_size(c) <= 4);
	}
	CHECK(cache_get(c, "k9", 2, 21.0) == 1);
	free(k1);
	free(k2);
	abuf_free(&k);
	cache_free(c);
}

static void test_resp(void)
{
	struct abuf b;
	abuf_init(&b, 256);
	const char *args[] = {"SET", "k", "1", "PX", "30000"};
	const size_t lens[] = {3, 1, 1, 2, 5};
	CHECK(resp_command(&b, args, lens, 5));
	CHECK(b.len == strlen("*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$2\r\nPX\r\n$5\r\n30000\r\n"));
	CHECK(memcmp(b.data, "*5\r\n$3\r\nSET\r\n$1\r\nk\r\n", 19) == 0);
	struct abuf tiny;
	abuf_init(&tiny, 8);
	CHECK(!resp_command(&tiny, args, lens, 5));  /* bounded */
	abuf_free(&tiny);
	abuf_free(&b);

	struct resp_reply r;
	CHECK(resp_parse("+OK\r\n", 5, &r) == 5 && r.kind == RESP_SIMPLE && r.len == 2);
	CHECK(resp_parse("-ERR x\r\n", 8, &r) == 8 && r.kind == RESP_ERROR);
	CHECK(resp_parse(":-2\r\n", 5, &r) == 5 && r.kind == RESP_INTEGER && r.integer == -2);
	CHECK(resp_parse(":29998\r\n", 8, &r) == 8 && r.integer == 29998);
	CHECK(resp_parse("$-1\r\n", 5, &r) == 5 && r.kind == RESP_NIL);
	CHECK(resp_parse("$1\r\n1\r\n", 7, &r) == 7 && r.kind == RESP_BULK && r.len == 1
			&& r.data[0] == '1');
	/* two replies back to back (GET and PTTL pipelined) */
	const char two[] = "$1\r\n0\r\n:500\r\n";
	long used = resp_parse(two, sizeof(two) - 1, &r);
	CHECK(used == 7 && r.data[0] == '0');
	CHECK(resp_parse(two + used, sizeof(two) - 1 - (size_t)used, &r) == 6 && r.integer == 500);
	/* incomplete: wait for more */
	CHECK(resp_parse("", 0, &r) == 0);
	CHECK(resp_parse("$1\r\n", 4, &r) == 0);
	CHECK(resp_parse("$1\r\n1", 5, &r) == 0);
	CHECK(resp_parse(":12", 3, &r) == 0);
	/* malformed: refused, never read past the buffer */
	CHECK(resp_parse("*1\r\n", 4, &r) == -1);       /* arrays are not ours */
	CHECK(resp_parse("$99999\r\n", 8, &r) == -1);   /* too long */
	CHECK(resp_parse("$-5\r\n", 5, &r) == -1);
	CHECK(resp_parse("$1\r\n12\r\n", 8, &r) == -1); /* length lies */
	CHECK(resp_parse(":1x\r\n", 5, &r) == -1);
	CHECK(resp_parse(":\r\n", 3, &r) == -1);
	CHECK(resp_parse(":1234567890123456789\r\n", 22, &r) == -1);
	CHECK(resp_parse("?\r\n", 3, &r) == -1);
}

int main(void)
{
	test_json_body();
	test_form_body();
	test_bounded_buffer();
	test_responses();
	test_topics();
	test_acl();
	test_cache();
	test_resp();
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
