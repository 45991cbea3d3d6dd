/* conf_params: the one typed table of every main.cf parameter tern knows.
 *
 * Each row gives a parameter's name, type, default, range and one-line doc.
 * The configuration reader (conf), the checker, `tern config` and the
 * tern.conf(5) man page are all driven by this table, so adding a parameter
 * means adding one row here and nothing else. Rows are kept sorted by name
 * (conf_param_find does a binary search; a unit test checks the order).
 * Every row is read by some code (tests/unit/test_conf_callsites.c walks
 * the conf_<type>("name") calls of src/ and checks it), so the table only
 * documents what tern does.
 *
 * A default may name another parameter: "$other" alone makes the row follow
 * that one, as Postfix's smtp_destination_concurrency_limit =
 * $default_destination_concurrency_limit does; the getter then returns the
 * other row's value (its default when its setting is invalid). Numeric rows
 * allow no other use of '$' in a default.
 *
 * Postfix parameters tern does not implement are not rows: they are in a
 * separate list (conf_ignored_find) so that main.cf files written for
 * Postfix load with a warning saying they have no effect, and no code can
 * read them.
 *
 * Anyone may read the table. Nothing here allocates or fails: an unknown
 * name is simply NULL from conf_param_find. */
#ifndef TERN_CONF_CONF_PARAMS_H
#define TERN_CONF_CONF_PARAMS_H

#include <stddef.h>

enum conf_type {
    CONF_STR,   /* free text */
    CONF_INT,   /* decimal integer; sizes are CONF_INT bytes */
    CONF_BOOL,  /* yes/no/true/false/1/0 */
    CONF_TIME,  /* seconds; "300s", "5m", "2h", "5d", "1w", a bare number uses `unit` */
    CONF_LIST,  /* separated by commas and/or whitespace; {...} groups stay whole */
};

enum conf_param_flag {
    /* Default computed at run time instead of `def`. */
    CONF_F_HOSTNAME = 1u << 0, /* gethostname(), as-is even without a dot */
    CONF_F_DOMAIN = 1u << 1,   /* $myhostname minus its first label, else "localdomain" */
    /* Not expanded by the configuration: its $names belong to the code that
     * uses it (mailbox_command's $EXTENSION, forward_path's $home), as
     * Postfix's "raw" parameters. */
    CONF_F_RAW = 1u << 2,
};

struct conf_param {
    const char *name;
    enum conf_type type;
    const char *def;     /* raw default, may hold $name references; "" when computed */
    long long min, max;  /* CONF_INT and CONF_TIME (in seconds) */
    char unit;           /* CONF_TIME: unit of a bare number: s m h d w */
    const char *doc;     /* one line, for the man page and `tern config` */
    const char *choices; /* "a|b|c": the only values allowed (per item for
                          * CONF_LIST); NULL = any */
    unsigned flags;      /* enum conf_param_flag */
};

extern const struct conf_param conf_params[];
extern const size_t conf_params_count;

/* NULL when tern has no such parameter. */
const struct conf_param *conf_param_find(const char *name);
/* Same, for a name that is not NUL-terminated (as found inside a value). */
const struct conf_param *conf_param_find_len(const char *name, size_t len);
/* "string", "integer", "boolean", "time", "list". */
const char *conf_type_name(enum conf_type type);

/* The row p's default follows ("$name" alone), or NULL. */
const struct conf_param *conf_param_default_ref(const struct conf_param *p);

/* A Postfix parameter tern accepts in main.cf but does not implement. */
struct conf_ignored {
    const char *name;
    const char *why; /* what tern does instead, one line */
};
extern const struct conf_ignored conf_ignored[];
extern const size_t conf_ignored_count;
/* NULL when name is not on the list (it may still be a row). */
const struct conf_ignored *conf_ignored_find(const char *name);

#endif
