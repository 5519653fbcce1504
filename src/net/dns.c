/*
** Name resolution that never blocks the loop: loop:getaddrinfo/getnameinfo for names that need
** a lookup run getaddrinfo(3)/getnameinfo(3) on a job pool of their own (util/jobpool.c: at
** most DNS_THREADS per loop, started on demand, so a lookup never queues behind
** run_in_executor work). A finished lookup goes back to the loop thread as a thread-safe call
** (the loop's ev_async), which completes the future. The pool is one of the loop's own resources
** (core/resource.c): loop:close() drops its queued lookups. Literal addresses and "localhost"
** never come here (socket.c resolves them at once).
*/
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "util/jobpool.h"
#include "util/thread.h"

#define DNS_THREADS 4

static const char key_dns = 0; /* loop attribute: the loop's DnsBox */

typedef struct DnsPool DnsPool;

/* The loop's handle on its pool: a resource of the loop (core/resource.c) while the pool runs. */
typedef struct DnsBox {
  al_Resource hdr;
  DnsPool *pool;
  al_Loop *loop;
} DnsBox;

typedef struct DnsJob {
  al_Job job; /* first: the pool's queue links it */
  int reverse; /* getnameinfo */
  char *host;
  char port[16];
  struct addrinfo hints, *res;
  struct sockaddr_storage ss;
  socklen_t sslen;
  char hbuf[NI_MAXHOST], sbuf[NI_MAXSERV];
  int err;
  int ref; /* registry ref of the future; touched on the loop thread only */
} DnsJob;

struct DnsPool {
  al_JobPool pool; /* first; its mu also guards refs and loop */
  int refs;        /* the loop's reference + one per thread */
  al_Loop *loop;   /* NULL once the loop is closed */
};

static void job_free(void *ud) {
  DnsJob *j = ud;
  if (j->res) freeaddrinfo(j->res);
  free(j->host);
  free(j);
}

static void pool_release(DnsPool *p) { /* called with the pool's mu held; unlocks */
  int last = --p->refs == 0;
  pthread_mutex_unlock(&p->pool.mu);
  if (!last) return;
  al_jobpool_destroy(&p->pool);
  free(p);
}

/* On the loop thread: completes the job's future (unless it was cancelled meanwhile). */
static void job_done(lua_State *L, void *ud) {
  DnsJob *j = ud;
  lua_rawgeti(L, LUA_REGISTRYINDEX, j->ref);
  luaL_unref(L, LUA_REGISTRYINDEX, j->ref);
  int fidx = lua_gettop(L);
  al_Future *f = lua_touserdata(L, fidx);
  if (f->state == AL_PENDING) {
    if (j->err) {
      al_gai_error(L, j->err, j->reverse ? "getnameinfo" : j->host);
      al_future_set_exception(L, f, fidx, -1, 0);
    } else if (j->reverse) {
      lua_pushstring(L, j->hbuf);
      lua_pushstring(L, j->sbuf);
      al_future_set_result(L, f, fidx, -2, 2);
    } else {
      al_gai_push(L, j->res);
      al_future_set_result(L, f, fidx, -1, 1);
    }
  }
  lua_settop(L, fidx - 1);
  job_free(j);
}

/* On a worker thread: one lookup; its result goes to the loop thread (if the loop still runs). */
static void run_job(al_JobPool *pool, al_Job *job, void **state) {
  (void)state;
  DnsPool *p = (DnsPool *)pool;
  DnsJob *j = (DnsJob *)job;
  if (j->reverse)
    j->err = getnameinfo((struct sockaddr *)&j->ss, j->sslen, j->hbuf, sizeof j->hbuf, j->sbuf,
                         sizeof j->sbuf, NI_NUMERICSERV);
  else
    j->err = al_gai_call(j->host, j->port, &j->hints, &j->res);
  pthread_mutex_lock(&pool->mu);
  if (!p->loop || al_call_threadsafe(p->loop, job_done, job_free, j) != 0) job_free(j);
  pthread_mutex_unlock(&pool->mu);
}

static void worker_exit(al_JobPool *pool, void *state) {
  (void)state;
  pthread_mutex_lock(&pool->mu);
  pool_release((DnsPool *)pool);
}

/* loop:close(): no more results for this loop; queued lookups are dropped (core/resource.c). */
static void dns_shutdown(lua_State *L, void *obj) {
  DnsBox *box = obj;
  DnsPool *p = box->pool;
  box->pool = NULL;
  al_resource_remove_internal(L, box->loop, box);
  pthread_mutex_lock(&p->pool.mu);
  p->loop = NULL;
  al_jobpool_close(&p->pool);
  al_Job *j = al_jobpool_take_all(&p->pool);
  pool_release(p);
  while (j) {
    al_Job *next = j->next;
    job_free(j);
    j = next;
  }
}

/* The loop's pool, created on first use. */
static DnsPool *get_pool(lua_State *L, al_Loop *loop, int loopidx) {
  lua_getiuservalue(L, loopidx, 1);
  DnsBox *box = lua_rawgetp(L, -1, &key_dns) == LUA_TUSERDATA ? lua_touserdata(L, -1) : NULL;
  lua_pop(L, 1);
  if (!box) {
    box = lua_newuserdatauv(L, sizeof *box, 0);
    box->hdr.shutdown = dns_shutdown;
    box->pool = NULL;
    box->loop = loop;
    lua_rawsetp(L, -2, &key_dns);
  }
  lua_pop(L, 1);
  if (!box->pool) {
    DnsPool *p = calloc(1, sizeof *p);
    if (!p || al_jobpool_init(&p->pool, DNS_THREADS, AL_THREAD_DETACHED, run_job, worker_exit)) {
      free(p);
      luaL_error(L, "not enough memory");
    }
    p->refs = 1;
    p->loop = loop;
    box->pool = p;
    lua_getiuservalue(L, loopidx, 1);
    lua_rawgetp(L, -1, &key_dns);
    al_resource_add_internal(L, loop, -1);
    lua_pop(L, 2);
  }
  return box->pool;
}

/* Queues the job (a thread starts when none is idle) and pushes its new future. */
static int submit(lua_State *L, al_Loop *loop, DnsJob *j) {
  DnsPool *p = get_pool(L, loop, 1);
  al_future_new(L, loop, 1);
  lua_pushvalue(L, -1);
  j->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  pthread_mutex_lock(&p->pool.mu);
  int started = p->pool.nthreads;
  int nthreads = al_jobpool_push(&p->pool, &j->job);
  p->refs += nthreads - started;
  if (nthreads == 0) { /* no thread could start: fail the lookup, never block the loop */
    al_jobpool_take_all(&p->pool); /* j, the only job queued */
    pthread_mutex_unlock(&p->pool.mu);
    luaL_unref(L, LUA_REGISTRYINDEX, j->ref);
    job_free(j);
    return luaL_error(L, "aloop: cannot start a DNS thread");
  }
  pthread_mutex_unlock(&p->pool.mu);
  return 1;
}

static DnsJob *new_job(lua_State *L) {
  DnsJob *j = calloc(1, sizeof *j);
  if (!j) luaL_error(L, "not enough memory");
  return j;
}

/* core._dns_getaddrinfo(loop, host, port, family, type, passive) -> future of the list. */
static int l_dns_getaddrinfo(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  if (loop->closed) return luaL_error(L, "aloop: Event loop is closed");
  struct addrinfo hints;
  const char *host;
  char port[16];
  al_gai_prepare(L, 2, &hints, &host, port);
  DnsJob *j = new_job(L);
  j->hints = hints;
  memcpy(j->port, port, sizeof j->port);
  if (host && !(j->host = strdup(host))) {
    job_free(j);
    return luaL_error(L, "not enough memory");
  }
  return submit(L, loop, j);
}

/* core._dns_getnameinfo(loop, addr) -> future of host, service. */
static int l_dns_getnameinfo(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  if (loop->closed) return luaL_error(L, "aloop: Event loop is closed");
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_rawgeti(L, 2, 1);
  const char *host = luaL_checkstring(L, -1);
  int family = strchr(host, ':') ? AF_INET6 : AF_INET;
  lua_pop(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = al_check_sockaddr(L, 2, family, &ss);
  DnsJob *j = new_job(L);
  j->reverse = 1;
  j->ss = ss;
  j->sslen = len;
  return submit(L, loop, j);
}

void al_dns_open(lua_State *L, int core) {
  lua_pushcfunction(L, l_dns_getaddrinfo);
  lua_setfield(L, core, "_dns_getaddrinfo");
  lua_pushcfunction(L, l_dns_getnameinfo);
  lua_setfield(L, core, "_dns_getnameinfo");
}
