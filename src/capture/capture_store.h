/* capture_store: the capture process's index of capture/ (capture mode).
 *
 * The queue commits captured messages into queue_directory/capture/ (one
 * queue file each, durable before the client's 250) and tells the capture
 * process; this module keeps an in-memory index of those files, newest
 * last, for the HTTP API: who sent what to whom, the few header fields a
 * list shows, and the inboxes each message belongs to.
 *
 * Cursors: every message gets a cursor, a number that grows with arrival
 * (the arrival time in microseconds, raised by one when two would be
 * equal), so "after CURSOR" means "arrived later" and survives a restart.
 *
 * Inboxes: each envelope recipient address (lower-cased) and, when the
 * client logged in, its SMTP AUTH login. A message of a test run that
 * sends to its own inbox address is seen by that run alone.
 *
 * Pruning: capture_max_messages and capture_max_age remove the oldest files
 * (counted in capture_store_stats); deletions go through the same dirfd.
 * Capture process only; single-threaded. */
#ifndef TERN_CAPTURE_CAPTURE_STORE_H
#define TERN_CAPTURE_CAPTURE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "spool/queue_id.h"

struct capture_entry {
    char id[QUEUE_ID_LEN + 1];
    uint64_t cursor;
    int64_t arrival_us;
    char *sender;                 /* envelope MAIL FROM ("" for <>) */
    char **rcpts;                 /* envelope RCPT TO, as given */
    size_t nrcpt;
    char **inboxes;               /* lower-cased rcpts, then the login */
    size_t ninbox;
    char *login;                  /* SMTP AUTH login or NULL */
    char *client_address, *client_name, *helo, *tls, *protocol; /* NULL when unknown */
    char *subject, *from, *date;  /* header fields, decoded to UTF-8 ("" if absent) */
    uint64_t size;                /* the message's size in bytes */
    int dkim_sign;                /* the queue may sign it (a release keeps that) */
    char *auth_results;           /* the Authentication-Results value smtpd computed, unfolded; NULL: none */
};

struct capture_stats {
    uint64_t captured;            /* indexed since start (including the scan) */
    uint64_t pruned;              /* removed by the limits */
    uint64_t deleted;             /* removed through the API */
    uint64_t unreadable;          /* files in capture/ that could not be read */
};

/* Opens capture/ under queue_dir and indexes every file in it. -1 with a
 * message in *err (malloc'd). */
int capture_store_open(const char *queue_dir, size_t max_messages, int64_t max_age_s, char **err);
void capture_store_close(void);
/* Indexes capture/ID (told by the queue). 0, or -1 when it cannot be read
 * (logged). An ID already indexed is left alone. */
int capture_store_add(const char *id);
/* Looks for files the index misses (the queue dropped notices). */
void capture_store_rescan(void);
/* Applies capture_max_age now (also done on every add). */
void capture_store_prune(void);

size_t capture_store_count(void);
/* The entry at position i, oldest first (0 .. count-1). */
const struct capture_entry *capture_store_at(size_t i);
const struct capture_entry *capture_store_find(const char *id);
/* 1 when e belongs to inbox (compared without case). */
int capture_entry_in_inbox(const struct capture_entry *e, const char *inbox);
/* Reads the message's content (the bytes as received, CRLF line ends).
 * *out is malloc'd. 0, or -1 with errno. */
int capture_store_content(const struct capture_entry *e, char **out, size_t *len);
/* Removes the message (file and entry). 0, or -1 when unknown. */
int capture_store_delete(const char *id);
const struct capture_stats *capture_store_stats(void);

/* What a list, a wait or an event stream selects: messages after a cursor,
 * of an inbox, whose From (header or envelope) or Subject contains a text
 * (without case). NULL or "": any. The strings are the filter's own. */
struct capture_filter {
    char *inbox, *from, *subject;
    uint64_t after;
};
int capture_filter_match(const struct capture_filter *f, const struct capture_entry *e);
void capture_filter_free(struct capture_filter *f);

#endif
