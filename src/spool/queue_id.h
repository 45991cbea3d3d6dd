/* queue_id: queue IDs, unique, sortable by arrival, safe as file names.
 *
 * An ID is 13 characters of Crockford base32 (0-9, A-Z without I L O U):
 * 12 for the microseconds since the epoch (monotonic within a process: never
 * the same value twice) and 1 for the generator's tag, so processes that make
 * IDs at the same time (each smtpd, the pickup service) never collide. */
#ifndef TERN_SPOOL_QUEUE_ID_H
#define TERN_SPOOL_QUEUE_ID_H

#include <stddef.h>
#include <stdint.h>

#define QUEUE_ID_LEN 13

/* tag: 0..31, unique among the processes that make IDs at once. */
void queue_id_init(unsigned tag);
/* Writes a new ID into buf (at least QUEUE_ID_LEN + 1 bytes). */
void queue_id_new(char *buf);
/* True if s is a well-formed ID (what may appear as a queue file name). */
int queue_id_valid(const char *s);
/* The arrival time encoded in an ID, in microseconds since the epoch. */
uint64_t queue_id_time_us(const char *id);

#endif
