/* The STM32F405 as QEMU's netduinoplus2 machine models it: two USARTs, SysTick, and
 * semihosting for the command line. Only this file and board.c touch hardware. */
#ifndef AURORA_BOARD_H
#define AURORA_BOARD_H

#include <stddef.h>
#include <stdint.h>

typedef enum { PORT_CONSOLE = 0, PORT_READER = 1 } board_port; /* USART1, USART2 */

void board_init(void);
uint32_t board_millis(void);
/* Blocking write of n bytes. */
void board_write(board_port port, const void *data, size_t n);
/* One received byte, or -1 if none is waiting. */
int board_read(board_port port);
/* Sleep until the next interrupt (a received byte or the tick). */
void board_sleep(void);
/* The semihosting command line's second word (the device id), or 0 if none. */
int board_cmdline_arg(char *out, size_t cap);
/* The bytes of this firmware's own image in flash (what measured boot hashes). */
const uint8_t *board_image(size_t *size);

#endif
