/*
** The workers layer: a process's side of `aloop --workers N` (worker.c). The supervisor itself
** is part of the interpreter (src/supervisor.c); control.h is the protocol between them.
*/
#ifndef ALOOP_WORKERS_H
#define ALOOP_WORKERS_H

#include "core/internal.h"

void al_worker_open(lua_State *L, int core); /* core._worker, core._worker_listen, ... */

#endif
