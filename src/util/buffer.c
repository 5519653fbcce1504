/* The project's byte buffer (util/buffer.h): growth, appending, consuming from the front. */
#include <stdlib.h>
#include <string.h>

#include "util/buffer.h"

#define MIN_CAP 64

void al_buf_free(al_Buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

int al_buf_reserve(al_Buf *b, size_t n) {
  if (b->off + b->len + n <= b->cap) return 1;
  if (b->off > 0) { /* slide the data to the front first */
    memmove(b->p, b->p + b->off, b->len);
    b->off = 0;
    if (b->len + n <= b->cap) return 1;
  }
  if (n > (size_t)-1 / 2 - b->len) return 0;
  size_t cap = b->cap ? b->cap : MIN_CAP;
  while (cap < b->len + n) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return 0;
  b->p = p;
  b->cap = cap;
  return 1;
}

int al_buf_append(al_Buf *b, const void *p, size_t n) {
  if (!al_buf_reserve(b, n)) return 0;
  if (n) memcpy(al_buf_tail(b), p, n);
  b->len += n;
  return 1;
}

void al_buf_consume(al_Buf *b, size_t n) {
  b->off += n;
  b->len -= n;
  if (b->len == 0) b->off = 0;
}
