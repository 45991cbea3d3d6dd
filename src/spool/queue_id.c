/* queue_id: unique, sortable queue IDs (see queue_id.h). */
#include "spool/queue_id.h"

#include <string.h>
#include <sys/time.h>

static const char id_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
static unsigned id_tag;
static uint64_t id_last_us;

void queue_id_init(unsigned tag)
{
    id_tag = tag & 31;
}

void queue_id_new(char *buf)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    /* Monotonic even if the clock steps back: uniqueness matters more than
     * the exact time the ID shows. */
    if (us <= id_last_us)
        us = id_last_us + 1;
    id_last_us = us;
    for (int i = 11; i >= 0; i--) {
        buf[i] = id_alphabet[us & 31];
        us >>= 5;
    }
    buf[12] = id_alphabet[id_tag];
    buf[QUEUE_ID_LEN] = '\0';
}

static int id_digit(char c)
{
    const char *p = c ? strchr(id_alphabet, c) : NULL;
    return p ? (int)(p - id_alphabet) : -1;
}

int queue_id_valid(const char *s)
{
    if (!s || strlen(s) != QUEUE_ID_LEN)
        return 0;
    for (size_t i = 0; i < QUEUE_ID_LEN; i++)
        if (id_digit(s[i]) < 0)
            return 0;
    return 1;
}

uint64_t queue_id_time_us(const char *id)
{
    uint64_t us = 0;
    for (int i = 0; i < 12 && id[i]; i++) {
        int d = id_digit(id[i]);
        if (d < 0)
            return 0;
        us = (us << 5) | (uint64_t)d;
    }
    return us;
}
