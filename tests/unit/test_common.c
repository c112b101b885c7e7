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
    a->start = 3, a->end = 7;
    buffer_put(&pool, a); /* kept */
    CHECK(pool.free_count == 1 && pool.in_use == 1);
    /* b is still held and a still kept, so malloc cannot hand out either
     * address: getting a back proves the pool reused it. */
    struct buffer *c = buffer_get(&pool);
    CHECK(c == a);
    CHECK(c->start == 0 && c->end == 0);
    CHECK(pool.free_count == 0 && pool.in_use == 2);
    buffer_put(&pool, c);
    buffer_put(&pool, b); /* beyond keep_at_most: freed */
    CHECK(pool.free_count == 1 && pool.in_use == 0);
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

/* The echo state machine over a socketpair: no server, no timing. The
 * fixture is the server's end (conn) with all echo_pump needs, and the
 * client's end (peer). */
struct echo_fixture {
    int peer;
    struct buffer_pool pool;
    struct server_stats *stats;
    struct echo_conn conn;
};

static bool echo_fixture_open(struct echo_fixture *f)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || set_nonblocking(sv[0]) < 0)
        return false;
    f->peer = sv[1];
    buffer_pool_init(&f->pool, 4);
    f->stats = stats_create();
    echo_init(&f->conn, sv[0], "test");
    return true;
}

static void echo_fixture_close(struct echo_fixture *f)
{
    echo_close(&f->conn, &f->pool);
    if (f->peer >= 0)
        close(f->peer);
    buffer_pool_destroy(&f->pool);
}

UNIT_TEST(echo_pump_echoes_and_returns_buffer)
{
    struct echo_fixture f;
    REQUIRE(echo_fixture_open(&f));

    CHECK(echo_pump(&f.conn, &f.pool, f.stats, false) == ECHO_WANT_READ); /* EAGAIN: nothing yet */
    CHECK(f.conn.buf == NULL);
    REQUIRE(write(f.peer, "ping", 4) == 4);
    CHECK(echo_pump(&f.conn, &f.pool, f.stats, false) == ECHO_WANT_READ);
    char got[8] = {0};
    CHECK(read(f.peer, got, sizeof got) == 4 && memcmp(got, "ping", 4) == 0);
    CHECK(f.conn.buf == NULL && f.pool.in_use == 0);
    CHECK(atomic_load(&f.stats->messages) == 1 && atomic_load(&f.stats->bytes) == 4);

    REQUIRE(shutdown(f.peer, SHUT_WR) == 0);
    CHECK(echo_pump(&f.conn, &f.pool, f.stats, true) == ECHO_CLOSE);
    CHECK(f.conn.error == 0 && f.conn.peer_closed);
    echo_fixture_close(&f);
}

UNIT_TEST(echo_pump_backpressure_stops_reading)
{
    struct echo_fixture f;
    REQUIRE(echo_fixture_open(&f));
    REQUIRE(set_nonblocking(f.peer) == 0);

    /* The peer writes far more than it reads: the server side fills the
     * peer's receive queue, then its own buffer, then stops reading. */
    static unsigned char chunk[65536];
    int want = 0;
    for (int round = 0; round < 200; round++) {
        while (write(f.peer, chunk, sizeof chunk) > 0)
            ;
        want = echo_pump(&f.conn, &f.pool, f.stats, true);
        if (!(want & ECHO_WANT_READ))
            break;
    }
    CHECK(want == ECHO_WANT_WRITE);
    CHECK(f.conn.buf && buffer_room(f.conn.buf) == 0);
    CHECK(f.pool.in_use == 1);
    echo_fixture_close(&f);
}

UNIT_TEST(echo_pump_half_close_finishes_echo)
{
    struct echo_fixture f;
    REQUIRE(echo_fixture_open(&f));

    REQUIRE(write(f.peer, "bye", 3) == 3);
    REQUIRE(shutdown(f.peer, SHUT_WR) == 0);
    CHECK(echo_pump(&f.conn, &f.pool, f.stats, true) == ECHO_CLOSE);
    char got[8] = {0};
    CHECK(read(f.peer, got, sizeof got) == 3 && memcmp(got, "bye", 3) == 0);
    echo_fixture_close(&f);
}

/* The peer sends more than the server can write back at once, then
 * half-closes: the end of file arrives with bytes still pending, and the
 * server must write them all before it closes. */
UNIT_TEST(echo_pump_half_close_with_bytes_pending)
{
    struct echo_fixture f;
    REQUIRE(echo_fixture_open(&f));
    int small = 4096; /* the server's send buffer: far less than what it must echo */
    REQUIRE(setsockopt(f.conn.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);

    static unsigned char sent[20000], got[sizeof sent];
    for (size_t i = 0; i < sizeof sent; i++)
        sent[i] = (unsigned char)(i * 7 + 1);
    REQUIRE(write(f.peer, sent, sizeof sent) == (ssize_t)sizeof sent);
    REQUIRE(shutdown(f.peer, SHUT_WR) == 0);

    REQUIRE(set_nonblocking(f.peer) == 0);
    int want = echo_pump(&f.conn, &f.pool, f.stats, true);
    CHECK(f.conn.peer_closed && f.conn.buf && buffer_pending(f.conn.buf) > 0);
    CHECK(want == ECHO_WANT_WRITE);
    /* echo_pump writes before it returns: after each call the peer reads
     * what arrived, and the server is pumped again, until it is done. */
    size_t received = 0;
    for (int round = 0; round < 1000; round++) {
        ssize_t n;
        while (received < sizeof got && (n = read(f.peer, got + received, sizeof got - received)) > 0)
            received += (size_t)n;
        if (want == ECHO_CLOSE)
            break;
        want = echo_pump(&f.conn, &f.pool, f.stats, true);
    }
    CHECK(want == ECHO_CLOSE && f.conn.error == 0);
    CHECK(received == sizeof sent && memcmp(got, sent, sizeof sent) == 0);
    CHECK(atomic_load(&f.stats->bytes) == sizeof sent);
    echo_fixture_close(&f);
}

UNIT_TEST(echo_pump_reports_reset)
{
    struct echo_fixture f;
    REQUIRE(echo_fixture_open(&f));

    REQUIRE(write(f.peer, "x", 1) == 1);
    close(f.peer); /* writing back to a closed peer: EPIPE, never SIGPIPE's death */
    f.peer = -1;
    signal(SIGPIPE, SIG_IGN);
    CHECK(echo_pump(&f.conn, &f.pool, f.stats, true) == ECHO_CLOSE);
    /* The byte is read, its echo fails: the error, not an end of file,
     * closes the connection. */
    CHECK(f.conn.error == EPIPE);
    CHECK(atomic_load(&f.stats->messages) == 1 && atomic_load(&f.stats->bytes) == 0);
    echo_fixture_close(&f);
}
