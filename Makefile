# agentgate — top-level build.
#
#   make            build the extension and the pooler programs
#   make install    install the extension into PostgreSQL (pg_config) and
#                   the pooler programs into $(PREFIX)/bin
#   make test       everything, from a fresh Debian 12 machine (installs what
#                   is missing first; see test/run)
#   make demo       a throwaway PostgreSQL + PgBouncer + proxy, and an agent
#   make bench      side-by-side throughput figures (not part of make test)

EXTENSION   = agentgate
EXTVERSION  = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)
MODULE_big  = agentgate
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard extension/*.c)))
PGFILEDESC  = "agentgate - guardrails for AI-agent roles"

# The install script is assembled from one fragment per concern, in order.
# Each upgrade script agentgate--A--B.sql is assembled the same way from the
# files of extension/sql/upgrade/A--B/, one per concern.  The install
# scripts of released versions are kept as they were released, so that
# upgrades from them can be tested (test/t/601_upgrade.pl).
SQL_PARTS   = $(sort $(wildcard extension/sql/[0-9][0-9]_*.sql))
UPGRADES    = $(notdir $(wildcard extension/sql/upgrade/*--*))
UPGRADE_SQL = $(patsubst %,extension/sql/$(EXTENSION)--%.sql,$(UPGRADES))
DATA_built  = extension/sql/$(EXTENSION)--$(EXTVERSION).sql $(UPGRADE_SQL)
DATA        = $(filter-out $(DATA_built),$(wildcard extension/sql/$(EXTENSION)--*.sql))

# Regression and isolation tests, for PGXS's installcheck against a running
# server set up as test/agentgate.conf says (test/run regress and test/run
# isolation run them all in a throwaway server instead).  Left out of
# installcheck: tests that change the server beyond their own objects
# (the whole audit log, its partitions, the audit writer), the one that
# forges a stamp with the session key of test/agentgate.conf, and those
# that leave cluster-wide roles or audit rows behind, so that a second run
# on the same server would not match.
REGRESS_ALL       = $(basename $(notdir $(sort $(wildcard sql/*.sql))))
REGRESS_TEMP_ONLY = audit_01_log audit_02_partitions audit_04_writer_settings \
                    identity_08_sessions_by_role audit_05_no_literals \
                    identity_06_status_for_proxy redteam_12_parallel \
                    summary_01_decisions mask_06_audit_explain
REGRESS           = $(filter-out $(REGRESS_TEMP_ONLY),$(REGRESS_ALL))
REGRESS_OPTS      = --inputdir=. --dbname=contrib_regression
ISOLATION         = $(basename $(notdir $(sort $(wildcard test/specs/*.spec))))
ISOLATION_OPTS    = --inputdir=test

PG_CPPFLAGS = -Iextension
PG_CFLAGS   = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
              -Wno-missing-field-initializers
EXTRA_CLEAN = $(DATA_built) results regression.diffs regression.out output_iso tmp_check log

PG_CONFIG  ?= pg_config
PGXS       := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

ifeq ($(PGXS),)
# A fresh machine has no PostgreSQL development files yet: the commands that
# install what they need (test, demo, bench) do that first, then start over.
.DEFAULT_GOAL := all
test demo bench:
	tools/install-deps
	$(MAKE) $@
all install:
	@echo "PostgreSQL 15 development files not found: run tools/install-deps as root (make test and make demo do it)"; exit 1
.PHONY: test demo bench all install
else

.DEFAULT_GOAL := all

# Optional pieces owned by one concern each add themselves here.
-include extension/*.mk

include $(PGXS)

all: pooler

# PGXS tracks no header dependencies: rebuild every object when any of the
# extension's headers changes.
$(OBJS): $(wildcard extension/*.h)

extension/sql/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS) $(EXTENSION).control
	( printf '%s\n' "-- generated from extension/sql/NN_*.sql; do not edit"; \
	  printf '%s\n' '\echo Use "CREATE EXTENSION $(EXTENSION)" to load this file. \quit'; \
	  for f in $(SQL_PARTS); do printf '\n-- %s\n' "$$f"; cat $$f; done ) > $@

.SECONDEXPANSION:
$(UPGRADE_SQL): extension/sql/$(EXTENSION)--%.sql: $$(sort $$(wildcard extension/sql/upgrade/%/*.sql))
	( printf '%s\n' "-- generated from extension/sql/upgrade/$*/*.sql; do not edit"; \
	  printf '%s\n' '\echo Use "ALTER EXTENSION $(EXTENSION) UPDATE" to load this file. \quit'; \
	  for f in $^; do printf '\n-- %s\n' "$$f"; cat $$f; done ) > $@

.PHONY: pooler pooler-check test demo bench check-regress check-isolation check-tap hookstack-clean
pooler:
	$(MAKE) -C pooler

pooler-check:
	$(MAKE) -C pooler check

# INSTALL_UNITS=no leaves the systemd units and the tmpfiles.d entry out
# (the test driver and the demo install the rest on build machines).
INSTALL_UNITS ?= yes
install: pooler-install $(if $(filter yes,$(INSTALL_UNITS)),units-install)
pooler-install: pooler
	$(MAKE) -C pooler install

# systemd units for the proxy and its PgBouncer, and the tmpfiles.d entry
# that makes their private socket folders at boot (packaging/).  Installed,
# never enabled: README.md's quickstart says when to enable them.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
UNITDIR     ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
DOCDIR      ?= $(PREFIX)/share/doc/agentgate
TMPFILES    ?= /usr/bin/systemd-tmpfiles
UNITS        = agentgate-proxy.service agentgate-pgbouncer.service
.PHONY: units-install
units-install:
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(DOCDIR)
	for u in $(UNITS); do \
	  sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@TMPFILESDIR@|$(TMPFILESDIR)|g' \
	      -e 's|@TMPFILES@|$(TMPFILES)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
	      packaging/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp && \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && \
	  mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 0644 packaging/tmpfiles.d/agentgate.conf $(DESTDIR)$(TMPFILESDIR)/agentgate.conf
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md

clean: pooler-clean fuzz-clean hookstack-clean
pooler-clean:
	$(MAKE) -C pooler clean
fuzz-clean:
	$(MAKE) -C test/fuzz clean
hookstack-clean:
	$(MAKE) -C test/modules/hookstack clean PG_CONFIG=$(PG_CONFIG)

# installcheck (PGXS) runs REGRESS and ISOLATION against the server PGHOST/
# PGPORT point at; agent sessions there are reached with SET SESSION
# AUTHORIZATION, not through the proxy, so the tests' sessions do without
# session stamps.
installcheck: export PGOPTIONS += -c agentgate.require_session_stamp=off

# Test suites; each needs the extension installed.  test/run drops root
# privileges for the servers and runs them on free ports.
check-regress:
	test/run regress
check-isolation:
	test/run isolation
check-tap:
	test/run tap

test:
	test/run all

demo:
	demo/run

bench:
	bench/run

endif
