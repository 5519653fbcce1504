/*
** The messages of the control socket between the `aloop --workers N` supervisor
** (src/supervisor.c) and each worker (src/workers/worker.c): a SOCK_SEQPACKET socketpair, one
** message per record, both ends in the same binary. The worker finds its end in ALOOP_WORKER_FD.
*/
#ifndef ALOOP_WORKERS_CONTROL_H
#define ALOOP_WORKERS_CONTROL_H

#include <sys/socket.h>

#define AL_WORKER_ENV_FD "ALOOP_WORKER_FD"       /* the worker's end of the control socket */
#define AL_WORKER_ENV_ID "ALOOP_WORKER_ID"       /* 1..N */
#define AL_WORKER_ENV_COUNT "ALOOP_WORKER_COUNT" /* N when the worker started */
#define AL_WORKER_ENV_GRACE "ALOOP_WORKER_GRACE" /* seconds a graceful stop may take */

/* The registry field where the interpreter (src/main.c) keeps its supervise_self(n, grace): exec
   itself under the supervisor with the same script and arguments (app:run{workers = N}). */
#define AL_SUPERVISE_KEY "aloop.supervise_self"

enum {
  AL_CTL_READY = 1, /* worker -> supervisor: serving (no reply) */
  AL_CTL_LISTEN,    /* worker -> supervisor: an al_CtlListen; reply al_CtlReply (+ the fd) */
};

/* A listening TCP socket wanted by a worker's create_server: the supervisor binds it once per
   (address, nth) and passes the same socket to every worker that asks. */
typedef struct al_CtlListen {
  int op; /* AL_CTL_LISTEN */
  int family;
  int backlog;
  int nth;           /* how many sockets this worker asked for at this address before */
  int reuse_address; /* SO_REUSEADDR */
  socklen_t addrlen;
  struct sockaddr_storage addr; /* as asked: port 0 stays 0 (bound once, the same for all) */
} al_CtlListen;

typedef struct al_CtlReply {
  int err; /* 0: the fd comes with it (SCM_RIGHTS); else the errno of socket/bind/listen */
} al_CtlReply;

#endif
