/* The door's lock state machine (DESIGN.md "Command"): pure, time passed in. */
#ifndef AURORA_LOCK_H
#define AURORA_LOCK_H

#include <stdint.h>

typedef enum { LOCK_LOCKED, LOCK_UNLOCKED, LOCK_LOCKDOWN } lock_state;

typedef struct {
    lock_state state;
    uint32_t relock_at_ms; /* when UNLOCKED: the moment it locks again */
} lock_machine;

typedef enum {
    VERB_UNKNOWN, VERB_UNLOCK, VERB_LOCK, VERB_LOCKDOWN, VERB_LOCKDOWN_CLEAR, VERB_KEEPALIVE
} lock_verb;

lock_verb lock_verb_parse(const char *verb);
const char *lock_state_name(lock_state state);
void lock_init(lock_machine *m);
/* Apply a verb at now_ms; returns 1 if the state changed (duration_s for unlock only).
 * A door in lockdown ignores unlock until lockdown_clear. */
int lock_apply(lock_machine *m, lock_verb verb, uint32_t duration_s, uint32_t now_ms);
/* Relock when an unlock's duration has passed; returns 1 if the state changed. */
int lock_tick(lock_machine *m, uint32_t now_ms);

#endif
