# iomodels: `make` builds bin/, `make test` runs the tests, `make check`
# runs them again on an AddressSanitizer + UndefinedBehaviorSanitizer build,
# `make demo` is the classroom tour, `make install` (PREFIX, DESTDIR) and
# `make uninstall` put the programs and scripts in place and take them away.

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

PROGRAMS := $(foreach p,server-blocking server-nonblocking server-multiplexing server-async client ftpd,\
              $(if $(SRC_$(p)),$(p)))
TARGETS  := $(addprefix $(BIN)/,$(PROGRAMS))

# What only the tests run stays out of bin/, beside the objects: the C unit
# tests, and the LD_PRELOAD shims (tests/shims/NAME.c -> $(BUILD)/shims/NAME.so)
# that tests/run.py finds through --build.
UNIT_TESTS := $(BUILD)/unit-tests
SHIMS      := $(patsubst tests/shims/%.c,$(BUILD)/shims/%.so,$(wildcard tests/shims/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

.PHONY: all test check demo clean grade grade-ftp install uninstall
all: $(TARGETS) $(UNIT_TESTS) $(SHIMS)

define link_rule
$(1): $(call obj,$(2) $(COMMON_SRC))
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach p,$(PROGRAMS),$(eval $(call link_rule,$(BIN)/$(p),$(SRC_$(p)))))
$(eval $(call link_rule,$(UNIT_TESTS),$(SRC_unit-tests)))

# A shim is preloaded into a server, sanitized or not: it is built plain.
# Not -Wpedantic: it redefines libc functions, whose glibc prototypes use a
# GNU transparent union (accept4's __SOCKADDR_ARG).
$(BUILD)/shims/%.so: tests/shims/%.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -Wall -Wextra $(if $(WERROR),-Werror) -O2 -shared -fPIC -o $@ $< -ldl

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

test: all
	$(PYTHON) tests/run.py --bin $(BIN) --build $(BUILD)

check:
	$(MAKE) SANITIZE=1 BUILD=build/san BIN=build/san/bin CFLAGS="-O1 -g" all
	$(PYTHON) tests/run.py --bin build/san/bin --build build/san --sanitized

demo: all
	scripts/demo.sh

# make grade-ftp FTPD='python3 my_ftpd.py --port {port} --root {root}': the
# FTP checks against a server in any language ({port} becomes 0, {root} the
# directory to serve; without them -p 0 and -r DIR are appended; the server
# prints "listening on HOST:PORT"). Without FTPD it grades bin/ftpd.
grade-ftp: $(if $(FTPD),,all)
	$(PYTHON) tests/grade_ftp.py "$${FTPD:-$(BIN)/ftpd}"

# make grade SERVER='python3 my_server.py {port}': every echo-server check
# against a server in any language ({port} becomes 0, without it -p 0 is
# appended; the grader reads the port from the "listening on HOST:PORT" line
# or from /proc). GRADE_FLAGS=--iterative for a one-client-at-a-time server.
# Without SERVER it grades bin/server-multiplexing.
grade: $(if $(SERVER),,all)
	$(PYTHON) tests/grade.py $(GRADE_FLAGS) "$${SERVER:-$(BIN)/server-multiplexing}"

clean:
	rm -rf $(BUILD) $(BIN) results

# `make install PREFIX=/usr/local DESTDIR=`: the six programs in PREFIX/bin,
# beside them `iomodels` (scripts/iomodels.sh) that runs the scripts; the
# scripts with what they read (their helpers, variants.txt, the variants
# that are scripts) in PREFIX/share/iomodels, laid out as in the source
# tree, where share/iomodels/bin links to ../../bin so that every script
# finds the programs as it does here. `make uninstall` removes all of it.
PREFIX  ?= /usr/local
DATADIR  = $(PREFIX)/share/iomodels
SCRIPTS := $(filter-out scripts/iomodels.sh,$(wildcard scripts/*.sh scripts/*.py scripts/*.json)) scripts/variants.txt
SCRIPT_VARIANTS := $(shell awk '!/^\#/ && $$3 ~ /\// {print $$3}' scripts/variants.txt)

install: $(TARGETS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(DATADIR)/scripts
	install -m 755 $(TARGETS) $(DESTDIR)$(PREFIX)/bin
	install -m 755 scripts/iomodels.sh $(DESTDIR)$(PREFIX)/bin/iomodels
	for f in $(SCRIPTS) $(SCRIPT_VARIANTS); do \
	    install -D -m $$(if [ -x $$f ]; then echo 755; else echo 644; fi) $$f $(DESTDIR)$(DATADIR)/$$f || exit 1; \
	done
	ln -sfn ../../bin $(DESTDIR)$(DATADIR)/bin

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(PROGRAMS) iomodels)
	rm -rf $(DESTDIR)$(DATADIR)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
