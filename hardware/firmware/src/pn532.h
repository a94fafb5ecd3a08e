/* PN532 frame codec (NXP UM0701-02 §6.2): normal information frames and ACK, sans I/O.
 *
 *   00 | 00 FF | LEN | LCS | TFI | PD0..PDn | DCS | 00
 *   LEN = bytes of TFI+PD;  LEN + LCS = 0 (mod 256);  TFI + sum(PD) + DCS = 0 (mod 256)
 *   ACK = 00 00 FF 00 FF 00;  TFI = D4 host->PN532, D5 PN532->host
 */
#ifndef AURORA_PN532_H
#define AURORA_PN532_H

#include <stddef.h>
#include <stdint.h>

#define PN532_TFI_HOST 0xD4
#define PN532_TFI_PN532 0xD5
#define PN532_CMD_SAM_CONFIGURATION 0x14
#define PN532_CMD_IN_LIST_PASSIVE_TARGET 0x4A
#define PN532_MAX_PD 64

/* Build a frame around tfi + data; returns its length, or 0 if it does not fit. */
size_t pn532_build(uint8_t tfi, const uint8_t *data, size_t n, uint8_t *out, size_t cap);

typedef enum {
    PN532_NEED_MORE, /* keep feeding */
    PN532_GOT_ACK,
    PN532_GOT_FRAME, /* tfi / pd / pd_len hold it */
    PN532_BAD_FRAME  /* checksum or length wrong: dropped, parser reset */
} pn532_result;

typedef struct {
    uint8_t buf[PN532_MAX_PD + 8];
    size_t used;
    uint8_t tfi;
    uint8_t pd[PN532_MAX_PD];
    size_t pd_len;
} pn532_parser;

void pn532_parser_init(pn532_parser *p);
/* Feed one byte; garbage before a start code is skipped. */
pn532_result pn532_feed(pn532_parser *p, uint8_t byte);

/* From an InListPassiveTarget response (pd starting at 0x4B): the first target's
 * NFCID1 (4, 7 or 10 bytes). Returns its length, 0 if no target, -1 if malformed. */
int pn532_inlist_uid(const uint8_t *pd, size_t n, uint8_t *uid, size_t cap);

#endif
