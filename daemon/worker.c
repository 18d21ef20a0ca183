/* daemon/worker.c -- see worker.h. A mutex-protected FIFO feeds the thread; each job
 * carries a one-shot libevent event that the worker activates when the job is done, which
 * is libevent's supported way to wake a loop from another thread. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>

#include "macro.h"
#include "worker.h"

typedef struct Job {
        struct Job *next;
        void (*run)(void *userdata);
        void (*done)(void *userdata);
        void *userdata;
        struct event *done_event;
} Job;

struct Worker {
        struct event_base *base;
        pthread_t thread;
        bool started;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        Job *head, *tail;
        unsigned backlog;
        bool stopping;
};

static void on_job_done(evutil_socket_t fd, short events, void *userdata) {
        Job *job = userdata;
        event_free(job->done_event);
        if (job->done)
                job->done(job->userdata);
        free(job);
}

static void *worker_main(void *userdata) {
        Worker *w = userdata;
        pthread_mutex_lock(&w->lock);
        for (;;) {
                while (!w->head && !w->stopping)
                        pthread_cond_wait(&w->wake, &w->lock);
                Job *job = w->head;
                if (!job)
                        break;          /* stopping, and nothing left */
                w->head = job->next;
                if (!w->head)
                        w->tail = NULL;
                pthread_mutex_unlock(&w->lock);

                job->run(job->userdata);

                pthread_mutex_lock(&w->lock);
                w->backlog--;
                event_active(job->done_event, EV_TIMEOUT, 0);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

int worker_new(struct event_base *base, Worker **ret) {
        Worker *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->base = base;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        int r = pthread_create(&w->thread, NULL, worker_main, w);
        if (r != 0) {
                worker_free(w);
                return -r;
        }
        w->started = true;
        *ret = w;
        return 0;
}

void worker_stop(Worker *w) {
        if (!w || !w->started)
                return;
        pthread_mutex_lock(&w->lock);
        w->stopping = true;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
        w->started = false;
}

Worker *worker_free(Worker *w) {
        if (!w)
                return NULL;
        worker_stop(w);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->wake);
        free(w);
        return NULL;
}

int worker_submit(Worker *w, void (*run)(void *userdata), void (*done)(void *userdata), void *userdata) {
        Job *job = calloc(1, sizeof *job);
        if (!job)
                return -ENOMEM;
        *job = (Job) { .run = run, .done = done, .userdata = userdata };
        job->done_event = event_new(w->base, -1, 0, on_job_done, job);
        if (!job->done_event) {
                free(job);
                return -ENOMEM;
        }
        pthread_mutex_lock(&w->lock);
        if (w->stopping) {
                pthread_mutex_unlock(&w->lock);
                event_free(job->done_event);
                free(job);
                return -ESHUTDOWN;
        }
        if (w->tail)
                w->tail->next = job;
        else
                w->head = job;
        w->tail = job;
        w->backlog++;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

unsigned worker_backlog(Worker *w) {
        pthread_mutex_lock(&w->lock);
        unsigned n = w->backlog;
        pthread_mutex_unlock(&w->lock);
        return n;
}
