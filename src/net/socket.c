/*
** Socket objects (aio.socket: socket, socketpair; :fileno, :send, :recv, :close, :getsockname …),
** addresses ({host, port} tables; a path string for Unix sockets) and address resolution for
** literal hosts and "localhost". Every fd is non-blocking and close-on-exec.
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/net.h"

static const char key_addr = 0; /* registry: the metatable of address tables */

/* ---------------------------------------------------------------------------------------- */
/* Addresses. */

static int addr_tostring(lua_State *L) {
  lua_rawgeti(L, 1, 1);
  lua_rawgeti(L, 1, 2);
  const char *host = luaL_optstring(L, -2, "?");
  if (strchr(host, ':')) lua_pushfstring(L, "[%s]:%s", host, luaL_optstring(L, -1, "?"));
  else lua_pushfstring(L, "%s:%s", host, luaL_optstring(L, -1, "?"));
  return 1;
}

/* Pushes {host, port} (inet) or the path (unix; "" when unnamed). */
void al_push_sockaddr(lua_State *L, const struct sockaddr *sa, socklen_t len) {
  char host[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_UNIX) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t n = len > off ? len - off : 0;
    if (n > 0 && un->sun_path[0]) n = strnlen(un->sun_path, n);
    lua_pushlstring(L, un->sun_path, n);
    return;
  }
  int port;
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
  } else {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
  }
  lua_createtable(L, 2, 0);
  lua_pushstring(L, host);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, port);
  lua_rawseti(L, -2, 2);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_addr);
  lua_setmetatable(L, -2);
}

int al_socket_push_name(lua_State *L, int fd, int peer) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
               : getsockname(fd, (struct sockaddr *)&ss, &len);
  if (r < 0) {
    lua_pushnil(L);
    return errno;
  }
  al_push_sockaddr(L, (struct sockaddr *)&ss, len);
  return 0;
}

/*
** The address at idx as a sockaddr for `family`: a path string (AF_UNIX) or {host, port} with a
** literal host ("localhost" is 127.0.0.1 or ::1). Raises OSError for a bad address.
*/
/* An optional port number at idx (default 0), range-checked: ports do not wrap. */
static int optport(lua_State *L, int idx) {
  lua_Integer port = luaL_optinteger(L, idx, 0);
  if (port < 0 || port > 65535)
    return luaL_error(L, "aloop: port out of range (0-65535): %I", (LUAI_UACINT)port);
  return (int)port;
}

socklen_t al_check_sockaddr(lua_State *L, int idx, int family, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (family == AF_UNIX) {
    size_t n;
    const char *path = luaL_checklstring(L, idx, &n);
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    if (n >= sizeof un->sun_path) return al_oserror_raise(L, ENAMETOOLONG, path);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (n && path[0] ? 1 : 0));
  }
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_rawgeti(L, idx, 1);
  lua_rawgeti(L, idx, 2);
  const char *host = lua_isnil(L, -2) ? "" : luaL_checkstring(L, -2);
  int port = optport(L, -1);
  if (strcmp(host, "localhost") == 0) host = family == AF_INET6 ? "::1" : "127.0.0.1";
  socklen_t len;
  int ok;
  if (family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    ok = !*host || inet_pton(AF_INET6, host, &in6->sin6_addr) == 1;
    len = sizeof *in6;
  } else {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    ok = !*host || inet_pton(AF_INET, host, &in->sin_addr) == 1;
    len = sizeof *in;
  }
  if (!ok) {
    al_error_push(L, "OSError", lua_pushfstring(L, "bad address for this socket family: %s", host));
    lua_pushinteger(L, EINVAL);
    lua_setfield(L, -2, "errno");
    lua_error(L);
  }
  lua_pop(L, 2);
  return len;
}

static int family_of(lua_State *L, int idx, int def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (lua_isinteger(L, idx)) return (int)lua_tointeger(L, idx);
  const char *s = luaL_checkstring(L, idx);
  if (!strcmp(s, "inet")) return AF_INET;
  if (!strcmp(s, "inet6")) return AF_INET6;
  if (!strcmp(s, "unix")) return AF_UNIX;
  return luaL_argerror(L, idx, "family: inet, inet6 or unix");
}

/*
** getaddrinfo arguments at first..first+4 (host, port, family, type, passive) as hints, a host
** (NULL: any) and a port string. Returns 1 when no lookup is needed: no host, a literal
** address, or "localhost" (127.0.0.1, or ::1 for inet6); 0 when a resolver must be asked.
*/
int al_gai_prepare(lua_State *L, int first, struct addrinfo *hints, const char **host,
                   char port[16]) {
  *host = luaL_optstring(L, first, NULL);
  snprintf(port, 16, "%d", optport(L, first + 1));
  int family = family_of(L, first + 2, AF_UNSPEC);
  memset(hints, 0, sizeof *hints);
  hints->ai_family = family;
  hints->ai_socktype = (int)luaL_optinteger(L, first + 3, SOCK_STREAM);
  hints->ai_flags = lua_toboolean(L, first + 4) ? AI_PASSIVE : 0;
  if (*host && !**host) *host = NULL;
  if (!*host) return 1;
  if (strcmp(*host, "localhost") == 0) *host = family == AF_INET6 ? "::1" : "127.0.0.1";
  struct in6_addr tmp;
  if (inet_pton(AF_INET, *host, &tmp) == 1 || inet_pton(AF_INET6, *host, &tmp) == 1) {
    hints->ai_flags |= AI_NUMERICHOST;
    return 1;
  }
  hints->ai_flags |= AI_ADDRCONFIG;
  return 0;
}

/* getaddrinfo(3), retried without AI_ADDRCONFIG when that alone makes it fail. */
int al_gai_call(const char *host, const char *port, struct addrinfo *hints, struct addrinfo **res) {
  int r = getaddrinfo(host, port, hints, res);
  if ((r == EAI_ADDRFAMILY || r == EAI_NONAME) && (hints->ai_flags & AI_ADDRCONFIG)) {
    hints->ai_flags &= ~AI_ADDRCONFIG;
    r = getaddrinfo(host, port, hints, res);
  }
  return r;
}

/* Pushes the OSError for getaddrinfo/getnameinfo error r (EAI_*), with .gai_error. */
void al_gai_error(lua_State *L, int r, const char *what) {
  lua_pushfstring(L, "[Errno %d] %s: %s", r, gai_strerror(r), what ? what : "(any)");
  al_error_push(L, "OSError", lua_tostring(L, -1));
  lua_remove(L, -2);
  lua_pushinteger(L, r);
  lua_setfield(L, -2, "gai_error");
  lua_pushstring(L, gai_strerror(r));
  lua_setfield(L, -2, "strerror");
}

/* Pushes the list {family=, type=, addr=} of the inet results. */
void al_gai_push(lua_State *L, const struct addrinfo *res) {
  lua_newtable(L);
  int n = 0;
  for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, ai->ai_family);
    lua_setfield(L, -2, "family");
    lua_pushinteger(L, ai->ai_socktype);
    lua_setfield(L, -2, "type");
    al_push_sockaddr(L, ai->ai_addr, ai->ai_addrlen);
    lua_setfield(L, -2, "addr");
    lua_rawseti(L, -2, ++n);
  }
}

/*
** core._getaddrinfo(host, port, family, type, passive): the list {family, type, addr} for
** what resolves without a lookup (see al_gai_prepare), else nil: then the DNS threads resolve
** it (dns.c). Raises OSError (with .gai_error).
*/
static int l_getaddrinfo(lua_State *L) {
  struct addrinfo hints, *res = NULL;
  const char *host;
  char port[16];
  if (!al_gai_prepare(L, 1, &hints, &host, port)) return 0;
  int r = al_gai_call(host, port, &hints, &res);
  if (r != 0) {
    al_gai_error(L, r, host);
    return lua_error(L);
  }
  al_gai_push(L, res);
  freeaddrinfo(res);
  return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Socket objects. */

al_Socket *al_socket_check(lua_State *L, int idx) {
  return AL_CHECKUDATA(L, idx, al_Socket, AL_SOCKET_MAGIC, AL_SOCKET_MT);
}

static al_Socket *checkopen(lua_State *L, int idx) {
  al_Socket *s = al_socket_check(L, idx);
  if (s->fd < 0) al_oserror_raise(L, EBADF, "socket is closed");
  return s;
}

al_Socket *al_socket_new(lua_State *L, int fd, int family, int type) {
  al_Socket *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->fd = fd;
  s->family = family;
  s->type = type;
  s->owned = 0;
  s->magic = AL_SOCKET_MAGIC;
  luaL_setmetatable(L, AL_SOCKET_MT);
  return s;
}

void al_socket_close(al_Socket *s) {
  if (s->fd < 0) return;
  close(s->fd); /* not retried on EINTR: on Linux the fd is gone either way */
  s->fd = -1;
}

/* sock:close(). A transport's socket is refused: its fd number would go to the next socket
   while the transport still reads and writes it (asyncio hands out a guarded socket too). */
static int sock_close(lua_State *L) {
  al_Socket *s = al_socket_check(L, 1);
  if (s->owned && s->fd >= 0)
    return luaL_error(L, "aloop: this socket belongs to a transport: close the transport instead");
  al_socket_close(s);
  return 0;
}

/* aio.socket.socket(family, type): a non-blocking, close-on-exec socket. */
static int l_socket(lua_State *L) {
  int family = family_of(L, 1, AF_INET);
  int type = (int)luaL_optinteger(L, 2, SOCK_STREAM);
  al_Socket *s = al_socket_new(L, -1, family, type);
  s->fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd < 0) return al_oserror_raise(L, errno, "socket");
  return 1;
}

/* aio.socket.socketpair([family [, type]]): two connected non-blocking sockets. */
static int l_socketpair(lua_State *L) {
  int family = family_of(L, 1, AF_UNIX);
  int type = (int)luaL_optinteger(L, 2, SOCK_STREAM);
  al_Socket *a = al_socket_new(L, -1, family, type);
  al_Socket *b = al_socket_new(L, -1, family, type);
  int sv[2];
  if (socketpair(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
    return al_oserror_raise(L, errno, "socketpair");
  a->fd = sv[0];
  b->fd = sv[1];
  return 2;
}

static int sock_fileno(lua_State *L) {
  lua_pushinteger(L, al_socket_check(L, 1)->fd);
  return 1;
}

static int sock_name(lua_State *L, int peer) {
  al_Socket *s = checkopen(L, 1);
  int err = al_socket_push_name(L, s->fd, peer);
  if (err) return al_oserror_raise(L, err, peer ? "getpeername" : "getsockname");
  return 1;
}
static int sock_getsockname(lua_State *L) { return sock_name(L, 0); }
static int sock_getpeername(lua_State *L) { return sock_name(L, 1); }

static int sock_setblocking(lua_State *L) {
  al_Socket *s = checkopen(L, 1);
  int fl = fcntl(s->fd, F_GETFL);
  fl = lua_toboolean(L, 2) ? (fl & ~O_NONBLOCK) : (fl | O_NONBLOCK);
  if (fcntl(s->fd, F_SETFL, fl) < 0) return al_oserror_raise(L, errno, "setblocking");
  return 0;
}

/*
** send/sendto: bytes sent from data[i..] now (0 when the socket buffer is full). With an address
** at index 4 (sendto), to that address.
*/
static int send_common(lua_State *L, int to) {
  al_Socket *s = checkopen(L, 1);
  size_t len;
  const char *p = luaL_checklstring(L, 2, &len);
  struct sockaddr_storage ss;
  socklen_t slen = to ? al_check_sockaddr(L, 3, s->family, &ss) : 0;
  size_t i = to ? 1 : (size_t)luaL_optinteger(L, 3, 1);
  if (i < 1) i = 1;
  if (i > len + 1) i = len + 1;
  ssize_t n;
  do n = sendto(s->fd, p + i - 1, len - (i - 1), MSG_NOSIGNAL, to ? (struct sockaddr *)&ss : NULL,
                slen);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) n = 0;
    else return al_oserror_raise(L, errno, to ? "sendto" : "send");
  }
  lua_pushinteger(L, n);
  return 1;
}

/* s:send(data [, i]) */
static int sock_send(lua_State *L) { return send_common(L, 0); }
/* s:sendto(data, addr): datagram sockets */
static int sock_sendto(lua_State *L) { return send_common(L, 1); }

/*
** recv/recvfrom: up to n bytes ("" at the end of a stream), or nil when nothing is available
** now; recvfrom also returns the sender's address.
*/
static int recv_common(lua_State *L, int from) {
  al_Socket *s = checkopen(L, 1);
  lua_Integer max = luaL_optinteger(L, 2, AL_READ_SIZE);
  luaL_argcheck(L, max > 0 && max <= (1 << 26), 2, "size out of range");
  struct sockaddr_storage ss;
  socklen_t slen = sizeof ss;
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)max);
  ssize_t n;
  do n = recvfrom(s->fd, p, (size_t)max, 0, from ? (struct sockaddr *)&ss : NULL,
                  from ? &slen : NULL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      lua_pushnil(L);
      return 1;
    }
    return al_oserror_raise(L, errno, from ? "recvfrom" : "recv");
  }
  luaL_pushresultsize(&b, (size_t)n);
  if (!from) return 1;
  al_push_sockaddr(L, (struct sockaddr *)&ss, slen);
  return 2;
}

static int sock_recv(lua_State *L) { return recv_common(L, 0); }
static int sock_recvfrom(lua_State *L) { return recv_common(L, 1); }

/* What a newcomer needs after EADDRINUSE: the ways out, and what the reuse options do. */
#define ADDRINUSE_HINT                                                                          \
  " (something already listens there: stop it, or use another port (0 picks a free one); "     \
  "reuse_port = true lets listeners that all set it share the port; reuse_address, on by "     \
  "default in create_server, only reuses a port left in TIME_WAIT)"

static int sock_bind(lua_State *L) {
  al_Socket *s = checkopen(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = al_check_sockaddr(L, 2, s->family, &ss);
  if (bind(s->fd, (struct sockaddr *)&ss, len) < 0) {
    int err = errno;
    lua_pushvalue(L, 2);
    if (lua_istable(L, 2)) lua_pushstring(L, luaL_tolstring(L, -1, NULL));
    return al_oserror_raise(L, err, lua_pushfstring(L, "bind %s%s", lua_tostring(L, -1),
                                                    err == EADDRINUSE && s->family != AF_UNIX ? ADDRINUSE_HINT : ""));
  }
  return 0;
}

static int sock_listen(lua_State *L) {
  al_Socket *s = checkopen(L, 1);
  if (listen(s->fd, (int)luaL_optinteger(L, 2, 100)) < 0)
    return al_oserror_raise(L, errno, "listen");
  return 0;
}

/* s:connect_ex(addr): 0, or the errno of the non-blocking connect (EINPROGRESS: wait writable). */
static int sock_connect_ex(lua_State *L) {
  al_Socket *s = checkopen(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = al_check_sockaddr(L, 2, s->family, &ss);
  int r;
  do r = connect(s->fd, (struct sockaddr *)&ss, len);
  while (r < 0 && errno == EINTR);
  lua_pushinteger(L, r < 0 ? errno : 0);
  return 1;
}

/* s:accept(): a new socket and the peer address, or nil, errno when none is waiting. */
static int sock_accept(lua_State *L) {
  al_Socket *s = checkopen(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  al_Socket *c = al_socket_new(L, -1, s->family, s->type);
  int fd;
  do fd = accept4(s->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ECONNABORTED) {
      lua_pushnil(L);
      lua_pushinteger(L, err);
      return 2;
    }
    return al_oserror_raise(L, err, "accept");
  }
  c->fd = fd;
  al_push_sockaddr(L, (struct sockaddr *)&ss, len);
  return 2;
}

/* s:getsockopt_error(): the pending error (SO_ERROR) as an errno, 0 if none. */
static int sock_so_error(lua_State *L) {
  al_Socket *s = checkopen(L, 1);
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  lua_pushinteger(L, err);
  return 1;
}

/* s:setoption(name, bool|int): reuse_address, reuse_port, broadcast, v6only, nodelay, keepalive. */
static int sock_setoption(lua_State *L) {
  static const char *const names[] = {"reuse_address", "reuse_port", "broadcast", "v6only",
                                      "nodelay", "keepalive", NULL};
  static const int levels[] = {SOL_SOCKET, SOL_SOCKET, SOL_SOCKET, IPPROTO_IPV6, IPPROTO_TCP,
                               SOL_SOCKET};
  static const int opts[] = {SO_REUSEADDR, SO_REUSEPORT, SO_BROADCAST, IPV6_V6ONLY, TCP_NODELAY,
                             SO_KEEPALIVE};
  al_Socket *s = checkopen(L, 1);
  int i = luaL_checkoption(L, 2, NULL, names);
  int v = lua_isinteger(L, 3) ? (int)lua_tointeger(L, 3) : lua_toboolean(L, 3);
  if (setsockopt(s->fd, levels[i], opts[i], &v, sizeof v) < 0)
    return al_oserror_raise(L, errno, names[i]);
  return 0;
}

/* s:shutdown(how): "r", "w" or "rw". */
static int sock_shutdown(lua_State *L) {
  al_Socket *s = checkopen(L, 1);
  const char *how = luaL_optstring(L, 2, "rw");
  int h = !strcmp(how, "r") ? SHUT_RD : !strcmp(how, "w") ? SHUT_WR : SHUT_RDWR;
  if (shutdown(s->fd, h) < 0) return al_oserror_raise(L, errno, "shutdown");
  return 0;
}

static int sock_family(lua_State *L) {
  al_Socket *s = al_socket_check(L, 1);
  lua_pushinteger(L, s->family);
  lua_pushinteger(L, s->type);
  return 2;
}

/* s:detach(): gives up the fd (returned) without closing it. */
static int sock_detach(lua_State *L) {
  al_Socket *s = al_socket_check(L, 1);
  lua_pushinteger(L, s->fd);
  s->fd = -1;
  return 1;
}

static int sock_tostring(lua_State *L) {
  al_Socket *s = al_socket_check(L, 1);
  lua_pushfstring(L, "<aloop.Socket fd=%d family=%d type=%d>", s->fd, s->family, s->type);
  return 1;
}

static const luaL_Reg sock_methods[] = {
    {"fileno", sock_fileno},       {"close", sock_close},
    {"getsockname", sock_getsockname}, {"getpeername", sock_getpeername},
    {"setblocking", sock_setblocking}, {"send", sock_send},
    {"recv", sock_recv},           {"sendto", sock_sendto},
    {"recvfrom", sock_recvfrom},   {"bind", sock_bind},
    {"listen", sock_listen},       {"connect_ex", sock_connect_ex},
    {"accept", sock_accept},       {"so_error", sock_so_error},
    {"setoption", sock_setoption}, {"shutdown", sock_shutdown},
    {"family", sock_family},       {"detach", sock_detach},
    {NULL, NULL},
};

/*
** core._fdobj(pipe): a socket object owning a non-blocking, close-on-exec duplicate of the fd of
** `pipe` (an integer, a Lua file such as io.stdin, or an object with :fileno()), for pipe
** transports: closing the transport never closes the caller's file.
*/
static int l_fdobj(lua_State *L) {
  int fd = al_checkfd(L, 1);
  al_Socket *s = al_socket_new(L, -1, 0, 0);
  s->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (s->fd < 0) return al_oserror_raise(L, errno, "dup");
  int fl = fcntl(s->fd, F_GETFL);
  if (fl < 0 || fcntl(s->fd, F_SETFL, fl | O_NONBLOCK) < 0) return al_oserror_raise(L, errno, "fcntl");
  return 1;
}

/* core._oserror(errno, what): a new OSError object (the subclass for that errno). */
static int l_oserror(lua_State *L) {
  al_oserror_push(L, (int)luaL_checkinteger(L, 1), luaL_optstring(L, 2, NULL));
  return 1;
}

/* ---------------------------------------------------------------------------------------- */

static const luaL_Reg sock_meta[] = {
    {"__gc", sock_close},
    {"__close", sock_close},
    {"__tostring", sock_tostring},
    {NULL, NULL},
};

void al_socket_open(lua_State *L, int core) {
  al_new_class(L, AL_SOCKET_MT, sock_methods, sock_meta);
  lua_pop(L, 2);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, addr_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &key_addr);

  lua_createtable(L, 0, 8); /* core.socket */
  lua_pushcfunction(L, l_socket);
  lua_setfield(L, -2, "socket");
  lua_pushcfunction(L, l_socketpair);
  lua_setfield(L, -2, "socketpair");
  static const struct { const char *n; int v; } consts[] = {
      {"AF_INET", AF_INET}, {"AF_INET6", AF_INET6}, {"AF_UNIX", AF_UNIX},
      {"AF_UNSPEC", AF_UNSPEC}, {"SOCK_STREAM", SOCK_STREAM}, {"SOCK_DGRAM", SOCK_DGRAM},
      {"EINPROGRESS", EINPROGRESS}, {"EAGAIN", EAGAIN}, {NULL, 0}};
  for (int i = 0; consts[i].n; i++) {
    lua_pushinteger(L, consts[i].v);
    lua_setfield(L, -2, consts[i].n);
  }
  lua_setfield(L, core, "socket");
  lua_pushcfunction(L, l_getaddrinfo);
  lua_setfield(L, core, "_getaddrinfo");
  lua_pushcfunction(L, l_oserror);
  lua_setfield(L, core, "_oserror");
  lua_pushcfunction(L, l_fdobj);
  lua_setfield(L, core, "_fdobj");
}
