/* capture_mime_scan: what capture mode's message view finds in a message's
 * text: web links and one-time codes. Never fetches anything.
 *
 * For capture_mime and capture_mime_html only. Pure functions over UTF-8 text
 * (capture_mime_text makes it so); no state.
 *
 * Links: only absolute http:// and https:// URLs (scheme in any case, a host
 * after "//"). javascript:, data:, mailto:, tel:, relative and every other
 * kind are never reported: the list is for "open the confirmation link", and
 * a developer's page must never be led to run or load anything else. In
 * plain text a URL runs to the first blank, control, non-ASCII byte or one
 * of < > " ` { } | \ ^; trailing . , ; : ! ? ' * and a ) or ] with no opening
 * partner are taken off (sentence punctuation, "(see https://x/)").
 *
 * One-time codes, a deterministic heuristic (no dictionary, no scoring):
 *  1. Text is read with blank runs as one space (a run with a line end as one
 *     line end) and with every URL (http://, https://, www.) taken out.
 *  2. Keywords, whole words, any case: code(s), passcode(s), otp, pin,
 *     verification, verify, token, 2fa, mfa, and "one-time"/"one time".
 *     "code" is no keyword after zip, postal, post, promo, promotional,
 *     discount, coupon, voucher, gift, country, area, error, status, source,
 *     tracking, qr, bar, referral, sort, swift, bank or tax.
 *  3. Candidates: a run of 4-10 digits; or 2-3 groups of 3 or 4 digits, all
 *     the same length, joined by single spaces or hyphens ("123 456",
 *     "1234-5678"), reported without the separators; or a 6-10 character word
 *     of capital letters and digits with at least one of each ("K7PX2M").
 *     A digit run joined to other digit groups in any other shape is not one
 *     (phone numbers "555-123-4567", dates "2026-12-06", "10 000").
 *  4. A candidate is dropped when it touches a letter, digit, non-ASCII
 *     character, _ @ # $ % + / or \ ; when it is part of a larger number
 *     ("12:30", "1.234", "06/12/2026": a . , - before it preceded by a letter
 *     or digit, a : before it preceded by a digit, a . , : - after it followed
 *     by a letter or digit); when a currency (USD EUR GBP CHF JPY CAD AUD,
 *     dollars, euros, pounds, or a dollar, euro, pound or yen sign) is the
 *     word before or after it; and for a 4-digit 1900-2099 when
 *     one of the two words before it is a month name (a year in a date).
 *  5. A candidate rule 4 kept is a code when
 *     (a) it starts at most 40 bytes after the end of the nearest keyword
 *         before it, and that keyword gave no code yet (each keyword gives
 *         at most one: "code ABC123 for 1000 points" gives ABC123 only); or
 *     (b) it is the first word of its line (a subject is one line) and a
 *         keyword starts at most 30 bytes after its end on that line
 *         ("123456 is your verification code"); or
 *     (c) it is alone on its line, at least 6 characters long, and some
 *         source of the message has a keyword.
 * Without a keyword anywhere in the message there are no codes. */
#ifndef TERN_CAPTURE_CAPTURE_MIME_SCAN_H
#define TERN_CAPTURE_CAPTURE_MIME_SCAN_H

#include <stddef.h>

/* Distinct strings in the order they were first added, at most max of them. */
struct capture_mime_scan_list {
    char **items;
    size_t count, cap, max;
    int dropped; /* 1 once a new string found the list full */
};

void capture_mime_scan_list_init(struct capture_mime_scan_list *list, size_t max);
/* Adds a copy of the len bytes at s unless the list has them already. */
void capture_mime_scan_list_add(struct capture_mime_scan_list *list, const char *s, size_t len);
void capture_mime_scan_list_free(struct capture_mime_scan_list *list);

/* 1 when the len bytes at s are a link the view reports (see above). */
int capture_mime_scan_is_web_link(const char *s, size_t len);

/* Adds the http(s) URLs of plain text, in order. */
void capture_mime_scan_links(struct capture_mime_scan_list *links, const char *text, size_t len);

/* Adds the one-time codes of n sources (subject, text body, the HTML body as
 * text), in order: sources[i] of lens[i] bytes, each scanned on its own. */
void capture_mime_scan_codes(struct capture_mime_scan_list *codes, const char *const *sources, const size_t *lens,
                             size_t n);

#endif
