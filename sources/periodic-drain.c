/* sources/periodic-drain.c -- see periodic-drain.h. */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>

#include "periodic-drain.h"
#include "service.h"

/* [worker] */
static void drain_job(void *userdata) {
        PeriodicDrain *d = userdata;
        for (size_t i = 0; i < d->n; i++)
                d->drain(d->service, d->items[i]);
}

/* [loop] */
static void drained(void *userdata) {
        PeriodicDrain *d = userdata;
        for (size_t i = 0; i < d->n; i++)
                target_unref(d->items[i]);
        d->n = 0;
        d->busy = false;
}

static void on_timer(evutil_socket_t fd, short events, void *userdata) {
        PeriodicDrain *d = userdata;
        Service *s = d->service;
        if (d->busy)
                return;
        size_t n = 0;
        for (size_t i = 0; i < s->targets->n; i++)
                n += d->wants(s, s->targets->items[i]);
        if (n == 0)
                return;
        if (n > d->cap) {
                Target **items = realloc(d->items, n * sizeof *items);
                if (!items)
                        return;
                d->items = items;
                d->cap = n;
        }
        for (size_t i = 0; i < s->targets->n; i++)
                if (d->wants(s, s->targets->items[i]))
                        d->items[d->n++] = target_ref(s->targets->items[i]);
        if (worker_submit(s->worker, drain_job, drained, d) == 0)
                d->busy = true;
        else
                drained(d);
}

int periodic_drain_start(PeriodicDrain *d) {
        d->timer = event_new(d->service->base, -1, EV_PERSIST, on_timer, d);
        struct timeval tv = { d->every_ms / 1000, (d->every_ms % 1000) * 1000 };
        if (!d->timer || event_add(d->timer, &tv) < 0)
                return -ENOMEM;
        return 0;
}

void periodic_drain_stop(PeriodicDrain *d) {
        if (d->timer) {
                event_free(d->timer);
                d->timer = NULL;
        }
        free(d->items);
        d->items = NULL;
        d->n = d->cap = 0;
}
