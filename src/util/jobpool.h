/*
** A job pool: a FIFO of jobs under a mutex, and worker threads started on demand up to a maximum
** that take jobs from it. The resolver (net/dns.c) and the executors (threads/threadpool.c) each
** embed one; DNS keeps its own instance so a lookup never queues behind executor jobs. No Lua.
*/
#ifndef ALOOP_UTIL_JOBPOOL_H
#define ALOOP_UTIL_JOBPOOL_H

#include <pthread.h>

/* A job starts with this header (the owner's job struct embeds it first). */
typedef struct al_Job {
  struct al_Job *next;
} al_Job;

typedef struct al_JobPool al_JobPool;

/*
** run: on a worker thread, without the lock; *state is the worker's own (NULL at first).
** worker_exit (or NULL): the worker ends (the pool is closing), without the lock; the pool may be
** freed by it, so the worker touches the pool no more afterwards.
*/
typedef void (*al_job_run)(al_JobPool *p, al_Job *j, void **state);
typedef void (*al_job_worker_exit)(al_JobPool *p, void *state);

/* Embedded first in the owner's pool struct. mu also guards whatever the owner keeps with it. */
struct al_JobPool {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* a job was queued, or the pool is closing */
  al_Job *head, *tail;
  int max, nthreads, idle, queued, closing, joined;
  int detached;       /* detached workers (the owner counts them) or joinable ones */
  pthread_t *threads; /* joinable: the threads started */
  al_job_run run;
  al_job_worker_exit worker_exit;
};

/* 0, or -1 when out of memory. */
int al_jobpool_init(al_JobPool *p, int max, int detached, al_job_run run,
                    al_job_worker_exit worker_exit);
/*
** With mu held: queues j, starts a worker when none is idle for it (and fewer than max run),
** wakes one. Returns the number of workers started so far (0: none could start; j stays queued).
*/
int al_jobpool_push(al_JobPool *p, al_Job *j);
/* With mu held: no new jobs; the workers end once the queue is empty. */
void al_jobpool_close(al_JobPool *p);
/* With mu held: takes every queued job (a list linked by next) off the queue. */
al_Job *al_jobpool_take_all(al_JobPool *p);
/* Joinable pools, after close: waits for the workers to end (once). */
void al_jobpool_join(al_JobPool *p);
/* Frees what init made (the workers have ended). */
void al_jobpool_destroy(al_JobPool *p);

#endif
