/*-------------------------------------------------------------------------
 *
 * keysource.c
 *	  Where keysets come from: a JWKS file and/or a jwks_uri.
 *
 * The file is read at start and on ag_keysource_reload (SIGHUP in the
 * proxy).  The uri is fetched over HTTPS by one background thread: at
 * start, every refresh_s seconds, on reload, and when a token names a kid
 * we do not have (at most once per min_refetch_s, so that tokens with
 * made-up kids cannot make us hammer the identity provider).  A failed
 * fetch or a bad document never replaces good keys; failures are retried
 * with a doubling delay capped at refresh_s.
 *
 * ag_keysource_get only takes a mutex and a reference, so the proxy's
 * event loop never waits on the network.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "jwt_int.h"

#define DEFAULT_REFRESH_S	300
#define DEFAULT_REFETCH_S	30
#define FETCH_TIMEOUT_S		10
#define CONNECT_TIMEOUT_S	5

struct ag_keysource
{
	pthread_mutex_t mu;
	pthread_cond_t cv;			/* wakes the fetcher; signals waiters */
	char	   *jwks_file;
	char	   *jwks_uri;
	char	   *ca_file;
	int			refresh_s;
	int			min_refetch_s;

	/* protected by mu */
	ag_keyset  *file_ks;
	ag_keyset  *uri_ks;
	ag_keyset  *current;		/* what ag_keysource_get hands out */
	bool		fetch_now;
	bool		stop;
	double		last_fetch;		/* monotonic start of the last attempt */
	char		last_error[AG_JWT_ERRLEN];

	bool		thread_started;
	pthread_t	thread;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Recompute current from the file and uri keysets; caller holds mu. */
static void
rebuild_current(ag_keysource *src)
{
	ag_keyset  *ks;

	if (src->file_ks && src->uri_ks)
		ks = ag_keyset_merge(src->file_ks, src->uri_ks);
	else
		ks = ag_keyset_ref(src->file_ks ? src->file_ks : src->uri_ks);
	if (ks == NULL && (src->file_ks || src->uri_ks))
		return;					/* out of memory: keep what we had */
	ag_keyset_unref(src->current);
	src->current = ks;
	pthread_cond_broadcast(&src->cv);
}

/* ---- HTTPS fetch ---- */

typedef struct fetch_buf
{
	char	   *data;
	size_t		len;
	bool		too_big;
	ag_keysource *src;
} fetch_buf;

static size_t
fetch_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	fetch_buf  *fb = arg;
	size_t		n = size * nmemb;
	char	   *p;

	if (fb->len + n > AG_JWKS_MAX_BYTES)
	{
		fb->too_big = true;
		return 0;				/* aborts the transfer */
	}
	if ((p = realloc(fb->data, fb->len + n + 1)) == NULL)
		return 0;
	fb->data = p;
	memcpy(fb->data + fb->len, ptr, n);
	fb->len += n;
	return n;
}

/* Abort a transfer in progress when the source is being freed. */
static int
fetch_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
			   curl_off_t ultotal, curl_off_t ulnow)
{
	fetch_buf  *fb = arg;
	bool		stop;

	pthread_mutex_lock(&fb->src->mu);
	stop = fb->src->stop;
	pthread_mutex_unlock(&fb->src->mu);
	return stop ? 1 : 0;
}

/* Fetch and parse the jwks_uri; NULL with err set on any failure. */
static ag_keyset *
fetch_uri(ag_keysource *src, char *err, size_t errlen)
{
	CURL	   *c = curl_easy_init();
	fetch_buf	fb = {NULL, 0, false, src};
	char		curlerr[CURL_ERROR_SIZE] = "";
	CURLcode	rc;
	long		status = 0;
	ag_keyset  *ks = NULL;

	if (c == NULL)
	{
		ag_jwt_seterr(err, errlen, "jwks_uri: cannot start libcurl");
		return NULL;
	}
	curl_easy_setopt(c, CURLOPT_URL, src->jwks_uri);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
	if (src->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, src->ca_file);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long) FETCH_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long) CONNECT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);	/* we are not the main thread */
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) AG_JWKS_MAX_BYTES);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &fb);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, fetch_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, &fb);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curlerr);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "agentgate-jwks/1");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);

	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (fb.too_big || rc == CURLE_FILESIZE_EXCEEDED)
		ag_jwt_seterr(err, errlen, "jwks_uri: document larger than %d bytes", AG_JWKS_MAX_BYTES);
	else if (rc != CURLE_OK)
		ag_jwt_seterr(err, errlen, "jwks_uri: %s", curlerr[0] ? curlerr : curl_easy_strerror(rc));
	else if (status != 200)
		ag_jwt_seterr(err, errlen, "jwks_uri: HTTP status %ld", status);
	else
	{
		char		why[AG_JWT_ERRLEN];

		ks = ag_keyset_parse(fb.data ? fb.data : "", fb.len, why, sizeof(why));
		if (ks == NULL)
			ag_jwt_seterr(err, errlen, "jwks_uri: %s", why);
	}
	curl_easy_cleanup(c);
	free(fb.data);
	return ks;
}

static void *
fetcher_main(void *arg)
{
	ag_keysource *src = arg;
	double		next = 0;		/* first fetch at once */
	double		backoff = 0;

	pthread_mutex_lock(&src->mu);
	while (!src->stop)
	{
		double		now = mono_now();
		ag_keyset  *ks;
		char		err[AG_JWT_ERRLEN];

		if (!src->fetch_now && now < next)
		{
			struct timespec ts;

			ts.tv_sec = (time_t) next;
			ts.tv_nsec = (long) ((next - (double) ts.tv_sec) * 1e9);
			pthread_cond_timedwait(&src->cv, &src->mu, &ts);
			continue;
		}
		src->fetch_now = false;
		src->last_fetch = now;
		pthread_mutex_unlock(&src->mu);

		ks = fetch_uri(src, err, sizeof(err));

		pthread_mutex_lock(&src->mu);
		if (ks != NULL)
		{
			ag_keyset_unref(src->uri_ks);
			src->uri_ks = ks;
			rebuild_current(src);
			src->last_error[0] = '\0';
			backoff = 0;
			next = mono_now() + src->refresh_s;
		}
		else
		{
			snprintf(src->last_error, sizeof(src->last_error), "%s", err);
			backoff = backoff == 0 ? 1 : backoff * 2;
			if (backoff > src->refresh_s)
				backoff = src->refresh_s;
			next = mono_now() + backoff;
		}
	}
	pthread_mutex_unlock(&src->mu);
	return NULL;
}

ag_keysource *
ag_keysource_new(const ag_keysource_config *cfg, char *err, size_t errlen)
{
	ag_keysource *src;
	pthread_condattr_t ca;

	if (cfg == NULL || (cfg->jwks_file == NULL && cfg->jwks_uri == NULL))
	{
		ag_jwt_seterr(err, errlen, "neither a JWKS file nor a jwks_uri is configured");
		return NULL;
	}
	if (cfg->jwks_uri && strncmp(cfg->jwks_uri, "https://", 8) != 0)
	{
		ag_jwt_seterr(err, errlen, "jwks_uri must start with https://");
		return NULL;
	}
	if ((src = calloc(1, sizeof(*src))) == NULL)
	{
		ag_jwt_seterr(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&src->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&src->cv, &ca);
	pthread_condattr_destroy(&ca);
	src->refresh_s = cfg->refresh_s > 0 ? cfg->refresh_s : DEFAULT_REFRESH_S;
	src->min_refetch_s = cfg->min_refetch_s > 0 ? cfg->min_refetch_s : DEFAULT_REFETCH_S;
	if ((cfg->jwks_file && (src->jwks_file = strdup(cfg->jwks_file)) == NULL) ||
		(cfg->jwks_uri && (src->jwks_uri = strdup(cfg->jwks_uri)) == NULL) ||
		(cfg->ca_file && (src->ca_file = strdup(cfg->ca_file)) == NULL))
	{
		ag_jwt_seterr(err, errlen, "out of memory");
		ag_keysource_free(src);
		return NULL;
	}

	if (src->jwks_file)
	{
		if ((src->file_ks = ag_keyset_load_file(src->jwks_file, err, errlen)) == NULL)
		{
			ag_keysource_free(src);
			return NULL;
		}
		rebuild_current(src);
	}
	if (src->jwks_uri)
	{
		pthread_once(&curl_once, curl_init_once);
		if (pthread_create(&src->thread, NULL, fetcher_main, src) != 0)
		{
			ag_jwt_seterr(err, errlen, "cannot start the JWKS fetcher thread");
			ag_keysource_free(src);
			return NULL;
		}
		src->thread_started = true;
	}
	return src;
}

ag_keyset *
ag_keysource_get(ag_keysource *src)
{
	ag_keyset  *ks;

	pthread_mutex_lock(&src->mu);
	ks = ag_keyset_ref(src->current);
	pthread_mutex_unlock(&src->mu);
	return ks;
}

int
ag_keysource_reload(ag_keysource *src, char *err, size_t errlen)
{
	int			rc = 0;

	if (src->jwks_file)
	{
		ag_keyset  *ks = ag_keyset_load_file(src->jwks_file, err, errlen);

		pthread_mutex_lock(&src->mu);
		if (ks != NULL)
		{
			ag_keyset_unref(src->file_ks);
			src->file_ks = ks;
			rebuild_current(src);
		}
		else
		{
			snprintf(src->last_error, sizeof(src->last_error), "%s", err ? err : "reload failed");
			rc = -1;
		}
		pthread_mutex_unlock(&src->mu);
	}
	if (src->jwks_uri)
	{
		pthread_mutex_lock(&src->mu);
		src->fetch_now = true;
		pthread_cond_broadcast(&src->cv);
		pthread_mutex_unlock(&src->mu);
	}
	return rc;
}

void
ag_keysource_unknown_kid(ag_keysource *src, const char *kid)
{
	if (src->jwks_uri == NULL)
		return;
	pthread_mutex_lock(&src->mu);
	/* a kid we do have failed for another reason (alg); nothing to fetch */
	if ((kid == NULL || !ag_keyset_has_kid(src->current, kid)) && !src->fetch_now &&
		mono_now() - src->last_fetch >= src->min_refetch_s)
	{
		src->fetch_now = true;
		pthread_cond_broadcast(&src->cv);
	}
	pthread_mutex_unlock(&src->mu);
}

int
ag_keysource_wait(ag_keysource *src, int timeout_ms)
{
	double		until = mono_now() + timeout_ms / 1000.0;
	int			have;

	pthread_mutex_lock(&src->mu);
	while (src->current == NULL && mono_now() < until)
	{
		struct timespec ts;

		ts.tv_sec = (time_t) until;
		ts.tv_nsec = (long) ((until - (double) ts.tv_sec) * 1e9);
		pthread_cond_timedwait(&src->cv, &src->mu, &ts);
	}
	have = src->current != NULL;
	pthread_mutex_unlock(&src->mu);
	return have;
}

void
ag_keysource_last_error(ag_keysource *src, char *buf, size_t len)
{
	pthread_mutex_lock(&src->mu);
	snprintf(buf, len, "%s", src->last_error);
	pthread_mutex_unlock(&src->mu);
}

void
ag_keysource_free(ag_keysource *src)
{
	if (src == NULL)
		return;
	if (src->thread_started)
	{
		pthread_mutex_lock(&src->mu);
		src->stop = true;
		pthread_cond_broadcast(&src->cv);
		pthread_mutex_unlock(&src->mu);
		pthread_join(src->thread, NULL);
	}
	ag_keyset_unref(src->current);
	ag_keyset_unref(src->file_ks);
	ag_keyset_unref(src->uri_ks);
	pthread_cond_destroy(&src->cv);
	pthread_mutex_destroy(&src->mu);
	free(src->jwks_file);
	free(src->jwks_uri);
	free(src->ca_file);
	free(src);
}
