/*
** The supervisor of `aloop --workers N script args...` (linked into the interpreter only): one
** process, no Lua, no threads, a poll() loop. It fork+execs N workers running the script (clean
** state each), binds the listening sockets they ask for (TCP or Unix) once per address and
** hands them over the control socket (src/workers/control.h), so the accept queue outlives every
** worker; after a rolling restart it closes those the new workers do not ask for. It
** relays each worker's stderr (keeping its tail for error reports), restarts workers that die
** (with backoff; a worker that keeps failing before it is ready ends the supervisor with its
** error), and obeys signals: SIGTERM/SIGINT graceful stop, SIGQUIT fast stop, SIGHUP rolling
** restart, SIGTTIN/SIGTTOU one worker more/less.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "workers/control.h"

#define TAIL_SIZE 4096          /* bytes of a worker's stderr kept for the error report */
#define START_FAILURES_MAX 3    /* exits before ready in a row that end the supervisor */
#define BACKOFF_FIRST 0.1       /* seconds before restarting a worker that died quickly */
#define BACKOFF_MAX 5.0
#define QUICK_DEATH 1.0         /* a worker that lived less than this died quickly */
#define KILL_MARGIN 1.0         /* SIGKILL this long after the grace period the worker honours */

typedef struct Worker {
  pid_t pid;
  int id;
  unsigned gen; /* the reload generation it was started in */
  int ctl;      /* the supervisor's end of its control socket, -1 after EOF */
  int err;      /* the read end of its stderr pipe, -1 after EOF */
  int ready, stopping;
  int listens; /* listening sockets it asked for */
  double started, kill_at;
  char tail[TAIL_SIZE];
  size_t tail_len;
} Worker;

typedef struct Listener {
  al_CtlListen key; /* op/backlog ignored */
  int fd;
  unsigned gen; /* the newest reload generation a worker asked for it in */
} Listener;

typedef struct Slot {
  int failures; /* exits before ready in a row */
  int quick;    /* quick deaths in a row */
  double start_at;
} Slot;

static struct {
  const char *progname;
  char **argv; /* the workers' command line */
  int target;  /* workers wanted */
  double grace;
  Worker *w;
  int nw, wcap;
  Listener *ls;
  int nls;
  Slot *slots;
  int nslots;
  int sigfd;
  sigset_t oldmask;
  int stopping; /* 1: graceful, 2: fast */
  unsigned gen;
  int reload_id; /* the slot the rolling restart is at, 0: none */
  int prune;     /* a reload is done: drop the listeners its workers do not use, once they listen */
  int status;
} S;

static void prune_listeners(void);

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  dprintf(2, "%s: %s\n", S.progname, buf);
}

static Slot *slot(int id) {
  if (id > S.nslots) {
    S.slots = realloc(S.slots, sizeof *S.slots * id);
    if (!S.slots) abort();
    memset(S.slots + S.nslots, 0, sizeof *S.slots * (id - S.nslots));
    S.nslots = id;
  }
  return &S.slots[id - 1];
}

/* ------------------------------------------------------------------------------------------ */
/* Starting and stopping workers */

static void set_env_int(const char *name, long v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%ld", v);
  setenv(name, buf, 1);
}

/* In the child: the control socket and the stderr pipe in place, the signal state a fresh
   process has (SIGINT ignored: Ctrl+C reaches the supervisor, which stops workers with
   SIGTERM), then exec the interpreter again. */
static void exec_worker(int id, int ctl, int errw) {
  if (dup2(errw, 2) < 0) _exit(127);
  fcntl(ctl, F_SETFD, 0);
  set_env_int(AL_WORKER_ENV_FD, ctl);
  set_env_int(AL_WORKER_ENV_ID, id);
  set_env_int(AL_WORKER_ENV_COUNT, S.target);
  char grace[32];
  snprintf(grace, sizeof grace, "%g", S.grace);
  setenv(AL_WORKER_ENV_GRACE, grace, 1);
  signal(SIGINT, SIG_IGN);
  sigprocmask(SIG_SETMASK, &S.oldmask, NULL);
  execv("/proc/self/exe", S.argv);
  dprintf(2, "%s: cannot run a worker: %s\n", S.progname, strerror(errno));
  _exit(127);
}

static void spawn(int id) {
  int sv[2], ep[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    say("socketpair: %s", strerror(errno));
    slot(id)->start_at = now() + BACKOFF_MAX;
    return;
  }
  if (pipe2(ep, O_CLOEXEC) < 0) {
    say("pipe: %s", strerror(errno));
    close(sv[0]), close(sv[1]);
    slot(id)->start_at = now() + BACKOFF_MAX;
    return;
  }
  pid_t pid = fork();
  if (pid == 0) exec_worker(id, sv[1], ep[1]);
  close(sv[1]);
  close(ep[1]);
  if (pid < 0) {
    say("fork: %s", strerror(errno));
    close(sv[0]), close(ep[0]);
    slot(id)->start_at = now() + BACKOFF_MAX;
    return;
  }
  fcntl(ep[0], F_SETFL, O_NONBLOCK);
  if (S.nw == S.wcap) {
    S.wcap = S.wcap ? 2 * S.wcap : 8;
    S.w = realloc(S.w, sizeof *S.w * S.wcap);
    if (!S.w) abort();
  }
  Worker *w = &S.w[S.nw++];
  memset(w, 0, sizeof *w);
  w->pid = pid;
  w->id = id;
  w->gen = S.gen;
  w->ctl = sv[0];
  w->err = ep[0];
  w->started = now();
  w->kill_at = INFINITY;
}

/* SIGTERM now, SIGKILL once the grace period (plus a margin) is over. */
static void stop_worker(Worker *w) {
  if (w->stopping) return;
  w->stopping = 1;
  kill(w->pid, SIGTERM);
  w->kill_at = now() + S.grace + KILL_MARGIN;
}

static void stop_all(int fast) {
  if (S.stopping < (fast ? 2 : 1)) S.stopping = fast ? 2 : 1;
  for (int i = 0; i < S.nw; i++) {
    if (fast) {
      S.w[i].stopping = 1;
      kill(S.w[i].pid, SIGKILL);
      S.w[i].kill_at = INFINITY;
    } else {
      stop_worker(&S.w[i]);
    }
  }
}

/* The newest running (not stopping) worker of slot id, of generation gen or any (gen < 0). */
static Worker *find_worker(int id, long gen) {
  Worker *found = NULL;
  for (int i = 0; i < S.nw; i++) {
    Worker *w = &S.w[i];
    if (w->id == id && !w->stopping && (gen < 0 || w->gen == (unsigned)gen)) found = w;
  }
  return found;
}

/* A running worker of w's slot from before the current reload (w: a new one). */
static Worker *old_worker(const Worker *w) {
  for (int i = 0; i < S.nw; i++)
    if (S.w[i].id == w->id && S.w[i].gen != w->gen && !S.w[i].stopping) return &S.w[i];
  return NULL;
}

/* One step of the rolling restart: a new worker for the current slot; once it is ready the old
   ones of that slot stop and the next slot follows. */
static void reload_step(void) {
  while (S.reload_id) {
    int id = S.reload_id;
    if (id > S.target) {
      S.reload_id = 0;
      S.prune = 1;
      say("reload done");
      return;
    }
    Worker *fresh = find_worker(id, S.gen);
    if (!fresh) {
      spawn(id);
      return;
    }
    if (!fresh->ready) return;
    for (int i = 0; i < S.nw; i++)
      if (S.w[i].id == id && S.w[i].gen != S.gen) stop_worker(&S.w[i]);
    S.reload_id++;
  }
}

/* Starts what is missing, stops what is too many, kills what outlived its grace period. */
static void maintain(void) {
  double t = now();
  for (int i = 0; i < S.nw; i++)
    if (S.w[i].kill_at <= t) {
      say("worker %d (pid %d) did not stop within the grace period (%gs); killing it",
          S.w[i].id, (int)S.w[i].pid, S.grace);
      kill(S.w[i].pid, SIGKILL);
      S.w[i].kill_at = INFINITY;
    }
  if (S.stopping) return;
  for (int i = 0; i < S.nw; i++)
    if (S.w[i].id > S.target) stop_worker(&S.w[i]);
  for (int id = 1; id <= S.target; id++)
    if (!find_worker(id, -1) && slot(id)->start_at <= t) spawn(id);
  reload_step();
  prune_listeners();
}

/* ------------------------------------------------------------------------------------------ */
/* Worker output and exits */

static void tail_append(Worker *w, const char *buf, size_t n) {
  if (n >= TAIL_SIZE) {
    buf += n - TAIL_SIZE;
    n = TAIL_SIZE;
  }
  if (w->tail_len + n > TAIL_SIZE) {
    size_t drop = w->tail_len + n - TAIL_SIZE;
    memmove(w->tail, w->tail + drop, w->tail_len - drop);
    w->tail_len -= drop;
  }
  memcpy(w->tail + w->tail_len, buf, n);
  w->tail_len += n;
}

/* Relays what the worker wrote to stderr and keeps its tail; closes the pipe at EOF. */
static void read_stderr(Worker *w) {
  char buf[4096];
  while (w->err >= 0) {
    ssize_t n = read(w->err, buf, sizeof buf);
    if (n > 0) {
      tail_append(w, buf, (size_t)n);
      for (ssize_t off = 0; off < n;) {
        ssize_t k = write(2, buf + off, (size_t)(n - off));
        if (k < 0 && errno != EINTR) break;
        if (k > 0) off += k;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    close(w->err);
    w->err = -1;
  }
}

/* The tail without its last newline (the report adds one). */
static int tail_shown(const Worker *w) {
  size_t n = w->tail_len;
  while (n > 0 && w->tail[n - 1] == '\n') n--;
  return (int)n;
}

static void describe_status(int status, char *buf, size_t size) {
  if (WIFSIGNALED(status)) snprintf(buf, size, "killed by signal %d", WTERMSIG(status));
  else snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
}

/* A worker died on its own: restart it (after a backoff if it died quickly), give up the
   rolling restart if the new code does not start, or give up altogether. */
static void worker_died(Worker *w, int status) {
  char how[64];
  describe_status(status, how, sizeof how);
  Slot *sl = slot(w->id);
  double t = now();
  if (w->ready) {
    sl->failures = 0;
    sl->quick = t - w->started < QUICK_DEATH ? sl->quick + 1 : 0;
    say("worker %d (pid %d) %s; restarting it", w->id, (int)w->pid, how);
  } else {
    sl->failures++;
    sl->quick++;
    int reloading = S.reload_id == w->id && w->gen == S.gen && old_worker(w) != NULL;
    if (reloading) { /* the old worker of this slot still serves: keep the old code */
      say("reload failed: the new worker %d %s before it was ready; the old workers keep "
          "running. Its stderr ended with:\n%.*s", w->id, how, tail_shown(w), w->tail);
      S.reload_id = 0;
      return;
    }
    if (sl->failures >= START_FAILURES_MAX) {
      say("worker %d %s before it was ready, %d times in a row; stopping. Its stderr ended "
          "with:\n%.*s", w->id, how, sl->failures, tail_shown(w), w->tail);
      S.status = 1;
      stop_all(0);
      return;
    }
    say("worker %d (pid %d) %s before it was ready; restarting it", w->id, (int)w->pid, how);
  }
  double delay = sl->quick ? BACKOFF_FIRST * pow(2, sl->quick - 1) : 0;
  sl->start_at = t + (delay > BACKOFF_MAX ? BACKOFF_MAX : delay);
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (int i = 0; i < S.nw; i++) {
      Worker *w = &S.w[i];
      if (w->pid != pid) continue;
      read_stderr(w); /* what it wrote before dying (a grandchild may still hold the pipe) */
      if (!w->stopping && !S.stopping) worker_died(w, status);
      if (w->err >= 0) close(w->err);
      if (w->ctl >= 0) close(w->ctl);
      S.w[i] = S.w[--S.nw];
      break;
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* The control socket: ready messages and listening sockets */

static int same_key(const al_CtlListen *a, const al_CtlListen *b) {
  return a->family == b->family && a->nth == b->nth && a->addrlen == b->addrlen &&
         memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

/* The path of a Unix listener's socket file, NULL for an abstract or unnamed one. */
static const char *unix_path(const al_CtlListen *key) {
  const struct sockaddr_un *un = (const struct sockaddr_un *)&key->addr;
  if (key->family != AF_UNIX || key->addrlen <= offsetof(struct sockaddr_un, sun_path) ||
      un->sun_path[0] == '\0')
    return NULL;
  return un->sun_path;
}

/* A request whose address is what al_check_sockaddr makes: a Unix path ends with its NUL. */
static int valid_request(const al_CtlListen *req) {
  if (req->addrlen > sizeof req->addr) return 0;
  if (req->family == AF_INET || req->family == AF_INET6) return 1;
  if (req->family != AF_UNIX || req->addrlen < offsetof(struct sockaddr_un, sun_path)) return 0;
  const struct sockaddr_un *un = (const struct sockaddr_un *)&req->addr;
  size_t n = req->addrlen - offsetof(struct sockaddr_un, sun_path);
  return n == 0 || un->sun_path[0] == '\0' || memchr(un->sun_path, '\0', n) != NULL;
}

/* Binds a Unix socket as create_unix_server does: a stale file (nobody accepting) is replaced. */
static int bind_unix(int s, const al_CtlListen *req) {
  const struct sockaddr *sa = (const struct sockaddr *)&req->addr;
  if (bind(s, sa, req->addrlen) == 0) return 0;
  const char *path = unix_path(req);
  if (errno != EADDRINUSE || !path) return -1;
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe < 0) return -1;
  int alive = connect(probe, sa, req->addrlen) == 0 || errno != ECONNREFUSED;
  close(probe);
  if (alive) return errno = EADDRINUSE, -1;
  unlink(path);
  return bind(s, sa, req->addrlen);
}

/* The socket for a request: bound and listening once per (address, nth); an errno if not. */
static int listener_for(const al_CtlListen *req, unsigned gen, int *fd) {
  for (int i = 0; i < S.nls; i++)
    if (same_key(&S.ls[i].key, req)) {
      if (S.ls[i].gen < gen) S.ls[i].gen = gen;
      return *fd = S.ls[i].fd, 0;
    }
  if (!valid_request(req)) return EINVAL;
  int s = socket(req->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) return errno;
  int one = 1;
  if (req->reuse_address && req->family != AF_UNIX)
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (req->family == AF_INET6) setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  int bound = req->family == AF_UNIX ? bind_unix(s, req)
                                     : bind(s, (const struct sockaddr *)&req->addr, req->addrlen);
  if (bound < 0 || listen(s, req->backlog > 0 ? req->backlog : SOMAXCONN) < 0) {
    int err = errno;
    close(s);
    return err;
  }
  S.ls = realloc(S.ls, sizeof *S.ls * (S.nls + 1));
  if (!S.ls) abort();
  S.ls[S.nls].key = *req;
  S.ls[S.nls].gen = gen;
  S.ls[S.nls++].fd = s;
  return *fd = s, 0;
}

/* Closes a listener (a Unix one's socket file goes with it). */
static void close_listener(Listener *l) {
  const char *path = unix_path(&l->key);
  if (path) unlink(path);
  close(l->fd);
}

/* After a reload, once every worker of the new generation asked for a listening socket (it set
   up its servers; one that listens only after an await is waited for), the listeners none of
   them asked for are closed: new connections there are refused instead of queueing for nobody. */
static void prune_listeners(void) {
  if (!S.prune || S.reload_id) return;
  for (int i = 0; i < S.nw; i++)
    if (S.w[i].gen == S.gen && !S.w[i].stopping && !S.w[i].listens) return;
  S.prune = 0;
  int kept = 0;
  for (int i = 0; i < S.nls; i++) {
    if (S.ls[i].gen == S.gen) S.ls[kept++] = S.ls[i];
    else close_listener(&S.ls[i]);
  }
  S.nls = kept;
}

static void reply_listen(Worker *w, const al_CtlListen *req) {
  int fd = -1;
  al_CtlReply rep = {listener_for(req, w->gen, &fd)};
  if (rep.err == 0) w->listens++;
  struct iovec iov = {&rep, sizeof rep};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (rep.err == 0) {
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  while (sendmsg(w->ctl, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {}
}

static void read_control(Worker *w) {
  al_CtlListen req;
  ssize_t n = recv(w->ctl, &req, sizeof req, MSG_DONTWAIT);
  if (n < 0) return; /* EAGAIN, EINTR: poll again */
  if (n == 0) {      /* the worker closed it (it is exiting) */
    close(w->ctl);
    w->ctl = -1;
    return;
  }
  if (n >= (ssize_t)sizeof(int) && req.op == AL_CTL_READY) {
    w->ready = 1;
    slot(w->id)->failures = 0;
  } else if (n == (ssize_t)sizeof req && req.op == AL_CTL_LISTEN) {
    reply_listen(w, &req);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Signals and the main loop */

static void on_signal(int sig) {
  switch (sig) {
  case SIGCHLD: reap(); break;
  case SIGTERM:
  case SIGINT: stop_all(S.stopping > 0); break; /* a second one: fast */
  case SIGQUIT: stop_all(1); break;
  case SIGHUP:
    if (S.stopping) break;
    S.gen++;
    S.reload_id = 1;
    say("reloading: restarting the workers one by one");
    break;
  case SIGTTIN: S.target++; break;
  case SIGTTOU:
    if (S.target > 1) S.target--;
    break;
  }
}

static void read_signals(void) {
  struct signalfd_siginfo si;
  while (read(S.sigfd, &si, sizeof si) == (ssize_t)sizeof si) on_signal((int)si.ssi_signo);
}

static int poll_timeout_ms(void) {
  double next = INFINITY, t = now();
  for (int i = 0; i < S.nw; i++)
    if (S.w[i].kill_at < next) next = S.w[i].kill_at;
  if (!S.stopping)
    for (int id = 1; id <= S.target; id++)
      if (!find_worker(id, -1) && slot(id)->start_at < next) next = slot(id)->start_at;
  if (next == INFINITY) return -1;
  double ms = (next - t) * 1000 + 1;
  return ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
}

static void run(void) {
  struct pollfd *pfd = NULL;
  for (;;) {
    maintain();
    if (S.stopping && S.nw == 0) break;
    pfd = realloc(pfd, sizeof *pfd * (1 + 2 * (size_t)S.nw));
    if (!pfd) abort();
    int n = 0;
    pfd[n++] = (struct pollfd){S.sigfd, POLLIN, 0};
    for (int i = 0; i < S.nw; i++) {
      pfd[n++] = (struct pollfd){S.w[i].ctl, POLLIN, 0}; /* -1: ignored by poll */
      pfd[n++] = (struct pollfd){S.w[i].err, POLLIN, 0};
    }
    if (poll(pfd, (nfds_t)n, poll_timeout_ms()) < 0 && errno != EINTR) {
      say("poll: %s", strerror(errno));
      break;
    }
    /* Workers first (their records may move when the signals reap them). */
    for (int i = 0; i < S.nw && 1 + 2 * i < n; i++) {
      Worker *w = &S.w[i];
      if (pfd[1 + 2 * i].fd == w->ctl && pfd[1 + 2 * i].revents) read_control(w);
      if (pfd[2 + 2 * i].fd == w->err && pfd[2 + 2 * i].revents) read_stderr(w);
    }
    if (pfd[0].revents) read_signals();
  }
  free(pfd);
}

static int cpu_count(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* The interpreter's entry for --workers: never returns to Lua; the value is the exit status. */
int al_supervise(const char *progname, char **worker_argv, int nworkers, double grace) {
  memset(&S, 0, sizeof S);
  S.progname = progname;
  S.argv = worker_argv;
  S.target = nworkers > 0 ? nworkers : cpu_count();
  S.grace = grace;
  sigset_t mask;
  sigemptyset(&mask);
  int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaddset(&mask, sigs[i]);
  sigprocmask(SIG_BLOCK, &mask, &S.oldmask);
  S.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (S.sigfd < 0) {
    say("signalfd: %s", strerror(errno));
    return 1;
  }
  signal(SIGPIPE, SIG_IGN); /* a worker gone while we reply: EPIPE, not death */
  run();
  for (int i = 0; i < S.nls; i++) close_listener(&S.ls[i]);
  close(S.sigfd);
  free(S.ls);
  free(S.slots);
  free(S.w);
  return S.status;
}
