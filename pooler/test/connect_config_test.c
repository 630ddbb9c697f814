/*
 * connect_config_test.c
 *	  Unit tests for the agentgate-connect configuration file parser.
 */
#include "connect_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ag_test.h"

static char path[] = "/tmp/connect_config_test_XXXXXX";

static ag_connect_config *
load(const char *text, char *err)
{
	FILE	   *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	err[0] = '\0';
	return ag_connect_config_load(path, err, 512);
}

static void
expect_error(const char *text, const char *want)
{
	char		err[512];
	ag_connect_config *cfg = load(text, err);

	ok(cfg == NULL && strstr(err, want) != NULL, "error \"%s\" for:\n%s(got \"%s\")", want, text, err);
	ag_connect_config_free(cfg);
}

int
main(void)
{
	char		err[512];
	ag_connect_config *cfg;
	int			fd = mkstemp(path);

	close(fd);

	cfg = load("listen_socket_dir = /run/ag\nproxy_host = db.example.com\n"
			   "ca_file = /etc/ag/ca.crt\ntoken_file = /run/tok\n", err);
	CHECK(cfg != NULL, "minimal config loads");
	if (cfg)
	{
		CHECK(cfg->listen_port == 6432 && cfg->proxy_port == 6432, "port defaults");
		CHECK(cfg->listen_tcp_port == 0, "TCP off by default");
		CHECK(strcmp(cfg->sslmode, "verify-full") == 0, "verify-full by default");
		CHECK(cfg->token_refresh_margin == 60, "margin default");
		CHECK(strcmp(cfg->user, "agent") == 0, "user default");
		CHECK(cfg->token_command == NULL && cfg->database == NULL, "unset keys are NULL");
		ag_connect_config_free(cfg);
	}
	cfg = load("listen_socket_dir = '/run/a b'\nproxy_host = h # comment\nsslmode = require\n"
			   "token_command = 'idp-cli token --aud ''db'''\nlisten_tcp_port = 7432\n"
			   "allowed_users = alice, bob\n", err);
	CHECK(cfg != NULL, "quoted values, comments, sslmode = require without ca_file");
	if (cfg)
	{
		CHECK(strcmp(cfg->listen_socket_dir, "/run/a b") == 0, "quoted value with a space");
		CHECK(strcmp(cfg->proxy_host, "h") == 0, "comment stripped");
		CHECK(strcmp(cfg->token_command, "idp-cli token --aud 'db'") == 0, "'' is a quote");
		CHECK(cfg->listen_tcp_port == 7432, "TCP port");
		CHECK(strcmp(cfg->allowed_users, "alice, bob") == 0, "allowed_users kept as text");
		ag_connect_config_free(cfg);
	}

	expect_error("proxy_host = h\ntoken_file = f\nsslmode = require\n", "listen_socket_dir is required");
	expect_error("listen_socket_dir = /d\ntoken_file = f\nsslmode = require\n", "proxy_host is required");
	expect_error("listen_socket_dir = /d\nproxy_host = h\nsslmode = require\n",
				 "exactly one of token_file and token_command");
	expect_error("listen_socket_dir = /d\nproxy_host = h\nsslmode = require\ntoken_file = f\ntoken_command = c\n",
				 "exactly one of token_file and token_command");
	expect_error("listen_socket_dir = /d\nproxy_host = h\ntoken_file = f\n",
				 "ca_file is required with sslmode = verify-full");
	expect_error("listen_socket_dir = /d\nproxy_host = h\ntoken_file = f\nsslmode = prefer\n",
				 "sslmode must be verify-full, verify-ca or require");
	expect_error("listen_socket_dir = /d\nproxy_host = h\ntoken_file = f\nsslmode = require\nlisten_tcp_port = 70000\n",
				 "invalid value for listen_tcp_port");
	expect_error("listen_socket_dir = /d\nproxy_host = h\ntoken_file = f\nsslmode = require\ntoken_refresh_margin = 0\n",
				 "invalid value for token_refresh_margin");
	expect_error("listen_socket_dir = /d\nproxy_hots = h\n", "unknown key \"proxy_hots\"");
	expect_error("listen_socket_dir = '/d\n", "unterminated quoted value");
	expect_error("listen_socket_dir = /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
				 "proxy_host = h\ntoken_file = f\nsslmode = require\n", "too long for a unix socket path");
	expect_error("listen_socket_dir = /d\nproxy_host = h\ntoken_file = f\nsslmode = require\nuser = ''\n",
				 "user must be 1 to 63 bytes");

	unlink(path);
	return ag_test_report();
}
