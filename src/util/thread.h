/*
** Thread creation for every background thread of aloop (DNS workers, executor workers, remote
** loops, the reaper): signals blocked, library pinned. No Lua inside.
*/
#ifndef ALOOP_UTIL_THREAD_H
#define ALOOP_UTIL_THREAD_H

#include <pthread.h>
#include <stddef.h>

enum { AL_THREAD_JOINABLE = 0, AL_THREAD_DETACHED = 1 };

/*
** Starts fn(arg) on a new thread with every signal blocked from its first instruction (a
** process-wide signal such as SIGINT is then delivered to the loop's thread, never here), after
** pinning the library against dlclose. stack is the stack size in bytes, or 0 for the default.
** Returns 0 or an errno value, as pthread_create.
*/
int al_thread_create(pthread_t *th, int detached, size_t stack, void *(*fn)(void *), void *arg);

#endif
