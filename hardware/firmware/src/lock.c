#include "lock.h"

#include <string.h>

lock_verb lock_verb_parse(const char *verb)
{
    if (strcmp(verb, "unlock") == 0) return VERB_UNLOCK;
    if (strcmp(verb, "lock") == 0) return VERB_LOCK;
    if (strcmp(verb, "lockdown") == 0) return VERB_LOCKDOWN;
    if (strcmp(verb, "lockdown_clear") == 0) return VERB_LOCKDOWN_CLEAR;
    if (strcmp(verb, "keepalive") == 0) return VERB_KEEPALIVE;
    return VERB_UNKNOWN;
}

const char *lock_state_name(lock_state state)
{
    switch (state) {
    case LOCK_UNLOCKED: return "unlocked";
    case LOCK_LOCKDOWN: return "lockdown";
    case LOCK_LOCKED: break;
    }
    return "locked";
}

void lock_init(lock_machine *m)
{
    m->state = LOCK_LOCKED;
    m->relock_at_ms = 0;
}

int lock_apply(lock_machine *m, lock_verb verb, uint32_t duration_s, uint32_t now_ms)
{
    lock_state before = m->state;
    switch (verb) {
    case VERB_UNLOCK:
        if (m->state == LOCK_LOCKDOWN) return 0; /* lockdown wins until cleared */
        if (duration_s == 0) duration_s = 5;
        if (duration_s > 3600) duration_s = 3600;
        m->state = LOCK_UNLOCKED;
        m->relock_at_ms = now_ms + duration_s * 1000u;
        return 1; /* an unlock while unlocked extends it: still worth a log line */
    case VERB_LOCK:
        if (m->state == LOCK_LOCKDOWN) return 0;
        m->state = LOCK_LOCKED;
        break;
    case VERB_LOCKDOWN:
        m->state = LOCK_LOCKDOWN;
        break;
    case VERB_LOCKDOWN_CLEAR:
        if (m->state == LOCK_LOCKDOWN) m->state = LOCK_LOCKED;
        break;
    case VERB_KEEPALIVE:
    case VERB_UNKNOWN:
        break;
    }
    return m->state != before;
}

int lock_tick(lock_machine *m, uint32_t now_ms)
{
    /* signed difference: correct across the 49-day wrap of the millisecond counter */
    if (m->state == LOCK_UNLOCKED && (int32_t)(now_ms - m->relock_at_ms) >= 0) {
        m->state = LOCK_LOCKED;
        return 1;
    }
    return 0;
}
