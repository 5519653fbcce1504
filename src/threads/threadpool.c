/*
** Pools of workers (aio.executor.ThreadPool / ProcessPool, the default executor): a job pool
** (util/jobpool.c: a queue under a mutex, worker threads started lazily up to the pool's size),
** each worker with its own Lua state (made at its first job, with the main state's
** package.path/cpath and aloop loaded).
** A job is a marshalled function + arguments; its concurrent future gets the marshalled results.
** A process pool's worker thread instead forks one child process (no exec: the child keeps only
** its end of a socketpair and stdin/out/err, closing every other inherited fd, and builds a fresh
** Lua state) and relays each job to it as a length-prefixed frame.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "threads/threads.h"
#include "util/jobpool.h"
#include "util/thread.h"

#define AL_POOL_MT "aloop.Pool"

typedef struct Job {
  al_Job job; /* first: the pool's queue links it */
  al_CFut *cf;
  al_Buf in;
} Job;

typedef struct Pool {
  al_JobPool pool; /* first; closing = shut down; its mu also guards the fields below */
  int busy;        /* queued + running */
  int procs;
  char *path, *cpath;
  al_CFut **idlers; /* finished when busy drops to 0 */
  int nidlers;
} Pool;

typedef struct Child {
  pid_t pid;
  int fd; /* our end of the socketpair */
} Child;

/* ---------------------------------------------------------------------------------------- */
/* Worker processes */

static int write_all(int fd, const void *p, size_t n) {
  const char *q = p;
  while (n > 0) {
    ssize_t k = send(fd, q, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    q += k, n -= (size_t)k;
  }
  return 0;
}

static int read_all(int fd, void *p, size_t n) {
  char *q = p;
  while (n > 0) {
    ssize_t k = read(fd, q, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    q += k, n -= (size_t)k;
  }
  return 0;
}

/* A frame: [int ok][size_t len][len bytes]. */
static int frame_write(int fd, int ok, const al_Buf *b) {
  size_t n = b->len;
  if (write_all(fd, &ok, sizeof ok) || write_all(fd, &n, sizeof n)) return -1;
  return n ? write_all(fd, b->p, n) : 0;
}

static int frame_read(int fd, int *ok, al_Buf *b) {
  size_t n;
  if (read_all(fd, ok, sizeof *ok) || read_all(fd, &n, sizeof n)) return -1;
  b->p = n ? malloc(n) : NULL;
  b->len = b->cap = n;
  if (n && (!b->p || read_all(fd, b->p, n))) {
    al_buf_free(b);
    return -1;
  }
  return 0;
}

/* os.exit in a worker process: ends it at once (no atexit handlers of the parent's program). */
static int child_exit(lua_State *L) {
  int st = lua_isboolean(L, 1) ? !lua_toboolean(L, 1) : (int)luaL_optinteger(L, 1, 0);
  fflush(NULL);
  _exit(st);
}

/* The child: runs jobs from fd 3 until the parent closes its end. Never returns. */
static void child_main(Pool *p) {
  sigset_t none;
  sigemptyset(&none);
  signal(SIGINT, SIG_IGN); /* the parent decides; the child ends when its socket closes */
  pthread_sigmask(SIG_SETMASK, &none, NULL);
  lua_State *L = al_newstate(p->path, p->cpath);
  if (L) {
    lua_getglobal(L, "os");
    lua_pushcfunction(L, child_exit);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);
  }
  for (;;) {
    int ok;
    al_Buf in = {0}, out = {0};
    if (frame_read(3, &ok, &in)) break;
    if (L) ok = al_run_job(L, in.p, in.len, &out);
    else ok = 0, al_error_bytes(&out, "aloop.executor: cannot create a Lua state in the worker process");
    al_buf_free(&in);
    fflush(stdout);
    if (frame_write(3, ok, &out)) break;
    al_buf_free(&out);
  }
  _exit(0);
}

static int child_start(Pool *p, Child *c) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) return -1;
  /* Hold stdout/stderr across the fork: another thread printing at that moment would leave the
     child a stream locked forever. Flushed first, or the child would write the parent's
     buffered output again. */
  flockfile(stdout);
  flockfile(stderr);
  fflush(NULL);
  pid_t pid = fork();
  funlockfile(stderr);
  funlockfile(stdout);
  if (pid < 0) {
    close(sv[0]), close(sv[1]);
    return -1;
  }
  if (pid == 0) {
    int fd = fcntl(sv[1], F_DUPFD, 10);
    if (fd < 0 || dup2(fd, 3) < 0) _exit(127);
    close_range(4, ~0U, 0); /* the loop's fds and everything else inherited */
    child_main(p);
  }
  close(sv[1]);
  c->pid = pid;
  c->fd = sv[0];
  return 0;
}

static void child_stop(Child *c) {
  if (c->pid <= 0) return;
  close(c->fd);
  int st;
  while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR) {}
  c->pid = 0;
  c->fd = -1;
}

static int child_run(Pool *p, Child *c, const al_Buf *in, al_Buf *out) {
  char msg[160];
  if (c->pid <= 0 && child_start(p, c)) {
    snprintf(msg, sizeof msg, "aloop.executor: cannot start a worker process: %s", strerror(errno));
    al_error_bytes(out, msg);
    return 0;
  }
  int ok;
  if (frame_write(c->fd, 1, in) == 0 && frame_read(c->fd, &ok, out) == 0) return ok;
  pid_t pid = c->pid;
  close(c->fd);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  c->pid = 0;
  if (WIFSIGNALED(st))
    snprintf(msg, sizeof msg, "aloop.executor: the worker process %d died (signal %d)", (int)pid,
             WTERMSIG(st));
  else
    snprintf(msg, sizeof msg, "aloop.executor: the worker process %d exited (status %d)", (int)pid,
             WEXITSTATUS(st));
  al_error_bytes(out, msg);
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Worker threads */

/* Called with mu held when busy reached 0: takes the idlers to finish after unlocking. */
static al_CFut **take_idlers(Pool *p, int *n) {
  al_CFut **list = p->idlers;
  *n = p->nidlers;
  p->idlers = NULL;
  p->nidlers = 0;
  return list;
}

static void finish_idlers(al_CFut **list, int n) {
  for (int i = 0; i < n; i++) {
    al_Buf none = {0};
    al_cf_finish(list[i], 1, &none);
    al_cf_unref(list[i]);
  }
  free(list);
}

/* What a worker thread keeps between jobs: its Lua state, or its worker process. */
typedef struct Worker {
  lua_State *L;
  Child child;
} Worker;

/* On a worker thread: runs one job (unless it was cancelled first) and finishes its future. */
static void run_job(al_JobPool *pool, al_Job *job, void **state) {
  Pool *p = (Pool *)pool;
  Job *j = (Job *)job;
  Worker *w = *state;
  if (!w && (w = calloc(1, sizeof *w))) {
    w->child.fd = -1;
    *state = w;
  }
  if (al_cf_start(j->cf)) {
    al_Buf out = {0};
    int ok;
    if (!w) {
      ok = 0, al_error_bytes(&out, "aloop.executor: out of memory in the worker");
    } else if (p->procs) {
      ok = child_run(p, &w->child, &j->in, &out);
    } else {
      if (!w->L) w->L = al_newstate(p->path, p->cpath);
      if (w->L) ok = al_run_job(w->L, j->in.p, j->in.len, &out);
      else ok = 0, al_error_bytes(&out, "aloop.executor: cannot create a Lua state in the worker");
    }
    al_cf_finish(j->cf, ok, &out);
  }
  al_cf_unref(j->cf);
  al_buf_free(&j->in);
  free(j);
  pthread_mutex_lock(&pool->mu);
  if (--p->busy == 0 && p->nidlers) {
    int n;
    al_CFut **list = take_idlers(p, &n);
    pthread_mutex_unlock(&pool->mu);
    finish_idlers(list, n);
  } else {
    pthread_mutex_unlock(&pool->mu);
  }
}

static void worker_exit(al_JobPool *pool, void *state) {
  (void)pool;
  Worker *w = state;
  if (!w) return;
  if (w->L) lua_close(w->L);
  child_stop(&w->child);
  free(w);
}

/* ---------------------------------------------------------------------------------------- */
/* Lua: core._pool_new(n, procs) and the pool's methods */

typedef struct PoolBox {
  Pool *p;
  uint32_t magic; /* POOL_MAGIC */
} PoolBox;

#define POOL_MAGIC 0x706f6f6cu /* "pool" (al_toudata) */

static Pool *checkpool(lua_State *L) {
  PoolBox *box = AL_CHECKUDATA(L, 1, PoolBox, POOL_MAGIC, AL_POOL_MT);
  if (!box->p) luaL_error(L, "aloop.executor: the pool is closed");
  return box->p;
}

static int l_pool_new(lua_State *L) {
  int n = (int)luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1 && n <= 4096, 1, "the number of workers must be between 1 and 4096");
  PoolBox *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->p = NULL;
  box->magic = POOL_MAGIC;
  luaL_setmetatable(L, AL_POOL_MT);
  Pool *p = calloc(1, sizeof *p);
  if (!p || al_jobpool_init(&p->pool, n, AL_THREAD_JOINABLE, run_job, worker_exit)) {
    free(p);
    return luaL_error(L, "aloop.executor: out of memory");
  }
  p->procs = lua_toboolean(L, 2);
  al_copy_paths(L, &p->path, &p->cpath);
  box->p = p;
  return 1;
}

/* pool:submit(fn, ...) -> ConcurrentFuture */
static int pool_submit(lua_State *L) {
  Pool *p = checkpool(L);
  al_Buf *b = al_marshal(L, 2, lua_gettop(L) - 1, 1, p->procs ? "aloop.executor.ProcessPool:submit"
                                                              : "aloop.executor.ThreadPool:submit");
  Job *j = malloc(sizeof *j);
  al_CFut *cf = j ? al_cf_new() : NULL;
  if (!cf) {
    free(j);
    return luaL_error(L, "aloop.executor: out of memory");
  }
  j->cf = cf;
  j->in = *b;
  memset(b, 0, sizeof *b);
  al_cf_push(L, cf); /* before the job is queued: a worker may finish it at once */
  pthread_mutex_lock(&p->pool.mu);
  if (p->pool.closing) {
    pthread_mutex_unlock(&p->pool.mu);
    al_buf_free(&j->in);
    free(j);
    al_cf_unref(cf);
    return al_error_raise(L, "InvalidStateError",
                          "aloop.executor: cannot submit new work after the pool was shut down");
  }
  p->busy++;
  int none = al_jobpool_push(&p->pool, &j->job) == 0;
  pthread_mutex_unlock(&p->pool.mu);
  if (none) { /* no thread could start: fail the job rather than leave it queued forever */
    al_cf_cancel(cf);
    return luaL_error(L, "aloop.executor: cannot start a worker thread");
  }
  return 1;
}

/* pool:_shutdown(cancel_futures): no new work; queued work is cancelled if asked. */
static int pool_shutdown(lua_State *L) {
  Pool *p = checkpool(L);
  int cancel = lua_toboolean(L, 2);
  pthread_mutex_lock(&p->pool.mu);
  al_jobpool_close(&p->pool);
  al_Job *j = cancel ? p->pool.head : NULL;
  for (; j; j = j->next) al_cf_cancel(((Job *)j)->cf); /* the workers skip them */
  pthread_mutex_unlock(&p->pool.mu);
  return 0;
}

/* pool:_join(): waits for the worker threads to end (after a shutdown). */
static int pool_join(lua_State *L) {
  al_jobpool_join(&checkpool(L)->pool);
  return 0;
}

/* pool:_idle() -> a ConcurrentFuture finished once no work is queued or running. */
static int pool_idle(lua_State *L) {
  Pool *p = checkpool(L);
  al_CFut *cf = al_cf_new();
  al_CFut **list = NULL;
  if (!cf) return luaL_error(L, "aloop.executor: out of memory");
  pthread_mutex_lock(&p->pool.mu);
  if (p->busy > 0) list = realloc(p->idlers, sizeof *list * (size_t)(p->nidlers + 1));
  if (list) {
    p->idlers = list;
    p->idlers[p->nidlers++] = cf;
    al_cf_ref(cf);
  }
  int now = p->busy == 0 || !list;
  pthread_mutex_unlock(&p->pool.mu);
  if (now) {
    al_Buf none = {0};
    al_cf_finish(cf, 1, &none);
  }
  al_cf_push(L, cf);
  al_cf_unref(cf);
  return 1;
}

/* pool:_info() -> max workers, threads started, work queued or running, shut down */
static int pool_info(lua_State *L) {
  Pool *p = checkpool(L);
  pthread_mutex_lock(&p->pool.mu);
  lua_pushinteger(L, p->pool.max);
  lua_pushinteger(L, p->pool.nthreads);
  lua_pushinteger(L, p->busy);
  lua_pushboolean(L, p->pool.closing);
  pthread_mutex_unlock(&p->pool.mu);
  return 4;
}

/* Collected (or at lua_close): shut down, wait for the work in progress, free. */
static int pool_gc(lua_State *L) {
  PoolBox *box = lua_touserdata(L, 1);
  Pool *p = box->p;
  if (!p) return 0;
  box->p = NULL;
  pthread_mutex_lock(&p->pool.mu);
  al_jobpool_close(&p->pool);
  pthread_mutex_unlock(&p->pool.mu);
  al_jobpool_join(&p->pool);
  for (al_Job *q = al_jobpool_take_all(&p->pool), *next; q; q = next) { /* no thread started */
    Job *j = (Job *)q;
    next = q->next;
    al_cf_cancel(j->cf);
    al_cf_unref(j->cf);
    al_buf_free(&j->in);
    free(j);
  }
  int n = 0;
  finish_idlers(take_idlers(p, &n), n);
  al_jobpool_destroy(&p->pool);
  free(p->path);
  free(p->cpath);
  free(p);
  return 0;
}

static const luaL_Reg pool_methods[] = {
    {"submit", pool_submit}, {"_shutdown", pool_shutdown}, {"_join", pool_join},
    {"_idle", pool_idle},    {"_info", pool_info},         {NULL, NULL},
};

/* core._ncpu(): processors online. */
static int l_ncpu(lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n > 0 ? n : 1);
  return 1;
}

/* core._monotonic(): the loops' clock, without a loop. */
static int l_monotonic(lua_State *L) {
  lua_pushnumber(L, al_now());
  return 1;
}

static const luaL_Reg pool_meta[] = {
    {"__gc", pool_gc},
    {NULL, NULL},
};

void al_threadpool_open(lua_State *L, int core) {
  al_new_class(L, AL_POOL_MT, pool_methods, pool_meta);
  lua_pop(L, 2);
  lua_pushcfunction(L, l_pool_new);
  lua_setfield(L, core, "_pool_new");
  lua_pushcfunction(L, l_monotonic);
  lua_setfield(L, core, "_monotonic");
  lua_pushcfunction(L, l_ncpu);
  lua_setfield(L, core, "_ncpu");
}
