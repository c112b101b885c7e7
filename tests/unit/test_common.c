/* Unit tests of common/: the pieces every server trusts. */
#include "buffer.h"
#include "echo.h"
#include "net.h"
#include "options.h"
#include "stats.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

UNIT_TEST(parse_host_port_forms)
{
    char host[64], port[8];
    REQUIRE(parse_host_port("8000", host, sizeof host, port, sizeof port));
    CHECK(strcmp(host, "127.0.0.1") == 0 && strcmp(port, "8000") == 0);
    REQUIRE(parse_host_port("localhost:9", host, sizeof host, port, sizeof port));
    CHECK(strcmp(host, "localhost") == 0 && strcmp(port, "9") == 0);
    REQUIRE(parse_host_port("[::1]:8000", host, sizeof host, port, sizeof port));
    CHECK(strcmp(host, "::1") == 0 && strcmp(port, "8000") == 0);
    REQUIRE(parse_host_port("::1:8000", host, sizeof host, port, sizeof port));
    CHECK(strcmp(host, "::1") == 0);
    CHECK(!parse_host_port("", host, sizeof host, port, sizeof port));
    CHECK(!parse_host_port("host:", host, sizeof host, port, sizeof port));
    CHECK(!parse_host_port(":80", host, sizeof host, port, sizeof port));
    CHECK(!parse_host_port("70000", host, sizeof host, port, sizeof port));
    CHECK(!parse_host_port("12ab", host, sizeof host, port, sizeof port));
}

UNIT_TEST(parse_long_bounds)
{
    long v = 0;
    CHECK(parse_long("42", 0, 100, &v) && v == 42);
    CHECK(!parse_long("101", 0, 100, &v));
    CHECK(!parse_long("-1", 0, 100, &v));
    CHECK(!parse_long("4x", 0, 100, &v));
    CHECK(!parse_long("", 0, 100, &v));
    CHECK(!parse_long("99999999999999999999999", 0, 100, &v));
}

UNIT_TEST(find_choice_exact)
{
    static const char *const apis[] = {"select", "poll", "epoll", NULL};
    CHECK(find_choice("poll", apis) == 1);
    CHECK(find_choice("pol", apis) == -1);
    CHECK(find_choice("EPOLL", apis) == -1);
}

UNIT_TEST(buffer_pool_reuses_and_bounds)
{
    struct buffer_pool pool;
    buffer_pool_init(&pool, 1);
    struct buffer *a = buffer_get(&pool), *b = buffer_get(&pool);
    REQUIRE(a && b && a != b);
    CHECK(pool.in_use == 2);
    buffer_put(&pool, a);
    buffer_put(&pool, b); /* beyond keep_at_most: freed */
    CHECK(pool.free_count == 1 && pool.in_use == 0);
    struct buffer *c = buffer_get(&pool);
    CHECK(c == b || c == a);
    CHECK(c->start == 0 && c->end == 0);
    buffer_put(&pool, c);
    buffer_pool_destroy(&pool);
    CHECK(pool.free_count == 0);
}

UNIT_TEST(buffer_consume_and_compact)
{
    struct buffer_pool pool;
    buffer_pool_init(&pool, 0);
    struct buffer *buf = buffer_get(&pool);
    REQUIRE(buf);
    memcpy(buf->data, "hello", 5);
    buf->end = 5;
    buffer_consume(buf, 2);
    CHECK(buffer_pending(buf) == 3 && buf->start == 2);
    buffer_compact(buf);
    CHECK(buf->start == 0 && buf->end == 3 && memcmp(buf->data, "llo", 3) == 0);
    buffer_consume(buf, 3);
    CHECK(buf->start == 0 && buf->end == 0);
    buffer_put(&pool, buf);
    buffer_pool_destroy(&pool);
}

/* The echo state machine over a socketpair: no server, no timing. */
static int nonblocking_pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return -1;
    return set_nonblocking(sv[0]);
}

UNIT_TEST(echo_pump_echoes_and_returns_buffer)
{
    int sv[2];
    REQUIRE(nonblocking_pair(sv) == 0);
    struct buffer_pool pool;
    buffer_pool_init(&pool, 4);
    struct server_stats *stats = stats_create();
    struct echo_conn conn;
    echo_init(&conn, sv[0], "test");

    CHECK(echo_pump(&conn, &pool, stats, false) == ECHO_WANT_READ); /* EAGAIN: nothing yet */
    CHECK(conn.buf == NULL);
    REQUIRE(write(sv[1], "ping", 4) == 4);
    CHECK(echo_pump(&conn, &pool, stats, false) == ECHO_WANT_READ);
    char got[8] = {0};
    CHECK(read(sv[1], got, sizeof got) == 4 && memcmp(got, "ping", 4) == 0);
    CHECK(conn.buf == NULL && pool.in_use == 0);
    CHECK(atomic_load(&stats->messages) == 1 && atomic_load(&stats->bytes) == 4);

    close(sv[1]);
    CHECK(echo_pump(&conn, &pool, stats, true) == ECHO_CLOSE);
    CHECK(conn.error == 0 && conn.peer_closed);
    echo_close(&conn, &pool);
    buffer_pool_destroy(&pool);
}

UNIT_TEST(echo_pump_backpressure_stops_reading)
{
    int sv[2];
    REQUIRE(nonblocking_pair(sv) == 0);
    REQUIRE(set_nonblocking(sv[1]) == 0);
    struct buffer_pool pool;
    buffer_pool_init(&pool, 4);
    struct server_stats *stats = stats_create();
    struct echo_conn conn;
    echo_init(&conn, sv[0], "test");

    /* The peer writes far more than it reads: the server side fills the
     * peer's receive queue, then its own buffer, then stops reading. */
    static unsigned char chunk[65536];
    int want = 0;
    for (int round = 0; round < 200; round++) {
        while (write(sv[1], chunk, sizeof chunk) > 0)
            ;
        want = echo_pump(&conn, &pool, stats, true);
        if (!(want & ECHO_WANT_READ))
            break;
    }
    CHECK(want == ECHO_WANT_WRITE);
    CHECK(conn.buf && buffer_room(conn.buf) == 0);
    CHECK(pool.in_use == 1);
    echo_close(&conn, &pool);
    close(sv[1]);
    buffer_pool_destroy(&pool);
}

UNIT_TEST(echo_pump_half_close_finishes_echo)
{
    int sv[2];
    REQUIRE(nonblocking_pair(sv) == 0);
    struct buffer_pool pool;
    buffer_pool_init(&pool, 4);
    struct server_stats *stats = stats_create();
    struct echo_conn conn;
    echo_init(&conn, sv[0], "test");

    REQUIRE(write(sv[1], "bye", 3) == 3);
    REQUIRE(shutdown(sv[1], SHUT_WR) == 0);
    CHECK(echo_pump(&conn, &pool, stats, true) == ECHO_CLOSE);
    char got[8] = {0};
    CHECK(read(sv[1], got, sizeof got) == 3 && memcmp(got, "bye", 3) == 0);
    echo_close(&conn, &pool);
    close(sv[1]);
    buffer_pool_destroy(&pool);
}

UNIT_TEST(echo_pump_reports_reset)
{
    int sv[2];
    REQUIRE(nonblocking_pair(sv) == 0);
    struct buffer_pool pool;
    buffer_pool_init(&pool, 4);
    struct server_stats *stats = stats_create();
    struct echo_conn conn;
    echo_init(&conn, sv[0], "test");

    REQUIRE(write(sv[1], "x", 1) == 1);
    close(sv[1]); /* writing back to a closed peer: EPIPE, never SIGPIPE's death */
    signal(SIGPIPE, SIG_IGN);
    CHECK(echo_pump(&conn, &pool, stats, true) == ECHO_CLOSE);
    CHECK(conn.error == EPIPE || conn.error == ECONNRESET || conn.peer_closed);
    echo_close(&conn, &pool);
    buffer_pool_destroy(&pool);
}
