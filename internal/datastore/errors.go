package datastore

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors a driver classifies, so the engine knows whether retrying helps.
var (
	// ErrUnavailable: the store cannot be reached now (retry with backoff).
	ErrUnavailable = errors.New("datastore unavailable")
	// ErrAuthentication: credentials were refused (needs a human).
	ErrAuthentication = errors.New("datastore authentication failed")
	// ErrNotFound: a table, column, key pattern or bucket does not exist.
	ErrNotFound = errors.New("not found in datastore")
	// ErrInvalid: the operation cannot be executed as specified (needs a human).
	ErrInvalid = errors.New("invalid operation")
	// ErrSettings: the DataStore's settings were refused before any
	// connection was attempted (no host, an endpoint that is not a URL, an
	// unknown TLS mode). Its message is Lethe's own, never text a server
	// sent, so a status may show it. It matches ErrInvalid too.
	ErrSettings error = settingsError{}
	// ErrLockTimeout: a lock the operation needed was not granted within
	// the DataStore's lockTimeout (another session holds it). It matches
	// ErrUnavailable too: retrying later helps.
	ErrLockTimeout error = lockTimeoutError{}
)

type lockTimeoutError struct{}

func (lockTimeoutError) Error() string { return "lock wait timed out" }

func (lockTimeoutError) Is(target error) bool { return target == ErrUnavailable }

type settingsError struct{}

func (settingsError) Error() string { return "invalid DataStore settings" }

func (settingsError) Is(target error) bool { return target == ErrInvalid }

// Kind is what went wrong, finer than the class (ErrUnavailable and
// friends) it belongs to. The SQL drivers map their servers' error codes
// and their client libraries' errors to kinds (see Library).
type Kind int

// Kinds, grouped by their class.
const (
	// KindInvalid: the operation cannot run as specified (a driver's own
	// validation, or a server error without a more specific kind).
	// ErrInvalid.
	KindInvalid Kind = iota
	// KindForeignKey: a foreign key refers to the rows, or the rows refer to
	// nothing. ErrInvalid.
	KindForeignKey
	// KindConstraint: another integrity constraint (NOT NULL, unique).
	// ErrInvalid.
	KindConstraint
	// KindData: a value does not fit the column's type. ErrInvalid.
	KindData
	// KindStatement: the server refused the statement itself (syntax, a
	// rule of the server's configuration). ErrInvalid.
	KindStatement
	// KindTLS: TLS could not be set up as configured. ErrInvalid.
	KindTLS
	// KindClient: the client library refused a value, which retrying does
	// not fix. ErrInvalid.
	KindClient
	// KindSettings: the DataStore's settings, found before any connection.
	// ErrSettings.
	KindSettings
	// KindNotFound: a database, schema, table or column does not exist.
	// ErrNotFound.
	KindNotFound
	// KindAuthentication: the credentials were refused or the account
	// cannot log in. ErrAuthentication.
	KindAuthentication
	// KindPermission: the account lacks a privilege. ErrAuthentication.
	KindPermission
	// KindConnection: connecting failed or the connection was lost.
	// ErrUnavailable.
	KindConnection
	// KindTimeout: the caller's deadline or a network timeout.
	// ErrUnavailable.
	KindTimeout
	// KindStatementTimeout: the server ended a statement (statement
	// timeout, or cancelled). ErrUnavailable.
	KindStatementTimeout
	// KindLockTimeout: a lock wait timed out. ErrLockTimeout, which is
	// ErrUnavailable too.
	KindLockTimeout
	// KindConflict: a concurrent transaction got in the way (deadlock,
	// serialization failure, a partition dropped meanwhile). ErrUnavailable.
	KindConflict
	// KindResources: the server is out of connections, memory or another
	// resource. ErrUnavailable.
	KindResources
	// KindReadOnly: the server or transaction is read-only (a standby).
	// ErrUnavailable.
	KindReadOnly
	// KindServer: the server is shutting down, starting or failed.
	// ErrUnavailable.
	KindServer
	// KindTransient: another server error that retrying fixes.
	// ErrUnavailable.
	KindTransient
)

// Class is the error errors.Is matches for k: ErrUnavailable,
// ErrLockTimeout, ErrAuthentication, ErrNotFound, ErrInvalid or ErrSettings.
func (k Kind) Class() error {
	switch k {
	case KindSettings:
		return ErrSettings
	case KindLockTimeout:
		return ErrLockTimeout
	case KindNotFound:
		return ErrNotFound
	case KindAuthentication, KindPermission:
		return ErrAuthentication
	case KindConnection, KindTimeout, KindStatementTimeout, KindConflict,
		KindResources, KindReadOnly, KindServer, KindTransient:
		return ErrUnavailable
	}
	return ErrInvalid
}

// Error is an error of a SQL driver, from the server, the connection or
// the driver's own checks, classified for the engine. Its message names the
// driver, the operation, the class, a short reason of Lethe's own, the
// server's error number or SQLSTATE and the schema objects involved, never
// a value: servers' own messages quote row values and subject identifiers,
// so they are kept out of Error() on purpose. errors.Is(err, ErrUnavailable)
// and friends work through Unwrap; errors.As can reach the original error
// (Err) when a caller really needs it, and must then not log it.
type Error struct {
	Driver string // "postgres", "mysql": the message's first word
	Op     string // what the driver was doing, e.g. "delete batch on `events`"
	Kind   Kind
	Reason string // short and value-free
	// Detail is the network error's text for some connection errors: host
	// names and ports, never values.
	Detail string

	Number     int    // the server's error number (MySQL), 0 when none
	SQLState   string // five characters, empty when none
	Table      string
	Column     string
	Constraint string

	// Err is the original error; its text may quote values.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Driver)
	b.WriteString(": ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(e.Kind.Class().Error())
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.Detail != "" {
		b.WriteString(" (")
		b.WriteString(e.Detail)
		b.WriteString(")")
	}
	if e.Number == 0 && e.SQLState == "" {
		return b.String()
	}
	var codes []string
	if e.Number != 0 {
		codes = append(codes, fmt.Sprintf("error %d", e.Number))
	}
	if e.SQLState != "" {
		codes = append(codes, "SQLSTATE "+e.SQLState)
	}
	if e.Table != "" {
		codes = append(codes, fmt.Sprintf("table %q", e.Table))
	}
	if e.Column != "" {
		codes = append(codes, fmt.Sprintf("column %q", e.Column))
	}
	if e.Constraint != "" {
		codes = append(codes, fmt.Sprintf("constraint %q", e.Constraint))
	}
	b.WriteString(" (")
	b.WriteString(strings.Join(codes, ", "))
	b.WriteString(")")
	return b.String()
}

// Unwrap exposes the class and the original error to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind.Class()}
	}
	return []error{e.Kind.Class(), e.Err}
}

// Errorf is an error a driver finds itself, before anything is sent. The
// message names identifiers only.
func Errorf(driver, op string, kind Kind, format string, args ...any) *Error {
	return &Error{Driver: driver, Op: op, Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// LockWait names the limit in a lock timeout: if err is or wraps an *Error
// of KindLockTimeout, that Error's reason becomes "lock not granted within
// lockTimeout <limit>". err is returned either way. Drivers apply it to what
// their operations return, before anything wraps it (a wrapping
// fmt.Errorf keeps the message it was made with); the *Error must be
// their own, made for this call (Classify and Errorf make a new one each
// time).
func LockWait(err error, limit time.Duration) error {
	var e *Error
	if errors.As(err, &e) && e.Kind == KindLockTimeout {
		e.Reason = "lock not granted within lockTimeout " + limit.String()
	}
	return err
}
