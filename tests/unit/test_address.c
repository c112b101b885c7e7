/* Unit tests of the client's [HOST:]PORT operand (client/address.c). */
#include "../../client/address.h"
#include "unit.h"

#include <string.h>

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
