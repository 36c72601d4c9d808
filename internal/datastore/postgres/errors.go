package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// Error is an error from the server or the connection, classified for the
// engine. Its message names the operation, the SQLSTATE and the schema objects
// involved (table, column, constraint), never a value: PostgreSQL's own
// message and detail can quote row values and subject identifiers (invalid
// input syntax, key (...)=(...) is still referenced), so they are kept out of
// Error() on purpose. errors.Is(err, datastore.ErrUnavailable) and friends work
// through Unwrap; errors.As can reach the original *pgconn.PgError when a
// caller really needs it, and must then not log it.
type Error struct {
	Op         string // what the driver was doing, e.g. "delete batch on \"public\".\"events\""
	SQLState   string // five-character SQLSTATE, empty for connection-level errors
	Constraint string
	Table      string
	Column     string
	Class      error // one of datastore.ErrUnavailable, ErrAuthentication, ErrNotFound, ErrInvalid
	reason     string
	detail     string // connection-level errors only: the network error's text
	cause      error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("postgres: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(e.Class.Error())
	if e.reason != "" {
		b.WriteString(": ")
		b.WriteString(e.reason)
	}
	if e.detail != "" {
		b.WriteString(" (")
		b.WriteString(e.detail)
		b.WriteString(")")
	}
	if e.SQLState != "" {
		b.WriteString(" (SQLSTATE ")
		b.WriteString(e.SQLState)
		if e.Table != "" {
			fmt.Fprintf(&b, ", table %q", e.Table)
		}
		if e.Column != "" {
			fmt.Fprintf(&b, ", column %q", e.Column)
		}
		if e.Constraint != "" {
			fmt.Fprintf(&b, ", constraint %q", e.Constraint)
		}
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap exposes the class and the original error to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{e.Class}
	}
	return []error{e.Class, e.cause}
}

// invalid and notFound build driver-side errors (validation before anything is
// sent). Messages name identifiers only.
func invalid(op, format string, args ...any) error {
	return &Error{Op: op, Class: datastore.ErrInvalid, reason: fmt.Sprintf(format, args...)}
}

// settings is an error in the DataStore's settings, found before any
// connection (datastore.ErrSettings).
func settings(op, format string, args ...any) error {
	return &Error{Op: op, Class: datastore.ErrSettings, reason: fmt.Sprintf(format, args...)}
}

func notFound(op, format string, args ...any) error {
	return &Error{Op: op, Class: datastore.ErrNotFound, reason: fmt.Sprintf(format, args...)}
}

// classify turns an error from pgx into an *Error. Context cancellation by the
// caller is returned as is (wrapped with the operation), since it is neither
// the store's fault nor a reason to back off.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var le *Error
	if errors.As(err, &le) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if na := datastore.AsNotAllowed(err); na != nil {
		// Without pgx's ConnectError, whose text names the user.
		return fmt.Errorf("postgres: %s: %w", op, na)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		e := &Error{Op: op, SQLState: pe.Code, Constraint: pe.ConstraintName, Table: pe.TableName, Column: pe.ColumnName, cause: err}
		e.reason, e.Class = classifyState(pe.Code)
		return e
	}
	e := &Error{Op: op, Class: datastore.ErrUnavailable, cause: err}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
		e.reason = "timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		e.reason = "connection refused"
		e.detail = err.Error()
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgconn.ErrConnClosed):
		e.reason = "connection lost"
	default:
		var ne net.Error
		var ce *pgconn.ConnectError
		var de *net.DNSError
		switch {
		case errors.As(err, &de):
			e.reason = "host name lookup failed"
		case errors.As(err, &ne), errors.As(err, &ce):
			e.reason = "connection failed"
			// Dial, DNS and TLS errors carry host names and ports, never
			// row values; they are what an operator needs to fix. A
			// ConnectError's own text names the user from the credentials
			// Secret: only what it wraps is kept.
			e.detail = err.Error()
			if errors.As(err, &ce) && errors.Unwrap(ce) != nil {
				e.detail = errors.Unwrap(ce).Error()
			}
		case pgconn.SafeToRetry(err):
			e.reason = "connection busy or closed"
		default:
			// Not a server error and not recognisably the network: most
			// likely a value pgx could not encode or decode. That does not
			// get better by retrying. pgx quotes the value in such messages,
			// so only the Go type of the error is named.
			e.Class = datastore.ErrInvalid
			e.reason = fmt.Sprintf("client error (%T)", err)
		}
	}
	return e
}

// classifyState maps a SQLSTATE to a class and a short, value-free reason.
func classifyState(code string) (string, error) {
	switch code {
	case "28P01", "28000":
		return "authentication failed", datastore.ErrAuthentication
	case "42501":
		return "permission denied", datastore.ErrAuthentication
	case "42P01":
		return "undefined table", datastore.ErrNotFound
	case "42703":
		return "undefined column", datastore.ErrNotFound
	case "3F000":
		return "undefined schema", datastore.ErrNotFound
	case "3D000":
		return "database does not exist", datastore.ErrNotFound
	case "57014":
		return "statement timeout or cancelled", datastore.ErrUnavailable
	case "55P03":
		return "lock timeout", datastore.ErrUnavailable
	case "40001":
		return "serialization failure", datastore.ErrUnavailable
	case "40P01":
		return "deadlock detected", datastore.ErrUnavailable
	case "57P01":
		return "server shutting down (admin shutdown)", datastore.ErrUnavailable
	case "57P02":
		return "server crashed", datastore.ErrUnavailable
	case "57P03":
		return "server not accepting connections yet", datastore.ErrUnavailable
	case "25006":
		return "read-only transaction (standby or read-only server)", datastore.ErrUnavailable
	case "23503":
		return "foreign key violation: delete referencing rows first", datastore.ErrInvalid
	}
	switch {
	case strings.HasPrefix(code, "08"):
		return "connection exception", datastore.ErrUnavailable
	case strings.HasPrefix(code, "53"):
		return "insufficient resources", datastore.ErrUnavailable
	case strings.HasPrefix(code, "58"):
		return "system error", datastore.ErrUnavailable
	case strings.HasPrefix(code, "22"):
		return "data exception (a value does not fit the column type)", datastore.ErrInvalid
	case strings.HasPrefix(code, "23"):
		return "integrity constraint violation", datastore.ErrInvalid
	case strings.HasPrefix(code, "42"):
		return "syntax error or access rule violation", datastore.ErrInvalid
	}
	return "server error", datastore.ErrInvalid
}
