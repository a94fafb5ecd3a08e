/* aurora_redis: see aurora_redis.h. */
#define _DEFAULT_SOURCE
#include "aurora_redis.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "aurora_resp.h"

#define OUT_MAX 4096

size_t redis_key_of(const char *key, size_t keylen, char *out)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if(!EVP_Digest(key, keylen, digest, &n, EVP_sha256(), NULL) || n != 32) return 0;
	size_t len = strlen(REDIS_KEY_PREFIX);
	memcpy(out, REDIS_KEY_PREFIX, len);
	for(unsigned i = 0; i < n; i++){
		snprintf(out + len, 3, "%02x", digest[i]);
		len += 2;
	}
	return len;
}

void redis_init(struct redis *r, const char *host, long port, long db, long timeout_ms,
		long retry_ms)
{
	memset(r, 0, sizeof(*r));
	r->host = strdup(host);
	r->port = port;
	r->db = db;
	r->timeout_ms = timeout_ms;
	r->retry_ms = retry_ms;
	r->fd = -1;
	abuf_init(&r->out, OUT_MAX);
}

static void drop(struct redis *r, double now, const char *what, const char *detail)
{
	snprintf(r->error, sizeof(r->error), "%s: %s", what, detail);
	if(r->fd >= 0) close(r->fd);
	r->fd = -1;
	r->inlen = 0;
	r->down_until = now + (double)r->retry_ms / 1000.0;
}

void redis_close(struct redis *r)
{
	if(r->fd >= 0) close(r->fd);
	r->fd = -1;
	free(r->host);
	r->host = NULL;
	abuf_free(&r->out);
}

/* Wait until fd is ready for `events`, at most timeout_ms. */
static bool wait_for(int fd, short events, long timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int n;
	do{
		n = poll(&p, 1, (int)timeout_ms);
	}while(n < 0 && errno == EINTR);
	return n == 1 && (p.revents & events);
}

static bool connect_now(struct redis *r, double now)
{
	char port[16];
	snprintf(port, sizeof(port), "%ld", r->port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *found = NULL;
	int rc = getaddrinfo(r->host, port, &hints, &found);
	if(rc != 0){
		drop(r, now, "cannot resolve the cache host", gai_strerror(rc));
		return false;
	}
	int fd = socket(found->ai_family, found->ai_socktype | SOCK_NONBLOCK, found->ai_protocol);
	if(fd < 0){
		freeaddrinfo(found);
		drop(r, now, "socket", strerror(errno));
		return false;
	}
	rc = connect(fd, found->ai_addr, found->ai_addrlen);
	freeaddrinfo(found);
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if(rc != 0 && (errno != EINPROGRESS || !wait_for(fd, POLLOUT, r->timeout_ms)
			|| getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0)){
		close(fd);
		drop(r, now, "cannot connect", soerr ? strerror(soerr) : "timed out or refused");
		return false;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	r->fd = fd;
	r->inlen = 0;
	return true;
}

/* Send out, then read until `count` replies are complete; false after a failure. */
static bool exchange(struct redis *r, struct resp_reply *replies, size_t count, double now)
{
	if(r->fd < 0 && !connect_now(r, now)) return false;
	size_t sent = 0;
	while(sent < r->out.len){
		ssize_t n = send(r->fd, r->out.data + sent, r->out.len - sent, MSG_NOSIGNAL);
		if(n > 0){
			sent += (size_t)n;
		}else if(n < 0 && (errno == EAGAIN || errno == EINTR)){
			if(!wait_for(r->fd, POLLOUT, r->timeout_ms)){
				drop(r, now, "sending", "timed out");
				return false;
			}
		}else{
			drop(r, now, "sending", strerror(errno));
			return false;
		}
	}
	r->inlen = 0;
	size_t parsed = 0, got = 0;
	while(got < count){
		long used = resp_parse(r->in + parsed, r->inlen - parsed, &replies[got]);
		if(used < 0){
			drop(r, now, "reading", "a malformed reply");
			return false;
		}
		if(used > 0){
			parsed += (size_t)used;
			got++;
			continue;
		}
		if(r->inlen == sizeof(r->in)){
			drop(r, now, "reading", "a reply larger than the buffer");
			return false;
		}
		if(!wait_for(r->fd, POLLIN, r->timeout_ms)){
			drop(r, now, "reading", "timed out");
			return false;
		}
		ssize_t n = recv(r->fd, r->in + r->inlen, sizeof(r->in) - r->inlen, 0);
		if(n <= 0){
			if(n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
			drop(r, now, "reading", n == 0 ? "connection closed" : strerror(errno));
			return false;
		}
		r->inlen += (size_t)n;
	}
	if(parsed != r->inlen){
		drop(r, now, "reading", "more replies than commands");
		return false;
	}
	return true;
}

static bool usable(struct redis *r, double now)
{
	r->error[0] = '\0';
	return r->fd >= 0 || now >= r->down_until;
}

/* Prefix the commands with SELECT when a database other than 0 is configured, on a new
 * connection only. Returns the number of replies that SELECT adds. */
static size_t select_db(struct redis *r)
{
	if(r->db == 0 || r->fd >= 0) return 0;
	char db[24];
	int w = snprintf(db, sizeof(db), "%ld", r->db);
	const char *args[] = {"SELECT", db};
	const size_t lens[] = {6, (size_t)w};
	return resp_command(&r->out, args, lens, 2) ? 1 : 0;
}

int redis_get(struct redis *r, const char *key, size_t keylen, double now, double *ttl_s)
{
	if(!usable(r, now)) return -1;
	abuf_reset(&r->out);
	size_t extra = select_db(r);
	const char *get[] = {"GET", key};
	const size_t get_lens[] = {3, keylen};
	const char *pttl[] = {"PTTL", key};
	const size_t pttl_lens[] = {4, keylen};
	/* One round trip: the value and the time it has left. */
	if(!resp_command(&r->out, get, get_lens, 2) || !resp_command(&r->out, pttl, pttl_lens, 2)){
		snprintf(r->error, sizeof(r->error), "a key too long for the command buffer");
		return -1;
	}
	struct resp_reply replies[3];
	if(!exchange(r, replies, 2 + extra, now)) return -1;
	struct resp_reply *value = &replies[extra], *left = &replies[extra + 1];
	if(extra && replies[0].kind == RESP_ERROR){
		drop(r, now, "SELECT", "refused");
		return -1;
	}
	if(value->kind == RESP_NIL) return -1;
	if(value->kind != RESP_BULK || value->len != 1 || (value->data[0] != '0'
			&& value->data[0] != '1') || left->kind != RESP_INTEGER){
		/* Not our value (or an error reply): treat as a miss, the service decides. */
		return -1;
	}
	if(left->integer <= 0) return -1;  /* expired in between, or no expiry: not ours */
	*ttl_s = (double)left->integer / 1000.0;
	return value->data[0] == '1';
}

bool redis_put(struct redis *r, const char *key, size_t keylen, bool allow, long ttl_ms,
		double now)
{
	if(ttl_ms <= 0 || !usable(r, now)) return false;
	abuf_reset(&r->out);
	size_t extra = select_db(r);
	char ms[24];
	int w = snprintf(ms, sizeof(ms), "%ld", ttl_ms);
	const char *args[] = {"SET", key, allow ? "1" : "0", "PX", ms};
	const size_t lens[] = {3, keylen, 1, 2, (size_t)w};
	if(!resp_command(&r->out, args, lens, 5)){
		snprintf(r->error, sizeof(r->error), "a key too long for the command buffer");
		return false;
	}
	struct resp_reply replies[2];
	if(!exchange(r, replies, 1 + extra, now)) return false;
	if(extra && replies[0].kind == RESP_ERROR){
		drop(r, now, "SELECT", "refused");
		return false;
	}
	if(replies[extra].kind != RESP_SIMPLE){
		snprintf(r->error, sizeof(r->error), "SET was refused: %.*s",
				(int)(replies[extra].len < 200 ? replies[extra].len : 200),
				replies[extra].data ? replies[extra].data : "");
		return false;
	}
	return true;
}
