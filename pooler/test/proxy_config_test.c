/*
 * proxy_config_test.c
 *	  Unit tests for the agentgate-proxy configuration file parser.
 */
#include "proxy_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ag_test.h"

static char path[] = "/tmp/proxy_config_test_XXXXXX";

#define REQUIRED \
	"tls_cert_file = c.pem\n" \
	"tls_key_file = k.pem\n" \
	"pgbouncer_socket_dir = /run/pgb\n" \
	"admin_conninfo = 'dbname=app'\n" \
	"jwks_file = jwks.json\n" \
	"issuer = https://idp/\n" \
	"audience = db\n"

static ag_proxy_config *
load(const char *text, char *err)
{
	FILE	   *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	err[0] = '\0';
	return ag_proxy_config_load(path, err, 512);
}

int
main(void)
{
	ag_proxy_config *cfg;
	char		err[512];
	int			fd = mkstemp(path);

	if (fd < 0)
		return 2;
	close(fd);

	cfg = load(REQUIRED, err);
	CHECK(cfg != NULL, "required keys only");
	if (cfg)
	{
		CHECK(strcmp(cfg->listen_addr, "127.0.0.1") == 0, "listen_addr default");
		CHECK(cfg->listen_port == 6432 && cfg->pgbouncer_port == 6433, "port defaults");
		CHECK(strcmp(cfg->tls_min_version, "TLSv1.2") == 0, "tls_min_version default");
		CHECK(cfg->jwks_refresh == 300 && cfg->jwks_min_refetch == 30, "jwks defaults");
		CHECK(cfg->leeway == 60 && cfg->exp_grace == 0 && cfg->auth_timeout == 10, "timing defaults");
		CHECK(cfg->max_clients == 10000 && cfg->max_startup_bytes == 10000, "limit defaults");
		CHECK(cfg->admin_connections == 4, "admin_connections default");
		/* sized for the README's PgBouncer max_client_conn = 1000 */
		CHECK(cfg->max_connections == 900 && cfg->max_cancel_connections == 100 &&
			  cfg->max_connections + cfg->max_cancel_connections <= 1000,
			  "connection limit defaults fit max_client_conn = 1000");
		CHECK(cfg->max_connections_per_identity == 100 &&
			  cfg->max_connections_per_identity < cfg->max_connections,
			  "per-identity default below the total");
		CHECK(cfg->cancel_rate == 10 && cfg->cancel_burst == 20, "cancel rate defaults");
		CHECK(strcmp(cfg->identity_claim, "sub") == 0 && strcmp(cfg->groups_claim, "groups") == 0 &&
			  strcmp(cfg->scope_claim, "scope") == 0,
			  "claim defaults");
		CHECK(cfg->pid_file == NULL && cfg->jwks_uri == NULL, "optional keys unset");
		CHECK(cfg->shared_pool == 0, "shared_pool off by default");
		CHECK(strcmp(cfg->admin_conninfo, "dbname=app") == 0, "quoted value");
		ag_proxy_config_free(cfg);
	}

	cfg = load("# comment\n\n  listen_addr = '127.0.0.1, ::1'  # trailing\n"
			   "listen_port=7000\n"
			   "issuer = 'it''s # not a comment'\n" REQUIRED
			   "issuer = 'it''s # not a comment'\n"
			   "exp_grace = 30\n", err);
	CHECK(cfg != NULL, "comments, spacing, quotes");
	if (cfg)
	{
		CHECK(strcmp(cfg->listen_addr, "127.0.0.1, ::1") == 0, "quoted list with trailing comment");
		CHECK(cfg->listen_port == 7000, "no spaces around =");
		CHECK(strcmp(cfg->issuer, "it's # not a comment") == 0, "doubled quote and # inside quotes; last wins");
		CHECK(cfg->exp_grace == 30, "exp_grace");
		ag_proxy_config_free(cfg);
	}

	cfg = load(REQUIRED "shared_pool = on\n", err);
	CHECK(cfg != NULL && cfg->shared_pool == 1, "shared_pool = on");
	ag_proxy_config_free(cfg);
	cfg = load(REQUIRED "shared_pool = 'OFF'\n", err);
	CHECK(cfg != NULL && cfg->shared_pool == 0, "shared_pool = 'OFF'");
	ag_proxy_config_free(cfg);
	cfg = load(REQUIRED "shared_pool = maybe\n", err);
	CHECK(cfg == NULL && strstr(err, "shared_pool") && strstr(err, "on or off"),
		  "shared_pool = maybe refused");

	cfg = load(REQUIRED "scope_claim = scp\ngroups_claim = roles\n", err);
	CHECK(cfg != NULL && strcmp(cfg->scope_claim, "scp") == 0 && strcmp(cfg->groups_claim, "roles") == 0,
		  "scope_claim and groups_claim set");
	ag_proxy_config_free(cfg);
	cfg = load(REQUIRED "scope_claim = 'https://example.com/scp'\n", err);
	CHECK(cfg != NULL && strcmp(cfg->scope_claim, "https://example.com/scp") == 0,
		  "scope_claim takes any claim name");
	ag_proxy_config_free(cfg);

	cfg = load(REQUIRED "listen_prot = 1\n", err);
	CHECK(cfg == NULL && strstr(err, "unknown key \"listen_prot\"") && strstr(err, ":8:"),
		  "unknown key refused with its line");
	cfg = load(REQUIRED "listen_port = 70000\n", err);
	CHECK(cfg == NULL && strstr(err, "listen_port"), "port out of range");
	cfg = load(REQUIRED "max_connections_per_identity = 0\n", err);
	CHECK(cfg == NULL && strstr(err, "max_connections_per_identity"), "per-identity limit of 0 refused");
	cfg = load(REQUIRED "cancel_rate = -1\n", err);
	CHECK(cfg == NULL && strstr(err, "cancel_rate"), "negative cancel_rate refused");
	cfg = load(REQUIRED "max_connections = 5\nmax_connections_per_identity = 2\n"
			   "max_cancel_connections = 3\ncancel_rate = 1\ncancel_burst = 4\n", err);
	CHECK(cfg != NULL && cfg->max_connections == 5 && cfg->max_connections_per_identity == 2 &&
		  cfg->max_cancel_connections == 3 && cfg->cancel_rate == 1 && cfg->cancel_burst == 4,
		  "limit settings read");
	ag_proxy_config_free(cfg);
	cfg = load(REQUIRED "auth_timeout = 10s\n", err);
	CHECK(cfg == NULL && strstr(err, "auth_timeout"), "trailing junk in integer");
	cfg = load(REQUIRED "issuer = 'open\n", err);
	CHECK(cfg == NULL && strstr(err, "unterminated"), "unterminated quote");
	cfg = load(REQUIRED "= x\n", err);
	CHECK(cfg == NULL && strstr(err, "expected a key"), "missing key");
	cfg = load(REQUIRED "issuer x\n", err);
	CHECK(cfg == NULL && strstr(err, "expected '='"), "missing =");
	cfg = load(REQUIRED "tls_min_version = TLSv1.1\n", err);
	CHECK(cfg == NULL && strstr(err, "tls_min_version"), "TLS 1.1 refused");
	cfg = load(REQUIRED "jwks_uri = http://idp/jwks\n", err);
	CHECK(cfg == NULL && strstr(err, "https"), "plain http jwks_uri refused");
	cfg = load("tls_cert_file = c\ntls_key_file = k\npgbouncer_socket_dir = /s\n"
			   "admin_conninfo = x\njwks_file = j\nissuer = i\n", err);
	CHECK(cfg == NULL && strstr(err, "audience is required"), "audience required");
	cfg = load("tls_cert_file = c\ntls_key_file = k\npgbouncer_socket_dir = /s\n"
			   "admin_conninfo = x\naudience = a\nissuer = i\n", err);
	CHECK(cfg == NULL && strstr(err, "jwks_file and jwks_uri"), "a key source required");
	cfg = load(REQUIRED "tls_cert_file = ''\n", err);
	CHECK(cfg == NULL && strstr(err, "tls_cert_file is required"), "empty value unsets a key");
	unlink(path);
	cfg = ag_proxy_config_load(path, err, sizeof(err));
	CHECK(cfg == NULL && strstr(err, "could not open"), "missing file");

	return ag_test_report();
}
