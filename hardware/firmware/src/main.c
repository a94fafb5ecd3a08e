/* Reference door firmware for the emulated tier (issue 18): measured boot, status
 * heartbeats, a PN532 reader on USART2, and the lock state machine driven by `command`
 * frames, all over the bench's serial framing on USART1. */
#include <stdio.h>
#include <string.h>

#include "board.h"
#include "frame.h"
#include "lock.h"
#include "pn532.h"
#include "sha256.h"

#ifndef FIRMWARE_VERSION
#define FIRMWARE_VERSION "0.1.0"
#endif
#define DEFAULT_ID "stm32f405-door-01"
#ifndef HEARTBEAT_MS
#define HEARTBEAT_MS 10000u
#endif
#define POLL_MS 200u
#define READER_TIMEOUT_MS 150u
#define SAME_BADGE_MS 2000u

static char device_id[65] = DEFAULT_ID;
static char firmware_hash[65];
static char out[512];
static lock_machine door;

static void say(const char *line)
{
    board_write(PORT_CONSOLE, line, strlen(line));
}

static void logf_line(const char *text)
{
    /* A log line never starts with "@aurora ": the bench shows it and never parses it. */
    say(text);
    say("\n");
}

static void send_status(void)
{
    size_t n = aurora_status(out, sizeof out, device_id, FIRMWARE_VERSION, firmware_hash);
    if (n) board_write(PORT_CONSOLE, out, n);
}

static void log_lock(const char *why)
{
    char line[96];
    if (door.state == LOCK_UNLOCKED) {
        uint32_t left_s = (door.relock_at_ms - board_millis() + 999u) / 1000u;
        snprintf(line, sizeof line, "lock: unlocked for %lu s (%s)", (unsigned long)left_s, why);
    } else {
        snprintf(line, sizeof line, "lock: %s (%s)", lock_state_name(door.state), why);
    }
    logf_line(line);
}

static void on_command(const char *json)
{
    char verb_text[24];
    uint32_t duration_s = 0;
    if (!aurora_json_string(json, "verb", verb_text, sizeof verb_text)) {
        logf_line("command: no verb, ignored");
        return;
    }
    (void)aurora_json_uint(json, "duration_s", &duration_s);
    lock_verb verb = lock_verb_parse(verb_text);
    if (verb == VERB_UNKNOWN) {
        logf_line("command: unknown verb, ignored");
        return;
    }
    if (verb == VERB_KEEPALIVE) {
        send_status();
        return;
    }
    if (lock_apply(&door, verb, duration_s, board_millis())) log_lock(verb_text);
    else if (verb == VERB_UNLOCK && door.state == LOCK_LOCKDOWN)
        logf_line("lock: lockdown (unlock ignored)");
}

static void on_line(const char *line)
{
    char kind[32];
    const char *json;
    if (!aurora_parse(line, kind, sizeof kind, &json)) return; /* host noise: ignored */
    if (strcmp(kind, "command") == 0) on_command(json);
    else if (strcmp(kind, "attestation_request") == 0)
        logf_line("attestation: not supported by this build (no P-256 signer); request ignored");
}

/* ---- the PN532 reader ---------------------------------------------------------------- */
typedef enum { READER_IDLE, READER_WAIT_ACK, READER_WAIT_RESPONSE } reader_phase;

static struct {
    pn532_parser parser;
    reader_phase phase;
    uint8_t pending_cmd;
    uint32_t deadline_ms;
    uint32_t next_poll_ms;
    char last_uid[21];
    uint32_t last_uid_at_ms;
} reader;

static void reader_send(uint8_t cmd, const uint8_t *params, size_t n)
{
    uint8_t data[8], frame[24];
    data[0] = cmd;
    for (size_t i = 0; i < n && i + 1 < sizeof data; i++) data[i + 1] = params[i];
    size_t len = pn532_build(PN532_TFI_HOST, data, n + 1, frame, sizeof frame);
    board_write(PORT_READER, frame, len);
    reader.pending_cmd = cmd;
    reader.phase = READER_WAIT_ACK;
    reader.deadline_ms = board_millis() + READER_TIMEOUT_MS;
}

static void on_reader_frame(void)
{
    if (reader.parser.tfi != PN532_TFI_PN532 || reader.pending_cmd != PN532_CMD_IN_LIST_PASSIVE_TARGET)
        return;
    uint8_t uid[10];
    int n = pn532_inlist_uid(reader.parser.pd, reader.parser.pd_len, uid, sizeof uid);
    if (n < 0) {
        logf_line("reader: malformed InListPassiveTarget response");
        return;
    }
    if (n == 0) return;
    char hex[21];
    aurora_hex_upper(uid, (size_t)n, hex);
    uint32_t now = board_millis();
    if (strcmp(hex, reader.last_uid) == 0 && now - reader.last_uid_at_ms < SAME_BADGE_MS) return;
    strcpy(reader.last_uid, hex);
    reader.last_uid_at_ms = now;
    size_t len = aurora_badge(out, sizeof out, device_id, hex);
    if (len) board_write(PORT_CONSOLE, out, len);
}

static void reader_step(void)
{
    int byte;
    while ((byte = board_read(PORT_READER)) >= 0) {
        pn532_result r = pn532_feed(&reader.parser, (uint8_t)byte);
        if (r == PN532_GOT_ACK && reader.phase == READER_WAIT_ACK) {
            reader.phase = READER_WAIT_RESPONSE;
            reader.deadline_ms = board_millis() + READER_TIMEOUT_MS;
        } else if (r == PN532_GOT_FRAME && reader.phase == READER_WAIT_RESPONSE) {
            on_reader_frame();
            reader.phase = READER_IDLE;
        } else if (r == PN532_BAD_FRAME) {
            logf_line("reader: frame with a bad checksum dropped");
        }
    }
    uint32_t now = board_millis();
    if (reader.phase != READER_IDLE && (int32_t)(now - reader.deadline_ms) >= 0) {
        reader.phase = READER_IDLE; /* no reader attached, or it did not answer */
    }
    if (reader.phase == READER_IDLE && (int32_t)(now - reader.next_poll_ms) >= 0) {
        static const uint8_t one_type_a[] = {0x01, 0x00}; /* MaxTg 1, 106 kbps type A */
        reader.next_poll_ms = now + POLL_MS;
        reader_send(PN532_CMD_IN_LIST_PASSIVE_TARGET, one_type_a, sizeof one_type_a);
    }
}

int main(void)
{
    board_init();
    char id[65];
    if (board_cmdline_arg(id, sizeof id) && aurora_valid_id(id)) strcpy(device_id, id);
    logf_line("aurora door firmware " FIRMWARE_VERSION " (stm32f405, c_baremetal) booting");

    size_t size;
    const uint8_t *image = board_image(&size);
    sha256_ctx ctx;
    uint8_t digest[32];
    sha256_init(&ctx);
    sha256_update(&ctx, image, size);
    sha256_final(&ctx, digest);
    sha256_hex(digest, firmware_hash);
    snprintf(out, sizeof out, "measured boot: sha256 %s over %lu bytes", firmware_hash,
             (unsigned long)size);
    logf_line(out);

    lock_init(&door);
    pn532_parser_init(&reader.parser);
    static const uint8_t normal_mode[] = {0x01, 0x14, 0x01}; /* SAM normal, 1 s, use IRQ */
    reader_send(PN532_CMD_SAM_CONFIGURATION, normal_mode, sizeof normal_mode);
    send_status();
    log_lock("boot");

    static char line[AURORA_MAX_LINE];
    size_t used = 0;
    int overlong = 0;
    uint32_t next_heartbeat = board_millis() + HEARTBEAT_MS;
    for (;;) {
        int byte;
        while ((byte = board_read(PORT_CONSOLE)) >= 0) {
            if (byte == '\n') {
                if (used > 0 && line[used - 1] == '\r') used--;
                line[used] = '\0';
                if (!overlong) on_line(line);
                used = 0;
                overlong = 0;
            } else if (used + 1 < sizeof line) {
                line[used++] = (char)byte;
            } else {
                overlong = 1; /* skipped up to the next newline, as the host does */
            }
        }
        reader_step();
        uint32_t now = board_millis();
        if (lock_tick(&door, now)) log_lock("duration over");
        if ((int32_t)(now - next_heartbeat) >= 0) {
            next_heartbeat = now + HEARTBEAT_MS;
            send_status();
        }
        board_sleep();
    }
}
