#include "board.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

/* RM0090: USART1 on APB2, USART2 on APB1. */
static const uint32_t usart_base[2] = {0x40011000u, 0x40004400u};
#define USART_SR(b) REG((b) + 0x00u)
#define USART_DR(b) REG((b) + 0x04u)
#define USART_BRR(b) REG((b) + 0x08u)
#define USART_CR1(b) REG((b) + 0x0Cu)
#define SR_RXNE (1u << 5)
#define SR_TXE (1u << 7)
#define CR1_UE (1u << 13)
#define CR1_TE (1u << 3)
#define CR1_RE (1u << 2)
#define CR1_RXNEIE (1u << 5)
/* NVIC: USART1 is IRQ 37, USART2 IRQ 38 (RM0090 table 61). */
#define NVIC_ISER1 REG(0xE000E104u)
#define RX_RING 1024u /* a power of two */

#define RCC_APB1ENR REG(0x40023840u)
#define RCC_APB2ENR REG(0x40023844u)

#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define CPU_HZ 168000000u
/* A 100 Hz tick, not 1 kHz: QEMU fires a periodic timer late under host load and does not
 * catch up missed periods, so fewer, longer periods keep the firmware's clock near real
 * time (1 kHz ran at a third of it on a loaded 2-core host). 10 ms is fine for a door. */
#define TICK_MS 10u

static volatile uint32_t millis;

/* Received bytes land in a ring from the RX interrupt, so the main loop can sleep (WFI)
 * between ticks and still miss nothing: an idle board then costs QEMU almost no CPU. */
static struct {
    volatile uint8_t data[RX_RING];
    volatile uint32_t head, tail; /* head written by the ISR, tail by the main loop */
} rx[2];

static void rx_interrupt(int port)
{
    uint32_t base = usart_base[port];
    while (USART_SR(base) & SR_RXNE) {
        uint8_t byte = (uint8_t)(USART_DR(base) & 0xFFu);
        uint32_t head = rx[port].head;
        if (head - rx[port].tail < RX_RING) { /* full: the byte is dropped, never overwritten */
            rx[port].data[head % RX_RING] = byte;
            rx[port].head = head + 1u;
        }
    }
}

void USART1_IRQHandler(void);
void USART1_IRQHandler(void)
{
    rx_interrupt(PORT_CONSOLE);
}

void USART2_IRQHandler(void);
void USART2_IRQHandler(void)
{
    rx_interrupt(PORT_READER);
}

void SysTick_Handler(void);
void SysTick_Handler(void)
{
    millis += TICK_MS;
}

void board_init(void)
{
    RCC_APB2ENR |= 1u << 4;  /* USART1EN */
    RCC_APB1ENR |= 1u << 17; /* USART2EN */
    for (int i = 0; i < 2; i++) {
        USART_BRR(usart_base[i]) = CPU_HZ / 2u / 115200u;
        USART_CR1(usart_base[i]) = CR1_UE | CR1_TE | CR1_RE | CR1_RXNEIE;
    }
    NVIC_ISER1 = (1u << (37 - 32)) | (1u << (38 - 32));
    SYST_RVR = CPU_HZ / (1000u / TICK_MS) - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* processor clock, interrupt, enable */
}

uint32_t board_millis(void)
{
    return millis;
}

void board_write(board_port port, const void *data, size_t n)
{
    const uint8_t *p = data;
    uint32_t base = usart_base[port];
    for (size_t i = 0; i < n; i++) {
        for (uint32_t spin = 0; !(USART_SR(base) & SR_TXE) && spin < 1000000u; spin++) {
        }
        USART_DR(base) = p[i];
    }
}

int board_read(board_port port)
{
    uint32_t tail = rx[port].tail;
    if (tail == rx[port].head) return -1;
    int byte = rx[port].data[tail % RX_RING];
    rx[port].tail = tail + 1u;
    return byte;
}

void board_sleep(void)
{
    /* Until the next interrupt: a received byte or the 10 ms tick. */
    __asm__ volatile("wfi");
}

/* ARM semihosting SYS_GET_CMDLINE (0x15): QEMU passes `-semihosting-config arg=...`. */
static int semihost_cmdline(char *buf, size_t cap)
{
    struct {
        char *buf;
        uint32_t len;
    } block = {buf, (uint32_t)cap};
    register uint32_t r0 __asm__("r0") = 0x15u;
    register void *r1 __asm__("r1") = &block;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0 == 0 ? (int)block.len : -1;
}

int board_cmdline_arg(char *out, size_t cap)
{
    char line[160];
    int n = semihost_cmdline(line, sizeof line);
    if (n <= 0) return 0;
    line[n < (int)sizeof line ? n : (int)sizeof line - 1] = '\0';
    const char *p = line;
    while (*p != '\0' && *p != ' ') p++; /* skip argv[0] */
    while (*p == ' ') p++;
    size_t k = 0;
    while (p[k] != '\0' && p[k] != ' ' && k + 1 < cap) {
        out[k] = p[k];
        k++;
    }
    out[k] = '\0';
    return k > 0;
}

extern const uint8_t __image_start[];
extern const uint8_t __image_end[];

const uint8_t *board_image(size_t *size)
{
    *size = (size_t)(__image_end - __image_start);
    return __image_start;
}
