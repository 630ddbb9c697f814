--
-- The statement text an audit row keeps: literals become $n, comments go,
-- white space shrinks to one space.  Common statements are read without
-- the lexer (audit_text.c); whatever that reader is unsure of goes to the
-- lexer.  Both must give the same text, and no literal may survive either.
--
\set VERBOSITY terse
CREATE EXTENSION IF NOT EXISTS agentgate;
SET agentgate.audit_normalizer = lexer;
SELECT s AS statement, agentgate.audit_statement_text(s) AS logged
  FROM (VALUES
    ('SELECT abalance FROM pgbench_accounts WHERE aid = 12345;'),
    ('select * from t where a = ''x''''y'' and b=-1'),
    ('UPDATE users SET password = ''hunter2'' WHERE id=7'),
    (E'SELECT ''con''\n  ''tinued'''),
    ('SELECT ''a'' ''b'''),
    ('SELECT ''a''||''b'', ''''  ,  '''''''''),
    ('SELECT E''\\x41'', x''1F'', b''101'', n''abc'', U&''d\0061t'''),
    ('SELECT 1.5, .5, 5., 1e10, 1.5e-3, 2E+4, t.c1, s.t.c2'),
    ('SELECT $1 + $2, $$dollar '' quoted$$, $tag$x$tag$'),
    ('SELECT "Quoted Ident", "a""b", "x''y" FROM t1'),
    ('SELECT a/*comment ''secret''*/ + 1 -- trailing ''secret'''),
    ('SELECT a /* nested /* x */ y */ ,2'),
    ('SELECT café, ''naïve'' FROM t'),
    (E'   SELECT\t1\n,\f2   '),
    ('SELECT a<=b, a<>b, a!=b, a=-1, a*-2, x::int, y[1], a||''x'', a&b, a#>''{k}'''),
    ('SELECT ident$, a$b, _x9, X1, e1 FROM t'),
    ('INSERT INTO t(a,b) VALUES (1,''one''),(22,''two''),(-333,''three'')'),
    ('CREATE ROLE r PASSWORD ''s3cret'' VALID UNTIL ''2030-01-01'''),
    ('SELECT 1'),
    ('   '),
    ('SELECT interval ''1 day'', ''2024-01-01''::date, array[1,2], (3)')
  ) v(s);

-- the length cap cuts at a token boundary, never inside a literal
SET agentgate.audit_max_statement = 256;
SELECT length(t) <= 256 AS capped, t
  FROM (SELECT agentgate.audit_statement_text('SELECT ' || repeat('1,''x'',', 60) || '2') t) x;
SELECT agentgate.audit_statement_text('SELECT ' || repeat('aaaaaaaa, ', 30) || 'b');
RESET agentgate.audit_max_statement;

-- raw text for superusers who ask for it
SET agentgate.audit_raw_statements = on;
SELECT agentgate.audit_statement_text('SELECT ''kept''');
RESET agentgate.audit_raw_statements;

-- text the lexer rejects is refused with its error
SELECT agentgate.audit_statement_text('SELECT ''open');

-- Random statements from pieces: each must come out the same as with a
-- comment appended (which always sends it to the lexer), and no string
-- literal may come through (a quoted identifier may hold quotes: checked
-- in the first set only).  The first set holds only pieces the fast
-- reader takes (glued together they still make it give up at times); the
-- second adds the ones it leaves to the lexer.
SELECT setseed(0.4242);
CREATE TEMP TABLE pieces(p text, hard bool);
INSERT INTO pieces SELECT p, false FROM (VALUES ('SELECT'), ('a'), ('t1'), ('_x'),
    ('1'), ('42'), ('''s'''), ('''it''''s'''), ('''é'''), (' '), (E'\n'), (E'\t'), (E'\f'),
    (','), ('('), (')'), ('='), ('<'), ('>'), ('-'), ('+'), ('*'), ('/'), ('.'), (';'),
    (':'), ('::'), ('['), (']'), ('e'), ('E'), ('%'), ('^'), ('|'), ('!'), ('~'),
    ('@'), ('#'), ('?'), ('''--'''), ('''/*''')) v(p);
INSERT INTO pieces SELECT p, true FROM (VALUES ('1.5'), ('$1'), ('$$q$$'), ('"Q"'),
    (E'E''\\n'''), ('-- c' || E'\n'), ('/* c */'), ('&'), ('é'), ('x''0A'''), ('U&''x'''),
    (E'\v'), ('\'), ('$'), ('"')) v(p);
CREATE FUNCTION pg_temp.fuzz(with_hard bool, sep text, n int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    s text;
    a text;
    b text;
    compared int := 0;
    differ int := 0;
    kept int := 0;
BEGIN
    FOR g IN 1..n LOOP
        SELECT string_agg(p, sep ORDER BY random()) INTO s
          FROM pieces, generate_series(1, 2)
         WHERE (with_hard OR NOT hard) AND random() < 0.2;
        CONTINUE WHEN s IS NULL;
        BEGIN
            b := agentgate.audit_statement_text(s || ' /* to the lexer */');
        EXCEPTION WHEN syntax_error THEN
            CONTINUE;
        END;
        a := agentgate.audit_statement_text(s);
        compared := compared + 1;
        IF a IS DISTINCT FROM b THEN
            differ := differ + 1;
            IF differ <= 5 THEN
                RAISE NOTICE 'differ: % => % / %', s, a, b;
            END IF;
        END IF;
        IF NOT with_hard AND a LIKE '%''%' THEN
            kept := kept + 1;
            RAISE NOTICE 'literal kept: % => %', s, a;
        END IF;
    END LOOP;
    RETURN format('compared %s (at least %s: %s), %s differ, %s kept a string literal',
                  compared, n / 3, compared >= n / 3, differ, kept);
END
$$;
SELECT pg_temp.fuzz(false, '', 3000) AS easy_pieces;
SELECT pg_temp.fuzz(false, ' ', 3000) AS easy_pieces_spaced;
SELECT pg_temp.fuzz(true, '', 3000) AS all_pieces;
