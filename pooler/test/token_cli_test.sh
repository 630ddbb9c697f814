#!/bin/sh
# token_cli_test.sh - agentgate-token used exactly as docs/tokens.md says:
# keys from `openssl genpkey`, JWKS from `agentgate-token jwks`, tokens from
# `agentgate-token mint`, and `verify` reading standard input (one trailing
# newline stripped, nothing else), with exit codes 0 accept, 1 reject,
# 2 usage or configuration error.

TOOL=$(cd "$(dirname "$0")/.." && pwd)/agentgate-token
DIR=$(mktemp -d "${TMPDIR:-/tmp}/ag_token_cli.XXXXXX")
trap 'rm -rf "$DIR"' EXIT
cd "$DIR" || exit 2

pass=0
fail=0
NOW=1700000000

ok() {
	pass=$((pass + 1))
}
bad() {
	fail=$((fail + 1))
	echo "FAIL: $*"
}

# expect NAME RC [STDERR-SUBSTRING]: the last command's rc and stderr.
expect() {
	if [ "$rc" -ne "$2" ]; then
		bad "$1: exit $rc, want $2 ($(cat err 2>/dev/null))"
	elif [ -n "$3" ] && ! grep -q -- "$3" err; then
		bad "$1: stderr lacks \"$3\": $(cat err)"
	else
		ok
	fi
}

# verify [extra options] < stdin
verify() {
	"$TOOL" verify --jwks keys.jwks --issuer https://idp.example.com \
		--audience agentgate --now $NOW "$@" >out 2>err
	rc=$?
}

mint() {
	"$TOOL" mint --iss https://idp.example.com --aud agentgate --sub agent-7 \
		--now $NOW "$@" 2>err
}

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2.pem 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p256.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out p521.pem
openssl genpkey -algorithm ED25519 -out ed.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.pem 2>/dev/null
openssl pkey -in rsa.pem -pubout -out rsa_pub.pem
head -c 64 /dev/urandom > secret
head -c 16 /dev/urandom > short_secret

# --- jwks ---
jwks_one() {
	"$TOOL" jwks "$@" >one.jwks 2>err
	rc=$?
}
jwks_one --key rsa.pem --kid r1 --alg RS256;		expect "jwks RSA private PEM" 0
cp one.jwks r1.jwks
jwks_one --key rsa_pub.pem --kid r1 --alg RS256;	expect "jwks RSA public PEM" 0
cmp -s one.jwks r1.jwks && ok || bad "jwks same for private and public PEM"
jwks_one --key rsa2.pem --kid r2;				expect "jwks RSA without alg" 0; cp one.jwks r2.jwks
jwks_one --key p256.pem --kid e256;				expect "jwks P-256" 0; cp one.jwks e256.jwks
jwks_one --key p384.pem --kid e384 --alg ES384;	expect "jwks P-384" 0; cp one.jwks e384.jwks
jwks_one --key p521.pem --kid e521;				expect "jwks P-521" 0; cp one.jwks e521.jwks
jwks_one --key ed.pem --kid d1 --alg EdDSA;		expect "jwks Ed25519" 0; cp one.jwks d1.jwks
jwks_one --secret-file secret --kid h1;			expect "jwks oct" 0; cp one.jwks h1.jwks
jwks_one --key p256.pem --kid x --alg ES384;	expect "jwks alg/curve mismatch refused" 2 "curve"
jwks_one --key p256.pem --kid x --alg RS256;	expect "jwks alg/kty mismatch refused" 2 "does not fit"
jwks_one --key rsa1024.pem --kid x;				expect "jwks 1024-bit RSA refused" 2 "1024 bits"
jwks_one --secret-file short_secret --kid x;	expect "jwks short secret refused" 2 "at least 32"
jwks_one --key rsa.pem;							expect "jwks without kid" 2
jwks_one --key nonexistent.pem --kid x;			expect "jwks missing key file" 2 "cannot open"
grep -q '"d"' r1.jwks && bad "jwks leaks the private exponent" || ok

# one key set with all of them: the object inside each one-key document
{
	echo '{"keys": ['
	sep=
	for f in r1 r2 e256 e384 e521 d1 h1; do
		printf '%s' "$sep"
		sed '1,2d' $f.jwks | sed '$d' | sed '$d'
		sep=,
	done
	echo ']}'
} > keys.jwks
"$TOOL" verify --jwks keys.jwks --issuer i --audience a < /dev/null >out 2>err; rc=$?
expect "combined key set loads" 1 "malformed"

# --- mint and verify, each algorithm ---
for spec in "RS256 rsa.pem r1" "RS512 rsa2.pem r2" "PS256 rsa2.pem r2" "PS384 rsa2.pem r2" \
	"PS512 rsa2.pem r2" "ES256 p256.pem e256" "ES384 p384.pem e384" "ES512 p521.pem e521" \
	"EdDSA ed.pem d1"; do
	set -- $spec
	mint --key "$2" --alg "$1" --kid "$3" > tok; rc=$?
	expect "mint $1" 0
	verify < tok;								expect "verify $1" 0
	grep -q "\"alg\":\"$1\"" out && ok || bad "verify $1 output: $(cat out)"
done
for alg in HS256 HS384 HS512; do
	mint --secret-file secret --alg $alg --kid h1 > tok; rc=$?
	expect "mint $alg" 0
	verify < tok;								expect "verify $alg" 0
done

# --- delegated tokens: --act nests actors (current first), --scope ---
mint --key rsa.pem --alg RS256 --kid r1 --act subagent-7,ci-pipeline --scope 'read audit' > tok; rc=$?
expect "mint --act --scope" 0
verify < tok;									expect "verify delegated" 0
grep -q '"chain":\["subagent-7","ci-pipeline","agent-7"\],"scopes":\["read","audit"\]' out &&
	ok || bad "verify delegated output: $(cat out)"
mint --key rsa.pem --alg RS256 --kid r1 --act a1,a2,a3,a4,a5,a6,a7,a8 > tok; rc=$?
expect "mint 8 actors" 0
verify < tok;									expect "verify 9 identities" 1 "longer than 8"

# --- --scp mints Okta's array-valued "scp"; verify --scope-claim reads it ---
mint --key rsa.pem --alg RS256 --kid r1 --scp read,audit --scp db:write > tok; rc=$?
expect "mint --scp" 0
verify < tok;									expect "verify scp, default scope claim" 0
grep -q '"scopes"' out && bad "scp read without --scope-claim: $(cat out)" || ok
verify --scope-claim scp < tok;					expect "verify --scope-claim scp" 0
grep -q '"scopes":\["read","audit","db:write"\]' out &&
	ok || bad "verify scp output: $(cat out)"
mint --key rsa.pem --alg RS256 --kid r1 --scp read --scope read > tok; rc=$?
expect "mint --scp --scope" 0
verify --scope-claim scp < tok;					expect "verify scp and scope" 1 "ambiguous"
mint --key rsa.pem --alg RS256 --kid r1 --scp read,,write > tok; rc=$?
expect "mint --scp with an empty entry" 0
verify --scope-claim scp < tok;					expect "verify scp empty entry" 1 "entry 2"

# --- tokens signed by the openssl command, a third independent signer ---
b64u() {
	openssl base64 -A | tr '+/' '-_' | tr -d '='
}
# raw_token ALG KID SIGN-COMMAND...: header.payload signed by the command
raw_token() {
	alg=$1 kid=$2
	shift 2
	h=$(printf '{"alg":"%s","kid":"%s"}' "$alg" "$kid" | b64u)
	p=$(printf '{"iss":"https://idp.example.com","aud":"agentgate","sub":"agent-7","exp":1700000300}' | b64u)
	printf '%s.%s' "$h" "$p" > input
	s=$("$@" < input | b64u)
	printf '%s.%s.%s\n' "$h" "$p" "$s" > tok
}
raw_token RS256 r1 openssl dgst -sha256 -sign rsa.pem
verify < tok;									expect "openssl dgst RS256" 0
for bits in 256 384 512; do
	raw_token PS$bits r2 openssl dgst -sha$bits -sigopt rsa_padding_mode:pss \
		-sigopt rsa_pss_saltlen:digest -sign rsa2.pem
	verify < tok;								expect "openssl dgst PS$bits" 0
done
for salt in 0 20 max; do
	raw_token PS256 r2 openssl dgst -sha256 -sigopt rsa_padding_mode:pss \
		-sigopt rsa_pss_saltlen:$salt -sign rsa2.pem
	verify < tok;								expect "PS256 with salt length $salt" 1 "signature"
done
raw_token EdDSA d1 openssl pkeyutl -sign -rawin -inkey ed.pem -in input
verify < tok;									expect "openssl pkeyutl EdDSA" 0
# openssl signs ECDSA in DER; JWS wants R||S
raw_token ES256 e256 openssl dgst -sha256 -sign p256.pem
verify < tok;									expect "ES256 signature in DER" 1 "signature"

# --- output format ---
mint --key rsa.pem --alg RS256 --kid r1 --groups analysts,ops > tok
verify < tok;									expect "verify output" 0
[ "$(cat out)" = '{"identity":"agent-7","groups":["analysts","ops"],"exp":1700000300,"kid":"r1","alg":"RS256"}' ] \
	&& ok || bad "verify output: $(cat out)"
[ ! -s err ] && ok || bad "verify prints nothing on stderr when it accepts"
mint --key rsa.pem --alg RS256 --kid r1 --sub 'a"b\c' > tok
verify < tok;									expect "identity with quotes" 0
[ "$(cat out)" = '{"identity":"a\"b\\c","groups":[],"exp":1700000300,"kid":"r1","alg":"RS256"}' ] \
	&& ok || bad "identity JSON escaping: $(cat out)"

# --- standard input: exactly the bytes, less ONE trailing newline ---
mint --key rsa.pem --alg RS256 --kid r1 > tok
T=$(cat tok)
printf '%s' "$T" > in; verify < in;						expect "stdin without newline" 0
printf '%s\n' "$T" > in; verify < in;					expect "stdin with one newline" 0
printf '%s\n\n' "$T" > in; verify < in;					expect "stdin with two newlines" 1 "malformed"
printf '%s\r\n' "$T" > in; verify < in;					expect "stdin with CRLF" 1 "malformed"
printf '%s\0' "$T" > in; verify < in;					expect "stdin with trailing NUL" 1 "NUL"
printf '%s\0\n' "$T" > in; verify < in;					expect "stdin with NUL then newline" 1 "NUL"
printf ' %s\n' "$T" > in; verify < in;					expect "stdin with leading space" 1 "malformed"
printf '%s \n' "$T" > in; verify < in;					expect "stdin with trailing space" 1 "malformed"
printf '%s\n%s\n' "$T" "$T" > in; verify < in;			expect "stdin with two tokens" 1 "malformed"
printf '' > in; verify < in;								expect "empty stdin" 1 "malformed"
printf '\n' > in; verify < in;							expect "stdin only a newline" 1 "malformed"
head -c 16385 /dev/zero | tr '\0' 'a' > in; verify < in;	expect "16385-byte stdin" 1 "16384"
{ head -c 16384 /dev/zero | tr '\0' 'a'; printf '\n'; } > in; verify < in
expect "16384 bytes plus newline reach the verifier" 1 "segments"

# --- policy through the CLI ---
verify --now 1700000361 < tok;					expect "expired" 1 "expired"
verify --now 1700000330 < tok;					expect "in leeway" 0
verify --now 1700000330 --leeway 0 < tok;		expect "leeway 0" 1 "expired"
"$TOOL" verify --jwks keys.jwks --issuer https://other --audience agentgate --now $NOW < tok >out 2>err; rc=$?
expect "wrong issuer" 1 "iss"
"$TOOL" verify --jwks keys.jwks --issuer https://idp.example.com --audience other --now $NOW < tok >out 2>err; rc=$?
expect "wrong audience" 1 "aud"
mint --key rsa.pem --alg RS256 --kid r1 --now 1700000200 > tok2
verify < tok2;									expect "iat in the future" 1 "future"
mint --key rsa.pem --alg RS256 --kid r1 --claim 'exp="1700000300"' > tok2
verify < tok2;									expect "exp as a string" 1 "exp"
mint --key rsa.pem --alg RS256 --kid r1 --claim 'aud=["x","agentgate"]' > tok2
verify < tok2;									expect "aud array" 0
mint --key rsa.pem --alg RS256 --kid r1 --claim 'groups="admins"' > tok2
verify < tok2;									expect "groups as a string" 1 "groups"
mint --key rsa.pem --alg RS256 --kid r1 --sub '' > tok2
verify < tok2;									expect "empty sub" 1 "identity"
mint --key rsa.pem --alg RS256 --kid r1 --claim email='"bot@example.com"' \
	--claim 'https://example.com/groups=["g1"]' > tok2
verify --identity-claim email --groups-claim https://example.com/groups < tok2
expect "custom claim names" 0
grep -q '"identity":"bot@example.com","groups":\["g1"\]' out && ok || bad "custom claims output: $(cat out)"

# --- attacks ---
# HS256 keyed with the RSA public key PEM, signed by libjwt (which allows it)
cp rsa_pub.pem pub_as_secret
mint --secret-file pub_as_secret --alg HS256 --kid r1 > tok2
verify < tok2;									expect "HS256 keyed with the RSA public key" 1 "does not allow"
mint --secret-file pub_as_secret --alg HS256 > tok2
verify < tok2;									expect "same, without kid" 1 "signature"
# alg none, every spelling
P=$(printf '%s' "$T" | cut -d. -f2)
for a in none None NONE nOnE; do
	H=$(printf '{"alg":"%s","typ":"JWT"}' "$a" | openssl base64 -A | tr '+/' '-_' | tr -d '=')
	printf '%s.%s.' "$H" "$P" > in; verify < in;			expect "alg $a, empty signature" 1 "empty segment"
	printf '%s.%s.AAAA' "$H" "$P" > in; verify < in;		expect "alg $a" 1 "unsigned"
done
# signature of another key under a known kid
mint --key rsa2.pem --alg RS256 --kid r1 > tok2
verify < tok2;									expect "wrong key for kid" 1 "signature"
mint --key rsa.pem --alg RS256 --kid unknown > tok2
verify < tok2;									expect "unknown kid" 1 "unknown kid"
mint --key rsa.pem --alg PS256 --kid r1 > tok2
verify < tok2;									expect "PS256 on an RS256 key" 1 "does not allow"

# --- usage and configuration errors exit 2 ---
"$TOOL" >/dev/null 2>err; rc=$?;				expect "no subcommand" 2
"$TOOL" frobnicate >/dev/null 2>err; rc=$?;		expect "unknown subcommand" 2
"$TOOL" verify --jwks keys.jwks --audience agentgate < tok >out 2>err; rc=$?
expect "verify without --issuer" 2
verify --leeway abc < tok;						expect "bad --leeway" 2 "leeway"
verify --now -5 < tok;							expect "bad --now" 2 "now"
verify --bogus < tok;							expect "unknown option" 2
"$TOOL" verify --jwks missing.jwks --issuer i --audience a < tok >out 2>err; rc=$?
expect "missing JWKS file" 2 "cannot open"
printf '{"keys":[{"kty":"oct","k":"AAAA"}]}' > bad.jwks
"$TOOL" verify --jwks bad.jwks --issuer i --audience a < tok >out 2>err; rc=$?
expect "bad JWKS file" 2 "oct key"
mint --key rsa.pem --alg HS256 > /dev/null; rc=$?
expect "mint HS256 with --key" 2
mint --secret-file short_secret --alg HS256 > /dev/null; rc=$?
expect "mint with a short secret" 2 "at least 32"
mint --key rsa.pem --alg none > /dev/null; rc=$?
expect "mint alg none" 2 "unsupported"
mint --key p256.pem --alg EdDSA > /dev/null; rc=$?
expect "mint EdDSA with an EC key" 2 "does not fit"
mint --key rsa.pem --alg RS256 --claim 'x={bad' > /dev/null; rc=$?
expect "mint bad --claim JSON" 2 "not JSON"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
