# The operations guide's make targets, each one call of opsh. Procedures that a later release
# brings answer "unknown procedure" until then.
OPSH ?= cargo run --quiet --release --

.PHONY: pause unpause stop start safe-stop safe-start down up restart ps stats logs logs-error \
	check-data check-data-fix reset-stuck-jobs clean-orphans check-jobs reset-soft reset-hard \
	backup-all db-backup db-restore db-shell db-stats qdrant-stats clean-logs \
	daily-integrity-check test-health daily-check weekly-check monthly-check migrate demo demo-down \
	test bench install install-files uninstall

pause:                 ; $(OPSH) pause
unpause:               ; $(OPSH) unpause
stop:                  ; $(OPSH) stop
start:                 ; $(OPSH) start
safe-stop:             ; $(OPSH) safe-stop
safe-start:            ; $(OPSH) safe-start
down:                  ; $(OPSH) down
up:                    ; $(OPSH) up
restart:               ; $(OPSH) restart
ps:                    ; $(OPSH) ps
stats:                 ; $(OPSH) stats
logs:                  ; $(OPSH) logs
logs-error:            ; $(OPSH) logs-error
check-data:            ; $(OPSH) check-data
check-data-fix:        ; $(OPSH) check-data-fix
reset-stuck-jobs:      ; $(OPSH) reset-stuck-jobs
clean-orphans:         ; $(OPSH) clean-orphans
check-jobs:            ; $(OPSH) check-jobs
reset-soft:            ; $(OPSH) reset-soft
reset-hard:            ; $(OPSH) reset-hard
backup-all:            ; $(OPSH) backup-all
db-backup:             ; $(OPSH) db-backup
db-restore:            ; $(OPSH) db-restore file=$(FILE)
db-shell:              ; $(OPSH) db-shell
db-stats:              ; $(OPSH) db-stats
qdrant-stats:          ; $(OPSH) qdrant-stats
clean-logs:            ; $(OPSH) clean-logs
daily-integrity-check: ; $(OPSH) daily-integrity-check
test-health:           ; $(OPSH) test-health
daily-check:           ; $(OPSH) daily-check
weekly-check:          ; $(OPSH) weekly-check
monthly-check:         ; $(OPSH) monthly-check
migrate:               ; $(OPSH) migrate

# opsh's main job on a sandbox with deliberate problems: check-data, check-data-fix, check-data
# (tools/demo). Docker Compose when images can be had, else local services and the Qdrant double.
demo:                  ; @OPSH='$(OPSH)' tools/demo up
demo-down:             ; @tools/demo down

# The whole suite against real PostgreSQL, Redis and Docker (see tools/with-services).
test:
	tools/with-services cargo test --locked --all-targets --no-fail-fast

# Start-up, REPL, reset_stuck/counts and container lifecycle benchmarks (see README, "Speed").
bench:
	cargo build --release --locked
	benches/startup.sh
	tools/with-services benches/reset_stuck.sh
	tools/with-services benches/containers.sh

# Installation (PREFIX, DESTDIR as usual; SYSCONFDIR is where /etc/opsh/opsh.toml lives, and is
# built into the binary). `make install` builds the release binary; `install-files` installs a
# given OPSH_BIN without building (packaging, tests).
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR    ?=
OPSH_BIN   ?= target/release/opsh
BINDIR      = $(DESTDIR)$(PREFIX)/bin
MANDIR      = $(DESTDIR)$(PREFIX)/share/man/man1
SHAREDIR    = $(DESTDIR)$(PREFIX)/share

install:
	OPSH_SYSCONFDIR=$(SYSCONFDIR) cargo build --release --locked
	$(MAKE) install-files OPSH_BIN=target/release/opsh

install-files:
	install -D -m 0755 $(OPSH_BIN) $(BINDIR)/opsh
	install -d $(MANDIR) $(SHAREDIR)/bash-completion/completions $(SHAREDIR)/zsh/site-functions \
		$(SHAREDIR)/fish/vendor_completions.d $(DESTDIR)$(SYSCONFDIR)/opsh
	$(OPSH_BIN) __man > $(MANDIR)/opsh.1
	$(OPSH_BIN) completions bash > $(SHAREDIR)/bash-completion/completions/opsh
	$(OPSH_BIN) completions zsh > $(SHAREDIR)/zsh/site-functions/_opsh
	$(OPSH_BIN) completions fish > $(SHAREDIR)/fish/vendor_completions.d/opsh.fish
	install -m 0644 contrib/opsh.toml.example $(DESTDIR)$(SYSCONFDIR)/opsh/opsh.toml.example

uninstall:
	rm -f $(BINDIR)/opsh $(MANDIR)/opsh.1 $(SHAREDIR)/bash-completion/completions/opsh \
		$(SHAREDIR)/zsh/site-functions/_opsh $(SHAREDIR)/fish/vendor_completions.d/opsh.fish \
		$(DESTDIR)$(SYSCONFDIR)/opsh/opsh.toml.example
