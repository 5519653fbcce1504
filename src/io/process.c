/*
** Subprocesses: spawning (posix_spawn, which glibc runs as clone(CLONE_VM|CLONE_VFORK) + exec
** and which reports exec failures such as ENOENT to the caller), child reaping, and the C half of
** the SubprocessTransport (pid, returncode, signals). The pipes, the protocol calls and the
** Process class are in lua/aloop/subprocess.lua, on top of the pipe transports of transport.c.
**
** Reaping. A child is watched through a pidfd (pidfd_open, Linux >= 5.3) with an ev_io on the
** loop that spawned it; when the pidfd becomes readable the child has exited and waitpid(pid)
** collects exactly that child. This works on every aloop loop (they are ev_loop_new loops, and a
** host may hand over its own), needs no SIGCHLD handler, and never reaps a child aloop did not
** start: aloop calls waitpid only with its own pids, never waitpid(-1). libev's ev_child is not
** used: it only works on the default libev loop and its SIGCHLD handler reaps every child of the
** process with waitpid(-1), which would steal children from a host or from the process pool.
** Without pidfd (old kernels, or pidfd_open failing for lack of fds) the loop polls
** waitpid(pid, WNOHANG) on a timer that backs off from 1 ms to 100 ms. When a loop closes with
** children still running, each is handed to a detached thread blocked in waitpid(pid), so none
** is left a zombie.
**
** Spawning: every fd aloop creates is close-on-exec, and the child additionally closes every fd
** from 3 up except those passed in opts.pass_fds (posix_spawn_file_actions_addclosefrom_np), so
** it sees only 0-2 and what was passed even when the host opened files without O_CLOEXEC (Lua's
** io.open does). Signal dispositions are reset to the default and the mask is emptied in the
** child (aloop ignores SIGPIPE for its pipes; the child must not inherit that).
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/net.h"
#include "util/thread.h"

#define REAPER_STACK (64 * 1024) /* the reaper thread only calls waitpid */

#define AL_PROCESS_MT "aloop.SubprocessTransport"

/* Stdio specs as subprocess.lua passes them (the values of aio.subprocess.*, as in Python). */
enum { SPEC_PIPE = -1, SPEC_STDOUT = -2, SPEC_DEVNULL = -3, SPEC_INHERIT = -100 };

/*
** Our pipes get 1 MiB of kernel buffer (Linux: up to /proc/sys/fs/pipe-max-size, 1 MiB by
** default): more moves per wake-up of either side; the default 64 KiB costs a context switch
** per 64 KiB.
*/
#define PIPE_SIZE (1 << 20)

#define POLL_FIRST 0.001 /* without a pidfd: first waitpid poll, doubling up to POLL_MAX */
#define POLL_MAX 0.1

enum {
  PUV_STATE = 1, /* a Lua table: protocol, pipe transports, waiters (subprocess.lua) */
  PUV_ONEXIT,    /* function(transport) run as a loop callback once the child is reaped */
  PUV_N = PUV_ONEXIT
};

typedef struct al_Process {
  al_Resource hdr; /* loop:close() hands a child still running to a reaper thread */
  ev_io pidw;    /* the pidfd: readable once the child has exited */
  ev_timer pollw; /* without a pidfd: polls waitpid(pid, WNOHANG) */
  al_Loop *loop;
  pid_t pid;
  int pidfd;  /* -1 once reaped, or when polling */
  int ref;    /* registry ref of the userdata until the child is reaped */
  int status; /* the returncode once reaped */
  unsigned char reaped;
  unsigned char watching; /* pidw or pollw is started */
  uint32_t magic; /* PROCESS_MAGIC */
} al_Process;

#define PROCESS_MAGIC 0x70726f63u /* "proc" (al_toudata) */

static al_Process *check_proc(lua_State *L, int idx) {
  return AL_CHECKUDATA(L, idx, al_Process, PROCESS_MAGIC, AL_PROCESS_MT);
}

/* ---------------------------------------------------------------------------------------- */
/* Reaping. */

static void stop_watching(al_Process *p) {
  if (!p->watching) return;
  p->watching = 0;
  if (p->pidfd >= 0) {
    al_watch_stop(p->loop, &p->pidw);
  } else {
    al_watch_timer_stop(p->loop, &p->pollw);
  }
  if (p->pidfd >= 0) {
    close(p->pidfd);
    p->pidfd = -1;
  }
}

/* Returncode from a wait status: the exit code, or minus the signal that killed the child. */
static int status_code(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return -WTERMSIG(st);
  return 255;
}

/*
** Collects the child if it has exited: 1 when reaped (returncode set), 0 while it runs.
** ECHILD means someone else (a host calling waitpid(-1)) reaped it: the status is lost, so the
** returncode is 255, as asyncio does, and a warning says why.
*/
static int try_reap(lua_State *L, al_Process *p) {
  int st = 0;
  pid_t r;
  do r = waitpid(p->pid, &st, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  if (r == p->pid) {
    p->status = status_code(st);
  } else {
    p->status = 255;
    if (L)
      al_log(L, AL_LOG_WARNING,
             "aloop: child %d was reaped by someone else (waitpid(-1) in the host?); "
             "returncode set to 255",
             (int)p->pid);
  }
  p->reaped = 1;
  return 1;
}

/* The child was reaped: stop watching, forget it, run on_exit(transport) as a loop callback. */
static void exited(lua_State *L, al_Process *p) {
  stop_watching(p);
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref);
  int pidx = lua_gettop(L);
  al_resource_remove(L, p->loop, p);
  if (lua_getiuservalue(L, pidx, PUV_ONEXIT) == LUA_TFUNCTION) {
    lua_pushvalue(L, pidx);
    al_handle_new(L, p->loop, -2, 1, 0);
    al_ready_push(L, p->loop);
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  luaL_unref(L, LUA_REGISTRYINDEX, p->ref);
  p->ref = LUA_NOREF;
}

static void pidfd_cb(struct ev_loop *ev, ev_io *w, int revents) {
  (void)ev, (void)revents;
  al_Process *p = w->data;
  lua_State *L = p->loop->L;
  if (!L) return;
  if (try_reap(L, p)) exited(L, p);
}

static void poll_cb(struct ev_loop *ev, ev_timer *w, int revents) {
  (void)revents;
  al_Process *p = w->data;
  lua_State *L = p->loop->L;
  if (!L) return;
  if (try_reap(L, p)) {
    exited(L, p);
    return;
  }
  if (w->repeat < POLL_MAX) w->repeat *= 2;
  ev_timer_again(ev, w);
}

static void *reaper_thread(void *arg) {
  pid_t pid = (pid_t)(intptr_t)arg;
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
  return NULL;
}

/*
** loop:close() with the child still unreaped: no callback can run any more, so a detached
** thread waits for it (no zombie is left); the returncode stays nil.
*/
static void proc_shutdown(lua_State *L, void *obj) {
  al_Process *p = obj;
  stop_watching(p);
  if (!try_reap(NULL, p)) {
    pthread_t th;
    if (al_thread_create(&th, AL_THREAD_DETACHED, REAPER_STACK, reaper_thread,
                         (void *)(intptr_t)p->pid) != 0)
      al_log(L, AL_LOG_WARNING, "aloop: cannot start a thread to reap child %d", (int)p->pid);
    p->reaped = 1; /* by the thread: never signal this pid again */
    p->status = INT32_MIN;
  }
  al_resource_remove(L, p->loop, p);
  luaL_unref(L, LUA_REGISTRYINDEX, p->ref);
  p->ref = LUA_NOREF;
}

/* ---------------------------------------------------------------------------------------- */
/* Spawning. */

/* A string exec would silently cut short at its first zero byte. */
static int has_nul(lua_State *L, int idx) {
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  return memchr(s, 0, n) != NULL;
}

/* The argv or env strings of a Lua table as a NULL-terminated array kept alive on the stack. */
static char **string_array(lua_State *L, int tidx, int is_env) {
  int n = 0;
  if (is_env) {
    lua_pushnil(L);
    while (lua_next(L, tidx)) n++, lua_pop(L, 1);
  } else {
    n = (int)luaL_len(L, tidx);
  }
  char **a = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 1);
  lua_createtable(L, n, 0); /* the strings, kept alive with the array */
  int i = 0;
  if (is_env) {
    lua_pushnil(L);
    while (lua_next(L, tidx)) {
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
        luaL_error(L, "aloop: env must map names to strings");
      const char *k = lua_tostring(L, -2);
      if (!*k || strchr(k, '=')) luaL_error(L, "aloop: invalid environment variable name '%s'", k);
      if (has_nul(L, -2) || has_nul(L, -1))
        luaL_error(L, "aloop: environment variable '%s' contains an embedded zero byte", k);
      lua_pushfstring(L, "%s=%s", k, lua_tostring(L, -1));
      a[i] = (char *)lua_tostring(L, -1);
      lua_rawseti(L, -4, ++i);
      lua_pop(L, 1);
    }
  } else {
    for (; i < n; i++) {
      lua_rawgeti(L, tidx, i + 1);
      if (!lua_isstring(L, -1)) luaL_error(L, "aloop: argument %d of the program is not a string", i + 1);
      lua_tostring(L, -1); /* numbers become strings in place */
      if (has_nul(L, -1))
        luaL_error(L, "aloop: argument %d of the program contains an embedded zero byte", i + 1);
      a[i] = (char *)lua_tostring(L, -1);
      lua_rawseti(L, -2, i + 1);
    }
  }
  a[n] = NULL;
  lua_setiuservalue(L, -2, 1);
  return a;
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static void close_fds(int *fds, int n) {
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]), fds[i] = -1;
}

/* What the child's stdin, stdout and stderr become: a SPEC_* or an fd of ours to dup. */
typedef struct SpawnStdio {
  int spec[3];
  int target_fd[3];   /* spec 0: this fd */
  al_Socket *socks[3]; /* SPEC_PIPE: the socket object owning our end */
  int child_end[3];   /* SPEC_PIPE: the child's end, closed here once it is spawned */
} SpawnStdio;

/* Spawn phase 1: the stdio specs at args 3-5 (nil inherits). */
static void spawn_check_stdio(lua_State *L, SpawnStdio *io) {
  for (int i = 0; i < 3; i++) {
    int idx = 3 + i;
    io->socks[i] = NULL;
    io->child_end[i] = -1;
    if (lua_isnil(L, idx)) io->spec[i] = SPEC_INHERIT;
    else if (lua_isinteger(L, idx) && lua_tointeger(L, idx) < 0) {
      io->spec[i] = (int)lua_tointeger(L, idx);
      if (io->spec[i] < SPEC_DEVNULL || (io->spec[i] == SPEC_STDOUT && i != 2))
        luaL_argerror(L, idx, "invalid stdio value");
    } else {
      io->spec[i] = 0;
      io->target_fd[i] = al_checkfd(L, idx);
    }
  }
}

/* Spawn phase 1: pass_fds at arg 8, sorted, in an array kept alive on the stack. */
static int *spawn_check_pass_fds(lua_State *L, int *npass) {
  int n = lua_isnil(L, 8) ? 0 : (int)luaL_len(L, 8);
  int *pass = lua_newuserdatauv(L, sizeof(int) * (size_t)(n + 1), 0);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 8, i + 1);
    int isnum;
    lua_Integer fd = lua_tointegerx(L, -1, &isnum);
    if (!isnum || fd < 3 || fd > INT_MAX) luaL_error(L, "aloop: pass_fds: invalid fd");
    if (fcntl((int)fd, F_GETFD) < 0) al_oserror_raise(L, errno, "pass_fds");
    pass[i] = (int)fd;
    lua_pop(L, 1);
  }
  qsort(pass, (size_t)n, sizeof(int), cmp_int);
  *npass = n;
  return pass;
}

/* Spawn phase 2: the transport userdata (pushed) and the pipe socket objects (pushed, or nils). */
static al_Process *spawn_new_process(lua_State *L, al_Loop *loop, SpawnStdio *io) {
  al_Process *p = lua_newuserdatauv(L, sizeof *p, PUV_N);
  memset(p, 0, sizeof *p);
  p->magic = PROCESS_MAGIC;
  p->hdr.shutdown = proc_shutdown;
  p->loop = loop;
  p->pidfd = -1;
  p->ref = LUA_NOREF;
  luaL_setmetatable(L, AL_PROCESS_MT);
  lua_newtable(L);
  lua_setiuservalue(L, -2, PUV_STATE);
  for (int i = 0; i < 3; i++) {
    if (io->spec[i] == SPEC_PIPE) io->socks[i] = al_socket_new(L, -1, 0, 0);
    else lua_pushnil(L);
  }
  return p;
}

/* Spawn phase 3: the pipes, and the file actions that put each stdio in place. 0 or errno. */
static int spawn_plan_stdio(SpawnStdio *io, posix_spawn_file_actions_t *fa) {
  int err = 0;
  for (int i = 0; i < 3 && !err; i++) {
    if (io->spec[i] == SPEC_PIPE) {
      int fds[2];
      if (pipe2(fds, O_CLOEXEC) < 0) return errno;
      io->socks[i]->fd = i == 0 ? fds[1] : fds[0]; /* owned by the socket object from now on */
      io->child_end[i] = i == 0 ? fds[0] : fds[1];
      fcntl(io->socks[i]->fd, F_SETFL, fcntl(io->socks[i]->fd, F_GETFL) | O_NONBLOCK);
      fcntl(fds[0], F_SETPIPE_SZ, PIPE_SIZE);
      err = posix_spawn_file_actions_adddup2(fa, io->child_end[i], i);
    } else if (io->spec[i] == SPEC_DEVNULL) {
      err = posix_spawn_file_actions_addopen(fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
    } else if (io->spec[i] == SPEC_STDOUT) {
      err = posix_spawn_file_actions_adddup2(fa, 1, 2);
    } else if (io->spec[i] == 0) {
      err = posix_spawn_file_actions_adddup2(fa, io->target_fd[i], i);
    }
  }
  return err;
}

/*
** Spawn phase 3: the child keeps 0-2 and pass_fds (dup2 onto itself clears their close-on-exec
** flag), closes every other fd, and starts in cwd. 0 or errno.
*/
static int spawn_plan_fds(posix_spawn_file_actions_t *fa, const int *pass, int npass,
                          const char *cwd) {
  int err = 0, next = 3;
  for (int i = 0; i < npass && !err; i++) {
    if (pass[i] < next) continue; /* duplicate */
    for (int fd = next; fd < pass[i] && !err; fd++) err = posix_spawn_file_actions_addclose(fa, fd);
    if (!err) err = posix_spawn_file_actions_adddup2(fa, pass[i], pass[i]);
    next = pass[i] + 1;
  }
  if (!err) err = posix_spawn_file_actions_addclosefrom_np(fa, next);
  if (!err && cwd) err = posix_spawn_file_actions_addchdir_np(fa, cwd);
  return err;
}

/*
** Spawn phase 4: starts the program with default signal dispositions and an empty mask, in a
** new session (setsid) or in process group pgroup (0: a new one led by the child) when asked.
*/
static int spawn_exec(pid_t *pid, char **argv, char **envp, posix_spawn_file_actions_t *fa,
                      int new_session, lua_Integer pgroup) {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
  if (new_session) flags |= POSIX_SPAWN_SETSID;
  if (pgroup >= 0) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attr, (pid_t)pgroup);
  }
  posix_spawnattr_setflags(&attr, flags);
  int err = strchr(argv[0], '/') ? posix_spawn(pid, argv[0], fa, &attr, argv, envp)
                                 : posix_spawnp(pid, argv[0], fa, &attr, argv, envp);
  posix_spawnattr_destroy(&attr);
  return err;
}

/* Spawn failed: closes our pipe ends and raises OSError naming the program (or a missing cwd). */
static int spawn_fail(lua_State *L, SpawnStdio *io, int err, const char *prog, const char *cwd) {
  for (int i = 0; i < 3; i++)
    if (io->socks[i]) al_socket_close(io->socks[i]);
  if (cwd && err == ENOENT && access(cwd, F_OK) < 0) lua_pushfstring(L, "cwd '%s'", cwd);
  else lua_pushfstring(L, "'%s'", prog);
  return al_oserror_raise(L, err, lua_tostring(L, -1));
}

/* Spawn phase 5: watch for the exit (a pidfd, else polling) and keep the transport registered. */
static void spawn_watch(lua_State *L, al_Process *p, int pidx) {
  p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
  if (p->pidfd >= 0) {
    ev_io_init(&p->pidw, pidfd_cb, p->pidfd, EV_READ);
    p->pidw.data = p;
    al_watch_start(p->loop, &p->pidw);
  } else {
    ev_timer_init(&p->pollw, poll_cb, POLL_FIRST, POLL_FIRST);
    p->pollw.data = p;
    al_watch_timer_start(p->loop, &p->pollw);
  }
  p->watching = 1;
  lua_pushvalue(L, pidx);
  p->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  al_resource_add(L, p->loop, pidx);
}

/*
** core._spawn(loop, argv, stdin, stdout, stderr, cwd, env, pass_fds, start_new_session,
**             process_group) -> transport, sock_stdin|nil, sock_stdout|nil, sock_stderr|nil
** Each stdio spec: nil (inherit), -1 PIPE, -2 STDOUT (stderr only), -3 DEVNULL, or an fd (an
** integer, a Lua file or an object with :fileno()). The socket objects own the parent's ends of
** the pipes (non-blocking, close-on-exec). Raises OSError (errno ENOENT: program not found).
** In phases, as libuv's uv_spawn: check the arguments, make the objects (everything that can
** raise comes before the first fd), plan the child's fds, spawn, watch for the exit.
*/
static int l_spawn(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  if (loop->closed) return luaL_error(L, "aloop: Event loop is closed");
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *cwd = luaL_optstring(L, 6, NULL);
  if (!lua_isnoneornil(L, 7)) luaL_checktype(L, 7, LUA_TTABLE);
  if (!lua_isnoneornil(L, 8)) luaL_checktype(L, 8, LUA_TTABLE);
  int new_session = lua_toboolean(L, 9);
  lua_Integer pgroup = luaL_optinteger(L, 10, -1);
  luaL_argcheck(L, pgroup >= -1 && pgroup <= INT_MAX, 10, "invalid process group");
  lua_settop(L, 8);
  if (luaL_len(L, 2) < 1) return luaL_error(L, "aloop: the program is missing");
  char **argv = string_array(L, 2, 0);
  char **envp = lua_isnil(L, 7) ? environ : string_array(L, 7, 1);
  SpawnStdio io;
  spawn_check_stdio(L, &io);
  int npass;
  int *pass = spawn_check_pass_fds(L, &npass);

  al_Process *p = spawn_new_process(L, loop, &io);
  int pidx = lua_gettop(L) - 3;

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  int err = spawn_plan_stdio(&io, &fa);
  if (!err) err = spawn_plan_fds(&fa, pass, npass, cwd);
  if (!err) err = spawn_exec(&p->pid, argv, envp, &fa, new_session, pgroup);
  posix_spawn_file_actions_destroy(&fa);
  close_fds(io.child_end, 3);
  if (err) return spawn_fail(L, &io, err, argv[0], cwd);

  spawn_watch(L, p, pidx);
  return 4; /* transport and the three socket objects or nils */
}

/* ---------------------------------------------------------------------------------------- */
/* Methods. */

static int proc_get_pid(lua_State *L) {
  lua_pushinteger(L, check_proc(L, 1)->pid);
  return 1;
}

static int proc_get_returncode(lua_State *L) {
  al_Process *p = check_proc(L, 1);
  if (p->reaped && p->status != INT32_MIN) lua_pushinteger(L, p->status);
  else lua_pushnil(L);
  return 1;
}

/* send_signal(sig): a number or a name. A child already reaped is left alone (its pid may
   belong to another process by now): returns false then, true when the signal was sent. */
static int proc_send_signal(lua_State *L) {
  al_Process *p = check_proc(L, 1);
  int sig = al_checksignal(L, 2);
  if (p->reaped) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (kill(p->pid, sig) < 0 && errno != ESRCH) return al_oserror_raise(L, errno, "kill");
  lua_pushboolean(L, 1);
  return 1;
}

static int send_sig(lua_State *L, int sig) {
  lua_settop(L, 1);
  lua_pushinteger(L, sig);
  return proc_send_signal(L);
}

static int proc_terminate(lua_State *L) { return send_sig(L, SIGTERM); }
static int proc_kill(lua_State *L) { return send_sig(L, SIGKILL); }

/* _set_on_exit(fn): fn(transport) runs as a loop callback once the child is reaped. */
static int proc_set_on_exit(lua_State *L) {
  check_proc(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, PUV_ONEXIT);
  return 0;
}

static int proc_state(lua_State *L) {
  check_proc(L, 1);
  lua_getiuservalue(L, 1, PUV_STATE);
  return 1;
}

static int proc_tostring(lua_State *L) {
  al_Process *p = check_proc(L, 1);
  if (p->reaped && p->status != INT32_MIN)
    lua_pushfstring(L, "<aloop.SubprocessTransport pid=%d returncode=%d>", (int)p->pid, p->status);
  else
    lua_pushfstring(L, "<aloop.SubprocessTransport pid=%d running>", (int)p->pid);
  return 1;
}

/*
** core._zombies(): the pid of an exited child of this process nobody has collected yet, or nil.
** Uses waitid(WNOWAIT): nothing is reaped (for specs: "no zombie is left").
*/
static int l_zombies(lua_State *L) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid != 0)
    lua_pushinteger(L, si.si_pid);
  else
    lua_pushnil(L);
  return 1;
}

static const luaL_Reg proc_methods[] = {
    {"get_pid", proc_get_pid},
    {"get_returncode", proc_get_returncode},
    {"send_signal", proc_send_signal},
    {"terminate", proc_terminate},
    {"kill", proc_kill},
    {"_set_on_exit", proc_set_on_exit},
    {"_state", proc_state},
    {NULL, NULL},
};

static const luaL_Reg proc_meta[] = {
    {"__tostring", proc_tostring},
    {NULL, NULL},
};

/* core.SubprocessTransport is the method table (subprocess.lua adds the Lua methods to it). */
void al_process_open(lua_State *L, int core) {
  al_new_class(L, AL_PROCESS_MT, proc_methods, proc_meta);
  lua_setfield(L, core, "SubprocessTransport");
  lua_setfield(L, core, "_SubprocessTransport_mt");
  lua_pushcfunction(L, l_spawn);
  lua_setfield(L, core, "_spawn");
  lua_pushcfunction(L, l_zombies);
  lua_setfield(L, core, "_zombies");
}
