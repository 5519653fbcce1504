/*
** The job pool of jobpool.h: one queue, one condition variable, workers started by
** al_jobpool_push (util/thread.c: signals blocked) that take jobs in order until the pool closes.
*/
#include "util/jobpool.h"

#include <stdlib.h>

#include "util/thread.h"

int al_jobpool_init(al_JobPool *p, int max, int detached, al_job_run run,
                    al_job_worker_exit worker_exit) {
  p->head = p->tail = NULL;
  p->max = max;
  p->nthreads = p->idle = p->queued = p->closing = p->joined = 0;
  p->detached = detached;
  p->run = run;
  p->worker_exit = worker_exit;
  p->threads = NULL;
  if (!detached && !(p->threads = calloc((size_t)max, sizeof *p->threads))) return -1;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  return 0;
}

static void *worker_main(void *arg) {
  al_JobPool *p = arg;
  void *state = NULL;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->head && !p->closing) {
      p->idle++;
      pthread_cond_wait(&p->cv, &p->mu);
      p->idle--;
    }
    al_Job *j = p->head;
    if (!j) break; /* closing, nothing queued */
    p->head = j->next;
    if (!p->head) p->tail = NULL;
    p->queued--;
    pthread_mutex_unlock(&p->mu);
    p->run(p, j, &state);
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  if (p->worker_exit) p->worker_exit(p, state);
  return NULL;
}

int al_jobpool_push(al_JobPool *p, al_Job *j) {
  j->next = NULL;
  if (p->tail) p->tail->next = j;
  else p->head = j;
  p->tail = j;
  p->queued++;
  if (p->idle < p->queued && p->nthreads < p->max) {
    pthread_t th;
    pthread_t *slot = p->detached ? &th : &p->threads[p->nthreads];
    if (al_thread_create(slot, p->detached, 0, worker_main, p) == 0) p->nthreads++;
  }
  pthread_cond_signal(&p->cv);
  return p->nthreads;
}

void al_jobpool_close(al_JobPool *p) {
  p->closing = 1;
  pthread_cond_broadcast(&p->cv);
}

al_Job *al_jobpool_take_all(al_JobPool *p) {
  al_Job *list = p->head;
  p->head = p->tail = NULL;
  p->queued = 0;
  return list;
}

void al_jobpool_join(al_JobPool *p) {
  pthread_mutex_lock(&p->mu);
  int n = p->joined || p->detached ? 0 : p->nthreads;
  p->joined = 1;
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < n; i++) pthread_join(p->threads[i], NULL);
}

void al_jobpool_destroy(al_JobPool *p) {
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p->threads);
  p->threads = NULL;
}
