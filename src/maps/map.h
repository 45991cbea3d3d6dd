/* map: lookup tables named with Postfix's "type:name" syntax.
 *
 * Owns every table that configuration names (alias_maps, access tables,
 * virtual maps ...): parsing the spec, reading the source file into an
 * in-memory hash table (or, for regexp: and pcre:, compiled rules:
 * map_regexp.c; for cidr:, network blocks: map_cidr.c), reloading it when
 * it changes, and answering lookups.
 * Any process may call it; a map is not thread-safe (one owner per map).
 *
 * Table types:
 *   hash:/path texthash:/path btree:/path lmdb:/path
 *       All four read the TEXT source file named (tern never builds or reads
 *       .db files): "hash:/etc/aliases" reads /etc/aliases itself. Format as
 *       for postmap(1): "key whitespace value"; with MAP_ALIAS_FORMAT, the
 *       aliases(5) format "name: value" (name may be "quoted"). Blank lines and
 *       lines whose first non-blank is '#' are ignored; a line starting with
 *       whitespace continues the previous one (the newline is dropped, the
 *       whitespace kept). Keys are folded to lowercase and lookups fold the
 *       key too; a later duplicate replaces an earlier one, with a warning.
 *       Logical lines over MAP_MAX_LINE bytes are skipped with a warning.
 *       The path must be absolute.
 *       Unlike Postfix there is no postmap/newaliases step: the file is
 *       re-stat'ed at most once per check interval (default 1 s) and reread
 *       when its inode, size, mtime or ctime changed, so edits take effect
 *       without a restart. Write the file atomically (rename a new copy over
 *       it) so a lookup never sees a half-written table.
 *       A missing or unreadable file does not fail map_open: lookups return
 *       -1 (temporary error, so mail is deferred, not bounced), the problem
 *       is logged once, and the map recovers by itself when the file is back.
 *   inline:{ key1=value1, { key2 = value with spaces } }
 *       Entries separated by commas or whitespace; an entry in braces may
 *       hold whitespace and commas, and blanks around its '=' are dropped.
 *   static:text  static:{text with spaces}
 *       Every key finds the text (braces stripped and the inside trimmed).
 *   unix:passwd.byname
 *       getpwnam(): the value is the passwd line as Postfix returns it,
 *       "name:x:uid:gid:gecos:home:shell" (the password field is always "x"
 *       so no hash ever leaves this module).
 *   unix:group.byname
 *       getgrnam(): "name:x:gid:member1,member2".
 *   regexp:/path  pcre:/path
 *       Pattern tables as Postfix's regexp_table(5) (POSIX extended regular
 *       expressions, regcomp) and pcre_table(5) (PCRE2), code in
 *       map_regexp.c. Same file rules as above (comments, continuation
 *       lines, absolute path, reread on change, missing file = -1). Rules:
 *         /pattern/flags result    applies when pattern matches the key
 *         !/pattern/flags result   applies when it does not
 *         if /pattern/flags  (or if !/pattern/flags) ... endif
 *                                  the rules between apply only when the
 *                                  if's pattern does; blocks nest; if and
 *                                  endif in any case
 *       The delimiter is any character but a letter, digit, blank or '\'
 *       ('/' by convention; '#' would start a comment); a backslash keeps
 *       the next character (the delimiter too) in the pattern. The first
 *       rule that applies wins. The key is matched whole and as given: it
 *       is not folded, and callers that try parts of a key (access tables'
 *       parent domains) ask only the whole key (map_is_pattern). Flags
 *       toggle: regexp: i (case-insensitive, on by default), x (extended
 *       syntax, on), m (newline-sensitive, off); pcre: i (caseless, on),
 *       m (multiline), s (dotall), x (extended), A (anchored), E (dollar
 *       end only), U (ungreedy), X (accepted, no effect: PCRE2 always
 *       refuses unknown escapes). An unknown flag makes the line bad.
 *       In the result $1..$99, ${n} and $(n) are the text of group n
 *       (empty if the group took no part in the match), $$ is a '$'; a '$'
 *       before anything else is kept. A reference to a group the pattern
 *       lacks, $0, $name, or any $n in a !/pattern/ rule makes the line bad.
 *       Bad lines are logged with file and line and skipped; a bad if
 *       skips its whole block (so rules meant for some keys never apply to
 *       all); an endif without an if is skipped, an if without endif runs
 *       to the end of the file (both logged). A missing result is logged
 *       and the rule returns "". Lookups fail with -1 (logged) when PCRE2's
 *       match or depth limit is hit (MAP_PCRE_MATCH_LIMIT, a pathological
 *       pattern) or the result would exceed MAP_MAX_LINE bytes.
 *   proxy:TYPE:NAME
 *       TYPE:NAME itself (Postfix's proxymap shares tables between its
 *       processes; tern's read their own).
 *   pgsql:/path
 *       PostgreSQL, configured as Postfix's pgsql_table(5): map_pgsql.h
 *       (an asynchronous engine on libevent) and map_pgsql_cf.h (the file's
 *       settings), behind map_lookup through map_async.h: in a process
 *       that set its event loop (map_set_event_base: smtpd, the queue, local) a
 *       lookup whose answer is not in yet returns MAP_PENDING and the
 *       caller runs again after the answer hook; elsewhere (the command
 *       line) a lookup waits for its answer.
 *   cidr:/path
 *       Network blocks as Postfix's cidr_table(5), code in map_cidr.c (the
 *       matching is util/cidr's). Same file rules as the tables above. Rules:
 *         network/prefix result    applies when the key is inside the block
 *         address result           a bare address is a /32 or /128
 *         !pattern result          applies when the key is not inside it
 *         if pattern (or if !pattern) ... endif
 *                                  the rules between apply only when the
 *                                  if's pattern does; blocks nest; if and
 *                                  endif in any case
 *       IPv4 or IPv6; an address may be in brackets ("[2001:db8::]/32"). A
 *       block whose address has bits set past the prefix ("10.1.0.0/8"),
 *       a bad address or prefix, or a rule without a result is logged and
 *       skipped, a bad if skips its whole block (as in pattern tables). The
 *       first rule that applies wins. The key must be a bare address: any
 *       other key (a host name, "[1.2.3.4]") finds nothing; keys and rules
 *       are compared as binary, so "2001:DB8:0::1" is "2001:db8::1"; an
 *       IPv4-mapped key (::ffff:1.2.3.4) matches IPv4 blocks; an address of
 *       the other family is never inside a block (so "!10.0.0.0/8" applies
 *       to every IPv6 key). A cidr: table is a pattern table
 *       (map_is_pattern): callers ask it only the whole key.
 *   tcp, socketmap, ldap, mysql, sqlite, ...
 *       map_open fails with "table type tcp is not supported yet".
 *
 * Errors: map_open/map_list_open return NULL and a malloc'd message in *err
 * (when err is not NULL) for a malformed or unsupported spec. Lookups return
 * 1 found (*value malloc'd, caller frees), 0 not found, -1 temporary error.
 * Problems inside a source file (bad lines, duplicates) are logged as
 * warnings with file name and line number and never fail the map. */
#ifndef TERN_MAPS_MAP_H
#define TERN_MAPS_MAP_H

#include <stddef.h>
#include <sys/types.h>

/* Longest logical line (key, value and continuations) a source file may hold. */
#define MAP_MAX_LINE 65536

struct map;

enum map_flags {
    MAP_ALIAS_FORMAT = 1, /* source file is in aliases(5) format "name: v1, v2" */
    /* source file is a list of names separated by commas or whitespace
     * (Postfix's "/file/name" in a domain list): each name is a key, its
     * value "", folded to lowercase without a trailing dot */
    MAP_NAME_LIST_FORMAT = 2
};

struct map *map_open(const char *spec, unsigned flags, char **err);
/* What a lookup of an asynchronous table (pgsql:) answers while its answer
 * is on the way: ask again after the answer hook has run (map_async.h). A
 * caller that cannot wait treats it as any negative answer: a temporary
 * failure. */
#define MAP_PENDING (-2)
struct event_base;
/* The event loop asynchronous tables answer on; without one (the command
 * line) their lookups wait for the answer. Set before map_open. */
void map_set_event_base(struct event_base *base);
/* Runs, from the event loop, whenever an asynchronous table's answer
 * arrives: the process's waiting callers ask again. */
void map_set_answer_hook(void (*hook)(void *arg), void *arg);
/* How many lookups so far answered MAP_PENDING: a caller compares it
 * before and after an evaluation to know whether any answer in it was
 * missing (whatever the layers between made of it), and then runs the
 * evaluation again after the answer hook instead of acting on it. */
unsigned long map_pending_count(void);
/* 1 while the process has an asynchronous table open on its event loop. */
int map_async_in_use(void);
/* 1 found (*value malloc'd), 0 not found, -1 temporary error (e.g. file unreadable). */
int map_lookup(struct map *m, const char *key, char **value);
void map_close(struct map *m);
/* Calls fn for every entry of a file or inline: table (keys folded to
 * lower case), in no particular order, until fn returns non-zero (which is
 * returned). 0 for other table types, -1 when the file cannot be read. */
int map_foreach(struct map *m, int (*fn)(void *arg, const char *key, const char *value), void *arg);

/* Calls fn with the source file of every file table this process holds open
 * (any thread's), e.g. to let a sandbox keep them readable for reloads. */
void map_foreach_open_file(void (*fn)(void *arg, const char *path), void *arg);

/* 1 for pattern tables (regexp:, pcre:, cidr:), whose rules see the whole key:
 * callers that also try parts of a key (access(5)'s parent domains and
 * "user@") ask them only the whole key, as Postfix does. */
int map_is_pattern(const struct map *m);

/* The owner of the source file whose contents the map holds now (the
 * local delivery agent runs an alias's commands with its rights): 1 with
 * *uid and *gid for file and pattern tables, 0 for tables without a file
 * (inline:, static:, unix:), -1 when the file cannot be read. */
int map_source_owner(struct map *m, uid_t *uid, gid_t *gid);

/* The spec as given to map_open (surrounding blanks removed). */
const char *map_spec(const struct map *m);

/* How often (seconds) a file table re-stats its source; 0 = on every lookup.
 * Process-wide; the default is 1. Tests use 0 to see edits at once. */
void map_set_check_interval(unsigned seconds);

/* "hash:/etc/aliases, texthash:/x" -- specs separated by commas or whitespace
 * (outside braces), searched in order. An empty string is an empty list. */
struct map_list;
struct map_list *map_list_open(const char *specs, unsigned flags, char **err);
/* First map that finds the key wins. A map that fails before any hit makes
 * the result -1: a later map's answer might not be the one meant. */
int map_list_lookup(struct map_list *l, const char *key, char **value);
/* The same for a partial key (a parent domain, "@domain", "user" without
 * its domain or extension): pattern tables (regexp:, pcre:, cidr:) are skipped,
 * since Postfix asks them only the whole key. */
int map_list_lookup_partial(struct map_list *l, const char *key, char **value);
void map_list_close(struct map_list *l);
size_t map_list_count(const struct map_list *l);
/* The i-th map of the list (i < map_list_count). */
struct map *map_list_get(struct map_list *l, size_t i);

#endif
