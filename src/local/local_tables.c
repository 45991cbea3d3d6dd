/* local_tables: requests that wait for asynchronous tables (see local_tables.h). */
#include "local/local_tables.h"

#include <stdlib.h>

#include "maps/map.h"
#include "maps/resolver.h"
#include "util/ipc.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* A DELIVER request held until its tables' answers are in. */
struct table_wait {
    struct ipc_chan *ch;
    struct ipc_msg msg;   /* a copy */
    int rounds;
    struct resolver *resolver;
    struct table_wait *next;
};

static struct {
    struct map_list *command_maps;   /* mailbox_command_maps, asked by user name */
    struct table_wait *waits;
    local_tables_run_fn *run;
    local_tables_alive_fn *alive;
} lt;

static int hold(struct resolver *r, struct ipc_chan *ch, const struct ipc_msg *m, int rounds)
{
    const char *rcpt = ipc_msg_get(m, "rcpt");
    if (!rcpt || !map_async_in_use() || rounds >= LOCAL_TABLE_ROUNDS)
        return 0;
    unsigned long before = map_pending_count();
    enum resolve_class cls;
    if (resolver_classify(r, rcpt, &cls) == 0 && cls == RESOLVE_VIRTUAL_MAILBOX) {
        struct local_mailbox mb;
        char why[256];
        if (resolver_virtual_mailbox(r, rcpt, &mb, why, sizeof why) == 0)
            resolver_mailbox_free(&mb);
    }
    /* a command, file or :include: of an alias: local looks the alias up again */
    const char *alias = ipc_msg_get(m, "alias");
    if (alias && resolver_aliases(r)) {
        char *name = xstrdup(alias), *value = NULL;
        str_lower(name);
        (void)map_list_lookup(resolver_aliases(r), name, &value);
        free(value);
        free(name);
    }
    /* a local user's mailbox_command_maps entry */
    const char *user = ipc_msg_get(m, "user");
    if (lt.command_maps && user && !alias && !ipc_msg_get(m, "forward_of")) {
        char *value = NULL;
        (void)map_list_lookup(lt.command_maps, user, &value);
        free(value);
    }
    if (map_pending_count() == before)
        return 0;
    struct table_wait *w = xcalloc(1, sizeof *w);
    w->ch = ch;
    w->rounds = rounds + 1;
    w->resolver = r;
    ipc_msg_init(&w->msg, m->type, m->reqid);
    strbuf_append(&w->msg.body, m->body.buf, m->body.len);
    w->next = lt.waits;
    lt.waits = w;
    return 1;
}

/* The map layer's answer hook: the held requests run again. */
static void answered(void *arg)
{
    (void)arg;
    struct table_wait *list = lt.waits;
    lt.waits = NULL;
    while (list) {
        struct table_wait *w = list;
        list = w->next;
        if (lt.alive(w->ch) && !hold(w->resolver, w->ch, &w->msg, w->rounds))
            lt.run(w->ch, &w->msg);
        ipc_msg_free(&w->msg);
        free(w);
    }
}

void local_tables_init(struct event_base *base, local_tables_run_fn *run, local_tables_alive_fn *alive)
{
    lt.run = run;
    lt.alive = alive;
    map_set_event_base(base);
    map_set_answer_hook(answered, NULL);
}

void local_tables_watch_command_maps(struct map_list *maps)
{
    lt.command_maps = maps;
}

int local_tables_hold(struct resolver *r, struct ipc_chan *ch, const struct ipc_msg *m)
{
    return hold(r, ch, m, 0);
}

void local_tables_drop(struct ipc_chan *ch)
{
    for (struct table_wait **wp = &lt.waits; *wp;) {
        struct table_wait *w = *wp;
        if (w->ch != ch) {
            wp = &w->next;
            continue;
        }
        *wp = w->next;
        ipc_msg_free(&w->msg);
        free(w);
    }
}
