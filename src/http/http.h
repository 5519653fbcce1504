/*
** The HTTP/1.1 layer's C half (aloop.http): an incremental message parser over http-parser and
** the serialisers of request and response heads. Lua sees them as core._http (http/init.lua).
** The parser is the only file that knows http-parser: llhttp can replace it behind this seam.
*/
#ifndef ALOOP_HTTP_H
#define ALOOP_HTTP_H

#include "core/internal.h"

/* Adds core._http = {parser=, headers=, response=, request=, chunk=, date=} to the core table
   (at index core; module.c's list of parts calls it). */
void al_http_open(lua_State *L, int core);

/* The parts al_http_open opens (each adds its functions to the table on top). */
void al_http_parser_open(lua_State *L);
void al_http_serialize_open(lua_State *L);

#endif
