/*
 * keysource_test.c
 *	  Tests of ag_keysource: JWKS file reloads, and a jwks_uri served over
 *	  real TLS by `openssl s_server -WWW` on loopback, with a CA and server
 *	  certificate made here.
 *
 * Ports: the first free one from 54050 to 54099.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ag_jwt.h"
#include "ag_test.h"

static char dir[256];
static pid_t server_pid;
static int	port;


static char *
path(const char *name)
{
	static char buf[4][512];
	static int	i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static void
write_file(const char *name, const char *data, size_t len)
{
	char		tmp[600];
	FILE	   *f;

	/* rename so that the server and reload never see half a file */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path(name));
	f = fopen(tmp, "w");
	fwrite(data, 1, len, f);
	fclose(f);
	rename(tmp, path(name));
}

static void
write_str(const char *name, const char *s)
{
	write_file(name, s, strlen(s));
}

/* An oct JWKS with one key per kid given (NULL-terminated). */
static void
write_jwks(const char *name, const char *kid,...)
{
	char		doc[4096];
	size_t		o;
	va_list		ap;
	int			first = 1;

	o = (size_t) snprintf(doc, sizeof(doc), "{\"keys\":[");
	va_start(ap, kid);
	for (const char *k = kid; k; k = va_arg(ap, const char *))
	{
		o += (size_t) snprintf(doc + o, sizeof(doc) - o,
							   "%s{\"kty\":\"oct\",\"kid\":\"%s\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
							   first ? "" : ",", k);
		first = 0;
	}
	va_end(ap);
	snprintf(doc + o, sizeof(doc) - o, "]}");
	write_file(name, doc, strlen(doc));
}

static int
has_kid(ag_keysource *src, const char *kid)
{
	ag_keyset  *ks = ag_keysource_get(src);
	int			r = ag_keyset_has_kid(ks, kid);

	ag_keyset_unref(ks);
	return r;
}

/* Poll for up to ms for kid to appear (want 1) or stay absent (want 0). */
static int
wait_kid(ag_keysource *src, const char *kid, int ms)
{
	for (int i = 0; i < ms / 20; i++)
	{
		if (has_kid(src, kid))
			return 1;
		usleep(20000);
	}
	return has_kid(src, kid);
}

/* Poll for up to ms for the last error to mention what; leaves it in err. */
static int
wait_error(ag_keysource *src, const char *what, char *err, size_t errlen, int ms)
{
	for (int i = 0; i <= ms / 20; i++)
	{
		ag_keysource_last_error(src, err, errlen);
		if (strstr(err, what) != NULL)
			return 1;
		usleep(20000);
	}
	return 0;
}

/* ---- certificates ---- */

static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int ca,
		  const char *san)
{
	X509	   *x = X509_new();
	X509_NAME  *name = X509_NAME_new();
	X509V3_CTX	ctx;
	X509_EXTENSION *ext;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (ca)
	{
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	if (san)
	{
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256());
	X509_NAME_free(name);
	return x;
}

static void
make_pki(void)
{
	EVP_PKEY   *cakey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY   *srvkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509	   *ca = make_cert(cakey, "agentgate test CA", NULL, NULL, 1, NULL);
	X509	   *srv = make_cert(srvkey, "127.0.0.1", ca, cakey, 0, "IP:127.0.0.1");
	FILE	   *f;

	f = fopen(path("ca.pem"), "w");
	PEM_write_X509(f, ca);
	fclose(f);
	f = fopen(path("server.pem"), "w");
	PEM_write_X509(f, srv);
	fclose(f);
	f = fopen(path("server.key"), "w");
	PEM_write_PrivateKey(f, srvkey, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(ca);
	X509_free(srv);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(srvkey);
}

static int
port_open(int p)
{
	int			s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t) p)};
	int			r;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r = connect(s, (struct sockaddr *) &a, sizeof(a)) == 0;
	close(s);
	return r;
}

/* Start openssl s_server -WWW in dir/www on the first free port. */
static int
start_server(void)
{
	for (port = 54050; port <= 54099; port++)
	{
		char		accept_arg[32];

		if (port_open(port))
			continue;
		snprintf(accept_arg, sizeof(accept_arg), "127.0.0.1:%d", port);
		server_pid = fork();
		if (server_pid == 0)
		{
			int			null = open("/dev/null", O_RDWR);

			if (chdir(path("www")) != 0)
				_exit(127);
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			execlp("openssl", "openssl", "s_server", "-WWW", "-quiet",
				   "-accept", accept_arg, "-cert", path("server.pem"),
				   "-key", path("server.key"), (char *) NULL);
			_exit(127);
		}
		for (int i = 0; i < 100; i++)
		{
			int			st;

			if (port_open(port))
				return 1;
			if (waitpid(server_pid, &st, WNOHANG) == server_pid)
				break;			/* port taken meanwhile: try the next */
			usleep(50000);
		}
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	return 0;
}

static void
test_file(void)
{
	ag_keysource_config cfg = {0};
	ag_keysource *src;
	char		err[AG_JWT_ERRLEN];

	cfg.jwks_file = path("file.jwks");
	ok(ag_keysource_new(&cfg, err, sizeof(err)) == NULL, "missing file refused at start");
	write_str("file.jwks", "{\"keys\":[]}");
	ok(ag_keysource_new(&cfg, err, sizeof(err)) == NULL, "empty keyset refused at start: %s", err);

	write_jwks("file.jwks", "f1", NULL);
	src = ag_keysource_new(&cfg, err, sizeof(err));
	ok(src != NULL, "file source: %s", err);
	if (src == NULL)
		return;
	ok(ag_keysource_wait(src, 0), "file keys available at once");
	ok(has_kid(src, "f1"), "file kid f1");

	/* a bad file keeps the old keys */
	write_str("file.jwks", "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}");
	ok(ag_keysource_reload(src, err, sizeof(err)) != 0, "reload of a bad file fails");
	ok(strstr(err, "oct key") != NULL, "reload error says why: %s", err);
	ok(has_kid(src, "f1"), "old keys kept after a bad reload");
	unlink(path("file.jwks"));
	ok(ag_keysource_reload(src, err, sizeof(err)) != 0, "reload of a missing file fails");
	ok(has_kid(src, "f1"), "old keys kept when the file is gone");

	/* a good file replaces them; a keyset taken before stays usable */
	{
		ag_keyset  *old = ag_keysource_get(src);

		write_jwks("file.jwks", "f2", "f3", NULL);
		ok(ag_keysource_reload(src, err, sizeof(err)) == 0, "reload: %s", err);
		ok(has_kid(src, "f2") && has_kid(src, "f3") && !has_kid(src, "f1"), "new file keys");
		ok(ag_keyset_has_kid(old, "f1"), "old keyset still valid for its holder");
		ag_keyset_unref(old);
	}
	ag_keysource_free(src);

	cfg.jwks_file = NULL;
	ok(ag_keysource_new(&cfg, err, sizeof(err)) == NULL, "no source refused");
	cfg.jwks_uri = "http://127.0.0.1/jwks.json";
	ok(ag_keysource_new(&cfg, err, sizeof(err)) == NULL && strstr(err, "https"), "http uri refused");
}

static void
test_uri(void)
{
	ag_keysource_config cfg = {0};
	ag_keysource *src;
	char		err[AG_JWT_ERRLEN];
	char		uri[128],
				uri_host[128];
	double		t0;

	write_jwks("www/jwks.json", "u1", NULL);
	snprintf(uri, sizeof(uri), "https://127.0.0.1:%d/jwks.json", port);
	cfg.jwks_uri = uri;
	cfg.ca_file = path("ca.pem");
	cfg.refresh_s = 3600;
	cfg.min_refetch_s = 2;

	src = ag_keysource_new(&cfg, err, sizeof(err));
	ok(src != NULL, "uri source: %s", err);
	if (src == NULL)
		return;
	ok(ag_keysource_wait(src, 10000), "uri keys fetched");
	ag_keysource_last_error(src, err, sizeof(err));
	ok(has_kid(src, "u1"), "uri kid u1 (%s)", err);

	/* an unknown kid triggers a refetch ... */
	write_jwks("www/jwks.json", "u1", "u2", NULL);
	sleep(2);					/* past min_refetch_s since the first fetch */
	ag_keysource_unknown_kid(src, "u2");
	ok(wait_kid(src, "u2", 5000), "unknown kid refetched");

	/* ... at most once per min_refetch_s */
	t0 = (double) time(NULL);
	write_jwks("www/jwks.json", "u1", "u2", "u3", NULL);
	ag_keysource_unknown_kid(src, "u3");
	usleep(600000);
	ok(!has_kid(src, "u3") || (double) time(NULL) - t0 >= 2, "unknown-kid refetch rate limited");
	sleep(2);
	ag_keysource_unknown_kid(src, "u3");
	ok(wait_kid(src, "u3", 5000), "refetch allowed again after min_refetch_s");

	/* a known kid (it failed for another reason) never refetches */
	write_jwks("www/jwks.json", "u9", NULL);
	sleep(2);
	ag_keysource_unknown_kid(src, "u1");
	usleep(800000);
	ok(has_kid(src, "u1") && !has_kid(src, "u9"), "known kid does not refetch");

	/* a token without kid that no key fitted: kid NULL also refetches */
	write_jwks("www/jwks.json", "u1", "u5", NULL);
	sleep(2);
	ag_keysource_unknown_kid(src, NULL);
	ok(wait_kid(src, "u5", 5000), "unknown_kid(NULL) refetches");

	/* bad documents keep the old keys */
	write_str("www/jwks.json", "{\"keys\":[{\"kty\":\"RSA\"}]}");
	ag_keysource_reload(src, err, sizeof(err));
	ok(wait_error(src, "member \"n\"", err, sizeof(err), 5000) && has_kid(src, "u1"),
	   "bad uri document keeps keys: %s", err);
	{
		size_t		big = AG_JWKS_MAX_BYTES + 100;
		char	   *doc = malloc(big);

		memset(doc, ' ', big);
		memcpy(doc, "{\"keys\":[", 9);
		memcpy(doc + big - 2, "]}", 2);
		write_file("www/jwks.json", doc, big);
		free(doc);
	}
	sleep(2);
	ag_keysource_reload(src, err, sizeof(err));
	ok(wait_error(src, "larger", err, sizeof(err), 5000) && has_kid(src, "u1"),
	   "oversized uri document refused: %s", err);

	/* reload refetches at once */
	write_jwks("www/jwks.json", "u4", NULL);
	ag_keysource_reload(src, err, sizeof(err));
	ok(wait_kid(src, "u4", 5000) && !has_kid(src, "u1"), "reload refetches the uri");
	ag_keysource_free(src);

	/* TLS verification: unknown CA, wrong host name */
	cfg.ca_file = NULL;
	src = ag_keysource_new(&cfg, err, sizeof(err));
	ok(src && !ag_keysource_wait(src, 1500), "untrusted CA: no keys");
	if (src)
	{
		ok(wait_error(src, "certificate", err, sizeof(err), 5000), "untrusted CA error: %s", err);
		ag_keysource_free(src);
	}
	snprintf(uri_host, sizeof(uri_host), "https://localhost:%d/jwks.json", port);
	cfg.ca_file = path("ca.pem");
	cfg.jwks_uri = uri_host;
	src = ag_keysource_new(&cfg, err, sizeof(err));
	ok(src && !ag_keysource_wait(src, 1500), "host name mismatch: no keys");
	if (src)
	{
		ok(wait_error(src, "localhost", err, sizeof(err), 5000), "host name mismatch error: %s", err);
		ag_keysource_free(src);
	}

	/* file and uri together: both sets of keys */
	write_jwks("file.jwks", "f1", NULL);
	cfg.jwks_uri = uri;
	cfg.jwks_file = path("file.jwks");
	src = ag_keysource_new(&cfg, err, sizeof(err));
	ok(src && has_kid(src, "f1"), "file keys at once with a uri too");
	ok(src && wait_kid(src, "u4", 5000) && has_kid(src, "f1"), "file and uri keys merged");
	ag_keysource_free(src);

	/* periodic refresh, with no call at all */
	cfg.jwks_file = NULL;
	cfg.refresh_s = 2;
	src = ag_keysource_new(&cfg, err, sizeof(err));
	ok(src && wait_kid(src, "u4", 5000), "refresh source: first fetch");
	write_jwks("www/jwks.json", "u6", NULL);
	ok(src && wait_kid(src, "u6", 6000), "refreshed every refresh_s");
	ag_keysource_free(src);
	cfg.refresh_s = 3600;

	/* free while a fetch is pending does not hang */
	cfg.jwks_file = NULL;
	src = ag_keysource_new(&cfg, err, sizeof(err));
	ag_keysource_free(src);
	ok(1, "free right after new");
}

int
main(void)
{
	snprintf(dir, sizeof(dir), "%s/ag_keysource_test.XXXXXX",
			 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL)
	{
		perror("mkdtemp");
		return 2;
	}
	mkdir(path("www"), 0700);

	test_file();

	make_pki();
	if (!start_server())
	{
		ok(0, "could not start openssl s_server on 54050-54099");
	}
	else
	{
		test_uri();
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}

	{
		char		cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return ag_test_report();
}
