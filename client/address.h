/* The client's side of an address: the [HOST:]PORT operand, resolving it,
 * and connecting. The servers never need these (they listen), so they live
 * here rather than in common/. */
#ifndef IOMODELS_CLIENT_ADDRESS_H
#define IOMODELS_CLIENT_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <netdb.h>

/* Parses "[HOST:]PORT", "[v6addr]:PORT" or "v6addr:PORT" (last colon wins).
 * host defaults to 127.0.0.1. Returns false on a malformed argument. */
bool parse_host_port(const char *arg, char *host, size_t host_len, char *port, size_t port_len);

/* getaddrinfo for a TCP stream to host:port, IPv4 or IPv6. Returns the list
 * (freeaddrinfo it), or NULL with "HOST:PORT: reason" in err. */
struct addrinfo *resolve_address(const char *host, const char *port, char *err, size_t err_len);

/* Connects to host:port, trying each address in turn (a blocking connect;
 * nonblocking applies afterwards), TCP_NODELAY on. Returns the descriptor,
 * or -1 with a message in err. */
int connect_to(const char *host, const char *port, bool nonblocking, char *err, size_t err_len);

#endif
