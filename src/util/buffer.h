/*
** The byte buffer of the whole project: a malloc'd, growable array whose data is
** p[off .. off+len). Writers append at the tail (al_buf_reserve, then write at al_buf_tail and
** add to len); readers take from the front (al_buf_consume), which only moves off, so
** consuming costs nothing and the data slides back to the front only when the tail needs room.
** Code that only appends and hands the bytes over (marshalled values) keeps off at 0. No Lua.
*/
#ifndef ALOOP_BUFFER_H
#define ALOOP_BUFFER_H

#include <stddef.h>

typedef struct al_Buf {
  char *p;
  size_t off, len, cap;
} al_Buf;

void al_buf_free(al_Buf *b); /* frees the bytes; the buffer is empty and usable again */
int al_buf_reserve(al_Buf *b, size_t n); /* room for n more bytes at the tail; 0: out of memory */
int al_buf_append(al_Buf *b, const void *p, size_t n); /* 0: out of memory */
void al_buf_consume(al_Buf *b, size_t n); /* drops n bytes from the front */

/* A buffer never grown has p == NULL: no offset is added to it then (undefined behaviour). */
static inline char *al_buf_data(const al_Buf *b) { return b->p ? b->p + b->off : b->p; }
static inline char *al_buf_tail(const al_Buf *b) { return b->p ? b->p + b->off + b->len : b->p; }

#endif
