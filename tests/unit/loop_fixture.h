/* loop_fixture: runs a libevent loop in a unit test until a condition holds
 * or time runs out, for the tests of modules that answer on an event loop
 * (the store and its journal mode). A 5 ms wake-up re-checks conditions
 * that no event announces (a file removed by another thread). Include
 * after <cmocka.h> and test_fixture.h. */
#ifndef TERN_LOOP_FIXTURE_H
#define TERN_LOOP_FIXTURE_H

#include <event2/event.h>

#include "test_fixture.h"

static void tf_loop_wakeup_(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static void tf_loop_deadline_(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(int *)arg = 1;
}

/* Runs base until pred(arg) holds or ms pass (pred NULL: for ms); 1 when
 * pred held. */
static TF_UNUSED int tf_loop_until(struct event_base *base, int (*pred)(void *), void *arg, int ms)
{
    int expired = 0;
    struct event *deadline = evtimer_new(base, tf_loop_deadline_, &expired);
    struct event *wake = event_new(base, -1, EV_PERSIST, tf_loop_wakeup_, NULL);
    struct timeval dl = {ms / 1000, (ms % 1000) * 1000}, tk = {0, 5000};
    evtimer_add(deadline, &dl);
    evtimer_add(wake, &tk);
    while (!(pred && pred(arg)) && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    int ok = pred ? pred(arg) : 1;
    event_free(deadline);
    event_free(wake);
    return ok;
}

static TF_UNUSED void tf_loop_for(struct event_base *base, int ms)
{
    tf_loop_until(base, NULL, NULL, ms);
}

#endif
