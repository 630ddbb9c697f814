# libpg_query inside the backend.
#
# Linking libpg_query.a plainly crashes the backend: the archive bundles its
# own copies of palloc, ereport, memory contexts and their thread-local
# state, and they bind over (or under) the server's.  So the four entry
# points we use are pulled out of the archive with `ld -r` into a single
# object, and objcopy turns every other global symbol of that object into a
# local one: the bundled PostgreSQL copies can then neither interpose on the
# server nor be bound by our own calls to palloc/ereport.

PGQ_ARCHIVE := $(shell $(CC) -print-file-name=libpg_query.a)
PGQ_SYMBOLS := pg_query_normalize pg_query_fingerprint \
               pg_query_free_normalize_result pg_query_free_fingerprint_result
OBJCOPY     ?= objcopy

# Not in OBJS: PGXS would also want LLVM bitcode for it.
SHLIB_LINK  += extension/pg_query_local.o
EXTRA_CLEAN += extension/pg_query_local.o
agentgate.so: extension/pg_query_local.o

extension/pg_query_local.o: $(PGQ_ARCHIVE)
	$(LD) -r -o $@.tmp $(addprefix -u ,$(PGQ_SYMBOLS)) $(PGQ_ARCHIVE)
	$(OBJCOPY) $(addprefix --keep-global-symbol=,$(PGQ_SYMBOLS)) $@.tmp $@
	rm -f $@.tmp
