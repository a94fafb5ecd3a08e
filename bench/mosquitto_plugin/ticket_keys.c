/*
 * aurora_ticket_keys.so: preloaded into the bench's Mosquitto (LD_PRELOAD) so that its
 * TLS session-ticket key outlives a restart, the way brokers and proxies with a ticket-key
 * file do (nginx ssl_session_ticket_key, HAProxy tls-ticket-keys). Mosquitto 2.0 has no
 * such option: OpenSSL makes a random key per SSL_CTX, so every restart turned every
 * device's reconnect into a full handshake.
 *
 * The key is derived from a secret file (AURORA_TLS_TICKET_SECRET, made by the bench, mode
 * 0600) and the content of the CRL the broker loads (AURORA_TLS_TICKET_CRL): a restart
 * with the same CRL keeps every ticket valid; a restart that loads a changed CRL changes
 * the key, so no stored ticket resumes and every device goes through a full handshake,
 * where the CRL is checked (OpenSSL does not check it on resumption).
 *
 * Without AURORA_TLS_TICKET_SECRET it changes nothing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef SSL_CTX *(*ctx_new_fn)(const SSL_METHOD *);

/* OpenSSL's ticket key block: 16 bytes name, 32 bytes HMAC secret, 32 bytes AES key. */
#define KEY_BLOCK 80

static int digest_file(EVP_MD_CTX *md, const char *path, int required)
{
	unsigned char buf[4096];
	size_t n;
	int ok;
	FILE *file = fopen(path, "rb");

	if (file == NULL) {
		if (required) {
			fprintf(stderr, "aurora_ticket_keys: cannot read %s\n", path);
		}
		return !required;
	}
	while ((n = fread(buf, 1, sizeof buf, file)) > 0) {
		EVP_DigestUpdate(md, buf, n);
	}
	ok = !ferror(file);
	fclose(file);
	return ok;
}

static int derive(unsigned char out[KEY_BLOCK], const char *secret, const char *crl)
{
	unsigned char block[EVP_MAX_MD_SIZE];
	unsigned int length = 0;
	unsigned char part;

	for (part = 0; part < 2; part++) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha512(), NULL) == 1 &&
			 EVP_DigestUpdate(md, "aurora-ticket-key", 17) == 1 &&
			 EVP_DigestUpdate(md, &part, 1) == 1 && digest_file(md, secret, 1) &&
			 (crl == NULL || digest_file(md, crl, 0)) &&
			 EVP_DigestFinal_ex(md, block, &length) == 1 && length >= KEY_BLOCK / 2;
		EVP_MD_CTX_free(md);
		if (!ok) {
			return 0;
		}
		memcpy(out + part * (KEY_BLOCK / 2), block, KEY_BLOCK / 2);
	}
	OPENSSL_cleanse(block, sizeof block);
	return 1;
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method)
{
	ctx_new_fn real;
	SSL_CTX *ctx;
	unsigned char keys[KEY_BLOCK];
	const char *secret = getenv("AURORA_TLS_TICKET_SECRET");

	*(void **)(&real) = dlsym(RTLD_NEXT, "SSL_CTX_new");
	if (real == NULL) {
		fprintf(stderr, "aurora_ticket_keys: no SSL_CTX_new to wrap\n");
		return NULL;
	}
	ctx = real(method);
	if (ctx == NULL || secret == NULL) {
		return ctx;
	}
	if (!derive(keys, secret, getenv("AURORA_TLS_TICKET_CRL")) ||
	    SSL_CTX_set_tlsext_ticket_keys(ctx, keys, sizeof keys) != 1) {
		fprintf(stderr, "aurora_ticket_keys: ticket key not set; tickets end with this process\n");
	}
	OPENSSL_cleanse(keys, sizeof keys);
	return ctx;
}
