# iomodels: `make` builds bin/, `make test` runs the tests, `make check`
# runs them again on an AddressSanitizer + UndefinedBehaviorSanitizer build,
# `make demo` is the classroom tour.

CC      ?= cc
BUILD   ?= build
BIN     ?= bin
PYTHON  ?= python3

CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wpedantic $(if $(WERROR),-Werror)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -pthread -Icommon -MMD -MP $(CFLAGS) $(SAN_FLAGS)
LDLIBS  := -pthread -lm -lrt

ifeq ($(SANITIZE),1)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS   += $(SAN_FLAGS)
endif

COMMON_SRC := $(wildcard common/*.c)
# The readiness loop (everything in multiplexing/ but the echo server's
# main) is shared with the FTP server: one loop, two protocols.
LOOP_SRC   := $(filter-out multiplexing/server.c,$(wildcard multiplexing/*.c))

# program name -> its own sources; a program is built once its folder has code.
SRC_server-blocking     := $(wildcard blocking/*.c)
SRC_server-nonblocking  := $(wildcard nonblocking/*.c)
SRC_server-multiplexing := $(wildcard multiplexing/*.c)
SRC_server-async        := $(wildcard async/*.c)
SRC_client              := $(wildcard client/*.c)
SRC_ftpd                := $(if $(wildcard ftp/*.c),$(wildcard ftp/*.c) $(LOOP_SRC))
SRC_unit-tests          := $(wildcard tests/unit/*.c) $(LOOP_SRC) client/histogram.c client/address.c

PROGRAMS := $(foreach p,server-blocking server-nonblocking server-multiplexing server-async client ftpd unit-tests,\
              $(if $(SRC_$(p)),$(p)))
TARGETS  := $(addprefix $(BIN)/,$(PROGRAMS))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

.PHONY: all test check demo clean
all: $(TARGETS)

define program_rule
$(BIN)/$(1): $(call obj,$(SRC_$(1)) $(COMMON_SRC))
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach p,$(PROGRAMS),$(eval $(call program_rule,$(p))))

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

test: all
	$(PYTHON) tests/run.py --bin $(BIN)

check:
	$(MAKE) SANITIZE=1 BUILD=build/san BIN=build/san/bin CFLAGS="-O1 -g" all
	$(PYTHON) tests/run.py --bin build/san/bin --sanitized

demo: all
	scripts/demo.sh

clean:
	rm -rf $(BUILD) $(BIN) results

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
