/* Host tests of the firmware's pure parts: SHA-256 (FIPS 180-4 vectors), the framing
 * encoder and reader, the PN532 frame codec, and the lock state machine. Exit 0 = pass;
 * the last line is the count in the plain "N passed, N failed" form CI reads. */
#include <stdio.h>
#include <string.h>

#include "frame.h"
#include "lock.h"
#include "pn532.h"
#include "sha256.h"

static int passed, failed;
#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) passed++;                                                      \
        else {                                                                   \
            failed++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

static void hash_hex(const char *text, char out[65])
{
    sha256_ctx ctx;
    uint8_t digest[32];
    sha256_init(&ctx);
    /* byte at a time: the block boundaries must not matter */
    for (size_t i = 0; text[i]; i++) sha256_update(&ctx, (const uint8_t *)&text[i], 1);
    sha256_final(&ctx, digest);
    sha256_hex(digest, out);
}

static void test_sha256(void)
{
    char out[65];
    hash_hex("", out);
    CHECK(strcmp(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    hash_hex("abc", out);
    CHECK(strcmp(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    hash_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", out);
    CHECK(strcmp(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
}

static void test_frames(void)
{
    char line[512];
    size_t n = aurora_badge(line, sizeof line, "door-1", "0455AF21");
    CHECK(n == strlen(line));
    CHECK(strcmp(line, "@aurora badge_event {\"device_id\":\"door-1\",\"uid\":\"0455AF21\","
                       "\"event\":\"badge_read\"}\n") == 0);
    CHECK(aurora_badge(line, 20, "door-1", "0455AF21") == 0); /* does not fit: nothing */
    n = aurora_status(line, sizeof line, "door-1", "0.1.0", "ab");
    CHECK(n > 0 && strstr(line, "\"firmware_hash\":\"ab\"") != NULL);

    char kind[32];
    const char *json;
    CHECK(aurora_parse("@aurora command {\"verb\":\"unlock\",\"duration_s\":5}", kind,
                       sizeof kind, &json) == 1);
    CHECK(strcmp(kind, "command") == 0);
    char verb[24];
    uint32_t duration = 0;
    CHECK(aurora_json_string(json, "verb", verb, sizeof verb) && strcmp(verb, "unlock") == 0);
    CHECK(aurora_json_uint(json, "duration_s", &duration) && duration == 5);
    CHECK(!aurora_json_uint("{\"duration_s\":99999999999}", "duration_s", &duration));
    CHECK(!aurora_json_string("{\"verb\":\"un\\\"lock\"}", "verb", verb, sizeof verb));
    CHECK(!aurora_json_string("{\"verb\":\"a-very-long-verb-name-indeed\"}", "verb", verb, 8));
    CHECK(aurora_parse("boot log line", kind, sizeof kind, &json) == 0);
    CHECK(aurora_parse("@aurora  {}", kind, sizeof kind, &json) == 0);
    CHECK(aurora_parse("@aurora command not-json", kind, sizeof kind, &json) == 0);

    CHECK(aurora_valid_id("stm32f405-door_01"));
    CHECK(!aurora_valid_id(""));
    CHECK(!aurora_valid_id("door.1"));
    char long_id[70];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    CHECK(!aurora_valid_id(long_id));
    long_id[64] = '\0';
    CHECK(aurora_valid_id(long_id));

    uint8_t uid[] = {0x04, 0x55, 0xAF, 0x21};
    char hex[9];
    aurora_hex_upper(uid, 4, hex);
    CHECK(strcmp(hex, "0455AF21") == 0);
}

static pn532_result feed_all(pn532_parser *p, const uint8_t *bytes, size_t n)
{
    pn532_result last = PN532_NEED_MORE;
    for (size_t i = 0; i < n; i++) {
        pn532_result r = pn532_feed(p, bytes[i]);
        if (r != PN532_NEED_MORE) last = r;
    }
    return last;
}

static void test_pn532(void)
{
    /* UM0701-02's own example: InListPassiveTarget, one type A target. */
    uint8_t frame[32];
    uint8_t cmd[] = {0x4A, 0x01, 0x00};
    size_t n = pn532_build(PN532_TFI_HOST, cmd, sizeof cmd, frame, sizeof frame);
    uint8_t expected[] = {0x00, 0x00, 0xFF, 0x04, 0xFC, 0xD4, 0x4A, 0x01, 0x00, 0xE1, 0x00};
    CHECK(n == sizeof expected && memcmp(frame, expected, n) == 0);
    CHECK(pn532_build(PN532_TFI_HOST, cmd, sizeof cmd, frame, 8) == 0);

    pn532_parser p;
    pn532_parser_init(&p);
    uint8_t ack[] = {0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00};
    CHECK(feed_all(&p, ack, sizeof ack) == PN532_GOT_ACK);

    uint8_t resp_pd[] = {0x4B, 0x01, 0x01, 0x00, 0x44, 0x00, 0x07,
                         0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
    n = pn532_build(PN532_TFI_PN532, resp_pd, sizeof resp_pd, frame, sizeof frame);
    uint8_t noisy[64] = {0x55, 0x13, 0xFF};
    memcpy(noisy + 3, frame, n);
    CHECK(feed_all(&p, noisy, n + 3) == PN532_GOT_FRAME);
    CHECK(p.tfi == PN532_TFI_PN532 && p.pd_len == sizeof resp_pd);
    uint8_t uid[10];
    CHECK(pn532_inlist_uid(p.pd, p.pd_len, uid, sizeof uid) == 7 && uid[6] == 0x66);

    uint8_t none[] = {0x4B, 0x00};
    CHECK(pn532_inlist_uid(none, 2, uid, sizeof uid) == 0);
    uint8_t bad_len[] = {0x4B, 0x01, 0x01, 0x00, 0x44, 0x00, 0x05, 1, 2, 3, 4, 5};
    CHECK(pn532_inlist_uid(bad_len, sizeof bad_len, uid, sizeof uid) == -1);
    uint8_t truncated[] = {0x4B, 0x01, 0x01, 0x00, 0x44, 0x00, 0x07, 1, 2};
    CHECK(pn532_inlist_uid(truncated, sizeof truncated, uid, sizeof uid) == -1);

    frame[n - 2] ^= 0x01; /* break the data checksum */
    CHECK(feed_all(&p, frame, n) == PN532_BAD_FRAME);
    uint8_t bad_lcs[] = {0x00, 0x00, 0xFF, 0x04, 0x00};
    CHECK(feed_all(&p, bad_lcs, sizeof bad_lcs) == PN532_BAD_FRAME);
    uint8_t huge[] = {0x00, 0x00, 0xFF, 0xFF, 0x01};
    CHECK(feed_all(&p, huge, sizeof huge) == PN532_BAD_FRAME);
}

static void test_lock(void)
{
    lock_machine m;
    lock_init(&m);
    CHECK(m.state == LOCK_LOCKED);
    CHECK(lock_apply(&m, VERB_UNLOCK, 5, 1000) && m.state == LOCK_UNLOCKED);
    CHECK(!lock_tick(&m, 5999));
    CHECK(lock_tick(&m, 6000) && m.state == LOCK_LOCKED);
    CHECK(lock_apply(&m, VERB_LOCKDOWN, 0, 7000) && m.state == LOCK_LOCKDOWN);
    CHECK(!lock_apply(&m, VERB_UNLOCK, 5, 7100) && m.state == LOCK_LOCKDOWN);
    CHECK(!lock_apply(&m, VERB_LOCK, 0, 7200) && m.state == LOCK_LOCKDOWN);
    CHECK(lock_apply(&m, VERB_LOCKDOWN_CLEAR, 0, 7300) && m.state == LOCK_LOCKED);
    CHECK(lock_apply(&m, VERB_UNLOCK, 0, 0xFFFFF000u)); /* default 5 s, across the wrap */
    CHECK(!lock_tick(&m, 0x00000100u));
    CHECK(lock_tick(&m, 0x00000F00u));
    CHECK(lock_verb_parse("lockdown_clear") == VERB_LOCKDOWN_CLEAR);
    CHECK(lock_verb_parse("open_sesame") == VERB_UNKNOWN);
    CHECK(strcmp(lock_state_name(LOCK_LOCKDOWN), "lockdown") == 0);
}

int main(void)
{
    test_sha256();
    test_frames();
    test_pn532();
    test_lock();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
