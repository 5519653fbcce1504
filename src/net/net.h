/*
** Declarations shared by the networking files (socket.c, server.c, dns.c and the transports):
** socket objects and addresses, making transports, listeners. The transport object itself and
** its filter seam are in transport.h, the StreamReader's buffer in stream_reader.h.
*/
#ifndef ALOOP_NET_H
#define ALOOP_NET_H

#include <sys/socket.h>

#include "core/internal.h"

#define AL_SOCKET_MT "aloop.Socket"
#define AL_TRANSPORT_MT "aloop.Transport"
#define AL_LISTENER_MT "aloop.Listener"

/* A socket object owns its fd: it is closed exactly once, by :close(), __close or __gc. */
typedef struct al_Socket {
  int fd; /* -1 once closed */
  int family, type;
  unsigned char owned; /* a transport owns the fd: only the transport closes it */
} al_Socket;

/* io.c */
int al_checkfd(lua_State *L, int idx); /* integer, Lua file or object with :fileno() */

/* socket.c */
al_Socket *al_socket_check(lua_State *L, int idx);
al_Socket *al_socket_new(lua_State *L, int fd, int family, int type); /* pushes it */
void al_socket_close(al_Socket *s);
int al_socket_push_name(lua_State *L, int fd, int peer); /* pushes an address or nil */
void al_push_sockaddr(lua_State *L, const struct sockaddr *sa, socklen_t len);
socklen_t al_check_sockaddr(lua_State *L, int idx, int family, struct sockaddr_storage *ss);
struct addrinfo;
int al_gai_prepare(lua_State *L, int first, struct addrinfo *hints, const char **host,
                   char port[16]);
int al_gai_call(const char *host, const char *port, struct addrinfo *hints, struct addrinfo **res);
void al_gai_error(lua_State *L, int r, const char *what);
void al_gai_push(lua_State *L, const struct addrinfo *res);
void al_socket_open(lua_State *L, int core);

/* transport.c: kinds of transport */
enum { AL_TR_SOCK, AL_TR_PIPE, AL_TR_DGRAM, AL_TR_DGRAM_CONNECTED /* with a remote address */ };
void al_transport_create(lua_State *L, al_Loop *loop, int loopidx, int sockidx, int protoidx,
                         int kind);
void al_transport_open(lua_State *L, int core);

/* dns.c */
void al_dns_open(lua_State *L, int core);

/* server.c */
void al_server_open(lua_State *L, int core);

#endif
