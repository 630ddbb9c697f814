# Content patterns: rows of agentgate.patterns are checked when written with
# the library and flags agentgate-proxy compiles them with (Hyperscan), and
# the built-in rows come from the header the proxy's tests use
# (pooler/include/ag_pattern_defs.h).
PG_CPPFLAGS += -Ipooler/include
SHLIB_LINK  += -lhs
