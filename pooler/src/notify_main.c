/*-------------------------------------------------------------------------
 *
 * notify_main.c
 *	  agentgate-notify: posts approval requests and decisions to a webhook.
 *
 * LISTENs on agentgate_approvals in one database (the queue is per
 * database: run one per database agents use) and POSTs each notification
 * as JSON to webhook_url over HTTPS: a Slack-compatible {"text": ...} plus
 * the request's fields.  The statement is the normalised one (literals as
 * $n, as in the audit log) unless exact_statement = 1.  A post that fails
 * (no connection, a non-2xx answer) is retried max_attempts times, the
 * wait doubling from retry_delay_ms; then it is logged and dropped (the
 * queue table stays the record).  A lost database connection is opened
 * again, with the same backoff; notifications sent meanwhile are lost
 * (NOTIFY is not queued for absent listeners): approvers should also look
 * at agentgate.pending_approvals.
 *
 * The role in conninfo must not be an agent (agents may not LISTEN on
 * agentgate_* channels); it needs no privilege on the queue.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "ag_conffile.h"

typedef struct notify_config
{
	char	   *conninfo;
	char	   *webhook_url;
	char	   *ca_file;		/* to verify the webhook's certificate */
	int			exact_statement;
	int			max_attempts;
	int			retry_delay_ms;
	int			timeout_ms;
} notify_config;

#define K(f, d)			AG_CONF_S(notify_config, f, d)
#define KI(f, d, l, h)	AG_CONF_I(notify_config, f, d, l, h)
static const ag_conf_key notify_keys[] = {
	K(conninfo, NULL),
	K(webhook_url, NULL),
	K(ca_file, NULL),
	KI(exact_statement, "0", 0, 1),
	KI(max_attempts, "5", 1, 100),
	KI(retry_delay_ms, "500", 1, 600000),
	KI(timeout_ms, "10000", 100, 600000),
};

static volatile sig_atomic_t stopping = 0;

static void
on_signal(int sig)
{
	stopping = 1;
}

static void logmsg(const char *fmt,...) __attribute__((format(printf, 1, 2)));

static void
logmsg(const char *fmt,...)
{
	va_list		ap;
	time_t		now = time(NULL);
	char		ts[32];

	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", gmtime(&now));
	fprintf(stderr, "%s UTC agentgate-notify: ", ts);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (!stopping && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static const char *
str_field(json_t *o, const char *key)
{
	json_t	   *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : "";
}

/*
 * The webhook's body: the notification's fields, the statement chosen as
 * configured, and a one-line "text" for chat.  NULL when the payload is not
 * agentgate's JSON.
 */
static char *
build_body(const notify_config *cfg, const char *payload)
{
	json_error_t jerr;
	json_t	   *in = json_loads(payload, 0, &jerr);
	json_t	   *out;
	const char *stmt;
	const char *status;
	char		text[4096];
	json_int_t	id;
	char	   *body;

	if (!json_is_object(in))
	{
		json_decref(in);
		return NULL;
	}
	id = json_integer_value(json_object_get(in, "id"));
	status = str_field(in, "status");
	stmt = cfg->exact_statement ? str_field(in, "statement") : str_field(in, "normalized");
	if (strcmp(status, "pending") == 0)
		snprintf(text, sizeof(text),
				 "agentgate: %s asks to run in %s: %s (request %lld, %s; approve with SELECT agentgate.approve(%lld))",
				 str_field(in, "identity"), str_field(in, "database"), stmt,
				 (long long) id, str_field(in, "mode"), (long long) id);
	else
		snprintf(text, sizeof(text), "agentgate: request %lld by %s is %s%s%s%s%s: %s",
				 (long long) id, str_field(in, "identity"), status,
				 *str_field(in, "decided_by") ? " by " : "", str_field(in, "decided_by"),
				 *str_field(in, "comment") ? ": " : "", str_field(in, "comment"), stmt);

	out = json_object();
	json_object_set_new(out, "text", json_string(text));
	json_object_set_new(out, "id", json_integer(id));
	json_object_set_new(out, "status", json_string(status));
	json_object_set_new(out, "identity", json_string(str_field(in, "identity")));
	json_object_set_new(out, "database", json_string(str_field(in, "database")));
	json_object_set_new(out, "statement", json_string(stmt));
	json_object_set_new(out, "mode", json_string(str_field(in, "mode")));
	json_object_set(out, "rule_id", json_object_get(in, "rule_id") ?
					json_object_get(in, "rule_id") : json_null());
	json_object_set_new(out, "expires_at", json_string(str_field(in, "expires_at")));
	json_object_set_new(out, "decided_by", json_string(str_field(in, "decided_by")));
	json_object_set_new(out, "comment", json_string(str_field(in, "comment")));
	body = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	json_decref(in);
	return body;
}

static size_t
discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
	return size * nmemb;
}

/* One POST; 0 when the webhook answered 2xx. */
static int
post_once(const notify_config *cfg, const char *body, char *why, size_t whylen)
{
	CURL	   *h = curl_easy_init();
	struct curl_slist *hdr = NULL;
	CURLcode	rc;
	long		code = 0;

	if (h == NULL)
	{
		snprintf(why, whylen, "curl_easy_init failed");
		return -1;
	}
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, cfg->webhook_url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long) cfg->timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	if (cfg->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, cfg->ca_file);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK)
	{
		snprintf(why, whylen, "%s", curl_easy_strerror(rc));
		return -1;
	}
	if (code < 200 || code > 299)
	{
		snprintf(why, whylen, "HTTP status %ld", code);
		return -1;
	}
	return 0;
}

static void
post(const notify_config *cfg, const char *payload)
{
	char	   *body = build_body(cfg, payload);
	long		delay = cfg->retry_delay_ms;
	char		why[256] = "";
	int			attempt;

	if (body == NULL)
	{
		logmsg("ignored a notification that is not agentgate's JSON");
		return;
	}
	for (attempt = 1; attempt <= cfg->max_attempts && !stopping; attempt++)
	{
		if (post_once(cfg, body, why, sizeof(why)) == 0)
		{
			free(body);
			return;
		}
		logmsg("post %d of %d failed: %s", attempt, cfg->max_attempts, why);
		if (attempt < cfg->max_attempts)
		{
			sleep_ms(delay);
			delay = delay * 2 > 60000 ? 60000 : delay * 2;
		}
	}
	logmsg("dropped a notification after %d attempts: %s", cfg->max_attempts, payload);
	free(body);
}

static PGconn *
connect_and_listen(const notify_config *cfg)
{
	PGconn	   *conn = PQconnectdb(cfg->conninfo);
	PGresult   *res;

	if (PQstatus(conn) != CONNECTION_OK)
	{
		logmsg("could not connect: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	res = PQexec(conn, "LISTEN agentgate_approvals");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		logmsg("LISTEN failed: %s", PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	logmsg("listening on agentgate_approvals");
	return conn;
}

int
main(int argc, char **argv)
{
	notify_config cfg;
	char		err[512];
	PGconn	   *conn = NULL;
	long		delay;

	if (argc != 3 || strcmp(argv[1], "-c") != 0)
	{
		fprintf(stderr, "usage: agentgate-notify -c CONFIG_FILE\n");
		return 2;
	}
	memset(&cfg, 0, sizeof(cfg));
	if (ag_conf_load(&cfg, notify_keys, sizeof(notify_keys) / sizeof(notify_keys[0]),
					 argv[2], err, sizeof(err)) != 0)
	{
		fprintf(stderr, "agentgate-notify: %s\n", err);
		return 2;
	}
	if (cfg.conninfo == NULL || cfg.webhook_url == NULL ||
		strncmp(cfg.webhook_url, "https://", 8) != 0)
	{
		fprintf(stderr, "agentgate-notify: conninfo and an https:// webhook_url are required\n");
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	delay = cfg.retry_delay_ms;
	while (!stopping)
	{
		PGnotify   *n;
		fd_set		rd;
		struct timeval tv = {1, 0};
		int			sock;

		if (conn == NULL)
		{
			conn = connect_and_listen(&cfg);
			if (conn == NULL)
			{
				sleep_ms(delay);
				delay = delay * 2 > 60000 ? 60000 : delay * 2;
				continue;
			}
			delay = cfg.retry_delay_ms;
		}
		sock = PQsocket(conn);
		FD_ZERO(&rd);
		FD_SET(sock, &rd);
		if (select(sock + 1, &rd, NULL, NULL, &tv) < 0 && errno != EINTR)
			break;
		if (!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK)
		{
			logmsg("connection lost: %s", PQerrorMessage(conn));
			PQfinish(conn);
			conn = NULL;
			continue;
		}
		while ((n = PQnotifies(conn)) != NULL)
		{
			post(&cfg, n->extra);
			PQfreemem(n);
		}
	}
	if (conn)
		PQfinish(conn);
	curl_global_cleanup();
	ag_conf_free_strings(&cfg, notify_keys, sizeof(notify_keys) / sizeof(notify_keys[0]));
	return 0;
}
