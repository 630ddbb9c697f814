// pgJDBC through agentgate-proxy with the driver's defaults
// (prepareThreshold = 5: a PreparedStatement becomes a named server-side
// statement from its fifth execution), TLS verify-full against the CA
// file, and the token from an AuthenticationPlugin (the refresh hook: the
// driver asks it for the password at every new connection).  Prints
// "CHECK name ok|fail detail" lines.
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.sql.*;
import java.util.*;
import java.util.concurrent.*;
import org.postgresql.plugin.AuthenticationPlugin;
import org.postgresql.plugin.AuthenticationRequestType;

public class AgJdbcClient {
    static final Map<String, String> env = System.getenv();

    /** The token refresh hook: read the file the IdP's agent keeps fresh. */
    public static class TokenPlugin implements AuthenticationPlugin {
        @Override
        public char[] getPassword(AuthenticationRequestType type) {
            try {
                return Files.readString(Path.of(env.get("AG_TOKEN_FILE"))).trim().toCharArray();
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        }
    }

    interface Step { String run() throws Exception; }

    static void step(String name, Step s) {
        try {
            String d = s.run();
            System.out.println("CHECK " + name + " ok " + (d == null ? "" : d));
        } catch (SQLException e) {
            System.out.println("CHECK " + name + " fail " + e.getSQLState() + " " + e.getMessage().replace('\n', ' '));
        } catch (Throwable e) {
            System.out.println("CHECK " + name + " fail " + e.toString().replace('\n', ' '));
        }
        System.out.flush();
    }

    static Connection connect() throws SQLException {
        String url = "jdbc:postgresql://" + env.get("AG_HOST") + ":" + env.get("AG_PORT") + "/" + env.get("AG_DB");
        Properties p = new Properties();
        p.setProperty("user", "agent");   // ignored: the role comes from the token
        p.setProperty("sslmode", "verify-full");
        p.setProperty("sslrootcert", env.get("AG_CA"));
        p.setProperty("authenticationPluginClassName", TokenPlugin.class.getName());
        return DriverManager.getConnection(url, p);
    }

    static String parallel(int conns, int per) throws Exception {
        ExecutorService ex = Executors.newFixedThreadPool(conns);
        List<Future<Set<String>>> fs = new ArrayList<>();
        for (int c = 0; c < conns; c++) {
            final int ci = c;
            fs.add(ex.submit(() -> {
                Set<String> sids = new HashSet<>();
                try (Connection conn = connect();
                     PreparedStatement ps = conn.prepareStatement(
                         "SELECT ?::int + 1, agentgate.session_id(), (SELECT name FROM items WHERE id = ?)")) {
                    for (int i = 0; i < per; i++) {
                        int v = ci * 1000 + i;
                        ps.setInt(1, v);
                        ps.setInt(2, i % 100 + 1);
                        try (ResultSet rs = ps.executeQuery()) {
                            rs.next();
                            if (rs.getInt(1) != v + 1 || !rs.getString(3).equals("item " + (i % 100 + 1)))
                                throw new Exception("wrong answer " + rs.getInt(1) + " for " + v);
                            sids.add(rs.getString(2));
                        }
                    }
                }
                return sids;
            }));
        }
        Set<String> all = new HashSet<>();
        try {
            for (Future<Set<String>> f : fs) {
                try {
                    all.addAll(f.get(60, TimeUnit.SECONDS));
                } catch (ExecutionException e) {
                    if (e.getCause() instanceof Exception) throw (Exception) e.getCause();
                    throw e;
                }
            }
        } finally {
            ex.shutdownNow();
        }
        return conns + " connections x " + per + " executions, " + all.size() + " sessions";
    }

    public static void main(String[] args) throws Exception {
        final String[] role = new String[1];
        step("connect", () -> {
            try (Connection c = connect(); Statement s = c.createStatement();
                 ResultSet rs = s.executeQuery("SELECT session_user, current_setting('application_name')")) {
                rs.next();
                role[0] = rs.getString(1);
                if (!role[0].startsWith("agent_")) throw new Exception("role " + role[0]);
                if (!rs.getString(2).startsWith("PostgreSQL JDBC Driver"))
                    throw new Exception("application_name " + rs.getString(2));
                return role[0] + ", application_name kept";
            }
        });
        // below prepareThreshold: the unnamed statement every time
        step("unnamed", () -> parallel(4, 4));
        // past prepareThreshold: named server-side statements (S_1, ...)
        step("named", () -> parallel(4, 25));
        step("refusal", () -> {
            try (Connection c = connect(); Statement s = c.createStatement()) {
                try {
                    s.executeUpdate("DELETE FROM items");
                } catch (SQLException e) {
                    if ("42501".equals(e.getSQLState()) && e.getMessage().contains("agentgate"))
                        return e.getMessage().split("\n")[0];
                    throw e;
                }
                throw new Exception("DELETE without WHERE was not refused");
            }
        });
        step("cancel", () -> {
            try (Connection c = connect(); Statement s = c.createStatement()) {
                ScheduledExecutorService t = Executors.newSingleThreadScheduledExecutor();
                long t0 = System.currentTimeMillis();
                t.schedule(() -> { try { s.cancel(); } catch (SQLException e) { } }, 500, TimeUnit.MILLISECONDS);
                try {
                    s.execute("SELECT pg_sleep(20)");
                } catch (SQLException e) {
                    if ("57014".equals(e.getSQLState()))
                        return "cancelled after " + (System.currentTimeMillis() - t0) + " ms";
                    throw e;
                } finally {
                    t.shutdownNow();
                }
                throw new Exception("not cancelled");
            }
        });
        step("listen", () -> {
            try (Connection c = connect(); Statement s = c.createStatement()) {
                try {
                    s.execute("LISTEN jobs");
                } catch (SQLException e) {
                    if (e.getMessage().contains("LISTEN would lose notifications"))
                        return e.getMessage().split("\n")[0];
                    throw e;
                }
                throw new Exception("LISTEN was accepted");
            }
        });
        step("rotation", () -> {
            Files.copy(Path.of(env.get("AG_TOKEN_NEXT_FILE")), Path.of(env.get("AG_TOKEN_FILE")),
                       StandardCopyOption.REPLACE_EXISTING);
            try (Connection c = connect(); Statement s = c.createStatement();
                 ResultSet rs = s.executeQuery("SELECT session_user")) {
                rs.next();
                if (!rs.getString(1).equals(role[0])) throw new Exception("role " + rs.getString(1));
                return "same role with the refreshed token";
            }
        });
    }
}
