/*-------------------------------------------------------------------------
 *
 * proxy_log.c
 *	  Log lines on stderr: time, level, connection id, identity, session.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static const char *const level_names[] = {
	"DEBUG", "LOG", "WARNING", "ERROR", "FATAL"
};

void
ag_log(ag_log_level level, const ag_client *c, const char *fmt,...)
{
	char		msg[1024];
	char		ts[40];
	char		who[200] = "";
	struct timeval tv;
	struct tm	tm;
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* messages may quote token fields (a kid, a claim): one line, no escapes */
	for (char *p = msg; *p; p++)
	{
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			*p = '?';
	}

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);

	if (c)
		snprintf(who, sizeof(who), " [c%llu%s%s%s%s]",
				 (unsigned long long) c->id,
				 c->identity[0] ? " identity=" : "", c->identity,
				 c->session[0] ? " session=" : "", c->session);
	/* one fprintf per line so that lines from concurrent runs do not mix */
	fprintf(stderr, "%s.%03d UTC %s%s %s\n", ts, (int) (tv.tv_usec / 1000),
			level_names[level], who, msg);
}
