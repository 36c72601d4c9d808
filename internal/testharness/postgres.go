package testharness

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/servers"
)

// PG is a fresh, empty PostgreSQL database.
type PG struct {
	Host     string
	Port     int
	User     string // a superuser of the throwaway server
	Password string
	Database string
	// DSN is a postgres:// URL for pgx (pgx.Connect, pgxpool.New) and
	// database/sql with the pgx stdlib driver.
	DSN string
	// CACert is the PEM certificate of the throwaway authority that signed
	// the server's certificate (for 127.0.0.1 and localhost): the server
	// accepts TLS (ssl=on) as well as plain connections. Empty for the
	// server of LETHE_TEST_POSTGRES_DSN.
	CACert []byte
}

var pgLazy lazy[*servers.Postgres]

// Postgres returns a fresh database on a throwaway PostgreSQL server (or on
// the server of LETHE_TEST_POSTGRES_DSN). The server starts on first use.
func Postgres(tb testing.TB) PG {
	tb.Helper()
	requireMain(tb)
	srv := pgLazy.get(tb, "PostgreSQL", startPostgres)

	name := uniqueName(tb, "lethe", '_', 63)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.CreateDatabase(ctx, name); err != nil {
		tb.Fatalf("testharness: PostgreSQL: creating database %s: %v", name, err)
	}
	return PG{
		Host: srv.Host, Port: srv.Port, User: srv.User, Password: srv.Password,
		Database: name, DSN: srv.URL(name), CACert: srv.CACert,
	}
}

func startPostgres() (*servers.Postgres, error) {
	ctx := context.Background()
	if dsn := os.Getenv("LETHE_TEST_POSTGRES_DSN"); dsn != "" {
		srv, err := servers.ConnectPostgres(ctx, dsn)
		if err != nil {
			return nil, fmtEnvErr("LETHE_TEST_POSTGRES_DSN", err)
		}
		return srv, nil
	}
	g, err := theGroup()
	if err != nil {
		return nil, err
	}
	srv, err := g.StartPostgres(ctx, servers.PostgresOptions{TLS: true})
	return srv, orSet(err, "LETHE_TEST_POSTGRES_DSN")
}
