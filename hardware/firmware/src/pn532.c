#include "pn532.h"

size_t pn532_build(uint8_t tfi, const uint8_t *data, size_t n, uint8_t *out, size_t cap)
{
    size_t len = n + 1; /* TFI + PD */
    if (len > 255 || n + 8 > cap) return 0;
    size_t i = 0;
    out[i++] = 0x00;
    out[i++] = 0x00;
    out[i++] = 0xFF;
    out[i++] = (uint8_t)len;
    out[i++] = (uint8_t)(0x100 - len);
    out[i++] = tfi;
    uint8_t sum = tfi;
    for (size_t k = 0; k < n; k++) {
        out[i++] = data[k];
        sum = (uint8_t)(sum + data[k]);
    }
    out[i++] = (uint8_t)(0x100 - sum);
    out[i++] = 0x00;
    return i;
}

void pn532_parser_init(pn532_parser *p)
{
    p->used = 0;
    p->pd_len = 0;
    p->tfi = 0;
}

static pn532_result bad(pn532_parser *p)
{
    p->used = 0;
    return PN532_BAD_FRAME;
}

pn532_result pn532_feed(pn532_parser *p, uint8_t byte)
{
    /* Wait for the start code 00 FF (a preamble 00 before it is optional on the wire). */
    if (p->used == 0) {
        if (byte == 0x00) p->buf[p->used++] = byte;
        return PN532_NEED_MORE;
    }
    if (p->used == 1) {
        if (byte == 0xFF) p->buf[p->used++] = byte;
        else if (byte != 0x00) p->used = 0;
        return PN532_NEED_MORE;
    }
    p->buf[p->used++] = byte;
    if (p->used < 4) return PN532_NEED_MORE;
    uint8_t len = p->buf[2], lcs = p->buf[3];
    if (len == 0x00 && lcs == 0xFF) { /* ACK */
        p->used = 0;
        return PN532_GOT_ACK;
    }
    if ((uint8_t)(len + lcs) != 0 || len < 1 || (size_t)len - 1 > PN532_MAX_PD) return bad(p);
    if (p->used < (size_t)4 + len + 1) return PN532_NEED_MORE; /* LEN bytes then DCS */
    uint8_t sum = 0;
    for (size_t k = 0; k < (size_t)len + 1; k++) sum = (uint8_t)(sum + p->buf[4 + k]);
    if (sum != 0) return bad(p);
    p->tfi = p->buf[4];
    p->pd_len = (size_t)len - 1;
    for (size_t k = 0; k < p->pd_len; k++) p->pd[k] = p->buf[5 + k];
    p->used = 0; /* the postamble 00 is skipped as garbage by the next frame's search */
    return PN532_GOT_FRAME;
}

int pn532_inlist_uid(const uint8_t *pd, size_t n, uint8_t *uid, size_t cap)
{
    /* 4B NbTg [Tg SENS_RES(2) SEL_RES NFCIDLength NFCID1...] */
    if (n < 2 || pd[0] != PN532_CMD_IN_LIST_PASSIVE_TARGET + 1) return -1;
    if (pd[1] == 0) return 0;
    if (n < 7) return -1;
    size_t id_len = pd[6];
    if (id_len != 4 && id_len != 7 && id_len != 10) return -1;
    if (n < 7 + id_len || id_len > cap) return -1;
    for (size_t k = 0; k < id_len; k++) uid[k] = pd[7 + k];
    return (int)id_len;
}
