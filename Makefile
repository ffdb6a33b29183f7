# relayq: one top-level GNU Makefile, no recursion.

PREFIX		?= /usr/local
SBINDIR		?= $(PREFIX)/sbin
BINDIR		?= $(PREFIX)/bin
MANDIR		?= $(PREFIX)/share/man
SYSCONFDIR	?= /etc
UNITDIR		?= /lib/systemd/system
BUILD		?= build
PKG_CONFIG	?= pkg-config
CC		?= cc
WERROR		?= 0

DEPS		= openssl libevent libevent_openssl
TEST_DEPS	= check
DEBIAN_PKGS	= build-essential pkg-config libssl-dev libevent-dev check openssl

WARNINGS	= -Wall -Wextra -Wpedantic -Wshadow -Wconversion \
		  -Wstrict-prototypes -Wmissing-prototypes \
		  -Wmissing-declarations -Wpointer-arith -Wcast-qual \
		  -Wwrite-strings -Wformat=2 \
		  -Werror=implicit-function-declaration
ifeq ($(WERROR),1)
WARNINGS	+= -Werror
endif

# Sections let the linker drop what the small client does not call.
BASE_CFLAGS	= -std=c17 -O2 -g -pthread -ffunction-sections -fdata-sections \
		  $(WARNINGS)
VERSION		= 0.1.0
BASE_CPPFLAGS	= -DRELAYQ_VERSION=\"$(VERSION)\" -D_GNU_SOURCE -MMD -MP -Icommon
DEP_CFLAGS	= $(shell $(PKG_CONFIG) --cflags $(DEPS) 2>/dev/null)
DEP_LIBS	= $(shell $(PKG_CONFIG) --libs $(DEPS) 2>/dev/null)
CHECK_CFLAGS	= $(shell $(PKG_CONFIG) --cflags $(TEST_DEPS) 2>/dev/null)
CHECK_LIBS	= $(shell $(PKG_CONFIG) --libs $(TEST_DEPS) 2>/dev/null)
ifneq ($(findstring clang,$(shell $(CC) --version 2>/dev/null)),)
TEST_WARN	= -Wno-gnu-zero-variadic-macro-arguments
endif

ALL_CFLAGS	= $(BASE_CFLAGS) $(CFLAGS)
ALL_CPPFLAGS	= $(BASE_CPPFLAGS) $(DEP_CFLAGS) $(CPPFLAGS)

# ---- sources ----

COMMON_SRCS	+= common/base64.c
COMMON_SRCS	+= common/conf.c
COMMON_SRCS	+= common/dotstuff.c
COMMON_SRCS	+= common/envelope.c
COMMON_SRCS	+= common/log.c
COMMON_SRCS	+= common/mailaddr.c
COMMON_SRCS	+= common/mime.c
COMMON_SRCS	+= common/sasl.c
COMMON_SRCS	+= common/smtp_proto.c
COMMON_SRCS	+= common/tls.c
COMMON_SRCS	+= common/util.c

DAEMON_SRCS	+= daemon/account.c
DAEMON_SRCS	+= daemon/account_conf.c
DAEMON_SRCS	+= daemon/config.c
DAEMON_SRCS	+= daemon/listener.c
DAEMON_SRCS	+= daemon/notify.c
DAEMON_SRCS	+= daemon/queue.c
DAEMON_SRCS	+= daemon/relay.c
DAEMON_SRCS	+= daemon/relay_policy.c
DAEMON_SRCS	+= daemon/scheduler.c
DAEMON_SRCS	+= daemon/smtp_server.c
DAEMON_MAIN	= daemon/relayqd.c

CLIENT_SRCS	+= client/mailmsg.c
CLIENT_SRCS	+= client/message.c
CLIENT_SRCS	+= client/sendmail.c
CLIENT_SRCS	+= client/submit.c
CLIENT_SRCS	+= client/queue_admin.c
CLIENT_MAIN	= client/relayq.c
CLIENT_GEN	= $(BUILD)/gen/image_png.c

UNIT_SRCS	= $(filter-out tests/check_unit.c tests/check_integration.c, \
		    $(wildcard tests/check_*.c))
UNIT_MAIN	= tests/check_unit.c
IT_SRCS		= tests/check_integration.c tests/harness.c
IT_SRCS		+= tests/it_hostile.c
IT_SRCS		+= tests/it_durability.c
IT_SRCS		+= tests/it_service.c
IT_SRCS		+= tests/it_gmail.c
IT_SRCS		+= tests/it_sendmail.c
STANDIN_SRCS	= tests/standin/standin.c
BENCH_SRCS	= tests/bench.c tests/bench_load.c tests/bench_sys.c \
		  tests/harness.c
# The delaying TCP proxy of `bench --rtt`; its core is unit-tested too.
LPROXY_SRCS	= tests/latency_proxy_main.c tests/latency_proxy.c

# Only what exists yet is built, so modules can land one at a time.
COMMON_SRCS	:= $(wildcard $(COMMON_SRCS))
DAEMON_SRCS	:= $(wildcard $(DAEMON_SRCS))
CLIENT_SRCS	:= $(wildcard $(CLIENT_SRCS))

COMMON_OBJS	= $(COMMON_SRCS:%.c=$(BUILD)/obj/%.o)
DAEMON_OBJS	= $(DAEMON_SRCS:%.c=$(BUILD)/obj/%.o)
CLIENT_OBJS	= $(CLIENT_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/image_png.o
UNIT_OBJS	= $(UNIT_SRCS:%.c=$(BUILD)/obj/%.o) $(UNIT_MAIN:%.c=$(BUILD)/obj/%.o)
IT_OBJS		= $(IT_SRCS:%.c=$(BUILD)/obj/%.o)
STANDIN_OBJS	= $(STANDIN_SRCS:%.c=$(BUILD)/obj/%.o)
BENCH_OBJS	= $(BENCH_SRCS:%.c=$(BUILD)/obj/%.o)
LPROXY_OBJS	= $(LPROXY_SRCS:%.c=$(BUILD)/obj/%.o)
ALL_OBJS	= $(COMMON_OBJS) $(DAEMON_OBJS) $(CLIENT_OBJS) $(UNIT_OBJS) \
		  $(IT_OBJS) $(STANDIN_OBJS) \
		  $(BUILD)/obj/$(DAEMON_MAIN:.c=.o) $(BUILD)/obj/$(CLIENT_MAIN:.c=.o)
ALL_OBJS	+= $(BENCH_OBJS) $(LPROXY_OBJS)

LIBCOMMON	= $(BUILD)/libcommon.a
LIBDAEMON	= $(BUILD)/libdaemon.a
LIBCLIENT	= $(BUILD)/libclient.a

.DELETE_ON_ERROR:
.PHONY: all check unit integration deps demo bench sanitize install \
	uninstall clean certs fuzz fuzz-deps install-sendmail uninstall-sendmail

all: $(BUILD)/relayqd $(BUILD)/relayq

# ---- build rules ----

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -Idaemon -Iclient -Itests -I$(BUILD)/gen \
	    $(CHECK_CFLAGS) $(ALL_CFLAGS) $(TEST_WARN) -c -o $@ $<

$(BUILD)/obj/daemon/%.o: daemon/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -Idaemon $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/client/%.o: client/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CPPFLAGS) $(CPPFLAGS) -Iclient $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CPPFLAGS) $(CPPFLAGS) -Iclient $(ALL_CFLAGS) -c -o $@ $<

# The image is compiled in with od and sed only (POSIX, no xxd).
$(CLIENT_GEN): client/image.png
	@mkdir -p $(@D)
	{ echo '#include <stddef.h>'; \
	  echo '#include "image.h"'; \
	  echo 'const unsigned char image_png[] = {'; \
	  od -An -v -tu1 $< | sed -e 's/  */,/g' -e 's/^,//' -e 's/$$/,/'; \
	  echo '};'; \
	  echo 'const size_t image_png_len = sizeof(image_png);'; } > $@

$(LIBCOMMON): $(COMMON_OBJS)
	$(AR) rcs $@ $^

$(LIBDAEMON): $(DAEMON_OBJS)
	$(AR) rcs $@ $^

$(LIBCLIENT): $(CLIENT_OBJS)
	$(AR) rcs $@ $^

$(BUILD)/relayqd: $(BUILD)/obj/daemon/relayqd.o $(LIBDAEMON) $(LIBCOMMON)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

# The test daemon with fault points (-DRELAYQ_FAULTS, see daemon/queue.h)
# from objects of its own; build/relayqd contains none of that code.
FAULT_OBJS	= $(DAEMON_SRCS:%.c=$(BUILD)/obj-fault/%.o) \
		  $(BUILD)/obj-fault/$(DAEMON_MAIN:.c=.o)

$(BUILD)/obj-fault/daemon/%.o: daemon/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -DRELAYQ_FAULTS -Idaemon $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/relayqd-fault: $(FAULT_OBJS) $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

# The client links libc only (DESIGN.md): no OpenSSL, no libevent.
$(BUILD)/relayq: $(BUILD)/obj/client/relayq.o $(LIBCLIENT) $(LIBCOMMON)
	$(CC) $(ALL_CFLAGS) -Wl,--gc-sections $(LDFLAGS) -o $@ $^

# Unit suites register themselves: every "name_suite(void)" defined at the
# start of a line in tests/check_*.c is collected here.
$(BUILD)/gen/suites.def: $(UNIT_SRCS)
	@mkdir -p $(@D)
	grep -h '^[a-z0-9_]*_suite(void)$$' $(UNIT_SRCS) | \
	    sed 's/^\([a-z0-9_]*\)_suite(void)$$/SUITE(\1)/' > $@

$(UNIT_OBJS) $(IT_OBJS): $(BUILD)/gen/suites.def

$(BUILD)/tests/unit: $(UNIT_OBJS) $(BUILD)/obj/tests/latency_proxy.o \
	    $(LIBDAEMON) $(LIBCLIENT) $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(BUILD)/tests/integration: $(IT_OBJS) $(LIBCLIENT) $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(BUILD)/tests/standin: $(STANDIN_OBJS) $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(BUILD)/tests/bench: $(BENCH_OBJS) $(LIBCLIENT) $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -pthread -o $@ $^ $(DEP_LIBS) -lm

$(BUILD)/tests/latency_proxy: $(LPROXY_OBJS) $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

certs: $(BUILD)/tests/certs/ca.pem

$(BUILD)/tests/certs/ca.pem: tests/gen_certs.sh
	sh tests/gen_certs.sh $(BUILD)/tests/certs

# ---- top-level targets ----

deps:
	@sh tests/deps.sh $(PKG_CONFIG) "$(DEPS) $(TEST_DEPS)" "$(DEBIAN_PKGS)"

check: deps
	$(MAKE) all $(BUILD)/tests/unit $(BUILD)/tests/integration \
	    $(BUILD)/tests/standin $(BUILD)/tests/relayqd-fault \
	    $(BUILD)/tests/latency_proxy certs
	$(BUILD)/tests/unit
	RELAYQ_SRC=$(CURDIR) RELAYQ_BUILD=$(BUILD) $(BUILD)/tests/integration
	sh systemd/check-units.sh $(BUILD)
	sh tests/install_check.sh "$(MAKE)" $(BUILD)

unit: $(BUILD)/tests/unit
	$(BUILD)/tests/unit

integration: all $(BUILD)/tests/integration $(BUILD)/tests/standin \
	    $(BUILD)/tests/relayqd-fault certs
	RELAYQ_SRC=$(CURDIR) RELAYQ_BUILD=$(BUILD) $(BUILD)/tests/integration

demo: deps
	$(MAKE) all $(BUILD)/tests/standin certs
	sh tests/demo.sh $(BUILD)

# The installed units under a real systemd (systemd-nspawn -b on a cached
# debootstrap rootfs); root, Debian systemd-container and debootstrap.
# Not part of check.
.PHONY: systemd-test
systemd-test: deps
	$(MAKE) all $(BUILD)/tests/standin certs
	sh tests/systemd_boot.sh "$(MAKE)" $(BUILD)

# The integration suites that relay, relayqd under valgrind's memcheck
# (errors and definite leaks fail the suite); MEMCHECK_SUITES to choose.
# Not part of check: about two minutes.
.PHONY: memcheck
memcheck: deps
	@command -v valgrind >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
	    apt-get install -y -q valgrind
	$(MAKE) all $(BUILD)/tests/integration $(BUILD)/tests/standin \
	    $(BUILD)/tests/relayqd-fault $(BUILD)/tests/latency_proxy certs
	sh tests/memcheck.sh $(BUILD) $(MEMCHECK_SUITES)

# Measures only (no assertions); BENCH_FLAGS=--quick for a short run.
bench: deps
	$(MAKE) all $(BUILD)/tests/bench $(BUILD)/tests/standin \
	    $(BUILD)/tests/latency_proxy certs
	RELAYQ_SRC=$(CURDIR) RELAYQ_BUILD=$(BUILD) $(BUILD)/tests/bench \
	    $(BENCH_FLAGS)

sanitize:
	CK_TIMEOUT_MULTIPLIER=4 $(MAKE) BUILD=build/san \
	    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    LDFLAGS="-fsanitize=address,undefined" check

# ---- fuzzing (clang libFuzzer, ASan + UBSan; see tests/fuzz/) ----

FUZZ_CC		?= clang
FUZZ_TIME	?= 60
FUZZ_TARGETS	= smtp_cmd session smtp_reply base64 mime
FUZZ_DIR	= $(BUILD)/fuzz
FUZZ_CFLAGS	= -std=c17 -O1 -g -fno-omit-frame-pointer $(WARNINGS) \
		  -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CPPFLAGS	= $(BASE_CPPFLAGS) -Idaemon $(DEP_CFLAGS)
FUZZ_LIBOBJS	= $(COMMON_SRCS:%.c=$(FUZZ_DIR)/obj/%.o) \
		  $(FUZZ_DIR)/obj/daemon/smtp_server.o

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link \
	    -c -o $@ $<

$(FUZZ_DIR)/libfuzz.a: $(FUZZ_LIBOBJS)
	$(AR) rcs $@ $^

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_DIR)/libfuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(DEP_LIBS)

fuzz-deps:
	@sh tests/fuzz/deps.sh $(FUZZ_CC)

# Each target runs FUZZ_TIME seconds from the committed seeds; new inputs
# go to $(FUZZ_DIR)/corpus, crashes to $(FUZZ_DIR)/artifacts.
fuzz: deps fuzz-deps
	$(MAKE) $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
	@mkdir -p $(FUZZ_DIR)/artifacts
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	    echo "== fuzz_$$t for $(FUZZ_TIME) s"; \
	    $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_TIME) -timeout=10 \
	        -rss_limit_mb=2048 -print_final_stats=1 -close_fd_mask=2 \
	        -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- \
	        $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/relayq $(DESTDIR)$(PREFIX)/lib/sysusers.d \
	    $(DESTDIR)$(PREFIX)/lib/tmpfiles.d
	install -m 0755 $(BUILD)/relayqd $(DESTDIR)$(SBINDIR)/relayqd
	install -m 0755 $(BUILD)/relayq $(DESTDIR)$(BINDIR)/relayq
	install -m 0644 client/relayq.1 $(DESTDIR)$(MANDIR)/man1/relayq.1
	install -m 0644 daemon/relayqd.conf.5 $(DESTDIR)$(MANDIR)/man5/relayqd.conf.5
	install -m 0644 daemon/relayqd.8 $(DESTDIR)$(MANDIR)/man8/relayqd.8
	sed 's|/usr/local/sbin|$(SBINDIR)|' systemd/relayqd.service > \
	    $(DESTDIR)$(UNITDIR)/relayqd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/relayqd.service
	install -m 0644 systemd/relayqd.socket $(DESTDIR)$(UNITDIR)/relayqd.socket
	install -m 0644 systemd/relayqd.sysusers \
	    $(DESTDIR)$(PREFIX)/lib/sysusers.d/relayqd.conf
	install -m 0644 systemd/relayqd.tmpfiles \
	    $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/relayqd.conf
	# An existing configuration is never overwritten.
	[ -e $(DESTDIR)$(SYSCONFDIR)/relayq/relayqd.conf ] || \
	    install -m 0644 systemd/relayqd.conf.example \
	    $(DESTDIR)$(SYSCONFDIR)/relayq/relayqd.conf

# relayq as the system's sendmail and mailq: only when asked, so that
# another MTA's are never replaced by surprise (see README, Sendmail).
install-sendmail: install
	ln -sf $(BINDIR)/relayq $(DESTDIR)$(SBINDIR)/sendmail
	ln -sf $(BINDIR)/relayq $(DESTDIR)$(SBINDIR)/mailq

# Only links that point at relayq are removed.
uninstall-sendmail:
	for l in sendmail mailq; do \
	    [ "$$(readlink $(DESTDIR)$(SBINDIR)/$$l)" != $(BINDIR)/relayq ] || \
	    rm -f $(DESTDIR)$(SBINDIR)/$$l; \
	done

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/relayqd $(DESTDIR)$(BINDIR)/relayq \
	    $(DESTDIR)$(MANDIR)/man1/relayq.1 \
	    $(DESTDIR)$(MANDIR)/man5/relayqd.conf.5 \
	    $(DESTDIR)$(MANDIR)/man8/relayqd.8 \
	    $(DESTDIR)$(UNITDIR)/relayqd.service \
	    $(DESTDIR)$(UNITDIR)/relayqd.socket \
	    $(DESTDIR)$(PREFIX)/lib/sysusers.d/relayqd.conf \
	    $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/relayqd.conf

clean:
	rm -rf $(BUILD) build

-include $(ALL_OBJS:.o=.d)
-include $(FAULT_OBJS:.o=.d)
