/*
** The one way aloop starts a background thread (see thread.h): the new thread inherits a mask
** with every signal blocked (set around pthread_create, so no signal can land on it before it
** runs), and the first thread pins the library so that lua_close's dlclose cannot unmap code a
** thread is still running.
*/
#define _GNU_SOURCE /* dladdr */
#include "util/thread.h"

#include <dlfcn.h>
#include <signal.h>

/*
** Background threads run code of this library. When it is a module that lua_close() would
** dlclose(), a thread still finishing after that would jump into unmapped memory: so the first
** thread pins the library (RTLD_NODELETE).
*/
static void pin_library(void) {
  Dl_info info;
  if (dladdr((void *)&pin_library, &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

int al_thread_create(pthread_t *th, int detached, size_t stack, void *(*fn)(void *), void *arg) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, pin_library);
  pthread_attr_t attr;
  int err = pthread_attr_init(&attr);
  if (err) return err;
  if (detached) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (stack) pthread_attr_setstacksize(&attr, stack);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  err = pthread_create(th, &attr, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  return err;
}
