/* qmgr_dmarc: DMARC aggregate reports (RFC 9990) — the queue process's
 * part: it counts the evaluations smtpd sends, keeps them on disk, and at
 * the end of each period sends one report per policy domain through its
 * own queue.
 *
 * On only with dmarc_report_address set. smtpd sends a DMARC_RECORD for
 * each DMARC evaluation of a domain whose record has a rua= tag; the queue
 * checks its fields again (dmarc_report_row_check), counts identical rows
 * in memory and appends them, as "COUNT<TAB>row" lines, to
 * dmarc/BEGIN-END (mail_owner's, 0600) at every tick (at most a minute) and
 * at stop: a crash loses at most a tick's counts, which RFC 9990 3.5
 * allows (reports are best effort).
 *
 * At a tick after a period's END, its file becomes reports, one policy
 * domain at a time: the domain's DMARC record is looked up again (the
 * report carries the record as published then, RFC 9990 3.3, and goes to
 * the rua it names now); each mailto: URI whose host is in another
 * Organizational Domain must be confirmed by a DMARC1 TXT record at
 * POLICY._report._dmarc.HOST (RFC 9990 4; an override rua there is used
 * when it keeps that host, and a different host cancels both). The report
 * (XML, gzip'd, attached) is queued from dmarc_report_address to the
 * confirmed addresses, marked for DKIM signing (RFC 9990 3.5.2: reports
 * must pass DMARC themselves). Then the file is removed; a crash before
 * that makes the same reports again, with the same Report-ID and file
 * name, which RFC 9990 3.5.4 asks for. DNS failures skip the address (with
 * a log line), they are not retried. */
#ifndef TERN_QMGR_QMGR_DMARC_H
#define TERN_QMGR_QMGR_DMARC_H

struct event_base;
struct conf;
struct dns_ctx;
struct ipc_msg;

#define QMGR_DMARC_MAX_ROWS 100000      /* distinct rows counted in memory before a flush */
#define QMGR_DMARC_REPORT_ROWS 10000    /* records in one report: the most frequent */
#define QMGR_DMARC_FILE_MAX (64u << 20) /* bytes of a period's file read back */
#define QMGR_DMARC_TICK_S 60

/* queue_dir: the queue directory (dmarc/ below it); dns must outlive it. */
void qmgr_dmarc_init(struct event_base *base, struct conf *c, const char *queue_dir, struct dns_ctx *dns);
/* A DMARC_RECORD from smtpd. */
void qmgr_dmarc_record(const struct ipc_msg *m);
/* Writes the counts and stops (a report being made is dropped; its file
 * stays for the next start). */
void qmgr_dmarc_shutdown(void);

#endif
