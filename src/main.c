/*
** The `aloop` interpreter: lua5.4's command line (script args, -e, -l, -i, -v, -) with the
** aloop module preloaded, plus --debug and --backend NAME. With no script (or -i) it starts
** the REPL of aloop.repl, whose lines run as tasks on a running loop. An uncaught error prints
** the message and a traceback and exits 1. --workers N runs the script in N worker processes
** under a supervisor (supervisor.c).
*/
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <lauxlib.h>
#include <lualib.h>

#include "aloop.h"
#include "workers/control.h"

static const char *progname = "aloop";
static int main_argc;     /* the command line, for supervise_self */
static char **main_argv;

#ifdef ALOOP_HAVE_LIBEDIT
int luaopen_aloop_lineedit(lua_State *L); /* lineedit.c */
#endif
int al_supervise(const char *progname, char **worker_argv, int nworkers, double grace);

#define DEFAULT_GRACE 30.0 /* seconds a worker may take to finish its work after SIGTERM */

static void usage(const char *badopt) {
  if (badopt) fprintf(stderr, "%s: unrecognized option '%s'\n", progname, badopt);
  fprintf(stderr,
          "usage: %s [options] [script [args]]\n"
          "Available options are:\n"
          "  -e stat        execute string 'stat'\n"
          "  -i             enter interactive mode after executing 'script'\n"
          "  -l mod         require library 'mod' into global 'mod'\n"
          "  -v, --version  show version information (aloop, Lua, libev)\n"
          "  --debug        enable aloop debug mode (as ALOOP_DEBUG=1)\n"
          "  --backend NAME use libev backend NAME (epoll, poll, select, io_uring, ...)\n"
          "  --workers N    run the script in N worker processes sharing their listening\n"
          "                 sockets, under a supervisor (N = 0: one per CPU)\n"
          "  --grace S      seconds a worker may take to stop after SIGTERM (default 30)\n"
          "  --             stop handling options\n"
          "  -              stop handling options and execute stdin\n",
          progname);
}

/* Message handler: error objects with a traceback field keep theirs; others get one. */
static int msghandler(lua_State *L) {
  if (lua_istable(L, 1)) {
    lua_getfield(L, 1, "traceback");
    const char *tb = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    const char *msg;
    if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
      lua_pop(L, 1);
      msg = luaL_tolstring(L, 1, NULL);
    } else { /* as lua.c: a plain table says what it is, not its address */
      msg = lua_pushliteral(L, "(error object is a table value)");
    }
    if (tb) lua_pushfstring(L, "%s\n%s", msg, tb);
    else luaL_traceback(L, L, msg, 1);
    return 1;
  }
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  /* a string error a task raised: also where the task raised it */
  if (lua_type(L, 1) == LUA_TSTRING &&
      lua_getfield(L, LUA_REGISTRYINDEX, ALOOP_TASK_ERROR_KEY) == LUA_TTABLE &&
      lua_rawgeti(L, -1, 1) != LUA_TNIL && lua_rawequal(L, -1, 1) &&
      lua_rawgeti(L, -2, 2) == LUA_TSTRING) {
    lua_pushfstring(L, "%s\nraised in a task:\n%s", lua_tostring(L, -4), lua_tostring(L, -1));
    return 1;
  }
  lua_settop(L, 2);
  return 1;
}

static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "%s: %s\n", progname, msg ? msg : "(error object)");
    fflush(stderr);
    lua_pop(L, 1);
  }
  return status;
}

static int docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  int status = lua_pcall(L, narg, nres, base);
  lua_remove(L, base);
  return status;
}

static int dostring(lua_State *L, const char *s, const char *name) {
  int status = luaL_loadbuffer(L, s, strlen(s), name);
  if (status == LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}

static int dolibrary(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  int status = docall(L, 1, 1);
  if (status == LUA_OK) lua_setglobal(L, name);
  return report(L, status);
}

static int runrepl(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "aloop.repl");
  int status = docall(L, 1, 1);
  if (status == LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}

typedef struct Opts {
  int script;      /* index in argv of the script, or 0 */
  int interactive; /* -i */
  int version;     /* -v */
  int stdin_script;
  int has_e;
} Opts;

/* First pass: validate options, find the script, apply --debug/--backend. */
static int collectargs(char **argv, Opts *o) {
  for (int i = 1; argv[i]; i++) {
    const char *a = argv[i];
    if (a[0] != '-') {
      o->script = i;
      return 1;
    }
    if (strcmp(a, "-") == 0) {
      o->script = i;
      o->stdin_script = 1;
      return 1;
    }
    if (strcmp(a, "--") == 0) {
      if (argv[i + 1]) o->script = i + 1;
      return 1;
    }
    if (strcmp(a, "-i") == 0) o->interactive = o->version = 1;
    else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) o->version = 1;
    else if (strcmp(a, "--debug") == 0) setenv("ALOOP_DEBUG", "1", 1);
    else if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0 || strcmp(a, "--backend") == 0) {
      if (a[1] == 'e') o->has_e = 1;
      if (!argv[i + 1]) {
        fprintf(stderr, "%s: '%s' needs argument\n", progname, a);
        usage(NULL);
        return 0;
      }
      if (strcmp(a, "--backend") == 0) setenv("ALOOP_BACKEND", argv[i + 1], 1);
      i++;
    } else if (strncmp(a, "-e", 2) == 0 || strncmp(a, "-l", 2) == 0) {
      if (a[1] == 'e') o->has_e = 1; /* -estat, -lmod */
    } else {
      usage(a);
      return 0;
    }
  }
  return 1;
}

/*
** The registry's AL_SUPERVISE_KEY (lua/aloop/workers/worker.lua: app:run{workers = N}):
** supervise_self(nworkers, grace) execs this interpreter again as `argv[0] --workers N --grace S
** argv[1..]`, so the same script and arguments run as N workers under the supervisor, which
** keeps this pid. Registered only when the interpreter runs a script file without -i. Returns
** only on failure: nil and the error message.
*/
static int supervise_self(lua_State *L) {
  lua_Integer nworkers = luaL_checkinteger(L, 1);
  lua_Number grace = luaL_checknumber(L, 2);
  luaL_argcheck(L, nworkers >= 0 && nworkers <= 4096, 1, "0..4096 workers expected");
  luaL_argcheck(L, grace >= 0, 2, "a grace period >= 0 expected");
  char n[32], g[64];
  snprintf(n, sizeof n, "%d", (int)nworkers);
  snprintf(g, sizeof g, "%.17g", (double)grace);
  char **args = lua_newuserdatauv(L, sizeof *args * ((size_t)main_argc + 5), 0);
  int k = 0;
  args[k++] = main_argv[0];
  args[k++] = "--workers";
  args[k++] = n;
  args[k++] = "--grace";
  args[k++] = g;
  for (int i = 1; i < main_argc; i++) args[k++] = main_argv[i];
  args[k] = NULL;
  fflush(NULL); /* what the script printed so far is not lost with this image */
  execv("/proc/self/exe", args);
  lua_pushnil(L);
  lua_pushfstring(L, "cannot run the supervisor: %s", strerror(errno));
  return 2;
}

/* Second pass: run -e and -l in order. */
static int runargs(lua_State *L, char **argv, int upto) {
  for (int i = 1; i < upto && argv[i]; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || strcmp(a, "--") == 0 || strcmp(a, "-") == 0) break;
    if (a[1] == 'e' || a[1] == 'l') {
      const char *extra = a[2] ? a + 2 : argv[++i];
      int status = a[1] == 'e' ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
      if (status != LUA_OK) return 0;
    } else if (strcmp(a, "--backend") == 0) {
      i++;
    }
  }
  return 1;
}

static void createargtable(lua_State *L, char **argv, int argc, int script) {
  lua_createtable(L, argc - script, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = lua_touserdata(L, 2);
  Opts o = {0, 0, 0, 0, 0};
  if (argv[0] && argv[0][0]) progname = argv[0];
  if (!collectargs(argv, &o)) return 0;
  luaL_openlibs(L);
  luaL_requiref(L, "aloop", luaopen_aloop, 0);
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_aloop);
  lua_setfield(L, -2, "aloop");
#ifdef ALOOP_HAVE_LIBEDIT
  lua_pushcfunction(L, luaopen_aloop_lineedit);
  lua_setfield(L, -2, "aloop.lineedit");
#endif
  lua_pop(L, 1);
  createargtable(L, argv, argc, o.script ? o.script : 0);
  if (o.script && !o.stdin_script && !o.interactive) {
    main_argc = argc;
    main_argv = argv;
    lua_pushcfunction(L, supervise_self);
    lua_setfield(L, LUA_REGISTRYINDEX, AL_SUPERVISE_KEY);
  }
  if (o.version) {
    printf("aloop %s (%s, libev %d.%d)\n", ALOOP_VERSION, LUA_RELEASE, ev_version_major(),
           ev_version_minor());
    fflush(stdout);
  }
  if (!runargs(L, argv, o.script ? o.script : argc)) return 0;
  if (o.script) {
    const char *fname = o.stdin_script ? NULL : argv[o.script];
    int status = luaL_loadfile(L, fname);
    if (status == LUA_OK) {
      int n = 0;
      for (int i = o.script + 1; i < argc; i++, n++) lua_pushstring(L, argv[i]);
      status = docall(L, n, LUA_MULTRET);
    }
    if (report(L, status) != LUA_OK) return 0;
  }
  if (o.interactive) {
    if (runrepl(L) != LUA_OK) return 0;
  } else if (!o.script && !o.has_e && !o.version) {
    if (isatty(0)) {
      printf("aloop %s (%s)\n", ALOOP_VERSION, LUA_RELEASE);
      if (runrepl(L) != LUA_OK) return 0;
    } else { /* like lua5.4: run stdin as the script */
      int status = luaL_loadfile(L, NULL);
      if (status == LUA_OK) status = docall(L, 0, 0);
      if (report(L, status) != LUA_OK) return 0;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/*
** --workers N [--grace S] among the options before the script: the supervisor runs instead of
** Lua, with the same command line minus those options for its workers. Returns -1 without
** --workers, else the exit status.
*/
static int supervise(int argc, char **argv) {
  int nworkers = -1, bad = 0;
  double grace = DEFAULT_GRACE;
  char **wargv = calloc((size_t)argc + 1, sizeof *wargv);
  if (!wargv) return -1;
  int n = 0, i = 0;
  for (; i < argc && argv[i]; i++) {
    const char *a = argv[i];
    if (i > 0 && (a[0] != '-' || strcmp(a, "-") == 0 || strcmp(a, "--") == 0)) break;
    int workers = strcmp(a, "--workers") == 0, grace_opt = strcmp(a, "--grace") == 0;
    if (!workers && !grace_opt) {
      wargv[n++] = argv[i];
      if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0 || strcmp(a, "--backend") == 0) {
        if (i + 1 < argc) wargv[n++] = argv[++i];
      }
      continue;
    }
    char *end = NULL;
    const char *v = i + 1 < argc ? argv[++i] : NULL;
    double d = v ? strtod(v, &end) : -1;
    if (!v || end == v || *end || d < 0 || (workers && (d != (int)d || d > 4096))) {
      fprintf(stderr, "%s: '%s' needs a %s\n", progname, a,
              workers ? "number of workers (0: one per CPU)" : "number of seconds");
      bad = 1;
    } else if (workers) {
      nworkers = (int)d;
    } else {
      grace = d;
    }
  }
  int script = i < argc && strcmp(argv[i], "--") == 0 ? i + 1 : i;
  if (nworkers >= 0 && !bad && (script >= argc || strcmp(argv[script], "-") == 0)) {
    fprintf(stderr, "%s: --workers needs a script file\n", progname);
    bad = 1;
  }
  for (; i < argc; i++) wargv[n++] = argv[i];
  int status = bad ? 1 : nworkers < 0 ? -1 : al_supervise(progname, wargv, nworkers, grace);
  free(wargv);
  return status;
}

int main(int argc, char **argv) {
  if (argv[0] && argv[0][0]) progname = argv[0];
  int supervised = supervise(argc, argv);
  if (supervised >= 0) return supervised;
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "%s: cannot create state: not enough memory\n", argv[0]);
    return EXIT_FAILURE;
  }
  /* Lua's generational collector: what a server allocates per request (the received strings,
     handles, closures) dies young and is freed by minor collections that do not traverse the
     whole heap. Measured (bench/RESULTS.md, issue 18): a 16 KiB streams round trip -31 %
     instructions, task spawn -7 %, the same peak RSS. collectgarbage("incremental") undoes it. */
  lua_gc(L, LUA_GCGEN, 0, 0);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 0);
  int ok = status == LUA_OK && lua_toboolean(L, -1);
  report(L, status);
  lua_close(L);
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
