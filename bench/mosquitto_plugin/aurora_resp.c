/* aurora_resp: RESP2 commands and scalar replies (see aurora_resp.h). */
#include "aurora_resp.h"

#include <stdio.h>
#include <string.h>

bool resp_command(struct abuf *out, const char *const *args, const size_t *lens, size_t n)
{
	char head[32];
	int w = snprintf(head, sizeof(head), "*%zu\r\n", n);
	if(w < 0 || !abuf_append(out, head, (size_t)w)) return false;
	for(size_t i = 0; i < n; i++){
		w = snprintf(head, sizeof(head), "$%zu\r\n", lens[i]);
		if(w < 0 || !abuf_append(out, head, (size_t)w)) return false;
		if(!abuf_append(out, args[i], lens[i]) || !abuf_append(out, "\r\n", 2)) return false;
	}
	return true;
}

/* The line at buf (without CRLF): its length, or -1 when there is no CRLF yet. */
static long line_end(const char *buf, size_t len)
{
	for(size_t i = 0; i + 1 < len; i++){
		if(buf[i] == '\r' && buf[i + 1] == '\n') return (long)i;
	}
	return -1;
}

static bool parse_integer(const char *s, size_t n, long long *out)
{
	bool negative = n > 0 && s[0] == '-';
	size_t i = negative ? 1 : 0;
	if(i == n || n - i > 18) return false;
	long long v = 0;
	for(; i < n; i++){
		if(s[i] < '0' || s[i] > '9') return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = negative ? -v : v;
	return true;
}

long resp_parse(const char *buf, size_t len, struct resp_reply *out)
{
	if(len == 0) return 0;
	long end = line_end(buf + 1, len - 1);
	if(end < 0) return len > RESP_MAX_BULK + 64 ? -1 : 0;
	const char *line = buf + 1;
	size_t n = (size_t)end;
	size_t used = 1 + n + 2;
	switch(buf[0]){
	case '+':
	case '-':
		out->kind = buf[0] == '+' ? RESP_SIMPLE : RESP_ERROR;
		out->data = line;
		out->len = n;
		return (long)used;
	case ':':
		out->kind = RESP_INTEGER;
		return parse_integer(line, n, &out->integer) ? (long)used : -1;
	case '$': {
		long long size;
		if(!parse_integer(line, n, &size) || size < -1 || size > RESP_MAX_BULK) return -1;
		if(size == -1){
			out->kind = RESP_NIL;
			out->data = NULL;
			out->len = 0;
			return (long)used;
		}
		if(len < used + (size_t)size + 2) return 0;
		if(buf[used + (size_t)size] != '\r' || buf[used + (size_t)size + 1] != '\n') return -1;
		out->kind = RESP_BULK;
		out->data = buf + used;
		out->len = (size_t)size;
		return (long)(used + (size_t)size + 2);
	}
	default:
		return -1;
	}
}
