/*
 * fuzz_startup.c
 *	  libFuzzer target: the first packet a client sends, through the whole
 *	  startup path (parse, filter, rebuild for PgBouncer, error message).
 */
#include "ag_pgproto.h"

#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static ag_pg_startup st;
	ag_pg_client_params p;
	char		err[AG_PGPROTO_ERRLEN];
	char		bad[AG_PGPROTO_NAMELEN + 1];
	uint8_t		out[2048];
	int			n;

	if (ag_pgproto_parse_startup(data, size, &st, err) < 0)
	{
		/* the reason goes to the client: it must fit an ErrorResponse */
		if (ag_pgproto_error(out, sizeof(out), "FATAL", "08P01", err, NULL, NULL) < 0)
			abort();
		return 0;
	}
	if (st.kind != AG_PG_STARTUP)
		return 0;
	if (ag_pgproto_filter_startup(&st, &p, bad, err) < 0)
	{
		if (ag_pgproto_error(out, sizeof(out), "FATAL", "08P01", err, bad, NULL) < 0)
			abort();
		return 0;
	}
	n = ag_pgproto_build_startup(&p, "agent_role", "ag1.0123456789abcdef.0123456789abcdef",
								 out, sizeof(out));
	if (n < 0)
		abort();				/* filtered input must always rebuild */
	if (ag_pgproto_parse_startup(out, (size_t) n, &st, err) < 0)
		abort();
	return 0;
}
